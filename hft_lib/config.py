"""One switch for sizes (the profile), plus device choice and seeding.

The same code path runs everywhere; only the numbers change. `HFT_PROFILE=quick|full` picks the
profile; by default a CUDA machine gets `full` and everything else (CPU, CI, Colab CPU) `quick`.
`HFT_SMOKE=1` caps every run, whatever the profile, at a handful of optimiser steps on small splits
(`SMOKE_LIMITS`), so that `HFT_PROFILE=full HFT_SMOKE=1` runs every notebook's full-profile code path on
a CPU in minutes: the profile here, and the few places that size data or steps themselves (`load_task`,
`fit`), read the caps through `smoke_limit`.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class Profile:
    """Sizes for one run of a notebook, the console command or a test."""

    name: str
    train_size: int | None  # training examples (None: the whole training split)
    eval_size: int | None  # validation and test examples each
    epochs: int  # passes over the training set
    batch_size: int  # examples per optimiser step
    max_length: int  # tokens per example (longer ones are truncated)
    lr: float  # peak learning rate for AdamW
    lm_steps: int  # optimiser steps for the decoder LLM experiments


PROFILES = {
    # 2-core CPU: MiniLM does ~25 steps of 16 x 64 tokens in ~20 s with everything trainable.
    "quick": Profile("quick", train_size=500, eval_size=300, epochs=3, batch_size=16, max_length=64,
                     lr=1e-4, lm_steps=12),
    # One GPU: whole splits, longer sequences, more epochs.
    "full": Profile("full", train_size=None, eval_size=1000, epochs=4, batch_size=32, max_length=128,
                    lr=5e-5, lm_steps=300),
}


# HFT_SMOKE=1: the most any run may use, whatever its profile or its own settings ask for.
SMOKE_LIMITS = {
    "examples": 16,  # training examples per task (load_task, the profile)
    "eval_examples": 16,  # validation and test examples each
    "steps": 2,  # optimiser steps per fit (the decoder's lm_steps too)
    "epochs": 1,
    "batch_size": 4,  # the decoder's own batch size too
    "max_length": 32,  # tokens per example
}


def smoke() -> bool:
    """Whether $HFT_SMOKE asks for capped runs (any value but empty, 0, false or no)."""
    return os.environ.get("HFT_SMOKE", "").strip().lower() not in ("", "0", "false", "no")


def smoke_limit(kind: str, value: int | None) -> int | None:
    """`value` under HFT_SMOKE capped at `SMOKE_LIMITS[kind]` (None, meaning all, becomes the cap); else `value` itself."""
    if not smoke():
        return value
    return SMOKE_LIMITS[kind] if value is None else min(value, SMOKE_LIMITS[kind])


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile named, else $HFT_PROFILE, else `full` on CUDA and `quick` elsewhere (capped under HFT_SMOKE)."""
    name = name or os.environ.get("HFT_PROFILE") or ("full" if torch.cuda.is_available() else "quick")
    if name not in PROFILES:
        raise ValueError(f"Unknown profile {name!r}; use one of {sorted(PROFILES)} (or unset HFT_PROFILE).")
    profile = replace(PROFILES[name], **overrides)
    if not smoke():
        return profile
    return replace(profile, train_size=smoke_limit("examples", profile.train_size),
                   eval_size=smoke_limit("eval_examples", profile.eval_size), epochs=smoke_limit("epochs", profile.epochs),
                   batch_size=smoke_limit("batch_size", profile.batch_size),
                   max_length=smoke_limit("max_length", profile.max_length), lm_steps=smoke_limit("steps", profile.lm_steps))


def get_device(device: str | torch.device | None = None) -> torch.device:
    """The device asked for, else cuda, then mps, then cpu."""
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA was requested but this machine has no usable CUDA GPU; pass device='cpu' or leave device unset.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError("MPS was requested but this machine has no Apple GPU; pass device='cpu' or leave device unset.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def results_dir(out: str | Path | None = None) -> Path:
    """The one folder sweeps write to and notebooks, the README and `hft sweep` read from, whatever the working directory:
    `out` if given, else $HFT_RESULTS, else the checkout's `data/results` (the committed evidence, beside this package),
    else `data/results` under the working directory (an installed package has no checkout)."""
    if out is not None:
        return Path(out)
    if os.environ.get("HFT_RESULTS"):
        return Path(os.environ["HFT_RESULTS"])
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "data" / "results"
    return Path.cwd().resolve() / "data" / "results"


def results_csv(experiment: str, profile: str, out: str | Path | None = None) -> Path:
    """The results file of one experiment and profile in `results_dir(out)` (its provenance is the same name, .json)."""
    return results_dir(out) / f"{experiment}-{profile}.csv"
