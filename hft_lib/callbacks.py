"""Callbacks: the behaviours `fit` can be given, each one small class with named hooks (Lightning's idea).

`fit` calls, in order: `on_fit_start` (before the optimiser is built, so a callback may freeze first),
`on_optimizer` (once the optimiser exists; resuming happens here), then per optimiser step
`on_step_start` and `on_step_end`, `on_epoch_end` after each epoch's evaluation, and `on_fit_end`.
Every hook gets the `Run`: the Finetuner, the optimiser, the step and epoch counters, the history and
the settings. A callback whose `state_dict()` returns a dict has that state saved in checkpoints and
given back to `load_state_dict` on resume, so a dynamic strategy (the HFT paper's redraw, gradual
unfreezing's stage, LISA's round) continues exactly where it stopped; `load_state_dict` raises ValueError
when the saved state belongs to other settings (the checkpoint then refuses to resume, saying why). A
callback may also name the run on its progress bar (`progress_label`).

    class PrintLoss(Callback):
        def on_step_end(self, run):
            print(run.step, run.history.steps[-1]["loss"])

    fit(ft, loader, callbacks=[PrintLoss()])
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    import torch

    from .freezing import Finetuner


@dataclass
class History:
    """What happened during `fit`: one row per step and one per epoch (pandas DataFrames)."""

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    state_mb: float | None = None  # weights + gradients + optimiser state held at the end of training (MiB)
    device: str | None = None  # where it trained: cpu, cuda, cuda:1, mps
    precision: str | None = None  # what the steps computed in: fp32, bf16 (autocast) or fp16 (autocast + gradient scaler)

    @property
    def step_frame(self) -> pd.DataFrame:
        import pandas as pd  # only here: `import hft_lib` stays light

        return pd.DataFrame(self.steps)

    @property
    def final(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def median_step_time(self, skip: int = 2) -> float:
        times = [s["time_s"] for s in self.steps[skip:]] or [s["time_s"] for s in self.steps]
        return float(statistics.median(times))


@dataclass
class ResumeState:
    """Where a checkpoint left off (`checkpoint.load_checkpoint` reads it; `fit` continues from it)."""

    path: Path
    step: int
    epoch: int
    batch_in_epoch: int
    rng: dict
    epoch_rng: dict
    optimizer: dict
    history: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    callback_states: dict = field(default_factory=dict)  # stateful callbacks' states (unfreezing stage, redraw round)


@dataclass
class Run:
    """What a callback sees of a training run."""

    ft: Finetuner
    lr: float  # the peak rate (the head's, with discriminative rates)
    weight_decay: float
    lr_decay: float | None  # discriminative rates: each layer down gets lr / lr_decay
    callbacks: list[Callback]
    optimizer: torch.optim.Optimizer | None = None
    step: int = 0  # optimiser steps done (in on_step_start/on_step_end: the index of the current step)
    epoch: int = 0
    history: History = field(default_factory=History)
    plan: dict[str, Any] = field(default_factory=dict)  # the run's settings (epochs, lr, schedule, total_steps, ...)
    resume: ResumeState | None = None  # set when resuming from a checkpoint
    epoch_rng: dict | None = None  # the RNG states this epoch's shuffle started from (a checkpoint replays them)
    batch_in_epoch: int = 0  # batches of this epoch trained on so far

    @property
    def model(self) -> torch.nn.Module:
        return self.ft.model


class Callback:
    """Override the hooks you need; all do nothing by default. Callbacks run in list order, sorted by `order`
    (checkpointing runs last, so it saves what the others did in the same step)."""

    order = 0

    def on_fit_start(self, run: Run) -> None:
        """Before the optimiser is built (freeze or unfreeze here)."""

    def on_optimizer(self, run: Run) -> None:
        """The optimiser exists (`run.optimizer`)."""

    def on_step_start(self, run: Run) -> None:
        """Before optimiser step `run.step`."""

    def on_step_end(self, run: Run) -> None:
        """After optimiser step `run.step` (its row is `run.history.steps[-1]`)."""

    def on_epoch_end(self, run: Run) -> None:
        """After epoch `run.epoch` and its evaluation (`run.history.epochs[-1]`)."""

    def on_fit_end(self, run: Run) -> None:
        """Training is over."""

    def state_dict(self) -> dict | None:
        """State that checkpoints must keep (None: stateless)."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint's state (called after `on_optimizer`); ValueError if it belongs to other settings."""

    @property
    def progress_label(self) -> str | None:
        """What the progress bar calls the run, if this callback decides what trains (None: the freeze pattern)."""
        return None


def call(run: Run, hook: str) -> None:
    for callback in run.callbacks:
        getattr(callback, hook)(run)


class BudgetRecorder(Callback):
    """Measures the model after given numbers of optimiser steps (training budgets): `rows` of {steps, ...measures}."""

    def __init__(self, at_steps: list[int], measure: Callable[[Any], dict]):
        self.at_steps, self.measure = set(at_steps), measure
        self.rows: list[dict] = []

    def on_step_end(self, run: Run) -> None:
        if run.step + 1 in self.at_steps:
            self.rows.append({"steps": run.step + 1, **self.measure(run.model)})


class LambdaCallback(Callback):
    """A callback from plain functions of the run, e.g. `LambdaCallback(on_step_end=lambda run: ...)`."""

    def __init__(self, **hooks: Callable[[Run], None]):
        unknown = [h for h in hooks if not h.startswith("on_") or not hasattr(Callback, h)]
        if unknown:
            raise ValueError(f"Unknown callback hook(s) {unknown}; use on_fit_start, on_optimizer, on_step_start, "
                             "on_step_end, on_epoch_end or on_fit_end.")
        for name, fn in hooks.items():
            setattr(self, name, fn)


class BestEpoch(Callback):
    """Keeps a copy of the weights at the epoch with the best `metric` on the evaluation loader (early stopping's memory:
    `state` to load back, `epoch` it came from); the run itself trains on to the end."""

    def __init__(self, metric: str = "eval_accuracy"):
        self.metric, self.best, self.epoch = metric, -float("inf"), None
        self.state: dict | None = None

    def on_epoch_end(self, run: Run) -> None:
        value = run.history.epochs[-1].get(self.metric)
        if value is not None and value > self.best:
            self.best, self.epoch = value, run.epoch
            self.state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
