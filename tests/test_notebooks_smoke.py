"""Every chapter and solution runs top to bottom under the full profile (what a GPU or Colab runs), capped by HFT_SMOKE
so it takes seconds on a CPU: a full-profile KeyError, or a cell that assumes the quick profile's sizes, fails here.
Outputs are not compared (nbval compares the committed quick-profile ones).

Each notebook runs in its own kernel, with one torch thread (pytest-xdist runs two workers on a 2-core machine), and
is its own test class, so that `--dist loadscope` deals the notebooks out to both workers."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/**/*.ipynb"))
CELL_TIMEOUT_S = 600


def run_notebook(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for name, value in {"HFT_PROFILE": "full", "HFT_SMOKE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                        "TOKENIZERS_PARALLELISM": "false"}.items():
        monkeypatch.setenv(name, value)  # the kernel inherits them
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()


def _test_class(path: Path) -> type:
    def test_runs_under_the_full_profile_smoke_capped(self, monkeypatch):
        run_notebook(path, monkeypatch)

    name = "Test_" + "_".join(path.relative_to(ROOT / "notebooks").with_suffix("").parts)
    return type(name, (), {"test_runs_under_the_full_profile_smoke_capped": test_runs_under_the_full_profile_smoke_capped})


for _path in NOTEBOOKS:  # one class per notebook: its own xdist scope
    _cls = _test_class(_path)
    globals()[_cls.__name__] = _cls


def test_every_notebook_has_a_smoke_run():
    classes = {name for name in globals() if name.startswith("Test_")}
    assert len(classes) == len(NOTEBOOKS) == 16
