"""LoRA (peft) wraps the attention query/value projections and trains only the adapters (+ a classification head)."""

import pytest
import torch

from hft_lib import FitConfig, fit
from hft_lib.optim import build_optimizer, optimizer_parameter_ids
from hft_lib.strategies.lora import apply_lora, infer_target_modules, lora_finetuner

from .conftest import lm_batches, tiny_batches, tiny_bert, tiny_llama

pytestmark = pytest.mark.usefixtures("one_thread")


def test_target_modules_are_inferred_per_family():
    assert infer_target_modules(tiny_bert()) == ["query", "value"]
    assert infer_target_modules(tiny_llama()) == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match="pass target_modules"):
        infer_target_modules(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_lora_on_bert_trains_only_adapters_and_head():
    ft = lora_finetuner(tiny_bert())
    trainable = set(ft.named_trainable_parameters())
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any("classifier.modules_to_save" in n for n in trainable)
    assert sum("lora_" in n for n in trainable) == 4 * 2 * 2  # 4 layers x (query, value) x (A, B)
    assert optimizer_parameter_ids(build_optimizer(ft, 1e-3)) == {id(p) for p in ft.trainable_parameters()}
    before = {n: p.detach().clone() for n, p in ft.model.named_parameters()}
    fit(ft, tiny_batches(), epochs=2, lr=1e-2, progress=False, config=FitConfig(weight_decay=0.1))
    for name, param in ft.model.named_parameters():
        changed = not torch.equal(param, before[name])
        assert changed == (name in trainable), f"{name}: changed={changed}, trainable={name in trainable}"


def test_lora_on_llama_keeps_the_lm_head_frozen():
    ft = lora_finetuner(tiny_llama())
    trainable = set(ft.named_trainable_parameters())
    assert trainable and all("lora_" in n for n in trainable)
    assert sum(".q_proj.lora_" in n for n in trainable) == 4 * 2
    history = fit(ft, lm_batches(), epochs=1, lr=1e-2, progress=False)
    assert len(history.steps) == 4


def test_bad_rank_and_double_wrapping_are_clear_errors():
    with pytest.raises(ValueError, match="rank r must be"):
        apply_lora(tiny_bert(), r=0)
    wrapped = apply_lora(tiny_bert())
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        apply_lora(wrapped)


def test_finetuner_on_a_peft_model_keeps_the_base_frozen():
    """Old code set every parameter trainable before applying the pattern, un-freezing the whole base model."""
    from hft_lib import Finetuner

    peft_model = apply_lora(tiny_llama())
    adapters = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    ft = Finetuner(peft_model, "lower_half", verbose=False)
    trainable = set(ft.named_trainable_parameters())
    assert trainable and trainable < adapters  # only adapters, and only those of the upper half
    assert all(".layers.2." in n or ".layers.3." in n for n in trainable)
    ft.unfreeze_layers(range(ft.n_layers))
    assert set(ft.named_trainable_parameters()) == adapters
