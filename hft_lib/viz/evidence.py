"""Figures for multi-seed evidence: each claim's paired difference with its interval, and per-variant means."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..measure.stats import REFUTED, SUPPORTED

COLOURS = {SUPPORTED: "tab:green", REFUTED: "tab:red"}


def plot_claims(table: pd.DataFrame, ax=None, title: str | None = None):
    """Forest plot: one row per claim, its paired difference and 95 % interval, the margin band, coloured by verdict."""
    from ..experiments.evidence import SCALE

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.55 * len(table) + 1.2))
    for y, r in enumerate(table.itertuples()):
        scale, unit = SCALE.get(r.metric, (1, ""))
        colour = COLOURS.get(r.verdict, "tab:grey")
        ax.errorbar(r.diff * scale, y, xerr=[[(r.diff - r.ci_low) * scale], [(r.ci_high - r.diff) * scale]], fmt="o",
                    color=colour, capsize=4)
        if r.margin:
            ax.fill_betweenx([y - 0.3, y + 0.3], -r.margin * scale, r.margin * scale, color="tab:blue", alpha=0.15, lw=0)
        verdict = r.verdict.split(":")[0]  # "not testable here: why" -> the why is in the verdict table
        note = ax.annotate(f"{verdict} ({unit})", (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8,
                           color=colour, annotation_clip=False)
        note.set_in_layout(False)  # placed in the margin kept free below, not squeezed into by tight_layout
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(table)), [f"{r.claim}: {r.candidate} vs {r.reference}" for r in table.itertuples()], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("candidate - reference, paired over seeds (95 % interval; shaded: the equivalence margin)")
    ax.set_title(title or "Each claim's paired difference: green supported, red refuted, grey not resolved")
    ax.figure.tight_layout()
    ax.figure.subplots_adjust(right=0.72)  # room for the verdicts written right of the axes
    return ax.figure


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
    ax.figure.tight_layout()
    return ax.figure


def plot_curves(frame: pd.DataFrame, budgets, before: float, quality: str = "task_accuracy",
                forgetting: str = "forgetting_pct", ax=None, title: str | None = None):
    """Learning-forgetting curves: per variant, mean quality (x) against mean forgetting (y) after each budget.

    Starts every curve at the model before training (`before`, 0 % forgetting); bars are 95 % intervals over seeds.
    """
    from ..measure.stats import mean_ci

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5))
    for variant, group in frame.groupby("variant", sort=False):
        xs, ys = [before], [0.0]
        for budget in budgets:
            (x, xl, xh), (y, yl, yh) = mean_ci(group[f"{quality}@{budget}"]), mean_ci(group[f"{forgetting}@{budget}"])
            ax.errorbar(x, y, xerr=[[x - xl], [xh - x]], yerr=[[y - yl], [yh - y]], fmt="none", alpha=0.35, capsize=2,
                        color=f"C{list(frame['variant'].unique()).index(variant)}")
            xs.append(x)
            ys.append(y)
        line, = ax.plot(xs, ys, "o-", label=variant, color=f"C{list(frame['variant'].unique()).index(variant)}")
        ax.annotate(f"{budgets[-1]}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(4, 4), fontsize=7,
                    color=line.get_color())
    ax.axvline(before, color="grey", ls="--", lw=1)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("held-out task accuracy (mean over seeds)")
    ax.set_ylabel("news perplexity change, % (lower = less forgetting)")
    ax.set_title(title or f"Learning-forgetting curves after {', '.join(map(str, budgets))} steps")
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure
