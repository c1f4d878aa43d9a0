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
FARTHER = [(dx * k, dy * k) for k in (2, 3) for dx, dy in OFFSETS]  # tried when every near place is taken


def place_labels(ax, xs, ys, labels, fontsize: int = 9, sizes=None) -> list:
    """Label points without overlaps: each label takes the first offset (near ones first, then farther) where it lies
    inside the axes (not under a colour bar) and clear of the labels placed before it and of the points' markers
    (`sizes`: scatter's s, in points squared); with no such offset, the one that overlaps least. Call it once the
    layout is final (under a layout engine: after `fig.draw_without_rendering()`)."""
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    ax.get_xlim(), ax.get_ylim()  # autoscaling is lazy: settle the limits the labels are placed in
    inside, placed, texts = ax.get_window_extent(renderer), [], []
    centres = ax.transData.transform(list(zip(xs, ys)))
    radii = [(s ** 0.5 / 2) * ax.figure.dpi / 72 for s in (sizes if sizes is not None else [36] * len(centres))]
    markers = [Bbox.from_extents(cx - r, cy - r, cx + r, cy + r) for (cx, cy), r in zip(centres, radii)]

    def clash(box, others) -> float:  # pixels squared of overlap; outside the axes counts as a large overlap
        area = sum(max(0, min(box.x1, o.x1) - max(box.x0, o.x0)) * max(0, min(box.y1, o.y1) - max(box.y0, o.y0))
                   for o in others)
        fits = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
        return area + (0 if fits else 1e6)

    px = ax.figure.dpi / 72  # offsets are in points
    for x, y, label in zip(xs, ys, labels):
        others = placed + markers  # its own marker too: a label beside its point, not over it
        shapes = {}  # its box at offset (0, 0), left- and right-aligned: every candidate is one of them, shifted
        for ha in ("left", "right"):
            text = ax.annotate(label, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=fontsize, ha=ha)
            shapes[ha] = text.get_window_extent(renderer)
            text.remove()
        best = None
        for dx, dy in [*OFFSETS, *FARTHER]:
            box = shapes["left" if dx >= 0 else "right"].translated(dx * px, dy * px)
            cost = clash(box, others)
            if best is None or cost < best[0]:
                best = (cost, dx, dy, box)
            if cost == 0:
                break
        _, dx, dy, box = best
        texts.append(ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                                 ha="left" if dx >= 0 else "right"))
        placed.append(box)
    return texts


def save_decoder_comparison(frame, path) -> None:
    """The console command's figure for a decoder comparison: accuracy vs forgetting, and time per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import title_run_figure

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax1.axvline(frame["task_accuracy_before"].iloc[0], color="grey", ls="--", lw=1)
    plot_quality_retention(frame, "task_accuracy", "forgetting_pct", "step_time_s", ax=ax1, quality_label="held-out task accuracy",
                  retention_label="news perplexity change, %\n(lower = less forgetting)", cost_label="seconds per step")
    ax2.bar(frame["strategy"], frame["step_time_s"], color="tab:orange")
    ax2.set_ylabel("seconds per optimiser step")
    best = frame.loc[frame["task_accuracy"].idxmax(), "strategy"]
    least = frame.loc[frame["forgetting_pct"].idxmin(), "strategy"]
    title_run_figure(fig, frame, f"most accurate {best}, least forgetting {least}")
    for text in list(ax1.texts):  # placed before the layout moved the axes: placed again where they are now
        text.remove()
    place_labels(ax1, frame["task_accuracy"], frame["forgetting_pct"], frame["strategy"], sizes=ax1.collections[0].get_sizes())
    fig.savefig(path, dpi=120)
    plt.close(fig)
