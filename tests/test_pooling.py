"""The mean-pooling head: the classifier reads the mean of the real tokens' states, the head is the classifier alone,
and a model without a [CLS] pooler gets one clear sentence."""

import pytest
import torch

from hft_lib import Finetuner, load_model
from hft_lib.pooling import MeanPooler, use_mean_pooling

from .conftest import tiny_bert, tiny_llama


def test_the_classifier_reads_the_mean_of_the_real_tokens():
    model = use_mean_pooling(tiny_bert())
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    model.eval()
    with torch.no_grad():
        out = model.bert(input_ids=ids, attention_mask=mask)
        weights = mask.unsqueeze(-1).float()
        expected = (out.last_hidden_state * weights).sum(1) / weights.sum(1)
    assert isinstance(model.bert.pooler, MeanPooler) and torch.allclose(out.pooler_output, expected, atol=1e-6)
    assert model.config.hft_pooling == "mean"


def test_with_mean_pooling_head_only_trains_the_classifier_alone():
    ft = Finetuner(use_mean_pooling(tiny_bert()), "head_only", verbose=False)
    assert ft.parts.head == ["classifier.weight", "classifier.bias"]
    assert {n for n, p in ft.model.named_parameters() if p.requires_grad} == set(ft.parts.head)


@pytest.mark.parametrize("call,message", [
    (lambda: use_mean_pooling(tiny_llama()), "has no \\[CLS\\] pooler to replace; .*use pooling='cls'"),
    (lambda: load_model("minilm-l6", num_labels=6, pooling="max"), "pooling must be one of cls, mean"),
    (lambda: load_model("minilm-l6", pooling="mean"), "pooling must be one of cls, mean .*for classifiers"),
])
def test_bad_pooling_gets_one_sentence(call, message):
    with pytest.raises(ValueError, match=message):
        call()
