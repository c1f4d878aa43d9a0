"""The training loop the source text describes, with the pieces people expect.

Loss from the model, AdamW over trainable parameters only, a learning-rate schedule, evaluation
every epoch, `tqdm.auto` progress bars, mixed precision on CUDA, optional gradual unfreezing, and a
`History` of loss, metric, wall time and which layers were trainable at each step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import (Checkpointer, EpochBatches, load_checkpoint, model_identity, restore_hook, restore_optimizer,
                         training_plan)
from .config import get_device, set_seed
from .freezing import Finetuner
from .optim import apply_schedule, build_optimizer, make_schedule
from .unfreezing import GradualUnfreezer, UnfreezeSchedule


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class History:
    """What happened during `fit`: one row per step and one per epoch (pandas DataFrames)."""

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    state_mb: float | None = None  # weights + gradients + optimiser state held at the end of training (MiB)

    @property
    def step_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.steps)

    @property
    def epoch_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.epochs)

    @property
    def final(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def median_step_time(self, skip: int = 2) -> float:
        times = [s["time_s"] for s in self.steps[skip:]] or [s["time_s"] for s in self.steps]
        return float(pd.Series(times).median())


def parameter_bytes(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Bytes of the model's (distinct: tied weights count once) parameters, or of the trainable ones."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad or not trainable_only)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimiser state actually allocated (AdamW: two moments per parameter it has stepped)."""
    return sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))


def state_megabytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """Weights + gradients of trainable weights + optimiser state actually allocated, in MiB (measured from tensors)."""
    return (parameter_bytes(model) + parameter_bytes(model, trainable_only=True) + optimizer_state_bytes(optimizer)) / 2**20


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: torch.device | None = None) -> dict[str, float]:
    """Mean loss, plus accuracy for classification or perplexity for language modelling."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, correct, count, tokens = 0.0, 0, 0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch)
        labels = batch["labels"]
        if labels.dim() == 1:  # classification
            correct += (out.logits.argmax(-1) == labels).sum().item()
            total_loss += out.loss.item() * len(labels)
            count += len(labels)
        else:  # causal LM: weight by predicted tokens
            n = (labels[:, 1:] != -100).sum().item()
            total_loss += out.loss.item() * n
            tokens += n
    model.train(was_training)
    if count:
        return {"loss": total_loss / count, "accuracy": correct / count}
    loss = total_loss / max(tokens, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50))}


def fit(ft: Finetuner, train_loader: DataLoader, eval_loader: DataLoader | None = None, *, epochs: int = 3,
        lr: float = 5e-5, weight_decay: float = 0.01, schedule: str = "linear", lr_decay: float | None = None,
        unfreeze: UnfreezeSchedule | None = None, max_steps: int | None = None, device: str | None = None,
        amp: bool = True, seed: int | None = 0, progress: bool = True, optimizer: torch.optim.Optimizer | None = None,
        step_hook=None, checkpoint_dir: str | None = None, checkpoint_every: int | None = None,
        resume_from: str | None = None, model_name: str | None = None, desc: str | None = None) -> History:
    """Fine-tune `ft.model` on `train_loader`; evaluate on `eval_loader` after every epoch.

    Args:
        lr_decay: discriminative learning rates: each layer down gets lr / lr_decay (ULMFiT: 2.6).
        unfreeze: a gradual-unfreezing schedule; training then starts with only the head trainable.
        max_steps: stop after this many optimiser steps (the schedule spans them).
        amp: bfloat16 autocast on CUDA (ignored on CPU).
        step_hook: optional callable(step, model) run after each optimiser step (e.g. HFT redraws); if it has
            `state_dict`/`load_state_dict`, checkpoints save its state and resuming restores it.
        checkpoint_dir: save a checkpoint there every `checkpoint_every` steps (default: every epoch) and at the end.
        resume_from: a checkpoint (or a folder of them: the newest is used) of this model and run to continue from.
        model_name: recorded in checkpoints, so that resuming with another model is a clear error.
        desc: the progress bar's label (default: the freezing pattern, or the unfreezing direction).

    Under `accelerate launch --num_processes N` it trains with DDP on the same global batch (see distributed.py).
    """
    if not isinstance(ft, Finetuner):
        raise TypeError(f"fit needs a Finetuner, not {type(ft).__name__}; wrap your model first: fit(Finetuner(model, 'lower_half'), loader).")
    if isinstance(train_loader, (str, bytes, dict)) or not hasattr(train_loader, "__len__"):
        raise TypeError(f"train_loader must be a DataLoader (or list) of batches, not {type(train_loader).__name__}; "
                        "build one with hft_lib.make_loader(...).")
    if checkpoint_every is not None and checkpoint_dir is None:
        raise ValueError("checkpoint_every needs checkpoint_dir (the folder to save checkpoints in).")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be a whole number of steps of at least 1, not {checkpoint_every!r}.")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number of at least 1, not {epochs!r}.")
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"Learning rate must be a positive number, not {lr!r}; try 5e-5.")
    if len(train_loader) == 0:
        raise ValueError("The training loader has no batches; give it at least one example.")
    make_schedule(schedule, 1)  # an unknown schedule name fails here, before the model is touched
    if seed is not None:
        set_seed(seed)
    dist = distributed.current()
    device = dist.device if dist else get_device(device)
    model = ft.model.to(device)
    model.train()
    unfreezer = GradualUnfreezer(ft, unfreeze, lr, weight_decay, lr_decay) if unfreeze else None
    optimizer = optimizer or build_optimizer(ft, lr, weight_decay, lr_decay)
    total = min(max_steps or math.inf, epochs * len(train_loader))
    factor = make_schedule(schedule, int(total))
    use_amp = amp and device.type == "cuda"
    history, step = History(), 0
    identity = model_identity(model, model_name)
    plan = training_plan(ft, epochs=epochs, lr=lr, weight_decay=weight_decay, schedule=schedule, lr_decay=lr_decay,
                         unfreeze=unfreeze, total_steps=int(total), batches_per_epoch=len(train_loader), seed=seed)
    resume = load_checkpoint(resume_from, ft, identity, plan) if resume_from else None
    if resume:
        restore_optimizer(resume, optimizer, unfreezer, lr)
        restore_hook(resume, step_hook)
        history, step = History(resume.history["steps"], resume.history["epochs"]), resume.step
    saver = None
    if checkpoint_dir is not None and (dist is None or dist.is_main):
        saver = Checkpointer(checkpoint_dir, checkpoint_every or len(train_loader), identity, plan,
                             resumed_from=resume.path if resume else None)
    if dist:
        distributed.check_loader(train_loader)
    bar = tqdm(total=int(total), initial=step, desc=desc or (ft.pattern_name if not unfreeze else f"gradual {unfreeze.direction}"),
               disable=not progress or (dist is not None and not dist.is_main), leave=True)
    for epoch in range(resume.epoch if resume else 0, epochs):
        batches = EpochBatches(train_loader, resume if resume and epoch == resume.epoch else None)
        epoch_start, losses = time.perf_counter(), [s["loss"] for s in history.steps if s["epoch"] == epoch]
        for batch in batches:
            if step >= total:
                break
            if unfreezer:
                unfreezer.update(optimizer, step, epoch)
            start = time.perf_counter()
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            weight, forward = 1.0, model
            if dist:  # this process's rows of the global batch; re-wrap if the trainable set changed
                batch, weight = dist.shard(batch)
                forward = dist.wrap(model)
            apply_schedule(optimizer, factor(step))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = forward(**batch).loss * weight
            loss_seen = dist.global_mean(loss) if dist else loss  # the global batch's loss, on every process
            if not torch.isfinite(loss_seen):
                bar.close()
                kept = f"; the last good checkpoint is kept in {saver.last}" if saver and saver.last else ""
                raise TrainingDiverged(f"Loss became {loss_seen.item()} at step {step}; lower the learning rate (now {lr}) "
                                       f"or check the data for empty or broken examples{kept}.")
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)  # None grads: frozen-again params get no momentum step
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            losses.append(loss_seen.item())
            history.steps.append({"step": step, "epoch": epoch, "loss": losses[-1], "lr": optimizer.param_groups[-1]["lr"],
                                  "time_s": elapsed, "trainable_layers": tuple(ft.trainable_layers)})
            if step_hook:
                step_hook(step, model)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            if saver and saver.due(step, int(total)):
                saver.save(model, optimizer, steps_done=step, epoch=epoch, batch_in_epoch=len(losses),
                           stage=unfreezer.stage if unfreezer else 0, epoch_rng=batches.start_rng, history=history,
                           hook_state=step_hook.state_dict() if hasattr(step_hook, "state_dict") else None)
        row = {"epoch": epoch, "train_loss": sum(losses) / max(len(losses), 1), "time_s": time.perf_counter() - epoch_start,
               "steps": len(losses), "trainable_layers": tuple(ft.trainable_layers),
               "trainable_params": ft.trainable_parameter_count()}
        if eval_loader is not None:
            row.update({f"eval_{k}": v for k, v in evaluate(model, eval_loader, device).items()})
        history.epochs.append(row)
        if step >= total:
            break
    bar.close()
    history.state_mb = state_megabytes(ft.model, optimizer)
    if dist:
        dist.release()  # let the caller free the model (the DDP wrapper holds it)
    return history
