"""The package's layers import only downwards, and no module imports itself back (no cycles).

Layers, lowest first: the shared vocabulary (``metrics``, ``layout``, ``wandb_setup``, ``machine``), ``trial``,
``sweep``, ``cluster``; entry points (``cli``, ``train``, ``launch``, ``slurm``, ``__main__``) sit on top.
``analysis`` may use the vocabulary and the trial layer, never ``sweep`` or ``cluster``; ``sweep``
may use ``analysis`` (the end-of-sweep summary is computed by the analysis's functions).
Read from the source with :mod:`ast` (every import, also those inside functions; not those under
``if TYPE_CHECKING:``, which never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Modules of the vocabulary layer (what every layer may import).
VOCABULARY = ("metrics", "layout", "wandb_setup", "stack", "machine")
RANK = {"vocabulary": 0, "trial": 1, "analysis": 2, "sweep": 3, "cluster": 4, "entry": 5}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "analysis":
        return "analysis"
    if len(parts) == 1 or parts[1] in VOCABULARY:
        return "vocabulary"  # the bare package: its __init__ holds only a docstring
    return parts[1] if parts[1] in ("trial", "sweep", "cluster") else "entry"


def modules() -> dict[str, Path]:
    out = {}
    for top in ("sparsity_tune", "analysis"):
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            name = ".".join(rel.parts).removesuffix(".__init__")
            out[name] = path
    return out


def _runtime_nodes(tree: ast.AST):
    """Every node, except the bodies of ``if TYPE_CHECKING:`` (typing-only imports never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports(path: Path, name: str) -> set[str]:
    found = set()
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    own = modules()
    return {m for m in found if m in own and m != name}


def test_layers_import_downwards_only() -> None:
    bad = []
    for name, path in modules().items():
        for dep in imports(path, name):
            if layer(name) == "entry":
                continue
            if RANK[layer(dep)] > RANK[layer(name)]:
                bad.append(f"{name} ({layer(name)}) imports {dep} ({layer(dep)})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = {name: imports(path, name) for name, path in modules().items()}
    # drop package -> own submodule edges (an __init__ re-exporting its parts is not a cycle)
    graph = {n: {d for d in deps if not d.startswith(n + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d) :], d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_the_check_sees_a_violation() -> None:
    """The checker itself: an upward import is classified as one."""
    assert RANK[layer("sparsity_tune.sweep.launch")] > RANK[layer("sparsity_tune.trial.trainer")]
    assert layer("sparsity_tune.metrics") == "vocabulary"
    assert layer("analysis.questions") == "analysis"
