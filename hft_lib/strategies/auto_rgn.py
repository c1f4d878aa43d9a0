"""Auto-RGN: every tensor's learning rate scaled by its relative gradient norm (Lee et al., ICLR 2023).

"Surgical Fine-Tuning Improves Adaptation to Distribution Shifts" finds that which layers are best to
fine-tune depends on the task and the shift, and proposes a rule that chooses softly from the model
itself: each parameter tensor's relative gradient norm RGN = ||g|| / ||w|| (how large an update the
loss asks for, relative to the weights), divided by the largest RGN of the step, scales that tensor's
learning rate. The tensor the loss pulls hardest trains at the full rate; tensors it barely pulls
nearly freeze. Nothing is frozen outright, so no memory is saved: this strategy is about *which* weights
move, not about cost.

Made exact here: the optimiser has one group per tensor (`AutoRGN.build_optimizer`); just before each
optimiser step a pre-hook computes every RGN from the current gradients and multiplies each group's
rate (already set by the schedule) by RGN / max RGN, and a post-hook puts the scheduled rates back, so
the history logs the schedule and the next step starts from it. A tensor whose weights are all zero
(a bias initialised to zero) has no relative scale: it trains at the full rate and does not enter the
maximum. `factors` holds the last step's multipliers by parameter name.

`exclude_head=True` (the `auto_rgn_body` strategy) leaves the head out of the maximum and trains it at the full
rate. The reference applies Auto-RGN to a model whose head already fits the labels; with a freshly initialised
head, the head's huge RGN sets the maximum and every layer trains at a sliver of the rate. This variant is ours,
named as such: the body's tensors are scaled against the body's largest RGN.
"""

from __future__ import annotations

import torch

from ..callbacks import Callback, Run
from ..freezing import Finetuner
from ..optim import all_parts, param_groups
from .base import Prepared, SetupOptions, Strategy


class AutoRGN(Callback):
    """`fit` callback: per step, scale each tensor's rate by ||g|| / ||w||, normalised by the step's largest.

        rgn = AutoRGN(ft)
        fit(ft, loader, optimizer=rgn.build_optimizer(lr), callbacks=[rgn])
    """

    def __init__(self, ft: Finetuner, exclude_head: bool = False):
        if not isinstance(ft, Finetuner):
            raise TypeError(f"AutoRGN needs a Finetuner, not {type(ft).__name__}; wrap the model with Finetuner(model, 'full').")
        self.ft, self.exclude_head = ft, exclude_head
        self._head: set[int] = set()
        self.factors: dict[str, float] = {}
        self._names: dict[int, str] = {}
        self._scheduled: list[float] = []
        self._hooks: list = []

    def build_optimizer(self, lr: float, weight_decay: float = 0.01, decay: float | None = None) -> torch.optim.AdamW:
        """AdamW over the trainable parameters with one group per tensor (each keeps its part's rate and decay)."""
        if not isinstance(lr, (int, float)) or lr <= 0:
            raise ValueError(f"Learning rate must be a positive number, not {lr!r}; try 5e-5.")
        groups = [{**group, "params": [p]} for group in param_groups(self.ft, all_parts(self.ft), lr, weight_decay, decay)
                  for p in group["params"]]
        if not groups:
            raise ValueError("Nothing is trainable: the freeze pattern froze every parameter; unfreeze at least the head.")
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)

    def on_optimizer(self, run: Run) -> None:
        if any(len(group["params"]) != 1 for group in run.optimizer.param_groups):
            raise ValueError("AutoRGN scales each tensor's rate, so it needs one parameter per optimiser group; "
                             "pass optimizer=AutoRGN(ft).build_optimizer(lr) to fit.")
        self._names = {id(p): n for n, p in self.ft.params.items()}  # looked up now: FSDP2 may have replaced them
        self._head = {id(self.ft.params[n]) for n in self.ft.parts.head} if self.exclude_head else set()
        self._hooks = [run.optimizer.register_step_pre_hook(self._scale),
                       run.optimizer.register_step_post_hook(self._restore)]

    def _scale(self, optimizer, args, kwargs) -> None:
        groups = [g for g in optimizer.param_groups if g["params"][0].grad is not None]
        self._scheduled = [g["lr"] for g in optimizer.param_groups]
        if not groups:
            return
        params = [g["params"][0] for g in groups]
        grads = torch.stack([torch.linalg.vector_norm(p.grad.detach().float()) for p in params])
        weights = torch.stack([torch.linalg.vector_norm(p.detach().float()) for p in params])
        rgn = torch.where(weights > 0, grads / weights.clamp_min(torch.finfo(torch.float32).tiny), torch.nan)
        if self._head:  # the head trains at the full rate and does not enter the maximum
            rgn = torch.where(torch.tensor([id(p) in self._head for p in params]), torch.nan, rgn)
        top = torch.nan_to_num(rgn, nan=0.0).max()
        factors = torch.where(rgn.isnan(), 1.0, rgn / top) if top > 0 else torch.ones_like(rgn)
        for group, param, factor in zip(groups, params, factors.tolist()):
            group["lr"] *= factor
            self.factors[self._names.get(id(param), "?")] = factor

    def _restore(self, optimizer, args, kwargs) -> None:
        for group, lr in zip(optimizer.param_groups, self._scheduled):
            group["lr"] = lr

    def on_fit_end(self, run: Run) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


def setup(spec: Strategy, model, options: SetupOptions) -> Prepared:
    """auto_rgn (auto_rgn_body: the head left out of the maximum): one optimiser group per tensor, each rate scaled by
    its relative gradient norm every step."""
    ft = Finetuner(model, "full", verbose=False)
    rgn = AutoRGN(ft, exclude_head=spec.name == "auto_rgn_body")
    return Prepared(ft, rgn.build_optimizer(options.lr, options.weight_decay, options.lr_decay), [rgn], options.lr)
