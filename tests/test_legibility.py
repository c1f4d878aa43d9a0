"""Every figure the notebooks and the CLI draw reads at a glance (`viz.legibility`), drawn from the committed evidence
with the notebooks' own arguments; and each rule of the check catches the figure that breaks it."""

import importlib

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from hft_lib.experiments import evidence, oracle
from hft_lib.viz import plots
from hft_lib.viz.evidence import plot_claims, plot_curves, plot_variants
from hft_lib.viz.legibility import NOTEBOOK_WIDTH_PX, check_figure
from hft_lib.viz.oracle import plot_front, plot_layer_effects, plot_map


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def legible(fig, shown_width_px: float | None = NOTEBOOK_WIDTH_PX) -> None:
    """No problem, at the width a notebook shows the figure in (None: at its own size, as `hft compare` saves it)."""
    problems = check_figure(fig, shown_width_px=shown_width_px)
    assert not problems, "\n".join(problems)


# Each rule on a small figure that breaks it (and one that does not).

def test_a_label_left_out_of_the_layout_is_cut_off_in_the_saved_notebook_image():
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1])
    fig.subplots_adjust(right=0.5)  # room on the canvas for the note
    note = ax.annotate("a verdict in the margin", (1.02, 0.5), xycoords="axes fraction", annotation_clip=False)
    note.set_in_layout(False)  # what the forest plot did: `bbox_inches="tight"` leaves it out, and cuts it
    assert check_figure(fig) == [("text 'a verdict in the margin' lies outside the tight box a notebook saves (cut off "
                                  "inline; it is excluded from the layout)")]
    note.set_in_layout(True)
    assert check_figure(fig) == []
    fig.subplots_adjust(right=0.9)  # now the canvas ends before the note does
    assert check_figure(fig) == ["text 'a verdict in the margin' runs off the figure (cut off by savefig)"]


def test_overlapping_labels_are_reported_and_rotated_neighbours_that_do_not_touch_are_not():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], "o")
    ax.annotate("16", (1, 1), xytext=(-30, -8), textcoords="offset points")
    ax.annotate("16", (1, 1), xytext=(-28, -6), textcoords="offset points")
    assert check_figure(fig) == ["texts '16' and '16' overlap"]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["lower_half", "alternate", "alternate_odd"], [1, 2, 3])
    ax.tick_params(axis="x", rotation=30)  # their bounding boxes overlap, the rotated texts do not
    fig.tight_layout()
    assert check_figure(fig) == []


def test_type_under_eight_points_is_reported():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("small", fontsize=7)
    assert check_figure(fig) == ["1 text in 7 pt, under 8: 'small'"]
    fig, ax = plt.subplots(figsize=(14, 4))  # 1400 px of figure in a 960-px notebook column: 10 pt is shown at 7
    ax.plot([0, 1])
    fig.tight_layout()
    assert check_figure(fig) == []
    assert [p.split(":")[0] for p in check_figure(fig, shown_width_px=960)] == [
        "12 texts in 10 pt (shown at 0.69 of the figure's width"]


def test_a_legend_of_more_than_eight_entries_is_reported():
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, style in enumerate(["-", "--", ":"] * 3):
        ax.plot([0, 1], [i, i], ls=style, color=f"C{i}", label=f"rule {i}")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    assert [p.split(":")[0] for p in check_figure(fig)] == ["a legend of 9 entries (at most 8)"]


def test_legend_entries_that_share_a_colour_must_differ_in_line_style_not_only_in_marker():
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.errorbar([0], [0], xerr=[0.1], fmt="D", color="tab:red", label="head_only")
    ax.errorbar([1], [1], xerr=[0.1], fmt="v", color="tab:red", label="auto_rgn")
    ax.plot([0, 1], "o-", color="tab:blue", label="trec6 (pretrained)")
    ax.plot([1, 0], "s--", color="tab:blue", label="trec6 (fine-tuned)")  # one series, two conditions: fine
    ax.legend()
    assert check_figure(fig) == [("legend entries 'head_only' and 'auto_rgn' share colour #d62728 and line style: "
                                  "told apart only by marker shape")]


# Every figure of the notebooks, from the stored evidence (data/results) and the arguments the chapters pass.

@pytest.fixture(scope="module")
def claims():
    return evidence.verdicts()


NOTEBOOK_CLAIMS = {
    "02": ["C1", "C1-control", "C2", "C2-probes", "C4"],
    "03": ["C6", "C6-control", "C1"],
    "04": ["C3", "C3-ULMFiT", "C5"],
    "05": ["P1-decoder", "P2-decoder", "Head"],
    "06": None,  # every claim
    "07": ["LISA", "BitFit", "AutoFreeze", "Auto-RGN"],
}


@pytest.mark.parametrize("chapter", NOTEBOOK_CLAIMS)
def test_forest_plots(claims, chapter):
    ids = NOTEBOOK_CLAIMS[chapter]
    mine = claims if ids is None else claims[claims["claim"].isin(ids)]
    title = "Data-driven rules against full fine-tuning (paired over seeds)" if chapter == "07" else None
    legible(plot_claims(mine, title=title))


@pytest.mark.parametrize("experiment, variants, title", [
    ("confirm", ["full", "lower_half", "upper_half", "head_only", "head_only, pooling=mean"],
     "TREC-6 test accuracy, each at its own rate: freezing the upper half costs more than the lower"),
    ("confirm", ["full", "lower_half", "alternate", "alternate_odd"],
     "TREC-6 test accuracy, each at its own rate: even, odd, lower half and nothing frozen"),
    ("confirm", ["full", "gradual_bottom_up", "gradual_top_down"],
     "TREC-6 test accuracy, each at its own rate: all at once vs gradual"),
])
def test_variant_bars(experiment, variants, title):
    summary = evidence.summary_table(experiment=experiment, metrics=("test_accuracy",))
    shown = summary if variants is None else summary.loc[variants]
    legible(plot_variants(shown, baseline=evidence.load_results(experiment)["majority_baseline"].mean(), title=title))


def test_learning_forgetting_curves():
    stored = evidence.load_results("decoder2")
    budgets = sorted(int(c.split("@")[1]) for c in stored if c.startswith("task_accuracy@"))
    legible(plot_curves(stored, budgets, before=stored["task_accuracy_before"].mean()))


@pytest.fixture(scope="module")
def subsets():
    frame = oracle.load()
    return frame, oracle.summary(frame)


@pytest.mark.parametrize("x", ["step_time_s", "retention_cc"])
def test_oracle_fronts_name_every_rule_beside_its_marker(subsets, x):
    fig = plot_front(subsets[1], x=x)
    legible(fig)
    table = subsets[1]
    rules = table[table["frozen"].isna() | (table["label"] != table.index)]
    named = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert set(rules["label"]) <= named and "freeze:0,1" not in named  # a subset no rule names is a dot, unnamed


def test_oracle_map_and_layer_effects(subsets):
    legible(plot_map(subsets[1]))
    legible(plot_layer_effects(oracle.layer_effects(subsets[0])))


# Notebook 01's probes, CKA and weight change (its stored outputs; computing them needs the model and a fine-tuning run).
PROBES = pd.DataFrame({"trec6": [0.667, 0.677, 0.717, 0.727, 0.720, 0.750, 0.720],
                       "sms_spam": [0.987, 0.987, 0.980, 0.980, 0.973, 0.973, 0.970],
                       "movie_sentiment": [0.677, 0.653, 0.673, 0.720, 0.717, 0.750, 0.700]}).rename_axis("layer")
CHANGE = pd.DataFrame({"trec6": [0.003, 0.003, 0.023, 0.087, 0.143, 0.160, 0.170],
                       "sms_spam": [0, 0, 0.003, 0, 0.007, 0, 0.007],
                       "movie_sentiment": [0.003, -0.007, -0.013, -0.027, -0.037, -0.033, 0.020]})
CKA = pd.DataFrame({"trec6": [1.000, 0.993, 0.965, 0.856, 0.614, 0.436, 0.305],
                    "sms_spam": [1.000, 0.998, 0.994, 0.973, 0.884, 0.614, 0.342],
                    "movie_sentiment": [1.000, 0.998, 0.993, 0.967, 0.884, 0.596, 0.341]}).rename_axis("layer")
WEIGHT_CHANGE = pd.Series([0.00259, 0.01341, 0.01385, 0.01476, 0.01763, 0.02161, 0.02465],
                          index=["embeddings"] + [f"layer {i}" for i in range(6)])


def test_layer_probes_and_change():
    chance = {"trec6": 0.223, "sms_spam": 0.873, "movie_sentiment": 0.51}
    legible(plots.plot_layer_probes(PROBES, chance=chance))
    legible(plots.plot_layer_probes(PROBES, PROBES + CHANGE.values, chance=chance,
                                    title="After fine-tuning on TREC-6 (dashed), the top layers change most"))
    legible(plots.plot_layer_change(CKA, WEIGHT_CHANGE))


class _History:  # what the plots read of `training.History`: steps with loss and trainable layers
    def __init__(self, steps):
        self.steps = steps
        self.step_frame = pd.DataFrame(steps)


def _gradual_histories(n_layers: int = 6, total: int = 96) -> dict:
    """Notebook 04's two runs in shape: one layer more trainable every total // (n_layers + 1) steps."""
    stage, rng = total // (n_layers + 1), np.random.default_rng(0)
    order = {"bottom-up": list(range(n_layers)), "top-down": list(range(n_layers))[::-1]}
    return {name: _History([{"step": s, "loss": 1.8 - 0.4 * s / total * (1 + (name == "top-down")) + 0.05 * rng.normal(),
                             "trainable_layers": sorted(layers[:min(s // stage, n_layers)])} for s in range(total)])
            for name, layers in order.items()}


def test_training_curves_and_trainable_layers():
    histories = _gradual_histories()
    legible(plots.plot_training_curves(histories))
    legible(plots.plot_trainable_layers(histories, n_layers=6))


def test_freeze_maps():
    from hft_lib.exercises import tiny_classifier
    from hft_lib.viz.widgets import draw_freeze_map

    model = tiny_classifier(layers=6, num_labels=6)
    legible(draw_freeze_map(model, ["full", "lower_half", "alternate"]))
    legible(draw_freeze_map(model, "alternate", embeddings="trainable"))


def _moved(new: str, old: str, name: str):
    """`name` from module `new`, or from `old` while it still lives there."""
    try:
        return getattr(importlib.import_module(new), name)
    except (ImportError, AttributeError):
        return getattr(importlib.import_module(old), name)


@pytest.fixture(scope="module")
def strategy_runs():
    from hft_lib.experiments import frontier

    return frontier.from_evidence()


def test_quality_retention_chart(strategy_runs):  # what plot_model draws, without its title
    from hft_lib.experiments.frontier import COSTS, DECODER, RETENTION_LABEL
    from hft_lib.viz.tradeoff import plot_quality_retention

    runs = strategy_runs[(strategy_runs["model"] == DECODER) & (strategy_runs["steps"] == strategy_runs["steps"].max())]
    ax = plot_quality_retention(runs, "quality", "retention", "state_mb", quality_label="held-out task accuracy",
                                retention_label=RETENTION_LABEL[DECODER], cost_label=COSTS["state_mb"])
    ax.figure.tight_layout()
    legible(ax.figure)


def test_notebook_06_charts_one_above_the_other(strategy_runs):
    from hft_lib.experiments import frontier

    plot_model = _moved("hft_lib.viz.frontier", "hft_lib.experiments.frontier", "plot_model")
    fig, axes = plt.subplots(2, 1, figsize=(9.4, 10))  # notebook 06's cell
    for ax, model in zip(axes, [frontier.ENCODER, frontier.DECODER]):
        plot_model(strategy_runs, model, ax=ax)
    fig.tight_layout()
    legible(fig)


def test_notebook_06_chart_of_one_model(strategy_runs):
    from hft_lib.experiments import frontier

    plot_model = _moved("hft_lib.viz.frontier", "hft_lib.experiments.frontier", "plot_model")
    legible(plot_model(strategy_runs, frontier.DECODER, highlight="hft_paper", cost="state_mb").figure)


# What `hft compare` saves (comparison.png), on the stored seed-0 runs.

@pytest.fixture
def saved(monkeypatch):
    """The figures `savefig` is asked to write, at the dpi they are written with."""
    figures = []

    def record(fig, path, dpi=None, **_):
        fig.set_dpi(dpi or fig.dpi)
        figures.append(fig)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return figures


@pytest.mark.parametrize("strategies", [["full", "lower_half", "alternate"], None])
def test_compare_chart_of_an_encoder(saved, tmp_path, strategies):
    plot_comparison = _moved("hft_lib.viz.comparison", "hft_lib.experiments.cli", "plot_comparison")
    runs = evidence.load_results("strategies").query("seed == 0")
    runs = runs if strategies is None else runs.set_index("strategy").loc[strategies].reset_index()
    plot_comparison(runs.assign(epoch_time_s=runs["train_time_s"] / 3), tmp_path / "comparison.png")
    legible(saved[0], shown_width_px=None)  # a file, looked at in full


def test_compare_chart_of_a_decoder(saved, tmp_path):
    from hft_lib.viz.tradeoff import save_decoder_comparison

    runs = evidence.load_results("decoder").query("seed == 0").assign(strategy=lambda f: f["variant"])
    save_decoder_comparison(runs.reset_index(drop=True), tmp_path / "comparison.png")
    legible(saved[0], shown_width_px=None)  # a file, looked at in full


def test_rate_response():  # notebook 06's figure, from the committed tuning sweeps
    from hft_lib.experiments import tuning
    from hft_lib.viz.tuning import plot_rate_response

    runs = pd.concat([evidence.load_results(name) for name in tuning.TUNING], ignore_index=True)
    legible(plot_rate_response(tuning.select_rates(runs),
                               title="Validation accuracy against peak rate (tuning seeds), a ring at each selected rate"))
