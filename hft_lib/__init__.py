"""hft_lib: selective layer freezing, gradual unfreezing and measured fine-tuning of pretrained transformers.

The core (imported here, light: torch and nothing heavier): `layers` (layer stacks, `ModelParts`) and
`tracing` (`split_model`: which parameters are embeddings, layer i, head, by watching one forward pass),
`patterns` and `freezing` (`Finetuner`), `optim`, `callbacks` (`Callback`, `Run`, `History`), `training`
(`fit`), `checkpoint`, `config` and `progress`. Loading (`models`, `data`, `assets`) loads transformers and
datasets only when first used; `exercises` holds the notebooks' checkers. Sub-packages:
`strategies/` (the registry of named strategies and one module per method: gradual unfreezing, the HFT
paper's half, LoRA, LISA, AutoFreeze, Auto-RGN), `measure/` (retention probes, CKA, cost model, statistics),
`runtime/` (frozen-prefix cache, gradient checkpointing, DDP and FSDP2, the Hugging Face Trainer callback,
memory), `experiments/` (the runs behind the notebooks and the `hft` command: they compute) and `viz/`
(every plot and widget: it draws).
"""

from importlib import import_module

from .callbacks import Callback, History, LambdaCallback
from .checkpoint import Checkpointing
from .config import get_device, get_profile, set_seed, smoke
from .freezing import Finetuner
from .optim import build_optimizer
from .strategies import STRATEGIES, get_strategy
from .strategies.auto_rgn import AutoRGN
from .strategies.autofreeze import AutoFreeze
from .strategies.gradual import GradualUnfreezing, UnfreezeSchedule
from .strategies.hft_paper import HalfParameterRedraw
from .strategies.lisa import LISA
from .training import FitConfig, TrainingDiverged, evaluate, fit

# Imported on first use: these pull in transformers, datasets, pandas or peft.
_LAZY = {
    "load_model": ".models",
    "load_task": ".data",
    "make_loader": ".data",
    "majority_baseline": ".data",
    "run_classification": ".experiments.classification",
}

__version__ = "0.1.0"
__all__ = [
    "LISA",
    "STRATEGIES",
    "AutoFreeze",
    "AutoRGN",
    "Callback",
    "Checkpointing",
    "Finetuner",
    "FitConfig",
    "GradualUnfreezing",
    "HalfParameterRedraw",
    "History",
    "LambdaCallback",
    "TrainingDiverged",
    "UnfreezeSchedule",
    "build_optimizer",
    "evaluate",
    "fit",
    "get_device",
    "get_profile",
    "get_strategy",
    "load_model",
    "load_task",
    "majority_baseline",
    "make_loader",
    "run_classification",
    "set_seed",
    "smoke",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hft_lib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
