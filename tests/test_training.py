"""A real (small) fine-tuning of the embedded MiniLM on TREC-6 clearly beats the majority class."""

import math

import pytest
import torch

from hft_lib import Finetuner, FitConfig, TrainingDiverged, fit, get_profile, load_task, majority_baseline, run_classification

from .conftest import tiny_batches, tiny_bert


def test_minilm_lower_half_beats_majority_baseline_on_trec6():
    profile = get_profile("quick", train_size=320, eval_size=200, epochs=2, lr=3e-4)  # the oracle's budget: 40 steps
    result = run_classification("lower_half", "minilm-l6", "trec6", profile, progress=False)
    assert result["majority_baseline"] < 0.3
    assert result["test_accuracy"] > result["majority_baseline"] + 0.3
    assert 20 < result["trainable_pct"] < 30


def test_history_records_steps_epochs_and_eval():
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    history = fit(ft, tiny_batches(4), tiny_batches(2, seed=1), epochs=2, lr=1e-3, progress=False)
    assert len(history.steps) == 8 and len(history.epochs) == 2
    assert {"loss", "lr", "time_s", "trainable_layers"} <= set(history.step_frame.columns)
    assert 0 <= history.final["eval_accuracy"] <= 1
    assert history.final["trainable_layers"] == (2, 3)


def test_nan_loss_stops_with_a_clear_message():
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    with torch.no_grad():
        ft.model.classifier.weight.fill_(math.nan)
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        fit(ft, tiny_batches(2), epochs=1, lr=1e-3, progress=False)


@pytest.mark.parametrize("kwargs,message", [
    ({"lr": -1.0}, "Learning rate must be a positive number"),
    ({"epochs": 0}, "epochs must be a whole number"),
    ({"config": FitConfig(device="cuda")}, "no usable CUDA GPU"),
])
def test_bad_training_arguments(kwargs, message):
    if "config" in kwargs and torch.cuda.is_available():
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


def test_a_users_own_optimizer_follows_the_schedule_without_decaying_to_zero():
    """Old code multiplied group['lr'] by the factor every step when the group had no base_lr: the rate shrank to 0."""
    from hft_lib.optim import linear_warmup_decay

    ft = Finetuner(tiny_bert(), "full", verbose=False)
    optimizer = torch.optim.SGD(ft.trainable_parameters(), lr=0.1)
    history = fit(ft, tiny_batches(6), epochs=1, optimizer=optimizer, progress=False, config=FitConfig(schedule="linear"))
    factor = linear_warmup_decay(6)
    assert [s["lr"] for s in history.steps] == pytest.approx([0.1 * factor(i) for i in range(6)])


def test_norms_get_no_weight_decay_whatever_they_are_called():
    """GPT-2's ln_1 / ln_2 / ln_f have no "norm" in their names; old code decayed them."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from hft_lib import build_optimizer

    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_layer=2, n_embd=16, n_head=2, bos_token_id=0, eos_token_id=0))
    ft = Finetuner(model, "full", verbose=False)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in build_optimizer(ft, 1e-3, weight_decay=0.1).param_groups if g["weight_decay"] for p in g["params"]}
    assert decayed and not any(".ln_" in n or n.endswith("bias") for n in decayed)
    assert "transformer.h.0.mlp.c_fc.weight" in decayed


def test_best_epoch_keeps_the_weights_of_the_epoch_validation_liked_best():
    from hft_lib.callbacks import BestEpoch

    torch.manual_seed(0)
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    best = BestEpoch()
    history = fit(ft, tiny_batches(), tiny_batches(2), epochs=3, lr=1e-2, progress=False, callbacks=[best])
    scores = [e["eval_accuracy"] for e in history.epochs]
    assert best.epoch == scores.index(max(scores)) and best.best == max(scores)
    assert set(best.state) == set(ft.model.state_dict())
    if best.epoch < 2:  # a copy, not a view of the weights that trained on
        assert any(not torch.equal(best.state[k], v) for k, v in ft.model.state_dict().items())
