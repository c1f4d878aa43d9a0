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


def test_the_interval_figure_is_legible():
    from hft_lib.viz.plots import plot_layer_intervals
    from tests.test_legibility import legible

    legible(plot_layer_intervals(layers.summary(runs(1.0, 0.9))))


def test_forgetting_is_compared_at_the_same_task_accuracy():
    from hft_lib.experiments.decoder import matched_forgetting

    rows = []
    for seed in (0, 1, 2):
        rows.append({"variant": "full", "seed": seed, "task_accuracy_before": 0.3, "task_accuracy@8": 0.5,
                     "forgetting_pct@8": 2.0, "task_accuracy@16": 0.7, "forgetting_pct@16": 4.0 + 0.2 * seed})
        rows.append({"variant": "slow", "seed": seed, "task_accuracy_before": 0.3, "task_accuracy@8": 0.4,
                     "forgetting_pct@8": 1.0, "task_accuracy@16": 0.7, "forgetting_pct@16": 3.0 + 0.1 * seed})
    frame = pd.DataFrame(rows)
    at = matched_forgetting(frame, accuracy=0.6)
    assert abs(at.loc["full", "mean"] - (2.0 + 0.5 * 2.2)) < 1e-9  # halfway from 0.5 to 0.7
    assert abs(at.loc["slow", "mean"] - (1 + 2 / 3 * (2.0 + 0.1))) < 1e-9  # two thirds of the way from 0.4 to 0.7
    default = matched_forgetting(frame)
    assert default["accuracy"].iloc[0] == 0.7  # the highest accuracy every run reaches
