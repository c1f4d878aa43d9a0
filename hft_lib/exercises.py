"""Checkers for the notebooks' exercises: each runs the student's function on tiny models and answers with a hint.

A checker returns normally (and prints what passed) when the function does what the exercise asks,
and raises `ExerciseError` with one specific hint otherwise: which layer is wrong, which parameter the
optimiser should not hold, what to look at. The tiny models are built from configs (no download), so
a check takes well under a second.
"""

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


def check_freeze_function(student: Callable[[nn.Module], object], expected: Callable[[int], list[int]], name: str,
                          embeddings_frozen: bool | None = None) -> None:
    """Run `student(model)` on 4-, 5- and 6-layer models; compare the frozen layers with `expected(n_layers)`."""
    for n in (4, 5, 6):
        model = tiny_classifier(layers=n)
        student(model)
        partly = _partly_frozen(model)
        if partly:
            raise ExerciseError(f"Layer {partly[0]} is only partly frozen: set requires_grad on every tensor of the layer "
                                "(`for p in layer.parameters(): p.requires_grad = False`).")
        got, want = _frozen_layers(model), expected(n)
        if not got and want:
            raise ExerciseError(f"Nothing is frozen in a {n}-layer model: did you set `requires_grad` on the parameters "
                                "(`layer.parameters()`) rather than on the layer module itself?")
        if got != want:
            raise ExerciseError(f"With {n} layers, {name} should freeze layers {want}, but froze {got}. "
                                f"Hint: layers count from 0 at the input; n // 2 = {n // 2} here.")
        head = [p for p in model.classifier.parameters()]
        if not all(p.requires_grad for p in head):
            raise ExerciseError("The classifier (the head) is frozen: a new task's head must always train.")
        emb = all(p.requires_grad for p in model.bert.embeddings.parameters())
        if embeddings_frozen is not None and emb == embeddings_frozen:
            raise ExerciseError(f"The embeddings should be {'frozen' if embeddings_frozen else 'trainable'} here.")
    print(f"{name}: correct on 4, 5 and 6 layers (the head trains).")


def check_upper_half(student: Callable[[nn.Module], object]) -> None:
    """Exercise: freeze the upper half of the layers (n // 2 .. n - 1); the embeddings and the head train."""
    check_freeze_function(student, lambda n: list(range(n // 2, n)), "freeze_upper_half", embeddings_frozen=False)


def check_optimizer(student: Callable[[nn.Module], torch.optim.Optimizer]) -> None:
    """Exercise: build an AdamW over exactly the trainable parameters of a model whose lower half is frozen."""
    model = tiny_classifier(layers=4)
    for layer in model.bert.encoder.layer[:2]:
        for p in layer.parameters():
            p.requires_grad = False
    optimizer = student(model)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ExerciseError(f"Return the optimizer (a torch.optim.Optimizer), not {type(optimizer).__name__}.")
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    frozen = [names[i] for i in held if i in names and not dict(model.named_parameters())[names[i]].requires_grad]
    if frozen:
        raise ExerciseError(f"The optimizer holds {len(frozen)} frozen tensors (e.g. {frozen[0]}): pass only the parameters "
                            "with requires_grad, or it keeps state and applies weight decay to weights you meant to keep.")
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    if missing:
        raise ExerciseError(f"{len(missing)} trainable tensors are missing from the optimizer (e.g. {missing[0]}): "
                            "they would never be updated.")
    print("optimizer: holds exactly the trainable parameters.")


def check_training_step(student: Callable[[nn.Module, torch.optim.Optimizer, dict], float]) -> None:
    """Exercise: one training step (forward, loss, backward, optimizer step, zero the gradients); frozen weights stay."""
    model = tiny_classifier(layers=4)
    for layer in model.bert.encoder.layer[:2]:
        for p in layer.parameters():
            p.requires_grad = False
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss = student(model, optimizer, tiny_batch())
    if not isinstance(loss, (float, int)):
        raise ExerciseError(f"Return the loss as a Python number (`loss.item()`), not {type(loss).__name__}.")
    moved = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    if not moved:
        raise ExerciseError("No trainable weight changed: call `loss.backward()` and then `optimizer.step()`.")
    changed_frozen = [n for n, p in model.named_parameters() if not p.requires_grad and not torch.equal(p, before[n])]
    if changed_frozen:
        raise ExerciseError(f"A frozen weight changed ({changed_frozen[0]}): only the optimizer may update weights.")
    stale = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    if stale:
        raise ExerciseError("Gradients are left over after the step: call `optimizer.zero_grad()`, or the next step adds "
                            "this step's gradients to its own.")
    print(f"training step: loss {loss:.3f}; {len(moved)} trainable tensors moved, every frozen one unchanged.")


def check(checker: Callable[[Callable], None], student: Callable) -> None:
    """Run a checker in a chapter: prints what passed, or "Not yet:" and the hint (never raises)."""
    try:
        checker(student)
    except NotImplementedError:
        print("Not yet: the function still raises NotImplementedError; replace that line with your code.")
    except ExerciseError as err:
        print(f"Not yet: {err}")
