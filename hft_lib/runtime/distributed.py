"""Multi-process data-parallel training (DDP) under `accelerate launch`, with freezing that stays correct.

`fit` (and so `hft compare`) detects that it was started by `accelerate launch --num_processes N`
(or torchrun) and then trains with PyTorch DDP: `accelerate` starts the processes and the process
group (gloo on CPU, NCCL on GPUs) and picks each process's device; we do the rest, for two reasons:

* The same global batch as a single process. Every process iterates the same loader in the same
  order (its shuffle has its own seeded generator) and keeps its slice of each global batch, so
  `batch_size` means the same thing on 1 or N processes, data order and resume are identical, and
  a 2-process run ends within rounding of a 1-process run (`tests/test_distributed.py`).
* Freezing. DDP registers the parameters that require grad *when it wraps the model* and only ever
  all-reduces those. Unfreeze a layer later and its gradients silently stay per-process: the
  replicas drift apart without an error. We therefore re-wrap the model whenever the set of
  trainable parameters changes (a gradual-unfreezing stage, or a step hook that re-freezes): each
  wrapper syncs exactly what is trainable, frozen layers cost no communication, and no
  `find_unused_parameters` graph walk is paid on every step. Re-wrapping costs one broadcast of the
  weights per stage, i.e. a handful of times per run.

FSDP and DeepSpeed shard parameters into flat buffers whose `requires_grad` is fixed when they are
wrapped, so freezing schedules cannot change it afterwards; we refuse them with a clear message
rather than train something other than what was asked.
"""

from __future__ import annotations

import gc
import os

import torch
from torch import nn
from torch.utils.data import RandomSampler

_CONTEXT: DistributedContext | None = None


def world_size() -> int:
    """Number of processes this run was launched with (1 outside `accelerate launch` / torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_backend() -> None:
    """Refuse sharded engines whose parameters cannot change requires_grad after wrapping."""
    for engine, var in (("FSDP", "ACCELERATE_USE_FSDP"), ("DeepSpeed", "ACCELERATE_USE_DEEPSPEED")):
        if os.environ.get(var, "").lower() in ("1", "true", "yes"):
            raise ValueError(f"{engine} is not supported by hft's freezing schedules (it fixes which parameters train "
                             f"when it wraps the model); launch with plain DDP: accelerate launch --num_processes N "
                             "without an FSDP/DeepSpeed config.")


class DistributedContext:
    """This process's place in a multi-process run, and the DDP wrapper that follows the freezing."""

    def __init__(self):
        check_backend()
        from accelerate import PartialState

        # Initialises the process group from the launcher's environment; without cpu=True a CPU-only
        # machine would be treated as a single process even though N were launched.
        self.state = PartialState(cpu=not torch.cuda.is_available())
        self.rank, self.world, self.device = self.state.process_index, self.state.num_processes, self.state.device
        self._wrapper: nn.Module | None = None
        self._signature: tuple | None = None
        self.wraps = 0  # how many times the model was (re-)wrapped: one plus one per change of trainable set

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The DDP wrapper for `model`'s currently trainable parameters (a new one if that set changed)."""
        signature = tuple(p.requires_grad for p in model.parameters())
        if self._wrapper is not None and self._wrapper.module is model and signature == self._signature:
            return self._wrapper
        self._wrapper = None
        gc.collect()  # drop the old wrapper's reducer and its gradient hooks before adding new ones
        ids = [self.device.index] if self.device.type == "cuda" else None
        self._wrapper = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self._signature, self.wraps = signature, self.wraps + 1
        return self._wrapper

    def release(self) -> None:
        """Drop the wrapper (and with it the model and the reducer's hooks), e.g. between runs."""
        self._wrapper, self._signature = None, None
        gc.collect()

    def shard(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], float]:
        """This process's rows of a global batch, and the loss weight that makes DDP's mean the global mean."""
        size = len(next(iter(batch.values())))
        rows = torch.tensor_split(torch.arange(size), self.world)[self.rank]
        if len(rows) == 0:  # fewer rows than processes (a tiny last batch): run one row with weight 0
            return {k: v[:1] for k, v in batch.items()}, 0.0
        return {k: v[rows] for k, v in batch.items()}, len(rows) * self.world / size

    def global_mean(self, value: torch.Tensor) -> torch.Tensor:
        """Sum over processes of value / world (NaN anywhere makes it NaN everywhere, so all stop together)."""
        total = value.detach().float().clone() / self.world
        torch.distributed.all_reduce(total)
        return total

    def broadcast(self, obj):
        """Rank 0's `obj` on every process (e.g. the results folder it created)."""
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def check_loader(loader) -> None:
    """Every process must draw the same shuffle, so a shuffled loader needs its own seeded generator."""
    if isinstance(getattr(loader, "sampler", None), RandomSampler) and loader.generator is None:
        raise ValueError("A shuffled DataLoader needs generator=torch.Generator().manual_seed(seed) for multi-process "
                         "training (every process must see the same order); or build it with hft_lib.make_loader.")


def current() -> DistributedContext | None:
    """The multi-process context when launched with N > 1 processes, else None (plain single-process code path)."""
    global _CONTEXT
    check_backend()  # FSDP/DeepSpeed asked for, even on one process: say so rather than quietly run without it
    if world_size() <= 1:
        return None
    if _CONTEXT is None:
        _CONTEXT = DistributedContext()
    return _CONTEXT
