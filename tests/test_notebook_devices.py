"""Notebooks that are right on any device: tensors are compared through `match_weights` (CPU copies; bit for bit only
where that holds), never with torch.equal / allclose on whatever device a model was moved to; evidence cells name the
stored profile they read; the live-vs-stored checks are not in cells whose output nbval compares."""

import ast
import json
from pathlib import Path

import pytest
import torch

from hft_lib.measure.similarity import match_weights, snapshot
from tests.conftest import tiny_bert

NOTEBOOKS = sorted(Path(__file__).parents[1].glob("notebooks/**/*.ipynb"))
DIRECT = {"equal", "allclose", "isclose", "assert_close", "array_equal", "assert_array_equal", "assert_allclose"}
EVIDENCE_READERS = {"summary_table", "verdicts", "load_results", "from_evidence", "load"}


def code_cells(notebook: Path) -> list[tuple[int, str]]:
    cells = json.loads(notebook.read_text())["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "code"]


def calls(source: str):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            yield (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")), node


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_no_notebook_compares_tensors_directly(notebook):
    direct = [(i, ast.unparse(node)[:80]) for i, source in code_cells(notebook) for name, node in calls(source) if name in DIRECT]
    assert not direct, (f"{notebook.name} compares tensors where they lie (cell, call): {direct[0]}; use match_weights, "
                        "which compares CPU copies and asks for bit-identity only where it holds")


@pytest.mark.parametrize("notebook", sorted(Path(__file__).parents[1].glob("notebooks/0*.ipynb")), ids=lambda p: p.name)
def test_evidence_cells_name_the_stored_profile(notebook):
    from_evidence = {"evidence", "sweep", "frontier", "oracle"}
    unnamed = []
    for i, source in code_cells(notebook):
        for name, node in calls(source):
            owner = node.func.value.id if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) else ""
            if name in EVIDENCE_READERS and owner in from_evidence:
                named = any(k.arg == "profile" for k in node.keywords) or (name == "load_results" and len(node.args) > 1)
                if not named:
                    unnamed.append((i, ast.unparse(node)[:80]))
    assert not unnamed, f"{notebook.name} reads stored evidence without naming its profile: {unnamed[0]}"


def test_bit_identity_is_asked_for_only_on_the_cpu():
    a, b = tiny_bert(), tiny_bert()
    assert match_weights(a, b) and match_weights(a, b).exact and str(match_weights(a, b)) == "identical, bit for bit"
    with torch.no_grad():
        next(b.parameters()).add_(1e-6)  # what another device's kernels leave in the last digits
    assert not match_weights(a, b)  # both on the CPU: bit for bit, so a difference in the last digits shows
    assert match_weights(a, b, exact=False)  # allowed off the CPU, within the stated tolerance
    assert "within 0.001 of each other" in str(match_weights(a, b, exact=False))
    with torch.no_grad():
        next(b.parameters()).add_(1.0)
    assert not match_weights(a, b, exact=False) and "NOT within" in str(match_weights(a, b, exact=False))


def test_weights_nothing_wrote_are_compared_bit_for_bit_against_a_snapshot():
    model = tiny_bert()
    before = snapshot(model)
    names = [n for n, _ in model.named_parameters()][:3]
    with torch.no_grad():
        dict(model.named_parameters())[names[0]].mul_(2)
    check = match_weights(before, model, names=names, exact=True)
    assert check.differing == {names[0]} and check.tensors == 3 and not check
    with pytest.raises(ValueError, match="'nope' is missing from one side"):
        match_weights(before, model, names=["nope"])
