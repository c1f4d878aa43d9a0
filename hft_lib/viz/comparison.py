"""The figure `hft compare` saves for a classification comparison (`viz.tradeoff.save_decoder_comparison` for a decoder)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .plots import save_run_figure


def wilson(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of an accuracy measured on `n` test examples (one seed: the test sample is the noise)."""
    if n <= 0:
        return float("nan"), float("nan")
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def accuracy_summary(frame: pd.DataFrame) -> str:
    """"most accurate X" only where X's interval clears every other strategy's; else says nothing is separated."""
    n = int(frame["test_examples"].iloc[0]) if "test_examples" in frame else 0
    if n <= 0:
        return "test size unknown, so no interval and no winner named"
    bounds = {r.strategy: wilson(r.test_accuracy, n) for r in frame.itertuples()}
    best = frame.loc[frame["test_accuracy"].idxmax(), "strategy"]
    if len(frame) > 1 and all(bounds[best][0] > high for s, (_, high) in bounds.items() if s != best):
        return f"most accurate {best} (n = {n} test examples)"
    return f"no strategy separated from the others on {n} test examples (one seed)"


def plot_comparison(frame: pd.DataFrame, path: Path) -> None:
    """`hft compare`'s chart: test accuracy with its 95 % interval on the test size (and the majority-class line), and
    seconds per epoch, one bar per strategy; the title names a most accurate strategy only where the intervals separate it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = int(frame["test_examples"].iloc[0]) if "test_examples" in frame else 0
    errors = None
    if n > 0:
        low, high = zip(*(wilson(a, n) for a in frame["test_accuracy"]))
        errors = [frame["test_accuracy"] - pd.Series(low, index=frame.index),
                  pd.Series(high, index=frame.index) - frame["test_accuracy"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar(frame["strategy"], frame["test_accuracy"], yerr=errors, capsize=4, color="tab:blue")
    ax1.axhline(frame["majority_baseline"].iloc[0], color="grey", ls="--", label="majority class")
    ax1.set_ylabel(f"test accuracy (95 % interval, n = {n})" if n else "test accuracy")
    ax1.set_ylim(0, 1)
    ax1.legend()
    ax2.bar(frame["strategy"], frame["epoch_time_s"], color="tab:orange")
    ax2.set_ylabel("seconds per epoch")
    fastest = frame.loc[frame["epoch_time_s"].idxmin(), "strategy"]
    named = frame.assign(task=[Path(str(t)).name for t in frame["task"]])  # a file's name, not its absolute path
    save_run_figure(fig, named, f"{accuracy_summary(frame)}; fastest {fastest}", path)
