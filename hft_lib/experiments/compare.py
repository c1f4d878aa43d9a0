"""`hft compare`: several strategies fine-tuned on one model and task, side by side (one seed, or paired over
`--seeds`; `--lr auto` chooses each strategy's rate on the validation split first), and its results folder."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

DECODERS = ("smollm2-135m",)  # compared as causal LMs (task as a prompt, forgetting as news perplexity)


def new_run_dir(root: Path, name: str) -> Path:
    """A fresh folder under `root` for one run; never reuses (and so never overwrites) an existing one."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"error: cannot create the results folder {root} ({err.strerror}); pass a writable --out folder.")
    if not os.access(root, os.W_OK):
        raise SystemExit(f"error: the results folder {root} is not writable; pass a writable --out folder.")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = root / (f"{stamp}-{name}" + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise SystemExit(f"error: too many runs named {stamp}-{name} in {root}; wait a second and try again.")


def resume_sources(path: str, strategies: list[str], run_name: str) -> dict[str, Path]:
    """Checkpoint folder per strategy in an earlier run folder (or one checkpoint folder for one strategy)."""
    from ..checkpoint import latest_checkpoint
    from ..strategies import folder_name

    root = Path(path)
    if not root.exists():
        raise ValueError(f"--resume {path} does not exist; pass the run folder of an earlier `hft compare --checkpoint-every N`.")
    folders = {s: root / "checkpoints" / folder_name(s) for s in strategies}
    found = {s: f for s, f in folders.items() if latest_checkpoint(f, missing_ok=True)}
    if not found and len(strategies) == 1 and latest_checkpoint(root, missing_ok=True):
        found = {strategies[0]: root}
    if not found:
        raise ValueError(f"No checkpoints of {', '.join(strategies)} in {path}; pass a run folder written with --checkpoint-every N.")
    for folder in found.values():  # the wrong model or task: refuse before anything is written
        saved = json.loads((latest_checkpoint(folder) / "meta.json").read_text())["identity"].get("name")
        if saved != run_name:
            raise ValueError(f"Checkpoint in {folder} was saved from {saved!r}, not {run_name!r}; "
                             "resume with the --model and --task it was saved from.")
    return found


def check_names(model: str, task: str) -> None:
    """Unknown model or task names fail before a results folder is made (offline, a hub id cannot exist)."""
    from ..data import EMBEDDED_TASKS, HUB_TASKS, is_task_file, load_task
    from ..models import EMBEDDED_MODELS

    if is_task_file(task):
        load_task(task)  # a missing or malformed file: one sentence, before a results folder is made
    elif task not in EMBEDDED_TASKS and task not in HUB_TASKS:
        raise ValueError(f"Unknown task {task!r}; use one of {', '.join([*EMBEDDED_TASKS, *HUB_TASKS])}, "
                         "or a .csv / .jsonl file with text and label columns.")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if model not in EMBEDDED_MODELS and not Path(model).exists() and offline:
        raise ValueError(f"Unknown model {model!r}: not an embedded model ({', '.join(EMBEDDED_MODELS)}) nor a local folder, "
                         "and the hub is off (HF_HUB_OFFLINE=1); check the name.")


def compare(args: argparse.Namespace) -> int:
    from ..config import get_device, get_profile
    from ..runtime.distributed import current as distributed_context
    from ..strategies import check_strategies, split_strategies

    names = split_strategies(args.strategies)
    if args.lr_grid and args.lr != "auto":
        raise ValueError("--lr-grid is the grid --lr auto tries; pass --lr auto with it, or leave --lr-grid out.")
    if args.kind == "causal_lm" or (args.kind is None and args.model in DECODERS):
        if args.lr == "auto":
            raise ValueError("--lr auto chooses rates for encoder comparisons; give the decoder one rate, e.g. --lr 1e-4.")
        return compare_decoder(args, names)
    strategies = check_strategies(names)
    profile = get_profile(args.profile, **profile_overrides(args))
    rates = auto_rates(args, strategies, profile) if args.lr == "auto" else {}
    if args.seeds:
        return compare_seeds(args, strategies, profile, rates)
    if args.device:
        get_device(args.device)  # e.g. CUDA asked on a machine without it: one sentence, before anything is written
    check_names(args.model, args.task)
    run_name = f"{args.model} on {args.task}"
    resume = resume_sources(args.resume, strategies, run_name) if args.resume else {}
    dist = distributed_context()  # under `accelerate launch --num_processes N`: rank 0 writes, all train
    main_process = dist is None or dist.is_main
    out = new_run_dir(Path(args.out), f"{args.model}-{Path(args.task).stem}".replace("/", "_")) if main_process else None
    out = dist.broadcast(out) if dist else out
    if main_process:
        print(f"profile {profile.name}: {profile.train_size or 'all'} training examples, {profile.epochs} epochs; results -> {out}"
              + (f"; {dist.world} processes" if dist else ""))
    try:
        return train_and_report(args, strategies, profile, out, dist, run_name, resume, rates)
    except BaseException:
        if main_process and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a run that failed before writing anything leaves no empty folder behind
        raise


def profile_overrides(args: argparse.Namespace) -> dict:
    """--epochs, --lr, --batch-size, --train-size as Profile fields (only those given; --lr auto chooses per strategy)."""
    lr = None if args.lr in (None, "auto") else args.lr
    if lr is not None and not (isinstance(lr, float) and 0 < lr < 1):
        raise ValueError(f"--lr must be a learning rate between 0 and 1 (e.g. 1e-4) or auto, not {args.lr}.")
    given = {"epochs": args.epochs, "lr": lr, "batch_size": args.batch_size, "train_size": args.train_size}
    return {k: v for k, v in given.items() if v is not None}


def learning_rate(text: str) -> float | str:
    """argparse type for --lr: a number, or auto (each strategy's rate chosen on the validation split)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a learning rate such as 1e-4, or auto, not {text!r}") from None


def auto_rates(args: argparse.Namespace, strategies: list[str], profile) -> dict[str, float]:
    """--lr auto: each strategy's rate chosen on the validation split on tuning seeds disjoint from the scored ones."""
    from .sweep import parse_seeds
    from .tuning import check_disjoint, check_grid, choose_rates, rate_table, user_grid

    grid = check_grid(float(v) for v in args.lr_grid.split(",")) if args.lr_grid else None
    scored = parse_seeds(args.seeds) if args.seeds else (args.seed,)
    tuning_seeds = (1000 + max(scored),)
    check_disjoint(tuning_seeds, scored)
    check_names(args.model, args.task)
    runs = sum(len(grid or user_grid(s)) for s in strategies)
    print(f"--lr auto: {runs} tuning runs ({len(strategies)} strategies, each on its rate grid) on tuning seed "
          f"{tuning_seeds[0]}, scored on the validation split (the test split is not read):")
    selection = choose_rates(strategies, args.model, args.task, profile, tuning_seeds, grid)
    print(rate_table(selection).to_string(float_format=lambda v: f"{v:.3f}"))
    print("validation accuracy per rate; each strategy is compared at its selected rate.")
    return {row["strategy"]: row["lr"] for _, row in selection.iterrows()}


def compare_seeds(args: argparse.Namespace, strategies: list[str], profile, rates: dict[str, float]) -> int:
    """`hft compare --seeds 0-4`: every strategy on every seed (a sweep into the run folder), then paired intervals."""
    from ..measure import stats
    from .sweep import Experiment, parse_seeds, run_sweep

    seeds = parse_seeds(args.seeds)
    if args.checkpoint_every or args.resume or args.device:
        raise ValueError("--seeds runs a small sweep; leave out --checkpoint-every, --resume and --device with it.")
    check_names(args.model, args.task)
    reference = "full" if "full" in strategies else strategies[0]
    settings = {"model": args.model, "task": args.task, "val_size": profile.eval_size, "test_size": profile.eval_size,
                **profile_overrides(args)}
    variants = tuple({"strategy": s, **({"lr": rates[s]} if s in rates else {})} for s in strategies)
    experiment = Experiment("compare", f"{', '.join(strategies)} against {reference}", "classification", variants, seeds,
                            settings)
    out = new_run_dir(Path(args.out), f"{args.model}-{Path(args.task).stem}".replace("/", "_"))
    print(f"profile {profile.name}: {len(strategies)} strategies x {len(seeds)} seeds; results -> {out}")
    frame = run_sweep(experiment, profile.name, out=out)
    table = stats.paired(frame.drop(columns=["lr"], errors="ignore"), "test_accuracy", reference, by="strategy")
    table["verdict vs " + reference] = [stats.verdict(r.ci_low, r.ci_high, "equivalent", 0.02) if name != reference else ""
                                        for name, r in table.iterrows()]
    shown = table[["n", "mean", "sd_diff", "diff", "ci_low", "ci_high", "mde", "verdict vs " + reference]]
    print(shown.to_string(float_format=lambda v: f"{v:+.3f}" if abs(v) < 1 else f"{v:.3f}"))
    print(f"test accuracy per strategy; diff = strategy - {reference}, paired over seeds, with its 95 % interval and the "
          f"minimum detectable effect; verdict: within 2 points of {reference} or not. Saved {out}")
    return 0


def train_and_report(args, strategies, profile, out, dist, run_name, resume, rates: dict[str, float]) -> int:
    """Train every strategy (all processes), then save the table and plot (rank 0 only)."""
    from dataclasses import replace

    from ..checkpoint import Checkpointing
    from ..strategies import folder_name
    from .classification import run_classification

    main_process = dist is None or dist.is_main
    rows = []
    for strategy in strategies:
        saving = out / "checkpoints" / folder_name(strategy) if args.checkpoint_every else None
        checkpoints = Checkpointing(saving, args.checkpoint_every, resume.get(strategy), model_name=run_name)
        if strategy in resume and main_process:
            print(f"{strategy}: resuming from {resume[strategy]}")
        own = replace(profile, lr=rates[strategy]) if strategy in rates else profile
        rows.append(run_classification(strategy, args.model, args.task, own, seed=args.seed, device=args.device,
                                       callbacks=[checkpoints]))
    if not main_process:
        return 0
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "results.csv", index=False)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    from ..viz.comparison import plot_comparison

    plot_comparison(frame, out / "comparison.png")
    shown = frame[["strategy", "test_accuracy", "trainable_pct", "epoch_time_s", "step_time_s"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"majority-class baseline {frame['majority_baseline'].iloc[0]:.3f}; saved {out}/results.csv, results.json, comparison.png")
    return 0


def compare_decoder(args: argparse.Namespace, strategies: list[str]) -> int:
    """`hft compare` for a decoder LLM: the task as a prompt, forgetting as news perplexity change (see experiments/decoder.py)."""
    from ..config import get_device, get_profile
    from ..strategies import check_strategies
    from ..viz.tradeoff import save_decoder_comparison
    from .decoder import prepare_lm, run_lm

    check_strategies(strategies, decoder=True)
    if args.checkpoint_every or args.resume:
        raise ValueError("--checkpoint-every and --resume are for encoder runs; leave them out for a decoder.")
    device = get_device(args.device)  # an unusable --device fails here, before anything loads
    check_names(args.model, args.task)
    profile = get_profile(args.profile, **({"lm_steps": args.steps} if args.steps else {}))
    out = new_run_dir(Path(args.out), f"{args.model}-{Path(args.task).stem}".replace("/", "_"))
    print(f"profile {profile.name}: {profile.lm_steps} steps per strategy; results -> {out}")
    setup = prepare_lm(args.model, args.task, profile, seed=args.seed, device=device)
    rows = [run_lm(s, setup=setup, seed=args.seed) for s in strategies]
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "budgets"} for r in rows])
    frame.to_csv(out / "results.csv", index=False)
    (out / "results.json").write_text(json.dumps(frame.to_dict("records"), indent=1))
    save_decoder_comparison(frame, out / "comparison.png")
    shown = frame[["strategy", "task_accuracy", "task_loss", "news_ppl", "forgetting_pct", "trainable_pct", "step_time_s"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"before training: task accuracy {frame['task_accuracy_before'].iloc[0]:.3f}, news perplexity "
          f"{frame['news_ppl_before'].iloc[0]:.2f}; saved {out}/results.csv, results.json, comparison.png")
    return 0
