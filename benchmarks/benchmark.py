"""Step time, memory and optimizer state of every freezing strategy, side by side, against the cost model.

    python benchmarks/benchmark.py            # full CPU run (~6-8 minutes on a 2-core CPU)
    python benchmarks/benchmark.py --quick    # smoke test: few steps, fewer strategies
    python benchmarks/benchmark.py --device cuda   # larger batches, mixed precision (bf16 where native, else fp16)

For each model, every strategy trains through `hft_lib.fit` (the loop users run) on the same real
batches; strategies take turns round by round so that machine noise hits all of them alike. Full
fine-tuning is the reference. The predicted ratio comes from `hft_lib.costmodel`, calibrated in
this same process (see that module). Then, on the encoder, short real TREC-6 runs compare
frozen-prefix caching with the uncached run, and LoRA with lower-half freezing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import traceback
import types
import warnings
from dataclasses import dataclass, field, replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from torch.profiler import ProfilerActivity, profile

import hft_lib as hft
from hft_lib import training
from hft_lib.experiments.classification import loaders
from hft_lib.layers import find_layer_stack
from hft_lib.measure import costmodel
from hft_lib.runtime.caching import FrozenPrefixCache
from hft_lib.strategies import REGISTRY

SETTINGS = {  # (batch size, tokens) per model and device kind
    "cpu": {"minilm-l6": (16, 64), "smollm2-135m": (4, 64)},
    "cuda": {"minilm-l6": (64, 128), "smollm2-135m": (16, 128)},
}
LR = 1e-4
CLOCK = time.perf_counter  # main() switches to process CPU time for --clock cpu


@dataclass
class Strategy:
    name: str
    ft: hft.Finetuner
    flags: list[bool]  # requires_grad of every parameter, re-applied before each turn (models are shared)
    optimizer: torch.optim.Optimizer
    calibration: costmodel.Calibration
    callbacks: list = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)
    transient_bytes: int = 0

    def apply(self) -> None:
        for p, flag in zip(self.ft.model.parameters(), self.flags):
            p.requires_grad_(flag)

    def run(self, batches: list[dict], device: str, keep: bool = True) -> None:
        self.apply()
        start = CLOCK()
        history = hft.fit(self.ft, batches, epochs=1, lr=LR, optimizer=self.optimizer, callbacks=self.callbacks,
                          progress=False, config=hft.FitConfig(device=device, seed=None))
        wall = CLOCK() - start
        steps = [s["time_s"] for s in history.steps]
        if keep:
            self.times += steps
            self.overhead.append((wall - sum(steps)) / len(steps))


def timing_batches(model_name: str, tokenizer, batch: int, tokens: int, n: int) -> list[dict]:
    """`n` real batches padded to exactly `tokens` tokens (fixed shapes: every step does the same work)."""
    lm = model_name.startswith("smollm")
    task = hft.load_task("news_text" if lm else "trec6", train_size=batch * n, validation_size=1, test_size=1)
    enc = tokenizer(list(task["train"]["text"]), truncation=True, max_length=tokens, padding="max_length",
                    return_tensors="pt")
    out = []
    for i in range(n):
        b = {k: v[i * batch:(i + 1) * batch] for k, v in enc.items()}
        b["labels"] = (b["input_ids"].masked_fill(b["attention_mask"] == 0, -100) if lm
                       else torch.tensor(task["train"]["label"][i * batch:(i + 1) * batch]))
        out.append(b)
    return out


def load(model_name: str, device: str):
    kind = {"num_labels": 6} if model_name == "minilm-l6" else {"kind": "causal_lm"}
    model, tokenizer = hft.load_model(model_name, **kind)
    return model.to(device), tokenizer


def patterns(n: int, quick: bool) -> dict[str, object]:
    """Static freeze patterns, incl. stages of gradual unfreezing frozen in place."""
    out = {name: name for name, s in REGISTRY.items() if s.kind == "layers"}  # the registry's layer patterns
    stages = [1, n // 4, (3 * n) // 4] if n > 8 else [1, 2, 4, 5]
    for k in stages[:1] if quick else stages:
        out[f"gradual top-down stage {k} (top {k} trainable)"] = list(range(n - k))
    if not quick:
        out["gradual bottom-up stage 1 (layer 0 + emb.)"] = list(range(1, n))
    return out


def make_lora(model_name: str, device: str) -> hft.Finetuner | None:
    """LoRA (r=8 on the attention query/value projections) via `hft_lib.strategies.lora`, or None if it is unavailable."""
    try:
        from hft_lib.strategies.lora import lora_finetuner
    except ImportError:
        print("hft_lib.strategies.lora is not available: the LoRA rows are skipped.")
        return None
    model, _ = load(model_name, device)
    return lora_finetuner(model, r=8, alpha=16, dropout=0.0)


def transient_peak(strategy: Strategy, batch: dict, device: str) -> int:
    """Bytes allocated above the starting point at the peak of one training step."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        strategy.run([batch], device, keep=False)
        return torch.cuda.max_memory_allocated() - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        strategy.run([batch], device, keep=False)
    running = peak = 0
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    for e in sorted(events, key=lambda e: e.start_ns()):
        running += e.nbytes()
        peak = max(peak, running)
    return peak


def benchmark_model(model_name: str, device: str, quick: bool) -> list[dict]:
    batch, tokens = SETTINGS["cuda" if device.startswith("cuda") else "cpu"][model_name]
    amp = device.startswith("cuda")
    hft.set_seed(0)
    base, tokenizer = load(model_name, device)
    rounds, per_turn = (2, 1) if quick else ((6, 2) if model_name == "minilm-l6" else (3, 1))
    batches = timing_batches(model_name, tokenizer, batch, tokens, per_turn + 1)
    batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    cal = costmodel.calibrate(base, batches[0], repeats=2 if quick else 5, amp=amp, clock=CLOCK)
    print(f"\n## {model_name}: batch {batch} x {tokens} tokens on {device}\ncalibration: {cal.describe()}", flush=True)
    strategies = []
    for name, pattern in patterns(len(find_layer_stack(base)), quick).items():
        ft = hft.Finetuner(base, pattern, verbose=False)
        strategies.append(Strategy(name, ft, [p.requires_grad for p in base.parameters()], hft.build_optimizer(ft, LR), cal))
    paper = hft_paper_strategy(base, cal)
    strategies += [paper] if paper else []
    strategies += data_driven_strategies(base, cal)
    lora = make_lora(model_name, device)
    if lora is not None:  # its own model: its forward (adapters included) is timed on it; backward and optimizer as the base's
        lora_forward = costmodel.measure_forward(lora.model, batches[0], repeats=2 if quick else 5, amp=amp, clock=CLOCK)
        lora_cal = replace(cal, forward_s=lora_forward)
        strategies.append(Strategy("lora r=8 q,v (peft)", lora, [p.requires_grad for p in lora.model.parameters()],
                                   hft.build_optimizer(lora, LR), lora_cal))
    for s in strategies:  # warm-up: caches, lazy optimizer state
        s.run(batches[:1], device, keep=False)
    for r in range(rounds):
        order = strategies[r % len(strategies):] + strategies[:r % len(strategies)]
        for s in order:
            s.run(batches[1:1 + per_turn], device)
    for s in strategies:
        s.transient_bytes = transient_peak(s, batches[0], device)
    full_time = statistics.median(strategies[0].times)
    rows = []
    for s in strategies:
        s.apply()
        measured = statistics.median(s.times) / full_time
        state, n_train = costmodel.trainable_state(s.ft.model), costmodel.trainable_parameter_count(s.ft.model)
        ideal = costmodel.step_seconds(s.calibration, state, n_train, ideal=True) / costmodel.full_step_seconds(cal, ideal=True)
        predicted = costmodel.step_seconds(s.calibration, state, n_train) / costmodel.full_step_seconds(cal)
        opt_bytes = training.optimizer_state_bytes(s.optimizer)
        rows.append({"model": model_name, "strategy": s.name, "trainable": costmodel.trainable_parameter_count(s.ft.model),
                     "step_ms": 1e3 * statistics.median(s.times), "measured": measured, "predicted": predicted,
                     "ratio": measured / predicted, "ideal": ideal, "opt_mb": opt_bytes / 2**20,
                     "peak_mb": (training.parameter_bytes(s.ft.model) + opt_bytes + s.transient_bytes) / 2**20,
                     "overhead_ms": 1e3 * statistics.median(s.overhead), "steps": len(s.times)})
    print(f"full step: measured {1e3 * full_time:.0f} ms; predicted {1e3 * costmodel.full_step_seconds(cal):.0f} ms "
          f"(measured backward), {1e3 * costmodel.full_step_seconds(cal, ideal=True):.0f} ms (ideal F/2F/F)")
    return rows


def hft_paper_strategy(base, cal: costmodel.Calibration) -> Strategy | None:
    """The HFT paper's method (half of every layer's matrices frozen, embeddings and head trainable), one static draw."""
    try:
        from hft_lib.strategies.hft_paper import apply_hft_paper
    except ImportError:
        print("hft_lib.strategies.hft_paper is not available: the HFT-paper row is skipped.")
        return None
    ft = hft.Finetuner(base, "full", verbose=False)
    apply_hft_paper(ft, seed=0)
    return Strategy("hft paper half (one draw)", ft, [p.requires_grad for p in base.parameters()], hft.build_optimizer(ft, LR), cal)


def data_driven_strategies(base, cal: costmodel.Calibration) -> list[Strategy]:
    """LISA's trainable set in one round (2 drawn layers + embeddings + head: its redraw every 20 steps is not in the
    step), the module-kind rules (BitFit, attention or feed-forward only) and Auto-RGN (everything trains; its
    per-tensor rate scaling runs every step, so the cost model's full step is its prediction)."""
    from hft_lib.strategies import prepare
    from hft_lib.strategies.auto_rgn import AutoRGN
    from hft_lib.strategies.lisa import ACTIVE_LAYERS, draw_active

    n = len(find_layer_stack(base))
    active = draw_active(n, ACTIVE_LAYERS, seed=0, round_=0)
    out = []
    lisa = hft.Finetuner(base, [i for i in range(n) if i not in active], embeddings="trainable", verbose=False)
    out.append(Strategy(f"lisa (one round: layers {', '.join(map(str, active))} + embeddings + head)", lisa,
                        [p.requires_grad for p in base.parameters()], hft.build_optimizer(lisa, LR), cal))
    for name in ("bitfit", "attention_only", "ffn_only"):
        ft = prepare(name, base, LR).ft
        out.append(Strategy(name, ft, [p.requires_grad for p in base.parameters()], hft.build_optimizer(ft, LR), cal))
    ft = hft.Finetuner(base, "full", verbose=False)
    rgn = AutoRGN(ft)
    out.append(Strategy("auto_rgn (per-tensor rates every step)", ft, [p.requires_grad for p in base.parameters()],
                        rgn.build_optimizer(LR, 0.01, None), cal, callbacks=[rgn]))
    return out


def print_table(rows: list[dict]) -> None:
    print("\n| model | strategy | trainable params | optimizer state MiB | peak MiB | step ms | measured / full "
          "| predicted, ideal F/2F/F | predicted, measured backward | measured / predicted |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        flag = "" if abs(r["ratio"] - 1) <= 0.10 else " (!)"
        print(f"| {r['model']} | {r['strategy']} | {r['trainable'] / 1e6:.2f}M | {r['opt_mb']:.0f} | {r['peak_mb']:.0f} | "
              f"{r['step_ms']:.0f} | {r['measured']:.2f} | {r['ideal']:.2f} | {r['predicted']:.2f} | {r['ratio']:.2f}{flag} |")
    worst = max(rows, key=lambda r: abs(r["ratio"] - 1))
    print(f"\nworst measured/predicted: {worst['ratio']:.2f} ({worst['model']}, {worst['strategy']}); "
          f"fit() time outside the timed step: median {statistics.median(r['overhead_ms'] for r in rows):.1f} ms per step")


def accuracy_runs(device: str, quick: bool) -> None:
    """Real TREC-6 runs: full, lower half with and without the frozen-prefix cache, LoRA."""
    profile = hft.get_profile("quick", **({"train_size": 96, "eval_size": 48, "epochs": 2} if quick else {}))
    task = hft.load_task("trec6", profile.train_size, profile.eval_size, profile.eval_size, seed=0)
    results, tokenizer = {}, None
    for name in ("full", "lower_half", "lower_half + cache", "lora"):
        hft.set_seed(0)
        if name == "lora":
            ft = make_lora("minilm-l6", device)
            if ft is None:
                continue
            from hft_lib.strategies.lora import LORA_LR_FACTOR
            lr = LORA_LR_FACTOR * profile.lr
        else:
            model, tokenizer = load("minilm-l6", device)
            ft, lr = hft.Finetuner(model, name.split()[0], verbose=False), profile.lr
        split = loaders(task, tokenizer, profile)
        cache = FrozenPrefixCache(ft) if "cache" in name else None
        history = hft.fit(ft, split["train"], split["validation"], epochs=profile.epochs, lr=lr, progress=False,
                          config=hft.FitConfig(device=device))
        test = hft.evaluate(ft.model, split["test"])["accuracy"]
        if cache:
            cache.remove()
        results[name] = ([e["time_s"] for e in history.epochs], test, lr)
    full_epoch = statistics.mean(results["full"][0])
    print(f"\n## Encoder runs: TREC-6, {profile.train_size} train / {profile.eval_size} test, {profile.epochs} epochs, "
          f"batch {profile.batch_size}, one seed (test accuracy noise ~ +-{100 * (0.25 / profile.eval_size) ** 0.5:.0f} pts)")
    print("| run | lr | epoch 1 s | later epochs s (mean) | later epochs / full epoch | test accuracy |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (times, acc, lr) in results.items():
        later = statistics.mean(times[1:]) if len(times) > 1 else times[0]
        print(f"| {name} | {lr:g} | {times[0]:.1f} | {later:.1f} | {later / full_epoch:.2f} | {acc:.3f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps and strategies (a smoke test)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available, else cpu)")
    parser.add_argument("--models", default="minilm-l6,smollm2-135m", help="comma-separated model names")
    parser.add_argument("--no-accuracy", action="store_true", help="skip the TREC-6 caching / LoRA runs")
    parser.add_argument("--clock", choices=("cpu", "wall"), default=None,
                        help="cpu: process CPU time with one torch thread (default on CPU: steady on a shared machine); "
                             "wall: wall-clock time with torch's default threads (default on CUDA)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when piped to a file
    device = str(hft.get_device(args.device))
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers deprecations reached through peft
    clock = args.clock or ("wall" if device.startswith("cuda") else "cpu")
    if clock == "cpu":
        if device.startswith("cuda"):
            parser.error("--clock cpu measures CPU time and cannot time GPU work; use --clock wall with --device cuda.")
        global CLOCK
        CLOCK = time.process_time
        torch.set_num_threads(1)  # CPU time of one thread is pure compute; more threads would add spin-waiting
        training.time = types.SimpleNamespace(perf_counter=time.process_time)  # fit's step and epoch timers
    threads = torch.get_num_threads()
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else "none"
    print(f"# hft benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs ({threads} torch threads), "
          f"GPU {gpu}, torch {torch.__version__}, python {sys.version.split()[0]}, clock {clock}{', quick' if args.quick else ''}")
    start = time.perf_counter()
    failed = []
    for name in args.models.split(","):
        try:
            print_table(benchmark_model(name.strip(), device, args.quick))
        except Exception:  # noqa: BLE001 - report it, and still run the rest of the benchmark
            traceback.print_exc()
            failed.append(name)
    if not args.no_accuracy:
        accuracy_runs(device, args.quick)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if failed:
        sys.exit(f"benchmark failed for {', '.join(failed)} (traceback above)")


if __name__ == "__main__":
    main()
