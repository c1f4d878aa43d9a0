"""The runs behind the notebooks and the `hft` command: one encoder run from names (`classification`), decoder
runs with the task as a prompt (`prompts`, `decoder`), every strategy at several budgets (`frontier`), and `cli`."""
