"""Notebook 01 over seeds: what fine-tuning changes, layer by layer, with an interval on every number.

The `layers` sweep stores, per seed, the probe accuracy of every hidden state on every probe task before and after full
fine-tuning on the task (the probe examples resampled with the seed; the pretrained model itself has no seed), the
linear CKA of each hidden state before against after, and the relative weight change of each part. `per_layer` turns
those into one row per seed and hidden state; `summary` gives each measure's mean and 95 % interval per hidden state;
`claims` tests the two readings of "lower layers are general" as paired comparisons of the lower hidden states (0-3:
the embeddings and layers 0-2, what lower-half freezing keeps fixed) against the upper ones (4-6), over the seeds.
"""

from __future__ import annotations

import json

import pandas as pd

from ..measure import stats

LOW, HIGH = range(4), range(4, 7)  # hidden states: 0 = the embeddings' output, k = layer k-1's
MEASURES = {"cka": "CKA, pretrained vs fine-tuned", "weight_change": "relative weight change (%)",
            "general": "held-out probe accuracy, pretrained", "held_out_change": "held-out probe change after fine-tuning",
            "task_change": "task probe change after fine-tuning"}


def per_layer(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per seed and hidden state: the five measures (held-out: every probe task but the fine-tuning task)."""
    rows = []
    for run in frame.itertuples():
        before, after = json.loads(run.probes_before), json.loads(run.probes_after)
        cka, change = json.loads(run.cka), list(json.loads(run.weight_change).values())
        held_out = [t for t in before if t != run.task]
        for k in range(len(cka)):
            rows.append({"seed": run.seed, "hidden_state": k, "cka": cka[k], "weight_change": 100 * change[k],
                         "general": sum(before[t][k] for t in held_out) / len(held_out),
                         "held_out_change": sum(after[t][k] - before[t][k] for t in held_out) / len(held_out),
                         "task_change": after[run.task][k] - before[run.task][k]})
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per hidden state, each measure's mean over the seeds with its 95 % interval (`<measure>_low`, `_high`)."""
    layers = per_layer(frame)
    out = {}
    for k, group in layers.groupby("hidden_state"):
        row = {"seeds": group["seed"].nunique()}
        for measure in MEASURES:
            row[measure], row[f"{measure}_low"], row[f"{measure}_high"] = stats.mean_ci(group[measure])
        out[k] = row
    return pd.DataFrame(out).T.rename_axis("hidden state")


CLAIMS = (  # (what it says, measure, predicted sign of lower minus upper)
    ("lower layers change less: their CKA with the pretrained features is higher", "cka", "greater"),
    ("lower layers' weights change less", "weight_change", "less"),
    ("lower layers serve held-out tasks better (pretrained probes)", "general", "greater"),
    ("freezing the lower layers would keep more: held-out probes lose less there", "held_out_change", "greater"),
)


def claims(frame: pd.DataFrame) -> pd.DataFrame:
    """Each reading of "lower layers are general" as a paired comparison over the seeds: the mean of hidden states 0-3
    minus the mean of 4-6, its 95 % interval and the verdict it gives (weight change: layers 0-2 against 3-5)."""
    layers = per_layer(frame)
    rows = []
    for text, measure, predicts in CLAIMS:
        low, high = (range(1, 4), range(4, 7)) if measure == "weight_change" else (LOW, HIGH)  # state 0: the embeddings
        by_seed = layers.pivot(index="seed", columns="hidden_state", values=measure)
        diff = by_seed[list(low)].mean(axis=1) - by_seed[list(high)].mean(axis=1)
        mean, lo, hi = stats.mean_ci(diff)
        rows.append({"claim": text, "measure": measure, "lower minus upper": mean, "ci_low": lo, "ci_high": hi,
                     "seeds": len(diff), "verdict": stats.verdict(lo, hi, predicts, 0.0)})
    return pd.DataFrame(rows).set_index("claim")
