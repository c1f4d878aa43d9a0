"""Does a figure read at a glance? `check_figure(fig)` lists what would stop a reader, as sentences.

The rules, checked on the figure as it is drawn and saved (Agg, the figure's own size and dpi):

- every text lies inside the figure: the canvas (`savefig`) and the tight box that a notebook saves
  (`bbox_inches="tight"`, which leaves out artists excluded from the layout);
- no two texts overlap (rotated texts are compared as rotated rectangles, not their bounding boxes);
- no text is set under `min_font` points (at the width it is shown, with `shown_width_px`);
- a legend has at most `max_legend` entries (more: group them, or label the marks directly);
- legend entries that share a colour differ in line style: a marker shape alone is not enough to
  match an entry to its mark.

    from hft_lib.viz.legibility import check_figure
    assert not check_figure(fig), check_figure(fig)
"""

from __future__ import annotations

from itertools import combinations
from unittest import mock

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.transforms import Bbox

MIN_FONT_PT = 8.0  # the smallest type a reader takes in without leaning in
MAX_LEGEND_ENTRIES = 8  # past this, a reader loses the match between entry and mark
TOLERANCE_PX = 1.0  # anti-aliasing: boxes that touch by a pixel do not collide
GAP_PX = 0.0  # texts may touch (their boxes hold a little space round the glyphs), never overlap
NOTEBOOK_WIDTH_PX = 960  # a notebook's output area in JupyterLab, 1400 px wide with the file browser open


def check_figure(fig: Figure, min_font: float = MIN_FONT_PT, max_legend: int = MAX_LEGEND_ENTRIES,
                 shown_width_px: float | None = None) -> list[str]:
    """The legibility problems of `fig`, one sentence each; an empty list when it reads at a glance.

    Args:
        shown_width_px: the width the figure is shown in (a notebook's output area, e.g. NOTEBOOK_WIDTH_PX): a wider
            image is shown scaled down, and its type with it. None: type is judged at the figure's own size.
    """
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)  # a figure closed after savefig has lost its canvas: check it on Agg's
    texts = drawn_texts(fig)
    scale = min(1.0, shown_width_px / _saved_box(fig).width) if shown_width_px else 1.0
    return [*_outside(fig, texts), *_overlaps(texts), *_small(texts, min_font, scale), *_legends(fig, max_legend)]


def drawn_texts(fig: Figure) -> list[tuple[Text, Bbox]]:
    """Every non-empty text the renderer draws (tick labels outside the view and clipped annotations are not drawn),
    with its box in display pixels."""
    drawn, draw = [], Text.draw

    def record(text, renderer):
        draw(text, renderer)
        if text.get_visible() and text.get_text().strip():
            drawn.append((text, text.get_window_extent(renderer)))

    with mock.patch.object(Text, "draw", record):
        fig.canvas.draw()
    return drawn


def _name(text: Text) -> str:
    words = " ".join(text.get_text().split())
    return repr(words if len(words) <= 40 else words[:39] + "…")


def _inside(box: Bbox, outer: Bbox) -> bool:
    t = TOLERANCE_PX
    return outer.x0 - t <= box.x0 and box.x1 <= outer.x1 + t and outer.y0 - t <= box.y0 and box.y1 <= outer.y1 + t


def _saved_box(fig: Figure) -> Bbox:
    """What a notebook saves (`bbox_inches="tight"`, only the artists in the layout), in display pixels."""
    import matplotlib as mpl

    tight = fig.get_tightbbox(fig.canvas.get_renderer()).padded(mpl.rcParams["savefig.pad_inches"])
    return Bbox(tight.get_points() * fig.dpi)  # inches -> pixels


def _outside(fig: Figure, texts) -> list[str]:
    tight = _saved_box(fig)
    problems = []
    for text, box in texts:
        if not _inside(box, fig.bbox):
            problems.append(f"text {_name(text)} runs off the figure (cut off by savefig)")
        elif not _inside(box, tight):
            problems.append(f"text {_name(text)} lies outside the tight box a notebook saves (cut off inline; "
                            "it is excluded from the layout)")
    return problems


def _corners(text: Text, box: Bbox) -> np.ndarray:
    """The four corners of a text's (possibly rotated) rectangle, in display pixels."""
    angle = text.get_rotation() % 180
    if angle % 90 == 0:
        return box.corners()
    rotation = text.get_rotation()
    text.set_rotation(0)
    flat = text.get_window_extent()  # the same text unrotated: its true width and height
    text.set_rotation(rotation)
    w, h = flat.width / 2, flat.height / 2
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])  # a rectangle's bounding box shares its centre
    return centre + np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) @ rot.T


def _collide(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex quadrilaterals: do they overlap (or lie closer than GAP_PX)?"""
    for poly in (a, b):
        for i in range(4):
            edge = poly[(i + 1) % 4] - poly[i]
            normal = np.array([-edge[1], edge[0]]) / (np.hypot(*edge) or 1)
            pa, pb = a @ normal, b @ normal
            if pa.max() + GAP_PX <= pb.min() or pb.max() + GAP_PX <= pa.min():
                return False
    return True


def _overlaps(texts) -> list[str]:
    shapes = [(text, box, _corners(text, box)) for text, box in texts]
    return [f"texts {_name(s)} and {_name(t)} overlap"
            for (s, sb, sc), (t, tb, tc) in combinations(shapes, 2)
            if sb.padded(GAP_PX).overlaps(tb) and _collide(sc, tc)]


def _small(texts, min_font: float, scale: float = 1.0) -> list[str]:
    by_size: dict[float, list[str]] = {}
    for text, _ in texts:
        if text.get_fontsize() * scale < min_font - 0.05:
            by_size.setdefault(round(text.get_fontsize(), 1), []).append(_name(text))
    shown = "" if scale == 1 else f" (shown at {scale:.2f} of the figure's width: {{:.1f}} pt)"
    return [f"{len(names)} text{'s' * (len(names) > 1)} in {size:g} pt{shown.format(size * scale)}, under {min_font:g}: "
            f"{', '.join(names[:4])}" + (", …" if len(names) > 4 else "") for size, names in sorted(by_size.items())]


def _entries(legend) -> list[tuple[str, list]]:
    """(label, the artists drawn as its key) per legend entry: all of them, so an error bar's marker is seen too."""
    entries = []
    for column in legend._legend_handle_box.get_children():
        for entry in column.get_children():
            key, label = entry.get_children()
            entries.append((label._text.get_text(), key.get_children()))
    return entries


def _look(artists) -> tuple[str, str, str, str]:
    """(colour, marker, line style, fill) of a legend key, as a reader sees it."""
    lines = [a for a in artists if isinstance(a, Line2D)]
    if lines:
        shown = lines[-1]  # an error bar's key draws its marker last, after the bars and caps
        styles = [a.get_linestyle() for a in lines if a.get_linestyle() not in ("", " ", "None")]
        fill = "open" if to_hex(shown.get_markerfacecolor()) != to_hex(shown.get_color()) else shown.get_fillstyle()
        return to_hex(shown.get_color()), str(shown.get_marker()), styles[0] if styles else "none", fill
    first = artists[0]
    if isinstance(first, Patch):
        return to_hex(first.get_facecolor()), "patch", str(first.get_hatch()), "full"
    colours = first.get_facecolor() if hasattr(first, "get_facecolor") else []
    return (to_hex(colours[0]) if len(colours) else "none"), type(first).__name__, "none", "full"


def _legends(fig: Figure, max_legend: int) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    problems = []
    for legend in legends:
        entries = _entries(legend)
        labels = [label for label, _ in entries]
        if len(labels) > max_legend:
            problems.append(f"a legend of {len(labels)} entries (at most {max_legend}): group them or label the marks "
                            f"directly ({', '.join(labels[:3])}, …)")
        looks = [_look(artists) for _, artists in entries]
        for (i, a), (j, b) in combinations(enumerate(looks), 2):
            if a == b:
                problems.append(f"legend entries {labels[i]!r} and {labels[j]!r} look the same ({a[0]}, marker {a[1]})")
            elif a[0] == b[0] and a[2] == b[2]:
                problems.append(f"legend entries {labels[i]!r} and {labels[j]!r} share colour {a[0]} and line style: "
                                "told apart only by marker shape")
    return problems
