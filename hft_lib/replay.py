"""Replaying a run's randomness: the RNG states a checkpoint saves, and one epoch's batches replayed from them.

Resuming restores the data order (the loader's shuffle generator and torch's global generator as the epoch
began), skips the batches already trained on, then sets every generator to where it was after the last
completed step, so dropout continues exactly as in an uninterrupted run.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from .callbacks import ResumeState


def rng_state() -> dict:
    """Python, NumPy and torch (CPU and CUDA) generator states, in types torch.load(weights_only=True) accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def loader_generator_state(loader) -> torch.Tensor | None:
    generator = getattr(loader, "generator", None)
    return generator.get_state() if generator is not None else None


class EpochBatches:
    """Iterate one epoch of a loader, remembering the RNG states its shuffle starts from.

    With `resume`, the epoch's shuffle is replayed from those states, the batches already trained
    on are skipped, and the RNG is then set to where it was after the last completed step.
    """

    def __init__(self, loader, resume: ResumeState | None = None):
        self.loader, self.resume = loader, resume
        if resume is not None:
            torch.set_rng_state(resume.epoch_rng["torch"])
            if resume.epoch_rng.get("loader") is not None:
                loader.generator.set_state(resume.epoch_rng["loader"])
        self.start_rng = {"torch": torch.get_rng_state(), "loader": loader_generator_state(loader)}

    def __iter__(self):
        iterator = iter(self.loader)
        if self.resume is not None:
            for _ in range(self.resume.batch_in_epoch):
                next(iterator, None)
            set_rng_state(self.resume.rng)
        yield from iterator
