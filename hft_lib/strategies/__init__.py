"""Fine-tuning strategies: one registry (`registry`), and one module per method that needs code of its own.

- `base`: what a strategy is (`Strategy`, a registry row), what its setup reads (`SetupOptions`) and returns (`Prepared`);
- `registry`: the table of named strategies, `get_strategy` (the one message for an unknown name), `prepare`,
  the `freeze:0,2,5` layer subsets, and the layer-pattern and module-kind setups that need no module of their own;
- `gradual`: gradual unfreezing, bottom-up or top-down (`GradualUnfreezing`, `UnfreezeSchedule`);
- `hft_paper`: the HFT paper's half of every layer, redrawn each round (`HalfParameterRedraw`);
- `lora`: LoRA adapters through peft;
- `lisa`: LISA, a few random layers at a time with the leaving layers' optimiser state freed;
- `autofreeze`: freeze layers from the bottom once their gradient norm settles;
- `auto_rgn`: each tensor's rate scaled by its relative gradient norm.
"""

from .base import Prepared, SetupOptions, Strategy
from .registry import (
    DECODER_STRATEGIES,
    REGISTRY,
    STRATEGIES,
    SUBSET,
    check_strategies,
    describe_strategies,
    folder_name,
    get_strategy,
    layer_subset,
    prepare,
    split_strategies,
    subset_name,
)

__all__ = ["DECODER_STRATEGIES", "REGISTRY", "STRATEGIES", "SUBSET", "Prepared", "SetupOptions", "Strategy",
           "check_strategies", "describe_strategies", "folder_name", "get_strategy", "layer_subset", "prepare",
           "split_strategies", "subset_name"]
