"""A notebook's live run is checked against stored rows only like with like: the same profile and the same kind of
device as the stored rows' provenance (data/results/*-quick.json: made on a CPU). Anything else says there is nothing to
compare, instead of failing on a GPU's last digits and sending the student to re-run a sweep."""

import json

import pytest

from hft_lib.experiments import protocols
from hft_lib.experiments.sweep import EXPERIMENTS, Experiment, check_live, run_cell, run_sweep, stored_devices


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.setitem(protocols.PROTOCOLS, "fake", lambda cell, cache, keep_model=False: {"test_accuracy": 0.5 + cell["seed"]})
    exp = Experiment("toy", "a toy", "fake", ({"strategy": "full"},), seeds=(0,), settings={"model": "m", "task": "t"})
    monkeypatch.setitem(EXPERIMENTS, "toy", exp)
    run_sweep(exp, out=tmp_path, echo=lambda s: None)  # stored on this machine: a CPU
    return tmp_path


def test_the_committed_evidence_was_made_on_a_cpu():
    for experiment in ("strategies", "gradual", "small_data", "sequential", "decoder", "oracle"):
        assert stored_devices(experiment, "quick") == {"cpu"}


def test_a_live_run_reports_where_it_ran(toy, capsys):
    result = run_cell("toy", "full", seed=0, profile="quick")
    assert (result["profile"], result["device"], result["precision"]) == ("quick", "cpu", "fp32")
    assert "live run of toy / full, seed 0: quick profile, on cpu (fp32)" in capsys.readouterr().out


def test_a_gpu_run_is_not_compared_with_cpu_rows(toy, capsys):
    live = {"full": {**run_cell("toy", "full", profile="quick"), "device": "cuda:0", "test_accuracy": 0.53}}
    assert check_live("toy", live, out=toy) is None  # 0.03 off: on a CPU that would be a stale library
    out = capsys.readouterr().out
    assert "Nothing to compare: the stored quick-profile 'toy' rows were made on cpu and this live run ran on cuda" in out


def test_a_cpu_run_is_still_compared_and_a_stale_one_fails(toy):
    live = {"full": run_cell("toy", "full", profile="quick")}
    assert check_live("toy", live, out=toy).loc[("full", "test_accuracy"), "difference"] == 0
    with pytest.raises(AssertionError, match="stale"):
        check_live("toy", {"full": {**live["full"], "test_accuracy": 0.53}}, out=toy)


def test_the_profile_compared_is_the_live_runs(toy, capsys):
    live = {"full": {**run_cell("toy", "full", profile="quick"), "profile": "full"}}  # a full-profile run (on a GPU, say)
    assert check_live("toy", live, out=toy) is None
    assert "no stored full-profile results of 'toy'" in capsys.readouterr().out


def test_rows_stored_on_a_gpu_are_recognised(toy):
    meta = toy / "toy-quick.json"
    saved = json.loads(meta.read_text())
    for session in saved["sessions"]:
        session.pop("device", None)
        session["gpu"] = "NVIDIA H100"  # provenance from before sessions recorded the device
    meta.write_text(json.dumps(saved))
    assert stored_devices("toy", "quick", toy) == {"cuda"}
