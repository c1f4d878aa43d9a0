"""Figures of the layer-subset oracle (`experiments.oracle`): the map of all subsets, the front, each layer's effect."""

from __future__ import annotations

from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..experiments.oracle import METRICS, pareto

MARKERS = "s^vD<>pPX*h"


def _halves(layers: int) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Every subset of the lower half and of the upper half, smallest first."""
    lower, upper = range(layers // 2), range(layers // 2, layers)
    return ([c for k in range(len(lower) + 1) for c in combinations(lower, k)],
            [c for k in range(len(upper) + 1) for c in combinations(upper, k)])


def plot_map(table: pd.DataFrame, metric: str = "test_accuracy", layers: int = 6, ax=None, title: str | None = None):
    """Heat map of `metric` (mean over seeds) for every subset: rows choose the frozen lower layers, columns the upper."""
    grid = table[table["frozen"].notna()]
    by_set = {tuple(f): v for f, v in zip(grid["frozen"], grid[metric])}
    rows, cols = _halves(layers)
    values = np.array([[by_set.get(tuple(sorted(r + c)), np.nan) for c in cols] for r in rows])
    if ax is None:
        _, ax = plt.subplots(figsize=(8.5, 6.5))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            if not np.isnan(values[i, j]):
                dark = values[i, j] < np.nanmean(values)
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8, color="white" if dark else "black")

    def name(subset):
        return " ".join(map(str, subset)) or "none"

    ax.set_xticks(range(len(cols)), [name(c) for c in cols], fontsize=8)
    ax.set_yticks(range(len(rows)), [name(r) for r in rows], fontsize=8)
    ax.set_xlabel(f"frozen among the upper layers {layers // 2}-{layers - 1}")
    ax.set_ylabel(f"frozen among the lower layers 0-{layers // 2 - 1}")
    ax.figure.colorbar(image, ax=ax, label=f"{METRICS.get(metric, metric)}, mean over seeds")
    ax.set_title(title or f"Every subset of {layers} layers frozen (embeddings frozen in all): {METRICS.get(metric, metric)}")
    ax.figure.tight_layout()
    return ax.figure


def plot_front(table: pd.DataFrame, x: str = "step_time_s", y: str = "test_accuracy", ax=None, title: str | None = None):
    """Every subset (dots, coloured by how many layers are frozen), the Pareto front through them, and each rule
    (a marker with its 95 % intervals on both axes, named in the legend, so that no label sits on another)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 6))
    grid = table[table["frozen"].notna()]
    dots = ax.scatter(grid[x], grid[y], c=grid["n_frozen"], cmap="viridis", s=22, alpha=0.8, zorder=2)
    lower_x = x == "step_time_s"  # time: less is better; retention: more is better
    front = grid[pareto(grid, x, y, lower_x)].sort_values(x)
    ax.step(front[x], front[y], where="post" if lower_x else "pre", color="black", lw=1, alpha=0.6, zorder=1,
            label="front of the subsets")
    rules = table[(table["frozen"].isna()) | (table["label"] != table.index)]
    for marker, (strategy, r) in zip(MARKERS * 3, rules.iterrows()):
        xerr = [[r[x] - r[f"{x}_low"]], [r[f"{x}_high"] - r[x]]] if f"{x}_low" in r and pd.notna(r[f"{x}_low"]) else None
        yerr = [[r[y] - r[f"{y}_low"]], [r[f"{y}_high"] - r[y]]] if f"{y}_low" in r and pd.notna(r[f"{y}_low"]) else None
        ax.errorbar(r[x], r[y], xerr=xerr, yerr=yerr, fmt=marker, ms=8, capsize=3, mfc="none" if pd.notna(r["frozen"]) else None,
                    label=r["label"], zorder=3)
    ax.figure.colorbar(dots, ax=ax, label="layers frozen (subsets)")
    ax.set_xlabel(METRICS.get(x, x) + (" (lower is better)" if lower_x else " (higher is better)"))
    ax.set_ylabel(METRICS.get(y, y) + ", mean over seeds")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.25, 0.5), title="rules (95 % intervals)", title_fontsize=8)
    ax.set_title(title or f"The {len(grid)} subsets (dots) and the rules (markers)", fontsize=11)
    ax.figure.tight_layout()
    return ax.figure


def plot_layer_effects(effects: pd.DataFrame, ax=None, unit: str = "points", scale: float = 100.0, title: str | None = None):
    """One bar per layer: what freezing it does to the metric, averaged over the other layers' choices (95 % interval)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8))
    x = effects.index.to_numpy()
    ax.bar(x, effects["effect"] * scale, color="tab:blue", alpha=0.6)
    ax.errorbar(x, effects["effect"] * scale, yerr=[(effects["effect"] - effects["ci_low"]) * scale,
                                                   (effects["ci_high"] - effects["effect"]) * scale],
                fmt="none", color="black", capsize=5)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [f"layer {i}" for i in x])
    ax.set_ylabel(f"frozen - trainable ({unit})")
    ax.set_title(title or "What freezing each layer costs (mean over the 32 subsets with and without it)")
    ax.figure.tight_layout()
    return ax.figure
