"""The Binder profile: every lesson runs as uid 1000 without capabilities, with no error, and
shows at least as many plots as it recorded on a machine with root (``labcheck.replay``).

mybinder.org runs the notebook server as ``jovyan`` (uid 1000) with no capability at all;
``setpriv`` gives a child the same profile here. Each lesson, copied into a directory that
uid 1000 owns, is executed by nbclient in that child, as JupyterLab would run it on Binder.

A lesson that does not call ``replay`` yet is expected to lose its plots: it is marked xfail
from its own source, so the test turns strict for each lesson as soon as it is converted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_ROOT_MARK
from tests.course.conftest import NOTEBOOKS, recorded_images

BINDER_UID = 1000
LESSONS = sorted(NOTEBOOKS.glob("*.ipynb"))
_REPLAY = re.compile(r"\breplay\(")

_RUNNER = r"""
import sys, nbformat
from nbclient import NotebookClient
path, out = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, out)
"""


def calls_replay(notebook: Path) -> bool:
    nb = json.loads(notebook.read_text())
    return any(_REPLAY.search("".join(cell["source"])) for cell in nb["cells"]
               if cell["cell_type"] == "code")


def lesson_param(notebook: Path) -> object:
    number = notebook.name.split("_", 1)[0]
    marks = [] if calls_replay(notebook) else [pytest.mark.xfail(
        reason=f"lesson {number} does not replay recorded outputs yet", strict=False)]
    return pytest.param(notebook, id=notebook.stem, marks=marks)


@pytest.fixture
def binder_home() -> Iterator[Path]:
    """A directory uid 1000 owns (the session's mark in its name, for the leak check):
    HOME, TMPDIR and the lessons' copy; pytest's own tmp dirs are root's, mode 0700."""
    top = Path(tempfile.mkdtemp(prefix=TEST_ROOT_MARK + "binder-"))
    top.chmod(0o755)
    for sub in ("home", "tmp", "notebooks"):
        (top / sub).mkdir()
    yield top
    shutil.rmtree(top, ignore_errors=True)


def as_binder_user(argv: list[str], home: Path) -> list[str]:
    """``argv`` as uid 1000 with no capabilities, when we are root; as it is otherwise (a
    non-root user is the same profile already)."""
    if os.geteuid() != 0:
        return argv
    for path in home.rglob("*"):
        os.chown(path, BINDER_UID, BINDER_UID)
    os.chown(home, BINDER_UID, BINDER_UID)
    return ["setpriv", f"--reuid={BINDER_UID}", f"--regid={BINDER_UID}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--", *argv]


def run_like_binder(notebook: Path, home: Path) -> dict:
    """Execute ``notebook`` (copied into ``home``) as Binder would; the executed JSON."""
    work = home / "notebooks"
    for other in NOTEBOOKS.iterdir():  # replay looks for the lesson beside it
        if other.is_file():
            shutil.copy(other, work / other.name)
    out = home / "tmp" / ("executed-" + notebook.name)
    env = {"HOME": str(home / "home"), "TMPDIR": str(home / "tmp"),
           "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
           "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "JUPYTER_RUNTIME_DIR": str(home / "home" / "runtime"), "LANG": "C.UTF-8"}
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy", "MINIDOCKER_DEFAULT_NETWORK"):
        if name in os.environ:
            env[name] = os.environ[name]
    argv = as_binder_user([sys.executable, "-c", _RUNNER, str(work / notebook.name), str(out),
                           str(work)], home)
    done = subprocess.run(argv, env=env, cwd=work, text=True, capture_output=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def errors(nb: dict) -> list[str]:
    return [f"cell {i}: {out['ename']}: {out['evalue'][:200]}"
            for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
            for out in cell.get("outputs", []) if out["output_type"] == "error"]


def images(nb: dict) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb["cells"]
               if cell["cell_type"] == "code" for out in cell.get("outputs", []))


@pytest.mark.parametrize("notebook", [lesson_param(p) for p in LESSONS])
def test_lesson_keeps_its_promise_on_binder(notebook, binder_home):
    nb = run_like_binder(notebook, binder_home)
    assert errors(nb) == []
    assert images(nb) >= recorded_images(notebook), (
        f"{notebook.name}: {images(nb)} plots shown without root, "
        f"{recorded_images(notebook)} recorded")


# -- the harness itself, on a lesson made for it ----------------------------------------------

_PLOT = ("import matplotlib.pyplot as plt\nfrom minidocker import lab, labcheck\n"
         "LIVE, why = lab.can_run_live()\n")


def synthetic_lesson(path: Path, replayed: bool) -> Path:
    """A two-cell lesson whose live cell recorded one plot, like the real lessons' cells."""
    live = "if LIVE:\n    plt.plot([1, 2, 3])\n    plt.show()\n"
    live += "else:\n    labcheck.replay(why)\n" if replayed else "else:\n    print(why)\n"
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
           "awAAAABJRU5ErkJggg==")
    cells = [{"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [],
              "source": _PLOT},
             {"cell_type": "code", "execution_count": 2, "metadata": {}, "source": live,
              "outputs": [{"output_type": "display_data", "metadata": {},
                           "data": {"image/png": png, "text/plain": "<Figure>"}}]}]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3",
                                                      "display_name": "Python 3",
                                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to uid 1000 (setpriv)")
@pytest.mark.parametrize("replayed", [True, False], ids=["replays", "does-not-replay"])
def test_the_harness_counts_what_binder_shows(replayed, binder_home, tmp_path):
    lesson = synthetic_lesson(tmp_path / "99_synthetic.ipynb", replayed)
    assert calls_replay(lesson) == replayed
    work = binder_home / "notebooks"
    shutil.copy(lesson, work / lesson.name)
    nb = run_like_binder(work / lesson.name, binder_home)
    assert errors(nb) == []
    texts = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    assert "not root (uid 1000)" in texts  # it really ran without root
    assert images(nb) == (1 if replayed else 0)
