"""The HF Trainer with FreezingCallback: frozen layers never move; a layer unfrozen at stage 2 trains from then on."""

import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from hft_lib import UnfreezeSchedule
from hft_lib.runtime.hf_trainer import FreezingCallback

from .conftest import tiny_bert


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: threads only add contention on a shared machine
    yield
    torch.set_num_threads(before)


class Rows(torch.utils.data.Dataset):
    def __init__(self, n: int = 32):
        g = torch.Generator().manual_seed(0)
        self.rows = [{"input_ids": torch.randint(1, 100, (10,), generator=g), "attention_mask": torch.ones(10, dtype=torch.long),
                      "labels": torch.randint(0, 3, (), generator=g)} for _ in range(n)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class Snapshots(TrainerCallback):
    """Copies of every layer's weights after each optimiser step, and the LR of every group."""

    def __init__(self, model):
        self.model, self.after, self.lrs = model, [], []

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.after.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        self.lrs.append([g["lr"] for g in optimizer.param_groups])


def train(tmp_path, model, callback, steps=8, **extra):
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=4, learning_rate=1e-2,
                             warmup_steps=0, lr_scheduler_type="linear", use_cpu=True, report_to="none", save_strategy="no",
                             disable_tqdm=True, logging_strategy="no", seed=0, **extra)
    snaps = Snapshots(model)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[callback, snaps])
    trainer.train()
    return trainer, snaps


def layer_changed(before: dict, after: dict, layer: int) -> bool:
    prefix = f"bert.encoder.layer.{layer}."
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


def test_layer_unfrozen_at_stage_2_changes_after_that_and_not_before(tmp_path):
    model = tiny_bert(layers=4)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    callback = FreezingCallback(model, unfreeze=UnfreezeSchedule("top_down", stage_length=2, unit="step"), verbose=False)
    _, snaps = train(tmp_path, model, callback, steps=8)
    # top-down: layer 3 joins at step 2 (stage 1), layer 2 at step 4 (stage 2), layer 1 at step 6
    steps_with_layer2_frozen = snaps.after[:4]
    assert all(not layer_changed(initial, s, 2) for s in steps_with_layer2_frozen)
    assert layer_changed(snaps.after[3], snaps.after[4], 2), "layer 2 did not train at the step it was unfrozen"
    assert layer_changed(snaps.after[6], snaps.after[7], 2)
    assert not layer_changed(initial, snaps.after[-1], 0)  # never unfrozen in 8 steps
    assert callback.unfreezer.stage == 3
    # the new groups follow the Trainer's linear decay instead of sitting at the peak rate
    last = snaps.lrs[-1]
    assert len(last) > len(snaps.lrs[0]) and max(last) < 1e-2 / 4
    assert pytest.approx(last[-1]) == last[0]


@pytest.mark.parametrize("pattern,frozen", [("lower_half", [0, 1]), ("alternate", [0, 2])])
def test_static_pattern_with_the_trainer(tmp_path, pattern, frozen):
    model = tiny_bert(layers=4)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    callback = FreezingCallback(model, pattern, verbose=False)
    trainer, snaps = train(tmp_path, model, callback, steps=3)
    for layer in range(4):
        assert layer_changed(initial, snaps.after[-1], layer) == (layer not in frozen)
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in callback.ft.trainable_parameters()}


def test_callback_built_after_the_optimizer_is_a_clear_error(tmp_path):
    model = tiny_bert(layers=4)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, use_cpu=True, report_to="none", save_strategy="no",
                             disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(8))
    trainer.create_optimizer()  # optimiser made while everything was frozen below the head
    for p in model.parameters():
        p.requires_grad_(False)
    trainer.optimizer = None
    trainer.create_optimizer()
    callback = FreezingCallback(model, "full", verbose=False)
    trainer.add_callback(callback)
    with pytest.raises(ValueError, match="build the FreezingCallback before trainer.train"):
        callback.on_train_begin(args, trainer.state, trainer.control, optimizer=trainer.optimizer)


class Args:
    """The TrainingArguments fields the callback reads at train start."""

    def __init__(self, fsdp=None, fsdp_config=None, deepspeed=None):
        self.fsdp, self.fsdp_config, self.deepspeed = fsdp, fsdp_config, deepspeed
        self.learning_rate, self.weight_decay, self.world_size = 1e-3, 0.0, 2


@pytest.mark.parametrize("args,message", [
    (Args(fsdp=True, fsdp_config={"version": 1}), "cannot run under FSDP1 or DeepSpeed"),
    (Args(deepspeed="ds.json"), "cannot run under FSDP1 or DeepSpeed"),
])
def test_gradual_unfreezing_under_fsdp1_or_deepspeed_is_refused(args, message):
    callback = FreezingCallback(tiny_bert(), unfreeze=UnfreezeSchedule(), verbose=False)
    with pytest.raises(ValueError, match=message):
        callback.on_train_begin(args, None, None)


def test_gradual_unfreezing_under_fsdp2_is_accepted():
    """transformers' default FSDP is version 2 (tests/test_fsdp.py trains with it on two processes)."""
    for config in ({"version": 2}, {}):
        callback = FreezingCallback(tiny_bert(), unfreeze=UnfreezeSchedule(), verbose=False)
        callback.on_train_begin(Args(fsdp=True, fsdp_config=config), None, None)


def test_static_freezing_under_fsdp1_needs_orig_params():
    callback = FreezingCallback(tiny_bert(), "lower_half", verbose=False)
    with pytest.raises(ValueError, match="use_orig_params"):
        callback.on_train_begin(Args(fsdp=True, fsdp_config={"version": 1, "use_orig_params": False}), None, None)
