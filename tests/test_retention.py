"""Retention and similarity measures behave as measures should."""

import numpy as np
import pytest

from hft_lib import Finetuner, fit
from hft_lib.measure.retention import mean_retention, probe_accuracy, retention_report
from hft_lib.measure.similarity import linear_cka, relative_weight_change, snapshot

from .conftest import tiny_batches, tiny_bert


def test_linear_cka_is_one_for_the_same_representation_and_invariant_to_scale_and_rotation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3 * x @ q) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(200, 16))) < 0.3


def test_probe_separates_separable_data_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = rng.normal(size=(400, 8)) + y[:, None] * 2.0
    assert probe_accuracy(x[:200], y[:200], x[200:], y[200:]) > 0.9
    assert probe_accuracy(rng.normal(size=(200, 8)), y[:200], rng.normal(size=(200, 8)), y[200:]) < 0.7


def test_retention_report():
    report = retention_report({"a": 0.8, "b": 0.5}, {"a": 0.6, "b": 0.5})
    assert report.loc["a", "change"] == pytest.approx(-0.2)
    assert mean_retention({"a": 0.8, "b": 0.5}, {"a": 0.6, "b": 0.5}) == pytest.approx(87.5)


def test_frozen_layers_do_not_move_and_trained_ones_do():
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    before = snapshot(ft.model)
    fit(ft, tiny_batches(), epochs=1, lr=1e-2, progress=False)
    change = relative_weight_change(ft, before)
    assert change["embeddings"] == 0 and change["layer 0"] == 0 and change["layer 1"] == 0
    assert change["layer 2"] > 0 and change["layer 3"] > 0


def test_run_classification_scores_the_pretrained_probes_itself_when_not_given():
    from hft_lib import get_profile, run_classification
    from hft_lib.measure.retention import ProbeSuite
    from hft_lib.models import load_model

    _, tokenizer = load_model("minilm-l6", num_labels=6)
    probes = ProbeSuite(tokenizer, size=40, test_size=40)
    profile = get_profile("quick", train_size=32, eval_size=16, epochs=1)
    result = run_classification("head_only", "minilm-l6", "trec6", profile, probes=probes, progress=False)
    assert result["retention_pct"] == 100  # head_only leaves the encoder, and so every probe, untouched
    assert result["state_mb"] > 0


def test_layer_scores_from_stored_features_equal_scores_from_the_model():
    from hft_lib.measure.retention import ProbeSuite

    model = tiny_bert().eval()
    suite = ProbeSuite(tokenizer=None, tasks=())  # no tasks to load: give it the tiny model's batches instead
    split = {name: (tiny_batches(3, seed=seed), np.concatenate([b["labels"].numpy() for b in tiny_batches(3, seed=seed)]))
             for name, seed in (("train", 0), ("test", 1))}
    suite.data = {"a": split}
    features = suite.features(model)
    assert len(features["a"]["test"]) == model.config.num_hidden_layers + 1
    assert suite.score_layers(features=features).equals(suite.score_layers(model))
    with pytest.raises(ValueError, match="one of the two"):
        suite.score_layers(model, features=features)


def test_chance_corrected_retention_reads_zero_at_chance_and_ignores_probes_at_chance_before():
    from hft_lib.measure.retention import chance_corrected_retention

    before, chance = {"a": 0.9, "b": 0.6, "c": 0.51}, {"a": 0.5, "b": 0.5, "c": 0.5}
    assert chance_corrected_retention(before, {"a": 0.5, "b": 0.6, "c": 0.0}, chance) == pytest.approx(50.0)  # c ignored
    assert chance_corrected_retention(before, before, chance) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="within 2 points of chance"):
        chance_corrected_retention({"c": 0.51}, {"c": 0.51}, {"c": 0.5})
