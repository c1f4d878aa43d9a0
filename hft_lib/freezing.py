"""Selective layer freezing: the source text's `Finetuner(model, freeze_pattern=...)`.

Patterns: "full", "head_only", "lower_half", "alternate", a list of layer indices, or a function
(index, n_layers) -> freeze? (see `patterns.py`). After construction the verbs change the frozen set,
as fastai's do: `freeze()` (all but the head), `freeze_to(n)`, `unfreeze()`, `freeze_layers(...)`,
`unfreeze_layers(...)`, `apply_pattern(...)`; by parameter name, `freeze_matching("*.attention.*")` and
`unfreeze_matching(...)` (trainable rules win: apply them last); by module kind, `train_only("attention")`
(or "ffn", "norm", "bias": BitFit), which freezes everything else in the layers and the embeddings.

Embeddings: `embeddings="auto"` (the default) freezes them exactly when layer 0 is frozen. Then no
gradient has to travel down through the frozen layers, so they build no autograd graph and their
backward pass is skipped entirely (lower half: about 0.6x the step time of full fine-tuning on
MiniLM, against about 0.96x with trainable embeddings, as the source text's code leaves them).
Pass "frozen" or "trainable" to choose yourself. The head (pooler, final norm, classifier or LM
head) is always trainable, except an LM head tied to the input embeddings (SmolLM2, GPT-2, OPT,
Gemma): it is the embedding matrix, so it follows the embeddings, and `describe()` says so.

Several layer stacks (T5's encoder and decoder): a named pattern or a function applies to each
stack on its own (lower_half freezes the lower half of the encoder *and* of the decoder); a list of
indices counts layers across stacks, bottom stack first, as `summary()` numbers them. To freeze
within one stack only, pass `layers="encoder.block"`. A stack that applies one block's weights
several times (ALBERT) has no "lower half": only 'full', 'head_only' or that block as a whole.

On a model wrapped by peft (LoRA), the weights peft froze stay frozen; the pattern chooses among
the rest (the adapters and `modules_to_save`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    import pandas as pd

from .layers import ModelParts, norm_parameter_names
from .patterns import MODULE_KINDS, PATTERNS, FreezePattern, frozen_layer_indices, match_names, parameter_kind
from .tracing import split_model

__all__ = ["EMBEDDING_CHOICES", "PATTERNS", "Finetuner", "FreezePattern", "frozen_layer_indices"]

EMBEDDING_CHOICES = ("auto", "frozen", "trainable")


class Finetuner:
    """Freeze part of a pretrained model, report what is trainable, and train it (see `fit`).

    Args:
        model: any PyTorch module with a stack of transformer layers.
        freeze_pattern: see the module docstring.
        embeddings: "auto", "frozen" or "trainable" (see the module docstring).
        layers: the layer stack when it cannot be found automatically, or one stack of several (dotted path or modules).
        verbose: print one line saying what was frozen.
        example_inputs: one batch's keyword arguments, to trace which parameters run where (default: built from the config).
    """

    def __init__(self, model: nn.Module, freeze_pattern: FreezePattern = "lower_half", embeddings: str = "auto",
                 layers: str | nn.ModuleList | None = None, verbose: bool = True, example_inputs: dict | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"Finetuner needs a torch.nn.Module, not {type(model).__name__}; load one with hft_lib.load_model(...).")
        if embeddings not in EMBEDDING_CHOICES:
            raise ValueError(f"embeddings must be one of {EMBEDDING_CHOICES}, not {embeddings!r}.")
        self.model = model
        self.freeze_pattern = freeze_pattern
        self.embedding_choice = embeddings
        self.verbose = verbose
        self.edits: list[str] = []  # verbs applied after the pattern (shown in pattern_name)
        self.parts: ModelParts = split_model(model, layers, example_inputs)
        self.layers: list[nn.Module] = [model.get_submodule(n) for n in self.parts.layer_names]
        self.params = dict(model.named_parameters())
        self.norm_parameters: set[str] = norm_parameter_names(model)  # no weight decay; the HFT paper's "norm" units
        # peft froze the base model on purpose: those weights stay frozen whatever the pattern says
        self._locked = {n for n, p in self.params.items() if not p.requires_grad} if hasattr(model, "peft_config") else set()
        self.setup_layer_freezing()  # validates the pattern before it touches the model

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def pattern_layers(self) -> list[int]:
        """The layer indices the freeze pattern freezes: per stack for names and functions, across stacks for lists."""
        pattern, parts = self.freeze_pattern, self.parts
        if isinstance(pattern, str) or callable(pattern):
            frozen = [r[i] for r in parts.stack_ranges() for i in frozen_layer_indices(pattern, len(r))]
        else:
            frozen = frozen_layer_indices(pattern, self.n_layers)
        if parts.shared and (pattern in ("lower_half", "alternate") or 0 < len(frozen) < self.n_layers):
            stack, runs = next(iter(parts.shared.items()))
            raise ValueError(
                f"{type(self.model).__name__} applies the same {self.n_layers} block(s) of {stack} {runs} times (shared weights), "
                f"so {self.pattern_name!r} cannot freeze some applications and not others; use 'full', 'head_only' or [0].")
        if not frozen and pattern != "full" and isinstance(pattern, str):
            raise ValueError(f"{pattern!r} freezes no layer of a {self.n_layers}-layer stack, which would be full fine-tuning "
                             "under another name; use 'full', or a model with more layers.")
        return frozen

    def setup_layer_freezing(self) -> None:
        """Apply the freeze pattern: frozen parameters get requires_grad=False, all others True."""
        frozen = self.pattern_layers()
        off = {name for i in frozen for name in self.parts.layers[i]} | self._locked
        if self.embedding_choice == "frozen" or (self.embedding_choice == "auto" and 0 in frozen):
            off |= set(self.parts.embeddings)
        if off >= self.params.keys():  # checked before the model is touched
            fix = ("its LM head is tied to the frozen embeddings, so pass embeddings='trainable' to train it"
                   if self.parts.tied else "choose a pattern that keeps some layers trainable")
            raise ValueError(f"freeze_pattern={self.pattern_name!r} leaves nothing trainable in {type(self.model).__name__}: {fix}.")
        for name, param in self.params.items():
            param.requires_grad_(name not in off)
        if self.verbose:
            print(self.describe())

    def describe(self) -> str:
        """Two lines: pattern, frozen layers, embeddings (and stacks, a tied LM head, when there are); then the trainable
        share (short lines: a notebook's output area breaks long ones anywhere, even inside a number)."""
        frozen = self.frozen_layers
        emb = "trainable" if self.embeddings_trainable else "frozen"
        why = f" ({self.embedding_choice})" if self.embedding_choice != "auto" else " (auto: frozen iff layer 0 is)"
        stacks = ""
        if len(self.parts.stacks) > 1:
            stacks = " (" + " + ".join(f"{path} {r.start}-{r.stop - 1}" for (path, _), r in
                                       zip(self.parts.stacks, self.parts.stack_ranges())) + ", pattern per stack)"
        tied = f"; LM head tied to the embeddings ({emb} with them)" if self.parts.tied else ""
        return (f"{self.pattern_name}: frozen layers {frozen or 'none'} of {self.n_layers}{stacks}; embeddings {emb}{why}{tied};\n"
                f"  trainable {self.trainable_parameter_count():,} of {self.total_parameter_count():,} parameters "
                f"({100 * self.trainable_share():.1f}%)")

    @property
    def pattern_name(self) -> str:
        p = self.freeze_pattern
        name = p if isinstance(p, str) else ("custom" if callable(p) else f"layers {list(p)}")
        return " + ".join([name, *self.edits])

    def rebind_parameters(self) -> None:
        """Look every parameter up again by name, after a wrapper replaced the objects (FSDP2's `fully_shard` does):
        the verbs, the optimiser groups and the counts then act on the tensors the model really trains."""
        params = dict(self.model.named_parameters())
        if params.keys() != self.params.keys():
            changed = sorted(params.keys() ^ self.params.keys())[:3]
            raise ValueError(f"The model's parameter names changed since the Finetuner was built ({changed}...); "
                             "build the Finetuner on the model as it will be trained.")
        self.params = params

    # -- verbs -----------------------------------------------------------------------------
    def set_trainable(self, names: Sequence[str], trainable: bool) -> None:
        """Set requires_grad of these parameters (by name); weights a peft wrapper froze stay frozen."""
        for name in names:
            self.params[name].requires_grad_(trainable and name not in self._locked)

    def apply_pattern(self, pattern: FreezePattern, embeddings: str | None = None) -> None:
        """Replace the freeze pattern (and optionally the embeddings choice) and apply it from scratch."""
        old = (self.freeze_pattern, self.embedding_choice, list(self.edits))
        self.freeze_pattern, self.embedding_choice, self.edits = pattern, embeddings or self.embedding_choice, []
        try:
            self.setup_layer_freezing()
        except (ValueError, TypeError):
            self.freeze_pattern, self.embedding_choice, self.edits = old
            raise

    def freeze(self) -> None:
        """Freeze everything but the head (fastai's `freeze()`): the embeddings and every layer."""
        self.apply_pattern("head_only")

    def unfreeze(self) -> None:
        """Make everything trainable (fastai's `unfreeze()`)."""
        self.apply_pattern("full", embeddings="auto")

    def freeze_to(self, n: int) -> None:
        """Freeze the embeddings and layers 0 .. n-1 (n < 0: all but the last -n layers), train the rest (fastai's `freeze_to`)."""
        if not isinstance(n, int) or isinstance(n, bool) or not -self.n_layers <= n <= self.n_layers:
            raise ValueError(f"freeze_to needs a whole number from {-self.n_layers} to {self.n_layers}, not {n!r}.")
        self.apply_pattern(list(range(n if n >= 0 else self.n_layers + n)), embeddings="auto")

    def freeze_matching(self, *patterns: str) -> list[str]:
        """Freeze the parameters whose names match any glob (or `re:` regex); returns their names."""
        names = match_names(list(self.params), patterns)
        self.set_trainable(names, False)
        self.edits.append(f"freeze_matching{patterns}")
        return names

    def unfreeze_matching(self, *patterns: str) -> list[str]:
        """Make the parameters whose names match trainable (apply after freezing rules: trainable rules win)."""
        names = match_names(list(self.params), patterns)
        self.set_trainable(names, True)
        self.edits.append(f"unfreeze_matching{patterns}")
        return names

    def train_only(self, *kinds: str, head: bool = True) -> list[str]:
        """Inside every layer train only these module kinds ("attention", "ffn", "norm", "bias": BitFit); freeze the
        rest of the layers and the embeddings; the head trains unless head=False. Returns the trainable names."""
        bad = [k for k in kinds if k not in MODULE_KINDS]
        if bad or not kinds:
            raise ValueError(f"Unknown module kind {bad or '(none given)'}; use one or more of {', '.join(MODULE_KINDS)}.")
        keep = [n for names in self.parts.layers for n in names if parameter_kind(n, self.norm_parameters) in kinds]
        self.set_trainable(list(self.params), False)
        self.set_trainable(keep + (self.parts.head if head else []), True)
        if self.trainable_parameter_count() == 0:
            raise ValueError(f"train_only{kinds} leaves nothing trainable in {type(self.model).__name__}; choose other kinds.")
        self.edits.append(f"train_only{kinds}")
        return [n for n, p in self.params.items() if p.requires_grad]

    def freeze_layers(self, indices: Sequence[int]) -> None:
        """Freeze these layers (requires_grad=False)."""
        for i in indices:
            self.set_trainable(self.parts.layers[i], False)

    def unfreeze_layers(self, indices: Sequence[int]) -> None:
        """Make these layers trainable."""
        for i in indices:
            self.set_trainable(self.parts.layers[i], True)

    def set_embeddings_trainable(self, trainable: bool) -> None:
        """Freeze or unfreeze the embeddings (and an LM head tied to them)."""
        self.set_trainable(self.parts.embeddings, trainable)

    # -- what is trainable -----------------------------------------------------------------
    def layer_is_frozen(self, index: int) -> bool:
        return not any(self.params[n].requires_grad for n in self.parts.layers[index])

    @property
    def frozen_layers(self) -> list[int]:
        return [i for i in range(self.n_layers) if self.layer_is_frozen(i)]

    @property
    def trainable_layers(self) -> list[int]:
        return [i for i in range(self.n_layers) if not self.layer_is_frozen(i)]

    @property
    def embeddings_trainable(self) -> bool:
        return any(self.params[n].requires_grad for n in self.parts.embeddings)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.params.values() if p.requires_grad]

    def named_trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.params.items() if p.requires_grad}

    def trainable_parameter_count(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def total_parameter_count(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def trainable_share(self) -> float:
        return self.trainable_parameter_count() / self.total_parameter_count()

    def summary(self) -> pd.DataFrame:
        """Per part (embeddings, each layer, head): frozen or trainable and parameter counts."""
        import pandas as pd  # only here: `import hft_lib` stays light
        rows = [("embeddings", self.parts.embeddings)]
        rows += [(f"layer {i}", names) for i, names in enumerate(self.parts.layers)]
        rows += [("head", self.parts.head)]
        table = []
        for part, names in rows:
            total = sum(self.params[n].numel() for n in names)
            trainable = sum(self.params[n].numel() for n in names if self.params[n].requires_grad)
            state = "trainable" if trainable == total else ("frozen" if trainable == 0 else "partly frozen")
            table.append({"part": part, "state": state, "parameters": total, "trainable": trainable})
        frame = pd.DataFrame(table).set_index("part")
        frame["trainable %"] = (100 * frame["trainable"] / frame["parameters"].clip(lower=1)).round(1)
        if self.parts.tied or len(self.parts.stacks) > 1:  # only then: other models' tables stay as they were
            notes = {"embeddings": "includes the tied LM head" if self.parts.tied else ""}
            notes.update({f"layer {i}": path for (path, _), r in zip(self.parts.stacks, self.parts.stack_ranges()) for i in r})
            frame["note"] = [notes.get(part, "") for part in frame.index]
        return frame

    def __repr__(self) -> str:
        return f"Finetuner({type(self.model).__name__}, {self.describe()})"
