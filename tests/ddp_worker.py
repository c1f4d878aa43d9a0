"""Run by tests/test_distributed.py, once plainly and once under `accelerate launch --num_processes 2`.

Trains a tiny BERT (dropout off, so both runs draw the same numbers) with gradual unfreezing on a
shuffled loader of global batch 8 and writes each process's final weights to OUT/fit-rank{r}.safetensors.
With `trainer` it also trains with the HF Trainer and FreezingCallback (OUT/trainer-rank{r}...), and
repeats both with the protection switched off (OUT/naive-fit-..., OUT/naive-trainer-...): the control
that shows the DDP trap is real, so the test's checks can fail.
"""

import contextlib
import json
import os
import sys

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from transformers import BertConfig, BertForSequenceClassification

from hft_lib import Finetuner, GradualUnfreezing, UnfreezeSchedule, fit
from hft_lib.runtime import distributed
from hft_lib.runtime import hf_trainer as hf_trainer_module


def tiny_model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=32, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config)


def save(model, out: str, name: str) -> None:
    rank = int(os.environ.get("RANK", "0"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"{name}-rank{rank}.safetensors"))


@contextlib.contextmanager
def wrap_once():
    """The trap: wrap the model in DDP once and never again (what a naive integration does)."""
    original = distributed.DistributedContext.wrap

    def once(self, model):
        return self._wrapper if self._wrapper is not None else original(self, model)

    distributed.DistributedContext.wrap = once
    try:
        yield
    finally:
        distributed.DistributedContext.wrap = original


@contextlib.contextmanager
def no_gradient_averaging():
    original = hf_trainer_module.average_unsynced_gradients
    hf_trainer_module.average_unsynced_gradients = lambda *args, **kwargs: None
    try:
        yield
    finally:
        hf_trainer_module.average_unsynced_gradients = original


def rows() -> list[dict]:
    g = torch.Generator().manual_seed(123)
    return [{"input_ids": torch.randint(1, 100, (10,), generator=g), "attention_mask": torch.ones(10, dtype=torch.long),
             "labels": torch.randint(0, 3, (), generator=g)} for _ in range(36)]  # 4 full batches of 8 + one of 4


def with_fit(out: str, name: str) -> dict:
    model = tiny_model()
    loader = DataLoader(rows(), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    ft = Finetuner(model, "head_only", verbose=False)
    schedule = UnfreezeSchedule("bottom_up", stage_length=2, unit="step")
    history = fit(ft, loader, epochs=2, lr=1e-2, callbacks=[GradualUnfreezing(schedule)], progress=False)
    save(model, out, name)
    return {"losses": [s["loss"] for s in history.steps], "trainable": list(history.steps[-1]["trainable_layers"])}


def with_trainer(out: str, name: str) -> None:
    """HF Trainer + FreezingCallback on every process: unfrozen layers must stay in sync across processes."""
    from transformers import Trainer, TrainingArguments

    model = tiny_model()
    callback = hf_trainer_module.FreezingCallback(model, unfreeze=UnfreezeSchedule("top_down", stage_length=1, unit="step"),
                                                  verbose=False)
    args = TrainingArguments(output_dir=os.path.join(out, "trainer"), max_steps=4, per_device_train_batch_size=4,
                             learning_rate=1e-2, use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True,
                             logging_strategy="no", seed=0)
    Trainer(model=model, args=args, train_dataset=rows(), callbacks=[callback]).train()
    save(model, out, name)


def main(out: str, trainer: bool = False) -> None:
    torch.set_num_threads(1)
    info = with_fit(out, "fit")
    ctx = distributed.current()
    info.update(world=ctx.world if ctx else 1, wraps=ctx.wraps if ctx else 0)
    with open(os.path.join(out, f"fit-rank{int(os.environ.get('RANK', '0'))}.json"), "w") as fh:
        json.dump(info, fh)
    if trainer:
        with_trainer(out, "trainer")
        with wrap_once():
            with_fit(out, "naive-fit")
        with no_gradient_averaging():
            with_trainer(out, "naive-trainer")


if __name__ == "__main__":
    main(sys.argv[1], trainer="trainer" in sys.argv[2:])
