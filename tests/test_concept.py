"""The concept figure draws what trains, read from requires_grad, not from a description of each strategy."""

import pytest

from hft_lib.viz.concept import plot_what_trains, trainable_map
from tests.test_legibility import legible


def states(strategy):
    frame = trainable_map(strategy)
    return {(r.part, r.unit): r.state for r in frame.itertuples()}


def test_layer_patterns_train_whole_layers():
    lower = states("lower_half")
    assert {s for (part, _), s in lower.items() if part in ("layer 0", "layer 1", "layer 2", "embeddings")} == {"frozen"}
    assert {s for (part, _), s in lower.items() if part in ("layer 3", "layer 4", "layer 5", "head")} == {"trains"}
    alternate = states("alternate")
    assert {s for (part, _), s in alternate.items() if part in ("layer 0", "layer 2", "layer 4")} == {"frozen"}


def test_parameter_level_strategies_show_inside_the_layers():
    bitfit = states("bitfit")
    assert bitfit[("layer 0", "attention.self.query")] == "bias only" and bitfit[("head", "head")] == "trains"
    lora = states("lora")
    assert "adapter only" in lora.values() and "trains" not in {s for (p, _), s in lora.items() if p.startswith("layer")}
    paper = states("hft_paper")
    inside = [s for (p, _), s in paper.items() if p == "layer 0"]
    assert "trains" in inside and "frozen" in inside  # half of the matrices inside every layer


@pytest.mark.parametrize("strategies", [("full", "lower_half", "alternate", "hft_paper", "lora", "bitfit", "lisa")])
def test_the_figure_is_legible(strategies):
    legible(plot_what_trains(strategies))
