"""How much each layer moved in fine-tuning: linear CKA of representations and relative weight change."""

from __future__ import annotations

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
