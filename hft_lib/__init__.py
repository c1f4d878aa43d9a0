"""hft_lib: selective layer freezing, gradual unfreezing and measured fine-tuning of pretrained transformers."""

from .assets import AssetError, fetch
from .caching import FrozenPrefixCache
from .callbacks import BudgetRecorder, Callback, LambdaCallback, Run
from .checkpoint import CheckpointError, Checkpointing, latest_checkpoint
from .config import Profile, get_device, get_profile, set_seed
from .data import label_names, load_task, majority_baseline, make_loader
from .experiments import run_classification
from .freezing import Finetuner, frozen_layer_indices
from .hf_trainer import FreezingCallback
from .hft_paper import HalfParameterRedraw, apply_hft_paper
from .layers import find_layer_stack, split_model
from .lm import compare_lm, prepare_lm, run_lm
from .lora import apply_lora
from .memory import enable_gradient_checkpointing
from .models import load_model
from .optim import build_optimizer, linear_warmup_decay, slanted_triangular
from .strategies import DECODER_STRATEGIES, STRATEGIES, get_strategy
from .training import FitConfig, History, TrainingDiverged, evaluate, fit
from .unfreezing import GradualUnfreezer, GradualUnfreezing, UnfreezeSchedule

__version__ = "0.1.0"
__all__ = [
    "DECODER_STRATEGIES",
    "STRATEGIES",
    "BudgetRecorder",
    "Callback",
    "Checkpointing",
    "FitConfig",
    "GradualUnfreezing",
    "LambdaCallback",
    "Run",
    "get_strategy",
    "AssetError",
    "CheckpointError",
    "Finetuner",
    "FreezingCallback",
    "FrozenPrefixCache",
    "GradualUnfreezer",
    "HalfParameterRedraw",
    "History",
    "Profile",
    "TrainingDiverged",
    "UnfreezeSchedule",
    "apply_hft_paper",
    "apply_lora",
    "build_optimizer",
    "compare_lm",
    "enable_gradient_checkpointing",
    "evaluate",
    "fetch",
    "find_layer_stack",
    "fit",
    "frozen_layer_indices",
    "get_device",
    "get_profile",
    "label_names",
    "latest_checkpoint",
    "linear_warmup_decay",
    "load_model",
    "load_task",
    "majority_baseline",
    "make_loader",
    "prepare_lm",
    "run_classification",
    "run_lm",
    "set_seed",
    "slanted_triangular",
    "split_model",
]
