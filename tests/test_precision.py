"""Mixed precision by what the device can do: bf16 where native, fp16 with a gradient scaler where not, fp32 on CPU;
`History` says which, and on a CPU nothing changes numerically."""

import copy
from types import SimpleNamespace

import pytest
import torch

import hft_lib as hft
from hft_lib import precision
from tests.conftest import tiny_batches, tiny_bert

pytestmark = pytest.mark.usefixtures("one_thread")


def gpu(monkeypatch, major: int):
    """Pretend the CUDA device is of compute capability `major` (8 = Ampere: native bf16; 7 = V100 / T4; 6 = P100)."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(major=major))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")


@pytest.mark.parametrize(("major", "expected"), [(8, "bf16"), (9, "bf16"), (7, "fp16"), (6, "fp16")])
def test_auto_is_bf16_only_where_the_gpu_has_it_natively(monkeypatch, major, expected):
    gpu(monkeypatch, major)
    assert precision.resolve_precision("auto", torch.device("cuda")) == expected


@pytest.mark.parametrize("device", ["cpu", "mps"])
def test_auto_is_fp32_on_cpu_and_mps(device):
    assert precision.resolve_precision("auto", torch.device(device)) == "fp32"


def test_asking_for_bf16_on_a_t4_says_what_to_do(monkeypatch):
    gpu(monkeypatch, 7)
    with pytest.raises(ValueError, match="Tesla T4 has no native bfloat16; pass precision='fp16'"):
        precision.resolve_precision("bf16", torch.device("cuda"))
    assert precision.resolve_precision("fp16", torch.device("cuda")) == "fp16"
    assert precision.resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_an_unknown_precision_fails_before_training():
    ft = hft.Finetuner(tiny_bert(), "lower_half", verbose=False)
    with pytest.raises(ValueError, match="Unknown precision 'half'; use one of auto, fp32, bf16, fp16"):
        hft.fit(ft, tiny_batches(), epochs=1, progress=False, config=hft.FitConfig(precision="half"))


def test_only_fp16_gets_a_gradient_scaler():
    cpu = torch.device("cpu")
    assert isinstance(precision.grad_scaler("fp16", cpu), torch.amp.GradScaler)
    assert precision.grad_scaler("bf16", cpu) is None and precision.grad_scaler("fp32", cpu) is None


def train(model, **config):
    ft = hft.Finetuner(model, "lower_half", verbose=False)
    history = hft.fit(ft, tiny_batches(), epochs=1, lr=1e-3, progress=False, config=hft.FitConfig(device="cpu", **config))
    return ft, history


def test_on_cpu_auto_is_plain_fp32_and_history_says_so():
    ft_auto, auto = train(tiny_bert())
    ft_fp32, fp32 = train(tiny_bert(), precision="fp32")
    assert (auto.device, auto.precision) == ("cpu", "fp32")
    assert [s["loss"] for s in auto.steps] == [s["loss"] for s in fp32.steps]
    assert all(torch.equal(a, b) for a, b in zip(ft_auto.model.parameters(), ft_fp32.model.parameters()))


def test_fp16_trains_through_the_gradient_scaler(monkeypatch):
    stepped = []
    step = torch.amp.GradScaler.step
    monkeypatch.setattr(torch.amp.GradScaler, "step", lambda self, opt, *a, **k: stepped.append(1) or step(self, opt, *a, **k))
    model = tiny_bert()
    before = copy.deepcopy(model.state_dict())
    ft, history = train(model, precision="fp16")
    assert history.precision == "fp16" and len(stepped) == len(history.steps) == 6
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in history.steps)
    after = ft.model.state_dict()
    frozen = [n for n, p in ft.model.named_parameters() if not p.requires_grad]
    assert all(torch.equal(after[n], before[n]) for n in frozen)
    assert any(not torch.equal(after[n], before[n]) for n, p in ft.model.named_parameters() if p.requires_grad)
