"""Trade-off figures: task quality against retention, one labelled point per strategy, sized and coloured by cost."""

from __future__ import annotations


def plot_quality_retention(frame, quality: str, retention: str, cost: str, ax=None, title: str | None = None,
                  quality_label: str | None = None, retention_label: str | None = None, cost_label: str | None = None):
    """Scatter of task quality (x) against retention (y), one labelled point per strategy, size and colour = cost."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4.5))[1]
    costs = frame[cost].astype(float)
    sizes = 60 + 440 * (costs - costs.min()) / max(costs.max() - costs.min(), 1e-12)
    points = ax.scatter(frame[quality], frame[retention], s=sizes, c=costs, cmap="viridis", alpha=0.8, edgecolors="k")
    for _, row in frame.iterrows():
        ax.annotate(row["strategy"], (row[quality], row[retention]), textcoords="offset points", xytext=(6, 6), fontsize=9)
    ax.figure.colorbar(points, ax=ax, label=cost_label or cost)
    ax.set_xlabel(quality_label or quality)
    ax.set_ylabel(retention_label or retention)
    if title:
        ax.set_title(title)
    return ax


def save_decoder_comparison(frame, path) -> None:
    """The console command's figure for a decoder comparison: accuracy vs forgetting, and time per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import save_run_figure

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    plot_quality_retention(frame, "task_accuracy", "forgetting_pct", "step_time_s", ax=ax1, quality_label="held-out task accuracy",
                  retention_label="news perplexity change (%, lower = less forgetting)", cost_label="seconds per step")
    ax1.axvline(frame["task_accuracy_before"].iloc[0], color="grey", ls="--", lw=1)
    ax2.bar(frame["strategy"], frame["step_time_s"], color="tab:orange")
    ax2.set_ylabel("seconds per optimiser step")
    ax2.tick_params(axis="x", rotation=30)
    best = frame.loc[frame["task_accuracy"].idxmax(), "strategy"]
    least = frame.loc[frame["forgetting_pct"].idxmin(), "strategy"]
    save_run_figure(fig, frame, f"most accurate {best}, least forgetting {least}", path)
