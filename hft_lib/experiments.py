"""One fine-tuning run from names alone (model, task, strategy, profile): what the CLI and notebooks call."""

from __future__ import annotations

import time
from dataclasses import asdict

import torch

from .config import Profile, get_device, get_profile, set_seed
from .data import label_names, load_task, majority_baseline, make_loader
from .freezing import PATTERNS, Finetuner
from .models import load_model
from .training import History, evaluate, fit
from .unfreezing import UnfreezeSchedule

GRADUAL = {"gradual_bottom_up": "bottom_up", "gradual_top_down": "top_down"}
STRATEGIES = (*PATTERNS, *GRADUAL)


def check_strategies(strategies: list[str]) -> list[str]:
    """Validate strategy names early (before any model is loaded)."""
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not strategies:
        raise ValueError(f"Unknown strategy {', '.join(bad) or '(none given)'}; choose from {', '.join(STRATEGIES)}.")
    return strategies


def loaders(task, tokenizer, profile: Profile, seed: int = 0) -> dict:
    """Train (shuffled), validation and test loaders for a classification task."""
    n = len(label_names(task))
    return {split: make_loader(task[split], tokenizer, profile.batch_size, profile.max_length, shuffle=split == "train",
                               seed=seed, num_labels=n) for split in ("train", "validation", "test")}


def run_classification(strategy: str, model_name: str = "minilm-l6", task_name: str = "trec6",
                       profile: Profile | None = None, seed: int = 0, task=None, lr_decay: float | None = None,
                       stage_length: int | None = None, progress: bool = True, keep_model: bool = False,
                       probes=None, probes_before: dict[str, float] | None = None) -> dict:
    """Fine-tune `model_name` on `task_name` with one strategy; returns a flat dict of results.

    Gradual strategies unfreeze one layer per stage, with stages spread evenly over the run
    (or `stage_length` steps each). With `probes` (a `retention.ProbeSuite`), retention is measured
    too: probe accuracy after fine-tuning against `probes_before` (scored on the pretrained model
    if not given), reported as `retention_pct` and `probe_<task>` columns.
    """
    check_strategies([strategy])
    profile = profile or get_profile()
    task = task or load_task(task_name, profile.train_size, profile.eval_size, profile.eval_size, seed=seed)
    set_seed(seed)
    model, tokenizer = load_model(model_name, num_labels=len(label_names(task)))
    split = loaders(task, tokenizer, profile, seed)
    unfreeze = None
    if strategy in GRADUAL:
        ft = Finetuner(model, "head_only", verbose=False)
        total = profile.epochs * len(split["train"])
        length = stage_length or max(1, total // (ft.n_layers + 1))
        unfreeze = UnfreezeSchedule(GRADUAL[strategy], stage_length=length, unit="step")
    else:
        ft = Finetuner(model, strategy, verbose=False)
    start = time.perf_counter()
    history: History = fit(ft, split["train"], split["validation"], epochs=profile.epochs, lr=profile.lr,
                           lr_decay=lr_decay, unfreeze=unfreeze, seed=seed, progress=progress)
    train_time = time.perf_counter() - start
    test = evaluate(ft.model, split["test"], get_device())
    result = {
        "strategy": strategy, "model": model_name, "task": task_name, "profile": profile.name, "seed": seed,
        "test_accuracy": test["accuracy"], "majority_baseline": majority_baseline(task),
        "val_accuracy": history.final.get("eval_accuracy"), "trainable_params": ft.trainable_parameter_count(),
        "trainable_pct": 100 * ft.trainable_share(), "train_time_s": train_time,
        "epoch_time_s": train_time / len(history.epochs), "step_time_s": history.median_step_time(),
        "train_examples": len(task["train"]), "device": str(get_device()),
    }
    if probes is not None:
        from .retention import mean_retention

        after = probes.score(ft.model)
        if probes_before is None:
            probes_before = probes.score(load_model(model_name, num_labels=len(label_names(task))).model.to(get_device()))
        result["retention_pct"] = mean_retention(probes_before, after)
        result.update({f"probe_{name}": acc for name, acc in after.items()})
    if keep_model:
        result.update(finetuner=ft, history=history, profile_used=asdict(profile))
    else:
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return result
