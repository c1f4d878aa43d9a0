"""One fine-tuning run from names alone (model, task, strategy, profile): what the CLI and notebooks call."""

from __future__ import annotations

import time
from dataclasses import asdict

import torch

from .config import Profile, get_device, get_profile, set_seed
from .data import label_names, load_task, majority_baseline, make_loader
from .freezing import PATTERNS, Finetuner
from .hft_paper import HalfParameterRedraw, apply_hft_paper
from .lora import LORA_LR_FACTOR, lora_finetuner
from .models import load_model
from .optim import build_optimizer
from .training import History, evaluate, fit
from .unfreezing import UnfreezeSchedule

GRADUAL = {"gradual_bottom_up": "bottom_up", "gradual_top_down": "top_down"}
# hft_paper: the HFT paper's half of every layer's matrices, redrawn each round; hft_paper_static: one draw; lora: peft
PARAMETER_LEVEL = ("hft_paper", "hft_paper_static", "lora")
STRATEGIES = (*PATTERNS, *GRADUAL, *PARAMETER_LEVEL)


def check_strategies(strategies: list[str]) -> list[str]:
    """Validate strategy names early (before any model is loaded)."""
    bad = [s for s in strategies if s not in STRATEGIES]
    if bad or not strategies:
        raise ValueError(f"Unknown strategy {', '.join(bad) or '(none given)'}; choose from {', '.join(STRATEGIES)}.")
    return strategies


def prepare_strategy(model, strategy: str, lr: float, seed: int = 0, steps_per_round: int | None = None,
                     weight_decay: float = 0.01, decay: float | None = None):
    """Finetuner, optimiser, step hook and learning rate for a non-gradual strategy.

    hft_paper redraws its frozen half every `steps_per_round` steps; lora wraps the model (use
    `ft.model` afterwards) and trains at LORA_LR_FACTOR x `lr`.
    """
    check_strategies([strategy])
    if strategy in GRADUAL:
        raise ValueError(f"{strategy} is scheduled by fit(unfreeze=...); use run_classification for it.")
    hook = None
    if strategy == "lora":
        ft, lr = lora_finetuner(model), lr * LORA_LR_FACTOR
    elif strategy in ("hft_paper", "hft_paper_static"):
        ft = Finetuner(model, "full", verbose=False)
        if strategy == "hft_paper":
            hook = HalfParameterRedraw(ft, seed=seed, every=steps_per_round)
            return ft, hook.build_optimizer(lr, weight_decay, decay), hook, lr
        apply_hft_paper(ft, seed)
    else:
        ft = Finetuner(model, strategy, verbose=False)
    return ft, build_optimizer(ft, lr, weight_decay, decay), hook, lr


def chain_hooks(*hooks):
    """One step hook that calls the given ones (None entries skipped) in order; None if there are none."""
    hooks = [h for h in hooks if h]
    if len(hooks) <= 1:
        return hooks[0] if hooks else None
    return lambda step, model: [h(step, model) for h in hooks] and None


def loaders(task, tokenizer, profile: Profile, seed: int = 0) -> dict:
    """Train (shuffled), validation and test loaders for a classification task."""
    n = len(label_names(task))
    return {split: make_loader(task[split], tokenizer, profile.batch_size, profile.max_length, shuffle=split == "train",
                               seed=seed, num_labels=n) for split in ("train", "validation", "test")}


def run_classification(strategy: str, model_name: str = "minilm-l6", task_name: str = "trec6",
                       profile: Profile | None = None, seed: int = 0, task=None, lr_decay: float | None = None,
                       stage_length: int | None = None, progress: bool = True, keep_model: bool = False,
                       probes=None, probes_before: dict[str, float] | None = None, fit_options: dict | None = None,
                       step_hook=None) -> dict:
    """Fine-tune `model_name` on `task_name` with one strategy; returns a flat dict of results.

    Gradual strategies unfreeze one layer per stage, with stages spread evenly over the run
    (or `stage_length` steps each). With `probes` (a `retention.ProbeSuite`), retention is measured
    too: probe accuracy after fine-tuning against `probes_before` (scored on the pretrained model
    if not given), reported as `retention_pct` and `probe_<task>` columns. `fit_options` go to `fit`
    (device, checkpoint_dir, checkpoint_every, resume_from, model_name). `step_hook(step, model)` runs
    after every optimiser step (after the strategy's own hook, e.g. hft_paper's redraw).
    """
    check_strategies([strategy])
    profile = profile or get_profile()
    task = task or load_task(task_name, profile.train_size, profile.eval_size, profile.eval_size, seed=seed)
    set_seed(seed)
    model, tokenizer = load_model(model_name, num_labels=len(label_names(task)))
    split = loaders(task, tokenizer, profile, seed)
    unfreeze, optimizer, hook, lr = None, None, None, profile.lr
    if strategy in GRADUAL:
        ft = Finetuner(model, "head_only", verbose=False)
        total = profile.epochs * len(split["train"])
        length = stage_length or max(1, total // (ft.n_layers + 1))
        unfreeze = UnfreezeSchedule(GRADUAL[strategy], stage_length=length, unit="step")
    elif strategy in PARAMETER_LEVEL:  # a round of hft_paper = one epoch
        ft, optimizer, hook, lr = prepare_strategy(model, strategy, profile.lr, seed, len(split["train"]), decay=lr_decay)
    else:
        ft = Finetuner(model, strategy, verbose=False)
    start = time.perf_counter()
    history: History = fit(ft, split["train"], split["validation"], epochs=profile.epochs, lr=lr,
                           lr_decay=lr_decay, unfreeze=unfreeze, seed=seed, progress=progress, desc=strategy, optimizer=optimizer,
                           step_hook=chain_hooks(hook, step_hook), **(fit_options or {}))
    train_time = time.perf_counter() - start
    test = evaluate(ft.model, split["test"])  # on the model's device (per-process GPU under accelerate launch)
    result = {
        "strategy": strategy, "model": model_name, "task": task_name, "profile": profile.name, "seed": seed,
        "test_accuracy": test["accuracy"], "majority_baseline": majority_baseline(task),
        "val_accuracy": history.final.get("eval_accuracy"), "trainable_params": ft.trainable_parameter_count(),
        "trainable_pct": 100 * ft.trainable_share(), "train_time_s": train_time,
        "epoch_time_s": train_time / len(history.epochs), "step_time_s": history.median_step_time(),
        "state_mb": history.state_mb,
        "train_examples": len(task["train"]), "device": str(get_device()),
    }
    if probes is not None:
        from .retention import mean_retention

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
