"""What one cell of a sweep measures: a protocol takes the cell's settings and returns flat metrics.

- `classification`: fine-tune an encoder on a task with one strategy; test accuracy, step time, and
  (with `probe_tasks`) probe retention, raw and chance-corrected; (with `measure_train`) the
  train-test gap that shows overfitting.
- `sequential`: forgetting measured on a task the model really learned (the sequential protocol):
  fine-tune everything on task A with A's head, then fine-tune on task B with the strategy, then put
  A's head back and score A again. forgetting = A's accuracy before minus after, in points.
- `layers`: notebook 01 over seeds: per hidden state, probe accuracy on every probe task before and after full
  fine-tuning (the probe examples resampled with the seed), linear CKA before vs after, and weight change per part.
- `lm_curve`: a decoder fine-tuned with the strategy; task accuracy and news-perplexity change after
  several step budgets: one learning-forgetting curve per strategy (Biderman et al. 2024).

`cache` is one dict per process: what several cells share (probe features before training, the
model tuned on task A for a seed, the decoder setup) is computed once.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

from ..callbacks import BestEpoch
from ..config import get_profile, set_seed
from ..data import label_names, load_task, make_loader
from ..models import load_model
from ..training import evaluate
from .classification import run_classification

FAILED_MARGIN = 0.05  # a run whose test accuracy is not this far above the majority class failed to learn


def cell_profile(cell: dict):
    """The profile named by the cell, with the cell's sizes and rate."""
    keys = ("train_size", "epochs", "batch_size", "max_length", "lr", "lm_steps")
    return replace(get_profile(cell["profile"]), **{k: cell[k] for k in keys if k in cell})


def _probes(cell: dict, cache: dict):
    from ..measure.retention import ProbeSuite, probe_chance

    key = ("probes", cell["model"], tuple(cell["probe_tasks"]), cell["probe_size"])
    if key not in cache:
        pretrained, tokenizer = load_model(cell["model"], num_labels=2)  # the head is not probed: its size does not matter
        suite = ProbeSuite(tokenizer, tasks=tuple(cell["probe_tasks"]), size=cell["probe_size"], test_size=cell["probe_size"])
        cache[key] = suite, suite.score(pretrained), probe_chance(suite)
    return cache[key]


def _failed(result: dict) -> bool:
    """Diverged, or not FAILED_MARGIN above the majority class (on the test split, or on validation when tuning)."""
    score = result["test_accuracy"] if math.isfinite(result["test_accuracy"]) else result["val_accuracy"]
    return not math.isfinite(result["final_loss"]) or score <= result["majority_baseline"] + FAILED_MARGIN


def classification(cell: dict, cache: dict, keep_model: bool = False) -> dict:
    """Fine-tune `cell["model"]` on `cell["task"]` with `cell["strategy"]`; test accuracy, cost, retention.

    `keep_model` adds the run's `finetuner` and `history` (for a notebook that looks inside the run)."""
    from ..measure.retention import chance_corrected_retention

    profile = cell_profile(cell)
    task = load_task(cell["task"], profile.train_size, cell["val_size"], cell["test_size"], seed=cell["seed"])
    suite = before = chance = None
    if cell.get("probe_tasks"):
        suite, before, chance = _probes(cell, cache)
    set_seed(cell["seed"])  # the new head's initial weights depend on the seed only, not on what ran before
    loaded = load_model(cell["model"], num_labels=len(label_names(task)), pooling=cell.get("pooling", "cls"))
    best = BestEpoch() if cell.get("keep_best") else None
    keep = keep_model or cell.get("measure_train", False) or best is not None
    result = run_classification(cell["strategy"], cell["model"], cell["task"], profile, seed=cell["seed"], task=task,
                                progress=keep_model, keep_model=keep, probes=suite, callbacks=[best] if best else (),
                                probes_before=before, embeddings=cell.get("embeddings"), start_from=loaded,
                                rounds=cell.get("rounds"), score_test=cell.get("score", "test") == "test")
    metrics = {k: result[k] for k in ("test_accuracy", "val_accuracy", "majority_baseline", "final_loss", "trainable_pct",
                                      "step_time_s", "train_time_s", "state_mb")}
    if cell.get("score") == "validation":  # choosing a rate: the test split is never read
        metrics.update(effective_lr=result["lr"], val_curve=result["val_curve"])
    if suite is not None:
        after = {t: result[f"probe_{t}"] for t in suite.tasks}
        metrics.update(retention_pct=result["retention_pct"], retention_cc=chance_corrected_retention(before, after, chance),
                       **{f"probe_{t}": a for t, a in after.items()}, **{f"probe_{t}_before": a for t, a in before.items()})
    if best is not None:  # v2: the test score at the epoch validation liked best (early stopping), and at the last
        state = result["finetuner"].model.state_dict()
        result["finetuner"].model.load_state_dict(best.state)
        test = make_loader(task["test"], loaded.tokenizer, profile.batch_size, profile.max_length,
                           num_labels=len(label_names(task)))
        metrics.update(test_accuracy_best=evaluate(result["finetuner"].model, test)["accuracy"], best_epoch=best.epoch,
                       val_curve=[e.get("eval_accuracy") for e in result["history"].epochs])
        result["finetuner"].model.load_state_dict(state)
    if cell.get("measure_train"):
        model = result["finetuner"].model
        train = make_loader(task["train"], loaded.tokenizer, profile.batch_size, profile.max_length,
                            num_labels=len(label_names(task)))
        metrics["train_accuracy"] = evaluate(model, train)["accuracy"]
        metrics["train_test_gap"] = metrics["train_accuracy"] - metrics["test_accuracy"]
    metrics["failed"] = _failed(result)
    if keep_model:
        metrics.update(finetuner=result["finetuner"], history=result["history"])
    return metrics


def _tuned_on_a(cell: dict, cache: dict) -> dict:
    """The model fine-tuned (everything) on task A for this seed, once per process, with A's data and test accuracy.

    Task A's own settings (`lr_a`, `test_size_a`; v2) do not depend on the strategy, so every strategy of a seed starts
    from the same model; without them (v1) A took the cell's rate and test size."""
    lr_a = cell.get("lr_a", cell_profile(cell).lr)
    test_size_a = cell.get("test_size_a", cell["test_size"])
    key = ("task_a", cell["model"], cell["task_a"], cell["seed"], cell["train_size_a"], cell["epochs_a"], lr_a, test_size_a)
    if key not in cache:
        cache.clear()  # one seed's tuned model at a time
        task = load_task(cell["task_a"], cell["train_size_a"], cell["val_size"], test_size_a, seed=cell["seed"])
        profile = replace(cell_profile(cell), train_size=cell["train_size_a"], epochs=cell["epochs_a"], lr=lr_a)
        run = run_classification("full", cell["model"], cell["task_a"], profile, seed=cell["seed"], task=task,
                                 progress=False, keep_model=True)
        cache[key] = {"model": run["finetuner"].model, "accuracy": run["test_accuracy"], "task": task,
                      "majority": run["majority_baseline"]}
    return cache[key]


def sequential(cell: dict, cache: dict) -> dict:
    """Forgetting of task A after fine-tuning on task B with the strategy (A's head put back to score A)."""
    a = _tuned_on_a(cell, cache)
    profile = cell_profile(cell)
    task_b = load_task(cell["task"], profile.train_size, cell["val_size"], cell["test_size"], seed=cell["seed"])
    set_seed(cell["seed"])  # B's head starts from the seed only
    model_b, tokenizer = load_model(cell["model"], num_labels=len(label_names(task_b)))
    own = {n: p.shape for n, p in model_b.state_dict().items()}
    body = {n: v for n, v in a["model"].state_dict().items() if n in own and own[n] == v.shape}
    heads = [n for n in own if n not in body]
    if not heads:
        raise ValueError("The sequential protocol needs tasks A and B with different numbers of labels (to tell the heads apart).")
    model_b.load_state_dict(body, strict=False)
    model_b.to(next(a["model"].parameters()).device)
    result = run_classification(cell["strategy"], cell["model"], cell["task"], profile, seed=cell["seed"], task=task_b,
                                progress=False, keep_model=True, embeddings=cell.get("embeddings"),
                                start_from=(model_b, tokenizer))
    # A's head, B's fine-tuned body. v1 (`restore` absent) put back A's classifier only, so A's classifier read B's
    # retrained pooler whatever was frozen; v2 (`restore="head"`) puts back A's whole head (pooler and classifier).
    kept = set(result["finetuner"].parts.head) if cell.get("restore") == "head" else set()
    if cell.get("restore") == "head" and not kept & set(body):
        raise ValueError(f"{cell['strategy']} renames the model's parameters (a wrapper such as peft's); the sequential "
                         "protocol scores task A on the plain model: leave it out of this experiment.")
    scorer = copy.deepcopy(a["model"])
    scorer.load_state_dict({n: v for n, v in result["finetuner"].model.state_dict().items() if n in body and n not in kept},
                           strict=False)
    test_a = make_loader(a["task"]["test"], tokenizer, profile.batch_size, profile.max_length,
                         num_labels=len(label_names(a["task"])))
    after = evaluate(scorer, test_a)["accuracy"]
    return {"test_accuracy": result["test_accuracy"], "majority_baseline": result["majority_baseline"],
            "task_a_before": a["accuracy"], "task_a_after": after, "forgetting": a["accuracy"] - after,
            "majority_baseline_a": a["majority"],
            "final_loss": result["final_loss"], "trainable_pct": result["trainable_pct"],
            "step_time_s": result["step_time_s"], "train_time_s": result["train_time_s"], "failed": _failed(result)}


def lm_setup(cell: dict, cache: dict):
    """The decoder, its data and its "before" numbers for this cell's seed (made once per process and seed)."""
    from .decoder import prepare_lm

    sizes = {k: cell[k] for k in ("test_size", "news_size") if cell.get(k)}  # v2: more questions and passages
    key = ("lm", cell["model"], cell["task"], cell["seed"], cell["lm_steps"], tuple(sorted(sizes.items())))
    if key not in cache:
        cache.clear()
        cache[key] = prepare_lm(cell["model"], cell["task"], cell_profile(cell), seed=cell["seed"], steps=cell["lm_steps"],
                                **sizes)
    return cache[key]


def lm_curve(cell: dict, cache: dict, keep_model: bool = False) -> dict:
    """A decoder fine-tuned with the strategy: task accuracy and news-perplexity change after each budget."""
    from .decoder import run_lm

    setup = lm_setup(cell, cache)
    result = run_lm(cell["strategy"], setup=setup, seed=cell["seed"], steps=cell["lm_steps"], budgets=list(cell["budgets"]),
                    progress=keep_model, embeddings=cell.get("embeddings"), keep_model=keep_model)
    metrics = {k: result[k] for k in ("task_accuracy", "task_accuracy_before", "task_loss", "news_ppl", "news_ppl_before",
                                      "forgetting_pct", "majority_baseline", "trainable_pct", "embeddings_trainable",
                                      "step_time_s", "train_time_s", "state_mb")}
    for row in result["budgets"]:
        metrics[f"task_accuracy@{row['steps']}"] = row["task_accuracy"]
        metrics[f"forgetting_pct@{row['steps']}"] = row["forgetting_pct"]
    metrics["failed"] = not math.isfinite(result["task_loss"])
    if keep_model:
        metrics.update(finetuner=result["finetuner"], history=result["history"], redraw=result["redraw"], setup=setup)
    return metrics


def layers(cell: dict, cache: dict, keep_model: bool = False) -> dict:
    """What fine-tuning changes, layer by layer, for one seed (notebook 01's measurements, stored so that the notebook
    can put an interval on each): `probes_before` / `probes_after` (task -> accuracy per hidden state, 0 = the
    embeddings), `cka` (per hidden state, the mean over the probe tasks of linear CKA between the pretrained and
    fine-tuned features of the probe test examples) and `weight_change` (part -> relative weight change), as JSON."""
    import json

    from ..measure.retention import ProbeSuite
    from ..measure.similarity import linear_cka, relative_weight_change, snapshot

    set_seed(cell["seed"])
    pretrained, tokenizer = load_model(cell["model"], num_labels=6)
    suite = ProbeSuite(tokenizer, tasks=tuple(cell["probe_tasks"]), size=cell["probe_size"], test_size=cell["probe_size"],
                       seed=cell["seed"])
    features_before = suite.features(pretrained)
    before = suite.score_layers(features=features_before)
    run = run_classification(cell["strategy"], cell["model"], cell["task"], cell_profile(cell), seed=cell["seed"],
                             progress=False, keep_model=True)
    features_after = suite.features(run["finetuner"].model)
    after = suite.score_layers(features=features_after)
    per_task = {t: [linear_cka(a, b) for a, b in zip(features_before[t]["test"], features_after[t]["test"])]
                for t in suite.tasks}
    cka = [sum(per_task[t][k] for t in suite.tasks) / len(suite.tasks) for k in range(len(before))]
    change = relative_weight_change(run["finetuner"], snapshot(pretrained))
    return {"test_accuracy": run["test_accuracy"], "majority_baseline": run["majority_baseline"],
            "final_loss": run["final_loss"], "failed": _failed(run),
            **({"finetuner": run["finetuner"]} if keep_model else {}),
            "probes_before": json.dumps({t: [float(v) for v in before[t]] for t in suite.tasks}),
            "probes_after": json.dumps({t: [float(v) for v in after[t]] for t in suite.tasks}),
            "cka": json.dumps([float(v) for v in cka]), "weight_change": json.dumps({k: float(v) for k, v in change.items()})}


PROTOCOLS = {"classification": classification, "sequential": sequential, "lm_curve": lm_curve, "layers": layers}
