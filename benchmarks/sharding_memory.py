"""Training state per process, DDP against FSDP2, on 1 and 2 processes: what sharding buys a frozen model.

    python benchmarks/sharding_memory.py                      # SmolLM2-135M, lower_half, CPU (gloo): ~2 minutes
    python benchmarks/sharding_memory.py --model minilm-l6    # any embedded model
    python benchmarks/sharding_memory.py --device cuda        # NCCL, one GPU per process (needs 2 GPUs)

For each setting the script starts the processes itself (`torchrun --nproc_per_node N`, the worker being
this file) and every process trains two optimiser steps through `hft_lib.fit` with
`FitConfig(engine="ddp" | "fsdp")`. Just before the second optimiser step, when the weights, the
gradients and the first step's AdamW moments all exist at once, each process counts the bytes it holds
of them from the tensors themselves (`DTensor.to_local()` under FSDP2: its own shard). With one process
both engines run the plain loop (hft wraps or shards only when N > 1), so that row is the baseline of both.

Not counted: activations and the layer's weights FSDP2 gathers for the moment it runs (freed after),
DDP's gradient buckets (a second copy of the trainable gradients, so DDP's real figure is higher),
and the full model each process loads from disk before sharding it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

import hft_lib as hft
from hft_lib.runtime.sharding import local_bytes

SETTINGS = [(1, "ddp"), (2, "ddp"), (2, "fsdp")]  # (processes, engine); one process: the plain loop either way


class StateCounter(hft.Callback):
    """Counts weights, gradients and optimiser state this process holds, once, just before the second optimiser step."""

    def __init__(self):
        self.counted: dict[str, int] = {}

    def on_optimizer(self, run) -> None:
        run.optimizer.register_step_pre_hook(lambda optimizer, args, kwargs: self.count(run, optimizer))

    def count(self, run, optimizer) -> None:
        if run.step != 1 or self.counted:
            return
        params = list(run.model.parameters())
        self.counted = {
            "weights": sum(local_bytes(p) for p in params),
            "gradients": sum(local_bytes(p.grad) for p in params if p.grad is not None),
            "optimizer": sum(local_bytes(t) for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)),
        }


def worker(model_name: str, pattern: str, engine: str, device: str, batch: int, tokens: int, out: Path) -> None:
    """One process of one setting: two optimiser steps, then its counts to out/rank<r>.json."""
    torch.set_num_threads(1)
    kind = {"num_labels": 6} if model_name == "minilm-l6" else {"kind": "causal_lm"}
    model, _ = hft.load_model(model_name, **kind)
    ft = hft.Finetuner(model, pattern, verbose=False)
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    batches = []
    for _ in range(2):
        ids = torch.randint(0, vocab, (batch, tokens), generator=g)
        labels = torch.randint(0, 6, (batch,), generator=g) if "num_labels" in kind else ids
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    counter = StateCounter()
    start = time.perf_counter()
    history = hft.fit(ft, batches, epochs=1, lr=1e-4, callbacks=[counter], progress=False,
                      config=hft.FitConfig(device=device, engine=engine))
    rank = int(os.environ.get("RANK", "0"))
    row = {"rank": rank, "world": int(os.environ.get("WORLD_SIZE", "1")), "engine": engine, **counter.counted,
           "state_mb_fit": history.state_mb, "trainable": ft.trainable_parameter_count(),
           "total": ft.total_parameter_count(), "wall_s": time.perf_counter() - start}
    (out / f"rank{rank}.json").write_text(json.dumps(row))


def launch(args, processes: int, engine: str, out: Path) -> list[dict]:
    """Start one setting's processes and collect their rows."""
    worker_args = [str(Path(__file__).resolve()), "--worker", "--model", args.model, "--pattern", args.pattern,
                   "--engine", engine, "--device", args.device, "--batch", str(args.batch), "--tokens", str(args.tokens),
                   "--out", str(out)]
    if processes == 1:
        cmd = [sys.executable, *worker_args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
               str(args.port), *worker_args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} on {processes} process(es) failed:\n{done.stderr[-3000:]}")
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(processes)]


def report(rows: list[dict], args) -> None:
    mib = 2**20
    ddp2 = next(max(r["weights"] + r["gradients"] + r["optimizer"] for r in g) for (n, e), g in rows if (n, e) == (2, "ddp"))
    print(f"\n{args.model}, {args.pattern}: {rows[0][1][0]['trainable'] / 1e6:.1f}M of {rows[0][1][0]['total'] / 1e6:.1f}M "
          f"parameters trainable; batch {args.batch} x {args.tokens} tokens; device {args.device}; torch {torch.__version__}; "
          f"{platform.machine()}, {os.cpu_count()} cores")
    print("| processes | engine | weights MiB | gradients MiB | AdamW state MiB | total per process MiB | vs DDP (2 processes) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for (n, engine), group in rows:
        r = max(group, key=lambda r: r["weights"] + r["gradients"] + r["optimizer"])  # the fuller process
        total = r["weights"] + r["gradients"] + r["optimizer"]
        label = "either (plain loop)" if n == 1 else {"ddp": "DDP", "fsdp": "FSDP2"}[engine]
        print(f"| {n} | {label} | {r['weights'] / mib:.0f} | {r['gradients'] / mib:.0f} | {r['optimizer'] / mib:.0f} | "
              f"{total / mib:.0f} | {total / ddp2:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--pattern", default="lower_half")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--port", type=int, default=29533)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="ddp", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.model, args.pattern, args.engine, args.device, args.batch, args.tokens, args.out)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes, engine in SETTINGS:
            out = Path(tmp) / f"{engine}-{processes}"
            out.mkdir()
            rows.append(((processes, engine), launch(args, processes, engine, out)))
    report(rows, args)
    print(f"(wall time {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
