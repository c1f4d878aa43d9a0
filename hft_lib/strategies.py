"""The registry of named fine-tuning strategies: one line on what each does, and how to set it up.

Every front end reads names from here: `hft compare --strategies`, `hft strategies`, `run_classification`,
the decoder runs, the frontier and the benchmark. An unknown name gets one message, from `get_strategy`.
A new strategy is one entry here (and, if it changes the trainable set during training, one `Callback`).

Besides the names, `freeze:<indices>` freezes exactly the layers listed and the embeddings, e.g. `freeze:0,2,5`
(`freeze:` alone freezes the embeddings only): the 64 subsets of a 6-layer model are the oracle that the
named rules are measured against (`hft sweep oracle`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .callbacks import Callback
from .freezing import Finetuner
from .lisa import ACTIVE_LAYERS
from .lora import LORA_LR_FACTOR
from .optim import build_optimizer
from .unfreezing import GradualUnfreezing, UnfreezeSchedule


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    kind: str  # "layers": a freeze pattern; "gradual": unfreezes during training; "parameters": inside every layer;
    # "adaptive": what trains (or how fast) changes during training, by random draws or measured gradients
    decoder: bool = True  # offered for decoder LLM runs too (gradual and head-only runs are encoder experiments here)
    embeddings: str = "auto"  # Finetuner's embeddings choice for a layer pattern


REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("full", "train every parameter (the baseline)", "layers"),
    Strategy("head_only", "freeze the embeddings and every layer; train the head (feature extraction)", "layers", decoder=False),
    Strategy("lower_half", "freeze the embeddings and layers 0 .. n/2-1 (the source text's half fine-tuning)", "layers"),
    Strategy("alternate", "freeze the embeddings and layers 0, 2, 4, ... (every even-numbered layer)", "layers"),
    Strategy("upper_half", "control for lower_half: freeze the embeddings and layers n/2 .. n-1 (same trainable count)",
             "layers", embeddings="frozen"),
    Strategy("alternate_odd", "control for alternate: freeze the embeddings and layers 1, 3, 5, ... (same trainable count)",
             "layers", embeddings="frozen"),
    Strategy("gradual_bottom_up", "start with the head; unfreeze one layer per stage, input side first (source text)",
             "gradual", decoder=False),
    Strategy("gradual_top_down", "start with the head; unfreeze one layer per stage, last layer first (ULMFiT)",
             "gradual", decoder=False),
    Strategy("hft_paper", "the HFT paper: half of every layer's attention, FFN and norm matrices frozen, redrawn each round",
             "parameters"),
    Strategy("hft_paper_static", "the HFT paper's half of every layer, drawn once", "parameters"),
    Strategy("lora", f"LoRA r=8 on attention query/value (peft): base frozen, adapters train at {LORA_LR_FACTOR}x the rate",
             "parameters"),
    Strategy("bitfit", "BitFit: train only the biases inside every layer, plus the head", "parameters", decoder=False),
    Strategy("attention_only", "train only the attention matrices inside every layer, plus the head", "parameters"),
    Strategy("ffn_only", "train only the feed-forward matrices inside every layer, plus the head", "parameters"),
    Strategy("lisa", f"LISA: embeddings, head and {ACTIVE_LAYERS} random layers train; redrawn each round, old state freed",
             "adaptive"),
    Strategy("autofreeze", "AutoFreeze-style: freeze layers from the bottom once their gradient norm stops changing",
             "adaptive"),
    Strategy("auto_rgn", "Auto-RGN: each tensor's rate scaled by its relative gradient norm |g|/|w| (surgical fine-tuning)",
             "adaptive"),
)}
STRATEGIES = tuple(REGISTRY)
DECODER_STRATEGIES = tuple(name for name, s in REGISTRY.items() if s.decoder)
SUBSET = "freeze:"  # freeze:0,2,5 freezes exactly those layers (and the embeddings)


def layer_subset(name: str) -> list[int] | None:
    """The layer indices a `freeze:0,2,5` name freezes ([] for `freeze:`), or None for any other name."""
    if not name.startswith(SUBSET):
        return None
    text = name.removeprefix(SUBSET)
    try:
        indices = [int(v) for v in text.split(",")] if text.strip() else []
    except ValueError:
        indices = [-1]
    if any(i < 0 for i in indices) or len(set(indices)) != len(indices):
        raise ValueError(f"{name!r} is not a layer subset; write freeze: and distinct layer indices, e.g. freeze:0,2,5.")
    return indices


def subset_name(indices) -> str:
    """The strategy name that freezes exactly these layers: (0, 2, 5) -> 'freeze:0,2,5'."""
    return SUBSET + ",".join(str(i) for i in sorted(indices))


def folder_name(strategy: str) -> str:
    """A strategy's name as a folder name on every system: 'freeze:0,2' -> 'freeze-0,2' (Windows forbids ':')."""
    return "".join("-" if c in '<>:"/\\|?*' else c for c in strategy)


def split_strategies(text: str) -> list[str]:
    """A comma-separated list of names, where a subset's indices stay with it: 'full,freeze:0,2' -> ['full', 'freeze:0,2']."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part.isdigit() and names and names[-1].startswith(SUBSET):
            names[-1] += ("," if names[-1] != SUBSET else "") + part
        elif part:
            names.append(part)
    return names


def get_strategy(name: str, decoder: bool = False) -> Strategy:
    """The registered strategy, or the one error message for an unknown (or, on a decoder, unsupported) name."""
    subset = layer_subset(name or "")
    if subset is not None:
        return Strategy(name, f"freeze the embeddings and layers {subset or 'none'}", "layers", embeddings="frozen")
    allowed = DECODER_STRATEGIES if decoder else STRATEGIES
    if name not in allowed:
        what = "decoder strategy" if decoder and name in REGISTRY else "strategy"
        raise ValueError(f"Unknown {what} {name or '(none given)'!r}; choose from {', '.join(allowed)}, or freeze:<layer indices> "
                         "(`hft strategies` lists them).")
    return REGISTRY[name]


def check_strategies(names: list[str] | tuple[str, ...], decoder: bool = False) -> list[str]:
    """Validate names early (before any model is loaded); returns them as a list."""
    for name in names or [""]:
        get_strategy(name, decoder)
    return list(names)


def describe_strategies() -> str:
    """The registry as text, one line per strategy (what `hft strategies` prints)."""
    width = max(map(len, REGISTRY))
    lines = [f"{s.name:<{width}}  {s.description}" + ("" if s.decoder else " [encoder only]") for s in REGISTRY.values()]
    return "\n".join([*lines, f"{'freeze:0,2,5':<{width}}  freeze exactly the layers listed, and the embeddings (any subset)"])


class Prepared(NamedTuple):
    """What `fit` needs for one strategy: the Finetuner (its `.model` may be a wrapper), optimiser, callbacks, rate."""

    ft: Finetuner
    optimizer: torch.optim.Optimizer | None
    callbacks: list[Callback]
    lr: float


def prepare(strategy: str, model: nn.Module, lr: float, *, seed: int = 0, total_steps: int = 1,
            steps_per_round: int | None = None, weight_decay: float = 0.01, lr_decay: float | None = None,
            embeddings: str | None = None) -> Prepared:
    """Set a model up for one strategy.

    Args:
        total_steps: gradual strategies spread their stages (one per layer, plus the head alone) evenly over these.
        steps_per_round: hft_paper redraws its frozen half this often (default: never within the run); lisa redraws
            its layers and autofreeze measures its gradient windows this often (default: 20 steps).
        embeddings: for a layer pattern, override its embeddings choice ("frozen" / "trainable"), e.g. to train
            or freeze an LM head tied to the embeddings.
    """
    spec = get_strategy(strategy)
    kind = spec.kind
    if embeddings is not None and kind != "layers":
        raise ValueError(f"embeddings= applies to layer patterns, not to {strategy!r}; leave it out.")
    if kind == "gradual":
        ft = Finetuner(model, "head_only", verbose=False)
        length = max(1, total_steps // (ft.n_layers + 1))
        direction = strategy.removeprefix("gradual_")
        return Prepared(ft, None, [GradualUnfreezing(UnfreezeSchedule(direction, stage_length=length, unit="step"))], lr)
    if kind == "layers":  # fit builds the optimiser
        pattern = layer_subset(strategy)
        return Prepared(Finetuner(model, strategy if pattern is None else pattern, embeddings=embeddings or spec.embeddings,
                                  verbose=False), None, [], lr)
    return _SETUPS[strategy](model, lr, seed, steps_per_round, weight_decay, lr_decay)


def _hft_paper(model, lr, seed, steps_per_round, weight_decay, lr_decay) -> Prepared:
    from .hft_paper import HalfParameterRedraw

    ft = Finetuner(model, "full", verbose=False)
    redraw = HalfParameterRedraw(ft, seed=seed, every=steps_per_round)
    return Prepared(ft, redraw.build_optimizer(lr, weight_decay, lr_decay), [redraw], lr)


def _hft_paper_static(model, lr, seed, steps_per_round, weight_decay, lr_decay) -> Prepared:
    from .hft_paper import apply_hft_paper

    ft = Finetuner(model, "full", verbose=False)
    apply_hft_paper(ft, seed)
    return Prepared(ft, build_optimizer(ft, lr, weight_decay, lr_decay), [], lr)


def _lora(model, lr, seed, steps_per_round, weight_decay, lr_decay) -> Prepared:
    from .lora import lora_finetuner  # peft is imported only when LoRA is used

    ft = lora_finetuner(model)
    return Prepared(ft, build_optimizer(ft, lr * LORA_LR_FACTOR, weight_decay, lr_decay), [], lr * LORA_LR_FACTOR)


def _train_only(kind: str) -> Callable[..., Prepared]:
    """bitfit, attention_only, ffn_only: one module kind inside every layer trains, plus the head (`Finetuner.train_only`)."""

    def setup(model, lr, seed, steps_per_round, weight_decay, lr_decay) -> Prepared:
        ft = Finetuner(model, "full", verbose=False)
        if kind == "bias" and not any(n.endswith("bias") for names in ft.parts.layers for n in names):
            raise ValueError(f"bitfit trains the layers' biases, and {type(model).__name__}'s layers have none; "
                             "choose attention_only or ffn_only.")
        ft.train_only(kind)
        return Prepared(ft, None, [], lr)

    return setup


def _lisa(model, lr, seed, steps_per_round, weight_decay, lr_decay) -> Prepared:
    from .lisa import EVERY, LISA

    ft = Finetuner(model, "full", verbose=False)
    return Prepared(ft, None, [LISA(ft, seed=seed, every=steps_per_round or EVERY)], lr)  # fit builds the optimiser


def _autofreeze(model, lr, seed, steps_per_round, weight_decay, lr_decay) -> Prepared:
    from .autofreeze import EVERY, AutoFreeze

    ft = Finetuner(model, "full", verbose=False)
    return Prepared(ft, None, [AutoFreeze(ft, every=steps_per_round or EVERY)], lr)


def _auto_rgn(model, lr, seed, steps_per_round, weight_decay, lr_decay) -> Prepared:
    from .auto_rgn import AutoRGN

    ft = Finetuner(model, "full", verbose=False)
    rgn = AutoRGN(ft)
    return Prepared(ft, rgn.build_optimizer(lr, weight_decay, lr_decay), [rgn], lr)


_SETUPS: dict[str, Callable[..., Prepared]] = {
    "hft_paper": _hft_paper, "hft_paper_static": _hft_paper_static, "lora": _lora,
    "bitfit": _train_only("bias"), "attention_only": _train_only("attention"), "ffn_only": _train_only("ffn"),
    "lisa": _lisa, "autofreeze": _autofreeze, "auto_rgn": _auto_rgn}
