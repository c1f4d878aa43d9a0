"""What a chapter says in words: no number typed into prose that its outputs do not show, a generated conclusion and
further reading at the end, objectives at the start, and the glossary linked where its terms first appear."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/**/*.ipynb"))
CHAPTERS = sorted(ROOT.glob("notebooks/0*.ipynb"))
# A decimal number or a percentage, as prose cites a result (not 1e-4, layer 3, v2.13.0 or a file name).
NUMBER = re.compile(r"(?<![\w.\-])[-+\u2212]?\d+\.\d+(?![\w.])|(?<![\w.])\d+(?:\.\d+)? ?%")
CONVENTIONS = {"95 %", "90 %", "80 %", "100 %", "95%", "90%", "80%", "100%"}  # interval levels, power, "nothing lost"
EXAMPLES = "numbers-are-examples"  # tag of a markdown cell whose numbers are a worked example (an exercise's premise)
GLOSSARY = {"paired": "paired", "MDE": "mde", "verdict": "verdict", "retention": "retention",
            "chance-corrected": "chance-corrected", "failed": "failed-run", "round": "round",
            "rate-response": "rate-response", "source text": "source-text", "not testable here": "not-testable-here"}


def prose(text: str) -> str:
    """Markdown without its code spans, headings and link targets: where a term is used in words."""
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def output_text(path: Path) -> str:
    """Everything a notebook's outputs show as text (streams, plain text, Markdown), and its code."""
    parts = []
    for cell in cells(path):
        if cell["cell_type"] != "code":
            continue
        parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            parts += ["".join(v) for k, v in output.get("data", {}).items() if k.startswith("text")]
    return "\n".join(parts)


def typed_numbers(path: Path) -> list[str]:
    """Numbers cited in a notebook's Markdown that none of its outputs (or its code) contains."""
    shown = output_text(path)
    missing = []
    for i, cell in enumerate(cells(path)):
        if cell["cell_type"] != "markdown" or EXAMPLES in cell.get("metadata", {}).get("tags", []):
            continue
        for match in NUMBER.finditer("".join(cell["source"])):
            number = match.group().replace("\u2212", "-").lstrip("+")
            if number not in CONVENTIONS and number.rstrip("%").strip() not in shown:
                missing.append(f"cell {i}: {match.group()}")
    return missing


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_prose_cites_only_numbers_the_outputs_show(notebook):
    missing = typed_numbers(notebook)
    assert not missing, (f"{notebook.name} cites numbers in Markdown that none of its outputs shows (typed by hand, so "
                         f"they drift): {', '.join(missing)}; generate the sentence from the numbers in a code cell.")


def test_the_check_catches_a_typed_number(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "Freezing costs 5.7 points."},
                    {"cell_type": "code", "metadata": {}, "source": "x = 1", "execution_count": 1,
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": "-5.8 points\n"}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "typed.ipynb"
    path.write_text(json.dumps(nb))
    assert typed_numbers(path) == ["cell 0: 5.7"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_ends_in_words_generated_from_its_results(chapter):
    found = [c for c in cells(chapter) if c["cell_type"] == "code" and "findings." in "".join(c["source"])]
    assert found, f"{chapter.name} has no 'What we found' cell (hft_lib.experiments.findings)"
    text = "".join("".join(o.get("data", {}).get("text/plain", o.get("text", ""))) for o in found[-1].get("outputs", []))
    assert "### What we found" in text and "### Further reading" in text, f"{chapter.name}: the conclusion did not run"
    headings = [i for i, c in enumerate(cells(chapter)) if c["cell_type"] == "markdown"
                and "".join(c["source"]).startswith("## Exercises")]
    assert headings and cells(chapter).index(found[-1]) < headings[0], f"{chapter.name}: the conclusion comes after the exercises"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_opens_with_objectives_prerequisites_and_its_time(chapter):
    first = "".join(cells(chapter)[0]["source"])
    for part in ("**You will learn**", "**Before this chapter**", "**Time**"):
        assert part in first, f"{chapter.name}'s first cell has no {part}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_glossary_terms_are_linked_where_they_first_appear(chapter):
    glossary = (ROOT / "docs/glossary.md").read_text()
    for term, anchor in GLOSSARY.items():
        assert f"## {anchor.replace('-', ' ')}".lower() in glossary.lower() or f"## {term}" in glossary, anchor
        pattern = re.compile(rf"\b{re.escape(term)}\b")
        first = next((("".join(c["source"])) for c in cells(chapter) if c["cell_type"] == "markdown"
                      and pattern.search(prose("".join(c["source"])))), None)
        if first is not None:
            assert f"glossary.md#{anchor})" in first, (f"{chapter.name}: '{term}' first appears in a cell that does not "
                                                       f"link docs/glossary.md#{anchor}")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_questionnaire_has_its_answers_in_the_solutions(chapter):
    def items(path, heading):
        found = [c for c in cells(path) if c["cell_type"] == "markdown" and "".join(c["source"]).startswith(heading)]
        return re.findall(r"^(\d+)\. ", "".join(found[0]["source"]), re.MULTILINE) if found else []

    questions = items(chapter, "## Questionnaire")
    answers = items(chapter.parent / "solutions" / chapter.name, "## Questionnaire: answers")
    assert questions and answers == questions, f"{chapter.name}: {len(questions)} questions, {len(answers)} answers"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT / "notebooks")))
def test_nbval_markers_are_spelled_as_nbval_reads_them(notebook):
    # nbval honours a marker only when the comment is the marker alone: "# NBVAL_IGNORE_OUTPUT (why)" is ignored by it,
    # and the cell's varying output is then compared after all.
    from nbval.plugin import comment_markers

    wrong = [line.strip() for cell in cells(notebook) if cell["cell_type"] == "code"
             for line in "".join(cell["source"]).splitlines()
             if line.strip().startswith("#") and "NBVAL_" in line and line.strip().lstrip("#").strip() not in comment_markers]
    assert not wrong, f"{notebook.name}: {wrong}; put the marker alone on its line and the reason on the next"
