"""LISA's optimizer state once layers leave the active set, against full fine-tuning's, counted from the tensors.

    HF_HUB_OFFLINE=1 python benchmarks/lisa_memory.py                      # MiniLM-L6 (22.7M parameters): ~15 s
    HF_HUB_OFFLINE=1 python benchmarks/lisa_memory.py --model smollm2-135m  # the decoder (minutes on a CPU)
    python benchmarks/lisa_memory.py --tiny                                 # a 6-layer BERT from a config: a smoke test

Three runs from the same weights, on the same batches, through `hft_lib.fit`:

* full: every parameter trains (AdamW keeps two moments per parameter);
* lisa: `hft_lib.strategies.lisa.LISA`, `--active` layers (plus embeddings and head) redrawn every `--every` steps; the
  layers that leave are removed from the optimizer and their state deleted;
* lisa, state kept: the same draws, but only `requires_grad` is switched and the optimizer holds every
  parameter, as in LMFlow's LISA trainer (its users report the memory never drops: OptimalScale/LMFlow
  issues #729 and #768). AdamW skips a parameter without a gradient, but keeps its moments.

After every optimizer step (before a redraw) the script sums the bytes of every tensor in `optimizer.state`
(`hft_lib.training.optimizer_state_bytes`). The target: LISA's largest state over the run is at most the state
full fine-tuning holds for the active layers + embeddings + head (measured in the full run, tensor by tensor).
The batches are random token ids: how many bytes the state takes does not depend on the data.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

import hft_lib as hft
from hft_lib.strategies.lisa import LISA
from hft_lib.training import optimizer_state_bytes


class KeptStateLISA(LISA):
    """LMFlow's behaviour: the same draws, only requires_grad switched; the optimizer (over every parameter) keeps all state."""

    def on_optimizer(self, run) -> None:
        """Leave the optimizer as it was built (no groups removed, no state freed)."""


class StateRecorder(hft.Callback):
    """Optimizer-state bytes after every step, before the strategy's redraw (the round's largest)."""

    order = -1

    def __init__(self):
        self.bytes: list[int] = []

    def on_step_end(self, run) -> None:
        self.bytes.append(optimizer_state_bytes(run.optimizer))


def build(model_name: str, tiny: bool):
    """(model, batches) for the run: 4 x 16 random tokens per batch (the state's size does not depend on them)."""
    if tiny:
        from transformers import BertConfig, BertForSequenceClassification

        torch.manual_seed(0)
        model = BertForSequenceClassification(BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=6,
                                                         num_attention_heads=4, intermediate_size=128, num_labels=6))
    elif model_name.startswith("smollm"):
        model, _ = hft.load_model(model_name, kind="causal_lm")
    else:
        model, _ = hft.load_model(model_name, num_labels=6)
    g = torch.Generator().manual_seed(0)
    vocab, lm = model.config.vocab_size, model.config.is_decoder or "CausalLM" in type(model).__name__

    def batch():
        ids = torch.randint(0, vocab, (4, 16), generator=g)
        labels = ids if lm else torch.randint(0, 6, (4,), generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    return model, [batch() for _ in range(4)]


def run(name: str, model, batches, steps: int, active: int, every: int) -> dict:
    """Train a fresh copy of `model` for `steps` steps with one of the three setups; the state bytes per step."""
    import copy

    ft = hft.Finetuner(copy.deepcopy(model), "full", verbose=False)
    recorder, callbacks, optimizer = StateRecorder(), [], None
    if name != "lisa":  # full; and LMFlow's, built while everything is trainable
        optimizer = hft.build_optimizer(ft, 1e-4)
    if name != "full":
        callbacks = [(LISA if name == "lisa" else KeptStateLISA)(ft, active=active, every=every, seed=0)]
    hft.fit(ft, batches, epochs=-(-steps // len(batches)), max_steps=steps, lr=1e-4, optimizer=optimizer,
            callbacks=[*callbacks, recorder], progress=False, config=hft.FitConfig(seed=0, device="cpu"))
    optimizer = optimizer or callbacks[0].optimizer
    state = {n: sum(t.numel() * t.element_size() for t in optimizer.state.get(p, {}).values() if torch.is_tensor(t))
             for n, p in ft.params.items()}
    # (for full) the state of what LISA holds at once: embeddings + head + the `active` largest layers
    layers = sorted((sum(state[n] for n in names) for names in ft.parts.layers), reverse=True)
    target = sum(state[n] for n in ft.parts.embeddings + ft.parts.head) + sum(layers[:active])
    freed = callbacks[0].freed if name == "lisa" else []
    return {"name": name, "bytes": recorder.bytes, "target": target, "freed": freed, "layers": ft.n_layers}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6", help="an embedded model name (minilm-l6, smollm2-135m)")
    parser.add_argument("--tiny", action="store_true", help="a 6-layer BERT built from a config instead (a smoke test)")
    parser.add_argument("--active", type=int, default=2, help="LISA's active layers (default 2)")
    parser.add_argument("--every", type=int, default=2, help="steps per LISA round (default 2: short, every layer gets drawn)")
    parser.add_argument("--rounds", type=int, default=4, help="LISA rounds to run (default 4)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True).stdout.strip()
    name = "tiny BERT (6 layers, config)" if args.tiny else args.model
    print(f"# LISA optimizer state: {name}; {platform.machine()}, torch {torch.__version__}, python "
          f"{sys.version.split()[0]}, commit {commit or '?'}; active {args.active}, every {args.every}, rounds {args.rounds}")
    model, batches = build(args.model, args.tiny)
    steps = args.every * args.rounds
    full = run("full", model, batches, 2, args.active, args.every)  # the state is complete after the first step
    full_bytes = max(full["bytes"])
    rows = [full, run("lisa", model, batches, steps, args.active, args.every),
            run("lisa, state kept (LMFlow)", model, batches, steps, args.active, args.every)]
    target = full["target"]
    print(f"\n{full['layers']} layers; target: LISA's state <= full's state of {args.active} layers + embeddings + head = "
          f"{target / 2**20:.1f} MiB ({target / full_bytes:.3f} of full's)\n")
    print("| run | state after each step (MiB) | largest MiB | largest / full | target met |")
    print("|---|---|---:|---:|---|")
    for row in rows:
        largest = max(row["bytes"])
        per_step = " ".join(f"{b / 2**20:.1f}" for b in row["bytes"])
        met = "" if row is full else ("yes" if largest <= target else "NO")
        print(f"| {row['name']} | {per_step} | {largest / 2**20:.1f} | {largest / full_bytes:.3f} | {met} |")
    print(f"\nLISA freed at each redraw (MiB): {' '.join(f'{b / 2**20:.1f}' for b in rows[1]['freed'])}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
