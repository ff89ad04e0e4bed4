"""The material around the lessons, held to what it says: each lesson's test marker exists and
selects tests, ``notebooks/README.md``'s times add up, and every widget a lesson displays has
its state saved in the notebook, so JupyterLab draws it from the file, without a kernel."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]*.ipynb"))
README = NOTEBOOKS / "README.md"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MODEL_REF = re.compile(r"^IPY_MODEL_([0-9a-f]+)$")
# The lessons whose widgets the course promises (the "things to touch").
WITH_WIDGETS = {"02_cgroups", "03_capabilities", "04_overlayfs", "06_networking"}


def lesson_number(path: Path) -> str:
    return path.stem.split("_", 1)[0]


# -- test markers ---------------------------------------------------------------------------------

def registered_markers() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return {m.split(":", 1)[0] for m in config["tool"]["pytest"]["ini_options"]["markers"]}


def used_markers() -> set[str]:
    found = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        found |= set(re.findall(r"\bpytest\.mark\.(nb\w+)", path.read_text(encoding="utf-8")))
    return found


def test_every_lesson_has_a_registered_marker_that_selects_tests():
    lesson_markers = {f"nb{lesson_number(p)}" for p in LESSONS}
    assert lesson_markers, "found no lessons"
    assert sorted(lesson_markers - registered_markers()) == []
    assert sorted(lesson_markers - used_markers()) == []
    # and no marker for a lesson that is not there, nor one used but never registered
    assert {m for m in registered_markers() if m.startswith("nb")} == lesson_markers
    assert sorted(used_markers() - registered_markers()) == []


def test_the_readme_names_only_markers_that_exist():
    text = README.read_text(encoding="utf-8")
    examples = re.findall(r"-m (nb\w+)", text)
    assert examples, "the README gives no marker example"
    assert sorted(set(examples) - registered_markers()) == []
    lessons = {lesson_number(p) for p in LESSONS}
    first, last = min(lessons), max(lessons)
    assert f"`nb{first}` to `nb{last}`" in text


# -- the times ------------------------------------------------------------------------------------

def lesson_minutes() -> dict[str, int]:
    """``{"00": 45, ...}`` from the path table's rows."""
    text = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\w+) \| `\w+` \|.*\| (\d+) min \|$", text, re.M)
    return {n: int(m) for n, m in rows}


def hours(text: str) -> float:
    """'5' -> 5, '12¾' -> 12.75, '4½' -> 4.5."""
    fractions = {"¼": 0.25, "½": 0.5, "¾": 0.75}
    return float(text.rstrip("¼½¾") or 0) + fractions.get(text[-1], 0.0)


def test_the_table_lists_every_lesson_once():
    assert sorted(lesson_minutes()) == sorted(lesson_number(p) for p in LESSONS)


def test_the_times_add_up():
    minutes = lesson_minutes()
    text = " ".join(README.read_text(encoding="utf-8").split())
    order = list(minutes)

    def span(a: str, b: str) -> float:
        return sum(minutes[n] for n in order[order.index(a):order.index(b) + 1]) / 60

    total = re.search(r"add up to ([\d¼½¾]+) hours \((\d+) minutes\)", text)
    assert total, "the README states no total"
    assert hours(total.group(1)) == span(order[0], order[-1]) == int(total.group(2)) / 60
    claims = re.findall(r"(\w+) to (\w+) \(([\d¼½¾]+) hours\)", text)
    assert len(claims) >= 3, claims
    for a, b, said in claims:
        assert hours(said) == span(a, b), f"{a} to {b}: the README says {said} hours"
    rest = re.search(r"(\w+) to (\w+) take the other ([\d¼½¾]+) hours", text)
    assert rest and hours(rest.group(3)) == span(rest.group(1), rest.group(2))


# -- saved widget state ---------------------------------------------------------------------------

def displayed_models(nb: dict[str, Any]) -> list[str]:
    return [out["data"][WIDGET_VIEW]["model_id"] for cell in nb["cells"]
            if cell["cell_type"] == "code" for out in cell.get("outputs", [])
            if WIDGET_VIEW in out.get("data", {})]


def references(value: object) -> list[str]:
    """The model ids an ``IPY_MODEL_<id>`` string anywhere in a model's state names."""
    if isinstance(value, str):
        match = MODEL_REF.match(value)
        return [match.group(1)] if match else []
    if isinstance(value, dict):
        return [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def missing_widget_models(nb: dict[str, Any]) -> list[str]:
    """The models a notebook displays, or that those reference (children, layouts, styles),
    which its saved ``metadata.widgets`` state lacks: JupyterLab without a kernel draws each
    such output as its text fallback (``VBox(children=...)``) instead of the widget."""
    saved = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    missing, seen = [], set()
    todo = displayed_models(nb)
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        if model not in saved:
            missing.append(model)
            continue
        todo.extend(references(saved[model].get("state", {})))
    return sorted(missing)


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_every_displayed_widget_has_its_state_saved(lesson: Path):
    nb = load(lesson)
    if lesson.stem in WITH_WIDGETS:
        assert displayed_models(nb), f"{lesson.name} shows no widget"
    assert missing_widget_models(nb) == [], \
        f"{lesson.name}: widget state not saved (record it with nbconvert --execute)"


def test_the_check_finds_state_that_was_removed():
    nb = load(NOTEBOOKS / "04_overlayfs.ipynb")
    shown = displayed_models(nb)
    assert shown and missing_widget_models(nb) == []
    bare = copy.deepcopy(nb)
    del bare["metadata"]["widgets"]
    assert missing_widget_models(bare) == sorted(set(shown))
    # a child of the displayed box gone (what a state saved before a widget was added lacks)
    partial = copy.deepcopy(nb)
    state = partial["metadata"]["widgets"][WIDGET_STATE]["state"]
    child = references(state[shown[0]]["state"]["children"])[0]
    del state[child]
    assert missing_widget_models(partial) == [child]
    # a layout or style: referenced from a child's state, not from the box's children
    partial = copy.deepcopy(nb)
    state = partial["metadata"]["widgets"][WIDGET_STATE]["state"]
    layout = references(state[child]["state"]["layout"])[0]
    del state[layout]
    assert missing_widget_models(partial) == [layout]


def fallback_disagreements(nb: dict[str, Any]) -> list[str]:
    """Numbers (a slider's ``value``, a dropdown's ``index``) on which a displayed widget's
    text fallback and its saved state differ: the state is the widget when it was saved, the
    fallback its repr when it was displayed, so a cell that moves a widget after displaying it
    saves two different pictures of it."""
    saved = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    found = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            text = "".join(data.get("text/plain", ""))
            todo, seen = [data[WIDGET_VIEW]["model_id"]], set()
            while todo:
                model = todo.pop()
                if model in seen or model not in saved:
                    continue
                seen.add(model)
                state = saved[model].get("state", {})
                todo.extend(references(state))
                name = saved[model].get("model_name", "").removesuffix("Model")
                at = text.find(f"{name}(")
                for key in ("value", "index"):
                    number = state.get(key)
                    if at < 0 or not isinstance(number, int) or isinstance(number, bool):
                        continue
                    shown = re.search(rf"\b{key}=(-?\d+)\b", text[at:])
                    if shown and int(shown.group(1)) != number:
                        found.append(f"{name}.{key}: text {shown.group(1)}, state {number}")
    return found


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_a_widgets_text_fallback_agrees_with_its_saved_state(lesson: Path):
    assert fallback_disagreements(load(lesson)) == []


def test_a_slider_moved_after_display_is_caught():
    nb = load(NOTEBOOKS / "02_cgroups.ipynb")
    state = nb["metadata"]["widgets"][WIDGET_STATE]["state"]
    slider = next(m for m in state.values() if m["model_name"] == "IntSliderModel")
    slider["state"]["value"] += 8
    assert len(fallback_disagreements(nb)) == 1
