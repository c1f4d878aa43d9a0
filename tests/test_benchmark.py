"""benchmarks/benchmark.py's accuracy runs (full, lower half with and without the frozen-prefix cache, LoRA) run at
all: they called fit(device=...) and hft.experiments.loaders, neither of which exists. Smoke-capped here."""

import importlib.util
import sys
from pathlib import Path


def test_the_benchmarks_accuracy_runs_run(monkeypatch, capsys):
    monkeypatch.setenv("HFT_SMOKE", "1")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "benchmark.py"
    spec = importlib.util.spec_from_file_location("benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "benchmark", benchmark)  # its dataclasses look themselves up there
    spec.loader.exec_module(benchmark)
    benchmark.accuracy_runs("cpu", quick=True)
    table = capsys.readouterr().out
    assert "## Encoder runs: TREC-6" in table
    assert all(f"| {name} |" in table for name in ("full", "lower_half", "lower_half + cache", "lora"))
