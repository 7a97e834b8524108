"""The package's shape (docs/architecture.md): pure cores with no Lightning import, short modules,
no import cycle, ``__all__`` everywhere, and no ``type: ignore[override]`` in the package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_optkit"
CORES = ("schedules", "optim", "precision", "profiling")
MODULES = sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(path: Path) -> set[str]:
    """Package modules imported when ``path`` is imported (not under TYPE_CHECKING, not in functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse + getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lightning_optkit"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("lightning_optkit"))

    visit(tree.body)
    known = {_name(p) for p in MODULES}
    return {m for m in found if m in known}


@pytest.mark.parametrize("core", CORES)
def test_pure_cores_import_no_lightning(core: str) -> None:
    modules = [_name(p) for p in (PACKAGE / core).rglob("*.py")]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "bad = sorted(m for m in sys.modules if m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning')))\n"
            + "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{core}/ pulls in Lightning: {proc.stdout} {proc.stderr[-1500:]}"


def test_no_module_is_much_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 420}
    assert long == {}


def test_every_module_declares_all() -> None:
    missing = [str(p.relative_to(PACKAGE)) for p in MODULES
               if p.name != "__main__.py" and "__all__" not in p.read_text(encoding="utf-8")]
    assert missing == []


def test_no_type_ignore_override_in_the_package() -> None:
    assert [str(p) for p in MODULES if "type: ignore[override]" in p.read_text(encoding="utf-8")] == []


def test_no_import_cycle() -> None:
    graph = {_name(p): _top_level_imports(p) - {_name(p)} for p in MODULES}
    # importing ``a.b`` first imports its parent package ``a``
    for name in list(graph):
        parent = name.rpartition(".")[0]
        graph[name] = {m for m in graph[name] if not parent.startswith(m)}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def walk(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
                return True
            if state.get(nxt) is None and walk(nxt, stack + [nxt]):
                return True
        state[node] = 2
        return False

    for start in graph:
        if state.get(start) is None and walk(start, [start]):
            break
    assert cycle == [], " -> ".join(cycle)
