"""LoRA through `peft`: the method most people would pick instead of freezing layers.

LoRA freezes every pretrained weight and learns a low-rank update `B @ A` (rank r) next to chosen
matrices, here the attention query and value projections, as in the LoRA paper. For
classification the new head (classifier, and BERT's pooler) is trained in full via peft's
`modules_to_save`; a causal LM keeps its LM head frozen. The adapters start at zero
(B = 0), so LoRA is usually trained with a higher learning rate than full fine-tuning
(`LORA_LR_FACTOR` times the profile's rate in our experiments).
"""

from __future__ import annotations

import warnings

from torch import nn

from ..freezing import Finetuner
from ..layers import norm_parameter_names
from ..tracing import split_model
from .base import Prepared, SetupOptions, Strategy

LORA_LR_FACTOR = 10  # LoRA's zero-initialised adapters need a larger step than full fine-tuning
# (query, value) projections per family: BERT/RoBERTa, LLaMA/Mistral/Qwen, DistilBERT, GPT-2 (fused qkv), T5
_TARGETS = (("query", "value"), ("q_proj", "v_proj"), ("q_lin", "v_lin"), ("c_attn",), ("q", "v"))


def _linear_leaf_names(model: nn.Module) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
            if not list(module.children()) and any(True for _ in module.parameters(recurse=False))}


def infer_target_modules(model: nn.Module) -> list[str]:
    """The attention query/value module names LoRA should wrap in this model (BERT: query/value; LLaMA: q_proj/v_proj)."""
    leaves = _linear_leaf_names(model)
    for targets in _TARGETS:
        if all(t in leaves for t in targets):
            return list(targets)
    raise ValueError(f"Cannot tell which modules LoRA should wrap in {type(model).__name__}; pass target_modules=[...], "
                     "e.g. the names of its attention query and value projections.")


def is_classifier(model: nn.Module) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


def head_modules(model: nn.Module) -> list[str]:
    """Module paths of a classification model's head (pooler, classifier), trained in full next to LoRA."""
    parts, norms = split_model(model), norm_parameter_names(model)
    return sorted({name.rsplit(".", 1)[0] for name in parts.head if name not in norms})


def apply_lora(model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: list[str] | None = None,
               modules_to_save: list[str] | None = None) -> nn.Module:
    """Wrap `model` with LoRA adapters (peft); only the adapters (and a classification head) are trainable.

    Args:
        r, alpha, dropout: LoRA rank, scaling numerator (update scaled by alpha / r) and dropout.
        target_modules: module names to adapt (default: the attention query and value projections).
        modules_to_save: modules trained in full (default: the classification head; none for a causal LM).
    """
    from peft import LoraConfig, TaskType, get_peft_model

    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise ValueError(f"LoRA rank r must be a whole number of at least 1, not {r!r}; try r=8.")
    if hasattr(model, "peft_config"):
        raise ValueError("This model already has LoRA adapters; load a fresh model before calling apply_lora.")
    classifier = is_classifier(model)
    if modules_to_save is None and classifier:
        modules_to_save = head_modules(model)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=target_modules or infer_target_modules(model), modules_to_save=modules_to_save,
                        task_type=TaskType.SEQ_CLS if classifier else TaskType.CAUSAL_LM)
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5; nothing for the user to do
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, config)


def lora_finetuner(model: nn.Module, verbose: bool = False, **lora_kwargs) -> Finetuner:
    """Wrap `model` with LoRA and return a Finetuner over it that keeps peft's choice of trainable parameters."""
    peft_model = apply_lora(model, **lora_kwargs)
    ft = Finetuner(peft_model, "full", verbose=False)  # on a peft model "full" keeps the weights peft froze frozen
    if verbose:
        print(f"lora: trainable {ft.trainable_parameter_count():,} of {ft.total_parameter_count():,} parameters "
              f"({100 * ft.trainable_share():.2f}%)")
    return ft


def setup(spec: Strategy, model, options: SetupOptions) -> Prepared:
    """lora: adapters on query/value, trained at `LORA_LR_FACTOR` x the run's rate (peft is imported only here)."""
    from ..optim import build_optimizer

    ft = lora_finetuner(model)
    lr = options.lr * LORA_LR_FACTOR
    return Prepared(ft, build_optimizer(ft, lr, options.weight_decay, options.lr_decay), [], lr)
