"""Freezing strategies on a decoder LLM: task quality against forgetting, measured.

The task is a classification task written as a prompt (TREC-6: "Question: ...\\nAnswer type:"),
answered by one label word (" location", " person", ...). Training uses the loss of that answer
token only. Task quality on held-out examples is (a) accuracy of choosing the right label word by
comparing the log-likelihoods of the label words at the answer position (each label word is one
token, so this is the full continuation likelihood) and (b) the held-out task loss (nats per
answer). Forgetting is the change in perplexity on held-out general English (`news_text`).

`prepare_lm` loads the model, data and the "before" numbers once; `run_lm` copies the pristine
model and fine-tunes the copy with one strategy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader

from .callbacks import BudgetRecorder
from .config import Profile, get_device, get_profile, set_seed
from .data import label_names, load_task, make_loader
from .models import load_model
from .strategies import DECODER_STRATEGIES, check_strategies, prepare
from .training import FitConfig, evaluate, fit

ROUNDS = 3  # hft_paper redraws its frozen half this many times over a decoder run (a round = steps / ROUNDS)
# (prompt with {text}, label word per class name); each label word must be one token after a space
PROMPTS = {
    "trec6": ("Question: {text}\nAnswer type:", {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity",
                                                 "HUM": "person", "LOC": "location", "NUM": "number"}),
    "sms_spam": ("Message: {text}\nSpam or ham:", {"ham": "ham", "spam": "spam"}),
    "movie_sentiment": ("Review: {text}\nSentiment:", {"negative": "negative", "positive": "positive"}),
    "rotten_tomatoes": ("Review: {text}\nSentiment:", {"rotten": "negative", "fresh": "positive"}),
}
# Sizes per profile: (batch size, held-out task examples, news passages); sequence length = profile.max_length.
LM_SIZES = {"quick": (8, 120, 24), "full": (16, 1000, 300)}


def label_token_ids(tokenizer, words: list[str]) -> list[int]:
    """The single token of " word" for each label word, or a clear error."""
    ids = []
    for word in words:
        tokens = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if len(tokens) != 1:
            raise ValueError(f"Label word {word!r} is {len(tokens)} tokens for this tokenizer; pick label words that are one token each.")
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise ValueError("Two label words share a token; pick distinct label words.")
    return ids


def make_prompt_loader(data, tokenizer, task_name: str, batch_size: int, max_length: int, shuffle: bool = False,
                       seed: int = 0) -> DataLoader:
    """Batches of prompt + answer token; `labels` is -100 everywhere except at the answer."""
    if task_name not in PROMPTS:
        raise ValueError(f"No prompt for task {task_name!r}; use one of {', '.join(PROMPTS)}.")
    template, words = PROMPTS[task_name]
    answers = label_token_ids(tokenizer, [words[name] for name in data.features["label"].names])
    before, after = template.split("{text}")
    pre = tokenizer(before, add_special_tokens=False)["input_ids"]
    post = tokenizer(after, add_special_tokens=False)["input_ids"]
    budget = max_length - len(pre) - len(post) - 1
    if budget < 4:
        raise ValueError(f"max_length={max_length} leaves no room for the text after the prompt; use at least {len(pre) + len(post) + 5}.")
    texts = tokenizer(list(data["text"]), add_special_tokens=False)["input_ids"]
    rows = [(pre + ids[:budget] + post, answers[label]) for ids, label in zip(texts, data["label"])]

    def collate(batch):
        width = max(len(ids) for ids, _ in batch) + 1
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, answer) in enumerate(batch):
            n = len(ids)
            input_ids[i, :n + 1] = torch.tensor([*ids, answer])
            labels[i, n] = answer
            mask[i, :n + 1] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}

    return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def task_metrics(model: nn.Module, loader: DataLoader, label_ids: list[int]) -> dict[str, float]:
    """Label-word accuracy (argmax of the label words' log-likelihoods) and the answer's loss (nats)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    choices = torch.tensor(label_ids, device=device)
    correct, loss, count = 0, 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        rows = torch.arange(len(logits), device=device)
        where = (batch["labels"] != -100).int().argmax(1)  # answer position; predicted from the token before
        answer = batch["labels"][rows, where]
        logp = torch.log_softmax(logits[rows, where - 1].float(), dim=-1)
        loss += -logp[rows, answer].sum().item()
        correct += (choices[logp[:, choices].argmax(1)] == answer).sum().item()
        count += len(answer)
    model.train(was_training)
    return {"accuracy": correct / count, "loss": loss / count}


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
    batch_size, test_size = batch_size or default_batch, test_size or default_test
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
                    label_token_ids(tokenizer, words), majority)
    setup.before = setup.measure(setup.model)
    return setup


def run_lm(strategy: str, profile: Profile | None = None, seed: int = 0, setup: LMSetup | None = None,
           steps: int | None = None, lr: float | None = None, budgets: list[int] | None = None, progress: bool = True,
           keep_model: bool = False, **setup_kwargs) -> dict:
    """Fine-tune a copy of the decoder with one strategy; returns a flat dict of results.

    Args:
        setup: from `prepare_lm` (built here from `setup_kwargs` when missing).
        steps: optimiser steps (default profile.lm_steps); `budgets`: also measure after these step counts.
        lr: peak learning rate (default profile.lr; LoRA trains at LORA_LR_FACTOR times it).
    """
    check_strategies([strategy], decoder=True)
    setup = setup or prepare_lm(profile=profile, seed=seed, steps=steps, **setup_kwargs)
    profile = setup.profile
    steps = steps or max(budgets or [profile.lm_steps])
    set_seed(seed)
    model = copy.deepcopy(setup.model)
    ft, optimizer, own, lr = prepare(strategy, model, lr or profile.lr, seed=seed, total_steps=steps,
                                     steps_per_round=max(1, math.ceil(steps / ROUNDS)))
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
        "steps": len(history.steps), "lr": lr,
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


def plot_tradeoff(frame, quality: str, retention: str, cost: str, ax=None, title: str | None = None,
                  quality_label: str | None = None, retention_label: str | None = None, cost_label: str | None = None):
    """Scatter of task quality (x) against retention (y), one labelled point per strategy, size and colour = cost."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4.5))[1]
    costs = frame[cost].astype(float)
    sizes = 60 + 440 * (costs - costs.min()) / max(costs.max() - costs.min(), 1e-12)
    points = ax.scatter(frame[quality], frame[retention], s=sizes, c=costs, cmap="viridis", alpha=0.8, edgecolors="k")
    for _, row in frame.iterrows():
        ax.annotate(row["strategy"], (row[quality], row[retention]), textcoords="offset points", xytext=(6, 6), fontsize=9)
    ax.figure.colorbar(points, ax=ax, label=cost_label or cost)
    ax.set_xlabel(quality_label or quality)
    ax.set_ylabel(retention_label or retention)
    if title:
        ax.set_title(title)
    return ax


def save_lm_plot(frame, path) -> None:
    """The console command's figure for a decoder comparison: accuracy vs forgetting, and time per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import save_run_figure

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    plot_tradeoff(frame, "task_accuracy", "forgetting_pct", "step_time_s", ax=ax1, quality_label="held-out task accuracy",
                  retention_label="news perplexity change (%, lower = less forgetting)", cost_label="seconds per step")
    ax1.axvline(frame["task_accuracy_before"].iloc[0], color="grey", ls="--", lw=1)
    ax2.bar(frame["strategy"], frame["step_time_s"], color="tab:orange")
    ax2.set_ylabel("seconds per optimiser step")
    ax2.tick_params(axis="x", rotation=30)
    best = frame.loc[frame["task_accuracy"].idxmax(), "strategy"]
    least = frame.loc[frame["forgetting_pct"].idxmin(), "strategy"]
    save_run_figure(fig, frame, f"most accurate {best}, least forgetting {least}", path)
