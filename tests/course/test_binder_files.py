"""binder/: what mybinder.org installs is what the project says the notebooks need."""

from __future__ import annotations

import os
import re
import tomllib

from tests.course.conftest import REPO

BINDER = REPO / "binder"


def requirement_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_requirements_are_the_notebooks_extra():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert requirement_lines((BINDER / "requirements.txt").read_text()) == extras["notebooks"]


def test_runtime_is_a_python_the_project_takes():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    [runtime] = requirement_lines((BINDER / "runtime.txt").read_text())
    major, minor = map(int, re.fullmatch(r"python-(\d+)\.(\d+)", runtime).groups())
    minimum = tuple(map(int, project["requires-python"].removeprefix(">=").split(".")))
    assert (major, minor) >= minimum


def test_post_build_installs_the_package_itself():
    post_build = BINDER / "postBuild"
    assert os.access(post_build, os.X_OK)
    assert "pip install --no-cache-dir -e ." in post_build.read_text()


def test_post_build_trusts_the_lessons_so_their_saved_widgets_draw():
    lines = requirement_lines((BINDER / "postBuild").read_text())
    assert "jupyter trust notebooks/*.ipynb" in lines


def test_apt_packages_are_the_ones_the_lessons_read():
    assert set(requirement_lines((BINDER / "apt.txt").read_text())) == {"busybox-static",
                                                                      "libseccomp2"}


def test_the_readme_says_how_to_form_the_link():
    text = (BINDER / "README.md").read_text()
    assert "https://mybinder.org/v2/gh/OWNER/REPO/BRANCH?urlpath=lab/tree/notebooks/" in text
    assert "<owner>" not in text
