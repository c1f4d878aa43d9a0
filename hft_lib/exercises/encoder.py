"""Checkers of chapters 00 to 04: freezing, the optimiser, the training step, layer change, pairing, schedules."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .base import ExerciseError, _frozen_layers, _partly_frozen, tiny_batch, tiny_classifier


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
                            "with requires_grad. AdamW skips a tensor whose .grad is None, so today they cost nothing, but "
                            "a zero gradient left by zero_grad(set_to_none=False) or a later unfreezing would give them "
                            "moments and weight decay you did not intend.")
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


# -- chapter 1: which layers change -----------------------------------------------------------------
def check_relative_change(student: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Exercise: relative weight change ||after - before|| / ||before|| of one tensor (notebook 1's measure)."""
    g = torch.Generator().manual_seed(0)
    before = torch.randn(8, 8, generator=g)
    cases = [(before, 0.0), (before * 1.1, 0.1), (-before, 2.0)]
    for after, want in cases:
        got = float(student(before.clone(), after.clone()))
        if abs(got - want) > 1e-4:
            if abs(got - want * before.norm().item()) < 1e-3:
                raise ExerciseError("You returned the absolute change ||after - before||: divide by ||before|| so layers "
                                    "of different sizes and scales compare.")
            raise ExerciseError(f"For after = {'-before' if want == 2.0 else f'{1 + want:g} x before'}, the relative change "
                                f"is {want:g}, not {got:.4g}. Use torch.linalg.norm (the Frobenius norm) of the difference.")
    print("relative change: right on all three cases.")


def check_mean_pool(student: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise: mean-pool token features over the real tokens only (the features the probes read)."""
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    want = torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)])
    got = student(hidden, mask)
    if tuple(got.shape) != (2, 2):
        raise ExerciseError(f"Return one vector per example, shape (batch, hidden) = (2, 2), not {tuple(got.shape)}.")
    if torch.allclose(got, hidden.mean(1)):
        raise ExerciseError("Padding is averaged in: multiply by the attention mask and divide by the number of real tokens.")
    if not torch.allclose(got, want):
        raise ExerciseError(f"Expected {want.tolist()}, got {got.tolist()}: sum features where mask = 1, divide by mask.sum(1).")
    print("mean pooling: right, padding ignored.")


# -- chapter 2: the cost of freezing, and pairing -----------------------------------------------------
def check_freeze_with_embeddings(student: Callable[[nn.Module], object]) -> None:
    """Exercise: freeze the embeddings and the lower half (what embeddings="auto" does), so backward stops early."""
    check_freeze_function(student, lambda n: list(range(n // 2)), "lower half + embeddings", embeddings_frozen=True)


def check_paired_interval(student: Callable[[list, list], tuple]) -> None:
    """Exercise: mean and 95 % t-interval of the per-seed differences b - a (paired over seeds)."""
    from ..measure.stats import mean_ci

    a = [0.80, 0.90, 0.70, 0.85, 0.75]
    b = [0.82, 0.91, 0.73, 0.86, 0.78]
    want = mean_ci([y - x for x, y in zip(a, b)])
    got = tuple(float(v) for v in student(list(a), list(b)))
    if len(got) != 3:
        raise ExerciseError("Return three numbers: (mean difference, low, high).")
    if all(abs(g - w) < 1e-6 for g, w in zip(got, want)):
        print(f"paired interval: {got[0]:+.3f} [{got[1]:+.3f}, {got[2]:+.3f}], right.")
        return
    if abs(got[0] - want[0]) < 1e-6 and got[2] - got[1] > 3 * (want[2] - want[1]):
        raise ExerciseError("The interval is far too wide: you treated the two lists as independent samples. Pair them: "
                            "take the difference seed by seed, then the interval of those differences.")
    if abs(got[0] - want[0]) < 1e-6:
        raise ExerciseError("The mean is right but not the interval: use the t quantile scipy.stats.t.ppf(0.975, n - 1) "
                            "times the standard deviation (ddof=1) over sqrt(n).")
    raise ExerciseError(f"The mean difference b - a is {want[0]:+.3f}, not {got[0]:+.3f}.")


# -- chapter 3: alternate, and where the backward pass goes -------------------------------------------
def check_odd_layers(student: Callable[[nn.Module], object]) -> None:
    """Exercise: freeze the odd-numbered layers (1, 3, 5, ...), the control for alternate."""
    check_freeze_function(student, lambda n: list(range(1, n, 2)), "freeze_odd_layers")


def _backward_depth(frozen: list[int], n_layers: int, embeddings_trainable: bool) -> int:
    """How many layers the backward pass runs through (what `check_backward_depth` compares with; private, so the
    exercise's answer is not importable under its name)."""
    if embeddings_trainable:
        return n_layers
    trainable = [i for i in range(n_layers) if i not in frozen]
    return n_layers - min(trainable) if trainable else 0


def check_backward_depth(student: Callable[[list, int, bool], int]) -> None:
    """Exercise: the number of layers backward runs through, given the frozen layers and the embeddings choice."""
    cases = [([0, 1, 2], 6, False), ([0, 2, 4], 6, False), ([0, 2, 4], 6, True), ([], 6, False), ([0, 1, 2, 3, 4, 5], 6, False),
             ([3, 4, 5], 6, False), ([0, 1], 4, False)]
    for frozen, n, emb in cases:
        want, got = _backward_depth(frozen, n, emb), student(list(frozen), n, emb)
        if got != want:
            why = ("with trainable embeddings the gradient must reach the input, through every layer" if emb else
                   "backward starts at the top and stops below the lowest trainable layer; frozen layers above it still "
                   "pass the gradient down")
            raise ExerciseError(f"Frozen {frozen} of {n}, embeddings {'trainable' if emb else 'frozen'}: {want} layers, not {got}; {why}.")
    print("backward depth: right on all seven cases.")


# -- chapter 4: schedules -----------------------------------------------------------------------------
def check_schedule(student: Callable[[int, int], list[int]], direction: str = "top_down", group: int = 1) -> None:
    """Exercise: the layers trainable at stage k (stage 0: the head alone; each stage unfreezes `group` more layers)."""
    for n in (4, 6):
        for stage in range(n + 2):
            k = min(n, stage * group)
            want = list(range(n - k, n)) if direction == "top_down" else list(range(k))
            got = sorted(student(stage, n))
            if got != want:
                raise ExerciseError(f"{direction}, {group} layer(s) per stage, {n} layers, stage {stage}: trainable {want}, not "
                                    f"{got}. Stage 0 trains only the head; never go past layer {n - 1}.")
    print(f"{direction} schedule ({group} per stage): right for 4 and 6 layers at every stage.")
