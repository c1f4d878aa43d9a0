"""The picture of this package: which weights each strategy trains, matrix by matrix, read from `requires_grad`.

`trainable_map` sets a fresh model up for a strategy (the registry's `prepare`, exactly as a run does) and reads, for
every matrix of every layer, whether its weight trains, only its bias, only a LoRA adapter beside it, or nothing.
`plot_what_trains` draws one row per strategy: the model's parts left to right (embeddings, each layer's matrices,
the head), coloured by that state. Nothing is drawn from a description of a strategy; what is drawn is what trains.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Patch

# A BERT-family layer's matrices, in the order a token meets them, and a short label for each.
UNITS = {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
         "attention.output.dense": "o", "attention.output.LayerNorm": "n", "intermediate.dense": "f1",
         "output.dense": "f2", "output.LayerNorm": "n"}
STATES = {"trains": "#1f4e99", "adapter only": "#e08a1e", "bias only": "#9cc3e6", "frozen": "#e3e3e3"}
STRATEGIES = ("full", "lower_half", "alternate", "hft_paper", "lora", "bitfit", "lisa")


def _unit(name: str) -> tuple[str, str]:
    """(part, unit) of a parameter name: part is "embeddings", "layer i" or "head"; unit a matrix of the layer."""
    layer = re.search(r"\.layer\.(\d+)\.(.*)", name)
    if "embeddings" in name:
        return "embeddings", "embeddings"
    if not layer:
        return "head", "head"
    rest = layer.group(2)
    unit = next((u for u in UNITS if rest.startswith(u) or f".{u}." in f".{rest}"), None)
    if unit == "output.dense" and rest.startswith("attention"):
        unit = "attention.output.dense"
    return f"layer {layer.group(1)}", unit or rest.split(".")[0]


def trainable_map(strategy: str, model_name: str = "minilm-l6", seed: int = 0) -> pd.DataFrame:
    """One row per matrix (part, unit) of `model_name` set up for `strategy`: its `state` (trains, adapter only, bias
    only, frozen) and how many of its parameters train. LISA and the paper's half show their first draw (seed `seed`)."""
    from ..models import load_model
    from ..strategies import prepare

    model, _ = load_model(model_name, num_labels=2)
    prepared = prepare(strategy, model, 1e-4, seed=seed, total_steps=100)
    rows: dict[tuple[str, str], dict] = {}
    for name, p in prepared.ft.model.named_parameters():
        key = _unit(name.replace("base_model.model.", ""))
        row = rows.setdefault(key, {"part": key[0], "unit": key[1], "weight": False, "bias": False, "adapter": False,
                                    "trainable": 0, "parameters": 0})
        adapter = "lora_" in name
        row["parameters"] += 0 if adapter else p.numel()
        if p.requires_grad:
            row["trainable"] += p.numel()
            row["adapter" if adapter else "bias" if name.endswith("bias") else "weight"] = True
    frame = pd.DataFrame(rows.values())
    frame["state"] = ["trains" if r.weight else "adapter only" if r.adapter else "bias only" if r.bias else "frozen"
                      for r in frame.itertuples()]
    frame.attrs["strategy"] = strategy
    return frame


def plot_what_trains(strategies: Sequence[str] = STRATEGIES, model_name: str = "minilm-l6", seed: int = 0,
                     title: str | None = None):
    """One row per strategy, the model's matrices left to right (input at the left), coloured by what trains in each.
    Returns the figure."""
    maps = {s: trainable_map(s, model_name, seed) for s in strategies}
    parts = list(dict.fromkeys(maps[strategies[0]]["part"]))
    parts = ["embeddings", *[p for p in parts if p.startswith("layer")], "head"]
    layout = [(part, unit) for part in parts for unit in (UNITS if part.startswith("layer") else [part])]
    fig, ax = plt.subplots(figsize=(9.4, 0.45 * len(strategies) + 1.3))
    x, starts = 0.0, {}
    for part, unit in layout:  # a gap between parts; a whole part (embeddings, head) is as wide as three matrices
        if part not in starts:
            x += 0.6 if starts else 0
            starts[part] = x
        width = 3.0 if unit == part else 1.0
        for row, strategy in enumerate(strategies):
            frame = maps[strategy]
            match = frame[(frame["part"] == part) & (frame["unit"] == unit)]
            state = match["state"].iloc[0] if len(match) else "frozen"
            ax.add_patch(plt.Rectangle((x + 0.05, row + 0.1), width - 0.1, 0.8, color=STATES[state]))
        x += width
    for part, start in starts.items():
        end = start + (3.0 if part in ("embeddings", "head") else len(UNITS))
        ax.text((start + end) / 2, len(strategies) + 0.15, part.replace("layer ", "L"), ha="center", va="bottom", fontsize=8)
    first = starts[parts[1]]
    for i, label in enumerate(UNITS.values()):
        ax.text(first + i + 0.5, -0.12, label, ha="center", va="bottom", fontsize=8, rotation=90)
    ax.set_xlim(0, x)
    ax.set_ylim(len(strategies) + 0.6, -0.8)
    ax.set_yticks([r + 0.5 for r in range(len(strategies))], list(strategies), fontsize=9)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.legend(handles=[Patch(color=c, label=s) for s, c in STATES.items()], loc="upper center", ncol=len(STATES),
              bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False)
    ax.set_title(title or f"What each strategy trains in {model_name}, read from requires_grad (L: layer; q k v o: "
                          "attention, f1 f2: feed-forward, n: norms)", fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.99, top=0.9, bottom=0.1)
    return fig
