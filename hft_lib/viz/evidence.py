"""Figures for multi-seed evidence: each claim's paired difference with its interval, and per-variant means."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..measure.stats import REFUTED, SUPPORTED
from .plots import fit_titles

COLOURS = {SUPPORTED: "tab:green", REFUTED: "tab:red"}


def plot_claims(table: pd.DataFrame, ax=None, title: str | None = None):
    """Forest plot: one row per claim, its paired difference and 95 % interval, the margin band, coloured by verdict.

    The verdict and the unit of each row (rows of different metrics share the x axis) are written right of the axes,
    in a margin as wide as the longest of them; alone in its figure, the title is centred on the figure, above the
    claim names too.
    """
    from matplotlib.transforms import blended_transform_factory

    from ..experiments.evidence import SCALE
    from .plots import wrap_to_width

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.55 * len(table) + 1.4))
    fig = ax.figure
    notes = []
    for y, r in enumerate(table.itertuples()):
        scale, unit = SCALE.get(r.metric, (1, ""))
        colour = COLOURS.get(r.verdict, "tab:grey")
        ax.errorbar(r.diff * scale, y, xerr=[[(r.diff - r.ci_low) * scale], [(r.ci_high - r.diff) * scale]], fmt="o",
                    color=colour, capsize=4)
        if r.margin:
            ax.fill_betweenx([y - 0.3, y + 0.3], -r.margin * scale, r.margin * scale, color="tab:blue", alpha=0.15, lw=0)
        verdict = r.verdict.split(":")[0]  # "not testable here: why" -> the why is in the verdict table
        notes.append(ax.annotate(f"{verdict} ({unit})", (1.02, y), xycoords=("axes fraction", "data"), va="center",
                                 fontsize=8, color=colour, annotation_clip=False))
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(table)), [f"{r.claim}: {r.candidate} vs {r.reference}" for r in table.itertuples()], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("candidate - reference, paired over seeds\n(unit right of each row; 95 % interval; shaded: the equivalence margin)")
    heading = ax.set_title(title or "Each claim's paired difference: green supported, red refuted, grey not resolved")
    if len(fig.axes) == 1:  # its own figure: the title centred on it, over the claim names as well as the axes
        heading.set_transform(blended_transform_factory(fig.transFigure, ax.transAxes) + ax.titleOffsetTrans)
        heading.set_x(0.5)
    wrap_to_width(heading, 0.96 * fig.bbox.width if len(fig.axes) == 1 else ax.get_window_extent().width)
    for note in notes:  # out of tight_layout, which cannot place text beside the axes; the margin is made below
        note.set_in_layout(False)
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    widest = max((n.get_window_extent(renderer).width for n in notes), default=0)
    right = 1 - (widest + 0.02 * ax.get_window_extent().width + 6) / fig.bbox.width
    fig.subplots_adjust(right=min(fig.subplotpars.right, right))
    for note in notes:  # inside the canvas now: a notebook's tight crop must keep them
        note.set_in_layout(True)
    return fig


def plot_variants(summary: pd.DataFrame, metric: str = "test_accuracy", ax=None, baseline: float | None = None,
                  label: str = "test accuracy", title: str | None = None):
    """Mean of `metric` per variant with its 95 % interval (from `evidence.summary_table`), in the table's order."""
    if ax is None:
        _, ax = plt.subplots(figsize=(max(7, 1.6 * len(summary)), 4))
    x = range(len(summary))
    ax.bar(x, summary[metric], color="tab:blue", alpha=0.6)
    ax.errorbar(x, summary[metric], yerr=[summary[metric] - summary[f"{metric}_low"], summary[f"{metric}_high"] - summary[metric]],
                fmt="none", color="black", capsize=5)
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", label="majority class")
        ax.legend(loc="lower right")
    ax.set_xticks(list(x), [v.replace(", ", "\n") for v in summary.index], fontsize=8)
    ax.set_ylabel(f"{label} (mean, 95 % interval)")
    if "accuracy" in metric:
        ax.set_ylim(0, 1)
    ax.set_title(title or f"{label} over {int(summary['n'].min())} seeds")
    fit_titles(ax.figure)
    return ax.figure


def plot_curves(frame: pd.DataFrame, budgets, before: float, quality: str = "task_accuracy",
                forgetting: str = "forgetting_pct", ax=None, title: str | None = None):
    """Learning-forgetting curves: per variant, mean quality (x) against mean forgetting (y) after each budget.

    Starts every curve at the model before training (`before`, 0 % forgetting); bars are 95 % intervals over seeds.
    Every point after training is labelled with its number of steps, in its curve's colour, clear of the other labels.
    """
    from ..measure.stats import mean_ci
    from .tradeoff import place_labels

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 5))
    variants = list(frame["variant"].unique())
    points = []  # (x, y, budget, colour) of every labelled point
    for variant, group in frame.groupby("variant", sort=False):
        colour = f"C{variants.index(variant)}"
        xs, ys = [before], [0.0]
        for budget in budgets:
            (x, xl, xh), (y, yl, yh) = mean_ci(group[f"{quality}@{budget}"]), mean_ci(group[f"{forgetting}@{budget}"])
            ax.errorbar(x, y, xerr=[[x - xl], [xh - x]], yerr=[[y - yl], [yh - y]], fmt="none", alpha=0.35, capsize=2,
                        color=colour)
            xs.append(x)
            ys.append(y)
            points.append((x, y, str(budget), colour))
        ax.plot(xs, ys, "o-", label=variant, color=colour)
    ax.axvline(before, color="grey", ls="--", lw=1)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("held-out task accuracy (mean over seeds; dashed: before training)")
    ax.set_ylabel("news perplexity change, % (lower = less forgetting)")
    steps = ", ".join(map(str, budgets[:-1])) + (" and " if len(budgets) > 1 else "") + str(budgets[-1])
    ax.set_title(title or f"Learning-forgetting curves after {steps} steps (each point labelled with its steps)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), title="variant", title_fontsize=8)
    ax.margins(0.08)
    fit_titles(ax.figure)
    xs, ys, labels, colours = zip(*points)
    for text, colour in zip(place_labels(ax, xs, ys, labels, fontsize=8), colours):
        text.set_color(colour)
    return ax.figure
