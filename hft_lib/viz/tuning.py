"""The rate-response figure: each strategy's validation accuracy against its peak learning rate, with the rate
`experiments.tuning.select_rates` chose ringed; strategies grouped by kind in small multiples so lines stay legible."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

PANELS = {  # kind of strategy -> its members in the tuning sweep (at most 6 lines a panel: distinct colours and markers)
    "layer patterns": ("full", "lower_half", "upper_half", "alternate", "alternate_odd"),
    "inside every layer": ("hft_paper", "lora", "bitfit", "attention_only", "ffn_only", "head_only"),
    "during training": ("gradual_bottom_up", "gradual_top_down", "lisa", "autofreeze", "auto_rgn", "auto_rgn_body"),
}
STYLES = [("tab:blue", "o"), ("tab:orange", "s"), ("tab:green", "^"), ("tab:red", "D"), ("tab:purple", "v"),
          ("tab:brown", "P")]


def plot_rate_response(selection: pd.DataFrame, title: str | None = None, metric_label: str = "validation accuracy"):
    """One panel per kind of strategy: mean `metric_label` over the tuning seeds against the (effective) peak rate, a
    ring at each selected rate. `selection`: `tuning.select_rates(...)`. Returns the figure."""
    panels = {name: [v for v in selection.index if selection.loc[v, "strategy"] in members]
              for name, members in PANELS.items()}
    panels = {k: v for k, v in panels.items() if v}
    rows = (len(panels) + 1) // 2  # two panels a row: 9.4 in, the width a notebook shows at full size
    fig, axes = plt.subplots(rows, 2, figsize=(9.4, 3.6 * rows), sharey=True, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (name, variants) in zip(axes.flat, panels.items()):
        for (colour, marker), variant in zip(STYLES, variants):
            row = selection.loc[variant]
            scale = row["effective_lr"] / row["lr"]  # LoRA: the adapters' rate
            rates = sorted(row["curve"])
            ax.plot([r * scale for r in rates], [row["curve"][r] for r in rates], marker=marker, color=colour,
                    label=row["strategy"], lw=1.5, ms=5)
            ax.scatter([row["effective_lr"]], [row["mean"]], s=180, facecolors="none", edgecolors=colour, linewidths=1.5)
        ax.set_xscale("log")
        ax.set_xlabel("peak learning rate (LoRA: its adapters')")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
    for row in axes:
        row[0].set_ylabel(f"{metric_label}\n(mean over tuning seeds)")
    fig.suptitle(title or "Each strategy has its own best rate (rings: the selected one)", fontsize=11)
    fig.tight_layout()
    return fig
