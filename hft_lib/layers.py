"""Find the embeddings, the transformer layer stack and the head of a model, whatever its family.

The layer stack is the outermost `nn.ModuleList` of repeated blocks (BERT's `encoder.layer`, GPT-2's
`h`, LLaMA's `layers`, T5's encoder and decoder `block`s, ViT's `encoder.layer`, ...). Parameters
below it are embeddings; everything else (pooler, final norm, classifier, LM head) is the head.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

_STACK_NAMES = {"layer", "layers", "h", "block", "blocks"}
_EMBED_HINTS = ("embed", "wte", "wpe", "shared")


@dataclass
class ModelParts:
    """Parameter names of a model split into embeddings, per-layer lists and head."""

    layer_names: list[str]  # module path of each layer, bottom to top
    embeddings: list[str]
    layers: list[list[str]]
    head: list[str]


def _is_stack(name: str, module: nn.Module) -> bool:
    if not isinstance(module, nn.ModuleList) or len(module) == 0:
        return False
    kinds = {type(child) for child in module}
    if len(kinds) != 1 or not any(True for _ in module[0].parameters()):
        return False
    kind = next(iter(kinds)).__name__
    return name.rsplit(".", 1)[-1] in _STACK_NAMES or kind.endswith(("Layer", "Block"))


def find_layer_stack(model: nn.Module) -> list[str]:
    """Module paths of the transformer layers, bottom to top, or a clear error if there are none."""
    stacks = [name for name, module in model.named_modules() if name and _is_stack(name, module)]
    outer = [s for s in stacks if not any(s != o and s.startswith(o + ".") for o in stacks)]
    if not outer:
        raise ValueError(
            f"Could not find the transformer layer stack of {type(model).__name__}; pass it explicitly, "
            "e.g. Finetuner(model, layers=model.encoder.blocks) or layers='encoder.blocks'."
        )
    return [f"{stack}.{i}" for stack in outer for i in range(len(model.get_submodule(stack)))]


def split_model(model: nn.Module, layers: str | nn.ModuleList | list[nn.Module] | None = None) -> ModelParts:
    """Split `model`'s parameters into embeddings, layers and head.

    `layers` overrides discovery: a dotted module path, a ModuleList, or a list of modules.
    """
    if layers is None:
        layer_names = find_layer_stack(model)
    else:
        if isinstance(layers, str):
            try:
                layers = model.get_submodule(layers)
            except AttributeError:
                raise ValueError(f"Model has no submodule {layers!r}; pass the dotted path of its layer list, e.g. 'encoder.layer'.") from None
        ids = {id(m): n for n, m in model.named_modules()}
        missing = [i for i, m in enumerate(layers) if id(m) not in ids]
        if missing or len(layers) == 0:
            raise ValueError("The layers passed are not (all) submodules of this model; pass modules taken from the model itself.")
        layer_names = [ids[id(m)] for m in layers]

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
            embeddings.append(name)  # registered below the first layer, or named like an embedding
        else:
            head.append(name)  # pooler, final norm, classifier, LM head
    return ModelParts(layer_names, embeddings, per_layer, head)
