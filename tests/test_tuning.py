"""Rate selection: each strategy's rate chosen on validation over tuning seeds, by a rule in code; confirmation runs read
that choice, on seeds disjoint from the tuning seeds, and refuse to start before the tuning is complete."""

import math

import pandas as pd
import pytest

from hft_lib.config import results_dir
from hft_lib.experiments import protocols, tuning
from hft_lib.experiments.sweep import EXPERIMENTS, ResultsStore, run_sweep


def tuning_rows(best: dict[str, float], seeds=tuning.TUNE_SEEDS, variants=None) -> pd.DataFrame:
    """Fake tuning runs: validation accuracy peaks at `best[strategy]` (1 - |log10 distance| / 10)."""
    rows = []
    for variant in variants or tuning.tune_variants():
        label = ", ".join([variant["strategy"], *(f"{k}={v}" for k, v in variant.items() if k != "strategy")])
        peak = best.get(variant["strategy"], tuning.GRIDS[variant["strategy"]][1])
        for seed in seeds:
            rows.append({"variant": label, "strategy": variant["strategy"], "lr": variant["lr"], "seed": seed,
                         "val_accuracy": 1 - abs(math.log10(variant["lr"] / peak)) / 10 + 0.001 * seed, "failed": False,
                         "effective_lr": variant["lr"] * (10 if variant["strategy"] == "lora" else 1)})
    return pd.DataFrame(rows)


def test_the_rule_picks_the_best_mean_validation_rate_and_flags_a_grid_edge():
    selection = tuning.select_rates(tuning_rows({"bitfit": 1e-2, "full": 5e-5}))
    assert selection.loc["bitfit", "lr"] == 1e-2 and not selection.loc["bitfit", "at_edge"]
    assert selection.loc["full", "lr"] == 5e-5 and selection.loc["full", "at_edge"]  # widen the grid before trusting it
    assert selection.loc["lisa, rounds=8", "strategy"] == "lisa" and selection.loc["lora", "effective_lr"] == 10 * selection.loc["lora", "lr"]
    assert set(selection.loc["bitfit", "curve"]) == set(tuning.GRIDS["bitfit"])


def test_ties_go_to_the_smaller_rate():
    frame = pd.DataFrame([{"variant": f"full, lr={lr}", "strategy": "full", "lr": lr, "seed": 100, "val_accuracy": 0.8,
                           "failed": False} for lr in (1e-4, 3e-4, 1e-3)])
    assert tuning.select_rates(frame).loc["full", "lr"] == 1e-4


def test_every_grid_has_three_rates_and_the_seeds_are_disjoint():
    assert all(len(tuning.check_grid(g)) >= 3 for g in tuning.GRIDS.values())
    tuning.check_disjoint(tuning.TUNE_SEEDS, (*tuning.CONFIRM_SEEDS, *tuning.MORE_SEEDS))
    assert set(tuning.STRATEGIES) <= {v["strategy"] for v in EXPERIMENTS["tune"].variants}


@pytest.mark.parametrize("call,message", [
    (lambda: tuning.check_grid([1e-4]), "at least 3 distinct positive rates"),
    (lambda: tuning.check_grid([1e-4, 1e-4, 3e-4]), "at least 3 distinct positive rates"),
    (lambda: tuning.check_disjoint((0, 1), (1, 2)), "Tuning seeds and scoring seeds overlap (1)"),
])
def test_bad_tuning_input_gets_one_sentence(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_tuning_cells_never_score_the_test_split():
    cell = EXPERIMENTS["tune"].cells("quick")[0]
    assert cell["score"] == "validation" and cell["val_size"] is None and cell["seed"] in tuning.TUNE_SEEDS


def test_confirmation_waits_for_the_tuning_then_runs_each_strategy_at_its_selected_rate(tmp_path, monkeypatch):
    monkeypatch.setenv("HFT_RESULTS", str(tmp_path))
    with pytest.raises(ValueError, match="run `hft sweep tune --profile quick` first"):
        EXPERIMENTS["confirm"].cells("quick")
    tuning_rows({"bitfit": 1e-2})[:10].to_csv(tmp_path / "tune-quick.csv", index=False)
    with pytest.raises(ValueError, match="not complete .*before confirming"):
        EXPERIMENTS["confirm"].cells("quick")
    tuning_rows({"bitfit": 1e-2, "lora": 1e-4, "attention_only": 1e-2, "auto_rgn_body": 3e-2}).to_csv(tmp_path / "tune-quick.csv", index=False)
    with pytest.raises(ValueError, match="run `hft sweep tune_wide --profile quick` first"):
        EXPERIMENTS["confirm"].cells("quick")  # the widened grids join the first ones
    tuning_rows({"attention_only": 1e-2, "auto_rgn_body": 3e-2}, variants=tuning.wider_variants()).to_csv(tmp_path / "tune_wide-quick.csv",
                                                                                   index=False)
    with pytest.raises(ValueError, match="run `hft sweep tune_wide2 --profile quick` first"):
        EXPERIMENTS["confirm"].cells("quick")
    tuning_rows({"auto_rgn_body": 3e-2}, variants=tuning.wider_variants(tuning.WIDER2)).to_csv(
        tmp_path / "tune_wide2-quick.csv", index=False)
    with pytest.raises(ValueError, match="run `hft sweep tune_pooling --profile quick` first"):
        EXPERIMENTS["confirm"].cells("quick")  # the mean-pooling heads' rates are chosen by their own tuning
    tuning_rows({"bitfit": 3e-3}, variants=tuning.pooling_tune_variants()).to_csv(tmp_path / "tune_pooling-quick.csv",
                                                                                   index=False)
    with pytest.raises(ValueError, match="run `hft sweep tune_pooling_wide --profile quick` first"):
        EXPERIMENTS["confirm"].cells("quick")
    tuning_rows({}, variants=tuning.pooling_tune_variants(tuning.WIDER_POOLING)).to_csv(
        tmp_path / "tune_pooling_wide-quick.csv", index=False)
    cells = EXPERIMENTS["confirm"].cells("quick")
    rate = {c["variant"]: c["lr"] for c in cells}
    assert rate["bitfit"] == 1e-2 and rate["lora"] == 1e-4 and rate["full"] == tuning.GRIDS["full"][1]
    assert rate["bitfit, pooling=mean"] == 3e-3 and {c["pooling"] for c in cells if "pooling" in c} == {"mean"}
    assert rate["auto_rgn_body"] == 3e-2  # widened twice
    assert rate["attention_only"] == 1e-2  # chosen from the pooled grid: 5e-5 .. 1e-3 and the widened 3e-3, 1e-2
    seeds = {c["variant"]: {c["seed"] for c in cells if c["variant"] == v} for v in rate for c in cells if c["variant"] == v}
    assert seeds["full"] == {*tuning.CONFIRM_SEEDS, *tuning.MORE_SEEDS} and seeds["bitfit"] == set(tuning.CONFIRM_SEEDS)
    assert ResultsStore(None, EXPERIMENTS["confirm"], "quick").settings["rates"]["bitfit"] == 1e-2  # stored, checked


def test_a_tuning_cell_runs_with_the_validation_split_only(tmp_path, monkeypatch):
    seen = []

    def fake(cell, cache, keep_model=False):
        seen.append(cell)
        return {"val_accuracy": 0.5, "test_accuracy": float("nan"), "failed": False, "effective_lr": cell["lr"]}

    monkeypatch.setitem(protocols.PROTOCOLS, "classification", fake)
    run_sweep("tune", "quick", seeds=(100,), out=tmp_path, echo=lambda s: None)
    assert len(seen) == len(tuning.tune_variants()) and all(c["score"] == "validation" for c in seen)


def test_the_oracle_is_confirmed_on_seeds_it_did_not_choose_on():
    cells = EXPERIMENTS["oracle_confirm"].cells("quick")
    oracle = pd.read_csv(results_dir() / "oracle-quick.csv")
    best = oracle[oracle["strategy"].str.startswith("freeze:")].groupby("strategy")["test_accuracy"].mean().idxmax()
    assert {c["strategy"] for c in cells} == {best, "full", "lower_half"}
    tuning.check_disjoint(tuple(oracle["seed"].unique()), tuple(c["seed"] for c in cells))
    assert {c["train_size"] for c in cells} == {320} and {c["test_size"] for c in cells} == {None}  # the oracle's budget


def test_the_second_budget_has_three_times_the_data_at_the_selected_rates():
    assert EXPERIMENTS["budget2"].settings["train_size"] == 1500 and EXPERIMENTS["budget2"].rates_from == ("tune", "tune_wide", "tune_wide2")
    assert {v["strategy"] for v in EXPERIMENTS["budget2"].variants} == set(tuning.BUDGET2) <= set(tuning.STRATEGIES)


def test_equal_validation_means_that_differ_in_the_last_bit_are_a_tie_and_go_to_the_smaller_rate():
    # two seeds' accuracies over 538 questions: the same number right in total, summed in another order
    rows = pd.DataFrame([{"variant": f"head_only, lr={lr}", "strategy": "head_only", "lr": lr, "seed": seed,
                          "val_accuracy": acc, "failed": False, "effective_lr": lr}
                         for lr, accs in ((1e-3, (0.5, 0.5)), (1e-2, (0.7170686456400741, 0.7170686456400741)),
                                          (3e-2, (0.7170686456400742, 0.7170686456400742)), (1e-1, (0.6, 0.6)))
                         for seed, acc in zip(tuning.TUNE_SEEDS, accs)])
    assert tuning.select_rates(rows).loc["head_only", "lr"] == 1e-2
