"""The package's shape: no import cycles between its modules (what `farm-studio look` calls circles), and each file of
one idea stays short. Imports under `if TYPE_CHECKING:` are for annotations only and do not count."""

import ast
from pathlib import Path

import hft_lib

PACKAGE = Path(hft_lib.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports (at the top or inside functions), resolved to module names."""
    tree, here = ast.parse(path.read_text()), module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        found |= {n for n in names if n in modules and n != here}
    return found


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    edges = {module_name(p): imports(p, modules) for p in paths}
    # importing a.b runs a/__init__.py first; a package's face does not make a cycle of its own
    return {name: {m for m in deps if not (m != "hft_lib" and name.startswith(m + "."))} for name, deps in edges.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_cycles():
    edges = {m: {d for d in deps if d != "hft_lib"} for m, deps in graph().items() if m != "hft_lib"}
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_is_a_leaf_and_checkpoints_know_no_strategy():
    edges = graph()
    assert not {m for m in edges["hft_lib.layers"] if m != "hft_lib"}
    assert not any(m.startswith("hft_lib.strategies") for m in edges["hft_lib.checkpoint"] | edges["hft_lib.training"])


def test_experiments_compute_and_viz_draws():
    edges = graph()
    front_ends = {"hft_lib.experiments.cli", "hft_lib.experiments.compare"}  # the console command saves its charts
    drawing = {m for m, deps in edges.items() if m.startswith("hft_lib.experiments") and m not in front_ends
               and any(d.startswith("hft_lib.viz") for d in deps)}
    assert drawing == set(), "experiments modules that draw (move the figure to viz/)"


def test_modules_stay_short():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 340}
    assert long == {}
