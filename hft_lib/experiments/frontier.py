"""Choosing a strategy: every strategy on the encoder and the decoder, from the stored sweeps.

One row per (model, strategy, budget), averaged over seeds, with the same three kinds of measure on both models:
- quality: held-out task accuracy (encoder: TREC-6 classifier; decoder: label-word choice on TREC-6 prompts);
- retention, higher is better and 100 means nothing lost: encoder: the share of the held-out probes'
  above-chance accuracy kept (`retention_cc`); decoder: 100 x news perplexity before / after;
- cost: time per optimiser step (also relative to full fine-tuning of the same model) and trainable share.

This module computes; `viz.frontier` draws the chart and the explorer widget from its frame.
"""

from __future__ import annotations

import pandas as pd

ENCODER = "minilm-l6"  # the model names the frame's rows carry
DECODER = "smollm2-135m"
# Cost measures a chart can size and colour its points by: column -> axis label.
COSTS = {"step_time_vs_full": "time per step / full fine-tuning",
         "trainable_pct": "trainable parameters (%)",
         "state_mb": "training state: weights + grads + AdamW (MiB)"}
RUN_COSTS = ("step_time_s", "trainable_pct", "state_mb")  # measured once per run, shown at every budget
RETENTION_LABEL = {ENCODER: "retention: above-chance probe accuracy kept (%)",
                   DECODER: "retention: 100 x news perplexity before / after (%)"}


def from_evidence(out=None, profile: str = "quick", encoder: str = "confirm", decoder: str = "decoder2") -> pd.DataFrame:
    """The same table built from the stored sweeps (`encoder`: each strategy at its own rate; `decoder`), averaged over
    seeds.

    `quality_seeds` and `retention_seeds` keep the per-seed values (in seed order), so `choose_table` names
    every strategy whose paired difference from the best is not resolved, instead of a winner inside the noise.
    """
    from .sweep import load_results

    rows = []

    def add(model, variant, group, budget, steps, quality, retention):
        group = group.sort_values("seed")  # per-seed values in seed order, for paired ties in choose_table
        quality, retention = quality.loc[group.index], retention.loc[group.index]
        rows.append({"model": model, "strategy": variant, "budget": budget, "steps": steps, "quality": quality.mean(),
                     "retention": retention.mean(), "quality_seeds": tuple(quality), "retention_seeds": tuple(retention),
                     "n": len(group), "failed": int(group["failed"].astype(bool).sum()) if "failed" in group else 0,
                     **{k: group[k].mean() for k in RUN_COSTS}})

    for variant, group in load_results(encoder, profile, out).groupby("variant", sort=False):
        if "pooling=" in variant:  # a head compared with a head (notebook 02), not a strategy to choose
            continue
        add(ENCODER, variant, group, f"{group['epochs'].iloc[0] if 'epochs' in group else 3} epochs", 0,
            group["test_accuracy"], group["retention_cc"])
    decoder = load_results(decoder, profile, out)
    budgets = sorted(int(c.split("@")[1]) for c in decoder.columns if c.startswith("task_accuracy@"))
    for variant, group in decoder.groupby("variant", sort=False):
        for b in budgets:
            add(DECODER, variant, group, f"{b} steps", b, group[f"task_accuracy@{b}"],
                100 / (1 + group[f"forgetting_pct@{b}"] / 100))
    frame = pd.DataFrame(rows)
    return pd.concat([relative_cost(part.copy()) for _, part in frame.groupby("model", sort=False)], ignore_index=True)


def relative_cost(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (one model's rows) with `step_time_vs_full`: each step time over full fine-tuning's."""
    full = frame.loc[frame["strategy"] == "full", "step_time_s"]
    frame["step_time_vs_full"] = frame["step_time_s"] / full.iloc[0] if len(full) else float("nan")
    return frame


QUALITY_MARGIN = 0.02  # "as good as the best": the paired 90 % interval of the difference within 2 points of accuracy
RETENTION_MARGIN = 5.0  # ... or within 5 points of retention (%)


def choose_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Which strategy to choose when, per model, picked from the measured rows (largest budget unless stated).

    A quality floor first: a strategy with a failed run (it did not learn) is never recommended; the last row names
    the ones left out. With per-seed values, a pick names the others that are *as good* (equivalent by two one-sided
    tests within `QUALITY_MARGIN` / `RETENTION_MARGIN`) and counts those the seeds cannot separate from it either way,
    instead of calling an interval that touches zero "as good"."""
    rows = []
    for model, runs in frame.groupby("model", sort=False):
        failed = runs["failed"] > 0 if "failed" in runs else pd.Series(False, index=runs.index)
        left_out = sorted(set(runs.loc[failed, "strategy"]))
        runs = runs[~failed]
        last = runs[runs["steps"] == runs["steps"].max()].set_index("strategy")
        first = runs[runs["steps"] == runs["steps"].min()].set_index("strategy")
        good = last[last["quality"] >= last["quality"].max() - QUALITY_MARGIN]
        picks = {
            "best task quality, cost no object": (leader(last, "quality", QUALITY_MARGIN),
                                                  f"accuracy {last['quality'].max():.2f}"),
            "keep what the model knew": (leader(last, "retention", RETENTION_MARGIN),
                                         f"retention {last['retention'].max():.1f}%"),
            "balance: within 2 points of the best accuracy, most retention":
                (good["retention"].idxmax(), (f"accuracy {good.loc[good['retention'].idxmax(), 'quality']:.2f}, "
                                             f"retention {good['retention'].max():.1f}%")),
            "smallest training budget": (first["quality"].idxmax(), f"accuracy {first['quality'].max():.2f} after {first['budget'].iloc[0]}"),
            "cheapest step": (last["step_time_vs_full"].idxmin(), f"{last['step_time_vs_full'].min():.2f}x the time of full"),
            "fewest trainable parameters (small per-task files)":
                (last["trainable_pct"].idxmin(), f"{last['trainable_pct'].min():.2f}% trainable"),
            "not recommended: a run failed to learn": (", ".join(left_out) or "none", ""),
        }
        for situation, (strategy, why) in picks.items():
            rows.append({"situation": situation, "model": model, "choose": strategy, "measured": why})
    table = pd.DataFrame(rows)
    return table.pivot(index="situation", columns="model", values=["choose", "measured"]).reindex(list(picks))


def leader(runs: pd.DataFrame, column: str, margin: float, short: bool = False) -> str:
    """The best strategy by `column`; with per-seed values, also the strategies as good as it (the 90 % interval of
    best - other over the same seeds inside +-`margin`) and how many the seeds cannot separate from it."""
    from ..measure.stats import mean_ci

    best = runs[column].idxmax()
    if f"{column}_seeds" not in runs:
        return best
    same, unresolved = [], 0
    for other in runs.index.drop(best):
        pairs = list(zip(runs.loc[best, f"{column}_seeds"], runs.loc[other, f"{column}_seeds"]))
        _, low, high = mean_ci([a - b for a, b in pairs], confidence=0.90)
        if -margin < low and high < margin:
            same.append(other)
        elif not mean_ci([a - b for a, b in pairs])[1] > 0:
            unresolved += 1
    if short:  # a chart title: how many others the seeds do not set below it
        return best + (f" (+{len(same) + unresolved} not separated)" if same or unresolved else "")
    notes = ([f"as good: {', '.join(same)}"] if same else []) + ([f"{unresolved} not separated"] if unresolved else [])
    return best + (f" ({'; '.join(notes)})" if notes else "")
