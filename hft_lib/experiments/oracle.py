"""The oracle: every subset of an encoder's layers frozen, and the rules people use measured against it.

A 6-layer encoder has 2**6 = 64 ways to choose which layers to freeze (`freeze:0,2,5`, embeddings frozen in
all of them), so the best fixed choice can simply be measured (`hft sweep oracle`). Five named rules are
members of the grid (lower_half is `freeze:0,1,2`, alternate `freeze:0,2,4`, ...; same settings, same runs);
the others (full fine-tuning, the HFT paper's half, LoRA, LISA, BitFit, AutoFreeze, Auto-RGN, ...) run beside
it on the same seeds, so every comparison is paired.

- `load(frame)`: the stored runs with `frozen` (the layer tuple, None for a rule outside the grid),
  `n_frozen` and `label` (the rule's name where a subset is one).
- `summary(frame)`: per variant, the mean over seeds and a 95 % interval for accuracy, step time, retention.
- `pareto(summary, x, y)`: which points no other point beats on both (lower x, higher y).
- `layer_effects(frame)`: what freezing layer i costs, averaged over the 32 subsets with and without it.
- `count_or_which(frame)`: how much of the spread between subsets the *number* of frozen layers explains,
  and whether *which* layers explain more on top of it: a nested model (one mean per count, plus one term per
  layer) against the count alone, with its F-test.
- `against_best(frame)`: every rule paired with the best subset.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ..measure.stats import mean_ci, paired
from ..patterns import frozen_layer_indices
from ..strategies import layer_subset

NAMED = ("lower_half", "upper_half", "alternate", "alternate_odd", "head_only")  # fixed patterns that are grid members
METRICS = {"test_accuracy": "test accuracy", "step_time_s": "time per step (s)",
           "retention_cc": "retention: above-chance probe accuracy kept (%)"}


def load(frame: pd.DataFrame | None = None, profile: str = "quick") -> pd.DataFrame:
    """The oracle's runs (stored ones by default) with `frozen`, `n_frozen` and `label` columns."""
    if frame is None:
        from .sweep import load_results

        frame = load_results("oracle", profile)
    frame = frame.copy()
    frame["frozen"] = [None if (s := layer_subset(v)) is None else tuple(sorted(s)) for v in frame["strategy"]]
    frame["n_frozen"] = [math.nan if f is None else len(f) for f in frame["frozen"]]
    names = {subset: name for name, subset in named_subsets(frame).items()}
    frame["label"] = [v if f is None else (f"{names[f]} ({v})" if f in names else v)
                      for v, f in zip(frame["strategy"], frame["frozen"])]
    return frame


def named_subsets(frame: pd.DataFrame) -> dict[str, tuple[int, ...]]:
    """The named patterns as the grid's layer tuples, for as many layers as the grid has (embeddings frozen in each)."""
    n_layers = 1 + max((max(f) for f in frame["frozen"] if f), default=-1)
    return {name: tuple(frozen_layer_indices(name, n_layers)) for name in NAMED} if n_layers else {}


def summary(frame: pd.DataFrame, metrics=tuple(METRICS)) -> pd.DataFrame:
    """One row per variant: mean and 95 % interval over seeds of each metric, plus `frozen`, `n_frozen`, `label`."""
    rows = []
    for strategy, runs in frame.groupby("strategy", sort=False):
        row = {"strategy": strategy, "label": runs["label"].iloc[0], "frozen": runs["frozen"].iloc[0],
               "n_frozen": runs["n_frozen"].iloc[0], "seeds": len(runs)}
        for metric in metrics:
            if metric in runs:
                row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = mean_ci(runs[metric])
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def pareto(table: pd.DataFrame, x: str = "step_time_s", y: str = "test_accuracy", lower_x: bool = True) -> pd.Series:
    """True where no other row is at least as good on both (lower `x`, or higher with `lower_x=False`; higher `y`)
    and better on one."""
    xs, ys = table[x].to_numpy() * (1 if lower_x else -1), table[y].to_numpy()
    front = [not np.any((xs <= xs[i]) & (ys >= ys[i]) & ((xs < xs[i]) | (ys > ys[i]))) for i in range(len(table))]
    return pd.Series(front, index=table.index, name="pareto")


def _grid(frame: pd.DataFrame) -> pd.DataFrame:
    grid = frame[frame["frozen"].notna()]
    if grid.empty:
        raise ValueError("No layer-subset runs (freeze:...) in these results; run `hft sweep oracle` first.")
    return grid


def layer_effects(frame: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Per layer: mean `metric` with the layer frozen minus with it trainable (over the subsets, per seed), and a 95 % interval.

    Each seed gives one difference of two averages over 32 subsets each (`per_seed`, in seed order); the interval
    is over seeds, and two layers compare seed by seed: `mean_ci(a - b for a, b in zip(...))`.
    """
    grid = _grid(frame)
    layers = sorted({i for f in grid["frozen"] for i in f} | set(range(int(grid["n_frozen"].max()))))
    rows = []
    for layer in layers:
        has = grid["frozen"].map(lambda f, layer=layer: layer in f)
        per_seed = grid[has].groupby("seed")[metric].mean() - grid[~has].groupby("seed")[metric].mean()
        mean, low, high = mean_ci(per_seed)
        rows.append({"layer": layer, "effect": mean, "ci_low": low, "ci_high": high, "seeds": int(per_seed.notna().sum()),
                     "per_seed": tuple(per_seed.sort_index())})
    return pd.DataFrame(rows).set_index("layer")


def count_or_which(frame: pd.DataFrame, metric: str = "test_accuracy") -> dict[str, float]:
    """Shares of the variance between subset means explained by the number of frozen layers and by which are frozen.

    `count`: R^2 of the means per number of frozen layers (any curve in the count); `which`: R^2 of an additive model
    (one term per layer; a straight line in the count is the special case of equal terms); `noise`: the share that seed
    noise alone would produce (the mean within-subset variance over seeds / seeds, over the variance between subset
    means). The two models are not nested, so their R^2 are not a test: `count_and_which` is the R^2 of the model that
    holds both (a mean per count plus a term per layer), and `f`, `p` its F-test against the count alone (does knowing
    which layers add anything once their number is known?). What no model explains and noise does not is interaction:
    a layer's effect that depends on which others are frozen.
    """
    grid = _grid(frame)
    means = grid.groupby("strategy").agg(y=(metric, "mean"), var=(metric, "var"), n=(metric, "size"),
                                         frozen=("frozen", "first"), count=("n_frozen", "first"))
    total = ((means["y"] - means["y"].mean()) ** 2).sum()
    by_count = means.groupby("count")["y"].transform("mean")
    layers = sorted({i for f in means["frozen"] for i in f})
    design = np.column_stack([np.ones(len(means))] + [means["frozen"].map(lambda f, i=i: float(i in f)) for i in layers])
    fitted = design @ np.linalg.lstsq(design, means["y"].to_numpy(), rcond=None)[0]
    counts = sorted(means["count"].unique())
    nested = np.column_stack([(means["count"] == c).astype(float) for c in counts] + list(design[:, 1:].T))
    both = nested @ np.linalg.lstsq(nested, means["y"].to_numpy(), rcond=None)[0]
    rss_count, rss_both = ((means["y"] - by_count) ** 2).sum(), ((means["y"] - both) ** 2).sum()
    p_count, p_both = len(counts), int(np.linalg.matrix_rank(nested))
    dof = len(means) - p_both
    f = ((rss_count - rss_both) / (p_both - p_count)) / (rss_both / dof) if dof > 0 and rss_both > 0 else math.nan
    noise = (means["var"] / means["n"]).mean() * (len(means) - 1)
    return {"subsets": len(means), "count": 1 - rss_count / total, "which": 1 - ((means["y"] - fitted) ** 2).sum() / total,
            "count_and_which": 1 - rss_both / total, "f": f,
            "p": float(scipy_stats.f.sf(f, p_both - p_count, dof)) if not math.isnan(f) else math.nan, "noise": noise / total}


def best_subset(frame: pd.DataFrame, metric: str = "test_accuracy") -> str:
    """The subset with the highest mean `metric` (chosen on the same seeds it is scored on: an optimistic pick)."""
    return _grid(frame).groupby("strategy")[metric].mean().idxmax()


def against_best(frame: pd.DataFrame, metric: str = "test_accuracy", rules: tuple[str, ...] | None = None,
                 best: str | None = None) -> pd.DataFrame:
    """Every rule (named subsets and the rest) paired with the best subset (or `best`) over the same seeds: difference and interval."""
    best = best or best_subset(frame, metric)
    table = paired(frame, metric, best).join(frame.groupby("strategy")["label"].first())
    named = set(named_subsets(frame).values())
    keep = rules if rules is not None else [s for s, f in frame.groupby("strategy")["frozen"].first().items()
                                            if f is None or f in named]
    return table.loc[[s for s in keep if s in table.index]].assign(reference=best).sort_values("diff", ascending=False)


def choose_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The rules and the best subset in `frontier`'s shape, for `frontier.choose_table` (per-seed values kept for ties)."""
    from .frontier import ENCODER, RUN_COSTS, relative_cost

    best = best_subset(frame)
    keep = set(against_best(frame, best=best).index) | {best}
    rows = []
    for strategy, runs in frame[frame["strategy"].isin(keep)].groupby("strategy", sort=False):
        runs = runs.sort_values("seed")
        label = runs["label"].iloc[0] if strategy != best or runs["label"].iloc[0] != strategy else f"best subset ({strategy})"
        rows.append({"model": ENCODER, "strategy": label, "budget": f"{runs['epochs'].iloc[0]} epochs", "steps": 0,
                     "quality": runs["test_accuracy"].mean(), "retention": runs["retention_cc"].mean(),
                     "quality_seeds": tuple(runs["test_accuracy"]), "retention_seeds": tuple(runs["retention_cc"]),
                     "n": len(runs), "failed": int(runs["failed"].astype(bool).sum()) if "failed" in runs else 0,
                     **{k: runs[k].mean() for k in RUN_COSTS}})
    return relative_cost(pd.DataFrame(rows))


def markdown(frame: pd.DataFrame) -> str:
    """The oracle's findings for the README: best subset, count or which, the costliest layer, the rules against the best."""
    from .sweep import EXPERIMENTS

    shares, effects, against = count_or_which(frame), layer_effects(frame), against_best(frame)
    costly = effects["effect"].idxmin()
    row = effects.loc[costly]
    table = summary(frame)
    best = against["reference"].iloc[0]
    finding = (f"Best subset: `{best}` (test accuracy {against['reference_mean'].iloc[0]:.3f}; picked on the same seeds it is "
               f"scored on, so an optimistic target). Of the spread between the {shares['subsets']} subsets' means, the number "
               f"of frozen layers explains {shares['count']:.0%} and which layers (an additive model) {shares['which']:.0%}; "
               f"the number and which layers together {shares['count_and_which']:.0%} (F-test of which layers once their "
               f"number is known: p = {shares['p']:.2g}); seed noise alone would give {shares['noise']:.0%}. "
               f"Freezing layer {costly} costs most: "
               f"{100 * row['effect']:+.1f} points [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}] (mean over the 32 "
               f"subsets with and without it).")
    lines = [f"**oracle**: {EXPERIMENTS['oracle'].question}", "", finding, "",
             "| rule | test accuracy | against the best subset, paired (points) | s per step | retention, above chance (%) | failed runs |",
             "|---|---:|---:|---:|---:|---:|"]
    failed = frame.groupby("strategy")["failed"].sum() if "failed" in frame else {}
    for strategy, r in against.iterrows():
        t = table.loc[strategy]
        lines.append(f"| {r['label']} | {t['test_accuracy']:.3f} | {100 * r['diff']:+.1f} [{100 * r['ci_low']:+.1f}, "
                     f"{100 * r['ci_high']:+.1f}] | {t['step_time_s']:.2f} | {t['retention_cc']:.1f} | "
                     f"{int(failed.get(strategy, 0))} |")
    return "\n".join(lines)
