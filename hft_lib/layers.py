"""Find the embeddings, the transformer layer stack(s) and the head of a model, by watching it run.

A layer stack is an `nn.ModuleList` of repeated blocks (BERT's `encoder.layer`, GPT-2's `h`, LLaMA's
`layers`, T5's encoder and decoder `block`s, ...). Which parameters are "embeddings", "layer i" or
"head" is decided by one forward pass on a tiny input, traced:

- a parameter registered inside layer i belongs to layer i;
- any other parameter belongs to the **earliest place it is used**: before the first layer ->
  embeddings (word, position and relative-position embeddings, OPT's `project_in`, DeBERTa's
  shared relative-embedding norm); inside or right after layer i -> layer i (DeBERTa-v2's `conv`
  after layer 0, an encoder's final norm); after the last layer -> head (final norm, pooler,
  classifier, LM head).

"Earliest use" is what makes freezing cheap and honest: whatever feeds layer 0 is frozen with it,
so a frozen lower half builds no autograd graph. A head tied to the input embeddings (an LM head
sharing the embedding matrix) is one parameter used first and last: it belongs to the embeddings,
and `tied` records it so `Finetuner.describe()` can say so. Stacks whose layers run once each are
layer stacks; a stack whose block runs several times (ALBERT shares one layer's weights across all
twelve applications) is reported in `shared`. Models with several stacks (T5's encoder and decoder)
list them in `stacks`, bottom stack first.

This module finds the stacks and holds the split (`ModelParts`); `tracing.split_model` makes the split by
tracing a forward pass. When no forward pass can be traced (an input this code cannot build, a model on the
meta device), parts fall back to registration order (`registration_parts`) with a warning; pass
`example_inputs=` to trace instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

_STACK_NAMES = {"layer", "layers", "h", "block", "blocks"}
_EMBED_HINTS = ("embed", "wte", "wpe", "shared")
_NORM_CLASS = re.compile(r"Norm(\dd)?$")


@dataclass
class ModelParts:
    """Parameter names of a model split into embeddings, per-layer lists and head."""

    layer_names: list[str]  # module path of each layer, bottom to top, stack by stack
    embeddings: list[str]
    layers: list[list[str]]
    head: list[str]
    stacks: list[tuple[str, int]] = field(default_factory=list)  # (module path, number of layers), bottom stack first
    tied: list[str] = field(default_factory=list)  # embedding parameters the head reuses (a tied LM head)
    shared: dict[str, int] = field(default_factory=dict)  # stack path -> applications per forward, when > its length
    traced: bool = True  # False: assigned by registration order (no forward pass could be traced)

    def stack_ranges(self) -> list[range]:
        """Flat layer indices of each stack."""
        out, start = [], 0
        for _, n in self.stacks or [("", len(self.layer_names))]:
            out.append(range(start, start + n))
            start += n
        return out


def is_norm(module: nn.Module) -> bool:
    """True for normalisation layers, by type: torch's LayerNorm/RMSNorm/GroupNorm/BatchNorm and the families' own
    (`LlamaRMSNorm`, `T5LayerNorm`, ...). GPT-2's `ln_1` is an `nn.LayerNorm`, so it counts whatever its name."""
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)) or bool(
        _NORM_CLASS.search(type(module).__name__))


def norm_parameter_names(model: nn.Module) -> set[str]:
    """Names (as `model.named_parameters()` gives them) of every parameter that belongs to a norm layer."""
    norms = {id(p) for m in model.modules() if is_norm(m) for p in m.parameters(recurse=False)}
    return {name for name, p in model.named_parameters() if id(p) in norms}


def _is_stack(module: nn.Module) -> bool:
    """A non-empty ModuleList of blocks that hold parameters in sub-modules (not a list of bare Linears). Hybrid models
    mix block types (attention and linear-attention layers); the trace checks they run once each, in turn."""
    if not isinstance(module, nn.ModuleList) or len(module) == 0:
        return False
    return all(any(True for _ in child.children()) and any(True for _ in child.parameters()) for child in module)


def candidate_stacks(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if name and _is_stack(module)]


def _likely_stack(name: str, model: nn.Module) -> bool:
    """Registration-order fallback: a ModuleList of one block type, named like a stack or holding *Layer / *Block modules."""
    kinds = {type(child).__name__ for child in model.get_submodule(name)}
    return len(kinds) == 1 and (name.rsplit(".", 1)[-1] in _STACK_NAMES or kinds.pop().endswith(("Layer", "Block")))


def outermost(stacks: list[str]) -> list[str]:
    return [s for s in stacks if not any(s != o and s.startswith(o + ".") for o in stacks)]


def no_stack_error(model: nn.Module) -> ValueError:
    return ValueError(
        f"Could not find the transformer layer stack of {type(model).__name__}; pass it explicitly, "
        "e.g. Finetuner(model, layers=model.encoder.blocks) or layers='encoder.blocks'.")


def find_layer_stack(model: nn.Module) -> list[str]:
    """Module paths of the transformer layers by registration (no forward pass), bottom to top, stack by stack."""
    outer = outermost([s for s in candidate_stacks(model) if _likely_stack(s, model)])
    if not outer:
        raise no_stack_error(model)
    return [f"{stack}.{i}" for stack in outer for i in range(len(model.get_submodule(stack)))]


def _aliases(model: nn.Module) -> dict[str, list[str]]:
    """Parameter name -> its other names (a tied LM head's `lm_head.weight` for `embed_tokens.weight`)."""
    first = {id(p): n for n, p in model.named_parameters()}
    out: dict[str, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if first.get(id(p), name) != name:
            out.setdefault(first[id(p)], []).append(name)
    return out


def registration_parts(model: nn.Module, layer_names: list[str]) -> ModelParts:
    """The fallback: parameters registered below the first layer (or named like embeddings) are embeddings."""
    per_layer: list[list[str]] = [[] for _ in layer_names]
    embeddings: list[str] = []
    head: list[str] = []
    seen_layer = False
    for name, _ in model.named_parameters():  # tied weights (LM head = embeddings) appear once
        idx = next((i for i, ln in enumerate(layer_names) if name.startswith(ln + ".")), None)
        if idx is not None:
            per_layer[idx].append(name)
            seen_layer = True
        elif not seen_layer or any(hint in name.lower() for hint in _EMBED_HINTS):
            embeddings.append(name)
        else:
            head.append(name)
    tied = [name for name in _aliases(model) if name in embeddings]
    stacks: list[tuple[str, int]] = []
    for ln in layer_names:
        stack = ln.rsplit(".", 1)[0] if "." in ln else ""
        if stacks and stacks[-1][0] == stack:
            stacks[-1] = (stack, stacks[-1][1] + 1)
        else:
            stacks.append((stack, 1))
    return ModelParts(layer_names, embeddings, per_layer, head, stacks, tied, {}, traced=False)
