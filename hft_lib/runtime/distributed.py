"""Multi-process training under `accelerate launch` (DDP, or FSDP2 sharding), with freezing that stays correct.

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

Past one GPU's memory, shard instead of replicating: `accelerate launch --use_fsdp --fsdp_version 2
--num_processes N` (or torchrun with `FitConfig(engine="fsdp")`) trains with FSDP2 (`sharding.py`):
each process keeps 1/N of the weights, gradients and optimiser state, with the same global batch and
the same freezing, gradual unfreezing, HFT redraws and checkpoints as DDP. Two engines stay refused,
because they cannot follow a freezing schedule: FSDP1 (accelerate's default `--fsdp_version 1`)
flattens each unit into one parameter whose `requires_grad` is fixed when it wraps the model, and
DeepSpeed's engine flattens the parameters and owns the optimiser from `deepspeed.initialize` on, so
no unfreezing stage can add a parameter group to it.
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


ENGINES = ("auto", "ddp", "fsdp")


def _flag(var: str) -> bool:
    return os.environ.get(var, "").lower() in ("1", "true", "yes")


def resolve_engine(engine: str = "auto") -> str:
    """The engine to train with, "ddp" or "fsdp": `engine` (FitConfig.engine), or for "auto" what the launcher asked for.

    Refuses, in one sentence each, what cannot follow a freezing schedule (DeepSpeed, FSDP1) and an engine
    that contradicts the launcher's.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; use one of {ENGINES} ('auto': what the launcher asked for, else DDP).")
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        raise ValueError("DeepSpeed is not supported by hft's freezing schedules (its engine flattens the parameters and owns "
                         "the optimiser, so unfrozen layers cannot join it); shard with FSDP2 instead: accelerate launch "
                         "--use_fsdp --fsdp_version 2 --num_processes N.")
    launcher_fsdp = _flag("ACCELERATE_USE_FSDP")
    if launcher_fsdp and os.environ.get("FSDP_VERSION", "1") != "2":
        raise ValueError("FSDP1 is not supported by hft's freezing schedules (it flattens each unit into one parameter whose "
                         "requires_grad is fixed when it wraps the model); launch with --fsdp_version 2 for FSDP2.")
    if engine == "ddp" and launcher_fsdp:
        raise ValueError("FitConfig(engine='ddp') contradicts the launcher's --use_fsdp; drop one of them.")
    if engine == "auto":
        return "fsdp" if launcher_fsdp else "ddp"
    return engine


class DistributedContext:
    """This process's place in a multi-process run, and the DDP wrapper that follows the freezing (FSDP2: `sharding.py`)."""

    def __init__(self):
        resolve_engine()
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

    def shard_model(self, ft, optimizer: torch.optim.Optimizer | None = None) -> None:
        """FSDP2: shard `ft.model` over the processes in place and re-point `ft` and `optimizer` at the shards."""
        from .sharding import shard_model

        shard_model(ft, self.device, self.world, optimizer)

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
    resolve_engine()  # DeepSpeed or FSDP1 asked for, even on one process: say so rather than quietly run without it
    if world_size() <= 1:
        return None
    if _CONTEXT is None:
        _CONTEXT = DistributedContext()
    return _CONTEXT
