"""A container's cgroup, read by fact ("memory limit", "cpu quota") on whichever cgroup version
the host has, so that each kernel test is written once and runs on v1 here and on v2 in the VM
lane (``scripts/vm-test.sh``).

:data:`FACTS` names, for each fact, v1's controller and file and v2's file: the same mapping
the drivers' docstrings show (:mod:`minidocker.cgroups.v1`, :mod:`minidocker.cgroups.v2`).
What a fact *should* read for a plan goes through the package's own converters
(:func:`~minidocker.cgroups.cpu_weight`, :func:`~minidocker.cgroups.swap_only`,
:func:`~minidocker.cgroups.cfs`...), and what the package already reads (stats, the freezer,
OOM kills, the I/O weight's file) is read through :class:`~minidocker.cgroups.Cgroup`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from minidocker import cgroups

ROOT = Path(cgroups.ROOT)
VERSION = cgroups.version()

# fact: (v1 controller, v1 file, v2 file)
FACTS: dict[str, tuple[str, str, str]] = {
    "memory limit": ("memory", "memory.limit_in_bytes", "memory.max"),
    "swap limit": ("memory", "memory.memsw.limit_in_bytes", "memory.swap.max"),
    "memory usage": ("memory", "memory.usage_in_bytes", "memory.current"),
    "cpu quota": ("cpu", "cpu.cfs_quota_us", "cpu.max"),
    "cpu period": ("cpu", "cpu.cfs_period_us", "cpu.max"),
    "cpu weight": ("cpu", "cpu.shares", "cpu.weight"),
    "cpuset cpus": ("cpuset", "cpuset.cpus", "cpuset.cpus"),
    "pids limit": ("pids", "pids.max", "pids.max"),
    "pids current": ("pids", "pids.current", "pids.current"),
    "pids refused": ("pids", "pids.events", "pids.events"),
    "processes": ("pids", "cgroup.procs", "cgroup.procs"),
    "freezer": ("freezer", "freezer.state", "cgroup.freeze"),
}


def driver(version: int = VERSION) -> Any:
    """The package's driver module for ``version`` (:mod:`minidocker.cgroups.v1` or ``v2``)."""
    return cgroups.Cgroup(version, {}).driver()


def parse(fact: str, text: str, version: int = VERSION) -> int | str | None:
    """A fact's file, as read (from the host or inside the container), in the file's units:
    an int, None for "no limit" (``max``, v1's huge number), or the text (cpuset, freezer)."""
    text = text.strip()
    if fact in ("cpuset cpus", "freezer"):
        return text
    if fact == "pids refused":  # "max N": forks the limit refused
        return int(text.split()[1])
    if fact in ("cpu quota", "cpu period") and version == 2:  # cpu.max: "$QUOTA $PERIOD"
        text = text.split()[0 if fact == "cpu quota" else 1]
    if fact == "cpu quota" and text == "-1":  # v1's "no quota"
        return None
    if text == "max":
        return None
    value = int(text)
    return None if value >= cgroups.UNLIMITED else value


def want(fact: str, limits: cgroups.CgroupLimits, version: int = VERSION) -> int | str | None:
    """What ``fact`` should read for the plan ``limits``, in this version's units."""
    lim = limits
    if fact == "memory limit":
        return lim.memory or None
    if fact == "swap limit":  # v1: memory + swap; v2: swap alone
        if lim.memory_swap < 0:
            return None
        return lim.memory_swap if version == 1 else cgroups.swap_only(lim.memory, lim.memory_swap)
    if fact in ("cpu quota", "cpu period"):
        period, quota = cgroups.cfs(lim)
        if fact == "cpu period":
            return period or cgroups.CFS_PERIOD_US
        return None if quota <= 0 else quota
    if fact == "cpu weight":  # v1 cpu.shares, v2 cpu.weight (runc's conversion)
        if not lim.cpu_shares:  # the kernel's defaults
            return 1024 if version == 1 else 100
        return lim.cpu_shares if version == 1 else cgroups.cpu_weight(lim.cpu_shares)
    if fact == "cpuset cpus":
        return lim.cpuset_cpus
    if fact == "pids limit":
        return None if lim.pids_limit is None or lim.pids_limit <= 0 else lim.pids_limit
    raise KeyError(f"no plan value for {fact!r}")


def want_io_weight(weight_file: str, blkio_weight: int) -> int:
    """``--blkio-weight`` in the file the kernel offers: v1's two files and v2's BFQ file keep
    the 10..1000 scale; v2's ``io.weight`` (blk-iocost) takes 1..10000."""
    return cgroups.io_weight(blkio_weight) if weight_file == "io.weight" else blkio_weight


class Group:
    """One container's cgroup, from what its state.json recorded."""

    def __init__(self, record: dict[str, object]) -> None:
        self.cgroup = cgroups.Cgroup.from_dict(record)
        self.version = self.cgroup.version
        self.paths = self.cgroup.paths

    @classmethod
    def of(cls, state_root: Path, name: str) -> Group:
        cid = os.readlink(state_root / "names" / name)
        state = json.loads((state_root / "containers" / cid / "state.json").read_text())
        return cls(state["Cgroup"])

    def file(self, fact: str) -> Path:
        """The host's file for ``fact`` in this container's group."""
        controller, v1_file, v2_file = FACTS[fact]
        if self.version == 2:
            return Path(self.paths["unified"], v2_file)
        return Path(self.paths[controller], v1_file)

    def name(self, fact: str) -> str:
        return self.file(fact).name

    def has(self, fact: str) -> bool:
        """Does this kernel offer the fact's file (swap accounting, a controller) here?"""
        return self.file(fact).exists()

    def read(self, fact: str) -> int | str | None:
        return parse(fact, self.file(fact).read_text(), self.version)

    def want(self, fact: str, limits: cgroups.CgroupLimits) -> int | str | None:
        return want(fact, limits, self.version)

    def directory(self, controller: str = "memory") -> Path:
        return Path(self.paths["unified" if self.version == 2 else controller])

    def cpu_usage_ns(self) -> int:
        """v1 ``cpuacct.usage``, v2 ``cpu.stat``'s usage_usec, as ``stats`` reads them."""
        return int(self.cgroup.stats()["cpu_usage_ns"] or 0)

    def frozen(self) -> bool:
        return self.cgroup.frozen()

    def thaw(self) -> None:
        self.cgroup.thaw()

    def weight_file(self) -> str | None:
        """The file ``--blkio-weight`` went to (None: the kernel offers none here)."""
        drv = self.cgroup.driver()
        group = drv.weight_group(self.paths)
        return None if group is None else drv.weight_file(group)

    def read_weight(self) -> int:
        """The default weight in the weight file (``300``, BFQ's ``default 300``...)."""
        name = self.weight_file()
        assert name is not None
        group = self.cgroup.driver().weight_group(self.paths)
        return int(Path(group, name).read_text().splitlines()[0].split()[-1])

    def own(self, proc_cgroup: str) -> dict[str, str]:
        """``/proc/<pid>/cgroup`` -> {key of this group's paths: path}: v1's hierarchies (lines
        ``4:memory:/path``), or v2's one line ``0::/path``."""
        out = {}
        for line in proc_cgroup.splitlines():
            if line.count(":") < 2:
                continue
            hid, names, path = line.split(":", 2)
            if self.version == 2:
                if hid == "0" and names == "":
                    out["unified"] = path
                continue
            for name in names.split(","):
                if name in self.paths:
                    out[name] = path
        return out


def weight_file_for_parent(parent: str) -> str | None:
    """The I/O weight file a container under ``parent`` would get (None: none on this host's
    disks), as ``run`` decides it (:func:`minidocker.cgroups.discard_unsupported`); makes
    ``parent`` if missing, as a start would."""
    drv = driver()
    group = drv.weight_parent(str(ROOT), parent)
    return None if group is None else drv.weight_file(group)


def groups_under(parent: str, cid: str = "*") -> list[str]:
    """The container groups under ``parent`` (v1: one per hierarchy; v2: one)."""
    return [str(p) for p in [*ROOT.glob(f"{parent}/{cid}"), *ROOT.glob(f"*/{parent}/{cid}")]
            if p.is_dir()]


def parent_dirs(parent: str) -> list[Path]:
    """``parent`` in every hierarchy (v1) or the one tree (v2), where it exists."""
    if VERSION == 2:
        return [ROOT / parent] if (ROOT / parent).is_dir() else []
    return [Path(h, parent) for h in driver().hierarchies(str(ROOT)).values()
            if Path(h, parent).is_dir()]


def parent_dir(parent: str, controller: str) -> Path:
    """``parent`` where ``controller``'s files are: its v1 hierarchy, or the one v2 tree."""
    if VERSION == 2:
        return ROOT / parent
    return Path(driver().hierarchies(str(ROOT))[controller], parent)


def file_name(fact: str) -> str:
    """The fact's file name on this host's version."""
    return FACTS[fact][2 if VERSION == 2 else 1]
