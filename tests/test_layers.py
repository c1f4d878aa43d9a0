"""Layer-stack discovery on tiny, randomly initialised models of each family (no download)."""

import pytest
import torch
from torch import nn
from transformers import (
    AlbertConfig,
    AlbertForMaskedLM,
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
    T5Config,
    T5ForConditionalGeneration,
    ViTConfig,
    ViTForImageClassification,
)

from hft_lib import Finetuner
from hft_lib.optim import layer_lr
from hft_lib.tracing import split_model

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
    parts = split_model(build())
    assert parts.layer_names == ["encoder.block.0", "encoder.block.1", "decoder.block.0", "decoder.block.1"]
    assert parts.stacks == [("encoder.block", 2), ("decoder.block", 2)]
    assert "encoder.final_layer_norm.weight" in parts.layers[1]  # the encoder's output side goes with its top layer


@pytest.mark.parametrize("family", CASES)
def test_lower_half_freezes_the_lower_half_of_every_stack(family):
    model = CASES[family][0]()
    ft = Finetuner(model, "lower_half", verbose=False)
    assert ft.frozen_layers == [r[i] for r in ft.parts.stack_ranges() for i in range(len(r) // 2)]
    assert not ft.embeddings_trainable


def tiny_t5(layers: int = 3) -> T5ForConditionalGeneration:
    return T5ForConditionalGeneration(T5Config(vocab_size=50, d_model=16, d_kv=8, d_ff=32, num_layers=layers,
                                               num_decoder_layers=layers, num_heads=2))


def test_t5_pattern_applies_per_stack_not_to_a_concatenation():
    """Old code: one list of 6, so lower_half froze the whole encoder and nothing of the decoder."""
    ft = Finetuner(tiny_t5(), "lower_half", verbose=False)
    assert ft.frozen_layers == [0, 3]
    assert "encoder.block 0-2 + decoder.block 3-5, pattern per stack" in ft.describe()
    one = Finetuner(tiny_t5(), "lower_half", layers="decoder.block", verbose=False)  # an explicit choice of one stack
    assert one.parts.layer_names == ["decoder.block.0", "decoder.block.1", "decoder.block.2"] and one.frozen_layers == [0]


def test_t5_discriminative_rates_count_depth_within_each_stack():
    """Old code: encoder layer 0 got lr / 2.6**(2N) because the decoder's layers were counted above it."""
    ft = Finetuner(tiny_t5(), "full", verbose=False)
    assert layer_lr(ft, 0, 1.0, 2.0) == layer_lr(ft, 3, 1.0, 2.0) == 1 / 2**3
    assert layer_lr(ft, "embeddings", 1.0, 2.0) == 1 / 2**4


def tiny_opt() -> OPTForCausalLM:
    """OPT-350m's shape: project_in / project_out around the layers and a final norm, all registered before them."""
    torch.manual_seed(0)
    return OPTForCausalLM(OPTConfig(vocab_size=50, hidden_size=16, word_embed_proj_dim=8, num_hidden_layers=4, ffn_dim=32,
                                    num_attention_heads=2, max_position_embeddings=32, do_layer_norm_before=True))


def test_opt_project_out_and_final_norm_are_head_not_embeddings():
    """Old code labelled them embeddings (registered before the layers): lower_half froze them, head_only trained nothing."""
    parts = split_model(tiny_opt())
    assert "model.decoder.project_in.weight" in parts.embeddings
    assert {"model.decoder.project_out.weight", "model.decoder.final_layer_norm.weight"} <= set(parts.head)
    ft = Finetuner(tiny_opt(), "head_only", verbose=False)
    assert ft.trainable_parameter_count() > 0
    assert ft.model.model.decoder.final_layer_norm.weight.requires_grad and ft.model.model.decoder.project_out.weight.requires_grad


def test_albert_shared_layer_refuses_lower_half_and_alternate():
    """Old code: a stack of length 1, so lower_half silently froze nothing and alternate froze every application."""
    model = AlbertForMaskedLM(AlbertConfig(vocab_size=50, embedding_size=8, num_hidden_layers=4, **SMALL))
    for pattern in ("lower_half", "alternate"):
        with pytest.raises(ValueError, match="applies the same 1 block.* 4 times \\(shared weights\\).*use 'full', 'head_only'"):
            Finetuner(model, pattern, verbose=False)
    assert Finetuner(model, "head_only", verbose=False).frozen_layers == [0]


def test_deberta_relative_embedding_norm_and_conv_freeze_with_the_lower_half():
    """Old code: encoder.LayerNorm / rel_embeddings / encoder.conv were 'head', so they trained under lower_half and the
    backward pass ran through the frozen layers that feed them."""
    model = DebertaV2ForSequenceClassification(DebertaV2Config(
        vocab_size=50, num_hidden_layers=4, relative_attention=True, position_buckets=16, norm_rel_ebd="layer_norm",
        conv_kernel_size=3, num_labels=2, **SMALL))
    ft = Finetuner(model, "lower_half", verbose=False)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {"deberta.encoder.LayerNorm.weight", "deberta.encoder.rel_embeddings.weight",
            "deberta.encoder.conv.conv.weight"} <= frozen
    assert "deberta.encoder.conv.conv.weight" in ft.parts.layers[0]  # it runs on layer 0's output
    out = model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    assert out.logits.requires_grad
    layer1_input = []
    model.deberta.encoder.layer[2].register_forward_pre_hook(lambda m, a, k: layer1_input.append(a[0] if a else k["hidden_states"]),
                                                              with_kwargs=True)
    model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    assert not layer1_input[0].requires_grad  # the input of the first trainable layer: backward stops there


def test_tied_lm_head_is_shown_in_describe_and_summary():
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, num_hidden_layers=2, num_key_value_heads=1, tie_word_embeddings=True, **SMALL))
    ft = Finetuner(model, "lower_half", verbose=False)
    assert ft.parts.tied == ["model.embed_tokens.weight"]
    assert "LM head tied to the embeddings (frozen with them)" in ft.describe()
    assert ft.summary().loc["embeddings", "note"] == "includes the tied LM head"
    untied = Finetuner(LlamaForCausalLM(LlamaConfig(vocab_size=50, num_hidden_layers=2, num_key_value_heads=1, **SMALL)),
                       "lower_half", verbose=False)
    assert "tied" not in untied.describe() and "note" not in untied.summary().columns


class NoStack(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)


def test_unknown_architecture_says_how_to_pass_layers():
    with pytest.raises(ValueError, match=r"pass it explicitly, e\.g\. Finetuner\(model, layers="):
        Finetuner(NoStack())


def test_layers_can_be_passed_explicitly():
    model = NoStack()
    with pytest.warns(UserWarning, match="Could not trace a forward pass of NoStack.*example_inputs"):
        ft = Finetuner(model, "lower_half", layers=[model.a, model.b], verbose=False)
    assert ft.frozen_layers == [0]
    assert not model.a.weight.requires_grad and model.b.weight.requires_grad


def test_layers_as_a_wrong_path_is_a_clear_error():
    with pytest.raises(ValueError, match="has no submodule 'encoder.blocks'"):
        Finetuner(NoStack(), layers="encoder.blocks")


def test_nothing_trainable_is_a_clear_error_before_the_model_is_touched():
    """A tied-head decoder with no final norm: head_only leaves nothing to train (old code trained nothing, silently)."""
    model = tiny_opt()
    model.model.decoder.final_layer_norm = None
    model.model.decoder.project_out = None
    model.model.decoder.project_in = None
    model.config.word_embed_proj_dim = model.config.hidden_size
    model.model.decoder.embed_tokens = nn.Embedding(50, 16)
    model.tie_weights()
    with pytest.raises(ValueError, match="leaves nothing trainable in OPTForCausalLM: its LM head is tied .*embeddings='trainable'"):
        Finetuner(model, "head_only", verbose=False)
    assert all(p.requires_grad for p in model.parameters())
    ft = Finetuner(model, "head_only", embeddings="trainable", verbose=False)
    assert set(ft.named_trainable_parameters()) == set(ft.parts.embeddings) and "model.decoder.embed_tokens.weight" in ft.parts.tied


def test_a_pattern_that_freezes_no_layer_is_an_error():
    model = BertForSequenceClassification(BertConfig(vocab_size=50, num_hidden_layers=1, **SMALL))
    with pytest.raises(ValueError, match="'lower_half' freezes no layer of a 1-layer stack"):
        Finetuner(model, "lower_half", verbose=False)


def test_tied_lm_head_follows_embeddings():
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, num_hidden_layers=2, num_key_value_heads=1, tie_word_embeddings=True, **SMALL))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    Finetuner(model, "head_only", verbose=False)
    assert not model.lm_head.weight.requires_grad
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
