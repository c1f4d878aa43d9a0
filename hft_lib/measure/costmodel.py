"""How long should a training step take with part of the model frozen? A cost model to check against.

A step runs every block forward: the embeddings, each transformer layer, the head (pooler or final
norm, classifier or LM head, and the loss). Call block b's forward cost F_b. Backward, per block:

    + F_b        activation gradients, when any parameter at or below b is trainable (gradients must
                 travel down through b, or be produced inside it)
    + w_b * F_b  weight gradients, w_b = trainable share of b's parameters (1 for a trainable layer,
                 0 for a frozen one, well under 0.01 for a LoRA layer, about 0.5 for an HFT-paper layer)

so a trainable layer costs F + 2F, a frozen layer that gradients pass through F + F, and a frozen
layer below every trainable parameter (embeddings frozen too) F + 0: no backward at all. On top comes
the optimizer: c * (trainable parameters), covering the fresh gradient buffer of every trainable
tensor (the word-embedding gradient is a dense vocab x hidden matrix even though a batch touches few
rows) and the AdamW update. Both are memory-bound, hence proportional to the parameter count. For
MiniLM this term is large: its word embeddings are about half its weights.

Calibration (`calibrate`) measures on the machine, in the same process, right before a benchmark:
F_b from the timestamps of forward passes in training mode (dropout on) under `torch.no_grad()`, and
c from zero-filled gradient buffers plus one AdamW step over copies of all of the model's
parameters, divided by their number. `predict_step_seconds` then prices any freezing state from
the parameters' `requires_grad` flags, and `predicted_ratio` divides by the price of full
fine-tuning. Nothing is fitted to the step times it is later compared with.

The ideal factors (backward = F and 2F) are only approximately true: on a CPU a layer's backward
costs less than twice its forward (dropout masks, GELU and softmax are cheap to differentiate, and
the forward has fixed per-op overhead), and the word-embedding gradient is mostly memory traffic.
So `calibrate` also times each block's backward pass in isolation (hooks around one backward of
the whole model, once with everything trainable and once with gradients only passing through),
and `step_seconds` uses those measured costs unless asked for the `ideal` model. Both are
reported side by side by `benchmarks/benchmark.py`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..layers import ModelParts
from ..precision import amp_dtype
from ..tracing import split_model


@dataclass
class Calibration:
    """Measured costs of one model on one machine (seconds)."""

    blocks: list[str]  # "embeddings", "layer 0", ..., "head"
    forward_s: list[float]  # forward time of each block
    per_param_s: float  # gradient buffer + AdamW update, per trainable parameter
    parameters: int  # distinct parameters of the model (what full fine-tuning trains)
    backward_full_s: list[float] | None = None  # measured backward of each block, everything trainable
    backward_pass_s: list[float] | None = None  # measured backward of each block, gradients passing through only
    update_per_param_s: float | None = None  # AdamW update alone (gradient buffers are inside the measured backward)

    @property
    def layer_forward_s(self) -> float:
        """Median forward time of one transformer layer (the issue's F)."""
        return statistics.median(self.forward_s[1:-1])

    def describe(self) -> str:
        head, emb = self.forward_s[-1], self.forward_s[0]
        text = (f"F = {1e3 * self.layer_forward_s:.2f} ms per layer ({len(self.blocks) - 2} layers), embeddings "
                f"{1e3 * emb:.2f} ms, head+loss {1e3 * head:.2f} ms; optimizer {1e9 * self.per_param_s:.2f} ns per "
                f"trainable parameter ({1e3 * self.per_param_s * self.parameters:.1f} ms for all {self.parameters:,})")
        if self.backward_full_s and self.backward_pass_s:
            f = self.layer_forward_s
            full, passing = statistics.median(self.backward_full_s[1:-1]), statistics.median(self.backward_pass_s[1:-1])
            text += (f"; measured layer backward: trainable {full / f:.2f}F (model: 2F), gradients passing through "
                     f"{passing / f:.2f}F (model: F); embeddings backward {1e3 * self.backward_full_s[0]:.1f} ms")
        return text


def model_blocks(model: nn.Module, parts: ModelParts | None = None) -> tuple[list[str], list[list[nn.Parameter]]]:
    """Split the parameters into blocks: embeddings, each layer, head, by the package's one split (`split_model`, or
    the Finetuner's `parts`); a tied LM head counts in both places (its weight is used at both ends)."""
    parts = parts or split_model(model)
    params = dict(model.named_parameters())
    blocks = [parts.embeddings, *parts.layers, [*parts.head, *parts.tied]]
    return (["embeddings", *(f"layer {i}" for i in range(len(parts.layers))), "head"],
            [[params[name] for name in block] for block in blocks])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _stamper(stamps: dict[str, float], device: torch.device, clock: Callable[[], float]):
    """`mark(key)` builds a module hook that records the (synchronised) clock under `key` in `stamps`."""
    def mark(key):
        def hook(*_):
            _sync(device)
            stamps[key] = clock()
        return hook
    return mark


def measure_forward(model: nn.Module, batch: dict, parts: ModelParts | None = None, repeats: int = 5,
                    amp: bool = False, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Median forward time of each block (embeddings, layers, head incl. loss), training mode, no grad.

    `clock`: wall time by default; `time.process_time` (CPU time, one torch thread) is steadier on a shared machine.
    """
    layers = [model.get_submodule(n) for n in (parts or split_model(model)).layer_names]
    device = next(model.parameters()).device
    stamps: dict[str, float] = {}
    mark = _stamper(stamps, device, clock)

    handles = []
    for i, layer in enumerate(layers):
        handles.append(layer.register_forward_pre_hook(mark(f"start{i}")))
        handles.append(layer.register_forward_hook(mark(f"end{i}")))
    runs: list[list[float]] = []
    was_training = model.training
    model.train()
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
            for _ in range(repeats + 1):  # the first pass warms up
                _sync(device)
                start = clock()
                model(**batch).loss.item()
                end = clock()
                n = len(layers)
                runs.append([stamps["start0"] - start, *(stamps[f"end{i}"] - stamps[f"start{i}"] for i in range(n)),
                             end - stamps[f"end{n - 1}"]])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [statistics.median(col) for col in zip(*runs[1:])]


def measure_optimizer(model: nn.Module, repeats: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per parameter for fresh gradient buffers plus one AdamW step (on copies; the model is untouched)."""
    unique = list({id(p): p for p in model.parameters()}.values())
    shadow = [nn.Parameter(torch.zeros_like(p)) for p in unique]
    device = unique[0].device
    opt = torch.optim.AdamW(shadow, lr=1e-5, weight_decay=0.01)
    times = []
    for _ in range(repeats + 1):  # the first step allocates the AdamW state
        _sync(device)
        start = clock()
        for p in shadow:
            p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        times.append(clock() - start)
    del opt, shadow
    return statistics.median(times[1:]) / sum(p.numel() for p in unique)


def measure_backward(model: nn.Module, batch: dict, parts: ModelParts | None = None, repeats: int = 3,
                     amp: bool = False, clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], list[float]]:
    """Median backward time of each block (embeddings, layers, head incl. loss) in two states.

    (1) everything trainable; (2) every parameter frozen but the hidden states entering layer 0 made to
    require grad, so gradients pass through every block and no weight gradient is computed. The
    parameters' `requires_grad` flags are restored afterwards and no weight is changed.
    """
    layers = [model.get_submodule(n) for n in (parts or split_model(model)).layer_names]
    device = next(model.parameters()).device
    saved = [p.requires_grad for p in model.parameters()]
    stamps: dict[str, float] = {}
    mark = _stamper(stamps, device, clock)

    def input_requires_grad(module, args, kwargs):
        hidden = (args[0] if args else kwargs["hidden_states"]).detach().requires_grad_()
        return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

    handles = [h for i, layer in enumerate(layers) for h in (layer.register_full_backward_pre_hook(mark(f"start{i}")),
                                                             layer.register_full_backward_hook(mark(f"end{i}")))]
    results = []
    was_training = model.training
    model.train()
    try:
        for state in ("full", "pass"):
            for p in model.parameters():
                p.requires_grad_(state == "full")
            extra = layers[0].register_forward_pre_hook(input_requires_grad, with_kwargs=True) if state == "pass" else None
            runs = []
            for _ in range(repeats + 1):  # the first pass warms up
                with torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
                    loss = model(**batch).loss
                _sync(device)
                start = clock()
                loss.backward()
                _sync(device)
                end = clock()
                model.zero_grad(set_to_none=True)
                n = len(layers)
                runs.append([end - stamps["end0"], *(stamps[f"end{i}"] - stamps[f"start{i}"] for i in range(n)),
                             stamps[f"start{n - 1}"] - start])
            if extra:
                extra.remove()
            results.append([statistics.median(col) for col in zip(*runs[1:])])
    finally:
        for h in handles:
            h.remove()
        for p, flag in zip(model.parameters(), saved):
            p.requires_grad_(flag)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return results[0], results[1]


def measure_update(model: nn.Module, repeats: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per parameter for the AdamW update alone (gradients already there; on copies)."""
    unique = list({id(p): p for p in model.parameters()}.values())
    shadow = [nn.Parameter(torch.zeros_like(p)) for p in unique]
    for p in shadow:
        p.grad = torch.zeros_like(p)
    device = unique[0].device
    opt = torch.optim.AdamW(shadow, lr=1e-5, weight_decay=0.01)
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        start = clock()
        opt.step()
        _sync(device)
        times.append(clock() - start)
    del opt, shadow
    return statistics.median(times[1:]) / sum(p.numel() for p in unique)


def calibrate(model: nn.Module, batch: dict, parts: ModelParts | None = None, repeats: int = 5,
              amp: bool = False, clock: Callable[[], float] = time.perf_counter, backward: bool = True) -> Calibration:
    """Measure F per block and the optimizer's cost per parameter for this model, batch and machine.

    With `backward`, also measure each block's backward pass (trainable / gradients passing through)
    and the bare AdamW update, so `step_seconds` need not assume the ideal 2F and F.
    """
    parts = parts or split_model(model)
    names, _ = model_blocks(model, parts)
    forward = measure_forward(model, batch, parts, repeats, amp, clock)
    n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    cal = Calibration(names, forward, measure_optimizer(model, clock=clock), n_params)
    if backward:
        cal.backward_full_s, cal.backward_pass_s = measure_backward(model, batch, parts, max(2, repeats // 2), amp, clock)
        cal.update_per_param_s = measure_update(model, clock=clock)
    return cal


def trainable_state(model: nn.Module, parts: ModelParts | None = None) -> list[tuple[bool, float]]:
    """Per block: (does backward reach it, trainable share of its parameters), from requires_grad flags."""
    _, blocks = model_blocks(model, parts)
    state, reached = [], False
    for params in blocks:
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        reached = reached or trainable > 0
        state.append((reached, trainable / total if total else 0.0))
    return state


def trainable_parameter_count(model: nn.Module) -> int:
    """Distinct parameters with requires_grad (what the optimizer updates)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if p.requires_grad)


def step_seconds(cal: Calibration, state: list[tuple[bool, float]], trainable_params: int, ideal: bool = False) -> float:
    """Predicted step time for a freezing state (see the module docstring).

    `ideal` (or a calibration without backward measurements): backward costs exactly F and 2F.
    Otherwise each block's measured backward is used: gradients passing through cost its measured
    pass-through time, and its trainable share adds that share of the measured weight-gradient time.
    """
    if len(state) != len(cal.forward_s):
        raise ValueError(f"The calibration has {len(cal.forward_s)} blocks but the model has {len(state)}; "
                         "calibrate the same model (architecture) you predict for.")
    if ideal or not (cal.backward_full_s and cal.backward_pass_s):
        compute = sum(f * (1 + float(reached) + share) for f, (reached, share) in zip(cal.forward_s, state))
        return compute + cal.per_param_s * trainable_params
    compute = sum(cal.forward_s)
    for passing, full, (reached, share) in zip(cal.backward_pass_s, cal.backward_full_s, state):
        compute += float(reached) * (passing + share * max(full - passing, 0.0))
    return compute + (cal.update_per_param_s or cal.per_param_s) * trainable_params


def predict_step_seconds(model: nn.Module, cal: Calibration, parts: ModelParts | None = None) -> float:
    """Predicted seconds per training step of `model` as it is frozen now."""
    return step_seconds(cal, trainable_state(model, parts), trainable_parameter_count(model))


def full_step_seconds(cal: Calibration, ideal: bool = False) -> float:
    """Predicted seconds per step of full fine-tuning (everything trainable)."""
    return step_seconds(cal, [(True, 1.0)] * len(cal.forward_s), cal.parameters, ideal)


def predicted_ratio(model: nn.Module, cal: Calibration, parts: ModelParts | None = None) -> float:
    """Predicted step time of `model` as it is frozen now, relative to full fine-tuning."""
    return predict_step_seconds(model, cal, parts) / full_step_seconds(cal)
