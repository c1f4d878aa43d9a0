"""Gradual unfreezing unfreezes the right layers at the right step, and they really train."""

import pytest
import torch

from hft_lib import Finetuner, GradualUnfreezing, LambdaCallback, UnfreezeSchedule, fit
from hft_lib.optim import layer_lr, linear_warmup_decay, slanted_triangular

from .conftest import tiny_batches, tiny_bert


@pytest.mark.parametrize("direction,first,last", [("bottom_up", (0,), (0, 1, 2, 3)), ("top_down", (3,), (0, 1, 2, 3))])
def test_layers_unfreeze_at_the_right_step(direction, first, last):
    ft = Finetuner(tiny_bert(layers=4), "full", verbose=False)
    history = fit(ft, tiny_batches(10), epochs=1, lr=1e-3, progress=False,
                  callbacks=[GradualUnfreezing(UnfreezeSchedule(direction, stage_length=2, unit="step"))])
    trainable = [s["trainable_layers"] for s in history.steps]
    assert trainable[0] == trainable[1] == ()  # stage 0: head only
    assert trainable[2] == trainable[3] == first
    assert trainable[8] == last
    stage_two = (0, 1) if direction == "bottom_up" else (2, 3)
    assert trainable[4] == stage_two


def test_epoch_stages_and_group_size():
    schedule = UnfreezeSchedule("top_down", stage_length=1, unit="epoch", group_size=2)
    assert schedule.stages(6) == [[5, 4], [3, 2], [1, 0]]
    assert [schedule.stage_at(0, e, 6) for e in range(5)] == [0, 1, 2, 3, 3]


def test_newly_unfrozen_layer_changes_after_its_stage_and_not_before():
    model = tiny_bert(layers=4)
    ft = Finetuner(model, "full", verbose=False)
    snapshots = []
    snap = LambdaCallback(on_step_end=lambda run: snapshots.append(run.model.bert.encoder.layer[2].output.dense.weight.detach().clone()))
    fit(ft, tiny_batches(8), epochs=1, lr=1e-2, progress=False,
        callbacks=[GradualUnfreezing(UnfreezeSchedule("top_down", stage_length=2, unit="step")), snap])
    # top-down with stages of 2 steps: layer 3 at step 2, layer 2 at step 4
    assert torch.equal(snapshots[0], snapshots[3])
    assert not torch.equal(snapshots[3], snapshots[4])


def test_embeddings_travel_with_layer_zero():
    model = tiny_bert(layers=2)
    ft = Finetuner(model, "full", verbose=False)
    emb = model.bert.embeddings.word_embeddings.weight
    before = emb.detach().clone()
    seen = []
    fit(ft, tiny_batches(6), epochs=1, lr=1e-2, progress=False,
        callbacks=[GradualUnfreezing(UnfreezeSchedule("top_down", 2, "step")), LambdaCallback(on_step_end=lambda run: seen.append(emb.requires_grad))])
    assert seen == [False, False, False, False, True, True]
    assert not torch.equal(before, emb)


@pytest.mark.parametrize("kwargs,message", [
    ({"stage_length": 0}, "stage_length must be a whole number of at least 1"),
    ({"direction": "sideways"}, "Unknown unfreezing direction"),
    ({"unit": "batch"}, "Unknown stage unit"),
])
def test_bad_schedules_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UnfreezeSchedule(**kwargs)


def test_discriminative_rates_decay_by_factor_per_layer():
    ft = Finetuner(tiny_bert(layers=4), "full", verbose=False)
    assert layer_lr(ft, "head", 1.0, 2.6) == 1.0
    assert layer_lr(ft, 3, 1.0, 2.6) == pytest.approx(1 / 2.6)
    assert layer_lr(ft, 0, 1.0, 2.6) == pytest.approx(1 / 2.6**4)
    assert layer_lr(ft, "embeddings", 1.0, 2.6) == pytest.approx(1 / 2.6**5)


def test_new_groups_follow_the_schedule_and_their_own_rate():
    ft = Finetuner(tiny_bert(layers=2), "full", verbose=False)
    from hft_lib.optim import apply_schedule, build_optimizer
    from hft_lib.strategies.gradual import GradualUnfreezer
    unfreezer = GradualUnfreezer(ft, UnfreezeSchedule("top_down", 1, "step"), lr=1.0, decay=2.0)
    optimizer = build_optimizer(ft, 1.0, decay=2.0)
    unfreezer.update(optimizer, step=1, epoch=0)
    apply_schedule(optimizer, 0.5)
    rates = {g["part"]: g["lr"] for g in optimizer.param_groups}
    assert rates == {"head": 0.5, "1": 0.25}


def test_schedules_shape():
    f = linear_warmup_decay(100, warmup=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == 1.0 and f(100) == 0.0
    s = slanted_triangular(100, cut_frac=0.1, ratio=32)
    assert s(0) == pytest.approx(1 / 32) and s(10) == pytest.approx(1.0) and s(99) < 0.1
