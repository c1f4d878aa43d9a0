"""Plots the notebooks draw: per-layer probes, per-layer change, strategy comparisons, train-size sweeps.

Every function takes plain pandas objects (what `ProbeSuite`, `similarity` and `run_classification`
return), draws one message per figure with labelled axes, and returns the `Figure`. The default
title states what the numbers show (computed from them); pass `title=` to write your own.
"""

from __future__ import annotations

from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

LAYER_LABEL = "hidden state (0 = embeddings output, k = output of layer k-1)"
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def wrap_to_width(text, width_px: float) -> None:
    """Break `text` (a matplotlib Text) at spaces into lines no wider than `width_px`, as even as that many lines
    allow (no lone last word); its own line breaks stay."""
    renderer = text.figure.canvas.get_renderer()

    def width(line: str) -> float:
        text.set_text(line)
        return text.get_window_extent(renderer).width

    def greedy(words: list[str], room: float) -> list[str]:
        lines = [words[0]]
        for word in words[1:]:
            if width(f"{lines[-1]} {word}") > room:
                lines.append(word)
            else:
                lines[-1] = f"{lines[-1]} {word}"
        return lines

    out = []
    for paragraph in text.get_text().split("\n"):
        words = paragraph.split(" ")
        lines = greedy(words, width_px)
        room = width(paragraph) / len(lines)
        while len(lines) > 1 and room < width_px:  # the narrowest room that needs no more lines: even lines
            even = greedy(words, room)
            if len(even) <= len(lines):
                lines = even
                break
            room *= 1.05
        out += lines
    text.set_text("\n".join(out))


def fit_titles(fig: Figure) -> None:
    """Lay `fig` out (tight_layout) with every title no wider than its room: an axes title its axes, a suptitle
    the figure. Titles first fit the figure, so that the layout does not squeeze the axes to make room for them."""
    titles = [(t, ax) for ax in fig.axes for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()]
    titles += [(fig._suptitle, None)] if fig._suptitle is not None and fig._suptitle.get_text() else []
    texts = [t.get_text() for t, _ in titles]
    for title, _ in titles:
        wrap_to_width(title, 0.96 * fig.bbox.width)
    fig.tight_layout()
    for (title, ax), text in zip(titles, texts):
        if ax is not None:
            title.set_text(text)
            wrap_to_width(title, ax.get_window_extent().width)
    fig.tight_layout()


def slant_crowded_ticks(ax) -> None:
    """Slant the x tick labels of `ax` (30 degrees, anchored at their tick) where side by side they would touch."""
    renderer = ax.figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    if any(a.x1 + 2 > b.x0 for a, b in pairwise(boxes)):
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")


def _layer_ticks(ax, index) -> None:
    ax.set_xticks(list(index))
    ax.grid(alpha=0.3)


def _strategy_colors(names) -> dict[str, str]:
    return {name: COLORS[i % len(COLORS)] for i, name in enumerate(dict.fromkeys(names))}


def plot_layer_probes(before: pd.DataFrame, after: pd.DataFrame | None = None, chance: dict[str, float] | None = None,
                      title: str | None = None) -> Figure:
    """Linear-probe accuracy per layer and task (`ProbeSuite.score_layers` frames: rows = layer, columns = task).

    Args:
        before: scores of the pretrained model (solid lines).
        after: optional scores of the fine-tuned model (dashed lines, same colours).
        chance: optional majority-class accuracy per task (dotted horizontal lines).
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, task in enumerate(before.columns):
        color = COLORS[i % len(COLORS)]
        ax.plot(before.index, before[task], "o-", color=color, label=f"{task} (pretrained)")
        if after is not None and task in after:
            ax.plot(after.index, after[task], "s--", color=color, label=f"{task} (fine-tuned)")
        if chance and task in chance:
            ax.axhline(chance[task], color=color, ls=":", lw=1)
    _layer_ticks(ax, before.index)
    ax.set_xlabel(LAYER_LABEL)
    ax.set_ylabel("linear-probe test accuracy (fraction)")
    if title is None:
        best = ", ".join(f"{task} at hidden state {before[task].idxmax()}" for task in before.columns)
        title = f"Pretrained features are most linearly decodable: {best}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2 if after is not None else 1, loc="best")
    fit_titles(fig)
    return fig


def plot_layer_change(cka: pd.DataFrame | pd.Series, weight_change: pd.Series, title: str | None = None) -> Figure:
    """How much each layer moved in fine-tuning: linear CKA (pretrained vs fine-tuned) and relative weight change.

    Args:
        cka: per hidden state (index 0 = embeddings output), one column per input set; 1 = representation unchanged.
        weight_change: `similarity.relative_weight_change` (embeddings, layer 0, layer 1, ...).
    """
    cka = cka.to_frame("CKA") if isinstance(cka, pd.Series) else cka
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.4, 4.2))  # a notebook shows it at full size, not scaled down
    for i, column in enumerate(cka.columns):
        left.plot(cka.index, cka[column], "o-", color=COLORS[i % len(COLORS)], label=str(column))
    _layer_ticks(left, cka.index)
    left.set_xlabel(LAYER_LABEL)
    left.set_ylabel("linear CKA, pretrained vs fine-tuned\n(1 = unchanged)")
    left.set_ylim(min(0.0, float(np.nanmin(cka.values)) - 0.05), 1.02)
    left.legend(fontsize=8, title="inputs", title_fontsize=8)
    right.bar(range(len(weight_change)), 100 * weight_change.values, color=COLORS[3])
    right.set_xticks(range(len(weight_change)), [str(p).replace("layer ", "L").replace("embeddings", "emb")
                                                 for p in weight_change.index])
    right.set_xlabel("part of the model (emb: embeddings; L: layer)")
    right.set_ylabel("relative weight change (%)")
    right.grid(axis="y", alpha=0.3)
    if title is None:
        first, last = cka.iloc[0].mean(), cka.iloc[-1].mean()
        moved = weight_change.idxmax()
        trend = "more" if last < first else "less"
        title = (f"Fine-tuning changes representations {trend} with depth (CKA {first:.2f} at the embeddings, "
                 f"{last:.2f} at the top); weights moved most in {moved}")
    fig.suptitle(title, fontsize=10)
    fit_titles(fig)
    return fig


def stage_boundaries(history) -> list[int]:
    """Steps at which the set of trainable layers changed, i.e. where a new unfreezing stage began."""
    steps = history.steps
    return [steps[i]["step"] for i in range(1, len(steps)) if steps[i]["trainable_layers"] != steps[i - 1]["trainable_layers"]]


def plot_training_curves(histories: dict, smooth: int = 8, linestyles: dict[str, str] | None = None,
                         title: str | None = None) -> Figure:
    """Training loss per step, one line per run (faint: raw; bold: rolling mean), stage boundaries dotted.

    The boundaries drawn are those of the first run that has any (pass runs with the same stage length).
    """
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    colors = _strategy_colors(histories)
    final = {}
    for name, history in histories.items():
        frame = history.step_frame
        mean = frame["loss"].rolling(smooth, min_periods=1).mean()
        final[name] = float(mean.iloc[-1])
        ax.plot(frame["step"], frame["loss"], color=colors[name], alpha=0.15, lw=0.8)
        ax.plot(frame["step"], mean, color=colors[name], ls=(linestyles or {}).get(name, "-"), lw=1.8, label=name)
    bounds = next((b for b in map(stage_boundaries, histories.values()) if b), [])
    for i, step in enumerate(bounds, start=1):
        ax.axvline(step - 0.5, color="grey", ls=":", lw=1)
        ax.annotate(f"stage {i}", (step, 1), xycoords=("data", "axes fraction"), xytext=(2, -2), textcoords="offset points",
                    fontsize=8, color="grey", va="top", rotation=90)
    ax.set_xlabel("optimiser step (dotted: a gradual run unfreezes its next layer)")
    ax.set_ylabel(f"training loss (cross-entropy; bold = mean of last {smooth} steps)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    if title is None:
        best = min(final, key=final.get)
        title = f"Lowest final training loss: {best} ({final[best]:.2f}, mean of the last {smooth} steps)"
    ax.set_title(title, fontsize=10)
    fit_titles(fig)
    return fig


def plot_trainable_layers(histories: dict, n_layers: int, title: str | None = None) -> Figure:
    """Which transformer layers were trainable at each step, one strip per run (History.steps' `trainable_layers`)."""
    from matplotlib.colors import ListedColormap

    fig, axes = plt.subplots(len(histories), 1, figsize=(8.5, 0.6 + 1.1 * len(histories)), sharex=True, squeeze=False)
    first = {}
    for ax, (name, history) in zip(axes[:, 0], histories.items()):
        grid = np.zeros((n_layers, len(history.steps)))
        for j, step in enumerate(history.steps):
            grid[list(step["trainable_layers"]), j] = 1
        ax.imshow(grid, aspect="auto", origin="lower", interpolation="nearest", vmin=0, vmax=1,
                  cmap=ListedColormap(["#d9d9d9", "#2a9d8f"]), extent=(-0.5, grid.shape[1] - 0.5, -0.5, n_layers - 0.5))
        ax.set_yticks(range(n_layers))
        ax.tick_params(axis="y", labelsize=8)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        sets = [list(s["trainable_layers"]) for s in history.steps if s["trainable_layers"]]
        first[name] = ("none" if not sets else "all from step 0" if len(sets[0]) == n_layers
                       else f"layer{'s' * (len(sets[0]) > 1)} {', '.join(map(str, sets[0]))} first")
    axes[-1, 0].set_xlabel("optimiser step (green: layer trainable; rows: layer 0 = input side, bottom)")
    if title is None:
        title = "Trainable layers per step: " + "; ".join(f"{n}: {f}" for n, f in first.items())
    fig.suptitle(title, fontsize=10)
    fit_titles(fig)
    return fig


def title_run_figure(fig: Figure, frame: pd.DataFrame, summary: str) -> Figure:
    """Title a console-command figure "<model> on <task>: <summary>" and lay it out legibly (titles wrapped,
    crowded strategy names slanted)."""
    fig.suptitle(f"{frame['model'].iloc[0]} on {frame['task'].iloc[0]}: {summary}")
    fig.tight_layout()
    for ax in fig.axes:  # many strategies: their names slanted, not printed over each other
        slant_crowded_ticks(ax)
    fit_titles(fig)
    return fig


def save_run_figure(fig: Figure, frame: pd.DataFrame, summary: str, path) -> None:
    """Title and lay out a console-command figure (`title_run_figure`), save it to `path` and close it."""
    title_run_figure(fig, frame, summary)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_layer_intervals(summary: pd.DataFrame, title: str | None = None) -> Figure:
    """`experiments.layers.summary` as three panels, each point a mean over the seeds with its 95 % interval: CKA
    (pretrained vs fine-tuned), relative weight change, and held-out probe accuracy (pretrained, and its change after
    fine-tuning), per hidden state (0 = the embeddings' output)."""
    fig, axes = plt.subplots(1, 3, figsize=(9.4, 3.9))
    x = np.asarray(summary.index, dtype=float)

    def errorbar(ax, measure, label, color):
        mean = summary[measure].astype(float)
        err = np.vstack([mean - summary[f"{measure}_low"].astype(float), summary[f"{measure}_high"].astype(float) - mean])
        ax.errorbar(x, mean, yerr=err, fmt="o-", color=color, capsize=3, label=label)

    errorbar(axes[0], "cka", "CKA", COLORS[0])
    axes[0].set_ylabel("linear CKA, pretrained vs fine-tuned")
    errorbar(axes[1], "weight_change", "weight change", COLORS[3])
    axes[1].set_ylabel("relative weight change (%)")
    errorbar(axes[2], "general", "pretrained", COLORS[1])
    axes[2].set_ylabel("held-out probe accuracy, pretrained")
    for ax in axes:
        _layer_ticks(ax, summary.index)
        ax.set_xlabel("hidden state (0: embeddings)")
        ax.grid(alpha=0.3)
    seeds = int(summary["seeds"].min())
    fig.suptitle(title or f"Per hidden state, mean of {seeds} seeds with 95 % intervals: what fine-tuning changes, "
                          "and what the pretrained layers hold for held-out tasks", fontsize=10)
    fit_titles(fig)
    fig.tight_layout()
    return fig
