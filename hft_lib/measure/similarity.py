"""How much each layer moved in fine-tuning: linear CKA of representations and relative weight change; whether two
sets of weights match (`match_weights`: on CPU copies, bit for bit only where that can hold)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..freezing import Finetuner


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) between two (examples x features) matrices."""
    x = x - x.mean(0, keepdims=True)
    y = y - y.mean(0, keepdims=True)
    cross = np.linalg.norm(y.T @ x, "fro") ** 2
    return float(cross / (np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")))


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of every parameter, to compare against after training."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()}


def relative_weight_change(ft: Finetuner, before: dict[str, torch.Tensor]) -> pd.Series:
    """Per part (embeddings, layer i): ||W_after - W_before|| / ||W_before|| over its parameters."""
    params = dict(ft.model.named_parameters())
    parts = {"embeddings": ft.parts.embeddings, **{f"layer {i}": names for i, names in enumerate(ft.parts.layers)}}
    out = {}
    for part, names in parts.items():
        diff = sum(float((params[n].detach().cpu() - before[n]).pow(2).sum()) for n in names)
        base = sum(float(before[n].pow(2).sum()) for n in names)
        out[part] = (diff / base) ** 0.5 if base else 0.0
    return pd.Series(out, name="relative weight change")


TOLERANCE = 1e-3  # off the CPU: a few AdamW steps' worth at the rates used here (each step moves a weight by about lr)


@dataclass(frozen=True)
class WeightMatch:
    """How two sets of weights compare (`match_weights`); true when they match as required."""

    tensors: int  # tensors compared
    differing: frozenset[str]  # names of those not bit-identical
    max_difference: float  # the largest absolute difference of any entry
    exact: bool  # bit-identity required (both on the CPU, or weights nothing wrote) or a tolerance
    tolerance: float
    devices: tuple[str, ...]  # where the compared weights lived

    def __bool__(self) -> bool:
        return not self.differing if self.exact else self.max_difference <= self.tolerance

    def __str__(self) -> str:
        if self.exact:
            return "identical, bit for bit" if self else (f"not identical: {len(self.differing)} of {self.tensors} tensors "
                                                           f"differ, by up to {self.max_difference:.2g}")
        verdict = "within" if self else "NOT within"
        return (f"{verdict} {self.tolerance:g} of each other (largest difference {self.max_difference:.2g}); on "
                f"{' and '.join(self.devices)} other kernels and precision change the last digits, so bit-identity is not expected")


def _weights(source: torch.nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dict(source.named_parameters()) if isinstance(source, torch.nn.Module) else dict(source)


def match_weights(a: torch.nn.Module | Mapping[str, torch.Tensor], b: torch.nn.Module | Mapping[str, torch.Tensor],
                  names: Iterable[str] | None = None, exact: bool | None = None, tolerance: float = TOLERANCE) -> WeightMatch:
    """Compare the weights of two models (or `snapshot`s) tensor by tensor, always on CPU copies.

    Args:
        names: only these parameters (default: every parameter of `a`).
        exact: True requires bit-identity (right for weights nothing wrote, such as frozen ones, on any device); False
            allows `tolerance`; None (default) requires bit-identity where every compared tensor lives on the CPU
            (deterministic float32 there) and allows `tolerance` where one is on an accelerator.
    """
    left, right = _weights(a), _weights(b)
    names = list(left) if names is None else list(names)
    missing = [n for n in names if n not in left or n not in right]
    if missing:
        raise ValueError(f"Cannot compare weights: {missing[0]!r} is missing from one side; compare two copies of the same model.")
    devices = tuple(sorted({str(t.device) for n in names for t in (left[n], right[n])}))
    differing, largest = set(), 0.0
    for name in names:
        x, y = left[name].detach().cpu(), right[name].detach().cpu()
        if x.shape != y.shape:
            raise ValueError(f"Cannot compare weights: {name!r} has shape {tuple(x.shape)} on one side and {tuple(y.shape)} "
                             "on the other; compare two copies of the same model.")
        if not torch.equal(x, y):
            differing.add(name)
            largest = max(largest, float((x.float() - y.float()).abs().max()))
    exact = all(d == "cpu" for d in devices) if exact is None else exact
    return WeightMatch(len(names), frozenset(differing), largest, exact, tolerance, devices)
