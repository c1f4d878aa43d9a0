"""Progress bars that read right wherever a notebook is opened.

`tqdm.auto` draws an ipywidgets bar in Jupyter; a saved notebook keeps only the text it had when it was
created, "0%| | 0/96", so on GitHub, in untrusted JupyterLab or in a static export every finished run
looks as if it never started. In a notebook kernel we therefore draw tqdm's text bar into one output
that is updated in place (an IPython display handle): live it moves like any bar, and what is saved is
its last state, "100%|##########| 96/96 [01:02<00:00, loss=0.412]". Elsewhere (scripts, the CLI) it is
tqdm's usual bar on stderr.
"""

from __future__ import annotations

import io

from tqdm.std import tqdm


def in_notebook() -> bool:
    """Whether this code runs inside a Jupyter kernel (where displays, not stderr, reach the reader)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class NotebookBar(tqdm):
    """tqdm's text bar shown as one display output, updated in place; what a saved notebook keeps is its last state."""

    def __init__(self, *args, **kwargs):
        self._handle = None
        super().__init__(*args, file=io.StringIO(), ascii=True, **kwargs)
        if not self.disable:
            from IPython.display import display

            self._handle = display({"text/plain": str(self)}, raw=True, display_id=True)

    def display(self, msg=None, pos=None):  # tqdm calls this to redraw
        if self._handle is not None:
            self._handle.update({"text/plain": str(self)}, raw=True)
        return True

    def close(self):
        if not self.disable and self._handle is not None:
            self.display()
        super().close()


def progress_bar(**kwargs) -> tqdm:
    """A progress bar: in place in notebooks (saved as its final state), tqdm's stderr bar elsewhere."""
    return NotebookBar(**kwargs) if in_notebook() else tqdm(**kwargs)
