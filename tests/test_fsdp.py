"""FSDP2 on two CPU processes (gloo) under `accelerate launch --use_fsdp --fsdp_version 2`, against one process.

One launch runs every scenario of tests/fsdp_worker.py (gradual unfreezing, the control without re-resolving
the parameters, the HFT paper's redraw, a crash and resume, the Trainer callback's hooks); each test reads its part.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hft_lib import Checkpointing

from . import fsdp_worker
from .ddp_worker import tiny_model
from .test_distributed import free_port

ACCELERATE = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
pytestmark = pytest.mark.skipif(ACCELERATE is None or not torch.distributed.is_available(),
                                reason="needs accelerate's launcher and torch.distributed")
NEVER_UNFROZEN, UNFROZEN = (0,), (1, 2, 3)  # top-down, a stage every 3 of 10 steps: layer 1 joins at the last step


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    single, multi = tmp_path_factory.mktemp("single"), tmp_path_factory.mktemp("multi")
    pretrained = tmp_path_factory.mktemp("pretrained")
    tiny_model().bert.save_pretrained(pretrained)  # an encoder without the classifier: the head is new, as in `hft compare`
    threads = torch.get_num_threads()
    try:
        fsdp_worker.main(str(single), str(pretrained))
    finally:
        torch.set_num_threads(threads)
    cmd = [ACCELERATE, "launch", "--use_fsdp", "--fsdp_version", "2", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           str(Path(fsdp_worker.__file__)), str(multi), str(pretrained)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return single, multi


def weights(folder: Path, name: str, rank: int = 0) -> dict[str, torch.Tensor]:
    return load_file(folder / f"{name}-rank{rank}.safetensors")


def info(folder: Path, name: str, rank: int = 0) -> dict:
    return json.loads((folder / f"{name}-rank{rank}.json").read_text())


def moved(before: dict, after: dict, part: str) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in after if part in k)


@pytest.mark.parametrize("scenario", ["gradual", "alternate", "tied", "pretrained", "redraw"])
def test_two_sharded_processes_match_one_process(runs, scenario):
    single, multi = runs
    reference, ranks = weights(single, scenario), [weights(multi, scenario, r) for r in (0, 1)]
    assert info(multi, scenario)["sharded"] and not info(single, scenario)["sharded"]
    for name, expected in reference.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"the processes disagree on {name}"
        assert torch.allclose(ranks[0][name], expected, atol=1e-4), f"{name} differs from the single-process run"
    assert info(multi, scenario)["losses"] == pytest.approx(info(single, scenario)["losses"], abs=1e-5)
    assert info(multi, scenario)["eval"] == pytest.approx(info(single, scenario)["eval"], abs=1e-5)


def test_processes_that_transformers_left_on_the_meta_device_start_from_process_0s_weights(runs):
    _, multi = runs
    # the trap is real: with the process group up, from_pretrained initialised the new head on process 0 only
    assert [info(multi, "pretrained", r)["on_meta"] for r in (0, 1)] == [False, True]
    # and the run still matches one process (test_two_sharded_processes_match_one_process[pretrained])


def test_frozen_layers_stay_bit_identical_and_unfrozen_ones_train_on_every_process(runs):
    _, multi = runs
    initial = tiny_model().state_dict()
    for rank in (0, 1):
        trained, naive = weights(multi, "gradual", rank), weights(multi, "naive", rank)
        assert not moved(initial, trained, "embeddings.")
        assert not any(moved(initial, trained, f"layer.{i}.") for i in NEVER_UNFROZEN)
        assert all(moved(initial, trained, f"layer.{i}.") for i in UNFROZEN), "an unfrozen layer did not train"
        # control: fully_shard replaced the parameter objects; without looking them up again by name the unfreezing
        # and the optimiser act on orphaned tensors and the unfrozen layers (the whole model, in fact) never move
        assert not any(moved(initial, naive, f"layer.{i}.") for i in UNFROZEN), "the control trained: it cannot fail"
        alternate = weights(multi, "alternate", rank)  # frozen layers below and between trainable ones
        assert [moved(initial, alternate, f"layer.{i}.") for i in range(4)] == [False, True, False, True]


def test_training_state_per_process_is_about_halved(runs):
    single, multi = runs
    whole = info(single, "gradual")["state_mb"]
    assert all(info(multi, "gradual", r)["state_mb"] < 0.55 * whole for r in (0, 1))


def test_resumed_sharded_run_ends_exactly_where_the_uninterrupted_one_does(runs):
    _, multi = runs
    for rank in (0, 1):
        expected, got = weights(multi, "gradual", rank), weights(multi, "resume", rank)
        assert all(torch.equal(expected[k], got[k]) for k in expected), "resumed weights differ from the uninterrupted run"
        assert info(multi, "resume", rank)["losses"] == info(multi, "gradual", rank)["losses"]


def test_a_sharded_checkpoint_resumes_on_one_process(runs):
    single, multi = runs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ft, _ = fsdp_worker.gradual([Checkpointing(resume_from=multi / "checkpoints")])
    finally:
        torch.set_num_threads(threads)
    reference = weights(single, "gradual")
    assert all(torch.allclose(v, reference[k], atol=1e-4) for k, v in ft.model.state_dict().items())


def test_trainer_callback_under_fsdp2_trains_unfrozen_layers_in_sync(runs):
    _, multi = runs
    initial = tiny_model().state_dict()
    ranks = [weights(multi, "trainer", r) for r in (0, 1)]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert all(moved(initial, ranks[0], f"layer.{i}.") for i in UNFROZEN)  # layer 1 joined at the last of 4 steps
    assert not moved(initial, ranks[0], "layer.0.") and not moved(initial, ranks[0], "embeddings.")
