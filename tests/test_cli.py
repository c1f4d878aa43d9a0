"""The console command: bad input exits non-zero with one sentence; runs never overwrite each other."""

import subprocess
import sys

import pytest

from hft_lib.experiments.cli import main, new_run_dir


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
           "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    (run,) = tmp_path.iterdir()
    assert {p.name for p in run.iterdir()} == {"results.csv", "results.json", "comparison.png"}
    assert "lower_half" in done.stdout and "majority-class baseline" in done.stdout
