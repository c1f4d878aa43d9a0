"""Notebook 01's verdicts over seeds come from the stored per-layer measurements, with intervals that can go either way."""

import json

import pandas as pd

from hft_lib.experiments import layers


def runs(cka_top: float, general_top: float, seeds=(0, 1, 2)):
    rows = []
    for s in seeds:
        noise = 0.01 * s
        cka = [1.0, 0.99, 0.98, 0.95, 0.8 * cka_top, 0.6 * cka_top + noise, 0.4 * cka_top]
        general = [0.8, 0.8, 0.81, 0.8, general_top, general_top + noise, general_top]
        before = {"trec6": [0.5] * 7, "a": general, "b": general}
        after = {"trec6": [0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9], "a": [g - 0.01 for g in general], "b": general}
        rows.append({"seed": s, "task": "trec6", "cka": json.dumps(cka), "probes_before": json.dumps(before),
                     "probes_after": json.dumps(after),
                     "weight_change": json.dumps({"embeddings": 0.002, **{f"layer {i}": 0.01 + 0.002 * i + 0.001 * s
                                                                          for i in range(6)}})})
    return pd.DataFrame(rows)


def test_claims_follow_the_intervals_both_ways():
    table = layers.claims(runs(cka_top=1.0, general_top=0.9))
    assert table.loc[table["measure"] == "cka", "verdict"].item() == "supported"
    assert table.loc[table["measure"] == "weight_change", "verdict"].item() == "supported"
    assert table.loc[table["measure"] == "general", "verdict"].item() == "refuted"  # the top reads held-out tasks better
    assert layers.claims(runs(cka_top=1.0, general_top=0.6)).loc[lambda t: t["measure"] == "general", "verdict"].item() == "supported"


def test_summary_has_an_interval_per_hidden_state():
    table = layers.summary(runs(1.0, 0.9))
    assert list(table.index) == list(range(7)) and (table["seeds"] == 3).all()
    assert (table["cka_low"] <= table["cka"]).all() and (table["cka"] <= table["cka_high"]).all()
    assert table.loc[6, "task_change"] > table.loc[0, "task_change"]
