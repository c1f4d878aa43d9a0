import pytest
import torch
from transformers import BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

from hft_lib.exercises import tiny_classifier


def tiny_bert(num_labels: int = 3, layers: int = 4) -> BertForSequenceClassification:
    return tiny_classifier(layers=layers, num_labels=num_labels, seed=0)  # the exercises' tiny model, the same one


def tiny_llama(layers: int = 4, vocab_size: int = 64, max_positions: int = 32, tie: bool = True) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=max_positions,
                         tie_word_embeddings=tie)
    return LlamaForCausalLM(config)


def tiny_batches(n: int = 6, num_labels: int = 3, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(1, 100, (4, 10), generator=g),
             "attention_mask": torch.ones(4, 10, dtype=torch.long),
             "labels": torch.randint(0, num_labels, (4,), generator=g)} for _ in range(n)]


def lm_batches(n: int = 4) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(0, 64, (2, 8), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids})
    return out


@pytest.fixture
def bert():
    return tiny_bert()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and far faster on a busy shared CPU); use with `pytestmark`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_terminal_summary(terminalreporter):
    """One line of layer-discovery coverage after a run that included tests/test_zoo.py (skip reasons: `pytest -rs`)."""
    outcomes = {}
    for key in ("passed", "failed", "skipped", "xfailed", "xpassed"):
        outcomes[key] = sum(1 for r in terminalreporter.stats.get(key, [])
                            if "test_zoo.py::" in getattr(r, "nodeid", "") and r.when in ("setup", "call"))
    tried = sum(outcomes.values())
    if tried:
        built = tried - outcomes["skipped"]
        terminalreporter.write_line(
            f"layer discovery zoo: {tried} model types tried, {built} built from a tiny config; {outcomes['passed']} passed "
            f"every invariant, {outcomes['xfailed']} known upstream failure(s), {outcomes['failed'] + outcomes['xpassed']} "
            f"failed; {outcomes['skipped']} skipped (reasons: pytest -rs tests/test_zoo.py)")
