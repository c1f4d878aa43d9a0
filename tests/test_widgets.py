"""The freeze map says what a pattern trains and where the backward pass goes; the picker redraws it."""

import builtins

import matplotlib.pyplot as plt
import pytest

from hft_lib import Finetuner
from hft_lib.viz.widgets import draw_freeze_map, freeze_pattern_picker, freeze_plan, parse_layers, plan_counts

from .conftest import tiny_batches, tiny_bert


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def states(plan):
    return dict(zip(plan.index, plan["state"]))


def test_alternate_sends_gradients_through_frozen_layers_and_lower_half_does_not():
    model = tiny_bert(layers=6)
    alternate, lower = freeze_plan(model, "alternate"), freeze_plan(model, "lower_half")
    assert states(alternate)["layer 0"] == states(alternate)["embeddings"] == "frozen, skipped"
    assert [states(alternate)[f"layer {i}"] for i in (2, 4)] == ["frozen, gradient passes"] * 2
    assert [states(alternate)[f"layer {i}"] for i in (1, 3, 5)] == ["trainable"] * 3
    assert set(lower["state"].iloc[:4]) == {"frozen, skipped"}
    a, b = plan_counts(alternate), plan_counts(lower)
    assert a["trainable_params"] == b["trainable_params"]  # same number of layers trained...
    assert (a["backward_layers"], b["backward_layers"]) == (5, 3)  # ...but a deeper backward pass
    assert (a["pass_through_layers"], b["pass_through_layers"]) == (2, 0)


def test_trainable_embeddings_put_every_layer_on_the_gradient_path():
    counts = plan_counts(freeze_plan(tiny_bert(layers=6), "lower_half", embeddings="trainable"))
    assert counts["backward_layers"] == 6 and counts["pass_through_layers"] == 3


def test_counts_match_the_finetuner_and_the_model_is_left_untouched():
    model = tiny_bert(layers=4)
    Finetuner(model, "lower_half", verbose=False)
    flags = [p.requires_grad for p in model.parameters()]
    counts = plan_counts(freeze_plan(model, "alternate"))
    assert [p.requires_grad for p in model.parameters()] == flags
    assert counts["trainable_params"] == Finetuner(tiny_bert(layers=4), "alternate", verbose=False).trainable_parameter_count()


def test_map_draws_one_column_per_pattern_and_titles_the_finding():
    fig = draw_freeze_map(tiny_bert(layers=6), ["full", "lower_half", "alternate"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["full", "lower_half", "alternate"]
    assert len(ax.patches) == 3 * 8  # embeddings + 6 layers + head per column
    title = fig.texts[0].get_text()  # a figure title: one column keeps its width whatever the title's length
    assert "alternate" in title and "2 frozen layers" in title


def test_custom_layers_are_parsed_and_bad_ones_explained():
    assert parse_layers("0, 2 4", 6) == [0, 2, 4]
    with pytest.raises(ValueError, match="out of range"):
        parse_layers("7", 6)
    with pytest.raises(ValueError, match="whole numbers"):
        parse_layers("a", 6)


def test_picker_redraws_the_counts_when_the_pattern_changes(capsys):
    pytest.importorskip("ipywidgets")
    picker = freeze_pattern_picker(tiny_bert(layers=6), default="alternate")
    assert "alternate: " in capsys.readouterr().out  # outside a kernel the Output widget passes prints through
    choice, custom = picker.children[0].children
    choice.value = "lower_half"
    assert "backward pass goes through 3 of 6 layers" in capsys.readouterr().out
    custom.value, choice.value = "1, 3", "custom"
    assert "layers [1, 3]: " in capsys.readouterr().out
    custom.value = "9"
    assert "out of range" in capsys.readouterr().out


def test_without_ipywidgets_the_picker_draws_the_default(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_widgets)
    assert freeze_pattern_picker(tiny_bert(layers=6), default="lower_half") is None
    assert "lower_half" in capsys.readouterr().out


def test_unfreezing_maps_show_stage_boundaries_and_the_first_layer_of_each_direction():
    from hft_lib import GradualUnfreezing, UnfreezeSchedule, fit
    from hft_lib.viz import plots

    histories = {}
    for direction in ("bottom_up", "top_down"):
        ft = Finetuner(tiny_bert(layers=4), "head_only", verbose=False)
        histories[direction] = fit(ft, tiny_batches(n=5), epochs=2, lr=1e-3, progress=False,
                                   callbacks=[GradualUnfreezing(UnfreezeSchedule(direction, stage_length=2, unit="step"))])
    assert plots.stage_boundaries(histories["bottom_up"]) == [2, 4, 6, 8]
    fig = plots.plot_trainable_layers(histories, n_layers=4)
    assert "bottom_up: layer 0 first" in fig._suptitle.get_text() and "top_down: layer 3 first" in fig._suptitle.get_text()
    fig = plots.plot_training_curves(histories)
    assert len([line for line in fig.axes[0].lines if line.get_linestyle() == ":"]) == 4  # one per stage boundary


def _inside(inner, outer) -> bool:
    return outer.x0 <= inner.x0 and inner.x1 <= outer.x1 and outer.y0 <= inner.y0 and inner.y1 <= outer.y1


def test_a_single_pattern_map_keeps_its_cells_wide_enough_for_their_counts():
    fig = draw_freeze_map(tiny_bert(layers=6), "alternate")
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    cell_width = ax.transData.transform((0.9, 0))[0] - ax.transData.transform((0, 0))[0]
    counts = [t for t in ax.texts if "/" in t.get_text()]
    assert counts and all(t.get_window_extent(renderer).width < cell_width for t in counts)
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1  # beside the map, not over it
    assert _inside(fig.texts[0].get_window_extent(renderer), fig.bbox)  # the title is not cut off


def test_trade_off_labels_stay_inside_the_axes_and_clear_of_each_other():
    import pandas as pd

    from hft_lib.viz.tradeoff import plot_quality_retention

    frame = pd.DataFrame({"strategy": ["full", "alternate", "alternate_odd", "hft_paper", "lower_half", "upper_half"],
                          "q": [0.88, 0.82, 0.84, 0.81, 0.83, 0.62], "r": [103, 104, 101, 105.5, 110, 82],
                          "cost": [1.0, 0.6, 0.6, 0.9, 0.4, 0.6]})
    ax = plot_quality_retention(frame, "q", "r", "cost")
    renderer = ax.figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == 6 and all(_inside(b, ax.get_window_extent(renderer)) for b in boxes)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_a_widget_saved_without_its_javascript_reads_as_a_sentence_not_a_vbox_repr():
    pytest.importorskip("ipywidgets")
    picker = freeze_pattern_picker(tiny_bert(layers=4))
    data = picker._repr_mimebundle_()
    assert data["text/plain"].startswith("[The freeze-pattern picker") and "VBox" not in data["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in data  # a live kernel still gets the widget
    plt.close("all")
