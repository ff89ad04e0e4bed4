"""A directory standing in for /sys/fs/cgroup: a tiny fake kernel for the cgroup unit tests.

``mkdir`` in a cgroupfs makes a group whose control files the kernel fills in; ``rmdir``
removes a group that holds no process and no child group, else fails with EBUSY. This fake
does the same in ``tmp_path`` (by patching :func:`minidocker.syscalls.mkdir` and ``rmdir``),
and records every ``write_file`` as ``(path relative to the root, value)``, in order.
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
    "blkio": {"blkio.bfq.weight": "100",
              "blkio.throttle.io_service_bytes_recursive": "Total 0\n"},
    "freezer": {"freezer.state": "THAWED"},
}

V2_FILES = {"cgroup.controllers": "cpuset cpu io memory pids", "cgroup.subtree_control": "",
            "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0",
            "cgroup.kill": "", "memory.max": "max", "memory.swap.max": "max",
            "memory.low": "0", "memory.current": "0", "memory.stat": "inactive_file 0\n",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
            "cpu.weight": "100", "cpu.max": "max 100000", "cpu.stat": "usage_usec 0\n",
            "cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "pids.current": "0",
            "io.weight": "default 100", "io.stat": ""}


class FakeCgroupfs:
    def __init__(self, root: Path, version: int) -> None:
        self.root = root
        self.version = version
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
            self._populate(p, V2_FILES)
        else:
            self._populate(p, V1_FILES[p.relative_to(self.root).parts[0]])

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
        Path(path).write_text(data)

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text()

    def dirs(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_dir())


def install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: int) -> FakeCgroupfs:
    fake = FakeCgroupfs(tmp_path, version)
    monkeypatch.setattr(syscalls, "mkdir", fake.mkdir)
    monkeypatch.setattr(syscalls, "rmdir", fake.rmdir)
    monkeypatch.setattr(syscalls, "write_file", fake.write_file)
    return fake
