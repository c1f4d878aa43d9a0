"""LISA: a few randomly drawn layers train at a time, redrawn every K steps (Pan et al. 2024, LMFlow's LISA trainer).

Layerwise Importance Sampled AdamW keeps the embeddings and the head always trainable and, of the
transformer layers, only `active` of them (the paper's gamma, default 2), drawn uniformly at random
without replacement; every `every` optimiser steps (the paper's K, default 20) a fresh draw replaces them.
Over a long run every layer trains some of the time, while at any moment the optimiser holds state for
only the active layers: that is where LISA's memory saving comes from.

The saving is real only if the state of a layer that leaves the active set is *freed*. Turning off
`requires_grad` is not enough: AdamW keeps `exp_avg` and `exp_avg_sq` of every parameter it ever
stepped, so after a few redraws it holds state for nearly every layer, as much as full fine-tuning
(LMFlow's users report exactly that, OptimalScale/LMFlow issues #729 and #768). Here each redraw calls
`optim.match_trainable`: the leaving layers' groups are removed and their state deleted, the arriving
layers join as new groups and start Adam's moments from zero (a layer drawn again keeps its state,
as do the embeddings and the head). `freed` records the bytes given back at every redraw;
`benchmarks/lisa_memory.py` measures the state left against full fine-tuning's.

Round r draws from its own generator seeded with (seed, r), so a run is deterministic under a seed and
a checkpoint needs to keep only the round (`state_dict`).
"""

from __future__ import annotations

import random

import torch

from ..callbacks import Callback, Run
from ..freezing import Finetuner
from ..optim import match_trainable
from .base import Prepared, SetupOptions, Strategy

ACTIVE_LAYERS = 2  # the paper's gamma: layers trained at a time
EVERY = 20  # the paper's K: optimiser steps between redraws


def draw_active(n_layers: int, active: int, seed: int, round_: int) -> list[int]:
    """The layers active in round `round_`: `active` of `n_layers`, uniformly at random, sorted."""
    return sorted(random.Random(f"lisa:{seed}:{round_}").sample(range(n_layers), active))


class LISA(Callback):
    """`fit` callback: train the embeddings, the head and `active` random layers; redraw every `every` steps.

        lisa = LISA(ft, active=2, every=20, seed=0)
        fit(ft, loader, callbacks=[lisa])      # fit builds the optimiser over what is trainable now

    Args:
        ft: the Finetuner of the model (its freeze pattern is overridden).
        active: layers trainable at a time (1 .. ft.n_layers).
        every: optimiser steps per round.
    """

    def __init__(self, ft: Finetuner, active: int = ACTIVE_LAYERS, every: int = EVERY, seed: int = 0):
        if not isinstance(ft, Finetuner):
            raise TypeError(f"LISA needs a Finetuner, not {type(ft).__name__}; wrap the model with Finetuner(model, 'full').")
        if not isinstance(active, int) or isinstance(active, bool) or not 1 <= active <= ft.n_layers:
            raise ValueError(f"LISA's active layers must be a whole number from 1 to the model's {ft.n_layers} layers, "
                             f"not {active!r}.")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"LISA's every must be a whole number of steps of at least 1, not {every!r}.")
        self.ft, self.active_count, self.every, self.seed = ft, active, every, seed
        self.round = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.rates: tuple[float, float, float | None] = (1.0, 0.0, None)  # lr, weight decay, lr decay: set by the run
        self.freed: list[int] = []  # optimiser-state bytes given back at each redraw
        self.active = self._apply()

    def _apply(self) -> list[int]:
        """Make exactly this round's layers, the embeddings and the head trainable."""
        active = draw_active(self.ft.n_layers, self.active_count, self.seed, self.round)
        self.ft.freeze_layers(range(self.ft.n_layers))
        self.ft.unfreeze_layers(active)
        self.ft.set_embeddings_trainable(True)
        self.ft.set_trainable(self.ft.parts.head, True)
        return active

    def redraw(self) -> list[int]:
        """Start the next round: draw new active layers and free the state of the ones leaving; returns the active layers."""
        self.round += 1
        self.active = self._apply()
        if self.optimizer is not None:
            self.freed.append(match_trainable(self.optimizer, self.ft, *self.rates))
        return self.active

    def on_optimizer(self, run: Run) -> None:
        self.optimizer, self.rates = run.optimizer, (run.lr, run.weight_decay, run.lr_decay)
        match_trainable(self.optimizer, self.ft, *self.rates)  # a user's optimiser over more parameters is cut to the active set

    def on_step_end(self, run: Run) -> None:
        if (run.step + 1) % self.every == 0:
            self.redraw()

    def state_dict(self) -> dict:
        return {"kind": "LISA", "seed": self.seed, "active": self.active_count, "every": self.every, "round": self.round}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint's round (the same seed, active count and `every` are required)."""
        saved = (state.get("seed"), state.get("active"), state.get("every"))
        if saved != (self.seed, self.active_count, self.every):
            raise ValueError(f"The checkpoint's LISA used seed={saved[0]}, active={saved[1]}, every={saved[2]}, not "
                             f"seed={self.seed}, active={self.active_count}, every={self.every}; resume with the same settings.")
        self.round = int(state["round"])
        self.active = self._apply()
        if self.optimizer is not None:
            match_trainable(self.optimizer, self.ft, *self.rates)


def setup(spec: Strategy, model, options: SetupOptions) -> Prepared:
    """lisa: `ACTIVE_LAYERS` random layers, redrawn every `options.redraw_every` steps (default `EVERY`); fit builds the optimiser."""
    ft = Finetuner(model, "full", verbose=False)
    return Prepared(ft, None, [LISA(ft, seed=options.seed, every=options.redraw_every or EVERY)], options.lr)
