"""The HFT paper's half: half of every layer's attention, feed-forward and norm units frozen, redrawn per round."""

import pytest
import torch

from hft_lib import Finetuner, FitConfig, LambdaCallback, fit
from hft_lib.callbacks import Run
from hft_lib.patterns import module_kind
from hft_lib.strategies.hft_paper import HalfParameterRedraw, apply_hft_paper, layer_units, mask_table

from .conftest import lm_batches, tiny_bert, tiny_llama

pytestmark = pytest.mark.usefixtures("one_thread")


def frozen_counts(ft):
    """Per layer and category: (frozen units, units)."""
    return [{cat: (sum(not ft.params[u[0]].requires_grad for u in units), len(units)) for cat, units in by_cat.items()}
            for by_cat in layer_units(ft)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_static_draw_freezes_half_of_every_layer_llama(seed):
    ft = Finetuner(tiny_llama(), "full", verbose=False)
    frozen = apply_hft_paper(ft, seed=seed)
    counts = frozen_counts(ft)
    assert all(c["attention"] == (2, 4) and c["norm"] == (1, 2) for c in counts)
    assert all(c["ffn"][1] == 3 and c["ffn"][0] in (1, 2) for c in counts)
    assert sum(c["ffn"][0] for c in counts) == 6  # exactly half of the 12 feed-forward matrices model-wide
    params = dict(ft.model.named_parameters())
    assert all(params[n].requires_grad for n in ft.parts.embeddings + ft.parts.head)
    assert set(frozen) == {n for n, p in params.items() if not p.requires_grad}
    assert 0.3 < ft.trainable_share() < 0.9


def test_static_draw_on_bert_counts_and_biases_travel_with_weights():
    ft = Finetuner(tiny_bert(), "full", verbose=False)
    frozen = set(apply_hft_paper(ft, seed=3))
    assert all(c == {"attention": (2, 4), "ffn": (1, 2), "norm": (1, 2)} for c in frozen_counts(ft))
    assert all((n.replace(".bias", ".weight") in frozen) == (n in frozen) for n in frozen if n.endswith(".bias"))
    assert all(v == "2/4" for v in mask_table(ft)["attention"])
    assert module_kind("bert.encoder.layer.0.attention.output.LayerNorm", is_norm=True) == "norm"
    assert module_kind("bert.encoder.layer.0.attention.output.dense") == "attention"


def test_norms_are_found_by_module_type_not_name():
    """GPT-2's `ln_1`/`ln_2` are nn.LayerNorm: the paper's norm units, whatever the name says."""
    from transformers import GPT2Config, GPT2LMHeadModel
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_layer=2, n_embd=16, n_head=2, bos_token_id=0, eos_token_id=0))
    units = layer_units(Finetuner(model, "full", verbose=False))[0]
    assert [u[0].rsplit(".", 2)[1] for u in units["norm"]] == ["ln_1", "ln_2"]
    assert all(".attn." in u[0] for u in units["attention"]) and all(".mlp." in u[0] for u in units["ffn"])


def test_draws_differ_between_seeds():
    ft = Finetuner(tiny_llama(layers=6), "full", verbose=False)
    assert apply_hft_paper(ft, 0) != apply_hft_paper(ft, 1)


def test_redraw_changes_the_mask_each_round_and_keeps_half():
    ft = Finetuner(tiny_llama(), "full", verbose=False)
    redraw = HalfParameterRedraw(ft, seed=0, every=2)
    first = list(redraw.frozen)
    redraw.on_step_end(Run(ft, 1e-3, 0.0, None, [redraw], step=0))
    assert redraw.frozen == first  # not yet a round boundary
    redraw.on_step_end(Run(ft, 1e-3, 0.0, None, [redraw], step=1))
    assert redraw.round == 1 and redraw.frozen != first
    assert all(c["attention"] == (2, 4) and c["norm"] == (1, 2) for c in frozen_counts(ft))


def test_redrawn_training_frozen_params_are_bit_identical_while_frozen():
    """Across each step, a parameter frozen during that step is bit-identical (no momentum, no weight decay);
    parameters trainable during the step move, including ones that were frozen in an earlier round."""
    model = tiny_llama()
    ft = Finetuner(model, "full", verbose=False)
    redraw = HalfParameterRedraw(ft, seed=0, every=1)  # a new draw after every step
    optimizer = redraw.build_optimizer(lr=1e-2, weight_decay=0.5)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in model.parameters()}  # every parameter that can ever train
    snapshots, masks = [], []

    def hook(run):
        snapshots.append({n: p.detach().clone() for n, p in run.model.named_parameters()})
        redraw.on_step_end(run)
        masks.append({n for n, p in run.model.named_parameters() if not p.requires_grad})

    masks.append({n for n, p in model.named_parameters() if not p.requires_grad})
    snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
    fit(ft, lm_batches(6), epochs=1, lr=1e-2, progress=False, optimizer=optimizer,
        callbacks=[LambdaCallback(on_step_end=hook)], config=FitConfig(weight_decay=0.5, schedule="constant"))
    # snapshots[0] = start; snapshots[k+1] = after step k; masks[k] = frozen set during step k
    moved_after_being_frozen = 0
    for step in range(6):
        before, after, frozen = snapshots[step], snapshots[step + 1], masks[step]
        for name in before:
            if name in frozen:
                assert torch.equal(before[name], after[name]), f"{name} moved at step {step} while frozen"
            elif name.endswith("weight") and ".layers." in name:
                assert not torch.equal(before[name], after[name]), f"{name} was trainable at step {step} but did not move"
                moved_after_being_frozen += step > 0 and name in masks[step - 1]
    assert moved_after_being_frozen > 0  # newly trainable parameters really joined training


def test_every_must_be_positive():
    with pytest.raises(ValueError, match="every must be a whole number"):
        HalfParameterRedraw(Finetuner(tiny_llama(), "full", verbose=False), every=0)
