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
    ax.figure.colorbar(points, ax=ax, label=cost_label or cost)  # first: it takes its room from the axes
    ax.set_xlabel(quality_label or quality)
    ax.set_ylabel(retention_label or retention)
    if title:
        ax.set_title(title)
    ax.margins(x=0.25, y=0.15)  # room for the labels inside the axes
    place_labels(ax, frame[quality], frame[retention], frame["strategy"], sizes=sizes)
    return ax


OFFSETS = [(7, 7), (7, -14), (-7, 7), (-7, -14), (10, -3), (-10, -3), (0, 14), (0, -20), (14, 16), (-14, -26)]


def place_labels(ax, xs, ys, labels, fontsize: int = 9, sizes=None) -> list:
    """Label points without overlaps: each label takes the first offset where it lies inside the axes (not under a
    colour bar) and clear of the labels placed before it and of the other points' markers (`sizes`: scatter's s, in
    points squared); with no such offset, the first one."""
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    ax.figure.canvas.draw_idle()
    inside, placed, texts = ax.get_window_extent(renderer), [], []
    centres = ax.transData.transform(list(zip(xs, ys)))
    radii = [(s ** 0.5 / 2) * ax.figure.dpi / 72 for s in (sizes if sizes is not None else [36] * len(centres))]
    markers = [Bbox.from_extents(cx - r, cy - r, cx + r, cy + r) for (cx, cy), r in zip(centres, radii)]
    for i, (x, y, label) in enumerate(zip(xs, ys, labels)):
        others = placed + [m for j, m in enumerate(markers) if j != i]
        for n, (dx, dy) in enumerate([*OFFSETS, OFFSETS[0]]):
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                               ha="left" if dx >= 0 else "right")
            box = text.get_window_extent(renderer)
            fits = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
            if n == len(OFFSETS) or (fits and not any(box.overlaps(other) for other in others)):
                placed.append(box)
                texts.append(text)
                break
            text.remove()
    return texts


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
