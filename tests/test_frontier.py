"""The strategy explorer and charts of notebook 06, on a hand-made frame of runs (no training)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from hft_lib import Finetuner, fit
from hft_lib.experiments.frontier import COSTS, relative_cost
from hft_lib.viz.frontier import explorer, plot_model

from .conftest import tiny_batches, tiny_bert


def runs() -> pd.DataFrame:
    rows = []
    for model, budgets in (("enc", ("1 epochs", "2 epochs")), ("dec", ("4 steps", "8 steps"))):
        for i, strategy in enumerate(("full", "lower_half", "lora")):
            for steps, budget in enumerate(budgets, start=1):
                rows.append({"model": model, "strategy": strategy, "budget": budget, "steps": steps * 4,
                             "quality": 0.5 + 0.1 * i + 0.05 * steps, "retention": 90.0 + 3 * i, "step_time_s": 1.0 - 0.2 * i,
                             "trainable_pct": 100.0 / (1 + 10 * i), "state_mb": 400.0 - 100 * i})
    return pd.concat([relative_cost(group.copy()) for _, group in pd.DataFrame(rows).groupby("model", sort=False)])


def test_every_cost_measure_sizes_and_colours_the_points():
    frame = runs()
    for cost, label in COSTS.items():
        ax = plot_model(frame, "dec", cost=cost)
        assert ax.figure.axes[-1].get_ylabel() == label  # the colour bar names the cost shown
        assert "8 steps" in ax.get_title() and "most accurate: lora" in ax.get_title()
        plt.close(ax.figure)
    with pytest.raises(ValueError, match="Unknown cost"):
        plot_model(frame, "dec", cost="price")


def test_explorer_offers_only_computed_runs_and_redraws_on_every_choice(monkeypatch):
    from hft_lib.viz import frontier

    drawn = []
    monkeypatch.setattr(frontier, "plot_model", lambda frame, model, budget, highlight, cost: drawn.append((model, budget, highlight, cost)))
    monkeypatch.setattr(plt, "show", lambda: None)
    model, strategy, budget, cost = explorer(runs()).children[0].children
    assert list(model.options) == ["enc", "dec"] and drawn == [("enc", "2 epochs", "full", "step_time_vs_full")]
    model.value = "dec"
    assert drawn[1:] == [("dec", "8 steps", "full", "step_time_vs_full")]  # one chart per choice
    assert list(budget.options) == ["4 steps", "8 steps"] and list(strategy.options) == ["full", "lower_half", "lora"]
    cost.value, strategy.value, budget.value = "state_mb", "lora", "4 steps"
    assert drawn[-1] == ("dec", "4 steps", "lora", "state_mb")


def test_fit_records_the_training_state_it_held():
    full = fit(Finetuner(tiny_bert(), "full", verbose=False), tiny_batches(2), epochs=1, progress=False)
    half = fit(Finetuner(tiny_bert(), "lower_half", verbose=False), tiny_batches(2), epochs=1, progress=False)
    weights = sum(p.numel() * 4 for p in tiny_bert().parameters()) / 2**20
    assert full.state_mb == pytest.approx(4 * weights, rel=0.01)  # weights + grads + two AdamW moments (+ step counters)
    assert weights < half.state_mb < full.state_mb
