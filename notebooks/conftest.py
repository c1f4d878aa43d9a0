"""nbval settings for the notebooks."""

# nbval waits a hard-coded 5 s between kernel messages after a cell; on a busy 2-core CI box the
# progress-bar messages of a long training cell can lag longer than that (seen once in CI).
OUTPUT_TIMEOUT_S = 120


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT_S
