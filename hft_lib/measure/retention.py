"""Retention (forgetting), measured: linear probes on frozen features, before vs after fine-tuning.

A model that keeps what it knew still encodes other tasks well. `ProbeSuite` fits a logistic
regression on mean-pooled hidden states of the model (weights untouched) for held-out tasks the
model is *not* fine-tuned on, and reports test accuracy. Score the model before and after
fine-tuning; the drop is the forgetting. `score_layers` probes every layer (notebook 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..config import smoke
from ..data import load_task, make_loader

DEFAULT_PROBE_TASKS = ("sms_spam", "movie_sentiment")


@torch.no_grad()
def layer_features(model: torch.nn.Module, loader, device: torch.device | None = None) -> list[np.ndarray]:
    """Mean-pooled hidden states of every layer (index 0 = embeddings output), one array per layer."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    pooled: list[list[np.ndarray]] = []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        states = model(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"].unsqueeze(-1).float()
        for i, h in enumerate(states):
            if len(pooled) <= i:
                pooled.append([])
            pooled[i].append(((h.float() * mask).sum(1) / mask.sum(1)).cpu().numpy())
    model.train(was_training)
    return [np.concatenate(p) for p in pooled]


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int = 0) -> float:
    """Test accuracy of a standardised logistic-regression probe."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5, random_state=seed))
    probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


class ProbeSuite:
    """Linear-probe tasks held out from fine-tuning; `score(model)` gives accuracy per task.

    Args:
        tokenizer: the model's tokenizer.
        tasks: task names (classification) that the model is not fine-tuned on.
        size: probe training examples per task; `test_size` probe test examples.
    """

    def __init__(self, tokenizer, tasks: tuple[str, ...] = DEFAULT_PROBE_TASKS, size: int = 400, test_size: int = 400,
                 max_length: int = 64, batch_size: int = 64, seed: int = 0):
        self.tasks, self.seed = tuple(tasks), seed
        self.data = {}
        for name in self.tasks:
            task = load_task(name, train_size=size, test_size=test_size, seed=seed)
            self.data[name] = {
                split: (make_loader(task[split], tokenizer, batch_size, max_length), np.array(task[split]["label"]))
                for split in ("train", "test")
            }

    def features(self, model: torch.nn.Module) -> dict[str, dict[str, list[np.ndarray]]]:
        """Every layer's features of each task's train and test examples: task -> split -> one array per layer.

        Compute them once and reuse them (`score_layers(features=...)`, CKA between two models)."""
        return {name: {split: layer_features(model, splits[split][0]) for split in ("train", "test")}
                for name, splits in self.data.items()}

    def score_layers(self, model: torch.nn.Module | None = None,
                     features: dict[str, dict[str, list[np.ndarray]]] | None = None) -> pd.DataFrame:
        """Probe accuracy of every layer's features: rows = layer (0 = embeddings), columns = task.

        Pass the model, or `features` already computed from it by `features(model)`."""
        if (model is None) == (features is None):
            raise ValueError("Pass score_layers a model or its features (ProbeSuite.features(model)), one of the two.")
        features = features if features is not None else self.features(model)
        table = {}
        for name, splits in self.data.items():
            train, test = features[name]["train"], features[name]["test"]
            table[name] = [probe_accuracy(a, splits["train"][1], b, splits["test"][1], self.seed) for a, b in zip(train, test)]
        frame = pd.DataFrame(table)
        frame.index.name = "layer"
        return frame

    def score(self, model: torch.nn.Module) -> dict[str, float]:
        """Probe accuracy of the last layer's features, per task."""
        features = self.features(model)
        return {name: probe_accuracy(features[name]["train"][-1], splits["train"][1], features[name]["test"][-1],
                                     splits["test"][1], self.seed) for name, splits in self.data.items()}


def retention_report(before: dict[str, float], after: dict[str, float]) -> pd.DataFrame:
    """Before / after probe accuracy per task, the change, and the share of accuracy kept."""
    frame = pd.DataFrame({"before": before, "after": after})
    frame["change"] = frame["after"] - frame["before"]
    frame["retained %"] = 100 * frame["after"] / frame["before"]
    return frame


def mean_retention(before: dict[str, float], after: dict[str, float]) -> float:
    """Average share of probe accuracy kept across tasks (100 = no forgetting)."""
    return float(retention_report(before, after)["retained %"].mean())


def probe_chance(suite: ProbeSuite) -> dict[str, float]:
    """Majority-class accuracy of each probe's test split: what a probe that learned nothing scores."""
    return {name: float(np.bincount(splits["test"][1]).max() / len(splits["test"][1])) for name, splits in suite.data.items()}


def chance_corrected_retention(before: dict[str, float], after: dict[str, float], chance: dict[str, float]) -> float:
    """Average share of the above-chance probe accuracy kept, (after - chance) / (before - chance), in %.

    Unlike `mean_retention`, a probe that falls to chance reads 0 %, not the chance rate, so tasks near
    ceiling or with one dominant class do not hide forgetting.
    """
    kept = [(after[t] - chance[t]) / (before[t] - chance[t]) for t in before if before[t] - chance[t] > 0.02]
    if not kept:
        if smoke():  # HFT_SMOKE: probes of a few examples need not beat chance; nothing to measure, not an error
            return float("nan")
        raise ValueError("Every probe is within 2 points of chance before fine-tuning; pick probe tasks the model can do.")
    return float(100 * np.mean(kept))
