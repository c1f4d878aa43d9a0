"""nbval settings for the notebooks."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under pytest-xdist (pyproject runs `-n 2`) the cores are shared out among the workers and the notebook
# kernels they start: on a 2-core box two one-thread workers beat one two-thread run, and more threads
# than cores makes torch crawl.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

# nbval waits a hard-coded 5 s between kernel messages after a cell; on a busy 2-core CI box the
# progress-bar messages of a long training cell can lag longer than that (seen once in CI).
OUTPUT_TIMEOUT_S = 120


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT_S
