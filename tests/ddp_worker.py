"""Run by tests/test_distributed.py, once plainly and once under `accelerate launch --num_processes 2`.

Trains a tiny BERT (dropout off, so both runs draw the same numbers) with gradual unfreezing on a
shuffled loader of global batch 8, then writes each process's final weights to OUT/rank{r}.safetensors.
With `trainer` it also trains one with the HF Trainer and FreezingCallback (OUT/trainer-rank{r}.safetensors).
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from transformers import BertConfig, BertForSequenceClassification

from hft_lib import Finetuner, UnfreezeSchedule, distributed, fit


def tiny_model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=32, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(config)


def with_trainer(rows: list[dict], out: str) -> None:
    """HF Trainer + FreezingCallback on every process: unfrozen layers must stay in sync across processes."""
    from transformers import Trainer, TrainingArguments

    from hft_lib.hf_trainer import FreezingCallback

    model = tiny_model()
    callback = FreezingCallback(model, unfreeze=UnfreezeSchedule("top_down", stage_length=1, unit="step"), verbose=False)
    args = TrainingArguments(output_dir=os.path.join(out, "trainer"), max_steps=4, per_device_train_batch_size=4,
                             learning_rate=1e-2, use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True,
                             logging_strategy="no", seed=0)
    Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback]).train()
    rank = int(os.environ.get("RANK", "0"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"trainer-rank{rank}.safetensors"))


def main(out: str, trainer: bool = False) -> None:
    torch.set_num_threads(1)
    model = tiny_model()
    g = torch.Generator().manual_seed(123)
    rows = [{"input_ids": torch.randint(1, 100, (10,), generator=g), "attention_mask": torch.ones(10, dtype=torch.long),
             "labels": torch.randint(0, 3, (), generator=g)} for _ in range(36)]  # 4 full batches + one of 4
    loader = DataLoader(rows, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    ft = Finetuner(model, "head_only", verbose=False)
    schedule = UnfreezeSchedule("bottom_up", stage_length=2, unit="step")
    history = fit(ft, loader, epochs=2, lr=1e-2, unfreeze=schedule, progress=False, device="cpu", seed=0)
    rank = int(os.environ.get("RANK", "0"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, f"rank{rank}.safetensors"))
    ctx = distributed.current()
    info = {"world": ctx.world if ctx else 1, "wraps": ctx.wraps if ctx else 0,
            "losses": [s["loss"] for s in history.steps], "trainable": list(history.steps[-1]["trainable_layers"])}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump(info, fh)
    if trainer:
        with_trainer(rows, out)


if __name__ == "__main__":
    main(sys.argv[1], trainer="trainer" in sys.argv[2:])
