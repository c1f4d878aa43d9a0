"""The oracle's analysis finds what was planted in synthetic results: the costly layer, count against which, the front."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from hft_lib.experiments import oracle
from hft_lib.experiments.sweep import EXPERIMENTS
from hft_lib.strategies import subset_name
from hft_lib.viz.oracle import plot_front, plot_layer_effects, plot_map


def synthetic(costly: int = 5, cost: float = 0.10, per_layer: float = 0.01, noise: float = 0.005, seeds=(0, 1, 2)) -> pd.DataFrame:
    """Oracle-shaped runs: accuracy drops by `cost` when `costly` is frozen and `per_layer` per frozen layer."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for v in EXPERIMENTS["oracle"].variants:
            frozen = oracle.layer_subset(v["strategy"])
            acc = 0.85 if frozen is None else 0.85 - cost * (costly in frozen) - per_layer * len(frozen)
            step = 1.0 if frozen is None else 1.0 - 0.12 * min(i for i in range(7) if i not in frozen)  # lowest trainable layer
            rows.append({"strategy": v["strategy"], "variant": v["strategy"], "seed": seed,
                         "test_accuracy": acc + rng.normal(0, noise), "step_time_s": step + rng.normal(0, 0.01),
                         "retention_cc": 95 + rng.normal(0, 1)})
    return oracle.load(pd.DataFrame(rows))


def test_named_rules_are_found_among_the_subsets():
    frame = synthetic()
    labels = dict(zip(frame["strategy"], frame["label"]))
    assert labels["freeze:0,1,2"] == "lower_half (freeze:0,1,2)" and labels["freeze:1,3,5"] == "alternate_odd (freeze:1,3,5)"
    assert labels["lisa"] == "lisa" and frame.loc[frame["strategy"] == "freeze:", "n_frozen"].iloc[0] == 0


def test_named_rules_follow_the_grid_size():
    """A 12-layer grid's lower half is layers 0-5, not the 6-layer model's 0-2 (the names were hard-coded once)."""
    rows = [{"strategy": subset_name(range(k)), "seed": seed, "test_accuracy": 0.5 + k / 100 + seed / 1000}
            for k in (3, 6, 12) for seed in (0, 1, 2)]
    frame = oracle.load(pd.DataFrame(rows))
    labels = dict(zip(frame["strategy"], frame["label"]))
    assert labels["freeze:0,1,2,3,4,5"] == "lower_half (freeze:0,1,2,3,4,5)" and labels["freeze:0,1,2"] == "freeze:0,1,2"
    assert labels[subset_name(range(12))] == f"head_only ({subset_name(range(12))})"
    assert set(oracle.against_best(frame).index) == {"freeze:0,1,2,3,4,5", subset_name(range(12))}


def test_the_costly_layer_stands_out_with_an_interval_that_excludes_zero():
    effects = oracle.layer_effects(synthetic(costly=4))
    assert effects["effect"].idxmin() == 4
    assert effects.loc[4, "ci_high"] < 0 and effects.loc[4, "effect"] == pytest.approx(-0.11, abs=0.01)
    assert effects.drop(4)["effect"].between(-0.02, 0).all()  # the others cost only the per-layer 0.01


def test_which_layers_explains_more_than_their_number_when_one_layer_matters():
    shares = oracle.count_or_which(synthetic(cost=0.10, per_layer=0.0))
    assert shares["subsets"] == 64 and shares["which"] > 0.95 and shares["count"] < 0.3
    only_count = oracle.count_or_which(synthetic(cost=0.0, per_layer=0.03))
    assert only_count["count"] > 0.95 and only_count["which"] > 0.95  # equal terms: the additive model is the count
    assert only_count["noise"] < 0.05
    assert shares["p"] < 1e-6 < only_count["p"]  # which layers add to their number only where one layer matters
    assert shares["count_and_which"] >= max(shares["count"], shares["which"]) - 1e-12  # nested: holds both


def test_pareto_keeps_only_undominated_points():
    table = pd.DataFrame({"step_time_s": [1.0, 0.5, 0.6, 0.4], "test_accuracy": [0.9, 0.8, 0.7, 0.6]}, index=list("abcd"))
    assert oracle.pareto(table).to_dict() == {"a": True, "b": True, "c": False, "d": True}


def test_rules_are_paired_with_the_best_subset():
    frame = synthetic(costly=5)
    table = oracle.against_best(frame)
    assert table["reference"].iloc[0] == oracle.best_subset(frame) == "freeze:"
    assert {"full", "lisa", "freeze:0,1,2", "freeze:3,4,5"} <= set(table.index)
    assert "freeze:0,1" not in table.index  # a subset no rule names is not a rule
    assert table.loc["freeze:3,4,5", "ci_high"] < 0  # upper half freezes the costly layer 5
    assert table.loc["full", "n"] == 3


def test_the_figures_draw_every_subset_and_rule():
    frame = synthetic()
    table = oracle.summary(frame)
    assert len(table) == len(EXPERIMENTS["oracle"].variants)
    fig = plot_map(table)
    assert fig.axes[0].images[0].get_array().count() == 64
    fig = plot_front(table)
    named = [t.get_text() for ax in fig.axes for t in ax.texts]  # rules are labelled beside their markers
    assert "lisa" in named and "lower_half (freeze:0,1,2)" in named and "freeze:0,1" not in named
    plot_layer_effects(oracle.layer_effects(frame))


def test_no_subset_runs_is_a_clear_error():
    frame = synthetic()
    with pytest.raises(ValueError, match="No layer-subset runs"):
        oracle.layer_effects(frame[frame["frozen"].isna()])


def test_the_readme_summary_names_the_planted_layer_and_every_rule():
    frame = synthetic(costly=2)
    frame["failed"] = False
    text = oracle.markdown(frame)
    assert "Freezing layer 2 costs most" in text and "Of the spread between the 64 subsets" in text
    rules = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| rule")]
    assert len(rules) == len(oracle.against_best(frame)) and any(line.startswith("| lisa |") for line in rules)
