"""Which parts a freeze pattern trains, and what the backward pass must still do, drawn per layer.

One cell per part (embeddings at the bottom, then layer 0 ... n-1, then the head), coloured by
what a training step does there:

    trainable                 weights get gradients and are updated
    frozen, gradient passes   weights stay put, but the gradient must still flow down through this
                              layer to reach a trainable part below it: backward compute, nothing learned
    frozen, skipped           below every trainable part: no autograd graph, no backward at all

`freeze_plan` works out these states with the library's own `Finetuner` (on the model you pass,
whose `requires_grad` flags it restores) and `costmodel.trainable_state`; `draw_freeze_map` draws
one or more patterns side by side and needs nothing but matplotlib, so a notebook run headless
(nbval, CI) draws the default. `freeze_pattern_picker` adds an ipywidgets control that redraws the
map and the counts for the pattern a reader picks; without ipywidgets it draws the default instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch import nn

from ..freezing import EMBEDDING_CHOICES, PATTERNS, Finetuner, FreezePattern
from ..measure.costmodel import trainable_state
from ..tracing import split_model

STATES = ("trainable", "frozen, gradient passes", "frozen, skipped")
STATE_COLORS = {"trainable": "#2a9d8f", "frozen, gradient passes": "#f4a261", "frozen, skipped": "#d9d9d9"}


def freeze_plan(model: nn.Module, pattern: FreezePattern, embeddings: str = "auto") -> pd.DataFrame:
    """Per part (embeddings, layer 0..n-1, head): parameters, trainable ones and what the backward pass does.

    The model is left exactly as it was (its `requires_grad` flags are restored).
    """
    flags = [p.requires_grad for p in model.parameters()]
    try:
        ft = Finetuner(model, pattern, embeddings=embeddings, verbose=False)
        plan = ft.summary()
        # counted once each (a tied LM head shares the embeddings' weight but appears in both rows)
        plan.attrs.update(trainable_params=ft.trainable_parameter_count(), total_params=ft.total_parameter_count())
        reached = [r for r, _ in trainable_state(model, ft.parts)]  # the Finetuner's own (traced) split
    finally:
        for param, flag in zip(model.parameters(), flags):
            param.requires_grad_(flag)
    plan["state"] = [
        "trainable" if trainable > 0 else ("frozen, gradient passes" if on_path else "frozen, skipped")
        for trainable, on_path in zip(plan["trainable"], reached)
    ]
    plan.attrs["pattern"] = ft.pattern_name
    plan.attrs["embeddings"] = embeddings
    return plan


def plan_counts(plan: pd.DataFrame) -> dict[str, int | float]:
    """The numbers under a map: trainable parameters and share, and layers per backward-pass state."""
    layers = plan[plan.index.str.startswith("layer ")]
    trainable, total = plan.attrs["trainable_params"], plan.attrs["total_params"]
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_pct": 100 * trainable / total,
        "trainable_layers": int((layers["state"] == "trainable").sum()),
        "pass_through_layers": int((layers["state"] == "frozen, gradient passes").sum()),
        "skipped_layers": int((layers["state"] == "frozen, skipped").sum()),
        "backward_layers": int((layers["state"] != "frozen, skipped").sum()),
        "n_layers": len(layers),
    }


def describe_plan(plan: pd.DataFrame) -> str:
    """Two short lines (a notebook breaks long ones anywhere): what a pattern trains, and how deep its backward pass goes."""
    c = plan_counts(plan)
    return (f"{plan.attrs.get('pattern', '?')}: {c['trainable_params']:,} of {c['total_params']:,} parameters trainable "
            f"({c['trainable_pct']:.1f}%);\n  backward pass goes through {c['backward_layers']} of {c['n_layers']} layers, "
            f"{c['pass_through_layers']} of them frozen (compute without learning); embeddings {plan.loc['embeddings', 'state']}")


def _short(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else (f"{n / 1e3:.1f}k" if n >= 1e3 else str(int(n)))


def draw_freeze_map(model: nn.Module, patterns: FreezePattern | Sequence[FreezePattern] = ("lower_half", "alternate"),
                    embeddings: str = "auto", title: str | None = None) -> Figure:
    """Draw the per-part map of one pattern or several side by side (a list of names); returns the Figure."""
    if isinstance(patterns, str) or callable(patterns) or (patterns and isinstance(patterns[0], int)):
        patterns = [patterns]
    plans = [freeze_plan(model, p, embeddings) for p in patterns]
    n_parts = len(plans[0])
    # Fixed margins in inches (not tight_layout): one column keeps its width however long the names, title and legend.
    left, column, legend, top, bottom, row = 1.6, 1.8, 2.4, 1.0, 0.75, 0.34  # three patterns fit 9.4 in
    width, height = left + column * len(plans) + legend, top + bottom + row * n_parts
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=(left + column * len(plans)) / width, top=1 - top / height,
                        bottom=bottom / height)
    for col, plan in enumerate(plans):
        for row, (part, info) in enumerate(plan.iterrows()):
            ax.add_patch(plt.Rectangle((col + 0.05, row + 0.05), 0.9, 0.9, color=STATE_COLORS[info["state"]], ec="white"))
            if n_parts <= 16 or row in (0, n_parts - 1):
                ax.text(col + 0.5, row + 0.5, f"{_short(info['trainable'])} / {_short(info['parameters'])}",
                        ha="center", va="center", fontsize=8)
        c = plan_counts(plan)
        ax.annotate(f"{c['trainable_pct']:.1f}% trainable\nbackward: {c['backward_layers']}/{c['n_layers']} layers",
                    (col + 0.5, 0), xytext=(0, -4), textcoords="offset points", ha="center", va="top", fontsize=8,
                    annotation_clip=False)
    names = list(plans[0].index)
    step = 1 if n_parts <= 16 else max(1, n_parts // 12)
    ticks = sorted({*range(0, n_parts, step), n_parts - 1})
    ax.set_yticks([r + 0.5 for r in ticks], [names[r] for r in ticks])
    ax.set_xticks([c + 0.5 for c in range(len(plans))], [p.attrs["pattern"] for p in plans])
    ax.xaxis.tick_top()
    ax.set_xlim(0, len(plans))
    ax.set_ylim(0, n_parts)
    ax.set_ylabel("part of the model (input at the bottom)")
    for side in ("right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.legend(handles=[Patch(color=STATE_COLORS[s], label=s) for s in STATES], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=8, title="cells: trainable / all params", title_fontsize=8)
    if title is None:
        deepest = max(plans, key=lambda p: plan_counts(p)["pass_through_layers"])
        k = plan_counts(deepest)["pass_through_layers"]
        title = (f"{deepest.attrs['pattern']}: gradients cross {k} frozen layer{'s' * (k != 1)} to reach trainable ones"
                 if k else "No frozen layer sits on the gradient path")
    fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return fig


def with_text_fallback(widget, text: str):
    """Give `widget` a readable text/plain form: what a page without the widget's JavaScript shows (GitHub, an
    untrusted notebook, a saved notebook opened without a kernel) instead of one line of `VBox(children=(...`."""
    original = widget._repr_mimebundle_

    def bundle(**kwargs):
        data = original(**kwargs)
        return {**data, "text/plain": text} if isinstance(data, dict) else data

    widget._repr_mimebundle_ = bundle
    return widget


def parse_layers(text: str, n_layers: int) -> list[int]:
    """Layer indices from text such as "0, 2, 4" (what the picker's custom box accepts)."""
    try:
        indices = [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"Could not read layer indices from {text!r}; type whole numbers such as 0, 2, 4.") from None
    bad = [i for i in indices if not 0 <= i < n_layers]
    if bad:
        raise ValueError(f"Layer indices {bad} are out of range; use 0 to {n_layers - 1}.")
    return indices


def freeze_pattern_picker(model: nn.Module, default: str = "alternate", patterns: Sequence[str] = PATTERNS):
    """An ipywidgets control (pattern, custom layers, embeddings) that redraws the map and its counts.

    Returns the widget (display it, or let it be the cell's value). Without ipywidgets it draws
    the default pattern's map, prints its counts and returns None, so a notebook still runs headless.
    """
    try:
        import ipywidgets as w
        from IPython.display import display
    except ImportError:
        plan = freeze_plan(model, default)
        print(describe_plan(plan) + "\n(ipywidgets is not installed: showing the default; pip install ipywidgets for the picker.)")
        draw_freeze_map(model, default)
        return None
    n_layers = len(split_model(model).layers)
    whole = {"style": {"description_width": "initial"}}  # labels in full, not cut to a fixed width
    choice = w.Dropdown(options=[*patterns, "custom"], value=default, description="pattern", **whole)
    custom = w.Text(value="0, 2, 4", description="custom layers", placeholder="frozen layer indices, e.g. 0, 2, 4", **whole)
    emb = w.ToggleButtons(options=list(EMBEDDING_CHOICES), value="auto", description="embeddings", **whole)
    out = w.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            try:
                pattern = parse_layers(custom.value, n_layers) if choice.value == "custom" else choice.value
                plan = freeze_plan(model, pattern, emb.value)
            except ValueError as err:
                print(err)
                return
            print(describe_plan(plan))
            fig = draw_freeze_map(model, pattern, emb.value)
            display(fig)
            plt.close(fig)

    for control in (choice, custom, emb):
        control.observe(redraw, names="value")
    redraw()
    return with_text_fallback(w.VBox([w.HBox([choice, custom]), emb, out]),
                              "[The freeze-pattern picker: it needs a running kernel with ipywidgets (a trusted notebook, "
                              "JupyterLab or Colab). Here it cannot run; the static map after it shows one choice.]")
