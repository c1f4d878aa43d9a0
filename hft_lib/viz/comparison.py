"""The figure `hft compare` saves for a classification comparison (`viz.tradeoff.save_decoder_comparison` for a decoder)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .plots import save_run_figure


def plot_comparison(frame: pd.DataFrame, path: Path) -> None:
    """`hft compare`'s chart: test accuracy (with the majority-class line) and seconds per epoch, one bar per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar(frame["strategy"], frame["test_accuracy"], color="tab:blue")
    ax1.axhline(frame["majority_baseline"].iloc[0], color="grey", ls="--", label="majority class")
    ax1.set_ylabel("test accuracy")
    ax1.set_ylim(0, 1)
    ax1.legend()
    ax2.bar(frame["strategy"], frame["epoch_time_s"], color="tab:orange")
    ax2.set_ylabel("seconds per epoch")
    best = frame.loc[frame["test_accuracy"].idxmax(), "strategy"]
    fastest = frame.loc[frame["epoch_time_s"].idxmin(), "strategy"]
    save_run_figure(fig, frame, f"most accurate {best}, fastest {fastest}", path)
