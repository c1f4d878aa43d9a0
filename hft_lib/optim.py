"""Optimiser over trainable parameters only, discriminative learning rates, and LR schedules.

Every parameter group carries a `base_lr`; the training loop sets `lr = base_lr * factor(step)`
each step. Groups added later (gradual unfreezing) therefore follow the same schedule, which a
`torch.optim.lr_scheduler` built once at the start would not do.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .freezing import Finetuner

ULMFIT_DECAY = 2.6  # Howard & Ruder (2018): each layer down gets the rate of the layer above / 2.6


def layer_lr(ft: Finetuner, part: str | int, lr: float, decay: float | None) -> float:
    """Learning rate of one part: the head gets `lr`, layer i gets lr / decay**(n - i), embeddings the lowest."""
    if not decay:
        return lr
    if lr <= 0 or decay < 1:
        raise ValueError("Discriminative learning rates need lr > 0 and a decay >= 1 (ULMFiT uses 2.6).")
    stacks = ft.parts.stack_ranges()  # depth counts within a layer's own stack (T5: encoder and decoder alike)
    if isinstance(part, str):
        depth = {"head": 0, "embeddings": max(len(r) for r in stacks) + 1}[part]
    else:
        depth = next(r.stop - part for r in stacks if part in r)
    return lr / decay**depth


def _no_decay(ft: Finetuner, name: str) -> bool:
    """Biases and norm weights (norms found by module type, so GPT-2's `ln_1` and BLOOM's `ln_*` count) get no decay."""
    return name.endswith("bias") or name in ft.norm_parameters


def param_groups(ft: Finetuner, parts: list[str | int], lr: float, weight_decay: float, decay: float | None) -> list[dict]:
    """Parameter groups for these parts' trainable parameters: one group per part and decay kind."""
    groups = []
    for part in parts:
        names = {"embeddings": ft.parts.embeddings, "head": ft.parts.head}.get(part) if isinstance(part, str) else ft.parts.layers[part]
        trainable = [n for n in names if ft.params[n].requires_grad]
        for wd, keep in ((weight_decay, lambda n: not _no_decay(ft, n)), (0.0, lambda n: _no_decay(ft, n))):
            params = [ft.params[n] for n in trainable if keep(n)]
            if params:
                rate = layer_lr(ft, part, lr, decay)
                groups.append({"params": params, "lr": rate, "base_lr": rate, "weight_decay": wd, "part": str(part)})
    return groups


def all_parts(ft: Finetuner) -> list[str | int]:
    return ["embeddings", *range(ft.n_layers), "head"]


def build_optimizer(ft: Finetuner, lr: float, weight_decay: float = 0.01, decay: float | None = None) -> torch.optim.AdamW:
    """AdamW over exactly the trainable parameters, one group per part (for discriminative rates)."""
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise ValueError(f"Learning rate must be a positive number, not {lr!r}; try 5e-5.")
    groups = param_groups(ft, all_parts(ft), lr, weight_decay, decay)
    if not groups:
        raise ValueError("Nothing is trainable: the freeze pattern froze every parameter; unfreeze at least the head.")
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def optimizer_parameter_ids(optimizer: torch.optim.Optimizer) -> set[int]:
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


def add_parts(optimizer: torch.optim.Optimizer, ft: Finetuner, parts: list[str | int], lr: float,
              weight_decay: float, decay: float | None) -> int:
    """Add newly trainable parameters of these parts as new groups; returns how many were added."""
    known = optimizer_parameter_ids(optimizer)
    added = 0
    for group in param_groups(ft, parts, lr, weight_decay, decay):
        group["params"] = [p for p in group["params"] if id(p) not in known]
        if group["params"]:
            optimizer.add_param_group(group)
            added += len(group["params"])
    return added


def match_trainable(optimizer: torch.optim.Optimizer, ft: Finetuner, lr: float, weight_decay: float = 0.01,
                    decay: float | None = None) -> int:
    """Make the optimiser hold exactly the trainable parameters again, after the trainable set changed.

    Groups whose parameters stay keep their settings and state; newly trainable parameters join as new groups
    (as in gradual unfreezing); parameters no longer trainable leave, and their state (AdamW's two moments) and
    gradients are deleted, so the memory is really given back. Groups follow `build_optimizer`'s order, so a
    checkpointed optimiser loads into a rebuilt one. Returns the bytes of optimiser state freed.
    """
    from .runtime.sharding import local_bytes  # a DTensor (FSDP2) counts its own shard

    wanted = param_groups(ft, all_parts(ft), lr, weight_decay, decay)
    keep = {id(p) for group in wanted for p in group["params"]}
    freed = 0
    for param in [p for group in optimizer.param_groups for p in group["params"] if id(p) not in keep]:
        freed += sum(local_bytes(t) for t in optimizer.state.pop(param, {}).values() if torch.is_tensor(t))
        param.grad = None
    old = {(g.get("part"), g["weight_decay"], tuple(map(id, g["params"]))): g for g in optimizer.param_groups}
    optimizer.param_groups = []
    for group in wanted:
        same = old.get((group["part"], group["weight_decay"], tuple(map(id, group["params"]))))
        if same is not None:
            optimizer.param_groups.append(same)
        else:
            optimizer.add_param_group(group)  # fills in AdamW's defaults (betas, eps, ...)
    return freed


# -- schedules: factor(step) in [0, 1] ------------------------------------------------------
def constant(total_steps: int) -> Callable[[int], float]:
    return lambda step: 1.0


def linear_warmup_decay(total_steps: int, warmup: float = 0.1) -> Callable[[int], float]:
    """Linear warm-up over the first `warmup` fraction of steps, then linear decay to 0."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor


def slanted_triangular(total_steps: int, cut_frac: float = 0.1, ratio: float = 32) -> Callable[[int], float]:
    """ULMFiT's slanted triangular rate: short linear rise, long linear fall, floor 1/ratio."""
    cut = max(1, math.floor(total_steps * cut_frac))

    def factor(step: int) -> float:
        p = step / cut if step < cut else 1 - (step - cut) / max(1, cut * (1 / cut_frac - 1))
        return (1 + p * (ratio - 1)) / ratio

    return factor


SCHEDULES = {"constant": constant, "linear": linear_warmup_decay, "slanted_triangular": slanted_triangular}


def make_schedule(name: str, total_steps: int) -> Callable[[int], float]:
    if name not in SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; use one of {sorted(SCHEDULES)}.")
    return SCHEDULES[name](total_steps)


def apply_schedule(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every group's rate to its `base_lr` x factor; a group without one (a user's optimizer) keeps its first rate as base."""
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * factor
