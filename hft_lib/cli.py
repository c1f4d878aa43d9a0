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


def plot_comparison(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar(frame["strategy"], frame["test_accuracy"], color="tab:blue")
    ax1.axhline(frame["majority_baseline"].iloc[0], color="grey", ls="--", label="majority class")
    ax1.set_ylabel("test accuracy")
    ax1.set_ylim(0, 1)
    ax1.legend()
    ax2.bar(frame["strategy"], frame["epoch_time_s"], color="tab:orange")
    ax2.set_ylabel("seconds per epoch")
    best = frame.loc[frame["test_accuracy"].idxmax(), "strategy"]
    fastest = frame.loc[frame["epoch_time_s"].idxmin(), "strategy"]
    fig.suptitle(f"{frame['model'].iloc[0]} on {frame['task'].iloc[0]}: most accurate {best}, fastest {fastest}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(args: argparse.Namespace) -> int:
    from .config import get_profile
    from .experiments import check_strategies, run_classification

    strategies = check_strategies([s.strip() for s in args.strategies.split(",") if s.strip()])
    profile = get_profile(args.profile, **({"epochs": args.epochs} if args.epochs else {}))
    out = new_run_dir(Path(args.out), f"{args.model}-{args.task}".replace("/", "_"))
    print(f"profile {profile.name}: {profile.train_size or 'all'} training examples, {profile.epochs} epochs; results -> {out}")
    rows = [run_classification(s, args.model, args.task, profile, seed=args.seed) for s in strategies]
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "results.csv", index=False)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    plot_comparison(frame, out / "comparison.png")
    shown = frame[["strategy", "test_accuracy", "trainable_pct", "epoch_time_s", "step_time_s"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"majority-class baseline {frame['majority_baseline'].iloc[0]:.3f}; saved {out}/results.csv, results.json, comparison.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hft", description="Selective layer freezing, measured.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="download, verify and unpack the embedded models and datasets (once)")
    p_fetch.add_argument("--force", action="store_true", help="reinstall even if the files look fine")
    p_cmp = sub.add_parser("compare", help="fine-tune with several freezing strategies and compare them")
    p_cmp.add_argument("--model", default="minilm-l6", help="embedded name, hub id or local folder (default minilm-l6)")
    p_cmp.add_argument("--task", default="trec6", help="task name (default trec6)")
    p_cmp.add_argument("--strategies", default=DEFAULT_STRATEGIES, help=f"comma-separated (default {DEFAULT_STRATEGIES})")
    p_cmp.add_argument("--profile", default=None, help="quick or full (default: full on CUDA, else quick)")
    p_cmp.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    p_cmp.add_argument("--seed", type=int, default=0)
    p_cmp.add_argument("--out", default="results", help="results folder; each run gets a new subfolder")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            from .assets import fetch

            print(f"assets ready in {fetch(force=args.force)}")
            return 0
        return compare(args)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
