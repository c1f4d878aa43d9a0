"""The cost model: the issue's F / 2F / F accounting, tied heads, and a calibration that leaves the model alone."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hft_lib import Finetuner
from hft_lib.measure.costmodel import Calibration, calibrate, model_blocks, predicted_ratio, step_seconds, trainable_state
from tests.conftest import tiny_batches, tiny_bert


def unit_calibration(n_layers: int = 4, per_param_s: float = 0.0, parameters: int = 1) -> Calibration:
    """Every layer costs F = 1 s forward; embeddings and head are free."""
    names = ["embeddings", *(f"layer {i}" for i in range(n_layers)), "head"]
    return Calibration(names, [0.0] + [1.0] * n_layers + [0.0], per_param_s, parameters)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("full", 4 * 3),                  # every layer: F forward + 2F backward
    ("lower_half", 2 * 1 + 2 * 3),    # frozen below every trainable parameter: forward only
    ("alternate", 1 + 3 + 2 + 3),     # layer 0 skipped; layer 2 passes gradients down: F + F
    ("head_only", 4 * 1),             # only the (free) head trains
])
def test_step_cost_follows_the_f_2f_f_model(pattern, expected):
    ft = Finetuner(tiny_bert(), pattern, verbose=False)
    assert step_seconds(unit_calibration(), trainable_state(ft.model), 0) == pytest.approx(expected)


def test_trainable_embeddings_make_backward_pass_through_the_frozen_layers():
    ft = Finetuner(tiny_bert(), "lower_half", embeddings="trainable", verbose=False)
    assert step_seconds(unit_calibration(), trainable_state(ft.model), 0) == pytest.approx(2 * 2 + 2 * 3)


def test_optimizer_term_is_proportional_to_trainable_parameters():
    ft = Finetuner(tiny_bert(), "head_only", verbose=False)
    cal = unit_calibration(per_param_s=1e-3)
    with_opt = step_seconds(cal, trainable_state(ft.model), 1000)
    assert with_opt - step_seconds(cal, trainable_state(ft.model), 0) == pytest.approx(1.0)


def test_a_tied_lm_head_is_priced_in_the_head_and_follows_the_embeddings():
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2,
                         num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    names, blocks = model_blocks(model)
    assert names[0] == "embeddings" and names[-1] == "head"
    assert any(p is model.lm_head.weight for p in blocks[-1]) and any(p is model.lm_head.weight for p in blocks[0])
    Finetuner(model, "lower_half", verbose=False)
    reached, share = trainable_state(model)[-1]
    assert reached and share < 0.1  # the big tied matrix is frozen; only the final norm trains


def test_calibration_measures_every_block_and_leaves_the_weights_alone():
    model = tiny_bert()
    Finetuner(model, "lower_half", verbose=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cal = calibrate(model, tiny_batches(1)[0], repeats=2)
    assert len(cal.forward_s) == 4 + 2 and all(t > 0 for t in cal.forward_s[1:-1])
    assert cal.per_param_s > 0 and cal.parameters == sum(p.numel() for p in model.parameters())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert [p.requires_grad for p in model.parameters()] == [p.requires_grad for p in Finetuner(
        tiny_bert(), "lower_half", verbose=False).model.parameters()]
    assert len(cal.backward_full_s) == len(cal.backward_pass_s) == 6 and min(cal.backward_full_s + cal.backward_pass_s) >= 0
    assert cal.update_per_param_s > 0
    assert 0 < predicted_ratio(model, cal) < 1


def test_backward_calibration_works_on_a_decoder_with_a_tied_head():
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    ids = torch.randint(0, 64, (2, 8))
    cal = calibrate(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}, repeats=2)
    assert len(cal.backward_pass_s) == 4 and cal.backward_pass_s[-1] > 0  # the head passes gradients down
    assert all(p.requires_grad for p in model.parameters()) and all(p.grad is None for p in model.parameters())
