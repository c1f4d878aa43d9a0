"""Run the project on a CUDA machine and record what happened in one file: the device, every step's time and any failure.

    python tools/gpu_check.py                       # everything below, on the default GPU
    python tools/gpu_check.py --benchmark quick     # a shorter benchmark (fits a 15-minute device slot)

Steps, each timed and recorded even if an earlier one failed:

1. `precision`: a short fit with `FitConfig(precision="auto")`, and which precision it picked (bf16 on a GPU with native
   bfloat16, fp16 with a gradient scaler on a T4 / V100 / P100), then the other half-precision the GPU allows.
2. `smoke`: every chapter and solution under HFT_PROFILE=full HFT_SMOKE=1 (the same code path as an uncapped full-profile
   run, a handful of steps each), `--jobs` notebooks at a time.
3. `uncapped`: one chapter (`--chapter`, default 02) under the full profile, uncapped: real GPU training end to end.
4. `benchmark`: `benchmarks/benchmark.py --device cuda` (`--benchmark quick` adds `--quick`; `none` skips it).

The record goes to `--out` (default benchmarks/results/gpu_check-<gpu>.json), the executed uncapped chapter beside it;
the committed notebooks are never written. Needs torch built with CUDA (`pip install torch -e ".[test]"` on the machine;
the notebooks need nbclient and ipykernel, which the test extra brings). `--allow-cpu` runs the steps on a machine
without a GPU, to try the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def execute_notebook(path: str, env: dict, save_to: str | None = None, timeout: int = 3600) -> dict:
    """Run one notebook top to bottom in a fresh kernel with `env`; its time, and the error if a cell failed."""
    import nbformat
    from nbclient import NotebookClient

    os.environ.update(env)  # the kernel inherits them (this runs in its own worker process)
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(path).parent)}}).execute()
        error = None
    except Exception as err:  # noqa: BLE001 - record it and go on with the next notebook
        error = re.sub(r"\x1b\[[0-9;]*m", "", str(err))[-3000:]
    if save_to:
        nbformat.write(notebook, save_to)
    return {"name": str(Path(path).relative_to(ROOT)), "seconds": round(time.perf_counter() - start, 1),
            "ok": error is None, "error": error}


def step(record: dict, name: str, fn) -> None:
    """Run one step, timing it and keeping its result or its traceback."""
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    try:
        result, ok = fn(), True
    except Exception:  # noqa: BLE001
        result, ok = {"error": traceback.format_exc()[-3000:]}, False
    record["steps"][name] = {"seconds": round(time.perf_counter() - start, 1), **result}
    record["steps"][name].setdefault("ok", ok)
    print(f"   {'ok' if record['steps'][name]['ok'] else 'FAILED'} in {record['steps'][name]['seconds']:.0f} s", flush=True)


def device_info() -> dict:
    import torch

    from hft_lib.precision import native_bf16, resolve_precision

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=ROOT, capture_output=True,
                                     text=True).stdout.strip()}
    if torch.cuda.is_available():
        device = torch.device("cuda")
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), native_bf16=native_bf16(device),
                    precision_auto=resolve_precision("auto", device))
    return info


def precision_check(device: str) -> dict:
    """A short fit on the GPU with precision "auto", then with each explicit precision this GPU can run."""
    import torch

    import hft_lib as hft
    from hft_lib.exercises import tiny_classifier
    from hft_lib.precision import native_bf16

    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(1, 100, (4, 10), generator=g), "attention_mask": torch.ones(4, 10, dtype=torch.long),
                "labels": torch.randint(0, 3, (4,), generator=g)} for _ in range(6)]
    out = {}
    for precision in ("auto", "fp16", "bf16", "fp32"):
        if precision == "bf16" and device == "cuda" and not native_bf16(torch.device(device)):
            out[precision] = "not run: no native bf16 (FitConfig refuses it with a message)"
            continue
        ft = hft.Finetuner(tiny_classifier(layers=4, num_labels=3, seed=0), "lower_half", verbose=False)
        history = hft.fit(ft, batches, epochs=1, lr=1e-3, progress=False, config=hft.FitConfig(device=device, precision=precision))
        out[precision] = {"ran_as": history.precision, "device": history.device, "final_loss": history.steps[-1]["loss"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="02", help="the chapter run uncapped under the full profile (none: skip)")
    parser.add_argument("--benchmark", choices=("full", "quick", "none"), default="full")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run at a time in the smoke step")
    parser.add_argument("--notebooks", default="notebooks/**/*.ipynb", help="which notebooks the smoke step runs (a glob)")
    parser.add_argument("--out", default=None, help="the record (default benchmarks/results/gpu_check-<gpu>.json)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (to try this script)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("No CUDA GPU here (or torch was built without CUDA): install a CUDA build of torch, or pass --allow-cpu to "
              "try the script on a CPU.", file=sys.stderr)
        return 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    record = {"device": device_info(), "steps": {}}
    slug = re.sub(r"[^a-z0-9]+", "-", record["device"].get("gpu", "cpu").lower()).strip("-")
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"gpu_check-{slug}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out.write_text(json.dumps(record, indent=1) + "\n")

    print(f"# gpu check on {record['device'].get('gpu', 'CPU')}; record: {out}", flush=True)
    step(record, "precision", lambda: precision_check(device))
    save()

    def smoke() -> dict:
        paths = sorted(str(p) for p in ROOT.glob(args.notebooks))
        env = {**ENV, "HFT_PROFILE": "full", "HFT_SMOKE": "1"}
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(execute_notebook, paths, [env] * len(paths)))
        return {"ok": all(r["ok"] for r in runs), "notebooks": runs}

    step(record, "smoke", smoke)
    save()
    if args.chapter != "none":
        chapter = next(ROOT.glob(f"notebooks/{args.chapter}_*.ipynb"))
        executed = out.with_name(f"{out.stem}-{chapter.stem}.ipynb")
        env = {**ENV, "HFT_PROFILE": "full", "HFT_SMOKE": "0"}
        def uncapped() -> dict:
            with ProcessPoolExecutor(max_workers=1) as pool:  # its own process: this one's environment stays as it is
                return pool.submit(execute_notebook, str(chapter), env, str(executed)).result()

        step(record, "uncapped", uncapped)
        save()
    if args.benchmark != "none":
        def benchmark() -> dict:
            cmd = [sys.executable, str(ROOT / "benchmarks" / "benchmark.py"), "--device", device,
                   *(["--quick"] if args.benchmark == "quick" else [])]
            done = subprocess.run(cmd, check=False, cwd=ROOT, env={**os.environ, **ENV}, capture_output=True, text=True)
            return {"ok": done.returncode == 0, "command": " ".join(cmd[1:]), "output": done.stdout[-20000:],
                    "error": done.stderr[-3000:] if done.returncode else None}

        step(record, "benchmark", benchmark)
        save()
    failed = [name for name, s in record["steps"].items() if not s["ok"]]
    print(f"# {'all steps ok' if not failed else 'failed: ' + ', '.join(failed)}; record in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
