"""cgroup v2: one tree for every controller, so one directory per container.

On a v2 ("unified") host, ``/sys/fs/cgroup`` is a single cgroup2 filesystem and a container's
group is one directory, ``/sys/fs/cgroup/minidocker/<id>``. Controllers are not separate trees
any more: a parent switches them on for its children by writing ``+memory +cpu ...`` into its
``cgroup.subtree_control``, and only then do the children get ``memory.max``, ``cpu.max``...
A group that hands controllers down may hold no process itself ("no internal processes"), which
is why containers live in a leaf under a parent of their own.

The files, with v1's names beside them (the arithmetic is in :mod:`minidocker.cgroups`):

================== ================================ ==========================================
v2 file            v1 file                           what changed
================== ================================ ==========================================
memory.max         memory.limit_in_bytes             ``max`` instead of a huge number
memory.swap.max    memory.memsw.limit_in_bytes       swap alone, not memory + swap
memory.low         memory.soft_limit_in_bytes        a protection, not a soft limit
cpu.max            cpu.cfs_quota_us, cfs_period_us   one file: ``"$QUOTA $PERIOD"``
cpu.weight         cpu.shares                        1..10000 (default 100), not 2..262144
io.weight          blkio.weight                      1..10000, not 10..1000
pids.max           pids.max                          the same
cpuset.cpus/.mems  cpuset.cpus/.mems                 empty means "inherit", not "none"
cgroup.freeze      freezer.state                     ``1``/``0``; ``frozen 1`` in cgroup.events
cgroup.kill        (none)                            kills the whole group at once (Linux 5.14)
memory.events      memory.oom_control                ``oom_kill N``
cpu.stat           cpuacct.usage                     ``usage_usec``, microseconds
================== ================================ ==========================================

Man pages: cgroups(7); kernel Documentation/admin-guide/cgroup-v2.rst.
"""

from __future__ import annotations

import errno
import os
import signal

from minidocker import syscalls, trace
from minidocker.cgroups.files import (
    first_present,
    make_parents,
    read_int,
    read_keyed,
    read_pids,
    read_text,
    remove_groups,
    set_cpuset,
    set_pids,
    wait_until,
)
from minidocker.cgroups.files import write_value as _write
from minidocker.cgroups.limits import (
    CgroupLimits,
    cfs,
    cpu_weight,
    io_weight,
    swap_only,
)

CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
KEY = "unified"  # the one entry in a v2 Cgroup's paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


# -- placing the group ------------------------------------------------------------------------

def enable_controllers(cgroup_dir: str, wanted: tuple[str, ...] = CONTROLLERS) -> None:
    """Hand ``wanted`` controllers down to the children of ``cgroup_dir`` (those it has)."""
    available = read_text(os.path.join(cgroup_dir, "cgroup.controllers")).split()
    enabled = read_text(os.path.join(cgroup_dir, "cgroup.subtree_control")).split()
    missing = [c for c in wanted if c in available and c not in enabled]
    if missing:
        _write(cgroup_dir, "cgroup.subtree_control", " ".join("+" + c for c in missing))


def create(root: str, parent: str, cid: str) -> dict[str, str]:
    """``mkdir <root>/<parent>/<cid>``, controllers enabled on the way."""
    group = os.path.join(root, parent, cid)
    for _ in range(5):  # a parent removed by hand under us: make it again
        try:
            enable_controllers(root)
            make_parents(root, parent, enable_controllers)
            syscalls.mkdir(group)
            return {KEY: group}
        except FileNotFoundError:
            continue
    raise FileNotFoundError(errno.ENOENT, "parent cgroup keeps vanishing", group)


# -- limits, one function per controller ----------------------------------------------------

def set_memory(cgroup_dir: str, limits: CgroupLimits) -> None:
    if limits.memory:
        _write(cgroup_dir, "memory.max", limits.memory)
        if limits.memory_swap and os.path.exists(os.path.join(cgroup_dir, "memory.swap.max")):
            swap = swap_only(limits.memory, limits.memory_swap)
            trace.note(f"v1's memsw is memory + swap; v2's memory.swap.max is swap alone: "
                       f"{limits.memory_swap} - {limits.memory} = {swap}"
                       if swap >= 0 else "--memory-swap -1: memory.swap.max = max")
            _write(cgroup_dir, "memory.swap.max", "max" if swap < 0 else swap)
    if limits.memory_reservation:
        trace.note("--memory-reservation: v1's memory.soft_limit_in_bytes is v2's memory.low")
        _write(cgroup_dir, "memory.low", limits.memory_reservation)


def set_cpu(cgroup_dir: str, limits: CgroupLimits) -> None:
    if limits.cpu_shares:
        weight = cpu_weight(limits.cpu_shares)
        trace.note(f"cpu.shares {limits.cpu_shares} -> cpu.weight "
                   f"1 + ({limits.cpu_shares} - 2) * 9999 / 262142 = {weight}")
        _write(cgroup_dir, "cpu.weight", weight)
    period, quota = cfs(limits)
    if period or quota:
        # One file for both: what the plan leaves unset keeps its current value.
        current_max, current_period = read_text(os.path.join(cgroup_dir, "cpu.max")).split()
        period = period or int(current_period)
        shown = current_max if quota == 0 else "max" if quota < 0 else str(quota)
        trace.note(f"cpu.cfs_quota_us and cpu.cfs_period_us -> cpu.max \"{shown} {period}\"")
        _write(cgroup_dir, "cpu.max", f"{shown} {period}")


def set_io(cgroup_dir: str, limits: CgroupLimits) -> None:
    if not limits.blkio_weight:
        return
    # A host with neither file had the weight dropped by discard_unsupported; if the kernel
    # changed since (BFQ unloaded), the write fails with ENOENT naming the file.
    if os.path.exists(os.path.join(cgroup_dir, "io.bfq.weight")):
        trace.note("blkio.weight -> io.bfq.weight: the BFQ scheduler keeps v1's 1..1000 scale")
        _write(cgroup_dir, "io.bfq.weight", limits.blkio_weight)
        return
    weight = io_weight(limits.blkio_weight)
    trace.note(f"blkio.weight {limits.blkio_weight} -> io.weight "
               f"1 + ({limits.blkio_weight} - 10) * 9999 / 990 = {weight}")
    _write(cgroup_dir, "io.weight", weight)


# BFQ's file first (v1's scale, as runc prefers it), then blk-iocost's. Both exist only when
# the parent hands the io controller down, and io.bfq.weight only when BFQ is loaded.
WEIGHT_FILES = ("io.bfq.weight", "io.weight")


def weight_file(cgroup_dir: str) -> str | None:
    """The file ``--blkio-weight`` goes to in this group, or None if the kernel has none."""
    return first_present(cgroup_dir, WEIGHT_FILES)


def weight_group(paths: dict[str, str]) -> str | None:
    return paths[KEY]


def weight_parent(root: str, parent: str) -> str | None:
    """The containers' ``parent`` group, made if missing with the controllers handed down as a
    start would: its children get the files it has."""
    enable_controllers(root)
    make_parents(root, parent, enable_controllers)
    return os.path.join(root, parent)


SETTERS: tuple[Callable[[str, CgroupLimits], None], ...] = (
    set_memory, set_cpu, set_cpuset, set_pids, set_io)


def set_limits(paths: dict[str, str], limits: CgroupLimits) -> None:
    """Write what ``limits`` sets, controller by controller, all in the one directory."""
    for setter in SETTERS:
        setter(paths[KEY], limits)


# -- membership, freezing, killing, removal ------------------------------------------------

def move(paths: dict[str, str], pid: int) -> None:
    """Move process ``pid`` (all its threads) into the group."""
    _write(paths[KEY], "cgroup.procs", pid)


def join(paths: dict[str, str]) -> None:
    """Move the calling process into the group ("0" means "the writer")."""
    move(paths, 0)


def pids(paths: dict[str, str]) -> list[int]:
    return read_pids(os.path.join(paths[KEY], "cgroup.procs"))


def freeze(paths: dict[str, str], timeout: float = 10) -> None:
    _write(paths[KEY], "cgroup.freeze", 1)
    wait_until(lambda: frozen(paths), timeout, f"{paths[KEY]} to freeze")


def thaw(paths: dict[str, str]) -> None:
    _write(paths[KEY], "cgroup.freeze", 0)


def frozen(paths: dict[str, str]) -> bool:
    return read_keyed(os.path.join(paths[KEY], "cgroup.events")).get("frozen") == 1


def kill_all(paths: dict[str, str]) -> None:
    """``cgroup.kill`` where the kernel has it (5.14+); else freeze, SIGKILL each, thaw."""
    group = paths[KEY]
    if os.path.exists(os.path.join(group, "cgroup.kill")):
        _write(group, "cgroup.kill", 1)
        return
    _write(group, "cgroup.freeze", 1)
    try:
        for pid in pids(paths):
            try:  # noqa: SIM105 -- contextlib costs start-up time
                syscalls.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        thaw(paths)


def destroy(paths: dict[str, str], timeout: float = 10) -> None:
    """Remove the group's directory (:func:`remove_groups`)."""
    remove_groups(paths, kill_all, pids, timeout)


# -- accounting -----------------------------------------------------------------------------

def oom_kills(paths: dict[str, str]) -> int:
    """How many processes the OOM killer killed in the group (``oom_kill`` in memory.events)."""
    try:
        return read_keyed(os.path.join(paths[KEY], "memory.events")).get("oom_kill", 0)
    except FileNotFoundError:  # the memory controller is not enabled here
        return 0


def stats(paths: dict[str, str]) -> dict[str, int | None]:
    group = paths[KEY]

    def has(name: str) -> bool:
        return os.path.exists(os.path.join(group, name))

    out: dict[str, int | None] = {}
    out["cpu_usage_ns"] = read_keyed(os.path.join(group, "cpu.stat"))["usage_usec"] * 1000
    if has("memory.current"):
        out["memory_usage"] = read_int(os.path.join(group, "memory.current"))
        out["memory_limit"] = read_int(os.path.join(group, "memory.max"))
        if has("memory.peak"):
            out["memory_max_usage"] = read_int(os.path.join(group, "memory.peak"))
        out["memory_inactive_file"] = read_keyed(os.path.join(group, "memory.stat")).get(
            "inactive_file", 0)
        out["oom_kills"] = oom_kills(paths)
    if has("pids.current"):
        out["pids_current"] = read_int(os.path.join(group, "pids.current"))
        out["pids_limit"] = read_int(os.path.join(group, "pids.max"))
    if has("io.stat"):
        read = write = 0
        for line in read_text(os.path.join(group, "io.stat")).splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    write += int(value)
        out["io_read_bytes"], out["io_write_bytes"] = read, write
    return out
