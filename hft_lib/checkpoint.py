"""Checkpoint and resume in the middle of a run, gradual-unfreezing stage included.

A checkpoint is a folder `step-000040/` (40 optimiser steps done) holding:
    model.safetensors   the weights (safetensors: loading never runs code)
    state.pt            optimiser state and RNG states, read back with torch.load(weights_only=True)
    meta.json           model identity, training plan, position (step, epoch, batch), callback states, history
It is written to a hidden temporary folder and renamed into place, so a crash while saving never
leaves a half-written checkpoint and never touches the earlier ones. Resuming restores the weights,
every stateful callback (gradual unfreezing's stage, the paper's redraw round, LISA's round: each through its own
`state_dict`, so this module knows no strategy by name), the optimiser groups and their state, the LR schedule position (a function of
the step) and the data order and dropout randomness, so on a deterministic CPU a resumed run ends
with exactly the weights of an uninterrupted one (`tests/test_resume.py`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from .callbacks import Callback, History, ResumeState, Run
from .freezing import Finetuner
from .replay import rng_state
from .runtime import sharding

FORMAT = 2  # 2: gradual unfreezing saves its stage as a callback state
PREFIX = "step-"
# Plan entries that must match on resume: they decide the optimiser groups and the schedule.
STRICT_PLAN_KEYS = ("pattern", "epochs", "total_steps", "schedule", "lr_decay", "weight_decay", "batches_per_epoch")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or from a different model or run."""


def model_identity(model: torch.nn.Module, name: str | None = None) -> dict:
    """What a checkpoint must match: class, name, and a fingerprint of every parameter's name and shape."""
    config = getattr(model, "config", None)
    shapes = sorted((n, list(p.shape)) for n, p in model.named_parameters())  # global shapes, under FSDP2 too
    architecture = sharding.model_class(model).__name__
    return {
        "name": name or getattr(config, "_name_or_path", None) or architecture,
        "named": name is not None,  # names given by the caller (e.g. "minilm-l6 on trec6") must match too
        "architecture": architecture,
        "num_labels": getattr(config, "num_labels", None) if config is not None and hasattr(config, "id2label") else None,
        "fingerprint": hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16],
    }


def training_plan(ft: Finetuner, **settings) -> dict:
    """The settings of a run, as plain JSON (what resuming checks against)."""
    plan = {"pattern": ft.pattern_name if not callable(ft.freeze_pattern) else "custom"}
    for key, value in settings.items():
        plan[key] = value.__dict__.copy() if hasattr(value, "__dataclass_fields__") else value
    return json.loads(json.dumps(plan, default=str))


# -- saving ----------------------------------------------------------------------------------
class Checkpointer:
    """Save a checkpoint every `every` optimiser steps into `folder`, keeping the newest `keep`."""

    def __init__(self, folder: str | Path, every: int, identity: dict, plan: dict, keep: int = 2,
                 resumed_from: Path | None = None):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"Checkpointing(every=...) must be a whole number of steps of at least 1, not {every!r}.")
        self.folder, self.every, self.identity, self.plan, self.keep = Path(folder), every, identity, plan, keep
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise OSError(f"Cannot write checkpoints to {self.folder} ({err.strerror}); pass a writable checkpoint folder.") from None
        self.last: Path | None = latest_checkpoint(self.folder, missing_ok=True)
        same_run = resumed_from is not None and Path(resumed_from).resolve().parent == self.folder.resolve()
        if self.last is not None and not same_run:  # its checkpoints would be skipped or rotated away
            raise ValueError(f"The checkpoint folder {self.folder} already holds checkpoints of another run; pass a new "
                             f"folder, or continue that run with resume_from={str(self.folder)!r}.")

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, steps_done: int, epoch: int,
             batch_in_epoch: int, epoch_rng: dict, history: History, callback_states: dict | None = None,
             weights: dict | None = None, optimizer_state: dict | None = None) -> Path:
        """Write one checkpoint atomically; returns its folder.

        weights, optimizer_state: full tensors gathered from FSDP2 shards (default: read from model and optimizer).
        """
        target = self.folder / f"{PREFIX}{steps_done:06d}"
        if target.exists():  # never overwrite what is already saved
            return target
        tmp = self.folder / f".tmp-{target.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            if weights is None:
                save_model(model, str(tmp / "model.safetensors"))
            else:
                save_file(weights, str(tmp / "model.safetensors"))
            optimizer_state = optimizer.state_dict() if optimizer_state is None else optimizer_state
            torch.save({"optimizer": optimizer_state, "rng": rng_state(), "epoch_rng": epoch_rng}, tmp / "state.pt")
            meta = {"format": FORMAT, "identity": self.identity, "plan": self.plan, "step": steps_done, "epoch": epoch,
                    "batch_in_epoch": batch_in_epoch, "callbacks": callback_states or {},
                    "history": {"steps": history.steps, "epochs": history.epochs}}
            (tmp / "meta.json").write_text(json.dumps(meta, default=list))
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.last = target
        done = sorted(p for p in self.folder.glob(f"{PREFIX}*") if p.is_dir())
        for old in done[:-self.keep] if self.keep else []:
            shutil.rmtree(old, ignore_errors=True)
        return target


# -- loading ---------------------------------------------------------------------------------
def latest_checkpoint(folder: str | Path, missing_ok: bool = False) -> Path | None:
    """The newest complete checkpoint in `folder` (or `folder` itself if it is one)."""
    folder = Path(folder)
    if (folder / "meta.json").is_file():
        return folder
    found = sorted(p for p in folder.rglob(f"{PREFIX}*") if (p / "meta.json").is_file()) if folder.is_dir() else []
    if not found and not missing_ok:
        raise CheckpointError(f"No checkpoint found in {folder}; pass a folder written by Checkpointing(folder, ...) "
                              "(or by hft compare --checkpoint-every).")
    return max(found, key=lambda p: p.name) if found else None


def load_checkpoint(path: str | Path, ft: Finetuner, identity: dict, plan: dict) -> ResumeState:
    """Check a checkpoint belongs to this model and run, load its weights into `ft.model`, return the rest."""
    path = latest_checkpoint(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"Checkpoint {path} is unreadable ({err}); resume from an earlier one or start afresh.") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"Checkpoint {path} has format {meta.get('format')}, and this hft reads format {FORMAT}; "
                              "resume it with the hft version that saved it, or start afresh.")
    saved = meta.get("identity", {})
    named = saved.get("named") and identity.get("named")
    if ((saved.get("architecture"), saved.get("fingerprint")) != (identity["architecture"], identity["fingerprint"])
            or (named and saved.get("name") != identity["name"])):
        raise CheckpointError(
            f"Checkpoint {path} was saved from model {saved.get('name')!r} ({saved.get('architecture')}, "
            f"{saved.get('num_labels')} labels), not {identity['name']!r} ({identity['architecture']}, "
            f"{identity['num_labels']} labels); resume with the model and task it was saved from, or start without resuming.")
    differ = [k for k in STRICT_PLAN_KEYS if meta["plan"].get(k) != plan.get(k)]
    if differ:
        details = ", ".join(f"{k}: saved {meta['plan'].get(k)!r}, now {plan.get(k)!r}" for k in differ)
        raise CheckpointError(f"Checkpoint {path} belongs to a run with other settings ({details}); resume with the same settings.")
    try:
        if sharding.is_sharded(ft.model):  # FSDP2: each process copies its shards out of the full tensors
            sharding.load_full_weights(ft.model, load_file(path / "model.safetensors"))
        else:
            load_model(ft.model, str(path / "model.safetensors"))
        state = torch.load(path / "state.pt", weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - any failure here means the files are damaged
        raise CheckpointError(f"Checkpoint {path} is corrupt ({type(err).__name__}); resume from an earlier one or start afresh.") from None
    history = meta.get("history", {"steps": [], "epochs": []})
    for row in history["steps"] + history["epochs"]:  # JSON turned these tuples into lists
        if "trainable_layers" in row:
            row["trainable_layers"] = tuple(row["trainable_layers"])
    return ResumeState(path, meta["step"], meta["epoch"], meta["batch_in_epoch"], state["rng"],
                       state["epoch_rng"], state["optimizer"], history, meta["plan"], meta.get("callbacks", {}))


def callback_states(callbacks: list) -> dict[str, dict]:
    """{"<position>:<class>": state} of the callbacks that have state."""
    states = {f"{i}:{type(c).__name__}": c.state_dict() for i, c in enumerate(callbacks)}
    return {key: state for key, state in states.items() if state is not None}


def restore_callbacks(resume: ResumeState, callbacks: list) -> None:
    """Give every stateful callback its saved state back, or refuse clearly when the callbacks differ."""
    now = {f"{i}:{type(c).__name__}": c for i, c in enumerate(callbacks) if c.state_dict() is not None}
    missing = [k.split(":", 1)[1] for k in resume.callback_states if k not in now]
    if missing:
        raise CheckpointError(f"Checkpoint {resume.path} was saved with a stateful callback ({', '.join(missing)}); "
                              "pass the same callbacks to resume it exactly.")
    unsaved = [type(c).__name__ for k, c in now.items() if k not in resume.callback_states]
    if unsaved:
        raise CheckpointError(f"Checkpoint {resume.path} holds no state for callback {', '.join(unsaved)}, so the run cannot "
                              "continue where it stopped; resume without it, or start afresh.")
    for key, callback in now.items():
        try:
            callback.load_state_dict(resume.callback_states[key])
        except ValueError as err:  # state of other settings (another schedule, seed or period)
            raise CheckpointError(f"Checkpoint {resume.path} cannot continue this run: {err}") from None


def restore_optimizer(resume: ResumeState, optimizer: torch.optim.Optimizer, lr: float, sharded: bool = False) -> None:
    """Load the optimiser state into the run's groups (sharded: cut into this process's FSDP2 shards); the callbacks
    have rebuilt the groups of their saved state first (unfreezing stages, LISA's active layers)."""
    saved_groups = resume.optimizer["param_groups"]
    if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in optimizer.param_groups]:
        raise CheckpointError(f"Checkpoint {resume.path} has other optimiser groups than this run; "
                              "resume with the same freeze pattern and callbacks.")
    optimizer.load_state_dict(sharding.shard_optimizer_state(resume.optimizer, optimizer) if sharded else resume.optimizer)
    saved_lr = resume.plan.get("lr")
    if saved_lr and lr != saved_lr:  # e.g. resuming after a divergence with a lower rate: scale every group
        for group in optimizer.param_groups:
            group["base_lr"] = group.get("base_lr", group["lr"]) * lr / saved_lr


class Checkpointing(Callback):
    """`fit` callback: save a checkpoint every `every` steps (default: every epoch) into `folder`, and/or resume.

    Args:
        folder: where to save (None: do not save, e.g. only resume).
        every: optimiser steps between checkpoints (default: one epoch); the last step is always saved.
        resume_from: a checkpoint, or a folder of them (the newest is used), of this model and run.
        model_name: recorded in checkpoints, so that resuming with another model is a clear error.
    """

    order = 100  # after every other callback: a checkpoint holds what they did in the same step

    def __init__(self, folder: str | Path | None = None, every: int | None = None, resume_from: str | Path | None = None,
                 model_name: str | None = None, keep: int = 2):
        if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
            raise ValueError(f"Checkpointing(every=...) must be a whole number of steps of at least 1, not {every!r}.")
        if every is not None and folder is None:
            raise ValueError("Checkpointing(every=...) needs a folder to save the checkpoints in: Checkpointing(folder, every).")
        self.folder, self.every, self.resume_from, self.model_name, self.keep = folder, every, resume_from, model_name, keep
        self.saver: Checkpointer | None = None  # on process 0 only
        self.total, self.every_steps = 0, 0

    @property
    def last(self) -> Path | None:
        return self.saver.last if self.saver else None

    def on_optimizer(self, run: Run) -> None:
        from .runtime import distributed

        identity = model_identity(run.model, self.model_name)
        plan = training_plan(run.ft, **run.plan)
        self.total = plan["total_steps"]
        if self.resume_from is not None:
            resume = load_checkpoint(self.resume_from, run.ft, identity, plan)
            # callbacks first: one that changes the trainable set (unfreezing, LISA, AutoFreeze) rebuilds the groups
            restore_callbacks(resume, run.callbacks)
            restore_optimizer(resume, run.optimizer, run.lr, sharded=sharding.is_sharded(run.model))
            run.resume, run.step = resume, resume.step
            run.history = History(resume.history["steps"], resume.history["epochs"])
        dist = distributed.current()
        self.every_steps = self.every or plan["batches_per_epoch"]
        if self.folder is not None and (dist is None or dist.is_main):
            self.saver = Checkpointer(self.folder, self.every_steps, identity, plan, self.keep,
                                      resumed_from=run.resume.path if run.resume else None)

    def on_step_end(self, run: Run) -> None:
        done = run.step + 1
        if self.folder is None or not (done % self.every_steps == 0 or done == self.total):
            return
        sharded = sharding.is_sharded(run.model)
        # FSDP2: every process helps gather the full tensors (a collective), process 0 writes them
        gathered = {"weights": sharding.full_weights(run.model),
                    "optimizer_state": sharding.full_optimizer_state(run.optimizer)} if sharded else {}
        if self.saver:
            self.saver.save(run.model, run.optimizer, steps_done=done, epoch=run.epoch, batch_in_epoch=run.batch_in_epoch,
                            epoch_rng=run.epoch_rng, history=run.history,
                            callback_states=callback_states([c for c in run.callbacks if c is not self]), **gathered)
        if sharded:
            torch.distributed.barrier()  # the checkpoint exists on disk before any process goes on
