"""A real (small) fine-tuning of the embedded MiniLM on TREC-6 clearly beats the majority class."""

import math

import pytest
import torch

from hft_lib import Finetuner, TrainingDiverged, fit, get_profile, load_task, majority_baseline, run_classification

from .conftest import tiny_batches, tiny_bert


def test_minilm_lower_half_beats_majority_baseline_on_trec6():
    profile = get_profile("quick", train_size=500, eval_size=200, epochs=3)
    result = run_classification("lower_half", "minilm-l6", "trec6", profile, progress=False)
    assert result["majority_baseline"] < 0.3
    assert result["test_accuracy"] > result["majority_baseline"] + 0.3
    assert 20 < result["trainable_pct"] < 30


def test_history_records_steps_epochs_and_eval():
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    history = fit(ft, tiny_batches(4), tiny_batches(2, seed=1), epochs=2, lr=1e-3, progress=False, device="cpu")
    assert len(history.steps) == 8 and len(history.epochs) == 2
    assert {"loss", "lr", "time_s", "trainable_layers"} <= set(history.step_frame.columns)
    assert 0 <= history.final["eval_accuracy"] <= 1
    assert history.final["trainable_layers"] == (2, 3)


def test_nan_loss_stops_with_a_clear_message():
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    with torch.no_grad():
        ft.model.classifier.weight.fill_(math.nan)
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        fit(ft, tiny_batches(2), epochs=1, lr=1e-3, progress=False, device="cpu")


@pytest.mark.parametrize("kwargs,message", [
    ({"lr": -1.0}, "Learning rate must be a positive number"),
    ({"epochs": 0}, "epochs must be a whole number"),
    ({"device": "cuda"}, "no usable CUDA GPU"),
])
def test_bad_training_arguments(kwargs, message):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    with pytest.raises(ValueError, match=message):
        fit(ft, tiny_batches(2), **{"progress": False, **kwargs})


def test_task_splits_are_deterministic_and_nested():
    a = load_task("trec6", train_size=100)
    b = load_task("trec6", train_size=200)
    assert a["train"]["text"] == b["train"]["text"][:100]
    assert load_task("trec6")["test"]["text"] == load_task("trec6", train_size=50)["test"]["text"]
    full = load_task("trec6")
    assert sum(len(s) for s in full.values()) == 5382
    assert set(full["train"]["text"]).isdisjoint(full["test"]["text"])
    assert 0.2 < majority_baseline(full) < 0.25
