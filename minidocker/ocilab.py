"""Lesson 11's bench: one bundle, three runtimes (runc, crun, ``minidocker-runtime``) and
podman, each with state of its own under one temporary directory.

The lesson drives the runtimes as an engine does, through their command lines, so this module
only writes files and runs commands: a busybox bundle (``config.json`` from ``runc spec`` or
``minidocker-runtime spec``), a launcher for ``minidocker-runtime`` like scripts/setup.sh's
(the venv's python with ``-I -S``), and a wrapper that podman runs as its ``--runtime``, which
logs each command line before handing it on. :meth:`RuntimeLab.close` deletes what every
runtime still holds, then the directory.

Notebook: ``11_runtime_spec``. See the OCI runtime-spec ``runtime.md`` and runc(8).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REPO = Path(__file__).resolve().parent.parent
PREFIX = "mdlab-oci-"
IMAGE = "localhost/mdlab-busybox:latest"
# podman on these hosts: no network of its own, rlimits within root's hard limits (HOST.md).
PODMAN_RUN = ("--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit",
              "nproc=1024:1024")


class Result:
    """One command: its exit code, output and wall time."""

    __slots__ = ("argv", "code", "stdout", "stderr", "ms")

    def __init__(self, argv: list[str], done: subprocess.CompletedProcess[str],
                 ms: float) -> None:
        self.argv, self.code, self.ms = argv, done.returncode, ms
        self.stdout, self.stderr = done.stdout or "", done.stderr or ""

    def check(self) -> Result:
        if self.code != 0:
            raise RuntimeError(f"{' '.join(self.argv[:4])}... exited {self.code}: "
                               f"{self.stderr.strip()}")
        return self


class RuntimeLab:
    """A temporary directory holding the bundles and each runtime's ``--root``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.rootfs = self.dir / "rootfs"
        _busybox_rootfs(self.rootfs)
        self.runtime = self.dir / "minidocker-runtime"
        self.runtime.write_text(f"#!{sys.executable} -IS\nimport sys\n"
                                f"sys.path.insert(0, {str(REPO)!r})\n"
                                "from minidocker.ociruntime import main\nsys.exit(main())\n")
        self.runtime.chmod(0o755)
        self.podman_log = self.dir / "podman-calls.log"
        self.wrapper = self.dir / "traced-runtime"  # what podman runs: log argv, then exec
        self.wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {self.podman_log}\n'
                                f'exec {self.runtime} --root {self.dir / "state-podman"} "$@"\n')
        self.wrapper.chmod(0o755)
        self._imported = False
        self.ids: set[str] = set()  # every container ID a runtime was asked to create

    # -- bundles and runtimes ----------------------------------------------------------------

    def bundle(self, name: str, args: list[str], edit: Any = None, tool: str = "") -> Path:
        """``<dir>/<name>``: ``TOOL spec`` (runc's if installed, else minidocker-runtime's),
        with ``args``, no terminal, the shared busybox root; ``edit(doc)`` may change more."""
        import json

        path = self.dir / name
        path.mkdir()
        tool = tool or ("runc" if shutil.which("runc") else str(self.runtime))
        subprocess.run([tool, "spec"], cwd=path, check=True, capture_output=True)
        doc = json.loads((path / "config.json").read_text())
        doc["root"]["path"] = str(self.rootfs)
        doc["process"].update(terminal=False, args=args)
        if edit is not None:
            edit(doc)
        (path / "config.json").write_text(json.dumps(doc, indent=2))
        return path

    def argv(self, runtime: str, *args: str) -> list[str]:
        program = str(self.runtime) if runtime == "minidocker" else runtime
        return [program, "--root", str(self.dir / f"state-{runtime}"), *args]

    def rt(self, runtime: str, *args: str, timeout: float = 60) -> Result:
        """``RUNTIME --root <its own> ARGS``, timed. Its output goes through files, not pipes:
        a container that ``create`` leaves behind keeps the runtime's stdout and stderr (as
        a shim's would), and a pipe would not end until it does."""
        if args[:1] in (("create",), ("run",)):
            self.ids.add(args[-1])
        return _run(self.argv(runtime, *args), timeout)

    # -- podman ------------------------------------------------------------------------------

    def podman(self, *args: str, timeout: float = 120) -> Result:
        """podman with its storage here (vfs, cgroupfs), the traced wrapper as its runtime."""
        if not self._imported and args[:1] != ("import",):
            from minidocker import busybox

            tar = self.dir / "busybox.tar"
            tar.write_bytes(busybox.build_rootfs(busybox.check_static(), busybox.applets(), 0))
            self.podman("import", str(tar), IMAGE).check()
            self._imported = True
        argv = ["podman", "--root", str(self.dir / "podman"), "--runroot",
                str(self.dir / "podman-run"), "--storage-driver", "vfs", "--cgroup-manager",
                "cgroupfs", "--events-backend", "none", "--runtime", str(self.wrapper), *args]
        return _run(argv, timeout)

    def podman_calls(self) -> list[list[str]]:
        """What podman (and conmon) asked the runtime, one command line each, in order."""
        if not self.podman_log.exists():
            return []
        return [line.split() for line in self.podman_log.read_text().splitlines()]

    # -- what is left ------------------------------------------------------------------------

    def containers(self, runtime: str) -> list[str]:
        """The IDs a runtime still keeps under its ``--root``."""
        root = self.dir / f"state-{runtime}"
        return sorted(n for n in os.listdir(root) if not n.startswith(".")) \
            if root.is_dir() else []

    def close(self) -> list[str]:
        """Delete every container each runtime still holds, podman's too, then the
        directory; returns what had to be deleted (nothing, after a tidy lesson)."""
        left = []
        for runtime in ("minidocker", "runc", "crun", "podman"):
            for cid in self.containers(runtime):
                left.append(f"{runtime}:{cid}")
                program = str(self.runtime) if runtime in ("minidocker", "podman") else runtime
                subprocess.run([program, "--root", str(self.dir / f"state-{runtime}"), "delete",
                                "--force", cid], capture_output=True, timeout=60)
        if self._imported:
            self.podman("rm", "-a", "-f", "-t", "0")
            self.podman("system", "reset", "-f")
        shutil.rmtree(self.dir, ignore_errors=True)
        return left


    def leftover_cgroups(self) -> list[str]:
        """The cgroup directories still there for an ID this lab used: runc and crun name
        the group after the ID, minidocker after the engine's ID for it, under minidocker/."""
        from minidocker.ocicommands import engine_id

        found = []
        for top in ("/sys/fs/cgroup", *(f"/sys/fs/cgroup/{c}" for c in ("pids", "memory"))):
            for cid in self.ids:
                for path in (f"{top}/{cid}", f"{top}/minidocker/{engine_id(cid)}"):
                    if os.path.isdir(path):
                        found.append(path)
        return found


def _run(argv: list[str], timeout: float) -> Result:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        code = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                              timeout=timeout).returncode
        ms = (time.perf_counter() - t0) * 1000
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(argv, code, out.read(), err.read())
    return Result(argv, done, ms)


def _busybox_rootfs(dest: Path) -> None:
    """The static busybox and its applets as a root filesystem, from minidocker's own tar."""
    import io
    import tarfile

    from minidocker import busybox

    tar = busybox.build_rootfs(busybox.check_static(), busybox.applets(), 0)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(dest)  # our own tar: busybox and its applets


def median_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
