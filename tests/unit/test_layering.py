"""Imports run one way: nothing below the command line imports it (STYLE.md, "Shape").

The CLI (``minidocker.cli``, ``minidocker.commands``) is one face among several (the
supervisor, the builder, an API server): a module the faces share must not reach back up into
one of them, not even in a function body, or the engine would again be driven through a
command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import minidocker

PACKAGE = Path(minidocker.__file__).parent
FACES = ("minidocker.cli", "minidocker.commands")
ABOVE_THE_ENGINE = {"cli.py", "__main__.py"}  # the CLI itself, and its entry point


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def is_face(module: str) -> bool:
    return any(module == face or module.startswith(face + ".") for face in FACES)


def below_the_cli() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if p.relative_to(PACKAGE).parts[0] != "commands" and p.name not in ABOVE_THE_ENGINE]


def test_nothing_below_the_cli_imports_it() -> None:
    offenders = {str(p.relative_to(PACKAGE)): sorted(m for m in imported_modules(p)
                                                      if is_face(m))
                 for p in below_the_cli()}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_function_level_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from minidocker.commands import containers\n"
                   "    from minidocker import cli\n")
    assert {"minidocker.commands", "minidocker.cli"} <= imported_modules(bad)
    assert not is_face("minidocker.client")  # a prefix of "minidocker.cli", not a face


# The engine, the start sequence and the container record sit below the supervisor's client:
# the client (the CLI's side of the supervisor socket) may call down into them, never the
# reverse, so stop_everything and run -d import them one way only.
BELOW_THE_CLIENT = ("engine.py", "container.py", "lifecycle.py", "security.py", "enter.py",
                    "state.py", "procfs.py")


def test_the_engine_does_not_import_the_client() -> None:
    offenders = {name: sorted(m for m in imported_modules(PACKAGE / name)
                              if m in ("minidocker.client", "minidocker.supervisor")
                              or m.startswith("minidocker.client."))
                 for name in BELOW_THE_CLIENT}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_start_is_a_printable_list_of_steps() -> None:
    from minidocker import container

    host = [step.__name__ for step in container.HOST_STEPS]
    child = [step.__name__ for step in container.CHILD_STEPS]
    assert host.index("make_cgroup") < host.index("fork") < host.index("follow_child")
    assert child[0] == "join_cgroup" and child[-1] == "exec_command"
    assert child.index("mount_rootfs") < child.index("pivot") < child.index("confine")
