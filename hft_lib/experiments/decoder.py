"""Freezing strategies on a decoder LLM: task quality against forgetting, measured.

The task is a classification task written as a prompt (see `prompts`). Forgetting is the change in
perplexity on held-out general English (`news_text`): perplexity is exp(mean loss per token), the
number of equally likely next tokens the model is as unsure as; lower is better.

`prepare_lm` loads the model, data and the "before" numbers once; `run_lm` copies the pristine
model and fine-tunes the copy with one strategy.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..callbacks import BudgetRecorder
from ..config import Profile, get_device, get_profile, set_seed, smoke_limit
from ..data import label_names, load_task, make_loader
from ..models import load_model
from ..strategies import DECODER_STRATEGIES, check_strategies, prepare
from ..training import FitConfig, evaluate, fit
from .prompts import PROMPTS, label_token_ids, make_prompt_loader, task_metrics

ROUNDS = 3  # hft_paper redraws its frozen half this many times over a decoder run (a round = steps / ROUNDS)
# Sizes per profile: (batch size, held-out task examples, news passages); sequence length = profile.max_length.
LM_SIZES = {"quick": (8, 120, 24), "full": (16, 1000, 300)}


@dataclass
class LMSetup:
    """A pristine model plus the loaders and "before" numbers shared by every strategy's run."""

    model_name: str
    task_name: str
    profile: Profile
    model: nn.Module
    tokenizer: object
    train: DataLoader
    test: DataLoader
    news: DataLoader
    label_ids: list[int]
    majority_baseline: float
    seed: int = 0  # the training order's seed: every run starts the shuffle from it (see `run_lm`)
    before: dict = field(default_factory=dict)

    def measure(self, model: nn.Module) -> dict[str, float]:
        """Task accuracy and loss on held-out task data, and perplexity on held-out news text."""
        task = task_metrics(model, self.test, self.label_ids)
        return {"task_accuracy": task["accuracy"], "task_loss": task["loss"],
                "news_perplexity": evaluate(model, self.news)["perplexity"]}


def prepare_lm(model_name: str = "smollm2-135m", task_name: str = "trec6", profile: Profile | None = None, seed: int = 0,
               steps: int | None = None, batch_size: int | None = None, test_size: int | None = None,
               news_size: int | None = None, model: nn.Module | None = None, tokenizer=None, task=None,
               news=None, device: str | None = None) -> LMSetup:
    """Load the decoder, the task and news data, and measure the model before training.

    `model` + `tokenizer`, `task` (a DatasetDict with train/test) and `news` (a Dataset of text) replace the defaults;
    `device` (cpu, cuda, mps) defaults to cuda, then mps, then cpu.
    """
    device = get_device(device)  # a device this machine lacks is refused before anything loads
    profile = profile or get_profile()
    default_batch, default_test, default_news = LM_SIZES.get(profile.name, LM_SIZES["quick"])
    batch_size, test_size = smoke_limit("batch_size", batch_size or default_batch), test_size or default_test  # HFT_SMOKE
    steps = steps or profile.lm_steps
    if model is None:
        model, tokenizer = load_model(model_name, kind="causal_lm")
    elif tokenizer is None:
        raise ValueError("Pass the tokenizer that goes with the model (prepare_lm(model=..., tokenizer=...)).")
    task = task or load_task(task_name, train_size=steps * batch_size, validation_size=1, test_size=test_size, seed=seed)
    news = news or load_task("news_text", test_size=news_size or default_news, seed=seed)["test"]
    names = label_names(task)
    words = [PROMPTS[task_name][1][n] for n in names] if task_name in PROMPTS else []
    test_labels = torch.tensor(task["test"]["label"])
    majority = float((test_labels == torch.tensor(task["train"]["label"]).mode().values).float().mean())
    setup = LMSetup(model_name, task_name, profile, model.to(device), tokenizer,
                    make_prompt_loader(task["train"], tokenizer, task_name, batch_size, profile.max_length, True, seed),
                    make_prompt_loader(task["test"], tokenizer, task_name, batch_size, profile.max_length),
                    make_loader(news, tokenizer, batch_size, profile.max_length, kind="causal_lm"),
                    label_token_ids(tokenizer, words), majority, seed)
    setup.before = setup.measure(setup.model)
    return setup


def run_lm(strategy: str, profile: Profile | None = None, seed: int = 0, setup: LMSetup | None = None,
           steps: int | None = None, lr: float | None = None, budgets: list[int] | None = None, progress: bool = True,
           keep_model: bool = False, embeddings: str | None = None, **setup_kwargs) -> dict:
    """Fine-tune a copy of the decoder with one strategy; returns a flat dict of results.

    Args:
        setup: from `prepare_lm` (built here from `setup_kwargs` when missing).
        steps: optimiser steps (default profile.lm_steps); `budgets`: also measure after these step counts.
        lr: peak learning rate (default profile.lr; LoRA trains at LORA_LR_FACTOR times it).
        embeddings: a layer pattern's embeddings choice ("frozen" / "trainable"); with SmolLM2's tied LM head
            this also decides whether the head trains (see `prepare`).
    """
    check_strategies([strategy], decoder=True)
    setup = setup or prepare_lm(profile=profile, seed=seed, steps=steps, **setup_kwargs)
    profile = setup.profile
    steps = steps or max(budgets or [profile.lm_steps])
    set_seed(seed)
    setup.train.generator.manual_seed(setup.seed)  # every run sees the same batches, whatever ran on this setup before
    model = copy.deepcopy(setup.model)
    every = max(1, math.ceil(steps / ROUNDS))  # the paper's rounds (and LISA's, AutoFreeze's windows) per run
    ft, optimizer, own, lr = prepare(strategy, model, lr or profile.lr, seed=seed, total_steps=steps,
                                     redraw_every=every, window=every, embeddings=embeddings)
    recorder = BudgetRecorder(budgets or [], setup.measure)
    epochs = math.ceil(steps / len(setup.train))
    device = next(setup.model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    history = fit(ft, setup.train, None, epochs=epochs, lr=lr, max_steps=steps, optimizer=optimizer, callbacks=[*own, recorder],
                  progress=progress, config=FitConfig(seed=seed, device=str(device), desc=strategy))
    last = recorder.rows[-1] if recorder.rows and recorder.rows[-1]["steps"] == len(history.steps) else None
    after = {k: v for k, v in last.items() if k != "steps"} if last else setup.measure(ft.model)  # measured already?
    before = setup.before
    result = {
        "strategy": strategy, "model": setup.model_name, "task": setup.task_name, "profile": profile.name, "seed": seed,
        "steps": len(history.steps), "lr": lr, "embeddings_trainable": ft.embeddings_trainable,
        "task_accuracy_before": before["task_accuracy"], "task_accuracy": after["task_accuracy"],
        "task_loss_before": before["task_loss"], "task_loss": after["task_loss"],
        "news_ppl_before": before["news_perplexity"], "news_ppl": after["news_perplexity"],
        "forgetting_pct": 100 * (after["news_perplexity"] / before["news_perplexity"] - 1),
        "majority_baseline": setup.majority_baseline,
        "trainable_params": ft.trainable_parameter_count(), "trainable_pct": 100 * ft.trainable_share(),
        "step_time_s": history.median_step_time(), "train_time_s": sum(s["time_s"] for s in history.steps),
        "state_mb": history.state_mb,
        "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None,
        "device": str(device),
    }
    result["budgets"] = [{**row, "forgetting_pct": 100 * (row["news_perplexity"] / before["news_perplexity"] - 1)}
                         for row in recorder.rows]
    if keep_model:
        result.update(finetuner=ft, history=history, redraw=own[0] if own else None)
    return result


def compare_lm(strategies: list[str] | tuple[str, ...] = DECODER_STRATEGIES, setup: LMSetup | None = None, **kwargs):
    """Run several strategies on the same setup; a DataFrame with one row per strategy."""
    import pandas as pd

    check_strategies(strategies, decoder=True)
    setup = setup or prepare_lm(**{k: kwargs[k] for k in ("profile", "seed", "steps") if k in kwargs})
    rows = [run_lm(s, setup=setup, **kwargs) for s in strategies]
    return pd.DataFrame([{k: v for k, v in r.items() if k != "budgets"} for r in rows])


def matched_forgetting(frame: pd.DataFrame, reference: str = "full", accuracy: float | None = None) -> pd.DataFrame:
    """Forgetting compared at the same task accuracy, not the same step: each run's learning-forgetting curve (before
    training, then every budget `task_accuracy@b` / `forgetting_pct@b`) is interpolated at `accuracy` (default: the
    highest accuracy every run reaches), and each strategy is paired with `reference` over the seeds. A strategy that
    learns slower is then charged for the steps it needs, and one that learns faster is not charged for the extra ones.
    Returns per variant: the forgetting (% perplexity) at that accuracy, its paired difference from `reference` with
    the 95 % interval, and `accuracy` itself."""
    import numpy as np

    from ..measure import stats

    budgets = sorted(int(c.split("@")[1]) for c in frame.columns if c.startswith("task_accuracy@"))

    def curve(run):
        acc = [run["task_accuracy_before"], *(run[f"task_accuracy@{b}"] for b in budgets)]
        return np.maximum.accumulate(acc), [0.0, *(run[f"forgetting_pct@{b}"] for b in budgets)]

    curves = {(run["variant"], run["seed"]): curve(run) for _, run in frame.iterrows()}
    target = accuracy if accuracy is not None else min(float(acc[-1]) for acc, _ in curves.values())
    rows = []
    for (variant, seed), (acc, forgetting) in curves.items():
        i = int(np.searchsorted(acc, target))  # the first point at or above the target (best-so-far accuracy)
        if i == 0:
            value = forgetting[0]
        elif i >= len(acc):
            value = float("nan")  # never reached it
        else:
            span = acc[i] - acc[i - 1]
            share = (target - acc[i - 1]) / span if span else 1.0
            value = forgetting[i - 1] + share * (forgetting[i] - forgetting[i - 1])
        rows.append({"variant": variant, "seed": seed, "forgetting_at_accuracy": value})
    table = stats.paired(pd.DataFrame(rows), "forgetting_at_accuracy", reference, by="variant")
    return table[["n", "mean", "diff", "ci_low", "ci_high"]].assign(accuracy=target)
