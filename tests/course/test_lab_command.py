"""``minidocker lab``: JupyterLab on the lessons for a bare host, and the reset between classes."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minidocker import lab, overlaylab
from minidocker.commands import lab as labcmd
from tests.conftest import TEST_ROOT_MARK, needs_root
from tests.course.conftest import REPO, free_port, get, lab_env, start_lab, stop_lab


def minidocker(*args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minidocker", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


# -- without root ---------------------------------------------------------------------------------

def test_the_prefixes_are_the_labs_own():
    assert labcmd.LESSON_ROOT_PREFIX == lab.STATE_ROOT_PREFIX
    assert labcmd.OVERLAY_ROOT_PREFIX == overlaylab.PREFIX
    assert overlaylab.PREFIX.startswith(lab.STATE_ROOT_PREFIX)


def test_only_directories_shaped_like_a_lab_count_as_lesson_state(tmp_path):
    (tmp_path / "mdlab-abc12345" / "lab").mkdir(parents=True)          # Lab
    for d in ("upper", "work", "merged"):
        (tmp_path / "mdlab-ovl-xyz98765" / d).mkdir(parents=True)      # OverlayLab
    (tmp_path / "mdlab-notes").mkdir()                 # the prefix, not the shape
    (tmp_path / "mdlab-ovl-half" / "upper").mkdir(parents=True)
    (tmp_path / "mdlab-file").write_text("not a directory")
    (tmp_path / "mdlab-link").symlink_to(tmp_path / "mdlab-abc12345")
    (tmp_path / "state" / "lab").mkdir(parents=True)  # the shape, not the prefix
    assert labcmd.lesson_roots(str(tmp_path)) == [str(tmp_path / "mdlab-abc12345"),
                                                 str(tmp_path / "mdlab-ovl-xyz98765")]
    assert labcmd.lesson_roots(str(tmp_path / "missing")) == []


def test_a_mount_below_a_root_is_seen(tmp_path):
    info = textwrap.dedent(f"""\
        22 1 8:1 / / rw shared:1 - ext4 /dev/sda1 rw
        99 22 0:50 / {tmp_path}/mdlab-a/merged rw - overlay overlay rw
        """)
    assert labcmd.mounts_below(f"{tmp_path}/mdlab-a", info) == [f"{tmp_path}/mdlab-a/merged"]
    assert labcmd.mounts_below(f"{tmp_path}/mdlab", info) == []  # a prefix, not a parent


@pytest.mark.parametrize("args, message", [
    (["--port", "0"], "invalid port 0"),
    (["--port", "70000"], "invalid port 70000"),
    (["--ip", "my laptop"], "invalid --ip 'my laptop'"),
    (["--notebook-dir", "/nonexistent/lessons"], "no notebook directory /nonexistent/lessons"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_and_exit_125(args, message):
    done = minidocker("lab", *args)
    assert done.returncode == 125, done
    assert message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_the_command_line_it_would_run(tmp_path):
    done = minidocker("lab", "--dry-run", "--port", "8123", "--notebook-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    argv = done.stdout.split()
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"]
    assert "--ip=127.0.0.1" in argv  # loopback unless told otherwise
    assert "--port=8123" in argv and "--ServerApp.port_retries=0" in argv
    assert f"--ServerApp.root_dir={tmp_path}" in argv
    assert ("--allow-root" in argv) == (os.geteuid() == 0)
    assert not any("token" in a.lower() for a in argv)  # never where ps shows it


def test_default_notebook_dir_is_the_repositorys():
    assert labcmd.default_notebook_dir() == str(REPO / "notebooks")


def test_the_token_is_made_once_private_and_kept(tmp_path):
    path = str(tmp_path / "conf" / "lab-token")
    token = labcmd.ensure_token(path)
    assert len(token) == 48 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Path(path).read_text() == token  # no newline: jupyter_server reads it as it is
    assert labcmd.ensure_token(path) == token


def test_url_prints_the_kept_token(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    done = minidocker("lab", "url", env=env)
    assert done.returncode == 125 and "start the lab first" in done.stderr
    token = labcmd.ensure_token(str(tmp_path / "minidocker" / "lab-token"))
    done = minidocker("lab", "url", "--port", "9999", env=env)
    assert done.stdout == f"http://127.0.0.1:9999/lab?token={token}\n"


def test_reset_with_nothing_to_reset(tmp_path):
    done = minidocker("lab", "reset", env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0
    assert done.stdout == f"nothing to reset: no lesson state in {tmp_path}\n"


# -- JupyterLab, for real -------------------------------------------------------------------------

def test_lab_serves_the_lessons_with_a_token(lab_home, lesson_copy):
    running = start_lab(lab_home, lesson_copy)
    try:
        status, body = running.api("/api/status")
        assert status == 200 and "started" in json.loads(body)
        status, body = running.api("/api/contents")
        names = {c["name"] for c in json.loads(body)["content"]}
        assert status == 200 and "01_namespaces.ipynb" in names
        assert running.api("/api/status", token=False)[0] == 403
        status, body = running.api("/lab")
        assert status == 200 and b"JupyterLab" in body
        out = running.output()
        assert f"http://127.0.0.1:{running.port}/lab?token={running.token}" in out
        assert "warning" not in out.split("JupyterLab for")[0]  # loopback: no warning
        # exec'd: the PID that printed the URL is the server's own
        with open(f"/proc/{running.popen.pid}/cmdline", "rb") as f:
            assert b"jupyterlab" in f.read()
    finally:
        stop_lab(running.popen)
    assert running.popen.returncode is not None


def test_beyond_loopback_it_warns(lab_home, lesson_copy):
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "minidocker", "lab", "--ip", "0.0.0.0",
                           "--port", str(port), "--dry-run"], text=True, capture_output=True,
                          env=lab_env(lab_home))
    assert done.returncode == 0 and "--ip=0.0.0.0" in done.stdout
    popen = subprocess.Popen([sys.executable, "-m", "minidocker", "lab", "--ip", "0.0.0.0",
                              "--port", str(port), "--notebook-dir", str(lesson_copy)],
                             env=lab_env(lab_home), text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "warning" not in line:
            line = popen.stderr.readline()
        assert "warning: listening on 0.0.0.0" in line
        assert "runs code as uid" in line
    finally:
        stop_lab(popen)
        popen.stdout.close()
        popen.stderr.close()


# -- reset, with real lessons' state --------------------------------------------------------------

_CRASHED_LESSON = """
import os, sys
from minidocker import lab
bench = lab.Lab()
bg = bench.start("busybox", "sleep", "300")
print(bench.root, bg.pid(), flush=True)
os._exit(0)  # a kernel killed mid-lesson: no clean-up cell, no finalizer
"""


@needs_root
@pytest.mark.kernel
def test_reset_removes_a_crashed_lessons_state_and_nothing_else(tmp_path_factory, cli):
    tmp = tmp_path_factory.mktemp(TEST_ROOT_MARK + "labtmp")
    env = {**os.environ, "TMPDIR": str(tmp)}
    done = subprocess.run([sys.executable, "-c", _CRASHED_LESSON], env=env, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    root, pid = done.stdout.split()
    assert os.path.exists(f"/proc/{pid}")  # its container runs on, orphaned
    # Beside it: a directory with the prefix but not the shape, and a real state root (the
    # cli fixture's) with an image in it.
    (tmp / "mdlab-keepme").mkdir()
    (tmp / "mdlab-keepme" / "notes.txt").write_text("mine")
    assert cli("run", "--rm", "busybox", "true").returncode == 0
    images_before = cli("images", "-q").stdout

    done = minidocker("lab", "reset", env=env)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"removed {root} (a lesson's state root; stopped container ")
    assert not os.path.exists(root)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")
    assert (tmp / "mdlab-keepme" / "notes.txt").read_text() == "mine"
    assert cli("images", "-q").stdout == images_before != ""
    # Again: nothing left to do.
    assert minidocker("lab", "--reset", env=env).stdout.startswith("nothing to reset")


@needs_root
@pytest.mark.kernel
def test_reset_removes_a_sandboxed_lessons_network_namespace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp(TEST_ROOT_MARK + "labtmp")
    env = {**os.environ, "TMPDIR": str(tmp)}
    code = ("import os; from minidocker import lab; b = lab.Lab(network_sandbox=True); "
            "print(b.root, b.netns, flush=True); os._exit(0)")
    done = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    root, netns = done.stdout.split()
    assert os.path.exists(f"/run/netns/{netns}")
    out = minidocker("lab", "reset", env=env).stdout
    assert f"removed {root} (a lesson's state root)" in out
    assert f"removed network namespace {netns}" in out
    assert not os.path.exists(f"/run/netns/{netns}") and not os.path.exists(root)


@needs_root
@pytest.mark.kernel
def test_reset_removes_an_overlay_lessons_root(tmp_path_factory):
    tmp = tmp_path_factory.mktemp(TEST_ROOT_MARK + "labtmp")
    env = {**os.environ, "TMPDIR": str(tmp)}
    code = ("import os; from minidocker import overlaylab; o = overlaylab.OverlayLab(); "
            "o.add_lower('l1', {'a': b'x'}); print(o.root, flush=True); os._exit(0)")
    done = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                          capture_output=True, timeout=60)
    root = done.stdout.strip()
    out = minidocker("lab", "reset", env=env).stdout
    assert out == f"removed {root} (an overlay lesson's state root)\n"


# -- the README's way in, on a bare host ----------------------------------------------------------

def readme_bare_host_lines() -> list[str]:
    """The commands of the README's "Linux ... on the machine itself" block, comments cut."""
    text = (REPO / "README.md").read_text()
    section = text.split("**Linux (Debian 12 or Ubuntu 24.04), on the machine itself.**", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_goes_from_clone_to_lab_in_three_lines():
    clone, setup, lab_line = readme_bare_host_lines()
    assert clone == "git clone <URL of this repository> minidocker && cd minidocker"
    assert "<URL of this repository>" in (REPO / "README.md").read_text().split(clone, 1)[1]
    assert setup == "sudo bash scripts/setup.sh" and (REPO / "scripts/setup.sh").is_file()
    assert lab_line == "sudo minidocker lab"


def test_setup_ends_by_naming_the_lab():
    """Both ways out of setup.sh (the demo run, and SETUP_SKIP_DEMO=1) end with a line that
    names the README's last command."""
    script = (REPO / "scripts" / "setup.sh").read_text()
    readies = [line for line in script.splitlines() if line.strip().startswith('say "ready')]
    assert len(readies) == 2, readies
    lab_line = readme_bare_host_lines()[-1]
    assert all(f"'{lab_line}'" in line for line in readies), readies
    assert script.rstrip().splitlines()[-1] == readies[-1]


def test_the_readmes_lab_line_opens_lesson_01(lab_home):
    """``minidocker lab`` as the README's last line starts it (the repository's own lessons,
    no --notebook-dir; only --port added, for a free one, and a home of the test's own), then
    lesson 01 fetched through the Jupyter API with the token from the URL it printed."""
    words = readme_bare_host_lines()[-1].split()
    assert words[:2] == ["sudo", "minidocker"]  # the test runs as root: sudo adds nothing
    assert words[2:] == ["lab"]
    running = start_lab(lab_home, None)
    try:
        printed = re.search(rf"http://127\.0\.0\.1:{running.port}/lab\?token=(\w+)",
                            running.output())
        assert printed, running.output()
        assert printed.group(1) == running.token
        status, body = get(f"http://127.0.0.1:{running.port}/api/contents/01_namespaces.ipynb"
                           f"?token={printed.group(1)}")
        assert status == 200, body[:300]
        model = json.loads(body)
        assert model["type"] == "notebook" and model["name"] == "01_namespaces.ipynb"
        first = "".join(model["content"]["cells"][0]["source"])
        assert first.startswith("# 01"), first[:80]
        saved = json.loads((REPO / "notebooks" / "01_namespaces.ipynb").read_text())
        assert len(model["content"]["cells"]) == len(saved["cells"])
        # the lessons as shipped are trusted, so their saved widgets draw (test_browser.py)
        assert model["content"]["metadata"].get("widgets") == saved["metadata"].get("widgets")
        trusted = [c.get("metadata", {}).get("trusted") for c in model["content"]["cells"]
                   if c["cell_type"] == "code"]
        assert trusted and all(trusted), trusted
    finally:
        stop_lab(running.popen)
