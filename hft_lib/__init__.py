"""hft_lib: selective layer freezing, gradual unfreezing and measured fine-tuning of pretrained transformers.

The core (imported here, light: torch and nothing heavier) is `layers` (which parameters are embeddings,
layer i, head), `patterns` and `freezing` (`Finetuner`), `unfreezing`, `optim`, `callbacks`, `training`
(`fit`), `checkpoint`, `strategies` (the registry) and the data-driven callbacks `lisa`, `autofreeze` and
`auto_rgn`. Loading (`models`, `data`, `assets`) and the experiment runners load transformers, datasets and
pandas only when first used. Sub-packages:
`measure/` (retention probes, CKA, cost model), `runtime/` (frozen-prefix cache, gradient checkpointing,
DDP, the Hugging Face Trainer callback), `experiments/` (the runs behind the notebooks and the `hft`
command) and `viz/` (plots and widgets).
"""

from importlib import import_module

from .auto_rgn import AutoRGN
from .autofreeze import AutoFreeze
from .callbacks import Callback, LambdaCallback
from .checkpoint import Checkpointing
from .config import get_device, get_profile, set_seed
from .freezing import Finetuner
from .lisa import LISA
from .optim import build_optimizer
from .strategies import STRATEGIES, get_strategy
from .training import FitConfig, History, TrainingDiverged, evaluate, fit
from .unfreezing import GradualUnfreezing, UnfreezeSchedule

# Imported on first use: these pull in transformers, datasets, pandas or peft.
_LAZY = {
    "load_model": ".models",
    "load_task": ".data",
    "make_loader": ".data",
    "majority_baseline": ".data",
    "HalfParameterRedraw": ".hft_paper",
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
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hft_lib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
