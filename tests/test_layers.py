"""Layer-stack discovery on tiny, randomly initialised models of each family (no download)."""

import pytest
import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
    T5Config,
    T5ForConditionalGeneration,
    ViTConfig,
    ViTForImageClassification,
)

from hft_lib import Finetuner, split_model

SMALL = {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32}
CASES = {
    "bert": (lambda: BertForSequenceClassification(BertConfig(vocab_size=50, num_hidden_layers=4, **SMALL)),
             "bert.encoder.layer", 4, "bert.embeddings.word_embeddings.weight", "classifier.weight"),
    "roberta": (lambda: RobertaForSequenceClassification(RobertaConfig(vocab_size=50, num_hidden_layers=3, **SMALL)),
                "roberta.encoder.layer", 3, "roberta.embeddings.word_embeddings.weight", "classifier.out_proj.weight"),
    "distilbert": (lambda: DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, n_layers=4, dim=16, n_heads=2,
                                                                               hidden_dim=32)),
                   "distilbert.transformer.layer", 4, "distilbert.embeddings.word_embeddings.weight", "classifier.weight"),
    "gpt2": (lambda: GPT2LMHeadModel(GPT2Config(vocab_size=50, bos_token_id=0, eos_token_id=0, n_layer=4, n_embd=16, n_head=2)),
             "transformer.h", 4, "transformer.wte.weight", "transformer.ln_f.weight"),
    "llama": (lambda: LlamaForCausalLM(LlamaConfig(vocab_size=50, num_hidden_layers=4, num_key_value_heads=1, **SMALL)),
              "model.layers", 4, "model.embed_tokens.weight", "lm_head.weight"),
    "t5": (lambda: T5ForConditionalGeneration(T5Config(vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=2,
                                                       num_decoder_layers=2, num_heads=2)),
           "encoder.block", 4, "shared.weight", "decoder.final_layer_norm.weight"),
    "vit": (lambda: ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, num_hidden_layers=4, num_labels=3, **SMALL)),
            "vit.layers", 4, "vit.embeddings.cls_token", "classifier.weight"),
}


@pytest.mark.parametrize("family", CASES)
def test_finds_layers_embeddings_and_head(family):
    build, stack, n, embedding, head = CASES[family]
    parts = split_model(build())
    assert len(parts.layers) == n
    assert parts.layer_names[0] == f"{stack}.0"
    assert embedding in parts.embeddings
    assert head in parts.head
    every = [name for layer in parts.layers for name in layer] + parts.embeddings + parts.head
    assert len(every) == len(set(every)), "a parameter was assigned twice"


def test_t5_stacks_encoder_then_decoder():
    build = CASES["t5"][0]
    names = split_model(build()).layer_names
    assert names == ["encoder.block.0", "encoder.block.1", "decoder.block.0", "decoder.block.1"]


@pytest.mark.parametrize("family", CASES)
def test_lower_half_freezes_the_lower_half_in_every_family(family):
    model = CASES[family][0]()
    ft = Finetuner(model, "lower_half", verbose=False)
    n = ft.n_layers
    assert ft.frozen_layers == list(range(n // 2))
    assert not ft.embeddings_trainable


class NoStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)


def test_unknown_architecture_says_how_to_pass_layers():
    with pytest.raises(ValueError, match=r"pass it explicitly, e\.g\. Finetuner\(model, layers="):
        Finetuner(NoStack())


def test_layers_can_be_passed_explicitly():
    model = NoStack()
    ft = Finetuner(model, "lower_half", layers=[model.a, model.b], verbose=False)
    assert ft.frozen_layers == [0]
    assert not model.a.weight.requires_grad and model.b.weight.requires_grad


def test_layers_as_a_wrong_path_is_a_clear_error():
    with pytest.raises(ValueError, match="has no submodule 'encoder.blocks'"):
        Finetuner(NoStack(), layers="encoder.blocks")


def test_tied_lm_head_follows_embeddings():
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, num_hidden_layers=2, num_key_value_heads=1, tie_word_embeddings=True, **SMALL))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    Finetuner(model, "head_only", verbose=False)
    assert not model.lm_head.weight.requires_grad
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
