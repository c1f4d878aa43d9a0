"""Mixed precision by what the device can do: which number format a training step computes in.

`"auto"` picks bfloat16 autocast on a GPU with native bfloat16 (NVIDIA Ampere and later, e.g. A100, H100, RTX 30xx;
AMD), float16 autocast with a gradient scaler on one without (Colab's free T4, V100, P100: bfloat16 there is only
emulated, and slow), and plain float32 on CPU and Apple's MPS, where autocast gains little and would change the
numbers. float16 has a narrow range, so small gradients underflow to 0: the scaler multiplies the loss before
backward and divides the gradients after, skipping a step whose gradients overflowed. `"fp32"`, `"bf16"` and
`"fp16"` ask for one format on any device.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: torch.device) -> bool:
    """Whether this CUDA device computes in bfloat16 natively (`torch.cuda.is_bf16_supported()` also says yes where
    it is only emulated, as on a T4)."""
    if device.type != "cuda":
        return False
    if torch.version.hip:
        return True
    index = device.index if device.index is not None else torch.cuda.current_device()
    return torch.cuda.get_device_properties(index).major >= 8


def resolve_precision(precision: str, device: torch.device) -> str:
    """The format a run on `device` computes in: "fp32", "bf16" or "fp16" ("auto": see the module docstring)."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision == "bf16" and device.type == "cuda" and not native_bf16(device):
        raise ValueError(f"{torch.cuda.get_device_name(device)} has no native bfloat16; pass precision='fp16' (float16 "
                         "with a gradient scaler) or 'auto', which picks it for this GPU.")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if native_bf16(device) else "fp16"
    return "fp32"


def amp_dtype(device: torch.device) -> torch.dtype:
    """The half-precision type autocast uses on `device` when mixed precision is on."""
    return DTYPES[resolve_precision("auto", device)] if device.type == "cuda" else torch.bfloat16


def autocast(precision: str, device: torch.device):
    """The autocast context of a resolved precision (nothing for "fp32")."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for float16 (None for the other formats: bfloat16 has float32's range)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None
