"""What a strategy is: a registry row (`Strategy`), the options its setup reads (`SetupOptions`), what it returns (`Prepared`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..callbacks import Callback
from ..freezing import Finetuner

KINDS = ("layers", "gradual", "parameters", "adaptive")


@dataclass(frozen=True)
class SetupOptions:
    """The settings a strategy's setup may read; each setup reads only the fields it needs."""

    lr: float  # the peak rate the run was given (LoRA scales it for its adapters)
    seed: int = 0  # random draws (the paper's half, LISA's layers) follow it
    total_steps: int = 1  # the run's optimiser steps: gradual strategies spread their stages evenly over them
    redraw_every: int | None = None  # hft_paper, lisa: optimiser steps per round (hft_paper: never redraw; lisa: 20)
    window: int | None = None  # autofreeze: optimiser steps per gradient-measuring window (default 20)
    weight_decay: float = 0.01
    lr_decay: float | None = None  # discriminative rates: each layer down gets lr / lr_decay
    embeddings: str | None = None  # layer patterns only: override the row's embeddings choice ("frozen" / "trainable")


class Prepared(NamedTuple):
    """What `fit` needs for one strategy: the Finetuner (its `.model` may be a wrapper), optimiser, callbacks, rate."""

    ft: Finetuner
    optimizer: torch.optim.Optimizer | None  # None: fit builds AdamW over what is trainable
    callbacks: list[Callback]
    lr: float


@dataclass(frozen=True)
class Strategy:
    """One registry row: a name, one line on what it does, its kind, and the function that sets a model up for it."""

    name: str
    description: str
    kind: str  # "layers": a freeze pattern; "gradual": unfreezes during training; "parameters": inside every layer;
    # "adaptive": what trains (or how fast) changes during training, by random draws or measured gradients
    setup: Callable[[Strategy, nn.Module, SetupOptions], Prepared]
    decoder: bool = True  # offered for decoder LLM runs too (gradual and head-only runs are encoder experiments here)
    embeddings: str = "auto"  # Finetuner's embeddings choice for a layer pattern

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Strategy {self.name!r} has kind {self.kind!r}; choose from {', '.join(KINDS)}.")

    def prepare(self, model: nn.Module, options: SetupOptions) -> Prepared:
        """Set `model` up for this strategy."""
        if options.embeddings is not None and self.kind != "layers":
            raise ValueError(f"embeddings= applies to layer patterns, not to {self.name!r}; leave it out.")
        return self.setup(self, model, options)
