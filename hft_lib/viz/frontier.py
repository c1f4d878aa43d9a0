"""The strategy chart and explorer of notebook 06: quality against retention per strategy, from `experiments.frontier`'s frame."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..experiments.frontier import COSTS, QUALITY_MARGIN, RETENTION_LABEL, RETENTION_MARGIN, leader
from .plots import wrap_to_width
from .tradeoff import plot_quality_retention
from .widgets import with_text_fallback


def plot_model(frame: pd.DataFrame, model: str, budget: str | None = None, highlight: str | None = None, ax=None,
               cost: str = "step_time_vs_full"):
    """Quality vs retention for one model at one budget (default: the largest); size and colour = `cost` (see COSTS)."""
    if cost not in COSTS:
        raise ValueError(f"Unknown cost {cost!r}; choose from {', '.join(COSTS)}.")
    runs = frame[frame["model"] == model]
    budget = budget or runs.loc[runs["steps"].idxmax(), "budget"]
    runs = runs[runs["budget"] == budget]
    own = ax is None
    ax = ax or plt.subplots(figsize=(6.5, 5.3))[1]
    plot_quality_retention(runs, "quality", "retention", cost, ax=ax, quality_label="held-out task accuracy",
                  retention_label=RETENTION_LABEL.get(model, "retention (%)"), cost_label=COSTS[cost])
    if highlight is not None:
        row = runs[runs["strategy"] == highlight].iloc[0]
        ax.scatter([row["quality"]], [row["retention"]], s=700, facecolors="none", edgecolors="red", linewidths=2)
    ranked = runs.set_index("strategy")  # a leader named with what the seeds cannot separate from it, not a bare winner
    best, keeps = leader(ranked, "quality", QUALITY_MARGIN, True), leader(ranked, "retention", RETENTION_MARGIN, True)
    ax.set_title(f"{model}, {budget}\nmost accurate: {best}; keeps most: {keeps}", fontsize=10)
    wrap_to_width(ax.title, ax.get_window_extent().width)  # no wider than its axes
    if own:
        ax.figure.subplots_adjust(top=0.8)  # room above the axes for a wrapped title
    return ax


def explorer(frame: pd.DataFrame):
    """An ipywidgets explorer: pick model, strategy and budget among the computed runs, and the cost that sizes and
    colours the points (time per step, trainable share, training memory); shows the chart and the run's numbers."""
    import ipywidgets as widgets
    from IPython.display import clear_output, display

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
