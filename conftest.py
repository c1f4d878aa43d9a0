"""Environment for every pytest run here (library tests and notebooks), set before anything imports torch or
transformers, and inherited by the notebook kernels nbval starts."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HFT_PROFILE", "quick")  # the profile the committed notebook outputs were run with

# Under pytest-xdist (pyproject runs `-n 2`) the cores are shared out among the workers and the notebook
# kernels they start: on a 2-core box two one-thread workers beat one two-thread run, and more threads
# than cores makes torch crawl.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))
