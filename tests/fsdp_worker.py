"""Run by tests/test_fsdp.py, once plainly and once under `accelerate launch --use_fsdp --fsdp_version 2 --num_processes 2`.

Tiny BERT (dropout off) on the global batch of tests/ddp_worker.py. Each scenario writes every process's
final weights, gathered from the shards, to OUT/<scenario>-rank{r}.safetensors and its losses to
OUT/<scenario>-rank{r}.json:

* gradual: top-down gradual unfreezing (a stage every 3 steps; layer 1 joins at the last step, layer 0 and
  the embeddings never), with evaluation after each epoch.
* alternate: the fixed pattern that freezes layers 0 and 2 (gradients pass through frozen layer 2).
* tied: a tiny Llama with its LM head tied to the frozen embeddings, lower_half.
* pretrained: lower_half on a classifier built with from_pretrained from an encoder after the process group started,
  as `hft compare` does: transformers then initialises the new head on process 0 only (accelerate's default
  cpu_ram_efficient_loading) and leaves it on the meta device on the other processes.
* naive: the gradual run without re-resolving the parameters after `fully_shard` (the control: nothing trains).
* redraw: the HFT paper's half, redrawn every 2 steps, with the optimiser built before `fit`.
* resume: the gradual run, checkpointed every 3 steps, crashed after step 5 and resumed.
* trainer (2 processes only): FreezingCallback's hooks around a model sharded as accelerate's FSDP2 does it
  (the Trainer itself runs FSDP only on GPUs: on CPU, accelerate quietly falls back to DDP).
"""

import contextlib
import json
import os
import sys

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from hft_lib import Checkpointing, Finetuner, GradualUnfreezing, LambdaCallback, UnfreezeSchedule, fit
from hft_lib.freezing import Finetuner as FinetunerClass
from hft_lib.runtime import distributed, sharding
from hft_lib.strategies import prepare

try:  # run as a script by the launcher, or imported by the test
    from tests.conftest import tiny_llama
    from tests.ddp_worker import rows, tiny_model
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.conftest import tiny_llama
    from tests.ddp_worker import rows, tiny_model

SCHEDULE = UnfreezeSchedule("top_down", stage_length=3, unit="step")


class Crash(Exception):
    """Stands for a killed process."""


def loader() -> DataLoader:
    return DataLoader(rows(), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))


def record(out: str, name: str, ft: Finetuner, history, on_meta: bool = False) -> None:
    """Every process gathers the full weights (a collective under FSDP2) and writes its own copy."""
    rank = int(os.environ.get("RANK", "0"))
    save_file(sharding.full_weights(ft.model), os.path.join(out, f"{name}-rank{rank}.safetensors"))
    info = {"losses": [s["loss"] for s in history.steps], "sharded": sharding.is_sharded(ft.model),
            "eval": [e.get("eval_loss") for e in history.epochs], "state_mb": history.state_mb, "on_meta": on_meta}
    with open(os.path.join(out, f"{name}-rank{rank}.json"), "w") as fh:
        json.dump(info, fh)


def gradual(callbacks=(), **kwargs):
    ft = Finetuner(tiny_model(), "head_only", verbose=False)
    history = fit(ft, loader(), kwargs.pop("eval_loader", None), epochs=2, lr=1e-2, progress=False,
                  callbacks=[GradualUnfreezing(SCHEDULE), *callbacks], **kwargs)
    return ft, history


@contextlib.contextmanager
def without_rebinding():
    """The trap: keep the parameter objects `fully_shard` replaced (what a naive integration does)."""
    rebind, point = FinetunerClass.rebind_parameters, sharding._point_optimizer_at
    FinetunerClass.rebind_parameters = lambda self: None
    sharding._point_optimizer_at = lambda *args: None
    try:
        yield
    finally:
        FinetunerClass.rebind_parameters, sharding._point_optimizer_at = rebind, point


def tied():
    g = torch.Generator().manual_seed(1)
    ids = [torch.randint(0, 64, (8,), generator=g) for _ in range(16)]
    lm = DataLoader([{"input_ids": i, "attention_mask": torch.ones_like(i), "labels": i} for i in ids], batch_size=8,
                    shuffle=True, generator=torch.Generator().manual_seed(0))
    ft = Finetuner(tiny_llama(), "lower_half", verbose=False)
    return ft, fit(ft, lm, epochs=2, lr=1e-2, progress=False)


def pretrained(folder: str):
    from transformers import BertForSequenceClassification

    distributed.current()  # the process group first, as `hft compare` does
    torch.manual_seed(0)  # the new head's initial values: the same on process 0 and in the single-process run
    model = BertForSequenceClassification.from_pretrained(folder)
    on_meta = any(p.is_meta for p in model.parameters())
    ft = Finetuner(model, "lower_half", verbose=False)
    return ft, fit(ft, loader(), epochs=1, lr=1e-2, progress=False), on_meta


def redraw():
    ft, optimizer, own, lr = prepare("hft_paper", tiny_model(), 1e-2, seed=0, redraw_every=2)
    return ft, fit(ft, loader(), epochs=1, lr=lr, optimizer=optimizer, callbacks=own, progress=False)


def crash_and_resume(folder: str):
    def crash(run):
        if run.step == 5:
            raise Crash

    with contextlib.suppress(Crash):
        gradual([LambdaCallback(on_step_end=crash), Checkpointing(folder, every=3)])
    return gradual([Checkpointing(resume_from=folder)])


def trainer_hooks(out: str) -> None:
    """FreezingCallback under FSDP2 in the Trainer's order (accelerate builds the optimiser, shards the model and points
    the optimiser at the shards; then on_train_begin), its hooks driven around 4 steps of top-down unfreezing."""
    from types import SimpleNamespace

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.optim.lr_scheduler import LambdaLR

    from hft_lib.runtime.hf_trainer import FreezingCallback

    model = tiny_model()
    callback = FreezingCallback(model, unfreeze=UnfreezeSchedule("top_down", stage_length=1, unit="step"), verbose=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    mesh = init_device_mesh("cpu", (2,))
    for layer in callback.ft.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    shards = dict(model.named_parameters())
    for group in optimizer.param_groups:
        group["params"] = [shards[names[id(p)]] for p in group["params"]]
    scheduler = LambdaLR(optimizer, lambda step: 1.0)
    args = SimpleNamespace(fsdp=True, fsdp_config={"version": 2}, deepspeed=None, learning_rate=1e-2, weight_decay=0.0,
                           world_size=2)
    state = SimpleNamespace(global_step=0, epoch=0)
    callback.on_train_begin(args, state, None, optimizer=optimizer)
    rank = int(os.environ["RANK"])
    for step, batch in zip(range(4), loader()):
        state.global_step = step
        callback.on_step_begin(args, state, None, optimizer=optimizer, lr_scheduler=scheduler)
        model(**{k: v[rank * 4:(rank + 1) * 4] for k, v in batch.items()}).loss.backward()
        callback.on_pre_optimizer_step(args, state, None)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    weights = sharding.full_weights(model)
    save_file(weights, os.path.join(out, f"trainer-rank{rank}.safetensors"))


def main(out: str, pretrained_folder: str) -> None:
    torch.set_num_threads(1)
    record(out, "gradual", *gradual(eval_loader=DataLoader(rows()[:8], batch_size=4)))
    alternate = Finetuner(tiny_model(), "alternate", verbose=False)
    record(out, "alternate", alternate, fit(alternate, loader(), epochs=1, lr=1e-2, progress=False))
    record(out, "tied", *tied())
    record(out, "pretrained", *pretrained(pretrained_folder))
    with without_rebinding():
        record(out, "naive", *gradual())
    record(out, "redraw", *redraw())
    record(out, "resume", *crash_and_resume(os.path.join(out, "checkpoints")))
    if distributed.current() is not None:
        trainer_hooks(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
