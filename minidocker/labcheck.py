"""Exercises that check themselves, and recorded outputs where a lesson cannot run live.

**Exercises.** An exercise in a lesson is two cells, one after the other:

- a code cell tagged ``exercise``, whose first line is ``# Exercise 02.1: <what to do>``. The
  learner writes code there. As shipped it leaves the answer undone (``answer = ...``, or a
  function whose body is ``...``), so the check after it says "not yet";
- a code cell tagged ``check`` and marked ``# NBVAL_CHECK_OUTPUT``, which calls :func:`check`
  with a condition computed from kernel state or from the learner's code, never compared with a
  hard-coded answer. It prints one line: ``✔ ...`` or ``✘ not yet: <hint>``.

nbval compares the check cell's recorded output, ``✘ not yet: ...``, so every CI run of the
lessons as shipped proves each check *fails* without a solution. The instructors' solutions are
in ``notebooks/solutions/<lesson>.py``, one section per exercise, each starting with the line
``# Exercise 02.1``; :func:`solutions` reads them. ``tests/kernel/test_exercises.py`` runs
each lesson with its exercise cells replaced by the solutions and ``MINIDOCKER_STRICT_CHECKS=1``
(a check that fails then raises :class:`CheckFailed`), which proves each check *passes* with
its solution.

**Recorded outputs.** On mybinder.org there is no root, so a lesson's live cells cannot run. A
cell written as::

    if LIVE:
        ...                      # the experiment
    else:
        labcheck.replay(why)

shows, when not live, the outputs the notebook recorded for this very cell on a machine with
root (text, tables and plots), under a one-line note saying they are recorded. The cell is
found by its source among the lesson files (the kernel knows the source of the cell it runs,
not the notebook's name).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

EXERCISE_LINE = re.compile(r"^# Exercise (\d+[a-z]?\.\d+)\b")
STRICT_ENV = "MINIDOCKER_STRICT_CHECKS"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
OK, NOT_YET = "✔", "✘ not yet:"


class CheckFailed(AssertionError):
    """A check did not pass, in strict mode (the solutions test)."""


def check(condition: Callable[[], object] | bool, success: str, hint: str) -> bool:
    """Print whether an exercise is done, and return it.

    ``condition`` is called (or taken as is): a true result passes. An ``AssertionError``
    with a message, or any exception (a name the learner has not defined yet, an
    unfinished function's ``NotImplementedError``), is a "not yet" with the reason added.
    With ``MINIDOCKER_STRICT_CHECKS=1`` in the environment, a failed check raises.
    """
    reason = ""
    try:
        passed = bool(condition() if callable(condition) else condition)
    except AssertionError as exc:
        passed, reason = False, str(exc)
    except Exception as exc:  # the learner's code is not there yet, or raises
        passed, reason = False, f"{type(exc).__name__}: {exc}".rstrip(": ")
    if passed:
        print(OK, success)
        return True
    line = f"{NOT_YET} {hint}" + (f" ({reason})" if reason else "")
    if os.environ.get(STRICT_ENV) == "1":
        raise CheckFailed(line)
    print(line)
    return False


def exercise_id(source: str) -> str | None:
    """``02.1`` for a cell starting ``# Exercise 02.1: ...``, else None."""
    match = EXERCISE_LINE.match(source)
    return match.group(1) if match else None


def solutions(path: str | os.PathLike[str]) -> dict[str, str]:
    """The solution code of each exercise in a solutions file, by exercise id.

    A section starts at a line ``# Exercise ID`` and runs to the next one; text before the
    first section (the file's docstring) belongs to none.
    """
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        ident = exercise_id(line)
        if ident is not None:
            if ident in found:
                raise ValueError(f"{path}: exercise {ident} has two solutions")
            current = found[ident] = [line]
        elif current is not None:
            current.append(line)
    return {k: "\n".join(v).strip() + "\n" for k, v in found.items()}


def tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def source(cell: dict[str, Any]) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def exercises(notebook: dict[str, Any]) -> list[tuple[int, str]]:
    """``(cell index, exercise id)`` of each exercise cell in a notebook's JSON."""
    found = []
    for i, cell in enumerate(notebook.get("cells", [])):
        if "exercise" in tags(cell):
            ident = exercise_id(source(cell))
            if ident is None:
                raise ValueError(f"cell {i} is tagged exercise but does not start with "
                                 "'# Exercise NN.N:'")
            found.append((i, ident))
    return found


# -- recorded outputs ------------------------------------------------------------------------

_RECORDED: dict[Path, tuple[float, list[dict[str, Any]]]] = {}


def _cells(path: Path) -> list[dict[str, Any]]:
    mtime = path.stat().st_mtime
    cached = _RECORDED.get(path)
    if cached is None or cached[0] != mtime:
        with open(path, encoding="utf-8") as f:
            cells = [c for c in json.load(f).get("cells", []) if c.get("cell_type") == "code"]
        _RECORDED[path] = cached = (mtime, cells)
    return cached[1]


def _same(a: str, b: str) -> bool:
    return a.strip() == b.strip()


def _running_cell() -> str:
    """The source of the cell the IPython kernel is running now (its input history's last)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise RuntimeError("replay() shows a notebook's recorded outputs: it needs IPython")
    history = shell.user_ns.get("In") or [""]
    return str(history[-1])


def recorded_outputs(cell_source: str,
                     notebooks: Iterable[Path] | None = None) -> list[dict[str, Any]] | None:
    """The outputs a notebook recorded for the cell with this source, or None if none has it."""
    if notebooks is None:
        here = sorted(Path.cwd().glob("*.ipynb"))
        notebooks = here + [p for p in sorted(NOTEBOOKS.glob("*.ipynb")) if p not in here]
    for path in notebooks:
        for cell in _cells(Path(path)):
            if _same(source(cell), cell_source) and cell.get("outputs"):
                return list(cell["outputs"])
    return None


def replay(why: str, cell_source: str | None = None,
           notebooks: Iterable[Path] | None = None) -> int:
    """Show this cell's recorded outputs, plots included, under a one-line note.

    Returns how many outputs were shown (0 when the notebook recorded none for this cell).
    """
    outputs = recorded_outputs(_running_cell() if cell_source is None else cell_source,
                               notebooks)
    if not outputs:
        print(f"[not live: {why}; this cell has no recorded output]")
        return 0
    print(f"[not live: {why}; below is the output recorded on a machine with root]")
    from IPython.display import publish_display_data

    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            stream = sys.stderr if out.get("name") == "stderr" else sys.stdout
            stream.write(source({"source": out.get("text", "")}))
            stream.flush()
        elif kind in ("display_data", "execute_result"):
            data = {k: source({"source": v}) if isinstance(v, list) else v
                    for k, v in out.get("data", {}).items()}
            publish_display_data(data, out.get("metadata") or {})
    return len(outputs)
