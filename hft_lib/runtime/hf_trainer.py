"""Freezing and gradual unfreezing inside the Hugging Face `Trainer`, as a `TrainerCallback`.

    callback = FreezingCallback(model, "lower_half")                     # a fixed freeze pattern
    callback = FreezingCallback(model, unfreeze=UnfreezeSchedule("top_down", 1, "epoch"))
    Trainer(model=model, args=args, train_dataset=..., callbacks=[callback]).train()

The freezing is applied when the callback is built, i.e. before `trainer.train()`, because the
Trainer builds its optimiser once, at the start of training, from the parameters that require grad.
A layer unfrozen later would therefore never train; the callback adds it to that optimiser as new
parameter groups (Lightning's `BaseFinetuning` discipline) and extends the Trainer's LR schedule to
them, so they warm up and decay with the rest. On several processes (DDP), the Trainer wrapped the
model before any layer was unfrozen and DDP only all-reduces parameters trainable at wrap time, so
the callback averages the gradients of later-unfrozen parameters itself just before each optimiser
step; without that the replicas silently drift apart.

Under FSDP2 (transformers' default FSDP, `fsdp_config={"version": 2}`, GPUs only: accelerate enables FSDP for
GPU processes, and on CPU the Trainer quietly trains with DDP), `fully_shard` replaced every parameter object
before training began, so the callback looks its parameters up again by name at train start; FSDP2
reduce-scatters the gradient of every parameter that has one, so unfrozen layers need no extra averaging.
Refused with a clear error: gradual unfreezing under FSDP1 or DeepSpeed (they flatten parameters and fix
which train when they wrap the model), and static freezing under FSDP1 with `use_orig_params=False`.
Not supported: `trainer.train(resume_from_checkpoint=...)` after the first unfreezing stage; the
Trainer loads its saved optimiser (which has the added groups) into a fresh one before any callback
runs and torch stops with "loaded state dict has a different number of parameter groups". For
resumable gradual unfreezing use `hft_lib.fit(..., callbacks=[GradualUnfreezing(...), Checkpointing(folder, every,
resume_from=...)])`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback

from ..freezing import Finetuner, FreezePattern
from ..strategies.gradual import GradualUnfreezer, UnfreezeSchedule
from .sharding import is_sharded


def _inner(optimizer):
    """accelerate wraps the optimiser (`.optimizer`); the param groups live on the wrapped one."""
    return getattr(optimizer, "optimizer", optimizer)


class FreezingCallback(TrainerCallback):
    """Apply `freeze_pattern`, or a gradual-unfreezing schedule, to a model trained by `transformers.Trainer`.

    Args:
        model: the model given to the Trainer, or a `Finetuner` already set up on it.
        freeze_pattern: as for `Finetuner` (ignored with `unfreeze`, which starts from the head alone).
        unfreeze: an `UnfreezeSchedule`; stages count Trainer optimiser steps or epochs.
        lr_decay: discriminative rates for unfrozen layers (lr / lr_decay per layer down); None: all at lr.
    """

    def __init__(self, model: nn.Module | Finetuner, freeze_pattern: FreezePattern = "lower_half",
                 unfreeze: UnfreezeSchedule | None = None, lr_decay: float | None = None, embeddings: str = "auto",
                 verbose: bool = True):
        if unfreeze is not None and not isinstance(unfreeze, UnfreezeSchedule):
            raise TypeError(f"unfreeze must be an UnfreezeSchedule, not {type(unfreeze).__name__}; "
                            "e.g. UnfreezeSchedule('top_down', stage_length=1, unit='epoch').")
        if isinstance(model, Finetuner):
            self.ft = model
        else:
            self.ft = Finetuner(model, "head_only" if unfreeze else freeze_pattern, embeddings, verbose=False)
        # lr and weight decay come from the TrainingArguments at train start
        self.unfreezer = GradualUnfreezer(self.ft, unfreeze, 1.0, 0.0, lr_decay) if unfreeze else None
        self._synced: set[int] = set()
        self._world = 1
        self._sharded = False  # FSDP2: the Trainer's model holds DTensor shards
        if verbose:
            print(self.ft.describe() if not unfreeze else
                  f"gradual unfreezing {unfreeze.direction}, {unfreeze.group_size} layer(s) every "
                  f"{unfreeze.stage_length} {unfreeze.unit}(s); starts with {self.ft.describe()}")

    # -- events ----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self._check_engine(args)
        if self.unfreezer is not None:
            self.unfreezer.lr, self.unfreezer.weight_decay = args.learning_rate, args.weight_decay
        self._world = args.world_size
        self._sharded = is_sharded(self.ft.model)
        if self._sharded:  # fully_shard replaced the parameter objects: freeze and unfreeze the ones the model trains
            self.ft.rebind_parameters()
        # DDP was built just before this event, from exactly these parameters
        self._synced = {id(p) for p in self.ft.trainable_parameters()}
        in_optimizer = {id(p) for g in _inner(optimizer).param_groups for p in g["params"]} if optimizer else set()
        missing = [n for n, p in self.ft.named_trainable_parameters().items() if id(p) not in in_optimizer]
        if optimizer is not None and missing:
            raise ValueError(f"The Trainer's optimiser lacks trainable parameters ({missing[:2]}...): build the "
                             "FreezingCallback before trainer.train(), so freezing is applied before the optimiser is made.")

    def on_step_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        if self.unfreezer is None or optimizer is None:
            return
        inner = _inner(optimizer)
        before = len(inner.param_groups)
        if self.unfreezer.update(inner, state.global_step, int(state.epoch or 0)):
            extend_lr_scheduler(lr_scheduler, inner, before)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self._world > 1 and not self._sharded and torch.distributed.is_initialized():
            average_unsynced_gradients(self.ft, self._synced, self._world)

    # -- checks ----------------------------------------------------------------------------
    def _check_engine(self, args) -> None:
        config = getattr(args, "fsdp_config", None) or {}
        fsdp1 = bool(getattr(args, "fsdp", None)) and str(config.get("version", config.get("fsdp_version", 2))) == "1"
        deepspeed = bool(getattr(args, "deepspeed", None))
        if self.unfreezer is not None and (fsdp1 or deepspeed):
            raise ValueError("Gradual unfreezing cannot run under FSDP1 or DeepSpeed (they flatten the parameters and fix "
                             "which ones train when they wrap the model); use FSDP2: fsdp_config={'version': 2}.")
        if fsdp1 and str(config.get("use_orig_params", True)).lower() == "false":
            raise ValueError("Freezing under FSDP1 needs fsdp_config={'use_orig_params': True} in TrainingArguments "
                             "(otherwise frozen and trainable weights share one flat parameter); or use FSDP2 (version 2).")


def extend_lr_scheduler(scheduler, optimizer: torch.optim.Optimizer, first_new: int) -> None:
    """Make a `LambdaLR` schedule (what every transformers `get_*_schedule` returns) drive groups added after it was built."""
    if scheduler is None:
        return
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate's AcceleratedScheduler wraps it
    if not isinstance(inner, LambdaLR):
        raise TypeError(f"Gradual unfreezing needs a LambdaLR-based learning-rate schedule, not {type(inner).__name__}; "
                        "use one of transformers' lr_scheduler_type values such as 'linear' or 'cosine'.")
    lam = inner.lr_lambdas[0]
    for group in optimizer.param_groups[first_new:]:
        base = group.get("base_lr", group["lr"])
        group["initial_lr"] = base
        inner.base_lrs.append(base)
        inner.lr_lambdas.append(lam)
        group["lr"] = base * lam(inner.last_epoch)


@torch.no_grad()
def average_unsynced_gradients(ft: Finetuner, synced: set[int], world: int) -> None:
    """All-reduce (mean) the gradients DDP does not know about: parameters unfrozen after it wrapped the model."""
    grads = [p.grad for p in ft.trainable_parameters() if id(p) not in synced and p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
