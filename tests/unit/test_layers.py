"""The package's layers import only downwards, and no module imports itself back (no cycles).

Layers, lowest first: the shared vocabulary (``metrics``, ``layout``, ``wandb_setup``, ``machine``, ``safe_yaml``, ``keys``), ``trial``,
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
VOCABULARY = ("metrics", "layout", "wandb_setup", "stack", "machine", "safe_yaml", "keys")
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


# ---- one Plan: the spec is read, validated and resolved in three modules only -------------------
#: Modules that hold the spec (what the user wrote), its validation and its W&B-sweep reader.
SPEC_MODULES = {f"sparsity_tune.sweep.{m}" for m in ("spec", "validate", "wandb_sweep")}
#: Who may import them: themselves, the resolver (command line -> Plan) and plan.build (Spec ->
#: Plan). Everything else (the launcher, tuner, search, trainable, summary, state, SLURM, the
#: CLIs) reads the Plan.
SPEC_READERS = SPEC_MODULES | {"sparsity_tune.sweep.resolve", "sparsity_tune.sweep.plan"}
#: Who may validate a spec: where it is defined, validated, and resolved into the Plan.
VALIDATORS = {f"sparsity_tune.sweep.{m}" for m in ("spec", "validate", "resolve")}
VALIDATE_MODULE = "sparsity_tune.sweep.validate"
VALIDATING = {"validate_spec", "load_spec", "check", "load", "check_search", "check_resources"}


def validation_calls(tree: ast.AST) -> list[str]:
    """Calls that validate a spec: ``Spec.model_validate``, and any call of a function of
    :data:`VALIDATE_MODULE` that validates (imported by name, or through the module)."""
    names: set[str] = set()  # local names of validate's functions
    modules: set[str] = set()  # local names of the validate module
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module == VALIDATE_MODULE:
            names.update(a.asname or a.name for a in node.names if a.name in VALIDATING)
        elif isinstance(node, ast.ImportFrom) and node.module == "sparsity_tune.sweep":
            modules.update(a.asname or a.name for a in node.names if a.name == "validate")
        elif isinstance(node, ast.Import):
            modules.update(a.asname or a.name for a in node.names if a.name == VALIDATE_MODULE)
    found = []
    for node in _runtime_nodes(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id in names:
            found.append(f.id)
        elif isinstance(f, ast.Attribute):
            owner = ast.unparse(f.value)
            if (owner in modules and f.attr in VALIDATING) or (
                owner == "Spec" and f.attr == "model_validate"
            ):
                found.append(f"{owner}.{f.attr}")
    return found


def test_only_the_resolver_and_plan_build_read_the_spec() -> None:
    bad = [
        f"{name} imports {dep}"
        for name, path in modules().items()
        if name not in SPEC_READERS
        for dep in imports(path, name)
        if dep in SPEC_MODULES or any(dep.startswith(m + ".") for m in SPEC_MODULES)
    ]
    assert not bad, "read the Plan, not the spec:\n" + "\n".join(bad)


def test_only_spec_validate_and_resolve_validate_a_spec() -> None:
    bad = [
        f"{name} calls {call}"
        for name, path in modules().items()
        if name not in VALIDATORS
        for call in validation_calls(ast.parse(path.read_text()))
    ]
    assert not bad, "the spec is validated once, by sweep.resolve:\n" + "\n".join(bad)


def test_the_validation_check_sees_each_way_of_calling() -> None:
    src = (
        "from sparsity_tune.sweep.validate import validate_spec as v, load\n"
        "from sparsity_tune.sweep import validate\n"
        "import sparsity_tune.sweep.validate\n"
        "def f(d):\n"
        "    v(d); load('x'); validate.check(d); Spec.model_validate(d); other.check(d)\n"
        "    sparsity_tune.sweep.validate.load_spec('x')\n"
    )
    assert sorted(validation_calls(ast.parse(src))) == [
        "Spec.model_validate", "load", "sparsity_tune.sweep.validate.load_spec", "v",
        "validate.check",
    ]  # fmt: skip
