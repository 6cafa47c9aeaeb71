"""The layers of ``monai_reg_ext`` (docs/architecture.md), enforced on the imports the source code makes.

Every module is parsed with :mod:`ast`; every ``import`` counts, at module level or inside a function, relative or
absolute. A *unit* is a subpackage or a top-level module (``optimise`` may be either). The tests assert that the
units form no import cycle, that no unit imports a unit of a higher layer (the root package re-exports ``api``, so it
is layer 4 for its importers; edges out of the root ``__init__`` are not counted), that ``transforms`` does not import
``data``, and that no unit imports a private name (``_x``) or a private module of another unit.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import monai_reg_ext

PACKAGE = "monai_reg_ext"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE
ROOT = "<root>"  # the unit of the package's own __init__.py

#: Each unit imports only units of its own layer or of lower layers.
LAYERS: dict[int, tuple[str, ...]] = {
    1: ("spatial", "_version"),
    2: ("losses", "networks", "metrics", "io"),
    3: ("transforms", "data", "engines", "optimise"),
    4: ("api", "bundle", "hub", "evaluation", "reporting", "visualise", "figures", ROOT),
    5: ("cli", "workflow", "demo", "__main__"),
}
LAYER_OF: dict[str, int] = {unit: layer for layer, units in LAYERS.items() for unit in units}
#: Same-layer imports that are not allowed (``data`` builds on ``transforms``, never the reverse).
FORBIDDEN: set[tuple[str, str]] = {("transforms", "data")}


@dataclass(frozen=True)
class Import:
    """One imported module (or name of a module) of ``source``, at ``path:line``."""

    source: str  # dotted module name of the importing module (``monai_reg_ext.data`` for data/__init__.py)
    target: str  # dotted module the import reads (``monai_reg_ext`` for ``from .. import __version__``)
    name: str | None  # the name imported from ``target`` (``from target import name``), else None
    path: str  # file relative to the package folder
    line: int
    module_level: bool  # the statement is not inside a function or class


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """Dotted module name of a file of the package (``__init__.py`` names its package)."""
    parts = list(path.relative_to(package_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package_dir.name, *parts])


def _walk(node: ast.AST, module_level: bool = True) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, module_level
        inner = module_level and not isinstance(
            child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
        )
        yield from _walk(child, inner)


def parse_imports(source: str, module: str, is_package: bool, known: set[str], path: str = "<string>") -> list[Import]:
    """The package imports (names starting with ``PACKAGE``) made anywhere in ``source`` of ``module``.

    Args:
        source: Python source.
        module: its dotted module name.
        is_package: whether it is a package's ``__init__.py`` (relative imports start from the package itself).
        known: dotted names of every module of the package (``from . import x`` reads module ``x`` when it exists).
        path: file name for messages.
    """
    out: list[Import] = []
    package = module if is_package else module.rpartition(".")[0]
    for node, module_level in _walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    out.append(Import(module, alias.name, None, path, node.lineno, module_level))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:  # ``from . import x`` / ``from .data import layouts``: module x is read
                    out.append(Import(module, sub, None, path, node.lineno, module_level))
                else:
                    out.append(Import(module, base, alias.name, path, node.lineno, module_level))
    return out


def unit_of(module: str) -> str:
    """The subpackage or top-level module a dotted module belongs to (``ROOT`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def package_imports() -> list[Import]:
    """Every package import made by the package's modules."""
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    known = {module_name(f) for f in files}
    out = []
    for f in files:
        rel = f.relative_to(PACKAGE_DIR).as_posix()
        out += parse_imports(f.read_text(encoding="utf-8"), module_name(f), f.name == "__init__.py", known, rel)
    return out


def unit_edges(imports: list[Import]) -> dict[tuple[str, str], list[Import]]:
    """``{(importing unit, imported unit): imports}`` between different units; edges out of the root ``__init__``
    (the public re-exports) are left out."""
    edges: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        src, dst = unit_of(imp.source), unit_of(imp.target)
        if src != dst and imp.source != PACKAGE:
            edges.setdefault((src, dst), []).append(imp)
    return edges


def find_cycle(nodes: set[str], edges: set[tuple[str, str]]) -> list[str] | None:
    """One cycle of the directed graph as ``[a, b, ..., a]``, or None."""
    succ: dict[str, list[str]] = {n: sorted(d for s, d in edges if s == n) for n in nodes}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in succ.get(n, []):
            if state.get(m) == 1:
                return path[path.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(nodes):
        if n not in state and (found := visit(n)):
            return found
    return None


def _where(imps: list[Import]) -> str:
    return ", ".join(dict.fromkeys(f"{PACKAGE}/{i.path}:{i.line}" for i in imps))


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return package_imports()


def test_parser_reads_relative_absolute_and_function_imports():
    known = {"monai_reg_ext.a", "monai_reg_ext.a.b", "monai_reg_ext.a.c", "monai_reg_ext.d", "monai_reg_ext.e"}
    source = (
        "import numpy\n"
        "from . import c\n"
        "from .b import f\n"
        "from ..d import _g\n"
        "import monai_reg_ext.e as e\n"
        "def h():\n"
        "    from .. import __version__\n"
        "    from monai_reg_ext.a import b\n"
    )
    got = [(i.target, i.name, i.line, i.module_level) for i in parse_imports(source, "monai_reg_ext.a.x", False, known)]
    assert got == [
        ("monai_reg_ext.a.c", None, 2, True),
        ("monai_reg_ext.a.b", "f", 3, True),
        ("monai_reg_ext.d", "_g", 4, True),
        ("monai_reg_ext.e", None, 5, True),
        ("monai_reg_ext", "__version__", 7, False),
        ("monai_reg_ext.a.b", None, 8, False),
    ]
    # in a package's __init__.py, "." is the package itself
    assert parse_imports("from .b import f", "monai_reg_ext.a", True, known)[0].target == "monai_reg_ext.a.b"


def test_graph_is_read(imports):
    """Sanity: known edges are found (so an empty graph cannot pass the other tests)."""
    edges = unit_edges(imports)
    assert ("data", "transforms") in edges  # data/datasets.py uses the preprocessing transforms
    assert ("io", "spatial") in edges  # io/ddf.py converts voxels to mm
    assert ("networks", "spatial") in edges


def test_every_unit_has_a_layer(imports):
    units = {unit_of(module_name(f)) for f in PACKAGE_DIR.rglob("*.py")}
    missing = sorted(units - set(LAYER_OF))
    assert not missing, f"give these modules / subpackages a layer in LAYERS (and docs/architecture.md): {missing}"


def test_no_import_cycle_between_units(imports):
    edges = unit_edges(imports)
    cycle = find_cycle({u for e in edges for u in e}, set(edges))
    assert cycle is None, (
        "import cycle "
        + " -> ".join(cycle)
        + ": "
        + "; ".join(f"{a} -> {b} at {_where(edges[(a, b)])}" for a, b in zip(cycle, cycle[1:]))
    )


def test_no_import_from_a_higher_layer(imports):
    bad = [
        f"{src} (layer {LAYER_OF.get(src)}) imports {dst} (layer {LAYER_OF.get(dst)}) at {_where(imps)}"
        for (src, dst), imps in sorted(unit_edges(imports).items())
        if src in LAYER_OF and dst in LAYER_OF and (LAYER_OF[dst] > LAYER_OF[src] or (src, dst) in FORBIDDEN)
    ]
    assert not bad, "\n".join(bad)


def test_no_private_import_across_units(imports):
    bad = []
    for imp in imports:
        if unit_of(imp.source) == unit_of(imp.target) or imp.source == PACKAGE:
            continue
        inner = imp.target.split(".")[2:]  # module parts below the imported unit
        private = [p for p in inner if _is_private(p)] + ([imp.name] if imp.name and _is_private(imp.name) else [])
        if private:
            bad.append(f"{PACKAGE}/{imp.path}:{imp.line} imports private {'.'.join(private)} of {imp.target}")
    assert not bad, "\n".join(bad)


MAX_BODY_LINES = 80
"""Longest function body (lines after the docstring) allowed in the library: orchestration is split into steps."""


def test_no_library_function_body_over_80_lines():
    long = []
    for path in sorted(Path(monai_reg_ext.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
            start = body[1].lineno if has_doc and len(body) > 1 else body[0].lineno
            if node.end_lineno - start + 1 > MAX_BODY_LINES:
                long.append(f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - start + 1} lines)")
    assert not long, long
