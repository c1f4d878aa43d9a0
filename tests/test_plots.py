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




def test_claims_forest_plot_colours_each_verdict_and_draws_the_margin():
    from hft_lib.viz.evidence import plot_claims

    table = pd.DataFrame([
        {"claim": "A", "candidate": "x", "reference": "full", "metric": "test_accuracy", "diff": 0.05, "ci_low": 0.02,
         "ci_high": 0.08, "margin": 0.0, "verdict": "supported"},
        {"claim": "B", "candidate": "y", "reference": "full", "metric": "test_accuracy", "diff": 0.0, "ci_low": -0.03,
         "ci_high": 0.03, "margin": 0.02, "verdict": "not resolved at this budget"}])
    fig = plot_claims(table)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A: x vs full", "B: y vs full"]
    assert ax.get_xlabel() and ax.get_title()
    assert len(ax.collections) >= 1  # the equivalence band of B


def test_variants_plot_clips_accuracy_to_its_range():
    from hft_lib.viz.evidence import plot_variants

    summary = pd.DataFrame({"n": [5, 5], "test_accuracy": [0.9, 0.5], "test_accuracy_low": [0.7, 0.3],
                            "test_accuracy_high": [1.1, 0.7]}, index=["full", "lower_half"])
    ax = plot_variants(summary, baseline=0.2).axes[0]
    assert ax.get_ylim() == (0, 1) and "5 seeds" in ax.get_title()


def test_the_forest_plot_lays_out_a_long_verdict_without_a_warning():
    import warnings

    import pandas as pd

    from hft_lib.viz.evidence import plot_claims

    why = "not testable here: autofreeze froze nothing within this budget (it ran as full fine-tuning)"
    table = pd.DataFrame([{"claim": "AutoFreeze", "candidate": "autofreeze", "reference": "full", "metric": "test_accuracy",
                           "diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "margin": 0.02, "verdict": why}] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Tight layout not applied" would fail a notebook under nbval (stderr differs)
        fig = plot_claims(table)
    assert all(t.get_text().startswith("not testable here (") for t in fig.axes[0].texts)
