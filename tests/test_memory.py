"""No waste for frozen layers (no graph, grads or optimizer state) and checkpointing that works with frozen embeddings."""

import torch

from hft_lib import Finetuner, build_optimizer, fit
from hft_lib.runtime.memory import enable_gradient_checkpointing, gradient_checkpointing_enabled
from tests.conftest import tiny_batches, tiny_bert


def output_requires_grad(ft: Finetuner, batch: dict) -> list[bool]:
    """Whether each layer's output is part of an autograd graph during a training forward pass."""
    seen: list[bool] = []
    handles = [layer.register_forward_hook(lambda m, i, o: seen.append((o[0] if isinstance(o, tuple) else o).requires_grad))
               for layer in ft.layers]
    ft.model(**batch).loss.backward()
    for h in handles:
        h.remove()
    return seen


def test_frozen_layers_below_every_trainable_parameter_build_no_graph():
    ft = Finetuner(tiny_bert(layers=4), "alternate", verbose=False)  # layers 0 and 2 frozen, embeddings frozen
    ft.model.train()
    assert output_requires_grad(ft, tiny_batches(1)[0]) == [False, True, True, True]


def test_frozen_parameters_get_no_gradients_and_no_optimizer_state():
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    optimizer = build_optimizer(ft, 1e-3)
    fit(ft, tiny_batches(2), epochs=1, optimizer=optimizer, progress=False)
    stated = {id(p) for p in optimizer.state}
    for name, param in ft.model.named_parameters():
        assert (param.grad is None) and ((id(param) in stated) == param.requires_grad), name


def test_checkpointing_trains_the_trainable_layers_with_frozen_embeddings():
    batch = tiny_batches(1)[0]
    grads = []
    for checkpoint in (False, True):
        ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
        if checkpoint:
            enable_gradient_checkpointing(ft.model)
            assert gradient_checkpointing_enabled(ft.model)
        ft.model.train()
        torch.manual_seed(0)
        # The frozen prefix still builds no graph (no input-grad hook forcing backward through it).
        assert output_requires_grad(ft, batch) == [False, False, True, True]
        grads.append({n: p.grad for n, p in ft.model.named_parameters() if p.grad is not None})
    plain, checkpointed = grads
    assert plain.keys() == checkpointed.keys() == ft.named_trainable_parameters().keys()
    for name, grad in plain.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5)


def test_checkpointing_recomputes_only_the_trainable_layers():
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    enable_gradient_checkpointing(ft.model)
    ft.model.train()
    calls = [0] * ft.n_layers
    for i, layer in enumerate(ft.layers):
        next(layer.children()).register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    ft.model(**tiny_batches(1)[0]).loss.backward()
    assert calls == [1, 1, 2, 2]  # frozen layers run once; checkpointed trainable ones again in backward
