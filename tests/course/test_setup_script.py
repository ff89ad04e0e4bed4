"""scripts/setup.sh's package list per distribution (SETUP_DRY_RUN=1 prints it and stops before
anything that needs root): Ubuntu, which has no deb of vagrant and only a snap of chromium,
gets neither and one line saying so; Debian gets every test tool."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.course.conftest import REPO, on_ubuntu

SETUP = REPO / "scripts" / "setup.sh"
DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nID=debian\n'
UBUNTU = ('PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_CODENAME=noble\nID=ubuntu\n'
          "ID_LIKE=debian\n")
MINT = 'PRETTY_NAME="Linux Mint 22"\nNAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n'
NOTE = "==> not installing vagrant chromium: Ubuntu has no vagrant deb"


def dry_run(tmp_path, os_release: str, test_tools: bool) -> tuple[list[str], list[str]]:
    """(the packages, the other lines) that setup.sh prints for this os-release."""
    path = tmp_path / "os-release"
    path.write_text(os_release)
    env = {**os.environ, "SETUP_DRY_RUN": "1", "SETUP_OS_RELEASE": str(path),
           "SETUP_TEST_TOOLS": "1" if test_tools else "0"}
    done = subprocess.run(["bash", str(SETUP)], env=env, text=True, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    return ([line for line in lines if not line.startswith("==>")],
            [line for line in lines if line.startswith("==>")])


def test_debian_gets_every_test_tool(tmp_path):
    packages, notes = dry_run(tmp_path, DEBIAN, test_tools=True)
    assert {"vagrant", "shellcheck", "chromium", "python3-venv", "busybox-static"} <= set(packages)
    assert notes == []


def test_ubuntu_leaves_out_what_it_has_no_deb_of_and_says_so_once(tmp_path):
    debian, _ = dry_run(tmp_path, DEBIAN, test_tools=True)
    packages, notes = dry_run(tmp_path, UBUNTU, test_tools=True)
    assert packages == [p for p in debian if p not in ("vagrant", "chromium")]
    assert len(notes) == 1 and notes[0].startswith(NOTE)
    assert "snap" in notes[0]


def test_an_ubuntu_derivative_is_treated_as_ubuntu(tmp_path):
    packages, notes = dry_run(tmp_path, MINT, test_tools=True)
    assert "chromium" not in packages and "vagrant" not in packages and "shellcheck" in packages
    assert notes[0] == "==> warning: made for Debian 12 and Ubuntu 24.04, this is Linux Mint 22"
    assert len(notes) == 2 and notes[1].startswith(NOTE)


@pytest.mark.parametrize("os_release", [DEBIAN, UBUNTU])
def test_without_the_test_tools_both_get_the_same_list(tmp_path, os_release):
    debian, _ = dry_run(tmp_path, DEBIAN, test_tools=False)
    packages, notes = dry_run(tmp_path, os_release, test_tools=False)
    assert packages == debian and notes == []
    assert not {"vagrant", "chromium", "shellcheck"} & set(packages)


def test_another_distribution_is_warned_about(tmp_path):
    _, notes = dry_run(tmp_path, 'PRETTY_NAME="Fedora Linux 41"\nID=fedora\n', test_tools=False)
    assert notes == ["==> warning: made for Debian 12 and Ubuntu 24.04, this is Fedora Linux 41"]


@pytest.mark.parametrize("text, ubuntu", [(DEBIAN, False), (UBUNTU, True), (MINT, True),
                                          ("", False)])
def test_the_tests_know_ubuntu_as_setup_sh_does(tmp_path, text, ubuntu):
    """The skip reasons of the browser and vagrant tests name Ubuntu's cause exactly where
    setup.sh left the tool out."""
    path = tmp_path / "os-release"
    path.write_text(text)
    assert on_ubuntu(path) is ubuntu
    packages, _ = dry_run(tmp_path, text, test_tools=True)
    assert ("chromium" not in packages) is ubuntu


def test_on_ubuntu_without_an_os_release(tmp_path):
    assert on_ubuntu(tmp_path / "missing") is False
