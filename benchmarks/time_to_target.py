"""Time to target: how long each strategy trains until validation accuracy first reaches a target, next to its step time.

    HF_HUB_OFFLINE=1 python benchmarks/time_to_target.py                 # ~20 min of CPU time on one core
    HF_HUB_OFFLINE=1 python benchmarks/time_to_target.py --seeds 0,1,2   # more seeds, more trust
    HF_HUB_OFFLINE=1 python benchmarks/time_to_target.py --lr selected --rounds 8 --seeds 0,1,2
                                          # each strategy at the rate its validation runs chose (`hft sweep tune`)
    python benchmarks/time_to_target.py --quick                          # smoke test: two strategies, a few steps

A cheap step is not a fast model if it needs more of them: what a user waiting for a model feels is the
time until the model is good enough. Every strategy fine-tunes MiniLM on TREC-6 through `hft_lib.fit` with
the same data, seed, rate and schedule (spanning `--max-steps`); every `--every` steps a callback scores the
validation set. Time to target = the summed time of the optimiser steps up to the first check at or above
each of `--targets` (evaluation time is not counted: it is the same for every strategy). A run that never gets
there is reported as "not reached". `--json` keeps every run's curve (accuracy and training time at each check),
so a reader can put any target on it.

Clock: on CPU, process CPU time with one torch thread (as `benchmark.py`: steady on a shared machine); on
CUDA, wall time. Ratios to full fine-tuning are within one run of this script, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

import hft_lib as hft
from hft_lib import training
from hft_lib.callbacks import BudgetRecorder
from hft_lib.data import label_names
from hft_lib.experiments.classification import loaders
from hft_lib.strategies import check_strategies, prepare, split_strategies

STRATEGIES = "full,lower_half,alternate,hft_paper,lora,lisa,bitfit,autofreeze,auto_rgn,head_only"


def selected_rates() -> dict[str, float]:
    """Strategy -> the peak rate its validation runs selected (the committed tuning sweeps, quick profile)."""
    from hft_lib.experiments.catalogue import EXPERIMENTS
    from hft_lib.experiments.tuning import TUNING
    from hft_lib.experiments.tuning import selected_rates as select

    rates = select("quick", experiments={n: len(EXPERIMENTS[n].variants) * len(EXPERIMENTS[n].seeds) for n in TUNING})
    return {label.split(",")[0]: lr for label, lr in rates.items()}


def run(strategy: str, task, seed: int, args, device: str) -> dict:
    """One strategy, one seed: validation accuracy every `args.every` steps and the step times."""
    hft.set_seed(seed)
    model, tokenizer = hft.load_model("minilm-l6", num_labels=len(label_names(task)))
    rate = args.rates[strategy] if args.rates else args.lr
    profile = hft.get_profile("quick", batch_size=args.batch_size, lr=rate)
    split = loaders(task, tokenizer, profile, seed)
    steps = args.max_steps
    period = max(1, steps // args.rounds) if args.rounds else len(split["train"])  # LISA's redraws, AutoFreeze's window
    ft, optimizer, own, lr = prepare(strategy, model, profile.lr, seed=seed, total_steps=steps,
                                     redraw_every=period, window=period)
    checks = BudgetRecorder(list(range(args.every, steps + 1, args.every)),
                            lambda m: {"accuracy": hft.evaluate(m, split["validation"])["accuracy"]})
    epochs = -(-steps // len(split["train"]))
    history = hft.fit(ft, split["train"], None, epochs=epochs, lr=lr, max_steps=steps, optimizer=optimizer,
                      callbacks=[*own, checks], progress=False, config=hft.FitConfig(seed=seed, device=device))
    times = [s["time_s"] for s in history.steps]
    elapsed = [sum(times[:row["steps"]]) for row in checks.rows]  # training time up to each check
    reached = {t: next((i for i, row in enumerate(checks.rows) if row["accuracy"] >= t), None) for t in args.targets}
    return {"strategy": strategy, "seed": seed, "lr": rate, "step_s": statistics.median(times[1:] or times),
            "steps_to_target": {t: checks.rows[i]["steps"] if i is not None else None for t, i in reached.items()},
            "time_to_target_s": {t: elapsed[i] if i is not None else None for t, i in reached.items()},
            "best_accuracy": max(row["accuracy"] for row in checks.rows),
            "curve": {"steps": [row["steps"] for row in checks.rows], "time_s": elapsed,
                      "accuracy": [row["accuracy"] for row in checks.rows]}}


def summarise(runs: list[dict], target: float) -> dict | None:
    """One strategy's seeds: median step time, steps to target per seed, mean time to target (None unless every seed got there)."""
    if not runs:
        return None
    reached = [r["time_to_target_s"][target] for r in runs if r["time_to_target_s"][target] is not None]
    ttt = statistics.mean(reached) if len(reached) == len(runs) else None
    missed = len(runs) - len(reached)
    return {"step": statistics.median(r["step_s"] for r in runs), "ttt": ttt,
            "ttt_text": f"{ttt:.0f}" if ttt is not None else f"not reached in {missed} of {len(runs)}",
            "steps": ", ".join(str(r["steps_to_target"][target] or "not reached") for r in runs),
            "best": statistics.mean(r["best_accuracy"] for r in runs)}


def _rates(args) -> str:
    if not args.rates:
        return f"{args.lr:g}"
    return "selected (" + ", ".join(f"{s} {lr:g}" for s, lr in args.rates.items()) + ")"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default=STRATEGIES, help="comma-separated registry names (freeze:0,2 too)")
    parser.add_argument("--targets", default="0.6,0.7,0.8", help="validation accuracies to reach (default 0.6,0.7,0.8)")
    parser.add_argument("--max-steps", type=int, default=100, help="steps per run; the schedule spans them (default 100)")
    parser.add_argument("--every", type=int, default=10, help="steps between validation checks (default 10)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--train-size", type=int, default=640)
    parser.add_argument("--val-size", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", default="1e-4", help="one peak rate for every strategy, or 'selected': each strategy at "
                                                      "the rate the committed tuning sweeps chose for it")
    parser.add_argument("--rounds", type=int, default=None, help="LISA redraws and AutoFreeze measures this many times "
                                                                 "per run (default: once per epoch)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--quick", action="store_true", help="smoke test: full and lower_half, 12 steps, small data")
    parser.add_argument("--json", default=None, help="also write the settings and every run to this file (notebook 7 reads "
                                                     "benchmarks/results/time_to_target-cpu.json)")
    args = parser.parse_args(argv)
    strategies = check_strategies(split_strategies(args.strategies))  # a bad name fails before anything loads
    args.rates = None
    if args.lr == "selected":
        chosen = selected_rates()
        missing = [s for s in strategies if s not in chosen]
        if missing:
            parser.error(f"no selected rate for {', '.join(missing)}: `hft sweep tune` chooses rates for "
                         f"{', '.join(sorted(chosen))}; give those, or one rate with --lr 1e-4.")
        args.rates = {s: chosen[s] for s in strategies}
    else:
        try:
            args.lr = float(args.lr)
        except ValueError:
            parser.error(f"--lr must be a learning rate (e.g. 1e-4) or 'selected', not {args.lr!r}.")
    if args.quick:
        strategies, args.max_steps, args.every, args.train_size, args.val_size = ["full", "lower_half"], 12, 4, 96, 48
    seeds = [int(s) for s in args.seeds.split(",")]
    args.targets = [float(t) for t in args.targets.split(",")]
    sys.stdout.reconfigure(line_buffering=True)
    warnings.filterwarnings("ignore", category=FutureWarning)
    device = str(hft.get_device(args.device))
    if device == "cpu":  # CPU time of one thread: compute alone, steady when other jobs share the machine
        torch.set_num_threads(1)
        training.time = types.SimpleNamespace(perf_counter=time.process_time)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True).stdout.strip()
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else "none"
    if args.json and os.path.exists(args.json):  # a recorded result is not overwritten by accident
        parser.error(f"{args.json} exists; move it away or pass another --json path.")
    print(f"# time to target: MiniLM-L6 on TREC-6, {args.train_size} train / {args.val_size} validation, batch "
          f"{args.batch_size}, lr {_rates(args)}, {args.max_steps} steps, check every {args.every}; targets {args.targets}; "
          f"seeds {args.seeds}; {platform.machine()}, GPU {gpu}, torch {torch.__version__}, commit {commit or '?'}; "
          f"clock {'CPU time, 1 thread' if device == 'cpu' else 'wall'}")
    start = time.perf_counter()
    rows = []
    for seed in seeds:
        task = hft.load_task("trec6", args.train_size, args.val_size, 1, seed=seed)
        for strategy in strategies:
            row = run(strategy, task, seed, args, device)
            rows.append(row)
            got = "; ".join(f"{t:.2f} in {row['time_to_target_s'][t]:.0f} s ({row['steps_to_target'][t]} steps)"
                            if row["steps_to_target"][t] else f"{t:.2f} not reached" for t in args.targets)
            print(f"seed {seed} {strategy}: step {row['step_s'] * 1e3:.0f} ms; {got}; best {row['best_accuracy']:.3f}")
    for target in args.targets:
        print(f"\n**Target {target:.2f} validation accuracy**\n")
        print("| strategy | step ms | step / full | steps to target (per seed) | time to target s (mean) | time to target / full "
              "| best validation accuracy (mean) |")
        print("|---|---:|---:|---|---:|---:|---:|")
        full = summarise([r for r in rows if r["strategy"] == "full"], target)
        for strategy in strategies:
            mine = summarise([r for r in rows if r["strategy"] == strategy], target)
            step_vs = f"{mine['step'] / full['step']:.2f}" if full else "-"
            ttt_vs = f"{mine['ttt'] / full['ttt']:.2f}" if full and full["ttt"] and mine["ttt"] else "-"
            print(f"| {strategy} | {mine['step'] * 1e3:.0f} | {step_vs} | {mine['steps']} | {mine['ttt_text']} | {ttt_vs} "
                  f"| {mine['best']:.3f} |")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        meta = {"machine": platform.machine(), "cpu_count": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
                "commit": commit, "clock": "cpu time, 1 thread" if device == "cpu" else "wall", "date": time.strftime("%Y-%m-%d %H:%M %z"),
                "wall_s": round(time.perf_counter() - start)}
        with open(args.json, "w") as f:
            json.dump({"settings": settings, "provenance": meta, "runs": rows}, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
