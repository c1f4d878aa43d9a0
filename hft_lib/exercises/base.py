"""What every checker shares: the hint-carrying error, the tiny models it runs on, and `check`, which a chapter calls."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ExerciseError(AssertionError):
    """The student's function does not do what the exercise asks; the message is the hint."""


def tiny_classifier(layers: int = 4, num_labels: int = 3, seed: int = 0) -> nn.Module:
    """A BERT classifier with `layers` layers of width 16 (built locally, random weights)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=num_labels)
    return BertForSequenceClassification(config)


def tiny_batch(num_labels: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, 100, (4, 10), generator=g), "attention_mask": torch.ones(4, 10, dtype=torch.long),
            "labels": torch.randint(0, num_labels, (4,), generator=g)}


def _frozen_layers(model: nn.Module) -> list[int]:
    return [i for i, layer in enumerate(model.bert.encoder.layer) if not any(p.requires_grad for p in layer.parameters())]


def _partly_frozen(model: nn.Module) -> list[int]:
    out = []
    for i, layer in enumerate(model.bert.encoder.layer):
        flags = {p.requires_grad for p in layer.parameters()}
        if len(flags) == 2:
            out.append(i)
    return out


def check(checker: Callable[[Callable], None], student) -> None:
    """Run a checker in a chapter on the student's function (or value): prints what passed, or "Not yet:" and the hint
    (never raises)."""
    if student is None:
        print("Not yet: replace None with your answer.")
        return
    try:
        checker(student)
    except NotImplementedError:
        print("Not yet: the function still raises NotImplementedError; replace that line with your code.")
    except ExerciseError as err:
        print(f"Not yet: {err}")
