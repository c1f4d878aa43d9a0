"""Paired multi-seed sweeps that resume, and the results store they write.

An `Experiment` (the table is `catalogue`) is a protocol (see `protocols`), shared settings, a list of variants (a strategy plus
anything that differs, e.g. a learning rate) and seeds. Every variant runs on every seed, so any two
variants can be compared seed by seed (`measure.stats.paired`).

Results go to `<out>/<experiment>-<profile>.csv`, one row per run: the cell's settings, every metric,
wall time and a `cell` id (a hash of the settings). Next to it, `<experiment>-<profile>.json` holds the
provenance: the settings, and per session the git commit, package versions, torch threads, CPU/GPU,
date, command and wall time. A run is written the moment it ends (atomically, under a file lock, so
several `--jobs` processes can share the file); re-running the same sweep skips finished cells, so an
interrupted sweep loses at most the run in progress. A file written with other settings is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..config import get_device, results_csv, results_dir, smoke
from ..strategies import check_strategies
from ..training import TrainingDiverged
from .catalogue import EXPERIMENTS, PICKED, UNDER_WAY, Experiment, cell_id, get_experiment, variant_label
from .protocols import PROTOCOLS

__all__ = ["EXPERIMENTS", "UNDER_WAY", "Experiment", "ResultsStore", "cell_id", "check_live", "get_experiment",
           "load_results", "parse_seeds", "run_cell", "run_sweep", "stored_devices", "variant_label"]


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0-4' -> (0, 1, 2, 3, 4); '0,2,7' -> (0, 2, 7)."""
    try:
        if "-" in text.strip("-"):
            first, last = (int(v) for v in text.split("-"))
            seeds = tuple(range(first, last + 1))
        else:
            seeds = tuple(int(v) for v in text.split(","))
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"Seeds must look like 0-4 or 0,2,7 (distinct whole numbers >= 0), not {text!r}.")
    return seeds


def provenance() -> dict:
    """Where and with what a run was made: commit, versions, threads, CPU/GPU, date, command."""
    import torch
    import transformers

    root = Path(__file__).resolve().parents[2]

    def git(*args):
        try:
            return subprocess.run(["git", *args], check=False, cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "hft_lib")),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "device": str(get_device()),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv)}


class ResultsStore:
    """One experiment's results file and provenance; rows are appended atomically under a lock."""

    def __init__(self, out: str | Path | None, experiment: Experiment, profile: str):
        self.dir = results_dir(out)  # None: the one default location (config.results_dir)
        self.csv = results_csv(experiment.name, profile, out)
        self.meta = self.csv.with_suffix(".json")
        self.settings = json.loads(json.dumps({**experiment.resolved(profile), "variants": experiment.variants}, default=list))

    def check(self) -> None:
        """Refuse a results file written with other settings (its rows could not be paired with new ones)."""
        if self.meta.exists():
            saved = json.loads(self.meta.read_text()).get("settings")
            if saved != self.settings:
                differ = sorted(k for k in {*saved, *self.settings} if saved.get(k) != self.settings.get(k))
                raise ValueError(f"{self.csv} was written with other settings ({', '.join(differ)} differ); "
                                 "pass another --out folder, or move the old file away to start over.")
        elif self.csv.exists():
            raise ValueError(f"{self.csv} exists without its provenance file {self.meta.name}; move it away or restore the file.")

    @contextmanager
    def locked(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / f".{self.csv.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def rows(self) -> pd.DataFrame:
        return pd.read_csv(self.csv) if self.csv.exists() else pd.DataFrame()

    def done(self) -> set[str]:
        frame = self.rows()
        return set(frame["cell"]) if "cell" in frame else set()

    def append(self, row: dict) -> None:
        """Add one finished run (never rewrites another run's row)."""
        with self.locked():
            frame = self.rows()
            if "cell" in frame and row["cell"] in set(frame["cell"]):
                return  # another process finished the same cell first
            frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
            tmp = self.csv.with_suffix(".csv.tmp")
            frame.to_csv(tmp, index=False)
            os.replace(tmp, self.csv)

    def log_session(self, session: dict) -> None:
        with self.locked():
            meta = json.loads(self.meta.read_text()) if self.meta.exists() else {"settings": self.settings, "sessions": []}
            meta["sessions"].append(session)
            tmp = self.meta.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(meta, indent=1, default=str))
            os.replace(tmp, self.meta)


def run_sweep(experiment: Experiment | str, profile: str = "quick", seeds: tuple[int, ...] | None = None,
              out: str | Path | None = None, part: tuple[int, int] = (0, 1), echo: Callable[[str], None] = print) -> pd.DataFrame:
    """Run every unfinished cell of `experiment` (this process's `part` of them); returns the results so far."""
    experiment = get_experiment(experiment) if isinstance(experiment, str) else experiment
    check_strategies([v["strategy"] for v in experiment.variants if v["strategy"] != PICKED],
                     decoder=experiment.protocol == "lm_curve")
    store = ResultsStore(out, experiment, profile)
    store.check()
    cells = experiment.cells(profile, seeds)
    index, parts = part
    if parts > 1 and experiment.protocol == "classification":  # runs share nothing: deal them out in turn
        cells = cells[index::parts]
    elif parts > 1:  # whole seeds per process, so what a seed shares (the model tuned on task A, the setup) is made once
        order = sorted({c["seed"] for c in cells})
        cells = [c for c in cells if order.index(c["seed"]) % parts == index]
    done = store.done()
    todo = [c for c in cells if c["cell"] not in done]
    echo(f"{experiment.name} ({profile}): {len(cells) - len(todo)} of {len(cells)} runs already in {store.csv}; {len(todo)} to go")
    store.log_session({**provenance(), "event": "start", "runs_to_go": len(todo)})
    protocol, cache, start = PROTOCOLS[experiment.protocol], {}, time.perf_counter()
    for n, cell in enumerate(todo, 1):
        began = time.perf_counter()
        try:
            metrics = protocol(cell, cache)
        except TrainingDiverged as err:  # a diverged run is a result (ULMFiT's claim is about stability), not a crash
            metrics = {"failed": True, "diverged": str(err)}
        row = {**{k: json.dumps(v) if isinstance(v, (list, tuple)) else v for k, v in cell.items()}, **metrics,
               "wall_s": time.perf_counter() - began}
        store.append(row)
        elapsed = time.perf_counter() - start
        left = elapsed / n * (len(todo) - n)
        headline = next((f"{k} {metrics[k]:.3f}" for k in ("test_accuracy", "task_accuracy", "val_accuracy")
                         if isinstance(metrics.get(k), float) and metrics[k] == metrics[k]), "")  # not NaN
        echo(f"[{n}/{len(todo)}] {cell['variant']}, seed {cell['seed']}: {headline} ({row['wall_s']:.0f} s); "
             f"about {left / 60:.0f} min left")
    store.log_session({"event": "end", "runs": len(todo), "wall_s": round(time.perf_counter() - start, 1),
                       "date": time.strftime("%Y-%m-%d %H:%M:%S %z")})
    return store.rows()


def load_results(experiment: str, profile: str = "quick", out: str | Path | None = None) -> pd.DataFrame:
    """The stored rows of one experiment (what the notebooks and the README's numbers read)."""
    store = ResultsStore(out, get_experiment(experiment), profile)
    if not store.csv.exists():
        raise ValueError(f"No results at {store.csv}; run `hft sweep {experiment} --profile {profile}` first.")
    store.check()
    return store.rows()


def cell_settings(experiment: str, variant: str, seed: int = 0, profile: str | None = None,
                  rates_profile: str | None = None) -> dict:
    """The settings of one cell of a sweep (what `run_cell` runs and the stored row was made with)."""
    from ..config import get_profile

    cells = get_experiment(experiment).cells(profile or get_profile().name, seeds=(seed,), rates_profile=rates_profile)
    for cell in cells:
        if cell["variant"] == variant:
            return cell
    raise ValueError(f"Experiment {experiment!r} has no variant {variant!r}; choose from {', '.join(c['variant'] for c in cells)}.")


def live_cell_settings(experiment: str, variant: str, seed: int = 0, profile: str | None = None) -> dict:
    """`cell_settings` for a live run: where this profile's rates were never tuned (the full profile, before
    `hft sweep tune --profile full` has run), the rates the quick profile's tuning selected, said in one line."""
    from ..config import get_profile
    from .tuning import NoTuning

    try:
        return cell_settings(experiment, variant, seed, profile)
    except NoTuning:
        name = profile or get_profile().name
        print(f"No {name}-profile tuning is stored, so this live run takes the rates the quick profile's tuning "
              f"selected (`hft sweep tune --profile {name}` would choose this profile's own).")
        return cell_settings(experiment, variant, seed, profile, rates_profile="quick")


def run_cell(experiment: str, variant: str, seed: int = 0, profile: str | None = None, cache: dict | None = None,
             keep_model: bool = True) -> dict:
    """One cell of a sweep, run here and now (a notebook's live run): the same settings as the stored row.

    Prints where it runs (profile, device, precision); the result says so too (`profile`, `device`, `precision`)."""
    from ..precision import resolve_precision

    cell = live_cell_settings(experiment, variant, seed, profile)
    protocol = PROTOCOLS[get_experiment(experiment).protocol]
    device = get_device()
    where = {"profile": cell["profile"], "device": str(device), "precision": resolve_precision("auto", device)}
    print(f"live run of {experiment} / {variant}, seed {seed}: {where['profile']} profile"
          f"{' capped by HFT_SMOKE' if smoke() else ''}, on {where['device']} ({where['precision']})")
    return {"cell": cell["cell"], **protocol(cell, {} if cache is None else cache, keep_model=keep_model), **where}


def stored_devices(experiment: str, profile: str = "quick", out: str | Path | None = None) -> set[str]:
    """The device types (cpu, cuda, mps) the stored rows of one experiment and profile were made on, from their provenance."""
    store = ResultsStore(out, get_experiment(experiment), profile)
    if not store.meta.exists():
        return set()
    sessions = [s for s in json.loads(store.meta.read_text())["sessions"] if s.get("event") == "start"]
    return {s["device"].split(":")[0] if s.get("device") else ("cuda" if s.get("gpu") else "cpu") for s in sessions}


def check_live(experiment: str, live: dict[str, dict], metrics: tuple[str, ...] = ("test_accuracy",),
               tolerance: float | dict[str, float] = 0.02, profile: str | None = None,
               out: str | Path | None = None) -> pd.DataFrame | None:
    """Compare live runs (variant -> `run_cell` result) with the stored rows of the same cells; fail if stale.

    Stored and live runs use the same code, settings and seed, so on the same kind of device they differ only by
    floating-point order (thread count). A gap above `tolerance` (one for all metrics, or metric -> tolerance) means the
    stored evidence no longer describes the library: re-run `hft sweep` and commit the new results. Only like is compared
    with like: without stored rows of this profile (e.g. the full profile), on another kind of device than the stored rows'
    (their provenance says where they ran: a GPU's kernels and mixed precision move results by more than any tolerance
    that would still catch a stale library) or under HFT_SMOKE (capped runs), it says there is nothing to compare and
    returns None.
    """
    from ..config import get_profile

    profile = profile or next((r["profile"] for r in live.values() if "profile" in r), None) or get_profile().name
    if smoke():
        print(f"Nothing to compare: HFT_SMOKE capped the live run, and the stored {experiment!r} rows are of whole runs.")
        return None
    if not results_csv(experiment, profile, out).exists():  # before the store resolves settings this profile may lack
        print(f"Nothing to compare: there are no stored {profile}-profile results of {experiment!r} "
              f"(`hft sweep {experiment} --profile {profile}` makes them).")
        return None
    live_devices = {str(r.get("device", get_device())).split(":")[0] for r in live.values()}
    made_on = stored_devices(experiment, profile, out)
    if made_on and live_devices != made_on:
        print(f"Nothing to compare: the stored {profile}-profile {experiment!r} rows were made on {', '.join(sorted(made_on))} "
              f"and this live run ran on {', '.join(sorted(live_devices))}; other kernels and precision move the results, "
              "so only a run on the same kind of device checks that the evidence is still this library's.")
        return None
    stored = load_results(experiment, profile, out)
    rows = []
    for variant, result in live.items():
        match = stored[stored["cell"] == result["cell"]]
        if match.empty:
            raise AssertionError(f"No stored row for {variant} (cell {result['cell']}): the sweep has not run it yet, or its "
                                 f"settings changed; run `hft sweep {experiment}` and commit data/results.")
        for metric in metrics:
            rows.append({"variant": variant, "metric": metric, "live": result[metric], "stored": float(match[metric].iloc[0])})
    table = pd.DataFrame(rows)
    table["difference"] = (table["live"] - table["stored"]).abs()
    table["tolerance"] = [tolerance[m] if isinstance(tolerance, dict) else tolerance for m in table["metric"]]
    stale = table[table["difference"] > table["tolerance"]]
    if not stale.empty:
        raise AssertionError(f"Live and stored runs differ by more than the tolerance in "
                             f"{', '.join(stale['variant'] + ' ' + stale['metric'])}: the stored evidence is stale; "
                             f"undo the library change that moved them, or move {results_csv(experiment, profile, out).name} and its .json away, re-run "
                             f"`hft sweep {experiment} --profile {profile}` and commit data/results.")
    return table.set_index(["variant", "metric"])


def progress_table(profile: str = "quick", out: str | Path | None = None) -> pd.DataFrame:
    """Every experiment: its question, runs stored of runs planned, mean seconds per stored run, and what it waits for
    (what `hft sweep --list` prints: the compute plan, resumable across sessions)."""
    rows = []
    for name, experiment in EXPERIMENTS.items():
        path = results_csv(name, profile, out)
        stored = pd.read_csv(path) if path.exists() else pd.DataFrame()
        try:
            planned, waits = len(experiment.cells(profile)), ""
        except ValueError:  # its rates or subset come from a sweep not finished yet
            planned = sum(1 for s in (*experiment.seeds, *experiment.more_seeds) for v in experiment.variants
                          if s in experiment.seeds or v["strategy"] in experiment.more_for)
            waits = ", ".join(n for n in (experiment.rates_from if isinstance(experiment.rates_from, tuple)
                                          else (experiment.rates_from,)) + (experiment.pick_from,) if n)
        rows.append({"experiment": name, "runs": f"{len(stored)} / {planned}",
                     "s per run": round(float(stored["wall_s"].mean()), 0) if "wall_s" in stored else None,
                     "waits for": waits, "question": experiment.question[:70]})
    return pd.DataFrame(rows).set_index("experiment")
