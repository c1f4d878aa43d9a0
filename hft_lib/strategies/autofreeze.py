"""Progressive freezing driven by the gradients, in the spirit of AutoFreeze (Liu et al. 2021).

AutoFreeze ("Automatically Freezing Model Blocks to Accelerate Fine-tuning") observes that during
fine-tuning the layers near the input settle first, and freezes layers from the bottom once their
gradients stop changing, so that later steps skip their backward pass. Its own test compares gradient
norms between evaluation intervals; ours is that test made simple and exact:

* each trainable layer's gradient norm (all its tensors together) is averaged over a window of `every`
  optimiser steps, read just before each step (an optimiser step pre-hook);
* at the end of a window, a layer's relative change is |this window - last window| / last window;
* from the lowest trainable layer upwards, layers whose change is below `threshold` are frozen; the scan
  stops at the first layer still changing, so the frozen layers are always a prefix. The top layer and
  the head are never frozen.

The embeddings freeze with layer 0 (unless an LM head is tied to them: then they are the head and keep
training), so no gradient travels into the frozen prefix and its backward pass is skipped. Frozen layers
leave the optimiser and their AdamW state is freed (`optim.match_trainable`).

Frozen-prefix cache (`cache=True`, off by default): once the embeddings and layer 0 are frozen, a
`runtime.caching.FrozenPrefixCache` serves the prefix's output. Each time the prefix grows the cache is
rebuilt at the new depth (what it held is the output of a shallower prefix), so its saving starts the
second time each example is seen after a growth. The cache runs the prefix without dropout (see
caching.py), which changes the run: that is why it is not the default.
"""

from __future__ import annotations

import torch

from ..callbacks import Callback, Run
from ..freezing import Finetuner
from ..optim import match_trainable
from .base import Prepared, SetupOptions, Strategy

EVERY = 20  # optimiser steps per measuring window
THRESHOLD = 0.1  # a layer whose windowed gradient norm changed by less than 10% counts as settled


class AutoFreeze(Callback):
    """`fit` callback: freeze layers from the bottom once their gradient norm stops changing (module docstring).

    Args:
        ft: the Finetuner of the model (start it "full"; one layer stack).
        every: optimiser steps per measuring window.
        threshold: relative change of a layer's windowed gradient norm below which it is frozen (> 0).
        cache: serve the frozen prefix's output from a `FrozenPrefixCache` (changes dropout below it).
    """

    def __init__(self, ft: Finetuner, every: int = EVERY, threshold: float = THRESHOLD, cache: bool = False):
        if not isinstance(ft, Finetuner):
            raise TypeError(f"AutoFreeze needs a Finetuner, not {type(ft).__name__}; wrap the model with Finetuner(model, 'full').")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"AutoFreeze's every must be a whole number of steps of at least 1, not {every!r}.")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0:
            raise ValueError(f"AutoFreeze's threshold must be a positive relative change (e.g. 0.1), not {threshold!r}.")
        if len(ft.parts.stacks) > 1 or ft.n_layers < 2:
            raise ValueError(f"AutoFreeze freezes a prefix of one stack of at least 2 layers, and {type(ft.model).__name__} "
                             f"has {len(ft.parts.stacks)} stack(s) of {ft.n_layers} layers in all; use a layer pattern instead.")
        self.ft, self.every, self.threshold, self.use_cache = ft, every, float(threshold), cache
        self.frozen = 0  # layers 0 .. frozen-1 are frozen
        self.previous: list[float] | None = None  # last window's mean gradient norm per layer
        self.window, self.count = [0.0] * ft.n_layers, 0
        self.frozen_at: list[tuple[int, int]] = []  # (steps done, frozen layers) at each growth
        self.optimizer: torch.optim.Optimizer | None = None
        self.rates: tuple[float, float, float | None] = (1.0, 0.0, None)
        self.cache = None
        self._hook = None

    # -- measuring ---------------------------------------------------------------------------
    def _measure(self, optimizer, args, kwargs) -> None:
        """Add every trainable layer's gradient norm of this step to the window (runs just before optimizer.step)."""
        norms = []
        for index in range(self.frozen, self.ft.n_layers):
            grads = [self.ft.params[n].grad for n in self.ft.parts.layers[index]]
            grads = [torch.linalg.vector_norm(g.detach().float()) for g in grads if g is not None]
            norms.append(torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(()))
        for index, norm in zip(range(self.frozen, self.ft.n_layers), torch.stack(norms).tolist()):
            self.window[index] += norm
        self.count += 1

    def settled_prefix(self, current: list[float]) -> int:
        """How many bottom layers are frozen after a window with these mean norms (never the top layer)."""
        frozen = self.frozen
        while frozen < self.ft.n_layers - 1 and self.previous and self.previous[frozen] > 0:
            if abs(current[frozen] - self.previous[frozen]) / self.previous[frozen] >= self.threshold:
                break
            frozen += 1
        return frozen

    # -- freezing ----------------------------------------------------------------------------
    def _apply(self) -> None:
        """Freeze layers 0 .. frozen-1 (and the embeddings with layer 0, unless they are a tied LM head)."""
        self.ft.freeze_layers(range(self.frozen))
        if self.frozen and not self.ft.parts.tied:
            self.ft.set_embeddings_trainable(False)
        if self.optimizer is not None:
            match_trainable(self.optimizer, self.ft, *self.rates)
        if self.use_cache and self.frozen and not self.ft.embeddings_trainable:
            from ..runtime.caching import FrozenPrefixCache

            if self.cache is not None:
                self.cache.remove()
            self.cache = FrozenPrefixCache(self.ft)

    def on_optimizer(self, run: Run) -> None:
        self.optimizer, self.rates = run.optimizer, (run.lr, run.weight_decay, run.lr_decay)
        self._hook = run.optimizer.register_step_pre_hook(self._measure)

    def on_step_end(self, run: Run) -> None:
        if (run.step + 1) % self.every:
            return
        current = [total / max(self.count, 1) for total in self.window]
        frozen = self.settled_prefix(current)
        self.previous, self.window, self.count = current, [0.0] * self.ft.n_layers, 0
        if frozen > self.frozen:
            self.frozen = frozen
            self.frozen_at.append((run.step + 1, frozen))
            self._apply()

    def on_fit_end(self, run: Run) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self.cache is not None:  # the model goes back to its plain forward
            self.cache.remove()
            self.cache = None

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"kind": "AutoFreeze", "every": self.every, "threshold": self.threshold, "frozen": self.frozen,
                "previous": self.previous, "window": self.window, "count": self.count,
                "frozen_at": [list(row) for row in self.frozen_at]}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a checkpoint: the frozen prefix, the last window's norms and the window in progress."""
        if (state.get("every"), state.get("threshold")) != (self.every, self.threshold):
            raise ValueError(f"The checkpoint's AutoFreeze used every={state.get('every')}, threshold={state.get('threshold')}, "
                             f"not every={self.every}, threshold={self.threshold}; resume with the same settings.")
        self.frozen, self.previous = int(state["frozen"]), state["previous"]
        self.window, self.count = list(state["window"]), int(state["count"])
        self.frozen_at = [tuple(row) for row in state["frozen_at"]]
        if self.frozen:
            self._apply()


def setup(spec: Strategy, model, options: SetupOptions) -> Prepared:
    """autofreeze: measuring windows of `options.window` steps (default `EVERY`); fit builds the optimiser."""
    ft = Finetuner(model, "full", verbose=False)
    return Prepared(ft, None, [AutoFreeze(ft, every=options.window or EVERY)], options.lr)
