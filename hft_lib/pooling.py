"""A mean-pooling classification head: the classifier reads the average of the real tokens' last hidden states.

BERT's classifier reads [CLS] through its pooler (a dense layer and tanh trained by next-sentence prediction).
all-MiniLM-L6-v2 was trained by sentence-transformers with *mean pooling* and no such objective, so its pooler was
never trained for what it is asked here: a strategy that cannot re-purpose [CLS] (head only, BitFit, LoRA) may be
penalised by the head, not by what it freezes. `use_mean_pooling(model)` swaps the pooler for a parameter-free mean
over the attention mask (how the checkpoint was trained), so the head is the classifier alone.
"""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("cls", "mean")


class MeanPooler(nn.Module):
    """Mean of the last hidden states over the real tokens (the mask the encoder was called with; all tokens if none)."""

    def __init__(self):
        super().__init__()
        self.mask: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        mask = self.mask if self.mask is not None and self.mask.shape == hidden_states.shape[:2] else None
        if mask is None:
            return hidden_states.mean(dim=1)
        weights = mask.to(hidden_states.dtype).unsqueeze(-1)
        return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def _remember_mask(pooler: MeanPooler):
    def hook(module, args, kwargs):
        pooler.mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    return hook


def use_mean_pooling(model: nn.Module) -> nn.Module:
    """Replace a BERT-style classifier's [CLS] pooler with `MeanPooler` (in place; returns the model)."""
    base = getattr(model, "base_model", None)
    if base is None or not isinstance(getattr(base, "pooler", None), nn.Module):
        raise ValueError(f"{type(model).__name__} has no [CLS] pooler to replace; mean pooling is for BERT-style "
                         "classifiers (e.g. minilm-l6): use pooling='cls' for this model.")
    pooler = MeanPooler()
    base.pooler = pooler
    base.register_forward_pre_hook(_remember_mask(pooler), with_kwargs=True)
    model.config.hft_pooling = "mean"  # recorded with the model (and in checkpoints' configs)
    return model
