"""docs/architecture.md stays true: its drawing is the code's import graph, its start table the
code's trace steps; and the layout gains no new circle and no new module over 600 lines.

The graph is read by tools/importgraph.py (every import, function-level ones included).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = ".venv/bin/python tools/importgraph.py --write-docs"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("importgraph", ROOT / "tools/importgraph.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("importgraph", module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


importgraph = _load_tool()

# Circles that run through files being rewritten on another branch (issue 11, the start as
# steps). Each entry is the exact set of modules; a circle that differs (a new module in it, or
# a new circle) fails. Remove an entry when its circle is broken.
KNOWN_CIRCLES: list[set[str]] = []

# Modules over the limit that may not be edited on this branch, each with its size today as a
# ceiling: they may shrink, not grow. Lower the number (or drop the entry) as they are split.
KNOWN_LARGE: dict[str, int] = {}


def test_the_drawing_is_the_import_graph() -> None:
    documented = importgraph.documented_section()
    generated = importgraph.generated_section()
    assert documented == generated, (
        f"docs/architecture.md's import graph is stale: run `{REGENERATE}` and commit it")


def test_lesson_00_draws_the_same_graph() -> None:
    assert importgraph.lesson_diagram() == importgraph.mermaid(importgraph.edges()), (
        f"notebooks/00_why_containers.ipynb's diagram is stale: run `{REGENERATE}` and commit it")


def test_no_new_circle() -> None:
    found = [set(c) for c in importgraph.circles(importgraph.edges())]
    new = [sorted(c) for c in found if c not in KNOWN_CIRCLES]
    assert new == [], f"new import circle(s): {new}; `python tools/importgraph.py` shows the edges"
    gone = [sorted(c) for c in KNOWN_CIRCLES if c not in found]
    assert gone == [], f"circle(s) broken (good): remove them from KNOWN_CIRCLES: {gone}"


def test_no_module_grows_past_600_lines() -> None:
    sizes = importgraph.sizes()
    over = {m: n for m, n in sizes.items()
            if n > importgraph.MAX_LINES and n > KNOWN_LARGE.get(m, importgraph.MAX_LINES)}
    assert over == {}, f"modules over {importgraph.MAX_LINES} lines (or past their ceiling): {over}"


def test_every_module_has_a_layer() -> None:
    modules = set(importgraph.modules()) - {"__init__"}
    placed = {m for members in importgraph.LAYERS.values() for m in members}
    assert sorted(modules - placed) == [], "place new modules in tools/importgraph.py's LAYERS"
    assert sorted(placed - modules) == [], "LAYERS names modules that no longer exist"


def test_nothing_in_the_package_imports_the_notebook_helpers() -> None:
    helpers = set(importgraph.LAYERS["notebook helpers"])
    edges = [str(e) for e in importgraph.edges()
             if e.target in helpers and e.source not in helpers and e.kind != "typing"]
    assert edges == []


def test_the_check_sees_function_level_and_typing_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "minidocker"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from minidocker import b\n")
    (pkg / "b.py").write_text("def f():\n    from minidocker.a import x\n")
    (pkg / "c.py").write_text("import minidocker.b\n")
    kinds = {(e.source, e.target): e.kind for e in importgraph.edges(pkg)}
    assert kinds == {("a", "b"): "typing", ("b", "a"): "function", ("c", "b"): "top"}
    assert importgraph.circles(importgraph.edges(pkg)) == []  # a typing edge closes no circle
    (pkg / "a.py").write_text("from minidocker import b\n")
    assert importgraph.circles(importgraph.edges(pkg)) == [["a", "b"]]


def _steps_in(module: str) -> set[str]:
    """The literal names of every trace.step("...") call in a module."""
    path = ROOT / "minidocker" / (module.replace(".", "/") + ".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "step" and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "trace" and node.args
                and isinstance(node.args[0], ast.Constant)):
            found.add(node.args[0].value)
    return found


def _table() -> list[tuple[str, str]]:
    text = (ROOT / "docs/architecture.md").read_text()
    rows = re.findall(r"^\| \d+ \| ([^|]+?) \| [^|]+ \| `([\w.]+)` \|", text, re.M)
    assert rows, "docs/architecture.md has no start table"
    return rows


def test_the_start_table_names_real_steps() -> None:
    missing = [(step, module) for step, module in _table() if step not in _steps_in(module)]
    assert missing == [], f"docs/architecture.md names steps its modules do not take: {missing}"


def test_every_start_step_is_in_the_table() -> None:
    table = set(_table())
    untold = sorted((step, module) for module in ("container", "inside", "security", "networking")
                    for step in _steps_in(module) if (step, module) not in table)
    assert untold == [], f"steps missing from docs/architecture.md's start table: {untold}"
