"""HFT_SMOKE=1 caps every run (a handful of steps, small splits), whatever the profile or a run's own settings ask for,
so the full profile's code path runs on a CPU in minutes; without it nothing changes."""

import pytest

import hft_lib as hft
from hft_lib.config import SMOKE_LIMITS, smoke_limit
from tests.conftest import tiny_batches, tiny_bert


@pytest.fixture
def smoke(monkeypatch):
    monkeypatch.setenv("HFT_SMOKE", "1")


def test_the_full_profile_is_capped_under_smoke(smoke):
    profile = hft.get_profile("full")
    assert profile.name == "full"  # still the full profile's code path (its settings, its stored-results file)
    assert profile.train_size == SMOKE_LIMITS["examples"] and profile.eval_size == SMOKE_LIMITS["eval_examples"]
    assert profile.epochs == 1 and profile.lm_steps == SMOKE_LIMITS["steps"]
    assert profile.batch_size <= SMOKE_LIMITS["batch_size"] and profile.max_length <= SMOKE_LIMITS["max_length"]


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_without_smoke_nothing_is_capped(monkeypatch, value):
    monkeypatch.setenv("HFT_SMOKE", value)
    assert hft.get_profile("full").train_size is None and hft.get_profile("quick").train_size == 500
    assert smoke_limit("steps", 300) == 300 and smoke_limit("examples", None) is None


def test_a_task_asked_for_whole_splits_is_capped(smoke):
    task = hft.load_task("trec6", train_size=None, validation_size=500, test_size=None)
    limits = (SMOKE_LIMITS["examples"], SMOKE_LIMITS["eval_examples"], SMOKE_LIMITS["eval_examples"])
    assert tuple(len(task[split]) for split in ("train", "validation", "test")) == limits


def test_fit_stops_after_a_handful_of_steps_whatever_it_was_asked(smoke):
    ft = hft.Finetuner(tiny_bert(), "lower_half", verbose=False)
    history = hft.fit(ft, tiny_batches(n=6), epochs=12, max_steps=50, progress=False, config=hft.FitConfig(device="cpu"))
    assert len(history.steps) == SMOKE_LIMITS["steps"]


def test_a_smoke_run_is_not_checked_against_the_stored_evidence(smoke, capsys):
    from hft_lib.experiments.sweep import check_live

    live = {"head_only": {"cell": "whatever", "test_accuracy": 0.1, "profile": "quick", "device": "cpu"}}
    assert check_live("strategies", live) is None
    assert "Nothing to compare: HFT_SMOKE capped the live run" in capsys.readouterr().out


def test_probes_too_small_to_beat_chance_give_no_retention_under_smoke(monkeypatch):
    from hft_lib.measure.retention import chance_corrected_retention

    at_chance = ({"a": 0.51}, {"a": 0.5}, {"a": 0.5})
    with pytest.raises(ValueError, match="within 2 points of chance"):
        chance_corrected_retention(*at_chance)
    monkeypatch.setenv("HFT_SMOKE", "1")
    assert chance_corrected_retention(*at_chance) != chance_corrected_retention(*at_chance)  # NaN
