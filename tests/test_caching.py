"""Frozen-prefix caching: same numbers as the uncached model, frozen layers skipped, model restored."""

import pytest
import torch

from hft_lib import Finetuner, fit
from hft_lib.runtime.caching import FrozenPrefixCache
from tests.conftest import tiny_batches, tiny_bert


def padded_batch(lengths: list[int], width: int, seed: int = 0) -> dict:
    """Right-padded batch whose examples have these lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask, "labels": torch.randint(0, 3, (len(lengths),), generator=g)}


def loss_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_cached_step_gives_the_same_loss_and_gradients_and_skips_frozen_layers():
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    ft.model.eval()  # no dropout anywhere: cached and uncached must agree exactly
    batch = tiny_batches(1)[0]
    ref_loss, ref_grads = loss_and_grads(ft.model, batch)
    calls = []
    next(ft.layers[0].children()).register_forward_hook(lambda *_: calls.append(1))  # runs only if layer 0 computes
    with FrozenPrefixCache(ft) as cache:
        assert cache.prefix_layers == 2
        loss_and_grads(ft.model, batch)  # miss: computes and stores
        assert (cache.hits, cache.misses, cache.examples, len(calls)) == (0, 1, 4, 1)
        loss, grads = loss_and_grads(ft.model, batch)  # hit: layers 0 and 1 skipped
        assert (cache.hits, len(calls)) == (1, 1)
    assert loss == pytest.approx(ref_loss, abs=1e-6)
    assert grads.keys() == ref_grads.keys()
    assert not any(".layer.0." in n or ".layer.1." in n or "embeddings" in n for n in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-6, rtol=1e-5)


def test_cache_is_keyed_by_tokens_so_rebatching_and_repadding_still_hit():
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    ft.model.eval()
    first = padded_batch([10, 6, 3, 8], width=10)
    # The same four examples, in another order, padded to a wider batch.
    order = [2, 0, 3, 1]
    second = {k: v[order] for k, v in first.items()}
    second["input_ids"] = torch.cat([second["input_ids"], torch.zeros(4, 5, dtype=torch.long)], 1)
    second["attention_mask"] = torch.cat([second["attention_mask"], torch.zeros(4, 5, dtype=torch.long)], 1)
    with torch.no_grad():
        reference = ft.model(**second).logits
        with FrozenPrefixCache(ft) as cache:
            ft.model(**first)
            cached = ft.model(**second).logits
            assert cache.hits == 1
    torch.testing.assert_close(cached, reference, atol=1e-5, rtol=1e-5)


def test_prefix_runs_without_dropout_even_in_training_mode():
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    batch = tiny_batches(1)[0]
    ft.model.eval()
    with torch.no_grad():
        clean = ft.model(**batch, output_hidden_states=True).hidden_states[2]  # after layer 1
    ft.model.train()
    with FrozenPrefixCache(ft) as cache, torch.no_grad():
        computed = ft.model(**batch, output_hidden_states=True).hidden_states[2]  # miss: prefix really runs
        assert all(m.training for m in ft.model.modules())  # modes restored after the forward
        served = ft.model(**batch, output_hidden_states=True).hidden_states[2]  # hit: from the cache
        assert cache.hits == 1
    torch.testing.assert_close(computed, clean)
    torch.testing.assert_close(served, clean)


def test_training_with_the_cache_trains_only_the_upper_part_and_restores_the_model():
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    before = {n: p.detach().clone() for n, p in ft.model.named_parameters()}
    batches = tiny_batches(4)
    with FrozenPrefixCache(ft) as cache:
        history = fit(ft, batches, batches, epochs=3, lr=1e-2, progress=False)
        assert cache.hits >= 8  # epochs 2 and 3 (and evaluation) come from the cache
    assert all(torch.isfinite(torch.tensor(history.step_frame["loss"])))
    for name, param in ft.model.named_parameters():
        changed = not torch.equal(param, before[name])
        assert changed == param.requires_grad, name
    assert not any("forward" in layer.__dict__ for layer in ft.layers)
    assert not ft.model._forward_hooks and not ft.model._forward_pre_hooks


def test_caching_needs_a_frozen_bottom_and_refuses_a_stale_prefix():
    with pytest.raises(ValueError, match="frozen embeddings and a frozen layer 0"):
        FrozenPrefixCache(Finetuner(tiny_bert(), "full", verbose=False))
    ft = Finetuner(tiny_bert(), "lower_half", verbose=False)
    batch = tiny_batches(1)[0]
    with FrozenPrefixCache(ft):
        ft.model(**batch)
        ft.unfreeze_layers([0])
        with pytest.raises(RuntimeError, match="unfrozen"):
            ft.model(**batch)
