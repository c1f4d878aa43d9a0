"""The training loop the source text describes, with the pieces people expect.

Loss from the model, AdamW over trainable parameters only, a learning-rate schedule, evaluation
every epoch, progress bars (`progress.py`: saved notebooks keep the finished bar), mixed precision by what the device
supports (`precision.py`), optional gradual unfreezing, and a `History` of loss, metric, wall time and which layers were
trainable at each step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from .callbacks import Callback, History, Run, call
from .config import get_device, set_seed, smoke_limit
from .freezing import Finetuner
from .optim import apply_schedule, build_optimizer, make_schedule
from .precision import autocast, grad_scaler, resolve_precision
from .progress import progress_bar
from .replay import EpochBatches
from .runtime import distributed
from .runtime.sharding import local_bytes


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def parameter_bytes(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Bytes this process holds of the model's (distinct: tied weights count once) parameters, or of the trainable ones
    (under FSDP2 its shards only)."""
    return sum(local_bytes(p) for p in model.parameters() if p.requires_grad or not trainable_only)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimiser state this process has allocated (AdamW: two moments per parameter it has stepped)."""
    return sum(local_bytes(t) for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))


def state_megabytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> float:
    """Weights + gradients of trainable weights + optimiser state actually allocated, in MiB (measured from tensors,
    per process: under FSDP2 each process's shards)."""
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


@dataclass
class FitConfig:
    """The settings of `fit` that are not the optimisation's core (epochs, lr, steps): plain defaults."""

    weight_decay: float = 0.01  # AdamW's decoupled weight decay (biases and norms get none)
    schedule: str = "linear"  # learning-rate shape: "linear" (warm-up, then decay to 0), "constant", "slanted_triangular"
    lr_decay: float | None = None  # discriminative rates: each layer down gets lr / lr_decay (ULMFiT: 2.6); or lr=slice(lo, hi)
    seed: int | None = 0  # seeds Python, NumPy and torch before training (None: leave them as they are)
    device: str | None = None  # default: cuda, then mps, then cpu
    precision: str = "auto"  # "auto": bf16 on GPUs with native bf16, fp16 + gradient scaler on older ones, fp32 on CPU/MPS
    desc: str | None = None  # progress-bar label (default: the freeze pattern, or the unfreezing direction)
    engine: str = "auto"  # several processes: "ddp" (replicate), "fsdp" (FSDP2: shard), "auto" (what the launcher asked)


def _check_fit_args(ft, train_loader, epochs, lr, config: FitConfig) -> None:
    if not isinstance(ft, Finetuner):
        raise TypeError(f"fit needs a Finetuner, not {type(ft).__name__}; wrap your model first: fit(Finetuner(model, 'lower_half'), loader).")
    if isinstance(train_loader, (str, bytes, dict)) or not hasattr(train_loader, "__len__"):
        raise TypeError(f"train_loader must be a DataLoader (or list) of batches, not {type(train_loader).__name__}; "
                        "build one with hft_lib.make_loader(...).")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number of at least 1, not {epochs!r}.")
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"Learning rate must be a positive number, not {lr!r}; try 5e-5.")
    if len(train_loader) == 0:
        raise ValueError("The training loader has no batches; give it at least one example.")
    if not isinstance(config, FitConfig):
        raise TypeError(f"config must be a FitConfig, not {type(config).__name__}; e.g. fit(..., config=FitConfig(device='cpu')).")
    make_schedule(config.schedule, 1)  # an unknown schedule name fails here, before the model is touched
    resolve_precision(config.precision, torch.device("cpu"))  # an unknown precision too
    distributed.resolve_engine(config.engine)  # an unknown or refused engine too


def _peak_lr(ft: Finetuner, lr, config: FitConfig) -> tuple[float, float | None]:
    """(head rate, decay per layer) from lr=slice(lo, hi) (lo for the embeddings, hi for the head) or a number."""
    if not isinstance(lr, slice):
        return lr, config.lr_decay
    lo, hi = lr.start, lr.stop
    if not all(isinstance(v, (int, float)) and v > 0 for v in (lo, hi)) or lo > hi:
        raise ValueError(f"lr=slice(lo, hi) needs 0 < lo <= hi (lo for the embeddings, hi for the head), not {lr!r}.")
    depth = max(len(r) for r in ft.parts.stack_ranges()) + 1  # embeddings sit this many steps below the head
    return hi, (hi / lo) ** (1 / depth)


def fit(ft: Finetuner, train_loader: DataLoader, eval_loader: DataLoader | None = None, *, epochs: int = 3,
        lr: float | slice = 5e-5, max_steps: int | None = None, optimizer: torch.optim.Optimizer | None = None,
        callbacks: list[Callback] | tuple = (), progress: bool = True, config: FitConfig | None = None) -> History:
    """Fine-tune `ft.model` on `train_loader`; evaluate on `eval_loader` after every epoch.

    Args:
        lr: the peak rate, or `slice(lo, hi)` for discriminative rates from lo (embeddings) to hi (head).
        max_steps: stop after this many optimiser steps (the schedule spans them).
        optimizer: your own (default: AdamW over exactly the trainable parameters, one group per layer).
        callbacks: e.g. `GradualUnfreezing(...)`, `HalfParameterRedraw(...)`, `Checkpointing(...)`, `BudgetRecorder(...)`.
        config: the rest (`FitConfig`: weight decay, schedule, seed, device, mixed precision, progress label).

    Under `accelerate launch --num_processes N` it trains with DDP on the same global batch, and with FSDP2 (each
    process holds 1/N of the weights, gradients and optimiser state) under `accelerate launch --use_fsdp
    --fsdp_version 2` or with `FitConfig(engine="fsdp")` (see runtime/distributed.py and runtime/sharding.py).
    The model then stays sharded after `fit`: every process must call it together (as `evaluate` on all of them does).
    """
    config = config or FitConfig()
    _check_fit_args(ft, train_loader, epochs, lr.stop if isinstance(lr, slice) else lr, config)
    peak, decay = _peak_lr(ft, lr, config)
    if config.seed is not None:
        set_seed(config.seed)
    dist = distributed.current()
    device = dist.device if dist else get_device(config.device)
    sharded = dist is not None and distributed.resolve_engine(config.engine) == "fsdp"
    if sharded:  # fully_shard moves each unit to the device itself, so the whole model never has to fit on one
        dist.shard_model(ft, optimizer)
    else:
        ft.model.to(device)
    ft.model.train()
    run = Run(ft, peak, config.weight_decay, decay, sorted(callbacks, key=lambda c: getattr(c, "order", 0)))
    call(run, "on_fit_start")  # e.g. gradual unfreezing freezes everything but the head, before the optimiser sees it
    run.optimizer = optimizer or build_optimizer(ft, peak, config.weight_decay, decay)
    total = smoke_limit("steps", int(min(max_steps or math.inf, epochs * len(train_loader))))  # HFT_SMOKE: a handful
    run.plan = {"epochs": epochs, "lr": peak, "weight_decay": config.weight_decay, "schedule": config.schedule,
                         "lr_decay": decay, "total_steps": total, "batches_per_epoch": len(train_loader), "seed": config.seed}
    call(run, "on_optimizer")  # resuming restores weights, optimiser, position and callback states here
    precision = _precision(config, device, sharded)
    run.history.device, run.history.precision = str(device), precision
    if dist:
        distributed.check_loader(train_loader)
    bar = progress_bar(total=total, initial=run.step, desc=config.desc or _label(run),
               disable=not progress or (dist is not None and not dist.is_main), leave=True)
    loop = _Loop(run, None if sharded else dist, dist, device, make_schedule(config.schedule, total), precision, bar)
    for epoch in range(run.resume.epoch if run.resume else 0, epochs):
        run.epoch = epoch
        loop.epoch(train_loader, eval_loader, total)
        if run.step >= total:
            break
    bar.close()
    run.history.state_mb = state_megabytes(ft.model, run.optimizer)
    call(run, "on_fit_end")
    if dist and not sharded:
        dist.release()  # let the caller free the model (the DDP wrapper holds it)
    return run.history


def _precision(config: FitConfig, device: torch.device, sharded: bool) -> str:
    """The resolved precision; FSDP2 shards no gradient scaler, so float16 is refused there ("auto" falls back to fp32)."""
    precision = resolve_precision(config.precision, device)
    if sharded and precision == "fp16":
        if config.precision == "auto":
            return "fp32"
        raise ValueError("float16 needs a gradient scaler, which this FSDP2 path does not shard; pass precision='bf16' on a GPU "
                         "with native bfloat16, or 'fp32'.")
    return precision


def _label(run: Run) -> str:
    return next((c.progress_label for c in run.callbacks if getattr(c, "progress_label", None)), run.ft.pattern_name)


class _Loop:
    """One epoch of optimiser steps: the body of `fit`, split out so each piece reads on its own."""

    def __init__(self, run: Run, ddp, dist, device, factor, precision: str, bar):
        # ddp: the context when it wraps the model in DDP (None under FSDP2, whose model is sharded in place)
        self.run, self.ddp, self.dist, self.device = run, ddp, dist, device
        self.factor, self.precision, self.bar = factor, precision, bar
        self.scaler = grad_scaler(precision, device)  # float16 only

    def epoch(self, train_loader, eval_loader, total: int) -> None:
        run = self.run
        resume = run.resume if run.resume and run.epoch == run.resume.epoch else None
        batches = EpochBatches(train_loader, resume)
        run.epoch_rng = batches.start_rng
        start = time.perf_counter()
        losses = [s["loss"] for s in run.history.steps if s["epoch"] == run.epoch]
        for batch in batches:
            if run.step >= total:
                break
            losses.append(self.step(batch))
            run.batch_in_epoch = len(losses)
            call(run, "on_step_end")
            run.step += 1
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        row = {"epoch": run.epoch, "train_loss": sum(losses) / max(len(losses), 1), "time_s": time.perf_counter() - start,
               "steps": len(losses), "trainable_layers": tuple(run.ft.trainable_layers),
               "trainable_params": run.ft.trainable_parameter_count()}
        if eval_loader is not None:
            row.update({f"eval_{k}": v for k, v in evaluate(run.model, eval_loader, self.device).items()})
        run.history.epochs.append(row)
        call(run, "on_epoch_end")

    def step(self, batch: dict) -> float:
        """One optimiser step; returns the (global) batch's loss."""
        run, dist, optimizer = self.run, self.dist, self.run.optimizer
        call(run, "on_step_start")
        start = time.perf_counter()
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        weight, forward = 1.0, run.model
        if dist:  # this process's rows of the global batch
            batch, weight = dist.shard(batch)
        if self.ddp:  # re-wrap if the trainable set changed (FSDP2 reads requires_grad afresh at every gather)
            forward = self.ddp.wrap(run.model)
        apply_schedule(optimizer, self.factor(run.step))
        with autocast(self.precision, self.device):
            loss = forward(**batch).loss * weight
        loss_seen = dist.global_mean(loss) if dist else loss  # the global batch's loss, on every process
        if not torch.isfinite(loss_seen):
            self.bar.close()
            last = next((c.last for c in run.callbacks if getattr(c, "last", None)), None)
            kept = f"; the last good checkpoint is kept in {last}" if last else ""
            raise TrainingDiverged(f"Loss became {loss_seen.item()} at step {run.step}; lower the learning rate (now {run.lr}) "
                                   f"or check the data for empty or broken examples{kept}.")
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:  # float16: scale the loss so small gradients survive, unscale before the step, skip a step that overflowed
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        optimizer.zero_grad(set_to_none=True)  # None grads: frozen-again params get no momentum step
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        run.history.steps.append({"step": run.step, "epoch": run.epoch, "loss": loss_seen.item(),
                                  "lr": optimizer.param_groups[-1]["lr"], "time_s": time.perf_counter() - start,
                                  "trainable_layers": tuple(run.ft.trainable_layers)})
        return run.history.steps[-1]["loss"]
