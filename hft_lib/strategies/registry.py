"""The registry of named fine-tuning strategies: one line on what each does, and how to set it up.

Every front end reads names from here: `hft compare --strategies`, `hft strategies`, `run_classification`,
the decoder runs, the frontier and the benchmark. An unknown name gets one message, from `get_strategy`.
A new strategy is one row here; if it needs code (a `Callback`, its own optimiser), that code is one module
beside this one with a `setup(spec, model, options) -> Prepared` function the row points to.

Besides the names, `freeze:<indices>` freezes exactly the layers listed and the embeddings, e.g. `freeze:0,2,5`
(`freeze:` alone freezes the embeddings only): the 64 subsets of a 6-layer model are the oracle that the
named rules are measured against (`hft sweep oracle`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..freezing import Finetuner
from . import auto_rgn, autofreeze, gradual, hft_paper, lisa, lora
from .base import Prepared, SetupOptions, Strategy


def layer_pattern(spec: Strategy, model: nn.Module, options: SetupOptions) -> Prepared:
    """A freeze pattern (or a `freeze:` subset): the Finetuner freezes it once; fit builds the optimiser."""
    pattern = layer_subset(spec.name)
    ft = Finetuner(model, spec.name if pattern is None else pattern, embeddings=options.embeddings or spec.embeddings,
                   verbose=False)
    return Prepared(ft, None, [], options.lr)


def train_only(kind: str) -> Callable[[Strategy, nn.Module, SetupOptions], Prepared]:
    """bitfit, attention_only, ffn_only: one module kind inside every layer trains, plus the head (`Finetuner.train_only`)."""

    def setup(spec: Strategy, model: nn.Module, options: SetupOptions) -> Prepared:
        ft = Finetuner(model, "full", verbose=False)
        if kind == "bias" and not any(n.endswith("bias") for names in ft.parts.layers for n in names):
            raise ValueError(f"bitfit trains the layers' biases, and {type(model).__name__}'s layers have none; "
                             "choose attention_only or ffn_only.")
        ft.train_only(kind)
        return Prepared(ft, None, [], options.lr)

    return setup


REGISTRY: dict[str, Strategy] = {s.name: s for s in (
    Strategy("full", "train every parameter (the baseline)", "layers", layer_pattern),
    Strategy("head_only", "freeze the embeddings and every layer; train the head (feature extraction)", "layers",
             layer_pattern, decoder=False),
    Strategy("lower_half", "freeze the embeddings and layers 0 .. n/2-1 (the source text's half fine-tuning)", "layers",
             layer_pattern),
    Strategy("alternate", "freeze the embeddings and layers 0, 2, 4, ... (every even-numbered layer)", "layers", layer_pattern),
    Strategy("upper_half", "control for lower_half: freeze the embeddings and layers n/2 .. n-1 (same trainable count)",
             "layers", layer_pattern, embeddings="frozen"),
    Strategy("alternate_odd", "control for alternate: freeze the embeddings and layers 1, 3, 5, ... (same trainable count)",
             "layers", layer_pattern, embeddings="frozen"),
    Strategy("gradual_bottom_up", "start with the head; unfreeze one layer per stage, input side first (source text)",
             "gradual", gradual.setup, decoder=False),
    Strategy("gradual_top_down", "start with the head; unfreeze one layer per stage, last layer first (ULMFiT)",
             "gradual", gradual.setup, decoder=False),
    Strategy("hft_paper", "the HFT paper: half of every layer's attention, FFN and norm matrices frozen, redrawn each round",
             "parameters", hft_paper.setup),
    Strategy("hft_paper_static", "the HFT paper's half of every layer, drawn once", "parameters", hft_paper.setup_static),
    Strategy("lora", f"LoRA r=8 on attention query/value (peft): base frozen, adapters train at {lora.LORA_LR_FACTOR}x the rate",
             "parameters", lora.setup),
    Strategy("bitfit", "BitFit: train only the biases inside every layer, plus the head", "parameters", train_only("bias"),
             decoder=False),
    Strategy("attention_only", "train only the attention matrices inside every layer, plus the head", "parameters",
             train_only("attention")),
    Strategy("ffn_only", "train only the feed-forward matrices inside every layer, plus the head", "parameters",
             train_only("ffn")),
    Strategy("lisa", f"LISA: embeddings, head and {lisa.ACTIVE_LAYERS} random layers train; redrawn each round, old state freed",
             "adaptive", lisa.setup),
    Strategy("autofreeze", "AutoFreeze-style: freeze layers from the bottom once their gradient norm stops changing",
             "adaptive", autofreeze.setup),
    Strategy("auto_rgn", "Auto-RGN: each tensor's rate scaled by its relative gradient norm |g|/|w| (surgical fine-tuning)",
             "adaptive", auto_rgn.setup),
    Strategy("auto_rgn_body", "our Auto-RGN variant: the new head trains at the full rate and is left out of the maximum",
             "adaptive", auto_rgn.setup),
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
        return Strategy(name, f"freeze the embeddings and layers {subset or 'none'}", "layers", layer_pattern, embeddings="frozen")
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


def prepare(strategy: str, model: nn.Module, lr: float, *, seed: int = 0, total_steps: int = 1,
            redraw_every: int | None = None, window: int | None = None, weight_decay: float = 0.01,
            lr_decay: float | None = None, embeddings: str | None = None) -> Prepared:
    """Set a model up for one strategy (the fields are `SetupOptions`'; each strategy reads those it needs).

    Args:
        total_steps: gradual strategies spread their stages (one per layer, plus the head alone) evenly over these.
        redraw_every: hft_paper redraws its frozen half this often (default: never within the run); lisa redraws its
            layers this often (default: 20 steps).
        window: autofreeze measures its gradient norms over windows of this many steps (default: 20).
        embeddings: for a layer pattern, override its embeddings choice ("frozen" / "trainable"), e.g. to train
            or freeze an LM head tied to the embeddings.
    """
    options = SetupOptions(lr, seed, total_steps, redraw_every, window, weight_decay, lr_decay, embeddings)
    return get_strategy(strategy).prepare(model, options)
