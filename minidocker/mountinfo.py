"""What ``/proc/self/mountinfo`` and ``/proc/filesystems`` say: the mounts a process sees.

Each line of mountinfo (proc(5)) is one mount: its ID and its parent's, the directory it covers,
its options, its propagation tags (``shared:1``, ``master:2``: see mount_namespaces(7)), the
filesystem type and the "super options" the filesystem itself reports. Several questions are
answered from it: which filesystem a path lives on (the storage driver's choice), how the root
propagates (``doctor``), which cgroup version a host mounts, and what a container's mount table
looks like from inside (notebook 01).

This module reads text it is given (only :func:`mount_of` reads this process's own table) and
imports nothing of minidocker's, so both the storage driver (a mechanism) and
``minidocker doctor`` (a report at the top) can use it.

Notebooks: ``01_namespaces``, ``04_overlayfs``. See proc(5), mount_namespaces(7).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# v1 controllers, as they appear in the super options of a "cgroup" mount.
V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio",
    "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc",
})

@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo (see proc(5))."""

    mount_id: int
    parent_id: int
    root: str
    mount_point: str
    options: str
    optional: tuple[str, ...]  # "shared:1", "master:2", "propagate_from:3", "unbindable"
    fstype: str
    source: str
    super_options: str


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as \040 \011 \012 \134.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 6 or len(fields) < sep + 3:
            continue
        entries.append(MountEntry(
            mount_id=int(fields[0]), parent_id=int(fields[1]), root=_unescape(fields[3]),
            mount_point=_unescape(fields[4]), options=fields[5], optional=tuple(fields[6:sep]),
            fstype=fields[sep + 1], source=_unescape(fields[sep + 2]),
            super_options=fields[sep + 3] if len(fields) > sep + 3 else "",
        ))
    return entries


def mount_containing(path: str, mounts: list[MountEntry]) -> MountEntry | None:
    """The mount a path lives on: the longest mount point above it (the last one, if stacked)."""
    best: MountEntry | None = None
    for m in mounts:
        prefix = m.mount_point.rstrip("/") + "/"
        if (path == m.mount_point or path.startswith(prefix)) and (
                best is None or len(m.mount_point) >= len(best.mount_point)):
            best = m
    return best


def mount_of(path: str) -> MountEntry | None:
    """The mount ``path`` (symlinks resolved) lives on, as this process sees it now."""
    with open("/proc/self/mountinfo") as f:
        return mount_containing(os.path.realpath(path), parse_mountinfo(f.read()))


def propagation(entry: MountEntry) -> str:
    """``shared``, ``slave``, ``shared and slave``, ``unbindable`` or ``private``."""
    tags = {tag.split(":")[0] for tag in entry.optional}
    if "shared" in tags and "master" in tags:
        return "shared and slave"
    if "shared" in tags:
        return "shared"
    if "master" in tags:
        return "slave"
    if "unbindable" in tags:
        return "unbindable"
    return "private"


@dataclass(frozen=True)
class CgroupLayout:
    mode: str  # "v2", "hybrid", "v1" or "none"
    v2_path: str | None
    v1_controllers: tuple[str, ...]


def cgroup_layout(mounts: list[MountEntry]) -> CgroupLayout:
    v2 = [m.mount_point for m in mounts if m.fstype == "cgroup2"]
    controllers = sorted({opt for m in mounts if m.fstype == "cgroup"
                          for opt in m.super_options.split(",") if opt in V1_CONTROLLERS})
    if "/sys/fs/cgroup" in v2:
        return CgroupLayout("v2", "/sys/fs/cgroup", tuple(controllers))
    v2_path = v2[0] if v2 else None
    if controllers:
        return CgroupLayout("hybrid" if v2_path else "v1", v2_path, tuple(controllers))
    if v2_path:
        return CgroupLayout("v2", v2_path, ())
    return CgroupLayout("none", None, ())


def filesystem_types(proc_filesystems: str) -> set[str]:
    """The names in /proc/filesystems (the last column; ``nodev`` marks virtual ones)."""
    return {line.split()[-1] for line in proc_filesystems.splitlines() if line.strip()}
