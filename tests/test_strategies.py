"""One registry of strategy names: every front end takes its names from it and answers an unknown one the same way."""

import ast
import json
from pathlib import Path

import pytest

from hft_lib.experiments.catalogue import PICKED
from hft_lib.experiments.cli import DEFAULT_STRATEGIES, main
from hft_lib.experiments.sweep import EXPERIMENTS
from hft_lib.freezing import Finetuner
from hft_lib.strategies import (
    DECODER_STRATEGIES,
    REGISTRY,
    STRATEGIES,
    check_strategies,
    describe_strategies,
    get_strategy,
    prepare,
    split_strategies,
)

from .conftest import tiny_bert

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
    assert listed == [*STRATEGIES, "freeze:0,2,5"]  # the subsets' syntax, by example


def test_front_ends_take_their_names_from_the_registry():
    assert set(DEFAULT_STRATEGIES.split(",")) <= set(STRATEGIES)
    for experiment in EXPERIMENTS.values():
        allowed = DECODER_STRATEGIES if experiment.protocol == "lm_curve" else STRATEGIES
        variants = [v for v in experiment.variants if v["strategy"] != PICKED]  # the best subset of a stored sweep
        check_strategies([v["strategy"] for v in variants], decoder=experiment.protocol == "lm_curve")
        named = {v["strategy"] for v in variants if not v["strategy"].startswith("freeze:")}
        assert named <= set(allowed), experiment.name


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
    unknown = {n for n in names if n not in STRATEGIES and not n.startswith("freeze:")}
    assert not unknown, f"{notebook.name} uses unregistered strategy names {unknown}"
    for name in names - set(STRATEGIES):
        get_strategy(name)  # a layer subset that parses


@pytest.mark.parametrize("call,decoder", [(lambda: get_strategy("upper_third"), False),
                                          (lambda: check_strategies(["full", "upper_third"]), False),
                                          (lambda: check_strategies(["upper_third"], decoder=True), True)])
def test_an_unknown_name_gets_one_message(call, decoder):
    with pytest.raises(ValueError, match=r"Unknown (decoder )?strategy 'upper_third'; choose from full, .*`hft strategies` lists them"):
        call()


def test_an_encoder_only_strategy_on_a_decoder_says_so():
    with pytest.raises(ValueError, match="Unknown decoder strategy 'gradual_top_down'; choose from full, lower_half"):
        get_strategy("gradual_top_down", decoder=True)


def test_a_layer_subset_freezes_exactly_its_layers_and_the_embeddings():
    ft = prepare("freeze:0,2", tiny_bert(layers=4), 1e-3).ft
    assert ft.frozen_layers == [0, 2] and not ft.embeddings_trainable
    none = prepare("freeze:", tiny_bert(layers=4), 1e-3).ft
    assert none.frozen_layers == [] and not none.embeddings_trainable
    lower = Finetuner(tiny_bert(layers=4), "lower_half", verbose=False)  # a named rule is one of the subsets
    same = prepare("freeze:1,0", tiny_bert(layers=4), 1e-3).ft
    assert same.trainable_parameter_count() == lower.trainable_parameter_count()
    with pytest.raises(ValueError, match="out of range"):
        prepare("freeze:7", tiny_bert(layers=4), 1e-3)


@pytest.mark.parametrize("name", ["freeze:a", "freeze:1,1", "freeze:-1", "freeze:0,,2"])
def test_a_malformed_subset_gets_one_message(name):
    with pytest.raises(ValueError, match="is not a layer subset; write freeze: and distinct layer indices"):
        get_strategy(name)


def test_subsets_keep_their_indices_in_a_comma_separated_list():
    assert split_strategies("full, freeze:0,2,5,lower_half,freeze:") == ["full", "freeze:0,2,5", "lower_half", "freeze:"]
    assert split_strategies("freeze:,3") == ["freeze:3"]


def test_the_oracle_covers_every_subset_once_plus_the_rules():
    variants = [v["strategy"] for v in EXPERIMENTS["oracle"].variants]
    subsets = {tuple(sorted(int(i) for i in v.removeprefix("freeze:").split(",") if i)) for v in variants if v.startswith("freeze:")}
    assert len(subsets) == 64 == len([v for v in variants if v.startswith("freeze:")])
    assert {"full", "lisa", "bitfit", "autofreeze", "auto_rgn"} <= set(variants)
