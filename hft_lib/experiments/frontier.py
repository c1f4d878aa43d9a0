"""Choosing a strategy: every strategy on the encoder and the decoder, from the stored sweeps.

One row per (model, strategy, budget), averaged over seeds, with the same three kinds of measure on both models:
- quality: held-out task accuracy (encoder: TREC-6 classifier; decoder: label-word choice on TREC-6 prompts);
- retention, higher is better and 100 means nothing lost: encoder: the share of the held-out probes'
  above-chance accuracy kept (`retention_cc`); decoder: 100 x news perplexity before / after;
- cost: time per optimiser step (also relative to full fine-tuning of the same model) and trainable share.
"""

from __future__ import annotations

import pandas as pd

ENCODER = "minilm-l6"
DECODER = "smollm2-135m"
# Cost measures a chart can size and colour its points by: column -> axis label.
COSTS = {"step_time_vs_full": "time per step / full fine-tuning",
         "trainable_pct": "trainable parameters (%)",
         "state_mb": "training state: weights + grads + AdamW (MiB)"}
RUN_COSTS = ("step_time_s", "trainable_pct", "state_mb")  # measured once per run, shown at every budget
RETENTION_LABEL = {ENCODER: "retention: above-chance probe accuracy kept (%)",
                   DECODER: "retention: 100 x news perplexity before / after (%)"}


def from_evidence(out=None, profile: str = "quick") -> pd.DataFrame:
    """The same table built from the stored sweeps (`strategies` for the encoder, `decoder`), averaged over seeds.

    `quality_seeds` and `retention_seeds` keep the per-seed values (in seed order), so `choose_table` names
    every strategy whose paired difference from the best is not resolved, instead of a winner inside the noise.
    """
    from .sweep import RESULTS, load_results

    out = out or RESULTS
    rows = []

    def add(model, variant, group, budget, steps, quality, retention):
        group = group.sort_values("seed")  # per-seed values in seed order, for paired ties in choose_table
        quality, retention = quality.loc[group.index], retention.loc[group.index]
        rows.append({"model": model, "strategy": variant, "budget": budget, "steps": steps, "quality": quality.mean(),
                     "retention": retention.mean(), "quality_seeds": tuple(quality), "retention_seeds": tuple(retention),
                     "n": len(group), **{k: group[k].mean() for k in RUN_COSTS}})

    encoder = load_results("strategies", profile, out)
    for variant, group in encoder.groupby("variant", sort=False):
        add(ENCODER, variant, group, f"{group['epochs'].iloc[0] if 'epochs' in group else 3} epochs", 0,
            group["test_accuracy"], group["retention_cc"])
    decoder = load_results("decoder", profile, out)
    budgets = sorted(int(c.split("@")[1]) for c in decoder.columns if c.startswith("task_accuracy@"))
    for variant, group in decoder.groupby("variant", sort=False):
        for b in budgets:
            add(DECODER, variant, group, f"{b} steps", b, group[f"task_accuracy@{b}"],
                100 / (1 + group[f"forgetting_pct@{b}"] / 100))
    frame = pd.DataFrame(rows)
    return pd.concat([_relative_cost(part.copy()) for _, part in frame.groupby("model", sort=False)], ignore_index=True)


def _relative_cost(frame: pd.DataFrame) -> pd.DataFrame:
    full = frame.loc[frame["strategy"] == "full", "step_time_s"]
    frame["step_time_vs_full"] = frame["step_time_s"] / full.iloc[0] if len(full) else float("nan")
    return frame


def choose_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Which strategy to choose when, per model, picked from the measured rows (largest budget unless stated)."""
    rows = []
    for model, runs in frame.groupby("model", sort=False):
        last = runs[runs["steps"] == runs["steps"].max()].set_index("strategy")
        first = runs[runs["steps"] == runs["steps"].min()].set_index("strategy")
        good = last[last["quality"] >= last["quality"].max() - 0.02]
        picks = {
            "best task quality, cost no object": (_tied(last, "quality"), f"accuracy {last['quality'].max():.2f}"),
            "keep what the model knew": (_tied(last, "retention"), f"retention {last['retention'].max():.1f}%"),
            "balance: within 2 points of the best accuracy, most retention":
                (good["retention"].idxmax(), (f"accuracy {good.loc[good['retention'].idxmax(), 'quality']:.2f}, "
                                             f"retention {good['retention'].max():.1f}%")),
            "smallest training budget": (first["quality"].idxmax(), f"accuracy {first['quality'].max():.2f} after {first['budget'].iloc[0]}"),
            "cheapest step": (last["step_time_vs_full"].idxmin(), f"{last['step_time_vs_full'].min():.2f}x the time of full"),
            "fewest trainable parameters (small per-task files)":
                (last["trainable_pct"].idxmin(), f"{last['trainable_pct'].min():.2f}% trainable"),
        }
        for situation, (strategy, why) in picks.items():
            rows.append({"situation": situation, "model": model, "choose": strategy, "measured": why})
    table = pd.DataFrame(rows)
    return table.pivot(index="situation", columns="model", values=["choose", "measured"]).reindex(list(picks))


def _tied(runs: pd.DataFrame, column: str) -> str:
    """The best strategy by `column`, plus (with per-seed values) every one whose paired difference from it is not
    resolved: the 95 % interval of best - other over the same seeds includes 0."""
    from ..measure.stats import mean_ci

    best = runs[column].idxmax()
    if f"{column}_seeds" not in runs:
        return best
    tied = []
    for other in runs.index.drop(best):
        pairs = zip(runs.loc[best, f"{column}_seeds"], runs.loc[other, f"{column}_seeds"])
        if not mean_ci([a - b for a, b in pairs])[1] > 0:  # the interval's lower end
            tied.append(other)
    return best + (f" (not resolved against: {', '.join(tied)})" if tied else "")


def plot_model(frame: pd.DataFrame, model: str, budget: str | None = None, highlight: str | None = None, ax=None,
               cost: str = "step_time_vs_full"):
    """Quality vs retention for one model at one budget (default: the largest); size and colour = `cost` (see COSTS)."""
    if cost not in COSTS:
        raise ValueError(f"Unknown cost {cost!r}; choose from {', '.join(COSTS)}.")
    import matplotlib.pyplot as plt

    from ..viz.tradeoff import plot_quality_retention

    runs = frame[frame["model"] == model]
    budget = budget or runs.loc[runs["steps"].idxmax(), "budget"]
    runs = runs[runs["budget"] == budget]
    ax = ax or plt.subplots(figsize=(6.5, 4.5))[1]
    plot_quality_retention(runs, "quality", "retention", cost, ax=ax, quality_label="held-out task accuracy",
                  retention_label=RETENTION_LABEL.get(model, "retention (%)"), cost_label=COSTS[cost])
    if highlight is not None:
        row = runs[runs["strategy"] == highlight].iloc[0]
        ax.scatter([row["quality"]], [row["retention"]], s=700, facecolors="none", edgecolors="red", linewidths=2)
    best = runs.loc[runs["quality"].idxmax(), "strategy"]
    keeps = runs.loc[runs["retention"].idxmax(), "strategy"]
    ax.set_title(f"{model}, {budget}\nmost accurate: {best}; keeps most: {keeps}", fontsize=10)
    return ax


def explorer(frame: pd.DataFrame):
    """An ipywidgets explorer: pick model, strategy and budget among the computed runs, and the cost that sizes and
    colours the points (time per step, trainable share, training memory); shows the chart and the run's numbers."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import clear_output, display

    from ..viz.widgets import with_text_fallback

    models = list(dict.fromkeys(frame["model"]))
    whole = {"style": {"description_width": "initial"}}  # the labels are shown in full, not cut to a fixed width
    model = widgets.Dropdown(options=models, description="model", **whole)
    strategy = widgets.Dropdown(description="strategy", layout=widgets.Layout(width="max-content"), **whole)
    budget = widgets.Dropdown(description="budget", **whole)
    cost = widgets.Dropdown(options=[(label, column) for column, label in COSTS.items() if column in frame], description="cost",
                            layout=widgets.Layout(width="max-content"), **whole)
    out = widgets.Output()
    updating = False  # while the menus are refilled for a new model, their changes draw nothing

    def options(*_):  # a Dropdown given new options selects nothing: keep the choice if offered, else a default
        nonlocal updating
        updating = True
        runs = frame[frame["model"] == model.value]
        chosen = strategy.value
        strategy.options = list(dict.fromkeys(runs["strategy"]))
        strategy.value = chosen if chosen in strategy.options else strategy.options[0]
        budget.options = list(dict.fromkeys(runs.sort_values("steps")["budget"]))
        budget.value = budget.options[-1]
        updating = False

    def render(*_):
        if updating or strategy.value is None or budget.value is None:
            return
        with out:
            clear_output(wait=True)
            plot_model(frame, model.value, budget.value, highlight=strategy.value, cost=cost.value)
            plt.show()
            row = frame[(frame["model"] == model.value) & (frame["strategy"] == strategy.value) & (frame["budget"] == budget.value)]
            display(row.drop(columns=["model", "quality_seeds", "retention_seeds"], errors="ignore").round(3))

    model.observe(options, names="value")
    for control in (model, strategy, budget, cost):
        control.observe(render, names="value")
    options()
    render()
    return with_text_fallback(widgets.VBox([widgets.HBox([model, strategy, budget, cost],
                                                         layout=widgets.Layout(flex_flow="row wrap")), out]),
                              "[The strategy explorer: it needs a running kernel with ipywidgets (a trusted notebook, "
                              "JupyterLab or Colab). Here it cannot run; the static chart after it shows one choice.]")
