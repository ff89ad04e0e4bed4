"""podman drives ``minidocker-runtime``: the proof that an engine can use it as its runtime.

podman (Debian's) with ``--runtime`` pointing at the runtime writes the bundle, runs conmon,
and conmon runs ``minidocker-runtime create/start/exec/kill/delete``, reading errors from its
log. podman's own storage and state live under a temporary directory (``--root``,
``--runroot``, the ``vfs`` driver: no mounts of its own to leave), the image is imported from
the busybox rootfs (no registry), the network is ``none`` and the ulimits are the ones these
hosts need (``nofile`` and ``nproc`` within root's hard limits).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import TEST_ROOT_MARK, needs_root

pytestmark = [needs_root, pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("podman") is None or shutil.which("conmon") is None,
                                 reason="podman and conmon are not installed (scripts/setup.sh "
                                        "installs them)")]

RUNTIME = Path(sys.executable).parent / "minidocker-runtime"
RUN_FLAGS = ("--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit",
             "nproc=1024:1024")


class Podman:
    def __init__(self, base: Path, runroot: Path) -> None:
        self.base, self.runroot = base, runroot
        self.runtime_root = base / "runtime"  # where conmon's runtime keeps its state
        # A wrapper, so that the runtime gets its own --root (podman passes none by default).
        self.wrapper = base / "minidocker-runtime"
        self.wrapper.write_text(f"#!/bin/sh\nexec {RUNTIME} --root {self.runtime_root} "
                                '"$@"\n')
        self.wrapper.chmod(0o755)

    def argv(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self.base / "storage"), "--runroot",
                str(self.runroot), "--storage-driver", "vfs", "--cgroup-manager",
                "cgroupfs", "--events-backend", "none", "--runtime", str(self.wrapper), *args]

    def __call__(self, *args: str, timeout: float = 120,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), text=True, capture_output=True,
                              timeout=timeout, input=input, stdin=None if input is not None
                              else subprocess.DEVNULL)

    def left(self) -> list[str]:
        """The runtime's containers (state and the engine's records) still kept."""
        found = [n for n in os.listdir(self.runtime_root) if n != ".engine"] \
            if self.runtime_root.exists() else []
        engine = self.runtime_root / ".engine" / "containers"
        return found + (os.listdir(engine) if engine.exists() else [])


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory):
    if not RUNTIME.exists():
        pytest.skip(f"{RUNTIME} is not installed (pip install -e . makes it)")
    from minidocker import busybox
    from minidocker.errors import HostError

    try:
        data = busybox.check_static()
    except HostError as exc:
        pytest.skip(f"no static busybox to make an image from: {exc}")
    base = tmp_path_factory.mktemp(TEST_ROOT_MARK + "podman")
    # podman refuses a runroot longer than 50 characters: pytest's temporary paths are.
    runroot = Path(tempfile.mkdtemp(prefix=TEST_ROOT_MARK + "run", dir="/tmp"))
    p = Podman(base, runroot)
    tar = base / "busybox.tar"
    tar.write_bytes(busybox.build_rootfs(data, busybox.applets(), 0))
    imported = p("import", str(tar), "localhost/mdtest-busybox:latest")
    assert imported.returncode == 0, imported.stderr
    yield p
    leftover = p("ps", "-aq").stdout.split()
    if leftover:
        p("rm", "-f", "-t", "0", *leftover)
    p("rmi", "-af")
    subprocess.run(p.argv("system", "reset", "-f"), capture_output=True, timeout=120,
                   stdin=subprocess.DEVNULL)
    shutil.rmtree(runroot, ignore_errors=True)


IMAGE = "localhost/mdtest-busybox:latest"


def test_run_rm_prints_and_leaves_nothing(podman: Podman) -> None:
    result = podman("run", "--rm", *RUN_FLAGS, IMAGE, "sh", "-c", "echo hello from $0",
                    "podman")
    assert (result.returncode, result.stdout) == (0, "hello from podman\n"), result.stderr
    assert podman("ps", "-aq").stdout == ""
    assert podman.left() == []


def test_an_exit_code_comes_back_through_podman(podman: Podman) -> None:
    result = podman("run", "--rm", *RUN_FLAGS, IMAGE, "sh", "-c", "exit 42")
    assert result.returncode == 42, result.stderr
    assert podman.left() == []


def test_run_detached_then_exec_stop_rm(podman: Podman) -> None:
    started = podman("run", "-d", *RUN_FLAGS, IMAGE, "sh", "-c",
                     "trap 'exit 0' TERM; while :; do sleep 0.1; done")
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        listed = podman("ps", "--format", "{{.ID}} {{.Status}}")
        assert listed.stdout.startswith(cid[:12] + " Up"), listed.stdout
        execed = podman("exec", cid, "sh", "-c", "echo in $(hostname); exit 5")
        assert (execed.returncode, execed.stdout) == (5, f"in {cid[:12]}\n"), execed.stderr
        piped = podman("exec", "-i", cid, "cat", input="through stdin\n")
        assert (piped.returncode, piped.stdout) == (0, "through stdin\n"), piped.stderr
        top = podman("top", cid, "pid", "args")
        assert top.returncode == 0 and "sleep" in top.stdout, top.stderr
        stopped = podman("stop", "-t", "10", cid)
        assert stopped.returncode == 0, stopped.stderr
        code = podman("inspect", "-f", "{{.State.ExitCode}}", cid)
        assert code.stdout.strip() == "0"  # the trap ran: SIGTERM arrived, no SIGKILL needed
    finally:
        removed = podman("rm", "-f", cid)
    assert removed.returncode == 0, removed.stderr
    assert podman.left() == []


def test_run_t_gives_the_container_a_terminal(podman: Podman) -> None:
    result = podman("run", "--rm", "-t", *RUN_FLAGS, IMAGE, "sh", "-c",
                    "tty; [ -t 0 ] && echo stdin-is-a-tty; exit 4")
    assert result.returncode == 4, result.stderr
    assert result.stdout.replace("\r", "").splitlines() == ["/dev/pts/0", "stdin-is-a-tty"]
    assert podman.left() == []


def test_a_runtime_error_reaches_podman(podman: Podman) -> None:
    result = podman("run", "--rm", *RUN_FLAGS, IMAGE, "/no/such/program")
    assert result.returncode == 127  # podman's code for a command that is not there
    assert 'exec: "/no/such/program": stat /no/such/program: no such file or directory' in \
        result.stderr
    assert podman.left() == []
