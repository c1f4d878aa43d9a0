"""Which parameters run where: one traced forward pass decides embeddings / layer i / head (see `layers`).

A `TorchFunctionMode` records, for every parameter, the first place a torch op reads it (before the first
layer, inside or right after layer k, after the last layer), while each candidate layer's `forward` is
wrapped to mark where the run is. The example input is built from the model's config (`make_example_inputs`).
`split_model` is the entry point: the one split of a model into embeddings, layers and head that the
Finetuner, LoRA, the cost model and the widgets all use.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .layers import ModelParts, candidate_stacks, find_layer_stack, no_stack_error, outermost, registration_parts


def _config_int(config, *names: str, default: int) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def make_example_inputs(model: nn.Module, length: int = 8) -> dict[str, torch.Tensor]:
    """A one-example input for a transformers model: token ids (ending in EOS, as BART-style classifiers need),
    decoder ids for encoder-decoders, or a blank image for vision models. Raises ValueError if it cannot tell."""
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError(f"{type(model).__name__} has no `config` to build an example input from")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    main = getattr(model, "main_input_name", "input_ids")
    if main == "pixel_values":
        vision = getattr(config, "vision_config", config)
        size = getattr(vision, "image_size", 32)
        size = size[0] if isinstance(size, (list, tuple)) else size
        return {main: torch.zeros(1, _config_int(vision, "num_channels", default=3), size, size, device=device)}
    if main != "input_ids":
        raise ValueError(f"{type(model).__name__} takes {main!r}, not token ids")
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab = _config_int(text, "vocab_size", default=100)
    special = {getattr(text, k, None) for k in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")}
    ids = [t for t in range(3, vocab) if t not in special][:length]
    eos = getattr(text, "eos_token_id", None)
    eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
    if isinstance(eos, int) and 0 <= eos < vocab:
        ids[-1] = eos
    tokens = torch.tensor([ids], device=device)
    inputs = {"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}
    if getattr(config, "is_encoder_decoder", False):
        inputs["decoder_input_ids"] = tokens.clone()
    return inputs


class ForwardFailed(Exception):
    """The model could not run the example input (the cause is the original error)."""


class _Tracer(TorchFunctionMode):
    """Records, for every parameter, the positions (before / in or after layer k) at which a torch op reads it."""

    def __init__(self, params: dict[int, str], layers: dict[int, str]):
        super().__init__()
        self.params, self.layers = params, layers
        self.position: str | None = None  # None: before any layer; else "<layer path>" or "<layer path>:after"
        self.active: list[str] = []  # layers currently running, outermost first
        self.calls: dict[str, int] = {}
        self.order: list[str] = []  # layers in the order they first ran
        self.used: dict[str, list[str | None]] = {}

    def enter(self, module: nn.Module) -> None:
        path = self.layers[id(module)]
        self.calls[path] = self.calls.get(path, 0) + 1
        if path not in self.order:
            self.order.append(path)
        if not self.active:
            self.position = path
        self.active.append(path)

    def leave(self, module: nn.Module) -> None:
        path = self.active.pop()
        if not self.active:
            self.position = f"{path}:after"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for value in (*args, *kwargs.values()):
            for item in value if isinstance(value, (list, tuple)) else (value,):
                name = self.params.get(id(item)) if isinstance(item, torch.Tensor) else None
                if name is not None:
                    seen = self.used.setdefault(name, [])
                    if self.position not in seen:
                        seen.append(self.position)
        return func(*args, **kwargs)


def _trace(model: nn.Module, layer_paths: list[str], inputs: dict) -> _Tracer:
    layer_modules = {id(model.get_submodule(path)): path for path in layer_paths}
    tracer = _Tracer({id(p): n for n, p in model.named_parameters()}, layer_modules)
    # Wrap each layer's forward (an instance attribute) rather than hooking it: some models call `layer.forward(...)`
    # directly (SqueezeBERT), which skips hooks.
    patched = [model.get_submodule(path) for path in layer_paths]
    for module in patched:
        module.forward = _watched(module, module.forward, tracer)
    was_training = model.training
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"][:1]
    try:
        model.eval()
        with torch.random.fork_rng(devices=devices), torch.no_grad(), tracer:
            model(**inputs)
    except Exception as err:
        raise ForwardFailed(err) from err
    finally:
        model.train(was_training)
        for module in patched:
            module.__dict__.pop("forward", None)
    return tracer


def _watched(module: nn.Module, forward, tracer: _Tracer):
    def run(*args, **kwargs):
        tracer.enter(module)
        try:
            return forward(*args, **kwargs)
        finally:
            tracer.leave(module)

    return run


def _select_stacks(model: nn.Module, candidates: list[str], tracer: _Tracer) -> tuple[list[str], dict[str, int]]:
    """The outermost candidate stacks whose layers all ran, bottom stack first, and which of them ran shared."""
    ran = [s for s in candidates if all(f"{s}.{i}" in tracer.calls for i in range(len(model.get_submodule(s))))]
    stacks = sorted(outermost(ran), key=lambda s: tracer.order.index(f"{s}.0"))
    shared = {}
    for s in stacks:
        n = len(model.get_submodule(s))
        applications = sum(tracer.calls[f"{s}.{i}"] for i in range(n))
        if applications > n:
            shared[s] = applications
    return stacks, shared


def _common_prefix(a: str, b: str) -> int:
    parts = 0
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        parts += 1
    return parts


def _place(name: str, position: str | None, index: dict[str, int], stack_of: list[str], n_layers: int) -> int | None:
    """Flat layer index a non-layer parameter first used at `position` belongs to; None = embeddings, n = head."""
    if position is None:
        return None
    path, _, after = position.partition(":")
    if path not in index:  # a layer of a stack that was not selected (nested, or not run in full)
        return None
    k = index[path]
    if not after:
        return k
    if k == n_layers - 1:
        return n_layers  # after the last layer: the head
    if stack_of[k] != stack_of[k + 1]:  # between two stacks: goes with the stack whose module path it shares more of
        mine, theirs = _common_prefix(name, stack_of[k]), _common_prefix(name, stack_of[k + 1])
        return k + 1 if theirs > mine else k
    return k


def traced_parts(model: nn.Module, inputs: dict, explicit: list[str] | None = None) -> ModelParts:
    if explicit:  # the layers the caller named: one stack
        tracer = _trace(model, explicit, inputs)
        missing = [n for n in explicit if n not in tracer.calls]
        if missing:
            raise ValueError(f"The layers {missing} did not run in a forward pass of {type(model).__name__}; pass the "
                             "modules the model applies to its input, bottom to top.")
        layer_names, sizes = list(explicit), [(_parent(explicit), len(explicit))]
        runs = sum(tracer.calls[n] for n in explicit)
        shared = {sizes[0][0]: runs} if runs > len(explicit) else {}
    else:
        candidates = candidate_stacks(model)
        if not candidates:
            raise no_stack_error(model)
        tracer = _trace(model, [f"{s}.{i}" for s in candidates for i in range(len(model.get_submodule(s)))], inputs)
        stacks, shared = _select_stacks(model, candidates, tracer)
        if not stacks:
            raise no_stack_error(model)
        sizes = [(s, len(model.get_submodule(s))) for s in stacks]
        layer_names = [f"{s}.{i}" for s, n in sizes for i in range(n)]
    stack_of = [s for s, n in sizes for _ in range(n)]
    index = {n: i for i, n in enumerate(layer_names)}
    per_layer: list[list[str]] = [[] for _ in layer_names]
    embeddings, head, tied = [], [], []
    seen_layer = False
    for name, _ in model.named_parameters():
        owner = next((index[ln] for ln in _prefixes(name) if ln in index), None)
        uses = tracer.used.get(name)
        if owner is not None:
            where = owner
        elif uses:
            where = _place(name, uses[0], index, stack_of, len(layer_names))
            if where is None and any(_place(name, u, index, stack_of, len(layer_names)) == len(layer_names) for u in uses):
                tied.append(name)
        else:  # never used in the trace (e.g. a pooler the task head skips): registration order decides
            where = None if not seen_layer else len(layer_names)
        seen_layer = seen_layer or owner is not None
        if where is None:
            embeddings.append(name)
        elif where == len(layer_names):
            head.append(name)
        else:
            per_layer[where].append(name)
    return ModelParts(layer_names, embeddings, per_layer, head, sizes, tied, shared, traced=True)


def _parent(paths: list[str]) -> str:
    """The module path the given layers share ('encoder.layer' for 'encoder.layer.0', 'encoder.layer.1')."""
    parents = {p.rsplit(".", 1)[0] if "." in p else "" for p in paths}
    return parents.pop() if len(parents) == 1 else ""


def _prefixes(name: str) -> list[str]:
    """'a.b.c.weight' -> ['a.b.c', 'a.b', 'a'] (longest first)."""
    bits = name.split(".")[:-1]
    return [".".join(bits[:i]) for i in range(len(bits), 0, -1)]


def _explicit_layers(model: nn.Module, layers) -> list[str]:
    if isinstance(layers, str):
        try:
            layers = model.get_submodule(layers)
        except AttributeError:
            raise ValueError(f"Model has no submodule {layers!r}; pass the dotted path of its layer list, e.g. 'encoder.layer'.") from None
    ids = {id(m): n for n, m in model.named_modules()}
    if len(layers) == 0 or any(id(m) not in ids for m in layers):
        raise ValueError("The layers passed are not (all) submodules of this model; pass modules taken from the model itself.")
    return [ids[id(m)] for m in layers]


def split_model(model: nn.Module, layers: str | nn.ModuleList | list[nn.Module] | None = None,
                example_inputs: dict | None = None) -> ModelParts:
    """Split `model`'s parameters into embeddings, layers and head (see the module docstring).

    Args:
        layers: overrides discovery: a dotted module path, a ModuleList, or a list of modules (one stack).
        example_inputs: keyword arguments for one forward pass to trace (default: built from the model's config).
    """
    explicit = _explicit_layers(model, layers) if layers is not None else None
    try:
        inputs = example_inputs if example_inputs is not None else make_example_inputs(model)
    except ValueError as err:
        inputs, failure = None, err
    if inputs is not None:
        try:
            return traced_parts(model, inputs, explicit)
        except ForwardFailed as err:
            failure = err.__cause__
    parts = registration_parts(model, explicit or find_layer_stack(model))
    warnings.warn(f"Could not trace a forward pass of {type(model).__name__} ({type(failure).__name__}: {str(failure)[:120]}); "
                  "embeddings and head were guessed from registration order. Pass example_inputs={...} "
                  "(one batch's keyword arguments) to Finetuner to trace it.", stacklevel=3)
    return parts
