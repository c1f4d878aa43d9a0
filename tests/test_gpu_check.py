"""tools/gpu_check.py: without a GPU it says so and what to do; its precision step reports what each precision ran as."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

PATH = Path(__file__).resolve().parents[1] / "tools" / "gpu_check.py"


@pytest.fixture
def gpu_check(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", PATH)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_what_to_do(gpu_check, capsys):
    assert gpu_check.main([]) == 2
    assert "No CUDA GPU here" in capsys.readouterr().err


def test_the_precision_step_records_what_each_precision_ran_as(gpu_check):
    out = gpu_check.precision_check("cpu")
    assert out["auto"]["ran_as"] == "fp32" and out["fp16"]["ran_as"] == "fp16" and out["bf16"]["ran_as"] == "bf16"
