"""The `hft` console command: `hft fetch` installs the offline assets, `hft compare` runs the main job."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

DEFAULT_STRATEGIES = "full,lower_half,alternate"
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


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a bad value exits with status 2 and one sentence)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


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
    if args.kind == "causal_lm" or (args.kind is None and args.model in DECODERS):
        return compare_decoder(args, names)
    strategies = check_strategies(names)
    profile = get_profile(args.profile, **profile_overrides(args))
    if args.seeds:
        return compare_seeds(args, strategies, profile)
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
        return train_and_report(args, strategies, profile, out, dist, run_name, resume)
    except BaseException:
        if main_process and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a run that failed before writing anything leaves no empty folder behind
        raise


def profile_overrides(args: argparse.Namespace) -> dict:
    """--epochs, --lr, --batch-size, --train-size as Profile fields (only those given)."""
    if args.lr is not None and not 0 < args.lr < 1:
        raise ValueError(f"--lr must be a learning rate between 0 and 1 (e.g. 1e-4), not {args.lr}.")
    given = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "train_size": args.train_size}
    return {k: v for k, v in given.items() if v is not None}


def compare_seeds(args: argparse.Namespace, strategies: list[str], profile) -> int:
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
    experiment = Experiment("compare", f"{', '.join(strategies)} against {reference}", "classification",
                            tuple({"strategy": s} for s in strategies), seeds, settings)
    out = new_run_dir(Path(args.out), f"{args.model}-{Path(args.task).stem}".replace("/", "_"))
    print(f"profile {profile.name}: {len(strategies)} strategies x {len(seeds)} seeds; results -> {out}")
    frame = run_sweep(experiment, profile.name, out=out)
    table = stats.paired(frame, "test_accuracy", reference, by="strategy")
    table["verdict vs " + reference] = [stats.verdict(r.ci_low, r.ci_high, "equivalent", 0.02) if name != reference else ""
                                        for name, r in table.iterrows()]
    shown = table[["n", "mean", "sd", "diff", "ci_low", "ci_high", "mde", "verdict vs " + reference]]
    print(shown.to_string(float_format=lambda v: f"{v:+.3f}" if abs(v) < 1 else f"{v:.3f}"))
    print(f"test accuracy per strategy; diff = strategy - {reference}, paired over seeds, with its 95 % interval and the "
          f"minimum detectable effect; verdict: within 2 points of {reference} or not. Saved {out}")
    return 0


def train_and_report(args, strategies, profile, out, dist, run_name, resume) -> int:
    """Train every strategy (all processes), then save the table and plot (rank 0 only)."""
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
        rows.append(run_classification(strategy, args.model, args.task, profile, seed=args.seed, device=args.device,
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


def sweep(args: argparse.Namespace) -> int:
    """`hft sweep`: run (or continue) named experiments over paired seeds into the results store."""
    from ..config import get_profile
    from .sweep import EXPERIMENTS, get_experiment, parse_seeds, run_sweep

    if args.list or not args.experiments:
        for e in EXPERIMENTS.values():
            print(f"{e.name:<11} {len(e.variants)} variants x {len(e.seeds)} seeds  {e.question}")
        return 0 if args.list else 2
    names = [get_experiment(n).name for n in args.experiments]  # every name checked before anything runs
    seeds = parse_seeds(args.seeds) if args.seeds else None
    part = parse_part(args.part) if args.part else (0, 1)
    profile = get_profile(args.profile).name  # --profile, else $HFT_PROFILE, else full on CUDA and quick elsewhere
    if args.jobs > 1:
        return run_jobs(args, names, profile)
    for name in names:
        run_sweep(name, profile, seeds, args.out, part)
    return 0


def parse_part(text: str) -> tuple[int, int]:
    """'2/3' -> (1, 3): this process runs the second of three shares of the seeds."""
    try:
        index, parts = (int(v) for v in text.split("/"))
    except ValueError:
        index, parts = 0, 0
    if not 1 <= index <= parts:
        raise ValueError(f"--part takes I/N with 1 <= I <= N (e.g. 1/2), not {text!r}.")
    return index - 1, parts


def run_jobs(args: argparse.Namespace, names: list[str], profile: str) -> int:
    """Start `--jobs N` processes, each with its share of the seeds and cores/N threads; wait for all."""
    import subprocess

    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    base = [sys.executable, "-m", "hft_lib.experiments.cli", "sweep", *names, "--profile", profile]
    base += ["--out", args.out] if args.out else []
    base += ["--seeds", args.seeds] if args.seeds else []
    procs = [subprocess.Popen([*base, "--part", f"{i}/{args.jobs}"], env=env) for i in range(1, args.jobs + 1)]
    codes = [p.wait() for p in procs]
    return max(codes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hft", description="Selective layer freezing, measured.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download, verify and unpack the embedded models and datasets (once)")
    p_fetch.add_argument("--force", action="store_true", help="reinstall even if the files look fine")
    sub.add_parser("strategies", help="list the strategies --strategies accepts, one line each")
    p_cmp = sub.add_parser("compare", help="fine-tune with several freezing strategies and compare them")
    p_cmp.add_argument("--model", default="minilm-l6", help="embedded name, hub id or local folder (default minilm-l6)")
    p_cmp.add_argument("--task", default="trec6", help="task name, or a .csv / .jsonl file with text and label columns (default trec6)")
    p_cmp.add_argument("--strategies", default=DEFAULT_STRATEGIES, help=f"comma-separated (default {DEFAULT_STRATEGIES})")
    p_cmp.add_argument("--profile", default=None, help="quick or full (default: $HFT_PROFILE, else full on CUDA, else quick)")
    p_cmp.add_argument("--epochs", type=positive_int, default=None, help="override the profile's epochs")
    p_cmp.add_argument("--seed", type=int, default=0)
    p_cmp.add_argument("--seeds", default=None, help="e.g. 0-4: every strategy on every seed, compared pairwise with CIs")
    p_cmp.add_argument("--lr", type=float, default=None, help="override the profile's peak learning rate")
    p_cmp.add_argument("--batch-size", type=positive_int, default=None, help="override the profile's batch size")
    p_cmp.add_argument("--train-size", type=positive_int, default=None, help="override the profile's training examples")
    p_cmp.add_argument("--kind", choices=["classification", "causal_lm"], default=None,
                       help=f"classification (encoder) or causal_lm (decoder); default: causal_lm for {', '.join(DECODERS)}")
    p_cmp.add_argument("--steps", type=positive_int, default=None, help="decoder runs: override the profile's lm_steps")
    p_cmp.add_argument("--out", default="results", help="results folder; each run gets a new subfolder")
    p_cmp.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None, help="default: cuda, then mps, then cpu")
    p_cmp.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="STEPS",
                       help="save a checkpoint every STEPS optimiser steps under RUN/checkpoints/STRATEGY (default: none)")
    p_cmp.add_argument("--resume", default=None, metavar="RUN",
                       help="continue the strategies checkpointed in an earlier run folder (results go to a new folder)")
    p_sweep = sub.add_parser("sweep", help="run named experiments over paired seeds into data/results (resumable)")
    p_sweep.add_argument("experiments", nargs="*", help="experiment names (see --list)")
    p_sweep.add_argument("--list", action="store_true", help="describe the experiments and exit")
    p_sweep.add_argument("--seeds", default=None, help="e.g. 0-4 or 0,2,7 (default: the experiment's own)")
    p_sweep.add_argument("--profile", default=None, help="quick or full (default: $HFT_PROFILE, else full on CUDA, else quick)")
    p_sweep.add_argument("--out", default=None, help="results folder (default: $HFT_RESULTS, else the checkout's data/results)")
    p_sweep.add_argument("--jobs", type=positive_int, default=1, help="processes side by side, each with cores/N threads")
    p_sweep.add_argument("--part", default=None, metavar="I/N", help="run only the I-th of N shares of the seeds")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            from ..assets import fetch

            print(f"assets ready in {fetch(force=args.force)}")
            return 0
        if args.command == "strategies":
            from ..strategies import describe_strategies

            print(describe_strategies())
            return 0
        if args.command == "sweep":
            return sweep(args)
        return compare(args)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
