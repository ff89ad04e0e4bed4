"""A directory standing in for /sys/fs/cgroup: a tiny fake kernel for the cgroup unit tests.

``mkdir`` in a cgroupfs makes a group whose control files the kernel fills in; ``rmdir``
removes a group that holds no process and no child group, else fails with EBUSY. This fake
does the same in ``tmp_path`` (by patching :func:`minidocker.syscalls.mkdir` and ``rmdir``),
and records every ``write_file`` as ``(path relative to the root, value)``, in order.

Two more things the kernel does that the I/O weight depends on. The weight files come from
the I/O scheduler, not the controller, so a host has some of them or none (``weights``: BFQ's
``blkio.bfq.weight``/``io.bfq.weight``, CFQ's ``blkio.weight``, blk-iocost's ``io.weight``),
and never in the root group. And on v2 a new group has a controller's files only if its
parent hands that controller down in ``cgroup.subtree_control``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from minidocker import syscalls

HUGE = "9223372036854771712"

V1_FILES = {
    "memory": {"memory.limit_in_bytes": HUGE, "memory.memsw.limit_in_bytes": HUGE,
               "memory.soft_limit_in_bytes": HUGE, "memory.usage_in_bytes": "0",
               "memory.max_usage_in_bytes": "0", "memory.stat": "total_inactive_file 0\n",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1"},
    "cpuacct": {"cpuacct.usage": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "blkio": {"blkio.throttle.io_service_bytes_recursive": "Total 0\n"},
    "freezer": {"freezer.state": "THAWED"},
}

V2_FILES = {"cgroup.controllers": "cpuset cpu io memory pids", "cgroup.subtree_control": "",
            "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0",
            "cgroup.kill": "", "memory.max": "max", "memory.swap.max": "max",
            "memory.low": "0", "memory.current": "0", "memory.stat": "inactive_file 0\n",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
            "cpu.weight": "100", "cpu.max": "max 100000", "cpu.stat": "usage_usec 0\n",
            "cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "pids.current": "0",
            "io.stat": ""}

# A Debian host with BFQ loaded (v1), and one with blk-iocost built in (v2): what the tests
# had before hosts without either were modelled.
DEFAULT_WEIGHTS = {1: ("blkio.bfq.weight",), 2: ("io.weight",)}
WEIGHT_VALUES = {"blkio.weight": "500", "blkio.bfq.weight": "100",
                 "io.weight": "default 100", "io.bfq.weight": "default 100"}


class FakeCgroupfs:
    def __init__(self, root: Path, version: int,
                 weights: tuple[str, ...] | None = None) -> None:
        self.root = root
        self.version = version
        self.weights = DEFAULT_WEIGHTS[version] if weights is None else weights
        self.writes: list[tuple[str, str]] = []
        if version == 2:
            self._populate(root, V2_FILES)
        else:
            for controller, files in V1_FILES.items():
                (root / controller).mkdir()
                self._populate(root / controller, files)
            (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
            (root / "cpuset" / "cpuset.mems").write_text("0\n")

    def _populate(self, path: Path, files: dict[str, str]) -> None:
        (path / "cgroup.procs").write_text("")
        if self.version == 1:
            (path / "tasks").write_text("")
        for name, value in files.items():
            (path / name).write_text(value)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        os.mkdir(path, mode)
        p = Path(path)
        if self.version == 2:
            handed_down = (p.parent / "cgroup.subtree_control").read_text().split()
            files = {name: value for name, value in V2_FILES.items()
                     if name.split(".")[0] in ("cgroup", *handed_down)}
            files["cgroup.controllers"] = " ".join(handed_down)
            files["cgroup.subtree_control"] = ""
            if "io" in handed_down:
                files.update(self._weight_files("io."))
            self._populate(p, files)
        else:
            controller = p.relative_to(self.root).parts[0]
            files = dict(V1_FILES[controller])
            if controller == "blkio":
                files.update(self._weight_files("blkio."))
            self._populate(p, files)

    def _weight_files(self, prefix: str) -> dict[str, str]:
        return {name: WEIGHT_VALUES[name] for name in self.weights if name.startswith(prefix)}

    def rmdir(self, path: str) -> None:
        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if (p / "cgroup.procs").read_text().strip() or any(c.is_dir() for c in p.iterdir()):
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        for child in p.iterdir():
            child.unlink()
        p.rmdir()

    def write_file(self, path: str, data: str) -> None:
        """A control file takes the value written (the kernel's files have no stale tail);
        a file the "kernel" did not make can't be opened, as with O_WRONLY and no O_CREAT."""
        self.writes.append((str(Path(path).relative_to(self.root)), data))
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if path.endswith("/cgroup.subtree_control"):  # "+io -cpu": edits, not a new value
            enabled = Path(path).read_text().split()
            for edit in data.split():
                name = edit[1:]
                if edit[0] == "+" and name not in enabled:
                    enabled.append(name)
                elif edit[0] == "-" and name in enabled:
                    enabled.remove(name)
            data = " ".join(enabled)
        Path(path).write_text(data)

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text()

    def dirs(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_dir())


def install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: int,
            weights: tuple[str, ...] | None = None) -> FakeCgroupfs:
    fake = FakeCgroupfs(tmp_path, version, weights)
    monkeypatch.setattr(syscalls, "mkdir", fake.mkdir)
    monkeypatch.setattr(syscalls, "rmdir", fake.rmdir)
    monkeypatch.setattr(syscalls, "write_file", fake.write_file)
    return fake
