"""The catalogue of experiments behind the evidence: each a grid of protocol x variants x seeds with its settings
(`Experiment`), every cell's stable id, and the table `hft sweep` runs (`EXPERIMENTS`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from ..strategies import subset_name
from . import tuning
from .tuning import selected_rates

PICKED = "picked"  # a variant's strategy that stands for the best layer subset of a stored sweep (`pick_from`)


@dataclass(frozen=True)
class Experiment:
    """A grid: protocol x variants x seeds, with settings shared by every cell (per profile where they differ)."""

    name: str
    question: str  # the claim it tests, in one line
    protocol: str
    variants: tuple[dict, ...]  # each: {"strategy": ..., plus what else differs}
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    settings: dict = field(default_factory=dict)  # for every profile
    profiles: dict = field(default_factory=dict)  # profile name -> settings that differ there
    rates_from: str | tuple[str, ...] | None = None  # each variant's peak rate: the one its tuning sweep(s) selected
    pick_from: str | None = None  # the variant {"strategy": PICKED} is the best layer subset of this stored sweep
    more_seeds: tuple[int, ...] = ()  # extra seeds for the variants in `more_for` (equivalence claims need more pairs)
    more_for: tuple[str, ...] = ()

    def resolved(self, profile: str, rates_profile: str | None = None) -> dict:
        """Shared settings for one profile (with `rates_from`: the selected rate of every variant, from the stored tuning
        of `rates_profile`, by default the same profile)."""
        if profile not in ("quick", "full"):
            raise ValueError(f"Unknown profile {profile!r}; use quick or full.")
        shared = {"protocol": self.protocol, "profile": profile, **self.settings, **self.profiles.get(profile, {})}
        if self.rates_from:
            names = (self.rates_from,) if isinstance(self.rates_from, str) else self.rates_from
            shared["rates"] = selected_rates(rates_profile or profile, experiments={
                name: len(EXPERIMENTS[name].variants) * len(EXPERIMENTS[name].seeds) for name in names})
        if self.pick_from:
            shared["picked"] = tuning.picked_subset(self.pick_from, profile)
        return shared

    def cells(self, profile: str, seeds: tuple[int, ...] | None = None, rates_profile: str | None = None) -> list[dict]:
        """Every run of the sweep, seed-major (so what a seed shares is computed once), each with its `cell` id."""
        shared = self.resolved(profile, rates_profile)
        rates = shared.pop("rates", None)
        picked = shared.get("picked")
        out = []
        for seed in seeds if seeds is not None else (*self.seeds, *self.more_seeds):
            for variant in self.variants:
                variant = {**variant, "strategy": picked} if variant["strategy"] == PICKED else variant
                label = variant_label(variant)
                if seed in self.more_seeds and seed not in self.seeds and variant["strategy"] not in self.more_for:
                    continue
                cell = {"experiment": self.name, "variant": label, **shared, **variant, "seed": seed}
                if rates is not None:
                    cell["lr"] = rates[label]
                out.append({**cell, "cell": cell_id(cell)})
        return out


def variant_label(variant: dict) -> str:
    """'lower_half' or 'lower_half, embeddings=trainable': the strategy plus what else the variant sets."""
    extra = [f"{k}={v}" for k, v in variant.items() if k != "strategy"]
    return ", ".join([variant["strategy"], *extra])


def cell_id(cell: dict) -> str:
    """A stable short hash of a cell's settings (its identity in the results file)."""
    text = json.dumps({k: v for k, v in cell.items() if k != "cell"}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


ENCODER_SETTINGS = {"model": "minilm-l6", "task": "trec6", "val_size": 100, "test_size": 300}
SUBSETS = tuple(subset_name(i for i in range(6) if mask >> i & 1) for mask in range(64))  # every subset of 6 layers
RULES = ("full", "hft_paper", "lora", "lisa", "bitfit", "attention_only", "ffn_only", "autofreeze", "auto_rgn")  # not subsets
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("strategies", "C1, C2, C6, HFT paper (encoder): accuracy and retention per pattern, with mirror controls",
               "classification", tuple({"strategy": s} for s in (
                   "full", "lower_half", "upper_half", "alternate", "alternate_odd", "hft_paper", "head_only")),
               settings={**ENCODER_SETTINGS, "probe_tasks": ("movie_sentiment", "tweet_sentiment"), "probe_size": 200},
               profiles={"full": {"test_size": 1000, "probe_size": 1000}}),
    Experiment("gradual", "C3, C5: gradual vs all at once, bottom-up vs top-down, at two learning rates",
               "classification", tuple({"strategy": s, "lr": lr} for lr in (1e-4, 3e-4)
                                       for s in ("full", "gradual_bottom_up", "gradual_top_down")),
               settings=ENCODER_SETTINGS, profiles={"full": {"test_size": 1000}}),
    Experiment("small_data", "C4: does freezing regularise where full fine-tuning overfits (100 examples, 12 epochs)?",
               "classification", tuple({"strategy": s} for s in ("full", "lower_half", "head_only")),
               settings={**ENCODER_SETTINGS, "train_size": 100, "epochs": 12, "measure_train": True},
               profiles={"full": {"test_size": 1000}}),
    Experiment("sequential", "Forgetting (encoder): movie_sentiment accuracy lost after fine-tuning on TREC-6",
               "sequential", tuple({"strategy": s} for s in (
                   "full", "lower_half", "upper_half", "hft_paper")),
               settings={**ENCODER_SETTINGS, "task_a": "movie_sentiment", "train_size_a": 500, "epochs_a": 2},
               profiles={"full": {"test_size": 1000, "train_size_a": 2000}}),
    Experiment("sequential2", "Forgetting (encoder, v2): task A learned well, A's whole head put back, strategies at their "
               "selected rates", "sequential", tuple({"strategy": s} for s in tuning.SEQUENTIAL),
               settings={**ENCODER_SETTINGS, "test_size": None, "task_a": "movie_sentiment", "train_size_a": 1000,
                         "epochs_a": 3, "lr_a": 3e-4, "test_size_a": None, "restore": "head"},
               profiles={"full": {"train_size_a": None, "lr_a": 5e-5}}, rates_from=tuning.TUNING),
    Experiment("small_data2", "C4 v2: on 100 questions over 20 epochs, does full fine-tuning's validation curve peak and "
               "fall, and does freezing help at the best epoch or the last?", "classification",
               tuple({"strategy": s} for s in ("full", "lower_half", "head_only")),
               settings={**ENCODER_SETTINGS, "train_size": 100, "epochs": 20, "val_size": 150, "test_size": None,
                         "keep_best": True, "measure_train": True}, rates_from=tuning.TUNING),
    Experiment("layers", "Notebook 01 over seeds: which layers fine-tuning changes (CKA, weight change) and which serve "
               "held-out tasks (probes), with intervals", "layers", ({"strategy": "full"},), seeds=(0, 1, 2, 3, 4),
               settings={"model": "minilm-l6", "task": "trec6", "probe_tasks": ("trec6", "sms_spam", "movie_sentiment"),
                         "probe_size": 300},
               profiles={"full": {"probe_size": 1000}}),
    Experiment("decoder2", "Decoder v2: 64 steps with budgets along the way, 300 task questions, 48 news passages, LoRA in",
               "lm_curve", ({"strategy": "full"}, {"strategy": "full", "embeddings": "frozen"}, {"strategy": "lower_half"},
                            {"strategy": "lower_half", "embeddings": "trainable"}, {"strategy": "hft_paper"},
                            {"strategy": "lora"}),
               seeds=(0, 1, 2), settings={"model": "smollm2-135m", "task": "trec6", "lm_steps": 64,
                                          "budgets": (8, 16, 32, 64), "test_size": 300, "news_size": 48},
               profiles={"full": {"lm_steps": 300, "budgets": (50, 100, 200, 300), "test_size": 1000, "news_size": 300}}),
    Experiment("decoder", "HFT paper and forgetting (decoder): learning-forgetting curves, tied head trainable vs frozen",
               "lm_curve", ({"strategy": "full"}, {"strategy": "full", "embeddings": "frozen"},
                            {"strategy": "lower_half"}, {"strategy": "lower_half", "embeddings": "trainable"},
                            {"strategy": "hft_paper"}),
               seeds=(0, 1, 2), settings={"model": "smollm2-135m", "task": "trec6", "lm_steps": 16, "budgets": (8, 16)},
               profiles={"full": {"lm_steps": 300, "budgets": (50, 100, 200, 300)}}),
    Experiment("tune", "Each strategy's peak rate, chosen on the whole validation split on tuning seeds (never the test split)",
               "classification", tuning.tune_variants(), seeds=tuning.TUNE_SEEDS,
               settings={**ENCODER_SETTINGS, "val_size": None, "test_size": None, "score": "validation"}),
    Experiment("tune_wide", "The grids widened where tune's best rate sat at its top (attention only, Auto-RGN)",
               "classification", tuning.wider_variants(), seeds=tuning.TUNE_SEEDS,
               settings={**ENCODER_SETTINGS, "val_size": None, "test_size": None, "score": "validation"}),
    Experiment("tune_wide2", "Auto-RGN on the body widened once more (tune_wide's best rate, 1e-2, was its top)",
               "classification", tuning.wider_variants(tuning.WIDER2), seeds=tuning.TUNE_SEEDS,
               settings={**ENCODER_SETTINGS, "val_size": None, "test_size": None, "score": "validation"}),
    Experiment("tune_pooling", "The mean-pooling head's rate for head only, BitFit, LoRA and full, chosen as in tune",
               "classification", tuning.pooling_tune_variants(), seeds=tuning.TUNE_SEEDS,
               settings={**ENCODER_SETTINGS, "val_size": None, "test_size": None, "score": "validation"}),
    Experiment("tune_pooling_wide", "The mean-pooling head-only widened (tune_pooling's best rate, 3e-2, was its top)",
               "classification", tuning.pooling_tune_variants(tuning.WIDER_POOLING), seeds=tuning.TUNE_SEEDS,
               settings={**ENCODER_SETTINGS, "val_size": None, "test_size": None, "score": "validation"}),
    Experiment("confirm", "Every strategy at its own selected rate, on fresh seeds, scored on the whole test split "
               "(and four of them with a mean-pooling head: the head or the strategy?)", "classification",
               (*(tuning.base_variant(s) for s in tuning.STRATEGIES), *tuning.mean_pooling_variants()),
               seeds=tuning.CONFIRM_SEEDS,
               settings={**ENCODER_SETTINGS, "test_size": None, "probe_tasks": ("movie_sentiment", "tweet_sentiment"),
                         "probe_size": 200},
               profiles={"full": {"probe_size": 1000}}, rates_from=(*tuning.TUNING, *tuning.POOLING_TUNING), more_seeds=tuning.MORE_SEEDS,
               more_for=tuning.MORE_FOR),
    Experiment("budget2", "The main strategies at their selected rates with three times the data (1,500 questions)",
               "classification", tuple(tuning.base_variant(s) for s in tuning.BUDGET2), seeds=tuning.CONFIRM_SEEDS,
               settings={**ENCODER_SETTINGS, "train_size": 1500, "test_size": None}, rates_from=tuning.TUNING),
    Experiment("oracle_confirm", "The oracle's best subset, full and lower half on fresh seeds (no winner's curse)",
               "classification", ({"strategy": PICKED}, {"strategy": "full"}, {"strategy": "lower_half"}),
               seeds=tuning.ORACLE_CONFIRM_SEEDS,
               settings={**ENCODER_SETTINGS, "val_size": 50, "train_size": 320, "epochs": 2, "lr": 3e-4, "test_size": None},
               profiles={"full": {"val_size": 100, "train_size": None, "epochs": 3, "lr": 5e-5}}, pick_from="oracle"),
    Experiment("oracle", "Which layers to freeze: all 64 subsets of MiniLM's layers (embeddings frozen), and nine rules against them",
               "classification", tuple({"strategy": s} for s in (*SUBSETS, *RULES)), seeds=(0, 1, 2),
               settings={**ENCODER_SETTINGS, "val_size": 50, "train_size": 320, "epochs": 2, "lr": 3e-4,  # 219 runs in <= 90 min on 2 cores
                         "probe_tasks": ("movie_sentiment", "tweet_sentiment"), "probe_size": 100},
               profiles={"full": {"val_size": 100, "train_size": None, "epochs": 3, "lr": 5e-5, "test_size": 1000,
                                  "probe_size": 1000}}),
)}


# Sweeps being made across sessions (each resumes where the last stopped): their stored rows may be incomplete, and no
# claim reads them until they are done (tests/test_evidence.py holds both).
UNDER_WAY: tuple[str, ...] = ()


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"Unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)} (`hft sweep --list` describes them).")
    return EXPERIMENTS[name]
