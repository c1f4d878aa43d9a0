"""hft_lib: selective layer freezing, gradual unfreezing and measured fine-tuning of pretrained transformers."""

from .assets import AssetError, fetch
from .config import Profile, get_device, get_profile, set_seed
from .data import label_names, load_task, majority_baseline, make_loader
from .experiments import STRATEGIES, run_classification
from .freezing import Finetuner, frozen_layer_indices
from .layers import find_layer_stack, split_model
from .models import load_model
from .optim import build_optimizer, linear_warmup_decay, slanted_triangular
from .training import History, TrainingDiverged, evaluate, fit
from .unfreezing import GradualUnfreezer, UnfreezeSchedule

__version__ = "0.1.0"
__all__ = [
    "STRATEGIES",
    "AssetError",
    "Finetuner",
    "GradualUnfreezer",
    "History",
    "Profile",
    "TrainingDiverged",
    "UnfreezeSchedule",
    "build_optimizer",
    "evaluate",
    "fetch",
    "find_layer_stack",
    "fit",
    "frozen_layer_indices",
    "get_device",
    "get_profile",
    "label_names",
    "linear_warmup_decay",
    "load_model",
    "load_task",
    "majority_baseline",
    "make_loader",
    "run_classification",
    "set_seed",
    "slanted_triangular",
    "split_model",
]
