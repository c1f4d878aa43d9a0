"""One fine-tuning run from names alone (model, task, strategy, profile): what the CLI and notebooks call."""

from __future__ import annotations

import time
from dataclasses import asdict

import torch

from ..callbacks import Callback, History
from ..config import Profile, get_device, get_profile, set_seed
from ..data import label_names, load_task, majority_baseline, make_loader
from ..models import load_model
from ..strategies import get_strategy, prepare
from ..training import FitConfig, evaluate, fit


def loaders(task, tokenizer, profile: Profile, seed: int = 0) -> dict:
    """Train (shuffled), validation and test loaders for a classification task."""
    n = len(label_names(task))
    return {split: make_loader(task[split], tokenizer, profile.batch_size, profile.max_length, shuffle=split == "train",
                               seed=seed, num_labels=n) for split in ("train", "validation", "test")}


def run_classification(strategy: str, model_name: str = "minilm-l6", task_name: str = "trec6",
                       profile: Profile | None = None, seed: int = 0, task=None, lr_decay: float | None = None,
                       progress: bool = True, keep_model: bool = False, probes=None,
                       probes_before: dict[str, float] | None = None, callbacks: list[Callback] | tuple = (),
                       device: str | None = None, embeddings: str | None = None,
                       start_from: tuple | None = None, rounds: int | None = None, score_test: bool = True) -> dict:
    """Fine-tune `model_name` on `task_name` with one strategy; returns a flat dict of results.

    Gradual strategies unfreeze one layer per stage, with stages spread evenly over the run. With
    `probes` (a `retention.ProbeSuite`), retention is measured too: probe accuracy after fine-tuning
    against `probes_before` (scored on the pretrained model if not given), reported as `retention_pct`
    and `probe_<task>` columns. `callbacks` run after the strategy's own (e.g. hft_paper's redraw);
    a `Checkpointing` among them saves or resumes the run. `embeddings` overrides a layer pattern's
    embeddings choice (see `prepare`). `start_from`: a (model, tokenizer) pair to fine-tune instead of loading
    `model_name` (e.g. one already fine-tuned on another task); seed before creating it, so that a new
    head's initial weights depend on the seed only. `rounds`: the paper's redraws, LISA's redraws and AutoFreeze's
    measuring windows per run (default: one per epoch). `score_test=False` leaves the test split alone
    (`test_accuracy` is NaN) and scores the validation split once, after training: what choosing a rate needs.
    """
    get_strategy(strategy)
    profile = profile or get_profile()
    task = task or load_task(task_name, profile.train_size, profile.eval_size, profile.eval_size, seed=seed)
    set_seed(seed)
    model, tokenizer = start_from or load_model(model_name, num_labels=len(label_names(task)))
    split = loaders(task, tokenizer, profile, seed)
    steps = profile.epochs * len(split["train"])
    period = max(1, steps // rounds) if rounds else len(split["train"])  # default: a round (or window) per epoch
    ft, optimizer, own, lr = prepare(strategy, model, profile.lr, seed=seed, total_steps=steps, redraw_every=period,
                                     window=period, lr_decay=lr_decay, embeddings=embeddings)
    start = time.perf_counter()
    config = FitConfig(lr_decay=lr_decay, seed=seed, device=device, desc=strategy)
    # choosing a rate reads the validation split once, after training (not every epoch): the same final score, ~20 % faster
    history: History = fit(ft, split["train"], split["validation"] if score_test else None, epochs=profile.epochs, lr=lr,
                           optimizer=optimizer, callbacks=[*own, *callbacks], progress=progress, config=config)
    train_time = time.perf_counter() - start
    if not score_test:
        history.epochs[-1].update({f"eval_{k}": v for k, v in evaluate(ft.model, split["validation"]).items()})
    # on the model's device (per-process GPU under accelerate launch)
    test = evaluate(ft.model, split["test"]) if score_test else {"accuracy": float("nan")}
    result = {
        "strategy": strategy, "model": model_name, "task": task_name, "profile": profile.name, "seed": seed,
        "test_accuracy": test["accuracy"], "majority_baseline": majority_baseline(task),
        "val_accuracy": history.final.get("eval_accuracy"), "val_curve": [e.get("eval_accuracy") for e in history.epochs],
        "lr": lr, "trainable_params": ft.trainable_parameter_count(),
        "trainable_pct": 100 * ft.trainable_share(), "train_time_s": train_time,
        "epoch_time_s": train_time / len(history.epochs), "step_time_s": history.median_step_time(),
        "state_mb": history.state_mb, "final_loss": history.steps[-1]["loss"] if history.steps else float("nan"),
        "train_examples": len(task["train"]), "test_examples": len(task["test"]) if score_test else 0,
        "device": str(get_device()),
    }
    if probes is not None:
        from ..measure.retention import mean_retention

        after = probes.score(ft.model)
        if probes_before is None:
            probes_before = probes.score(load_model(model_name, num_labels=len(label_names(task)))[0].to(get_device()))
        result["retention_pct"] = mean_retention(probes_before, after)
        result.update({f"probe_{name}": acc for name, acc in after.items()})
    if keep_model:
        result.update(finetuner=ft, history=history, profile_used=asdict(profile))
    else:
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return result
