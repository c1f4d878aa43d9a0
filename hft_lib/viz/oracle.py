"""Figures of the layer-subset oracle (`experiments.oracle`): the map of all subsets, the front, each layer's effect."""

from __future__ import annotations

from itertools import combinations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap

from ..experiments.oracle import METRICS, pareto
from .plots import fit_titles


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
    fit_titles(ax.figure)
    return ax.figure


# The rules by family, one panel and one colour each; a layer subset named by a rule is a fixed layer set.
FAMILIES = {
    "fixed layer sets (a pattern names the frozen layers)": ("tab:blue", ()),
    "a part of every layer trains": ("tab:orange", ("hft_paper", "attention_only", "ffn_only", "bitfit")),
    "the data decide during training": ("tab:red", ("lisa", "autofreeze", "auto_rgn")),
    "adapters": ("tab:purple", ("lora",)),
    "other rules": ("tab:brown", ()),
}
REFERENCE = "full"  # drawn in every panel, in black


def _family(strategy: str, row: pd.Series) -> str:
    if pd.notna(row["frozen"]):
        return next(iter(FAMILIES))
    return next((name for name, (_, members) in FAMILIES.items() if strategy in members), "other rules")


def _draw_rules(ax, rules: pd.DataFrame, x: str, y: str) -> None:
    """Each rule: a marker with its 95 % intervals on both axes, in its family's colour (full fine-tuning: a black X),
    labelled beside it, clear of the other labels (not in a legend)."""
    from .tradeoff import place_labels

    colours = ["black" if s == REFERENCE else FAMILIES[_family(s, r)][0] for s, r in rules.iterrows()]
    for (strategy, r), colour in zip(rules.iterrows(), colours):
        xerr = [[r[x] - r[f"{x}_low"]], [r[f"{x}_high"] - r[x]]] if pd.notna(r.get(f"{x}_low")) else None
        yerr = [[r[y] - r[f"{y}_low"]], [r[f"{y}_high"] - r[y]]] if pd.notna(r.get(f"{y}_low")) else None
        reference = strategy == REFERENCE  # under the others: a rule that ran as full fine-tuning shows on top of it
        ax.errorbar(r[x], r[y], xerr=xerr, yerr=yerr, fmt="X" if reference else "o", ms=9 if reference else 6,
                    color=colour, mec="white", mew=0.6, elinewidth=1, alpha=0.9, capsize=2, zorder=3 if reference else 3.5)
    for text, colour in zip(place_labels(ax, rules[x], rules[y], rules["label"], fontsize=8, sizes=[80] * len(rules)),
                            colours):
        text.set_color(colour)
        text.set_bbox({"facecolor": "white", "alpha": 0.75, "lw": 0, "pad": 0.5})  # legible over the grey dots
        text.set_zorder(4)
        text.set_in_layout(False)  # placed after the layout settled: it must not move the axes again


def plot_front(table: pd.DataFrame, x: str = "step_time_s", y: str = "test_accuracy", ax=None, title: str | None = None):
    """Every subset (grey dots, darker = more layers frozen), the Pareto front through them (black steps), and the
    rules with their 95 % intervals on both axes, each labelled beside its marker: one panel and one colour per
    family of rules (`FAMILIES`), with full fine-tuning in black in every panel. Given `ax`, all in that one axes."""
    grid = table[table["frozen"].notna()]
    lower_x = x == "step_time_s"  # time: less is better; retention: more is better
    front = grid[pareto(grid, x, y, lower_x)].sort_values(x)
    rules = table[(table["frozen"].isna()) | (table["label"] != table.index)]
    families = {name: rules[[_family(s, r) == name for s, r in rules.iterrows()]] for name in FAMILIES}
    families = {name: part for name, part in families.items() if len(part.index.drop(REFERENCE, errors="ignore"))}
    if ax is None:
        rows = (len(families) + 1) // 2
        # 9.4 in: shown at full size in a notebook's output area (NOTEBOOK_WIDTH_PX), not scaled down with its type
        fig, axes = plt.subplots(rows, 2, figsize=(9.4, 0.8 + 3.6 * rows), sharex=True, sharey=True, squeeze=False,
                                 layout="constrained")
        panels = list(zip(axes.ravel(), families.items()))
        for spare in axes.ravel()[len(families):]:
            spare.set_visible(False)
    else:
        fig, panels = ax.figure, [(ax, (None, rules))]
    levels = int(grid["n_frozen"].max()) + 1  # one shade of grey per number of frozen layers, none white
    shades = ListedColormap(plt.get_cmap("Greys")(np.linspace(0.25, 0.95, levels)))
    for panel, (name, part) in panels:
        dots = panel.scatter(grid[x], grid[y], c=grid["n_frozen"], cmap=shades, norm=BoundaryNorm(np.arange(levels + 1) - 0.5, levels),
                             s=18, zorder=2)
        panel.step(front[x], front[y], where="post" if lower_x else "pre", color="black", lw=1, alpha=0.6, zorder=1)
        if name is not None:
            panel.set_title(name, fontsize=10, color=FAMILIES[name][0])
        panel.margins(0.12)
        panel.grid(alpha=0.3)
    fig.colorbar(dots, ax=[p for p, _ in panels], label="layers frozen (grey dots: the layer subsets)", shrink=0.6,
                 ticks=range(levels))
    what = METRICS.get(x, x) + (" (lower is better)" if lower_x else " (higher is better)")
    how = METRICS.get(y, y) + ", mean over seeds"
    heading = title or (f"The {len(grid)} layer subsets (grey; black steps: their front) and the rules, one panel per "
                        "family (black X: full fine-tuning)")
    if ax is None:
        fig.supxlabel(what)
        fig.supylabel(how)
        fig.suptitle(heading, fontsize=11)
    else:
        ax.set_xlabel(what)
        ax.set_ylabel(how)
        ax.set_title(heading, fontsize=10)
    fig.draw_without_rendering()  # the layout settles first: labels are placed where the axes will be
    reference = rules.loc[rules.index == REFERENCE]
    for panel, (_, part) in panels:
        _draw_rules(panel, pd.concat([part.drop(REFERENCE, errors="ignore"), reference]), x, y)
    return fig


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
    fit_titles(ax.figure)
    return ax.figure
