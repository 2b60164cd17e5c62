"""Imports point one way: every first-party import, lazy ones included, against the declared layers.

A module may import modules of its own layer or of a layer below it, never one above; no import
circle, even within a layer; and no first-party import inside a function (a lazy import hides an
arrow from readers and from this test). Lazy imports are for heavy third-party packages only
(torch, onnx, ultralytics: importing the CLI must not load them). The layers, bottom first, are
the pipeline's own order: what the stages pass on, the options, the toolchain and the rule tables,
the stages, the checks, the model families, the report, the pipeline, and what drives it.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "myriad_blob"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "core",
        (
            "myriad_blob",
            "myriad_blob.errors",
            "myriad_blob.cancel",
            "myriad_blob.markdown_text",
            "myriad_blob.limits",
            "myriad_blob.compile_config",
            "myriad_blob.pickle_scan",
            "myriad_blob.artifacts",
            "myriad_blob.files",
            "myriad_blob.findings",
            "myriad_blob.metrics",
            "myriad_blob.ort",
        ),
    ),
    ("options", ("myriad_blob.options", "myriad_blob.preprocessing", "myriad_blob.report_types")),
    (
        "toolchain and rules",
        ("myriad_blob.toolchain", "myriad_blob.toolchain.*", "myriad_blob.rules", "myriad_blob.rules.*"),
    ),
    (
        "stages",
        (
            "myriad_blob.load",
            "myriad_blob.export_onnx",
            "myriad_blob.onnx_prep",
            "myriad_blob.ir",
            "myriad_blob.compile",
            "myriad_blob.stage_graph",
            "myriad_blob.superblob",
            "myriad_blob.blob",
            "myriad_blob.blob_stages",
            "myriad_blob.archive",
        ),
    ),
    (
        "checks",
        (
            "myriad_blob.numeric",
            "myriad_blob.diagnosis",
            "myriad_blob.speed",
            "myriad_blob.checks",
            "myriad_blob.checks.*",
        ),
    ),
    ("families", ("myriad_blob.families", "myriad_blob.families.*")),
    ("report", ("myriad_blob.report",)),
    ("pipeline", ("myriad_blob.cache", "myriad_blob.pipeline")),
    ("drivers", ("myriad_blob.manifest", "myriad_blob.batch")),
    ("interfaces", ("myriad_blob.cli", "entrypoint", "entrypoint.*")),
)
# Scripts the toolchain's own Pythons run (3.8/3.9, the legacy OpenVINO): outside the package's graph.
OUTSIDE = ("myriad_blob.toolchain.scripts.*",)


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    found = {}
    for base, top in ((ROOT / "src", PACKAGE), (ROOT, ROOT / "entrypoint")):
        for path in sorted(top.rglob("*.py")):
            name = _module_name(path, base)
            if not any(fnmatch.fnmatch(name, pattern) for pattern in OUTSIDE):
                found[name] = path
    return found


SOURCES = _sources()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """The first-party modules an import statement reaches (`from . import x` reaches x when x is a module)."""
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    targets = []
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        targets.append(submodule if submodule in SOURCES else base)
    return targets


def _imports_by_name(node) -> bool:
    """importlib.import_module / __import__ of a literal module name."""
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return False
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return name in ("import_module", "__import__") and isinstance(node.args[0].value, str)


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(first-party module imported, line, inside a function?) for every import of a module."""
    path = SOURCES[module]
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            lazy = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                found.extend((target, child.lineno, in_function) for target in _resolve(module, path, child))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif _imports_by_name(child):  # importlib.import_module("myriad_blob.x"): an import all the same
                found.append((child.args[0].value, child.lineno, True))
            visit(child, lazy)

    visit(tree, False)
    return [(target, line, lazy) for target, line, lazy in found if target in SOURCES and target != module]


def layer_of(module: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatch(module, pattern) for pattern in patterns):
            return index
    raise AssertionError(f"{module} is in no layer of tests/test_layers.py: add it to the one it belongs to")


def test_every_module_has_a_layer():
    for module in SOURCES:
        layer_of(module)


def test_an_import_by_name_is_seen():
    """importlib.import_module("myriad_blob.report") inside a function is a lazy first-party import."""
    tree = ast.parse("def f():\n    return importlib.import_module('myriad_blob.report')\n")
    call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call))
    assert _imports_by_name(call) and call.args[0].value in SOURCES


def test_no_first_party_import_inside_a_function():
    lazy = [
        f"{module}:{line} imports {target}" for module in SOURCES for target, line, inside in imports(module) if inside
    ]
    assert not lazy, "first-party imports inside functions (import at the top):\n" + "\n".join(lazy)


def test_imports_point_down():
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]}), line {line}"
        for module in SOURCES
        for target, line, _ in imports(module)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_import_circle():
    graph = {module: sorted({target for target, _, _ in imports(module)}) for module in SOURCES}
    # A module importing its own package's __init__ (a relative `from . import x` of a name) is no circle.
    graph = {m: [t for t in targets if not m.startswith(t + ".")] for m, targets in graph.items()}
    state, path, circles = {}, [], []

    def walk(module):
        state[module] = "open"
        path.append(module)
        for target in graph[module]:
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = "done"

    for module in graph:
        if module not in state:
            walk(module)
    assert not circles, "import circles:\n" + "\n".join(circles)
