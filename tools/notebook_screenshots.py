"""Screenshot notebooks in JupyterLab in a real browser, 1400 px wide, untrusted and then trusted.

    apt-get install chromium && pip install playwright      # Debian's chromium; never `playwright install`
    python tools/notebook_screenshots.py OUT notebooks/0*.ipynb

Copies the notebooks to a scratch folder and starts JupyterLab there, with everything it writes inside that folder
(settings, workspaces, data, runtime and config folders; no token; every cell rendered: windowing off, no space
after the last cell, no news prompt). Each notebook opens alone in a fresh page and workspace; the notebook panel
is saved in slices OUT/<untrusted|trusted>-<notebook>-<slice>.png, scrolled by the panel's visible height less
OVERLAP_PX, so every pixel of the notebook is in some slice, the last slice ends at the last cell, and
OUT/slices.json says where each slice starts. Then the copies are signed (`jupyter trust`) and it all runs again.
The server is stopped by its PID at the end. Look at the PNGs: labels clipped or overlapping, widgets shown as
text, progress bars at 0 %, numbers broken across lines.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

WIDTH, HEIGHT = 1400, 1000  # the browser window, in CSS pixels
OVERLAP_PX = 40  # each slice repeats the bottom of the one before: nothing falls between two slices
SETTLE_S = 2.0  # after the images have loaded: fonts, MathJax and widget views finish drawing
PANEL = "document.querySelector('#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')"
SETTINGS = {  # JupyterLab user settings written into the scratch folder
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "scrollPastEnd": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(port: int, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {server.returncode} before it answered.")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer on port {port} within {timeout:.0f} s.")


def stop_kernels(port: int) -> None:
    """Shut down the sessions (and kernels) opening a notebook started: eight chapters, eight kernels otherwise."""
    base = f"http://127.0.0.1:{port}/api/sessions"
    for session in json.load(urllib.request.urlopen(base, timeout=10)):
        urllib.request.urlopen(urllib.request.Request(f"{base}/{session['id']}", method="DELETE"), timeout=30)


def open_notebook(page, port: int, name: str) -> None:
    """Open `name` alone (a reset workspace) and wait until its panel is the visible one and its images have loaded."""
    page.goto(f"http://127.0.0.1:{port}/lab/tree/{name}?reset")
    page.wait_for_function("name => [...document.querySelectorAll('#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current"
                           " .lm-TabBar-tabLabel')].some(t => t.textContent === name)", arg=name, timeout=90000)
    page.wait_for_function(f"() => {{ const p = {PANEL}; return p && p.querySelector('.jp-Cell') &&"
                           f" [...p.querySelectorAll('img')].every(i => i.complete); }}", timeout=90000)
    for button in page.get_by_role("button", name="No", exact=True).all():  # a news prompt, if one still shows
        if button.is_visible():
            button.click(timeout=2000)
    time.sleep(SETTLE_S)


def shoot(port: int, out: Path, label: str, names: list[str]) -> list[dict]:
    """Save every notebook's panel in overlapping slices; returns where each slice starts and what it shows."""
    from playwright.sync_api import sync_playwright

    slices = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for name in names:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            open_notebook(page, port, name)
            # the content ends at the last cell's bottom edge (plus the panel's own padding), not at scrollHeight
            box = page.evaluate(f"""() => {{ const p = {PANEL}, r = p.getBoundingClientRect();
                const cells = p.querySelectorAll('.jp-Cell'), last = cells[cells.length - 1].getBoundingClientRect();
                return {{x: r.left + p.clientLeft, y: r.top + p.clientTop, width: p.clientWidth, height: p.clientHeight,
                         end: Math.min(p.scrollHeight, Math.ceil(last.bottom - r.top + p.scrollTop) + 16)}}; }}""")
            visible, end = box["height"], box["end"]
            tops = list(range(0, max(end - visible, 0), visible - OVERLAP_PX)) + [max(end - visible, 0)]
            stem = Path(name).stem
            for i, top in enumerate(tops):
                shown = page.evaluate(f"y => {{ const p = {PANEL}; p.scrollTop = y; return p.scrollTop; }}", top)
                time.sleep(0.4)
                path = out / f"{label}-{stem}-{i:02d}.png"
                page.screenshot(path=str(path), clip={k: box[k] for k in ("x", "y", "width", "height")})
                slices.append({"file": path.name, "notebook": name, "top": shown, "height": visible, "end": end})
            covered = all(b["top"] <= a["top"] + a["height"] for a, b in zip(slices[-len(tops):], slices[-len(tops) + 1:]))
            last = slices[-1]
            print(f"{label} {name}: {end} px in {len(tops)} slices of {visible} px "
                  f"({'every pixel covered' if covered and last['top'] + visible >= end else 'GAPS'})")
            page.close()
            stop_kernels(port)
        browser.close()
    return slices


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python tools/notebook_screenshots.py OUT NOTEBOOK.ipynb [NOTEBOOK.ipynb ...]")
    out, notebooks = Path(argv[0]).resolve(), [Path(a).resolve() for a in argv[1:]]
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="nbshots-"))
    for nb in notebooks:
        shutil.copy(nb, scratch / nb.name)
    for plugin, values in SETTINGS.items():
        path = scratch / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    folders = {"JUPYTERLAB_SETTINGS_DIR": "settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces", "JUPYTER_DATA_DIR": "data",
               "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTER_CONFIG_DIR": "config", "IPYTHONDIR": "ipython"}
    env = {**os.environ, **{key: str(scratch / folder) for key, folder in folders.items()}}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.token=",
                               "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
                               f"--ServerApp.root_dir={scratch}", f"--LabApp.workspaces_dir={scratch / 'workspaces'}",
                               "--allow-root"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"JupyterLab (PID {server.pid}) on port {port}, scratch folder {scratch}")
    try:
        wait_for_server(port, server)
        names = [nb.name for nb in notebooks]
        slices = shoot(port, out, "untrusted", names)
        subprocess.run([sys.executable, "-m", "jupyter", "trust", *names], cwd=scratch, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        slices += shoot(port, out, "trusted", names)
        (out / "slices.json").write_text(json.dumps(slices, indent=1))
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    shutil.rmtree(scratch)  # kept when something failed above, to look into


if __name__ == "__main__":
    main(sys.argv[1:])
