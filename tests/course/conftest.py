"""Fixtures of the course tests: JupyterLab started as a learner starts it (``minidocker lab``),
on a free loopback port, with its home, token and runtime files in the test's own directory,
stopped by PID afterwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_ROOT_MARK

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


def on_ubuntu(os_release: Path = Path("/etc/os-release")) -> bool:
    """Ubuntu or a derivative (its ID or ID_LIKE names ubuntu), as scripts/setup.sh decides
    which test tools it leaves out (its UBUNTU_LACKS)."""
    try:
        text = os_release.read_text()
    except OSError:
        return False
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    ids = f"{fields.get('ID', '')} {fields.get('ID_LIKE', '')}".replace('"', "").split()
    return "ubuntu" in ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class RunningLab:
    popen: subprocess.Popen[str]
    port: int
    token: str
    home: Path
    notebooks: Path
    log: Path

    def api(self, path: str, token: bool = True) -> tuple[int, bytes]:
        query = f"?token={self.token}" if token else ""
        return get(f"http://127.0.0.1:{self.port}{path}{query}")

    def output(self) -> str:
        return self.log.read_text()


def lab_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "TMPDIR": str(home / "tmp")}
    for name in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE", "JUPYTER_CONFIG_DIR"):
        env.pop(name, None)
    (home / "tmp").mkdir(exist_ok=True)
    return env


def start_lab(home: Path, notebooks: Path | None, timeout: float = 90) -> RunningLab:
    """``minidocker lab`` on a free port, waited for until /api/status answers 200; on the
    repository's own lessons (its default) when ``notebooks`` is None."""
    port = free_port()
    log = home / "lab.log"
    where = [] if notebooks is None else ["--notebook-dir", str(notebooks)]
    with log.open("w") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "minidocker", "lab", "--port", str(port), *where],
            env=lab_env(home), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            text=True)
    token_file = home / ".config/minidocker/lab-token"
    deadline = time.monotonic() + timeout
    running = None
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise AssertionError(f"minidocker lab exited {popen.returncode}: {log.read_text()}")
        if token_file.exists() and running is None:
            running = RunningLab(popen, port, token_file.read_text(), home,
                                 notebooks or NOTEBOOKS, log)
        if running is not None:
            try:
                status, _ = running.api("/api/status")
                if status == 200:
                    return running
            except OSError:  # not listening yet
                pass
        time.sleep(0.2)
    stop_lab(popen)
    raise AssertionError(f"JupyterLab did not answer within {timeout}s: {log.read_text()}")


def stop_lab(popen: subprocess.Popen[str]) -> None:
    """SIGTERM to the server by PID (it shuts its kernels down), SIGKILL if it hangs."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


@pytest.fixture
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The session's mark in every path: a kernel left behind is caught by the leak check.
    return tmp_path_factory.mktemp(TEST_ROOT_MARK + "labhome")


@pytest.fixture
def lesson_copy(lab_home: Path) -> Path:
    """The lessons, copied: running them in a browser saves them, and the repository's copies
    belong to whoever records them."""
    target = lab_home / "notebooks"
    shutil.copytree(NOTEBOOKS, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return target


@pytest.fixture
def jupyterlab(lab_home: Path, lesson_copy: Path) -> Iterator[RunningLab]:
    running = start_lab(lab_home, lesson_copy)
    yield running
    stop_lab(running.popen)


def recorded_images(notebook: Path) -> int:
    """How many image/png outputs a saved notebook holds."""
    nb = json.loads(notebook.read_text())
    return sum("image/png" in out.get("data", {}) for cell in nb["cells"]
               if cell["cell_type"] == "code" for out in cell.get("outputs", []))
