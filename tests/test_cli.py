"""The console command: bad input exits non-zero with one sentence; runs never overwrite each other."""

import subprocess
import sys

import pandas as pd
import pytest

from hft_lib.experiments.cli import main
from hft_lib.experiments.compare import new_run_dir


def test_unknown_strategy_exits_nonzero(capsys, tmp_path):
    assert main(["compare", "--strategies", "full,upper_third", "--out", str(tmp_path)]) == 2
    assert "Unknown strategy 'upper_third'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing was created for a run that could not start


def test_unwritable_results_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("precious")
    with pytest.raises(SystemExit, match="cannot create the results folder"):
        new_run_dir(blocker / "results", "x")
    assert blocker.read_text() == "precious"


def test_run_folders_never_collide(tmp_path):
    first, second = new_run_dir(tmp_path, "m-t"), new_run_dir(tmp_path, "m-t")
    assert first != second and first.exists() and second.exists()


def test_compare_end_to_end(tmp_path):
    cmd = [sys.executable, "-m", "hft_lib.experiments.cli", "compare", "--strategies", "head_only,lower_half", "--epochs", "1",
           "--train-size", "160", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    (run,) = tmp_path.iterdir()
    assert {p.name for p in run.iterdir()} == {"results.csv", "results.json", "comparison.png"}
    assert "lower_half" in done.stdout and "majority-class baseline" in done.stdout


def write_task(path, rows=90):
    import pandas as pd

    words = {"sport": "the match ended with a late goal", "money": "the bank raised its interest rate",
             "food": "the soup needs more salt and pepper"}
    labels = list(words)
    frame = pd.DataFrame({"text": [f"{words[labels[i % 3]]} {i}" for i in range(rows)], "label": [labels[i % 3] for i in range(rows)]})
    frame.to_csv(path, index=False)
    return path


def test_compare_seeds_on_a_users_csv(tmp_path, capsys):
    task = write_task(tmp_path / "mine.csv")
    argv = ["compare", "--task", str(task), "--strategies", "full,head_only", "--seeds", "0-1", "--train-size", "24",
            "--epochs", "1", "--batch-size", "8", "--lr", "3e-4", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (run,) = (tmp_path / "out").iterdir()
    import pandas as pd

    frame = pd.read_csv(run / "compare-quick.csv")
    assert sorted(zip(frame["strategy"], frame["seed"])) == [("full", 0), ("full", 1), ("head_only", 0), ("head_only", 1)]
    assert set(frame["train_size"]) == {24} and set(frame["lr"]) == {3e-4} and set(frame["batch_size"]) == {8}
    assert "verdict vs full" in out and "head_only" in out and (run / "compare-quick.json").exists()


@pytest.mark.parametrize("content,message", [
    ("text,labels\na,b\n", "has no label column"),
    ("text,label\n" + "a,x\n" * 9 + "b,y\n", "needs at least 2 labels with 5 or more examples"),
])
def test_malformed_task_file_gets_one_sentence(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["compare", "--task", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra,message", [
    (["--seeds", "2-0"], "Seeds must look like 0-4"),
    (["--lr", "5"], "--lr must be a learning rate between 0 and 1"),
    (["--seeds", "0-1", "--checkpoint-every", "5"], "leave out --checkpoint-every"),
])
def test_bad_compare_options(tmp_path, capsys, extra, message):
    assert main(["compare", *extra, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_subsets_checkpoints_live_in_a_folder_every_system_allows(tmp_path):
    """'freeze:0,2' has a colon, which Windows forbids in folder names: its checkpoints go to 'freeze-0,2'."""
    from hft_lib.experiments.compare import resume_sources
    from hft_lib.strategies import folder_name

    from .test_bad_input import trained_checkpoint

    assert folder_name("freeze:0,2") == "freeze-0,2" and folder_name("lower_half") == "lower_half"
    trained_checkpoint(tmp_path / "run" / "checkpoints" / "freeze-0,2")
    assert resume_sources(str(tmp_path / "run"), ["freeze:0,2"], "tiny-bert on trec6") == {
        "freeze:0,2": tmp_path / "run" / "checkpoints" / "freeze-0,2"}


def test_the_compare_chart_names_a_winner_only_where_the_intervals_separate_it():
    from hft_lib.viz.comparison import accuracy_summary, wilson

    low, high = wilson(0.665, 161)
    assert 0.58 < low < 0.60 and 0.73 < high < 0.74  # +-7 points on 161 test examples
    close = pd.DataFrame({"strategy": ["full", "lower_half"], "test_accuracy": [0.665, 0.615], "test_examples": [161, 161]})
    assert accuracy_summary(close) == "no strategy separated from the others on 161 test examples (one seed)"
    apart = close.assign(test_accuracy=[0.90, 0.60], test_examples=[1000, 1000])
    assert accuracy_summary(apart) == "most accurate full (n = 1000 test examples)"


def test_lr_auto_compares_each_strategy_at_the_rate_it_chose_on_validation(tmp_path, monkeypatch, capsys):
    from hft_lib.experiments import classification

    calls = []

    def fake(strategy, model_name, task_name, profile, seed=0, score_test=True, **kwargs):
        best = {"full": 1e-4, "bitfit": 1e-2}[strategy]  # validation accuracy peaks at each strategy's own rate
        calls.append((strategy, profile.lr, seed, score_test))
        score = 0.9 - abs(profile.lr - best) / best / 100
        return {"strategy": strategy, "model": model_name, "task": task_name, "val_accuracy": score,
                "test_accuracy": score if score_test else float("nan"), "majority_baseline": 0.2, "lr": profile.lr,
                "epoch_time_s": 1.0, "step_time_s": 0.1, "trainable_pct": 100.0, "test_examples": 300}

    monkeypatch.setattr(classification, "run_classification", fake)
    assert main(["compare", "--strategies", "full,bitfit", "--lr", "auto", "--out", str(tmp_path)]) == 0
    tuned = [c for c in calls if not c[3]]
    assert {c[2] for c in tuned} == {1000} and len(tuned) == 8  # 4 rates each, on a tuning seed, test split unread
    assert [c[:2] for c in calls if c[3]] == [("full", 1e-4), ("bitfit", 1e-2)]  # scored (seed 0) at the chosen rates
    out = capsys.readouterr().out
    assert "selected" in out and "the test split is not read" in out
