"""One registry of strategy names: every front end takes its names from it and answers an unknown one the same way."""

import ast
import json
from pathlib import Path

import pytest

from hft_lib.experiments.cli import DEFAULT_STRATEGIES, main
from hft_lib.experiments.sweep import EXPERIMENTS
from hft_lib.strategies import DECODER_STRATEGIES, REGISTRY, STRATEGIES, check_strategies, describe_strategies, get_strategy

NOTEBOOKS = sorted(Path(__file__).parents[1].glob("notebooks/*.ipynb"))
RUNNERS = ("run_classification", "run_lm", "get_strategy", "prepare")


def test_every_strategy_has_a_one_line_description_and_a_kind():
    assert all(s.description and "\n" not in s.description and s.kind in ("layers", "gradual", "parameters", "adaptive")
               for s in REGISTRY.values())
    assert describe_strategies().splitlines()[0].startswith("full ")
    assert set(DECODER_STRATEGIES) < set(STRATEGIES)


def test_hft_strategies_lists_the_registry(capsys):
    assert main(["strategies"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(STRATEGIES)


def test_front_ends_take_their_names_from_the_registry():
    assert set(DEFAULT_STRATEGIES.split(",")) <= set(STRATEGIES)
    for experiment in EXPERIMENTS.values():
        allowed = DECODER_STRATEGIES if experiment.protocol == "lm_curve" else STRATEGIES
        assert {v["strategy"] for v in experiment.variants} <= set(allowed), experiment.name


def _strategy_literals(source: str) -> set[str]:
    """String literals passed as the first argument to a runner, or listed in a `strategies = [...]` assignment."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        runner = isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in RUNNERS
        if runner and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            found.add(node.args[0].value)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "strategies" for t in node.targets):
            found |= {e.value for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)}
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_use_registered_names_only(notebook):
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    source = "\n".join("".join(line for line in c["source"] if not line.lstrip().startswith(("!", "%"))) for c in cells)
    names = _strategy_literals(source)
    assert names <= set(STRATEGIES), f"{notebook.name} uses unregistered strategy names {names - set(STRATEGIES)}"


@pytest.mark.parametrize("call,decoder", [(lambda: get_strategy("upper_third"), False),
                                          (lambda: check_strategies(["full", "upper_third"]), False),
                                          (lambda: check_strategies(["upper_third"], decoder=True), True)])
def test_an_unknown_name_gets_one_message(call, decoder):
    with pytest.raises(ValueError, match=r"Unknown (decoder )?strategy 'upper_third'; choose from full, .*`hft strategies` lists them"):
        call()


def test_an_encoder_only_strategy_on_a_decoder_says_so():
    with pytest.raises(ValueError, match="Unknown decoder strategy 'gradual_top_down'; choose from full, lower_half"):
        get_strategy("gradual_top_down", decoder=True)
