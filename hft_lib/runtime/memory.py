"""Gradient (activation) checkpointing that keeps the savings of frozen embeddings.

Checkpointing stores only each layer's input and recomputes the layer in the backward pass:
activation memory drops from O(layers x tokens x hidden x ~10) to O(layers x tokens x hidden), for
about one extra forward pass of the trainable layers. Worth it for long sequences.

The trap: with frozen embeddings the hidden states entering the first trainable layer do not
require grad. PyTorch's old *reentrant* checkpoint then returns outputs that do not require grad
either ("None of the inputs have requires_grad=True. Gradients will be None"), so the trainable
layers silently get no gradients. The usual fix, `model.enable_input_require_grads()` (which
recent `transformers` even calls for you), makes the embedding output require grad, and that
forces the backward pass down through every frozen layer: the frozen lower half is no longer free.

`enable_gradient_checkpointing` uses the *non-reentrant* checkpoint instead, which follows the
trainable parameters inside the layer rather than its inputs, and removes the input-grad hook, so
frozen layers below every trainable parameter still build no autograd graph at all.
"""

from __future__ import annotations

import warnings

from torch import nn


def enable_gradient_checkpointing(model: nn.Module, every_n_layers: int = 1) -> nn.Module:
    """Checkpoint the model's transformer layers in a way that works with frozen embeddings.

    Args:
        model: a Hugging Face `PreTrainedModel` (or a peft model wrapping one).
        every_n_layers: checkpoint every n-th layer only (where transformers supports it).
    Returns the model, for chaining.
    """
    base = _pretrained(model)
    if base is None or not getattr(base, "supports_gradient_checkpointing", False):
        raise ValueError(f"{type(model).__name__} does not support gradient checkpointing; use a transformers model "
                         "whose layers support it (BERT, LLaMA, GPT-2, ...) or leave checkpointing off.")
    kwargs = {"use_reentrant": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecated alias on older/newer versions
        if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs, every_n_layers=every_n_layers)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    # transformers (and peft) add a hook making the embedding output require grad; with the
    # non-reentrant checkpoint it is not needed, and it would cost a backward pass through frozen layers.
    for module in model.modules():
        if hasattr(module, "disable_input_require_grads"):
            module.disable_input_require_grads()
    return model


def gradient_checkpointing_enabled(model: nn.Module) -> bool:
    """Whether any layer of the model is checkpointed."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def _pretrained(model: nn.Module):
    """The outermost transformers PreTrainedModel inside `model` (itself, or the one a peft model wraps)."""
    from transformers import PreTrainedModel

    return next((m for m in model.modules() if isinstance(m, PreTrainedModel)), None)
