"""Sweeps resume without losing or redoing runs, refuse mismatched files, and record provenance."""

import json

import pandas as pd
import pytest

from hft_lib.experiments import cli, evidence, protocols
from hft_lib.experiments.sweep import EXPERIMENTS, Experiment, ResultsStore, parse_seeds, run_sweep


def fake_protocol(calls, fail_at=None, shift=0.0):
    def run(cell, cache, keep_model=False):
        calls.append((cell["variant"], cell["seed"]))
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt  # the sweep is stopped mid-run
        bonus = 0.05 if cell["strategy"] == "lower_half" else 0.0
        return {"test_accuracy": 0.5 + bonus + 0.01 * cell["seed"] + shift, "failed": False}
    return run


@pytest.fixture
def experiment(monkeypatch):
    calls = []
    monkeypatch.setitem(protocols.PROTOCOLS, "fake", fake_protocol(calls))
    exp = Experiment("toy", "a toy", "fake", ({"strategy": "full"}, {"strategy": "lower_half"}), seeds=(0, 1, 2),
                     settings={"model": "m", "task": "t"})
    return exp, calls


def test_sweep_runs_every_cell_once_and_resumes_after_an_interrupt(tmp_path, monkeypatch, experiment):
    exp, _ = experiment
    calls = []
    monkeypatch.setitem(protocols.PROTOCOLS, "fake", fake_protocol(calls, fail_at=4))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(exp, out=tmp_path, echo=lambda s: None)
    assert len(pd.read_csv(tmp_path / "toy-quick.csv")) == 3  # the three finished runs are on disk
    calls.clear()
    monkeypatch.setitem(protocols.PROTOCOLS, "fake", fake_protocol(calls))
    lines = []
    frame = run_sweep(exp, out=tmp_path, echo=lines.append)
    assert calls == [("full", 1), ("lower_half", 1), ("full", 2), ("lower_half", 2)][1:]  # only what was left
    assert "3 of 6 runs already" in lines[0]
    assert len(frame) == 6 and frame["cell"].is_unique
    assert sorted(zip(frame["variant"], frame["seed"])) == sorted((v, s) for v in ("full", "lower_half") for s in range(3))
    calls.clear()
    run_sweep(exp, out=tmp_path, echo=lambda s: None)
    assert calls == []  # nothing redone


def test_results_carry_provenance(tmp_path, experiment):
    exp, _ = experiment
    run_sweep(exp, out=tmp_path, echo=lambda s: None)
    meta = json.loads((tmp_path / "toy-quick.json").read_text())
    start, end = meta["sessions"]
    for key in ("commit", "torch", "transformers", "torch_threads", "cpu", "date", "command"):
        assert key in start
    assert end["runs"] == 6 and end["wall_s"] >= 0
    assert meta["settings"]["model"] == "m"


def test_a_file_from_other_settings_is_refused(tmp_path, experiment):
    exp, _ = experiment
    run_sweep(exp, out=tmp_path, echo=lambda s: None)
    changed = Experiment("toy", "a toy", "fake", exp.variants, settings={"model": "m", "task": "other"})
    with pytest.raises(ValueError, match=r"toy-quick.csv was written with other settings \(task differ\)"):
        run_sweep(changed, out=tmp_path, echo=lambda s: None)
    assert len(pd.read_csv(tmp_path / "toy-quick.csv")) == 6  # untouched


def test_parts_split_the_cells_without_overlap(tmp_path, experiment):
    exp, calls = experiment
    for i in range(3):
        run_sweep(exp, out=tmp_path, part=(i, 3), echo=lambda s: None)
    assert sorted(calls) == sorted((v, s) for v in ("full", "lower_half") for s in range(3))


def test_verdicts_come_from_the_store(tmp_path, monkeypatch, experiment):
    exp, _ = experiment
    run_sweep(exp, out=tmp_path, echo=lambda s: None)
    monkeypatch.setitem(EXPERIMENTS, "toy", exp)
    claim = evidence.Claim("T", "lower_half beats full", "toy", "test_accuracy", "lower_half", "full", "greater")
    table = evidence.verdicts(tmp_path, claims=[claim]).set_index("claim")
    assert table.loc["T", "diff"] == pytest.approx(0.05)
    assert table.loc["T", "verdict"] == "supported"
    missing = evidence.Claim("M", "x", "toy", "test_accuracy", "nope", "full", "greater")
    assert evidence.verdicts(tmp_path, claims=[missing]).empty  # a variant not run yet gives no verdict


def test_cells_are_paired_and_stable():
    cells = EXPERIMENTS["strategies"].cells("quick")
    assert len({c["cell"] for c in cells}) == len(cells) == 35
    assert {c["cell"] for c in cells} == {c["cell"] for c in EXPERIMENTS["strategies"].cells("quick")}
    seeds = {v: sorted(c["seed"] for c in cells if c["variant"] == v) for v in {c["variant"] for c in cells}}
    assert all(s == [0, 1, 2, 3, 4] for s in seeds.values())


def test_every_claim_names_variants_its_experiment_runs():
    for claim in evidence.CLAIMS:
        labels = {c["variant"] for c in EXPERIMENTS[claim.experiment].cells("quick", seeds=(0,))}
        assert {claim.candidate, claim.reference} <= labels, claim.id


@pytest.mark.parametrize("text,seeds", [("0-4", (0, 1, 2, 3, 4)), ("0,2,7", (0, 2, 7)), ("3", (3,))])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("argv,message", [
    (["sweep", "nope"], "Unknown experiment 'nope'; choose from strategies"),
    (["sweep", "strategies", "--seeds", "4-1"], "Seeds must look like 0-4"),
    (["sweep", "strategies", "--seeds", "a"], "Seeds must look like 0-4"),
    (["sweep", "strategies", "--part", "3/2"], "--part takes I/N"),
])
def test_bad_sweep_input_gets_one_sentence(argv, message, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_mismatched_store_via_the_cli(tmp_path, capsys):
    store = ResultsStore(tmp_path, EXPERIMENTS["small_data"], "quick")
    store.log_session({"event": "start"})
    meta = json.loads(store.meta.read_text())
    meta["settings"]["epochs"] = 3
    store.meta.write_text(json.dumps(meta))
    assert cli.main(["sweep", "small_data", "--out", str(tmp_path)]) == 2
    assert "written with other settings (epochs differ)" in capsys.readouterr().err


def test_sweep_profile_defaults_to_hft_profile(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("hft_lib.experiments.sweep.run_sweep", lambda name, profile, *a, **k: seen.append(profile))
    monkeypatch.setenv("HFT_PROFILE", "full")
    assert cli.main(["sweep", "small_data", "--out", str(tmp_path)]) == 0
    assert seen == ["full"]


def test_hft_sweep_from_another_folder_writes_where_load_results_reads(tmp_path, monkeypatch, experiment):
    from hft_lib.config import results_dir
    from hft_lib.experiments.sweep import load_results

    exp, _ = experiment
    monkeypatch.setitem(EXPERIMENTS, "toy", exp)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    checkout = results_dir()
    assert checkout.is_absolute() and (checkout / "strategies-quick.csv").exists()  # the committed evidence, from any folder
    monkeypatch.setenv("HFT_RESULTS", str(tmp_path / "results"))  # keep the toy rows out of the checkout
    assert cli.main(["sweep", "toy", "--seeds", "0-1"]) == 0
    assert len(load_results("toy")) == 4 and not (elsewhere / "data").exists()


def test_sweep_list_describes_every_experiment(capsys):
    assert cli.main(["sweep", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPERIMENTS)


def test_a_live_run_is_checked_against_its_stored_row(tmp_path, monkeypatch, experiment, capsys):
    from hft_lib.experiments.sweep import check_live, run_cell

    exp, _ = experiment
    monkeypatch.setitem(EXPERIMENTS, "toy", exp)
    run_sweep(exp, out=tmp_path, echo=lambda s: None)
    live = {"lower_half": run_cell("toy", "lower_half", seed=0, profile="quick")}
    table = check_live("toy", live, profile="quick", out=tmp_path)
    assert table.loc[("lower_half", "test_accuracy"), "difference"] == 0
    monkeypatch.setitem(protocols.PROTOCOLS, "fake", fake_protocol([], shift=0.05))  # a library change moved the result
    stale = {"lower_half": run_cell("toy", "lower_half", seed=0, profile="quick")}
    with pytest.raises(AssertionError, match="stored evidence is stale; undo the library change .* re-run `hft sweep toy"):
        check_live("toy", stale, profile="quick", out=tmp_path)
    assert check_live("toy", live, profile="full", out=tmp_path) is None
    assert "Nothing to compare: there are no stored full-profile results of 'toy'" in capsys.readouterr().out
    with pytest.raises(ValueError, match="has no variant 'nope'; choose from full, lower_half"):
        run_cell("toy", "nope", profile="quick")


def test_a_cell_gives_the_same_result_whatever_ran_before_it():
    # The stored rows and a notebook's live run must agree: nothing a process did earlier may leak into a cell
    # (the new head's initial weights once came from whatever state the random generator was left in).
    import torch

    cell = {"profile": "quick", "model": "minilm-l6", "task": "trec6", "strategy": "upper_half", "seed": 3,
            "train_size": 16, "epochs": 1, "val_size": 8, "test_size": 24}
    first = protocols.classification(cell, {})
    torch.rand(1000)  # another run, a probe fit, anything that draws random numbers
    second = protocols.classification(cell, {})
    assert first["final_loss"] == second["final_loss"] and first["test_accuracy"] == second["test_accuracy"]


def test_a_diverged_run_is_recorded_not_fatal(tmp_path, monkeypatch, experiment):
    from hft_lib.training import TrainingDiverged

    exp, _ = experiment

    def sometimes(cell, cache, keep_model=False):
        if cell["strategy"] == "lower_half" and cell["seed"] == 1:
            raise TrainingDiverged("Loss became nan at step 3; lower the learning rate.")
        return {"test_accuracy": 0.5, "failed": False}

    monkeypatch.setitem(protocols.PROTOCOLS, "fake", sometimes)
    frame = run_sweep(exp, out=tmp_path, echo=lambda s: None)
    row = frame[(frame["strategy"] == "lower_half") & (frame["seed"] == 1)].iloc[0]
    assert row["failed"] and "Loss became nan" in row["diverged"] and row["test_accuracy"] != row["test_accuracy"]
    from hft_lib.measure import stats

    table = stats.paired(frame, "test_accuracy", "full")
    assert table.loc["lower_half", "diverged"] == 1 and table.loc["lower_half", "n"] == 2


def test_a_claim_whose_precondition_fails_is_not_testable_and_says_why(tmp_path, monkeypatch, experiment):
    exp, _ = experiment
    run_sweep(exp, out=tmp_path, echo=lambda s: None)
    frame = pd.read_csv(tmp_path / "toy-quick.csv")
    frame.loc[frame["strategy"] == "lower_half", "failed"] = True  # the candidate never learned
    frame.to_csv(tmp_path / "toy-quick.csv", index=False)
    monkeypatch.setitem(EXPERIMENTS, "toy", exp)
    claim = evidence.Claim("T", "lower_half beats full", "toy", "test_accuracy", "lower_half", "full", "greater")
    table = evidence.verdicts(tmp_path, claims=[claim]).set_index("claim")
    assert table.loc["T", "verdict"] == "not testable here: lower_half did not learn (3 of 3 runs failed)"
    assert table.loc["T", "verdict_holm"] == table.loc["T", "verdict"]


def test_holm_can_take_back_a_raw_verdict_in_a_family_of_claims(tmp_path, monkeypatch, experiment):
    exp, _ = experiment
    run_sweep(exp, out=tmp_path, echo=lambda s: None)
    frame = pd.read_csv(tmp_path / "toy-quick.csv")
    noise = {0: 0.0, 1: 0.03, 2: -0.02}  # the difference varies by seed: a modest t statistic
    frame["test_accuracy"] += [noise[s] if v == "lower_half" else 0.0 for v, s in zip(frame["strategy"], frame["seed"])]
    frame.to_csv(tmp_path / "toy-quick.csv", index=False)
    monkeypatch.setitem(EXPERIMENTS, "toy", exp)
    one = evidence.Claim("T", "lower_half beats full", "toy", "test_accuracy", "lower_half", "full", "greater")
    alone = evidence.verdicts(tmp_path, claims=[one]).iloc[0]
    family = evidence.verdicts(tmp_path, claims=[one] + [evidence.Claim(f"T{i}", "x", "toy", "test_accuracy", "lower_half",
                                                                        "full", "less") for i in range(20)])
    assert alone["verdict"] == alone["verdict_holm"]
    assert family.iloc[0]["p_support_holm"] >= alone["p_support"] and family.iloc[0]["p_support_holm"] <= 1


def test_a_live_run_at_selected_rates_works_where_that_profile_was_never_tuned(capsys):
    # The full profile (a GPU, Colab) has no stored tuning: the live run takes the quick profile's selected rates and
    # says so, instead of failing in the chapter's first live cell.
    from hft_lib.experiments.sweep import cell_settings, live_cell_settings

    cell = live_cell_settings("confirm", "bitfit", seed=0, profile="full")
    assert cell["profile"] == "full" and cell["lr"] == cell_settings("confirm", "bitfit", 0, "quick")["lr"]
    assert "No full-profile tuning is stored" in capsys.readouterr().out


def test_a_live_check_under_an_untuned_profile_says_there_is_nothing_to_compare(capsys, monkeypatch):
    from hft_lib.experiments.sweep import check_live

    monkeypatch.delenv("HFT_SMOKE", raising=False)
    live = {"full": {"cell": "0" * 12, "test_accuracy": 0.9, "profile": "full", "device": "cpu"}}
    assert check_live("confirm", live) is None  # no full-profile rows (nor tuning): nothing to compare, no error
    assert "Nothing to compare: there are no stored full-profile results of 'confirm'" in capsys.readouterr().out
