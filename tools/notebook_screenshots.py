"""Screenshot notebooks in JupyterLab in a real browser, 1400 px wide, untrusted and then trusted.

    apt-get install chromium && pip install playwright      # Debian's chromium; never `playwright install`
    python tools/notebook_screenshots.py OUT notebooks/03_alternate_freezing.ipynb notebooks/06_choosing_a_strategy.ipynb

Copies the notebooks to a scratch folder, starts JupyterLab there (no token, every cell rendered: windowing
off), opens each notebook, dismisses the news prompt and saves the page in 900 px slices as
OUT/<untrusted|trusted>-<first two letters of the name>-<slice>.png; then signs the copies (`jupyter trust`,
in a scratch data folder) and does it again. The server is stopped by its PID at the end. Look at the PNGs:
labels clipped or overlapping, widgets shown as text, progress bars at 0 %.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def shoot(port: int, out: Path, label: str, names: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    panel = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name in names:
            page.goto(f"http://127.0.0.1:{port}/lab/tree/{name}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60000)
            time.sleep(6)
            for button in page.get_by_role("button", name="No", exact=True).all():  # "notified about Jupyter news?"
                if button.is_visible():
                    button.click(timeout=2000)
            height = page.evaluate(f"() => {panel}.scrollHeight")
            for i, y in enumerate(range(0, height, 900)):
                page.evaluate(f"() => {{ {panel}.scrollTop = {y}; }}")
                time.sleep(1.0)
                page.screenshot(path=str(out / f"{label}-{name[:2]}-{i:02d}.png"))
            print(f"{label} {name}: {height} px in {i + 1} slices")
        browser.close()


def main(argv: list[str]) -> None:
    out, notebooks = Path(argv[0]).resolve(), [Path(a).resolve() for a in argv[1:]]
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="nbshots-"))
    for nb in notebooks:
        shutil.copy(nb, scratch / nb.name)
    settings = scratch / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(scratch / "settings"), "JUPYTER_DATA_DIR": str(scratch / "data")}
    port = 8899
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.token=",
                               "--ServerApp.password=", f"--ServerApp.root_dir={scratch}", "--allow-root"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(10)
        names = [nb.name for nb in notebooks]
        shoot(port, out, "untrusted", names)
        subprocess.run([sys.executable, "-m", "jupyter", "trust", *names], cwd=scratch, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        shoot(port, out, "trusted", names)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1:])
