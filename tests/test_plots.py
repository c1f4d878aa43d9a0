"""The notebook plots draw from small synthetic frames, label their axes and state a finding in the title."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from hft_lib.viz import plots


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _title(fig) -> str:
    return fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title()


def _assert_labelled(fig) -> None:
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()


def test_layer_probes_name_the_best_layer_of_each_task():
    before = pd.DataFrame({"a": [0.5, 0.7, 0.6], "b": [0.9, 0.8, 0.7]}).rename_axis("layer")
    after = before - 0.1
    fig = plots.plot_layer_probes(before, after, chance={"a": 0.3, "b": 0.5})
    _assert_labelled(fig)
    assert "a at hidden state 1" in _title(fig) and "b at hidden state 0" in _title(fig)
    assert len(fig.axes[0].lines) == 2 * 2 + 2  # two curves per task plus two chance lines


def test_layer_change_reports_cka_and_most_moved_part():
    cka = pd.DataFrame({"trec6": [1.0, 0.95, 0.6], "sms": [0.99, 0.9, 0.5]})
    change = pd.Series({"embeddings": 0.001, "layer 0": 0.01, "layer 1": 0.03})
    fig = plots.plot_layer_change(cka, change)
    _assert_labelled(fig)
    assert "more with depth" in _title(fig) and "layer 1" in _title(fig) and "0.55 at the top" in _title(fig)
    assert plots.plot_layer_change(cka["trec6"], change, title="custom")._suptitle.get_text() == "custom"


def _results() -> pd.DataFrame:
    return pd.DataFrame({"strategy": ["full", "lower_half", "head_only"], "test_accuracy": [0.9, 0.85, 0.4],
                         "retention_pct": [90.0, 99.0, 100.0], "epoch_time_s": [14.0, 7.0, 4.0],
                         "majority_baseline": [0.22] * 3})


def test_strategy_comparison_has_one_panel_per_measure_and_names_the_winners():
    fig = plots.plot_strategy_comparison(_results())
    assert len(fig.axes) == 3
    assert all(ax.get_ylabel() for ax in fig.axes)
    assert "Most accurate: full" in _title(fig) and "fastest per epoch: head_only" in _title(fig)
    fig = plots.plot_strategy_comparison(_results().drop(columns=["retention_pct", "majority_baseline"]))
    assert len(fig.axes) == 2 and "keeps" not in _title(fig)


def test_tradeoff_scatter():
    fig = plots.plot_tradeoff(_results())
    _assert_labelled(fig)
    assert "full is most accurate and head_only keeps most" in _title(fig)


def test_train_size_sweep_averages_seeds():
    rows = [{"strategy": s, "train_examples": n, "seed": seed, "test_accuracy": acc + 0.02 * seed}
            for s, accs in {"full": [0.5, 0.8, 0.9], "lower_half": [0.6, 0.75, 0.85]}.items()
            for n, acc in zip([100, 300, 1000], accs) for seed in (0, 1)]
    fig = plots.plot_train_size_sweep(pd.DataFrame(rows), baseline=0.22)
    _assert_labelled(fig)
    assert "100 examples: lower_half (0.61)" in _title(fig) and "1,000: full (0.91)" in _title(fig)
    assert fig.axes[0].get_xscale() == "log"
