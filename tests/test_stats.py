"""Paired statistics and the verdict rule: what every verdict in the notebooks and README rests on."""

import math

import numpy as np
import pandas as pd
import pytest

from hft_lib.measure import stats


def frame(rows):
    return pd.DataFrame(rows, columns=["strategy", "seed", "acc"])


def test_mean_ci_matches_t_interval():
    mean, _, high = stats.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    assert high - mean == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5), rel=1e-3)  # t(0.975, 4) = 2.776
    assert math.isnan(stats.mean_ci([1.0])[1])


def test_pairing_removes_what_the_seed_does_to_both():
    # Seeds move both strategies by up to 0.2, the candidate is always exactly 0.01 better: unpaired, that is noise.
    rows = [r for s, shift in enumerate([0.0, 0.2, -0.1, 0.15, -0.2])
            for r in (("full", s, 0.7 + shift), ("lower_half", s, 0.71 + shift))]
    table = stats.paired(frame(rows), "acc", "full")
    row = table.loc["lower_half"]
    assert row["n"] == 5
    assert row["diff"] == pytest.approx(0.01)
    assert row["ci_low"] == pytest.approx(0.01) and row["ci_high"] == pytest.approx(0.01)
    assert stats.verdict(row["ci_low"], row["ci_high"], "greater") == stats.SUPPORTED


def test_unpaired_seeds_and_diverged_runs_drop_out_of_the_pairs():
    rows = [("full", 0, 0.8), ("full", 1, 0.7), ("full", 2, 0.9), ("lower_half", 0, 0.75), ("lower_half", 1, float("nan")),
            ("lower_half", 3, 0.6)]
    row = stats.paired(frame(rows), "acc", "full").loc["lower_half"]
    assert row["n"] == 1 and row["diverged"] == 1 and row["diff"] == pytest.approx(-0.05)


@pytest.mark.parametrize("low,high,claim,margin,expected", [
    (0.01, 0.05, "greater", 0.0, stats.SUPPORTED),
    (-0.05, -0.01, "greater", 0.0, stats.REFUTED),
    (-0.01, 0.03, "greater", 0.0, stats.UNRESOLVED),
    (-0.05, -0.01, "less", 0.0, stats.SUPPORTED),
    (-0.01, 0.01, "equivalent", 0.02, stats.SUPPORTED),
    (-0.06, -0.03, "equivalent", 0.02, stats.REFUTED),
    (-0.03, 0.01, "equivalent", 0.02, stats.UNRESOLVED),
    (float("nan"), float("nan"), "greater", 0.0, stats.UNRESOLVED),
])
def test_verdict_follows_the_interval(low, high, claim, margin, expected):
    assert stats.verdict(low, high, claim, margin) == expected


def test_mde_shrinks_with_more_seeds_and_matches_the_normal_rule_for_many():
    assert stats.minimum_detectable_effect(1.0, 5) > stats.minimum_detectable_effect(1.0, 20)
    assert stats.minimum_detectable_effect(1.0, 10_000) * 100 == pytest.approx(2.8, rel=0.01)  # (1.96 + 0.84) sd / sqrt(n)


def test_mde_is_honest_by_simulation():
    # A true effect equal to the MDE is detected (interval excludes 0) in about 80 % of 8-seed experiments.
    rng = np.random.default_rng(0)
    mde = stats.minimum_detectable_effect(1.0, 8)
    hits = sum(stats.mean_ci(rng.normal(mde, 1.0, 8))[1] > 0 for _ in range(2000))
    assert 0.72 < hits / 2000 < 0.88


def test_bad_input_gets_one_sentence():
    with pytest.raises(ValueError, match="No runs of the reference 'nope'"):
        stats.paired(frame([("full", 0, 0.5)]), "acc", "nope")
    with pytest.raises(ValueError, match="no 'loss' column"):
        stats.paired(frame([("full", 0, 0.5)]), "loss", "full")
    with pytest.raises(ValueError, match="share a strategy and seed"):
        stats.paired(frame([("full", 0, 0.5), ("full", 0, 0.6)]), "acc", "full")
    with pytest.raises(ValueError, match="margin > 0"):
        stats.verdict(-0.1, 0.1, "equivalent")


def test_sd_is_the_spread_of_the_paired_differences_not_of_the_candidate():
    seeds = range(5)
    frame = pd.DataFrame([{"strategy": s, "seed": k, "acc": 0.5 + 0.1 * k + (0.02 if s == "b" else 0.0)}
                          for s in ("a", "b") for k in seeds])
    row = stats.paired(frame, "acc", "a").loc["b"]
    assert row["sd_diff"] == pytest.approx(0.0, abs=1e-12) and row["diff"] == pytest.approx(0.02)


def test_holm_adjusts_step_down_and_keeps_the_order():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.2, float("nan")])[0] == pytest.approx(0.2) and math.isnan(stats.holm([0.2, float("nan")])[1])


def test_one_sided_and_tost_p_values_against_the_t_distribution():
    from scipy import stats as scipy_stats

    row = {"n": 10, "se": 0.01, "diff": 0.03}
    assert stats.p_value(row, "greater") == pytest.approx(scipy_stats.t.sf(3, 9))
    assert stats.p_value(row, "less") == pytest.approx(scipy_stats.t.cdf(3, 9))
    tied = {"n": 10, "se": 0.005, "diff": 0.0}
    assert stats.p_value(tied, "equivalent", 0.02) == pytest.approx(scipy_stats.t.sf(4, 9))


def test_equivalence_is_decided_on_the_90_percent_interval():
    # a difference whose 95 % interval pokes out of the margin but whose 90 % interval (TOST at 5 %) lies inside it
    row = {"ci_low": -0.021, "ci_high": 0.021, "ci90_low": -0.017, "ci90_high": 0.017}
    assert stats.verdict(row["ci_low"], row["ci_high"], "equivalent", 0.02) == stats.UNRESOLVED
    assert stats.decide(row, "equivalent", 0.02) == stats.SUPPORTED
    assert stats.decide(row, "greater") == stats.UNRESOLVED
