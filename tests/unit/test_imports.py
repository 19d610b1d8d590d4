"""The house's floors: no import circle between modules of ``bulk360/``, and each part imports
only parts on the floors below it (every import counts: at the top, in a function, or for type
checking only)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bulk360"

FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "layout", "modes", "totals"),
    ("settings",),
    ("graph", "control"),
    ("plan",),
    ("package", "mappings", "options"),
    ("load",),
    ("engines", "ledger"),
    ("summary",),
    ("pipeline",),
    ("follow",),
    ("health",),
    ("apps",),
    ("serve",),
    ("cli", ""),
    ("__main__",),
)
"""Bottom first. A part is a top-level module or folder of ``bulk360/`` (``""``: the package's
own ``__init__``); it may import itself and the parts of lower floors, nothing beside or above."""


def modules(root: Path) -> dict[str, Path]:
    """Every module under ``root``, by its dotted name (a package by its folder's)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(root: Path) -> dict[str, set[str]]:
    """Each module's imports of modules under ``root`` (``from p import m``: module ``p.m`` when
    there is one, else ``p``)."""
    known = modules(root)

    def module_of(name: str) -> str:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {module_of(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                for alias in node.names:
                    whole = f"{base}.{alias.name}"
                    found.add(whole if whole in known else module_of(base))
        graph[name] = found - {"", name}
    return graph


def circle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import circle of ``graph`` (a path that ends where it began), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a part beside or above the importing one, as ``a -> b``."""
    floor = {part: level for level, parts in enumerate(FLOORS) for part in parts}
    wrong = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            mine, theirs = _part(name), _part(target)
            if mine != theirs and floor[theirs] >= floor[mine]:
                wrong.append(f"{name} -> {target}")
    return wrong


def test_no_import_circle() -> None:
    found = circle(imports(PACKAGE))
    assert found is None, "an import circle: " + " -> ".join(reversed(found or []))


def test_every_part_is_on_a_floor() -> None:
    parts = {_part(name) for name in modules(PACKAGE)}
    placed = {part for floor in FLOORS for part in floor}
    assert parts == placed


def test_no_import_beside_or_above() -> None:
    wrong = upward(imports(PACKAGE))
    assert not wrong, "imports beside or above: " + "; ".join(wrong)


@pytest.fixture
def tangled(tmp_path: Path) -> Path:
    root = tmp_path / "bulk360"
    (root / "load").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "errors.py").write_text("from bulk360 import options\n")
    (root / "options.py").write_text("def f():\n    from .load import bolt\n")
    (root / "load" / "__init__.py").write_text("")
    (root / "load" / "bolt.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..errors import X\n"
    )
    return root


def test_the_walker_sees_lazy_relative_and_type_checking_imports(tangled: Path) -> None:
    graph = imports(tangled)
    assert graph["bulk360.options"] == {"bulk360.load.bolt"}
    found = circle(graph)
    assert found is not None and found[0] == found[-1]
    assert set(found) == {"bulk360.errors", "bulk360.options", "bulk360.load.bolt"}
    assert upward(graph) == [
        "bulk360.errors -> bulk360.options",
        "bulk360.options -> bulk360.load.bolt",
    ]
