"""Setting up on Colab, in one place: every chapter's first code cell (`INSTALL_CELL`, the same in all of them) clones the
project and runs this file, which installs it, fetches its assets once per VM and makes it importable in the kernel.

Where the project comes from is one setting: $HFT_REPO (default `REPO`; set it to your fork, or upload the folder to
$HFT_HOME, default /content/hft, instead). Each step is skipped when already done in this VM, so running a chapter's
first cell again costs seconds: the clone when the folder exists, pip when this environment has the project installed
from that folder, the download when every asset is present and verified (`hft fetch`; $HFT_ASSETS on a mounted Google
Drive keeps them between sessions). pip installs the core dependencies only: `jupyterlab` and `ipykernel` are in the
`lab` extra, so Colab's own notebook server and kernel are left alone.

Standard library only: this runs before the project's dependencies are installed.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = "https://github.com/hft-project/hft"  # the project's repository; $HFT_REPO overrides it
HOME = "/content/hft"  # where the cell clones it; $HFT_HOME overrides it

INSTALL_CELL = """\
import os, runpy, subprocess, sys
# On Colab: clone the project once per VM ($HFT_REPO: another location, e.g. your fork), then hft_lib/colab.py installs
# it and fetches its assets once. Elsewhere this cell does nothing: install the project as the README says.
if "google.colab" in sys.modules:
    repo, home = os.environ.get("HFT_REPO", "https://github.com/hft-project/hft"), os.environ.get("HFT_HOME", "/content/hft")
    if not os.path.isdir(home) and subprocess.run(["git", "clone", "-q", "--depth", "1", repo, home]).returncode:
        raise SystemExit(f"Could not clone {repo}: upload the project folder to {home}, or set os.environ['HFT_REPO'] "
                         "to a copy you can reach (e.g. your fork's URL), then run this cell again.")
    runpy.run_path(f"{home}/hft_lib/colab.py", run_name="__main__")"""


def installed_from(home: Path) -> bool:
    """Whether this environment has the `hft` distribution installed (editable) from `home`."""
    try:
        text = importlib.metadata.distribution("hft").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return False
    url = json.loads(text or "{}").get("url", "")
    return url.removeprefix("file://").rstrip("/") == str(home.resolve())


def install(home: Path) -> None:
    """pip install -e the clone (core dependencies only), unless it is installed from there already."""
    if installed_from(home):
        print(f"hft: already installed from {home}")
        return
    print(f"hft: installing {home} and its dependencies (a minute or two, once per VM)")
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", str(home)], check=False).returncode:
        raise SystemExit(f"pip could not install {home} (its messages are above): check that the folder is the whole "
                         "project, restart the runtime and run this cell again.")


def fetch(home: Path) -> None:
    """`hft fetch` in a fresh process (which sees the packages pip just installed): skipped per asset when present."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(home), os.environ.get("PYTHONPATH")]))}
    if subprocess.run([sys.executable, "-c", "from hft_lib.assets import fetch; fetch()"], check=False, env=env).returncode:
        raise SystemExit("Fetching the assets failed (the messages are above): check that this VM reaches PyPI and run "
                         "this cell again; the files already fetched are kept.")


def main() -> None:
    home = Path(os.environ.get("HFT_HOME", HOME))
    install(home)
    fetch(home)
    if str(home) not in sys.path:
        sys.path.insert(0, str(home))  # this kernel started before the install: import hft_lib from the clone
    print(f"hft: ready (hft_lib from {home}; assets in {os.environ.get('HFT_ASSETS', '~/.cache/hft/assets')})")


if __name__ == "__main__":
    main()
