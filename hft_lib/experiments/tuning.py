"""Each strategy at its own learning rate: chosen on validation, on seeds disjoint from the ones it is scored on.

The best peak rate depends on what trains (fewer trainable parameters usually want a larger step), so comparing
strategies at one shared rate compares rates. The protocol, as the careful references do it (BitFit's code, the
surgical fine-tuning sweep, PEFT benchmarks):

1. `hft sweep tune`: every strategy on a grid of peak rates centred on where its kind works (`GRIDS`), on the
   tuning seeds (`TUNE_SEEDS`), scored on the *whole validation split*; the test split is never read.
2. `select_rates` (the selection rule, in code): per strategy, the rate with the highest mean validation accuracy
   over the tuning seeds (ties: the smaller rate). A selection at the edge of its grid is flagged (`at_edge`): the
   grid should be widened before the rate is trusted.
3. `hft sweep confirm`: every strategy at its selected rate on fresh seeds (`CONFIRM_SEEDS`, plus `MORE_SEEDS` for
   the equivalence claims), scored on the whole test split. Its cells read the selection from the stored tuning
   runs, so a confirmation can only run once the tuning sweep is complete.
"""

from __future__ import annotations

import pandas as pd

from ..config import results_csv

LAYER_RATES = (5e-5, 1e-4, 3e-4, 1e-3)  # layer patterns, gradual, the paper's half, data-driven rules
SMALL_RATES = (1e-3, 3e-3, 1e-2, 3e-2)  # few trainable parameters: head only, biases only
LORA_RATES = (3e-5, 1e-4, 3e-4, 1e-3)  # the rate given; LoRA's adapters train at LORA_LR_FACTOR x it (`effective_lr`)
ROUNDS = 8  # LISA redraws and AutoFreeze measures this many times per run, so each can act several times
STRATEGIES = ("full", "lower_half", "upper_half", "alternate", "alternate_odd", "hft_paper", "head_only",
              "gradual_bottom_up", "gradual_top_down", "lora", "bitfit", "attention_only", "ffn_only", "lisa",
              "autofreeze", "auto_rgn", "auto_rgn_body")
GRIDS = {s: SMALL_RATES if s in ("head_only", "bitfit") else LORA_RATES if s == "lora" else LAYER_RATES for s in STRATEGIES}
# Widened after the first tuning sweep (commit 01fe84a) found these strategies best at its largest rate, 1e-3.
WIDER = {"attention_only": (3e-3, 1e-2), "auto_rgn": (3e-3, 1e-2, 3e-2), "auto_rgn_body": (3e-3, 1e-2)}
# Widened again after tune_wide (commit 800aed3) found auto_rgn_body best at its new top, 1e-2.
WIDER2 = {"auto_rgn_body": (3e-2,)}
# The tuning sweeps a selection pools (a widened grid joins the first one); every sweep at selected rates reads these.
TUNING = ("tune", "tune_wide", "tune_wide2")
# Widened after tune_pooling (commit 4f24552) found the mean-pooling head-only best at its top, 3e-2.
WIDER_POOLING = {"head_only": (1e-1,)}
POOLING_TUNING = ("tune_pooling", "tune_pooling_wide")
TUNE_SEEDS = (100, 101)
CONFIRM_SEEDS = (0, 1, 2, 3, 4)
MORE_SEEDS = (5, 6, 7, 8, 9)  # equivalence claims (C1, C6, P2) need more pairs to resolve a 2-point margin
MORE_FOR = ("full", "lower_half", "alternate", "hft_paper")
# A head that re-purposes [CLS] or one that reads the mean of the tokens (how minilm-l6 was trained): does the head or
# the strategy speak? Compared for the strategies that cannot retrain the body much, and full as the reference.
POOLING_STRATEGIES = ("head_only", "bitfit", "lora", "full")
SEQUENTIAL = ("full", "lower_half", "upper_half", "alternate", "hft_paper")  # forgetting v2 (LoRA renames the weights)
BUDGET2 = ("full", "lower_half", "alternate", "hft_paper", "gradual_top_down", "lora", "bitfit")  # a second budget
ORACLE_CONFIRM_SEEDS = tuple(range(10, 20))  # the oracle chose its best subset on seeds 0-2: confirm it on others


def base_variant(strategy: str) -> dict:
    """A strategy's variant in the tuning and confirmation sweeps (LISA and AutoFreeze act `ROUNDS` times per run)."""
    return {"strategy": strategy, **({"rounds": ROUNDS} if strategy in ("lisa", "autofreeze") else {})}


def tune_variants() -> tuple[dict, ...]:
    """Every strategy at every rate of its grid."""
    return tuple({**base_variant(s), "lr": lr} for s in STRATEGIES for lr in GRIDS[s])


def wider_variants(wider: dict[str, tuple[float, ...]] = WIDER) -> tuple[dict, ...]:
    """The rates added where a tuning sweep's best rate sat at the top of its grid (`WIDER`, then `WIDER2`)."""
    return tuple({**base_variant(s), "lr": lr} for s, rates in wider.items() for lr in rates)


def mean_pooling_variants() -> tuple[dict, ...]:
    """The strategies of the head comparison with a mean-pooling head (`pooling.py`), without their rate."""
    return tuple({"strategy": s, "pooling": "mean"} for s in POOLING_STRATEGIES)


def pooling_tune_variants(grids: dict[str, tuple[float, ...]] = GRIDS) -> tuple[dict, ...]:
    """The mean-pooling head's variants at every rate of their grids (the [CLS] ones are in `tune_variants`)."""
    return tuple({**v, "lr": lr} for v in mean_pooling_variants() if v["strategy"] in grids for lr in grids[v["strategy"]])


def check_grid(rates) -> tuple[float, ...]:
    """A rate grid for selection: at least 3 distinct positive rates, sorted."""
    rates = tuple(sorted(set(rates)))
    if len(rates) < 3 or not all(isinstance(r, (int, float)) and r > 0 for r in rates):
        raise ValueError(f"A rate grid needs at least 3 distinct positive rates (a best rate must have neighbours on both "
                         f"sides), not {list(rates)}; e.g. 1e-4,3e-4,1e-3.")
    return rates


def check_disjoint(tuning: tuple[int, ...], scoring: tuple[int, ...]) -> None:
    """Tuning seeds must not be the seeds a strategy is scored on (its rate would be chosen on its own test)."""
    shared = sorted(set(tuning) & set(scoring))
    if shared:
        raise ValueError(f"Tuning seeds and scoring seeds overlap ({', '.join(map(str, shared))}); choose the rate on "
                         "other seeds than the ones it is scored on.")


def select_rates(frame: pd.DataFrame, metric: str = "val_accuracy") -> pd.DataFrame:
    """The selection rule: per strategy (variant without its rate), the rate with the highest mean `metric` over the
    tuning seeds; ties go to the smaller rate. One row per strategy: the selected `lr`, its mean, the rate-response
    curve (`curve`: rate -> mean), `failed` runs at the selected rate, and `at_edge` (best rate at an end of the grid)."""
    rows = []
    frame = frame.assign(base=[label.split(", lr=")[0] for label in frame["variant"]])
    for base, runs in frame.groupby("base", sort=False):
        means = runs.groupby("lr")[metric].mean().sort_index()
        # Accuracies are counts over the same questions, so equal means can differ in the last bit: round before ties.
        best = max(means.index, key=lambda lr: (round(means[lr], 9), -lr))
        at = runs[runs["lr"] == best]
        rows.append({"variant": base, "strategy": runs["strategy"].iloc[0], "lr": float(best), "mean": float(means[best]),
                     "seeds": int(at["seed"].nunique()), "failed": int(at["failed"].astype(bool).sum()),
                     "at_edge": bool(best in (means.index.min(), means.index.max())),
                     "curve": {float(lr): float(v) for lr, v in means.items()},
                     "effective_lr": float(at["effective_lr"].iloc[0]) if "effective_lr" in at else float(best)})
    return pd.DataFrame(rows).set_index("variant")


class NoTuning(ValueError):
    """The tuning sweep a selection needs is not stored (or not complete) for this profile."""


def stored_tuning(profile: str, out=None, experiment: str = "tune", expected: int | None = None) -> pd.DataFrame:
    """A tuning sweep's rows, complete (`expected` runs: every strategy, rate and tuning seed), or a clear error saying
    what to run."""
    path = results_csv(experiment, profile, out)
    if not path.exists():
        raise NoTuning(f"No tuning runs at {path}; run `hft sweep {experiment} --profile {profile}` first (it chooses each "
                         "strategy's rate on validation).")
    frame = pd.read_csv(path)
    expected = expected if expected is not None else len(tune_variants()) * len(TUNE_SEEDS)
    if len(frame) < expected:
        raise NoTuning(f"The tuning sweep is not complete ({len(frame)} of {expected} runs in {path}); finish it with "
                         f"`hft sweep {experiment} --profile {profile}` before confirming.")
    return frame


def selected_rates(profile: str, out=None, experiments: dict[str, int] | None = None) -> dict[str, float]:
    """Variant label -> its selected peak rate, from stored tuning sweeps (experiment -> its number of runs; their rows
    pooled, so a widened grid joins the first one): what `hft sweep confirm` runs at."""
    experiments = experiments or {"tune": len(tune_variants()) * len(TUNE_SEEDS)}
    frame = pd.concat([stored_tuning(profile, out, name, expected) for name, expected in experiments.items()],
                      ignore_index=True)
    return {label: row["lr"] for label, row in select_rates(frame).iterrows()}


def user_grid(strategy: str) -> tuple[float, ...]:
    """The grid `hft compare --lr auto` tries for a strategy: its kind's grid (a layer subset: the layer patterns')."""
    return GRIDS.get(strategy, LAYER_RATES)


def choose_rates(strategies: list[str], model_name: str, task_name: str, profile, seeds: tuple[int, ...] = (1000,),
                 grid: tuple[float, ...] | None = None, echo=print) -> pd.DataFrame:
    """`hft compare --lr auto`: each strategy trained at every rate of its grid (or `grid`) on the tuning `seeds`,
    scored on the validation split only; returns `select_rates`' table (the rate each strategy will be compared at)."""
    from dataclasses import replace

    from .classification import run_classification
    from .protocols import FAILED_MARGIN

    rows = []
    for strategy in strategies:
        for lr in check_grid(grid or user_grid(strategy)):
            for seed in seeds:
                run = run_classification(strategy, model_name, task_name, replace(profile, lr=lr), seed=seed,
                                         progress=False, score_test=False)
                rows.append({"variant": f"{strategy}, lr={lr}", "strategy": strategy, "lr": lr, "seed": seed,
                             "val_accuracy": run["val_accuracy"], "effective_lr": run["lr"],
                             "failed": run["val_accuracy"] <= run["majority_baseline"] + FAILED_MARGIN})
                echo(f"  {strategy} at {lr:g}, tuning seed {seed}: validation accuracy {run['val_accuracy']:.3f}")
    return select_rates(pd.DataFrame(rows))


def rate_table(selection: pd.DataFrame) -> pd.DataFrame:
    """The rate-response table a person reads: one row per strategy, one column per rate, the selected rate named."""
    table = pd.DataFrame({v: row["curve"] for v, row in selection.iterrows()}).T.sort_index(axis=1)
    table.columns = [f"{c:g}" for c in table.columns]
    table["selected"] = [f"{lr:g}" + (" (grid edge: widen it)" if edge else "")
                         for lr, edge in zip(selection["lr"], selection["at_edge"])]
    return table


def picked_subset(experiment: str, profile: str, out=None, metric: str = "test_accuracy") -> str:
    """The layer subset (`freeze:...`) with the best mean `metric` in a stored sweep (the oracle: the selection set, whose
    seeds are disjoint from `ORACLE_CONFIRM_SEEDS`), or a clear error saying what to run."""
    path = results_csv(experiment, profile, out)
    if not path.exists():
        raise ValueError(f"No {experiment} runs at {path}; run `hft sweep {experiment} --profile {profile}` first.")
    frame = pd.read_csv(path)
    subsets = frame[frame["strategy"].str.startswith("freeze:")]
    return str(subsets.groupby("strategy")[metric].mean().idxmax())
