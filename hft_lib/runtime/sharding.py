"""Sharded training (FSDP2): every process keeps 1/N of the weights, gradients and optimiser state.

`fit` uses this when launched with `accelerate launch --use_fsdp --fsdp_version 2 --num_processes N`
(or torchrun with `FitConfig(engine="fsdp")`). We call `torch.distributed.fsdp.fully_shard` on every
transformer layer and then on the whole model, so a layer's weights are gathered just before it runs
and freed again after it. FSDP2 keeps one DTensor per parameter (FSDP1 flattened a unit into one
buffer), which is what freezing needs:

* Frozen and trainable parameters may share a unit. A frozen parameter gets no gradient and no
  optimiser state; its shard is all it costs.
* `requires_grad` is read from the sharded parameter every time a unit is gathered, so gradual
  unfreezing and the HFT paper's redraw change what trains without re-wrapping anything; newly
  unfrozen parameters join the optimiser as new groups, as on one process.
* The trap: `fully_shard` *replaces* every parameter object by a new DTensor parameter. A Finetuner,
  an optimiser or a callback still holding the old objects would freeze, unfreeze and step tensors
  that are no longer in the model: the model would silently not train. `shard_model` therefore
  re-resolves the Finetuner's parameters by name and points an optimiser built before `fit` (e.g.
  the HFT paper's) at the new ones (`tests/test_fsdp.py` keeps a control without this).
* Every process starts from process 0's weights, as under DDP: the model is sharded empty (on the
  meta device) and process 0's tensors are broadcast into the shards. This matters beyond tidiness:
  with accelerate's default `--fsdp_cpu_ram_efficient_loading`, transformers initialises a new head
  (a classifier on a pretrained encoder) on process 0 only and leaves it on the meta device elsewhere.

Checkpoints are gathered: every process takes part in assembling the full tensors and process 0 writes
the same files as a single-process run, so a checkpoint resumes on any number of processes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ..freezing import Finetuner


def is_sharded(model: nn.Module) -> bool:
    """True once `fully_shard` has turned the model's parameters into DTensors."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def model_class(model: nn.Module) -> type:
    """The model's own class: `fully_shard` swaps in a subclass named FSDP<class> (checkpoints must not see that)."""
    if not is_sharded(model):
        return type(model)
    from torch.distributed.fsdp import FSDPModule

    return next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))


def local_bytes(tensor: torch.Tensor) -> int:
    """Bytes this process holds of a tensor: its own shard for a DTensor, the whole tensor otherwise."""
    from torch.distributed.tensor import DTensor

    local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
    return local.numel() * local.element_size()


def reshard_after_forward() -> bool:
    """accelerate's --fsdp_reshard_after_forward (default true: free a layer's gathered weights after its forward)."""
    return os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() not in ("0", "false", "no")


def shard_model(ft: Finetuner, device: torch.device, world: int,
                optimizer: torch.optim.Optimizer | None = None) -> None:
    """Shard `ft.model` over the `world` processes (each layer, then the root) onto `device`, in place.

    Every process starts from process 0's weights (so a model transformers left on the meta device outside
    process 0 is fine). Then re-resolve `ft`'s parameters by name and point `optimizer` (one built before
    sharding) at the new parameter objects. A model sharded already is left as it is (a second `fit` on it).
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    model = ft.model
    names = {id(p): n for n, p in model.named_parameters()}
    if not isinstance(model, FSDPModule):
        mesh = init_device_mesh(device.type, (world,))
        reshard = reshard_after_forward()
        own = _state_tensors(model)  # this process's copy; only process 0's is used
        _to_meta(model)  # shard empty tensors: no second copy of the model while sharding
        for layer in ft.layers:  # one unit per transformer layer: gathered for its forward, freed after
            fully_shard(layer, mesh=mesh, reshard_after_forward=reshard)
        fully_shard(model, mesh=mesh, reshard_after_forward=reshard)  # embeddings, head and the rest (a tied head too)
        model.to_empty(device=device)
        _copy_from_process_0(model, own, device)
    ft.rebind_parameters()
    if optimizer is not None:
        _point_optimizer_at(optimizer, names, ft.params)


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer (non-persistent ones too) by name; a tied weight once."""
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _to_meta(model: nn.Module) -> None:
    """Replace every parameter and buffer by an empty one on the meta device, keeping tied weights tied."""
    new: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for table, make in ((module._parameters, lambda p: nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)),
                            (module._buffers, lambda b: torch.empty_like(b, device="meta"))):
            for name, tensor in table.items():
                if tensor is not None:
                    table[name] = new.setdefault(id(tensor), make(tensor))


@torch.no_grad()
def _copy_from_process_0(model: nn.Module, own: dict[str, torch.Tensor], device: torch.device) -> None:
    """Fill the (empty) shards with process 0's weights, as DDP starts every replica from process 0's.

    Process 0's copy is the model: under accelerate's default --fsdp_cpu_ram_efficient_loading, transformers
    loads the weights on process 0 only and leaves the other processes' models on the meta device.
    """
    from torch.distributed.tensor import DTensor, distribute_tensor

    first = torch.distributed.get_rank() == 0
    for name, target in _state_tensors(model).items():  # the same order on every process
        full = own[name].detach().to(device, target.dtype).contiguous() if first else torch.empty(
            target.shape, dtype=target.dtype, device=device)
        torch.distributed.broadcast(full, src=0)
        if isinstance(target, DTensor):
            full = distribute_tensor(full, target.device_mesh, target.placements, src_data_rank=None)
        target.copy_(full)


def _point_optimizer_at(optimizer: torch.optim.Optimizer, names: dict[int, str], params: dict[str, nn.Parameter]) -> None:
    """Swap an optimiser's parameters for the sharded ones of the same name (it must not have stepped yet)."""
    if optimizer.state:
        raise ValueError("The optimizer passed to fit has already stepped, so its state cannot follow the model's "
                         "parameters into FSDP shards; pass a fresh optimizer (or resume with Checkpointing).")
    for group in optimizer.param_groups:
        try:
            group["params"] = [params[names[id(p)]] for p in group["params"]]
        except KeyError:
            raise ValueError("The optimizer passed to fit holds a tensor that is not a parameter of the model; build it "
                             "from the model's parameters (e.g. hft_lib.build_optimizer(ft, lr)).") from None


# -- gathered state for checkpoints (collective: every process must call these together) ----------
def full_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's whole state dict on CPU, gathered from the shards; a tied weight appears once, under its first name."""
    from torch.distributed.tensor import DTensor

    out, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        full = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
        out[name] = full.detach().to("cpu", copy=True).contiguous()
    return out


def load_full_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy full tensors (e.g. a checkpoint's) into this process's shards; no communication."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    aliases: dict[int, tuple[torch.Tensor, list[str]]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        aliases.setdefault(id(tensor), (tensor, []))[1].append(name)
    with torch.no_grad():
        for tensor, names in aliases.values():
            key = next((n for n in names if n in weights), None)
            if key is None:
                raise KeyError(f"missing {names[0]}")
            full = weights[key].to(tensor.dtype)
            if isinstance(tensor, DTensor):
                full = distribute_tensor(full.to(tensor.device), tensor.device_mesh, tensor.placements, src_data_rank=None)
            tensor.copy_(full)


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """`optimizer.state_dict()` with every sharded tensor gathered (the format a single process saves)."""
    from torch.distributed.tensor import DTensor

    saved = optimizer.state_dict()
    state = {index: {k: v.full_tensor().cpu() if isinstance(v, DTensor) else v for k, v in entry.items()}
             for index, entry in sorted(saved["state"].items())}
    return {"state": state, "param_groups": saved["param_groups"]}


def shard_optimizer_state(saved: dict, optimizer: torch.optim.Optimizer) -> dict:
    """A full optimiser state dict (from `full_optimizer_state` or one process) cut into this process's shards."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = {}
    for index, entry in saved["state"].items():
        param = params[int(index)]
        state[index] = {k: distribute_tensor(v.to(param.device, param.dtype), param.device_mesh, param.placements,
                                             src_data_rank=None)
                        if isinstance(param, DTensor) and torch.is_tensor(v) and v.shape == param.shape else v
                        for k, v in entry.items()}
    return {"state": state, "param_groups": saved["param_groups"]}
