"""The HFT paper's own method: freeze half of the matrices *inside* every layer, redrawn each round.

Hui et al. (2024), "HFT: Half Fine-Tuning for Large Language Models", freeze parameters at the
level of categories inside each transformer block, not whole layers: half of the attention
matrices (e.g. 2 of LLaMA's q/k/v/o), half of the feed-forward matrices and half of the norms,
chosen at random; the embeddings and the LM head stay trainable. The draw is repeated every
training round, so over a long run every matrix gets trained some of the time.

Contrast with the layer-level patterns in `freezing.py` (`lower_half`, `alternate`), which freeze
whole layers. Here *every* layer is partly trainable, so the backward pass always runs through
the whole stack: the paper's method saves optimiser state and weight-gradient work, not the
backward pass itself.

How "half" is counted (our reading of the paper, made exact): within each layer, a category with
n matrices freezes n // 2 of them; when n is odd (LLaMA's gate/up/down: 3) one more is frozen in
a random half of the layers, so model-wide exactly half of that category is frozen (2 or 1 of 3
per layer). A bias travels with its weight. Norms are found by module type (`layers.is_norm`:
LayerNorm, RMSNorm and the families' own norm classes, whatever they are called); anything else
under "attn"/"attention" is attention, the rest of the layer is feed-forward.

Re-drawing and the optimiser: build the optimiser once over every parameter that can ever be
trainable (`HalfParameterRedraw.build_optimizer`). The training loop sets gradients to None after
each step and frozen parameters get no gradient, and AdamW skips parameters whose grad is None, so
a parameter frozen in this round is moved neither by momentum nor by weight decay.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch

from ..callbacks import Callback, Run
from ..freezing import Finetuner
from ..optim import build_optimizer
from ..patterns import module_kind
from .base import Prepared, SetupOptions, Strategy

if TYPE_CHECKING:
    import pandas as pd

CATEGORIES = ("attention", "ffn", "norm")


def layer_units(ft: Finetuner) -> list[dict[str, list[list[str]]]]:
    """Per layer: category -> units, each unit the parameter names of one matrix or norm (weight + bias)."""
    out = []
    for names in ft.parts.layers:
        units: OrderedDict[str, list[str]] = OrderedDict()
        for name in names:
            units.setdefault(name.rsplit(".", 1)[0], []).append(name)
        by_cat: dict[str, list[list[str]]] = {c: [] for c in CATEGORIES}
        for module, params in units.items():
            by_cat[module_kind(module, params[0] in ft.norm_parameters)].append(params)
        out.append(by_cat)
    return out


def draw_frozen(ft: Finetuner, seed: int) -> list[str]:
    """Names of the parameters one random HFT draw freezes (half of each category in every layer)."""
    rng = random.Random(seed)
    layers = layer_units(ft)
    frozen: list[str] = []
    # For odd unit counts, the extra frozen unit goes to a random half of the layers (exact half overall).
    extra = {c: set(rng.sample(range(len(layers)), len(layers) // 2)) for c in CATEGORIES}
    for index, by_cat in enumerate(layers):
        for cat in CATEGORIES:
            units = by_cat[cat]
            k = len(units) // 2 + (1 if len(units) % 2 and index in extra[cat] else 0)
            for unit in rng.sample(units, k):
                frozen += unit
    return frozen


def _apply(ft: Finetuner, frozen: list[str]) -> None:
    ft.set_trainable(list(ft.params), True)  # embeddings, head and the drawn half stay trainable (peft-frozen weights stay frozen)
    ft.set_trainable(frozen, False)


def apply_hft_paper(ft: Finetuner, seed: int = 0) -> list[str]:
    """Freeze one random half of every layer's attention, feed-forward and norm units (static draw).

    Everything else (embeddings, LM head / classifier, the other half) is made trainable.
    Returns the names of the frozen parameters.
    """
    if not isinstance(ft, Finetuner):
        raise TypeError(f"apply_hft_paper needs a Finetuner, not {type(ft).__name__}; wrap the model with Finetuner(model, 'full').")
    frozen = draw_frozen(ft, seed)
    _apply(ft, frozen)
    return frozen


class HalfParameterRedraw(Callback):
    """The paper's HFT: a fresh random half is frozen every round (`every` optimiser steps).

    Use it as a `fit` callback: `fit(ft, ..., optimizer=redraw.build_optimizer(lr), callbacks=[redraw])`, or
    call `redraw()` yourself between epochs. Round r uses the draw of seed `seed + r`; checkpoints keep
    the round, so a resumed run continues with the same masks.

    Args:
        ft: the Finetuner of the model (its freeze pattern is overridden).
        every: optimiser steps per round (None: only explicit `redraw()`).
    """

    def __init__(self, ft: Finetuner, seed: int = 0, every: int | None = None):
        if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
            raise ValueError(f"every must be a whole number of steps of at least 1 (or None), not {every!r}.")
        self.ft, self.seed, self.every = ft, seed, every
        self.round = 0
        self.frozen = apply_hft_paper(ft, seed)
        self.rounds: list[list[str]] = [self.frozen]

    def redraw(self) -> list[str]:
        """Start the next round: freeze a new random half; returns the names now frozen."""
        self.round += 1
        self.frozen = apply_hft_paper(self.ft, self.seed + self.round)
        self.rounds.append(self.frozen)
        return self.frozen

    def on_step_end(self, run: Run) -> None:
        """Redraw after every `every` optimiser steps."""
        if self.every and (run.step + 1) % self.every == 0:
            self.redraw()

    def state_dict(self) -> dict:
        """What a checkpoint needs to continue the redraws exactly: the round in force (and the settings it came from)."""
        return {"kind": "HalfParameterRedraw", "seed": self.seed, "every": self.every, "round": self.round}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint's round: re-apply that round's draw (the same seed and `every` are required)."""
        if (state.get("seed"), state.get("every")) != (self.seed, self.every):
            raise ValueError(f"The checkpoint's HFT redraw used seed={state.get('seed')}, every={state.get('every')}, not "
                             f"seed={self.seed}, every={self.every}; resume with the same HalfParameterRedraw settings.")
        self.round = int(state["round"])
        self.rounds = [draw_frozen(self.ft, self.seed + r) for r in range(self.round + 1)]
        self.frozen = self.rounds[-1]
        _apply(self.ft, self.frozen)

    def build_optimizer(self, lr: float, weight_decay: float = 0.01, decay: float | None = None) -> torch.optim.AdamW:
        """AdamW over every parameter any round can train (frozen-now ones are skipped: their grad is None)."""
        _apply(self.ft, [])
        try:
            return build_optimizer(self.ft, lr, weight_decay, decay)
        finally:
            _apply(self.ft, self.frozen)


def mask_table(ft: Finetuner) -> pd.DataFrame:
    """Per layer: how many attention, feed-forward and norm units are frozen now, e.g. "2/4"."""
    rows = []
    for index, by_cat in enumerate(layer_units(ft)):
        row = {"layer": index}
        for cat in CATEGORIES:
            units = by_cat[cat]
            frozen = sum(not ft.params[unit[0]].requires_grad for unit in units)
            row[cat] = f"{frozen}/{len(units)}"
        rows.append(row)
    import pandas as pd  # only here: `import hft_lib` stays light

    return pd.DataFrame(rows).set_index("layer")


def frozen_unit_names(ft: Finetuner) -> dict[int, list[str]]:
    """Per layer: the short names of the frozen units (e.g. 'self_attn.q_proj'), for display."""
    out = {}
    for index, (prefix, by_cat) in enumerate(zip(ft.parts.layer_names, layer_units(ft))):
        names = [unit[0].rsplit(".", 1)[0].removeprefix(prefix + ".") for cat in CATEGORIES for unit in by_cat[cat]
                 if not ft.params[unit[0]].requires_grad]
        out[index] = names
    return out


def setup(spec: Strategy, model, options: SetupOptions) -> Prepared:
    """hft_paper: the paper's half of every layer frozen, redrawn every `options.redraw_every` steps (default: never)."""
    ft = Finetuner(model, "full", verbose=False)
    redraw = HalfParameterRedraw(ft, seed=options.seed, every=options.redraw_every)
    return Prepared(ft, redraw.build_optimizer(options.lr, options.weight_decay, options.lr_decay), [redraw], options.lr)


def setup_static(spec: Strategy, model, options: SetupOptions) -> Prepared:
    """hft_paper_static: the paper's half of every layer, drawn once from `options.seed`."""
    ft = Finetuner(model, "full", verbose=False)
    apply_hft_paper(ft, options.seed)
    return Prepared(ft, build_optimizer(ft, options.lr, options.weight_decay, options.lr_decay), [], options.lr)
