"""Two processes (gloo, CPU) under `accelerate launch` end where one process with the same global batch ends.

The run unfreezes a layer every 2 steps, so it also shows that layers unfrozen after DDP wrapped the
model are kept in sync (DDP alone would leave their gradients per-process: see distributed.py), for
`fit` and for the HF Trainer with `FreezingCallback`.
"""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hft_lib import Finetuner, FitConfig, fit
from hft_lib.runtime.distributed import DistributedContext, check_loader, resolve_engine

from . import ddp_worker
from .conftest import tiny_batches, tiny_bert

ACCELERATE = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(ACCELERATE is None, reason="accelerate's launcher is not installed")
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    single.mkdir()
    multi.mkdir()
    threads = torch.get_num_threads()
    try:
        ddp_worker.main(str(single))
    finally:
        torch.set_num_threads(threads)
    # --multi_gpu is accelerate's "launch N processes with torchrun" switch; without CUDA hft uses gloo on CPU.
    cmd = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port()), str(Path(ddp_worker.__file__)), str(multi), "trainer"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    info = [json.loads((multi / f"fit-rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["world"] == 2, "accelerate launch did not start a 2-process group"
    assert info[0]["wraps"] == 5  # one wrap, then one re-wrap per unfreezing stage (4 layers)
    reference = load_file(single / "fit-rank0.safetensors")
    ranks = [load_file(multi / f"fit-rank{r}.safetensors") for r in (0, 1)]
    for name, expected in reference.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"replicas drifted apart in {name}"
        assert torch.allclose(ranks[0][name], expected, atol=1e-4), f"{name} differs from the single-process run"
    single_info = json.loads((single / "fit-rank0.json").read_text())
    assert info[0]["losses"] == pytest.approx(single_info["losses"], abs=1e-5)
    assert info[0]["trainable"] == single_info["trainable"] == [0, 1, 2, 3]
    # the HF Trainer + FreezingCallback on 2 processes: layers unfrozen after DDP wrapped the model stay in sync
    trainer = [load_file(multi / f"trainer-rank{r}.safetensors") for r in (0, 1)]
    assert max_difference(*trainer) == 0, "Trainer replicas drifted apart"
    # controls: without the re-wrap (fit) or the gradient averaging (Trainer), the replicas do drift apart
    for naive in ("naive-fit", "naive-trainer"):
        drift = max_difference(*[load_file(multi / f"{naive}-rank{r}.safetensors") for r in (0, 1)])
        assert drift > 1e-3, f"{naive}: the control did not drift ({drift}); the test could not catch the trap"


def max_difference(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


REFUSED = {  # what the launcher set -> the refusal's words
    "DeepSpeed": ({"ACCELERATE_USE_DEEPSPEED": "true"}, "DeepSpeed is not supported .* --use_fsdp --fsdp_version 2"),
    "FSDP1": ({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "1"}, "FSDP1 is not supported .* --fsdp_version 2"),
    "--use_fsdp alone (accelerate's FSDP1)": ({"ACCELERATE_USE_FSDP": "true"}, "FSDP1 is not supported"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_engines_that_cannot_follow_freezing_are_refused_with_a_clear_message(monkeypatch, case):
    env, message = REFUSED[case]
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=message):
        resolve_engine()
    with pytest.raises(ValueError, match=message):
        DistributedContext()
    with pytest.raises(ValueError, match=message):  # fit refuses too, before training, even on one process
        fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2), progress=False)


@pytest.mark.usefixtures("one_thread")
def test_engine_choice(monkeypatch):
    assert resolve_engine() == "ddp" and resolve_engine("fsdp") == "fsdp"
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert resolve_engine() == "fsdp"
    with pytest.raises(ValueError, match="contradicts the launcher's --use_fsdp"):
        resolve_engine("ddp")
    with pytest.raises(ValueError, match="Unknown engine 'zero3'"):
        fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2), progress=False, config=FitConfig(engine="zero3"))
    # FSDP2 asked for on one process: nothing to shard, the plain loop trains
    history = fit(Finetuner(tiny_bert(), "lower_half", verbose=False), tiny_batches(2), epochs=1, progress=False)
    assert len(history.steps) == 2


def test_shuffled_loader_without_generator_is_refused():
    loader = torch.utils.data.DataLoader(list(range(8)), batch_size=2, shuffle=True)
    with pytest.raises(ValueError, match="needs generator="):
        check_loader(loader)
