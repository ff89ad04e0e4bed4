"""Exercise checks and recorded-output replay, without a kernel or a notebook server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minidocker import labcheck


def test_a_true_condition_passes_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert labcheck.check(lambda: 2 + 2 == 4, "four", "add again") is True
    assert capsys.readouterr().out == "✔ four\n"


def test_a_false_condition_says_not_yet_with_the_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert labcheck.check(False, "four", "add again") is False
    assert capsys.readouterr().out == "✘ not yet: add again\n"


def test_an_undefined_answer_is_not_yet_with_the_reason(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    def condition() -> bool:
        return undefined_answer == 4  # type: ignore[name-defined]  # noqa: F821

    assert labcheck.check(condition, "four", "set undefined_answer") is False
    out = capsys.readouterr().out
    assert out.startswith("✘ not yet: set undefined_answer (NameError: ")
    assert "undefined_answer" in out


def test_an_assertion_message_becomes_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    def condition() -> bool:
        raise AssertionError("the limit file reads 0")

    labcheck.check(condition, "ok", "set the limit")
    assert capsys.readouterr().out == "✘ not yet: set the limit (the limit file reads 0)\n"


def test_strict_mode_raises_on_failure_and_not_on_success(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv(labcheck.STRICT_ENV, "1")
    assert labcheck.check(True, "ok", "hint")
    with pytest.raises(labcheck.CheckFailed, match="not yet: hint"):
        labcheck.check(lambda: [][0], "ok", "hint")


def test_solutions_are_split_by_exercise_line(tmp_path: Path) -> None:
    path = tmp_path / "02_cgroups.py"
    path.write_text('"""Solutions."""\n\n# Exercise 02.1: the limit\nlimit = 64\n\n'
                    "# Exercise 02.2\ndef f():\n    return 1\n")
    found = labcheck.solutions(path)
    assert found == {"02.1": "# Exercise 02.1: the limit\nlimit = 64\n",
                     "02.2": "# Exercise 02.2\ndef f():\n    return 1\n"}


def test_two_solutions_for_one_exercise_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.py"
    path.write_text("# Exercise 1.1\na = 1\n# Exercise 1.1\na = 2\n")
    with pytest.raises(ValueError, match="exercise 1.1 has two solutions"):
        labcheck.solutions(path)


def test_exercise_cells_need_their_id_line() -> None:
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["exercise"]},
                     "source": ["# Exercise 05b.2: tags\n", "x = ...\n"]},
                    {"cell_type": "code", "metadata": {"tags": ["exercise"]},
                     "source": "x = ..."}]}
    with pytest.raises(ValueError, match="cell 1 is tagged exercise"):
        labcheck.exercises(nb)
    assert labcheck.exercises({"cells": nb["cells"][:1]}) == [(0, "05b.2")]


def _notebook(tmp_path: Path, cells: list[dict[str, object]]) -> Path:
    path = tmp_path / "lesson.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4,
                                "nbformat_minor": 5}))
    return path


def test_replay_shows_the_recorded_text_and_images_of_the_same_cell(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    published: list[dict[str, object]] = []
    pytest.importorskip("IPython", reason="replay publishes through IPython.display")
    import IPython.display

    monkey = pytest.MonkeyPatch()
    monkey.setattr(IPython.display, "publish_display_data",
                   lambda data, metadata=None: published.append(data))
    cell_source = "if LIVE:\n    plot()\nelse:\n    labcheck.replay(why)\n"
    path = _notebook(tmp_path, [
        {"cell_type": "code", "source": "other()", "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "not this one\n"}]},
        {"cell_type": "code", "source": cell_source.splitlines(keepends=True), "outputs": [
            {"output_type": "stream", "name": "stdout", "text": ["median 4.2 ms\n"]},
            {"output_type": "display_data", "metadata": {},
             "data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure>"]}}]},
    ])
    try:
        shown = labcheck.replay("not root", cell_source=cell_source + "\n", notebooks=[path])
    finally:
        monkey.undo()
    out = capsys.readouterr().out
    assert shown == 2
    assert out.splitlines() == [
        "[not live: not root; below is the output recorded on a machine with root]",
        "median 4.2 ms"]
    assert published == [{"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}]


def test_replay_of_a_cell_nobody_recorded_says_so(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _notebook(tmp_path, [{"cell_type": "code", "source": "a()", "outputs": []}])
    assert labcheck.replay("not root", cell_source="a()", notebooks=[path]) == 0
    assert "no recorded output" in capsys.readouterr().out


def test_every_lesson_exercise_has_a_check_after_it_and_a_solution() -> None:
    """The convention, over the lessons as they are: each ``exercise`` cell is followed by a
    ``check`` cell compared by nbval whose recorded output is "not yet" (nbval's run of the
    lesson as shipped therefore proves each check fails without a solution), and the
    solutions file has exactly one solution per exercise."""
    for path in sorted(labcheck.NOTEBOOKS.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        found = labcheck.exercises(nb)
        if not found:
            continue
        solutions_file = labcheck.NOTEBOOKS / "solutions" / f"{path.stem}.py"
        assert solutions_file.is_file(), f"{path.name}: no {solutions_file.name} in solutions/"
        solved = labcheck.solutions(solutions_file)
        assert sorted(solved) == sorted(ident for _, ident in found), path.name
        for index, ident in found:
            check_cell = nb["cells"][index + 1]
            where = f"{path.name} exercise {ident}"
            assert "check" in labcheck.tags(check_cell), f"{where}: next cell is not a check"
            assert "# NBVAL_CHECK_OUTPUT" in labcheck.source(check_cell), where
            recorded = "".join(labcheck.source({"source": o.get("text", "")})
                               for o in check_cell.get("outputs", []))
            assert recorded.startswith(labcheck.NOT_YET), \
                f"{where}: the shipped check must record 'not yet', it recorded {recorded!r}"
