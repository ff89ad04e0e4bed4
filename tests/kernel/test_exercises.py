"""Each lesson's checks pass with the instructors' solutions (and fail without them).

The "fail without" half is nbval's: a check cell is compared, and the lesson as shipped
recorded "✘ not yet" there (tests/unit/test_labcheck.py holds the lessons to that). Here each
lesson that has exercises runs once, as a learner with root would run it, with its exercise
cells replaced by ``notebooks/solutions/<lesson>.py`` and strict checks: a failing check raises,
so the run must end with no error and a "✔" from every check.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from minidocker import labcheck

from ..conftest import is_root

LESSONS = [p for p in sorted(labcheck.NOTEBOOKS.glob("*.ipynb"))
           if labcheck.exercises(json.loads(p.read_text(encoding="utf-8")))]

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not is_root(), reason="the lessons run containers: needs root")]


@pytest.mark.skipif(not LESSONS, reason="no lesson has exercises yet")
@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_the_solutions_pass_every_check(lesson: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat", reason="comes with the notebooks extra")
    nbclient = pytest.importorskip("nbclient", reason="comes with the notebooks extra")
    nb = nbformat.read(lesson, as_version=4)
    solved = labcheck.solutions(labcheck.NOTEBOOKS / "solutions" / f"{lesson.stem}.py")
    checks = []
    for index, ident in labcheck.exercises(nb):
        nb.cells[index].source = solved[ident]
        checks.append((ident, index + 1))
    monkeypatch.setenv(labcheck.STRICT_ENV, "1")
    client = nbclient.NotebookClient(nb, timeout=600, allow_errors=True,
                                     resources={"metadata": {"path": str(lesson.parent)}})
    client.execute()
    errors = [(i, o.get("ename"), o.get("evalue")) for i, cell in enumerate(nb.cells)
              if cell.cell_type == "code" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{lesson.name}: cells raised with the solutions in: {errors}"
    for ident, index in checks:
        text = "".join(o.get("text", "") for o in nb.cells[index].get("outputs", []))
        assert text.startswith(labcheck.OK), f"exercise {ident}: the check printed {text!r}"
    assert os.environ[labcheck.STRICT_ENV] == "1"


# Answers a learner could copy from what the lesson printed, without doing the exercise: each
# must leave its check at "not yet" (the rest of the lesson runs with the solutions).
COPIED = {
    ("05b_registries", "05b.1"): "def tag_digest(tag):\n    return MOVED  # printed above\n",
}


@pytest.mark.parametrize("lesson, ident, copied", [(*k, v) for k, v in COPIED.items()],
                         ids=[ident for _, ident in COPIED])
def test_an_answer_copied_from_the_lesson_does_not_pass(lesson: str, ident: str,
                                                        copied: str) -> None:
    nbformat = pytest.importorskip("nbformat", reason="comes with the notebooks extra")
    nbclient = pytest.importorskip("nbclient", reason="comes with the notebooks extra")
    path = labcheck.NOTEBOOKS / f"{lesson}.ipynb"
    nb = nbformat.read(path, as_version=4)
    solved = labcheck.solutions(labcheck.NOTEBOOKS / "solutions" / f"{lesson}.py")
    found = dict((i, index) for index, i in labcheck.exercises(nb))
    for other, index in found.items():
        nb.cells[index].source = copied if other == ident else solved[other]
    client = nbclient.NotebookClient(nb, timeout=600, allow_errors=True,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    text = "".join(o.get("text", "") for o in nb.cells[found[ident] + 1].get("outputs", []))
    assert text.startswith(labcheck.NOT_YET), f"exercise {ident}: the copy passed: {text!r}"
