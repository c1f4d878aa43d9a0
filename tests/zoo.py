"""Every model type transformers can build for causal LM, sequence classification or masked LM, from a tiny config.

Used by `tests/test_zoo.py` (the layer-discovery invariants over the whole zoo) and runnable on its own to print
the coverage table: `python -m tests.zoo` (one line per model type: passed, or skipped with the reason).
"""

from __future__ import annotations

import contextlib
import signal
import warnings

import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification
from transformers.models.auto import modeling_auto
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils import logging as hf_logging

MAPPINGS = {
    "causal_lm": (modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, AutoModelForCausalLM),
    "seq_cls": (modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES, AutoModelForSequenceClassification),
    "masked_lm": (modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES, AutoModelForMaskedLM),
}
LAYERS = 4  # layers per stack: lower_half freezes 0-1, alternate 0 and 2
# Set on a config only where it has the attribute (directly or through its attribute_map).
SMALL = dict(  # noqa: C408 - keyword style reads as a config
    hidden_size=32, num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
             d_model=32, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=4, decoder_attention_heads=4,
             encoder_ffn_dim=48, decoder_ffn_dim=48, num_layers=LAYERS, num_decoder_layers=LAYERS, num_heads=4, d_ff=48,
             d_kv=8, head_dim=8, embedding_size=32, moe_intermediate_size=16, num_experts=3, num_local_experts=3,
             n_routed_experts=3, num_experts_per_tok=2, shared_expert_intermediate_size=16, max_position_embeddings=64,
             n_positions=64, rotary_dim=4, qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=8, kv_lora_rank=16,
             q_lora_rank=16, decoder_start_token_id=0, first_k_dense_replace=1, n_group=1, topk_group=1,
    mamba_d_ssm=64, mamba_n_heads=8, mamba_d_state=16, mamba_chunk_size=16)
MAX_PARAMETERS = 40e6  # a "tiny" config that still builds more than this is not tiny: skipped, with the sizes that stay big
SECONDS = 30


def zoo() -> list[tuple[str, str]]:
    """(task, model_type) for every entry of the three auto mappings."""
    return [(task, model_type) for task, (mapping, _) in MAPPINGS.items() for model_type in mapping]


def tiny_config(model_type: str):
    cls = CONFIG_MAPPING[model_type]
    keys = set(cls().to_dict()) | set(getattr(cls, "attribute_map", {}))
    return cls(**{k: v for k, v in SMALL.items() if k in keys})


class Skip(Exception):
    """This model type cannot be built from a tiny config here (the message says why)."""


@contextlib.contextmanager
def time_limit(seconds: int):
    def stop(*_):
        raise TimeoutError(f"took over {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def quiet():
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            hf_logging.set_verbosity(level)


def build(task: str, model_type: str) -> torch.nn.Module:
    """A randomly initialised tiny model, or Skip with the reason (config rejected, still large, or does not run)."""
    from hft_lib.tracing import make_example_inputs

    auto = MAPPINGS[task][1]
    with quiet():
        try:
            config = tiny_config(model_type)
            with torch.device("meta"):
                meta = auto.from_config(config)
        except Exception as err:  # noqa: BLE001 - any failure to build is a reason to skip
            raise Skip(f"config or model does not build: {type(err).__name__}: {str(err).splitlines()[0][:100]}") from None
        size = sum(p.numel() for p in meta.parameters())
        if size > MAX_PARAMETERS:
            raise Skip(f"tiny config still has {size / 1e6:.0f}M parameters (multimodal or fixed-size parts)")
        torch.manual_seed(0)
        try:
            with time_limit(SECONDS):
                model = auto.from_config(config)
                model(**make_example_inputs(model))
        except Exception as err:  # noqa: BLE001
            raise Skip(f"does not run on a tiny text input: {type(err).__name__}: {str(err).splitlines()[0][:100]}") from None
    return model


def main() -> None:
    import sys

    sys.path.insert(0, ".")
    from tests.test_zoo import check_invariants

    torch.set_num_threads(1)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for task, model_type in zoo():
        try:
            model = build(task, model_type)
            with quiet():
                check_invariants(model)
            counts["passed"] += 1
            print(f"passed   {task:9} {model_type}")
        except Skip as why:
            counts["skipped"] += 1
            print(f"skipped  {task:9} {model_type}: {why}")
        except Exception as err:  # noqa: BLE001
            counts["failed"] += 1
            print(f"FAILED   {task:9} {model_type}: {type(err).__name__}: {str(err)[:200]}")
    tried = counts["passed"] + counts["failed"]
    print(f"{len(zoo())} model types tried: {tried} built, {counts['passed']} passed every invariant "
          f"({100 * counts['passed'] / max(tried, 1):.0f}%), {counts['failed']} failed, {counts['skipped']} skipped")


if __name__ == "__main__":
    main()
