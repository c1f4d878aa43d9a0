"""What a reader sees where no kernel runs (GitHub, untrusted JupyterLab): no progress bar stuck at 0 %."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted(Path(__file__).parents[1].glob("notebooks/**/*.ipynb"))


def fallback_texts(notebook: Path) -> list[str]:
    """The plain text a viewer without a kernel or widget state shows for each output (GitHub, untrusted JupyterLab)."""
    import json

    texts = []
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", output.get("text", ""))
            texts.append("".join(text) if isinstance(text, list) else text)
    return texts


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_saved_notebook_shows_no_unstarted_progress_bar(notebook):
    stuck = [t for t in fallback_texts(notebook) if " 0%|" in t or t.startswith("0%|")]
    assert not stuck, f"{notebook.name} shows a progress bar at 0 % (a widget's text fallback): {stuck[0][:80]!r}"


def test_the_check_catches_a_widget_bar(tmp_path):
    import json

    cell = {"cell_type": "code", "metadata": {}, "source": "", "execution_count": 1, "outputs": [
        {"output_type": "display_data", "metadata": {}, "data": {
            "application/vnd.jupyter.widget-view+json": {"model_id": "x", "version_major": 2, "version_minor": 0},
            "text/plain": ["full:   0%|          | 0/96 [00:00<?, ?it/s]"]}}]}
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(AssertionError, match="progress bar at 0 %"):
        test_saved_notebook_shows_no_unstarted_progress_bar(path)


def test_a_finished_bar_is_saved_in_its_final_state(monkeypatch):
    from hft_lib import progress

    shown = []

    class Handle:
        def update(self, data, raw):
            shown.append(data["text/plain"])

    monkeypatch.setattr("IPython.display.display", lambda data, raw, display_id: shown.append(data["text/plain"]) or Handle())
    bar = progress.NotebookBar(total=3, desc="full", mininterval=0)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert shown[0].startswith("full:   0%") and shown[-1].startswith("full: 100%|##########| 3/3")
