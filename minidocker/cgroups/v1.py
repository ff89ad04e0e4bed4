"""cgroup v1: one hierarchy per controller, so one directory per controller per container.

On a v1 (or "hybrid") host each controller is its own filesystem, mounted at
``/sys/fs/cgroup/<controller>``, and a container's group is a directory in each:
``/sys/fs/cgroup/memory/minidocker/<id>``, ``/sys/fs/cgroup/pids/minidocker/<id>``... The
process joins each one by writing to its ``cgroup.procs``. Two controllers can share a
hierarchy (``cpu,cpuacct`` on many distributions): then they share a directory too.

One function per controller, each taking the container's directory in that hierarchy and the
plan (:class:`~minidocker.cgroups.CgroupLimits`), writing only what the plan sets:

=========== ===================================================== ================================
controller  files written                                         flag
=========== ===================================================== ================================
memory      memory.limit_in_bytes, memory.memsw.limit_in_bytes,   -m, --memory-swap,
            memory.soft_limit_in_bytes                            --memory-reservation
cpu         cpu.shares, cpu.cfs_period_us, cpu.cfs_quota_us        --cpu-shares, --cpus,
                                                                  --cpu-period, --cpu-quota
cpuset      cpuset.cpus, cpuset.mems                              --cpuset-cpus, --cpuset-mems
pids        pids.max                                              --pids-limit
blkio       blkio.weight, or blkio.bfq.weight with BFQ; neither:  --blkio-weight
            the weight is discarded, with Docker's warning
freezer     freezer.state (FROZEN / THAWED)                       pause, unpause
cpuacct     (read only: cpuacct.usage)                            stats
=========== ===================================================== ================================

Two v1 quirks a learner meets here. A new cpuset group starts with *no* CPUs and no memory
nodes, and a process cannot join it until both are set, so they are copied from the parent.
And ``memory.memsw.limit_in_bytes`` (memory + swap) may never be below
``memory.limit_in_bytes``, so when a limit grows, memsw is written first.

Man pages: cgroups(7); kernel Documentation/admin-guide/cgroup-v1/ (memory.rst, cpusets.rst,
freezer-subsystem.rst, pids.rst, blkio-controller.rst).
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
)

CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "freezer")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


# -- placing the group ------------------------------------------------------------------------

def hierarchies(root: str, controllers: tuple[str, ...] = CONTROLLERS) -> dict[str, str]:
    """Where each controller is mounted: ``{"memory": "/sys/fs/cgroup/memory", ...}``.

    Controllers this kernel doesn't have (or that aren't mounted) are left out.
    """
    import stat

    found = {}
    for controller in controllers:
        path = os.path.join(root, controller)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):  # cpu -> cpu,cpuacct when co-mounted (one lstat, not realpath's)
            path = os.path.join(root, os.readlink(path))
            mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            found[controller] = path
    return found


def create(root: str, parent: str, cid: str,
           controllers: tuple[str, ...] = CONTROLLERS) -> dict[str, str]:
    """``mkdir <hierarchy>/<parent>/<cid>`` in every hierarchy; returns {controller: path}.
    Undoes what it made if anything fails."""
    paths: dict[str, str] = {}
    made: list[str] = []
    try:
        for hierarchy, names in _by_hierarchy(hierarchies(root, controllers)).items():
            group = os.path.join(hierarchy, parent, cid)
            for _ in range(5):  # the parent: made on first use (or again, if removed by hand)
                try:
                    syscalls.mkdir(group)
                    break
                except FileNotFoundError:
                    make_parents(hierarchy, parent, _inherit_cpuset if "cpuset" in names else None)
            else:
                raise FileNotFoundError(errno.ENOENT, "parent cgroup keeps vanishing", group)
            made.append(group)
            if "cpuset" in names:
                _inherit_cpuset(group)
            for name in names:
                paths[name] = group
    except BaseException:
        destroy({group: group for group in made})
        raise
    return paths


def _by_hierarchy(found: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for controller, hierarchy in found.items():
        out.setdefault(hierarchy, []).append(controller)
    return out


def _inherit_cpuset(group: str) -> None:
    """A new v1 cpuset group has no CPUs and no memory nodes: nobody could join it. Copy them
    from the level above, filling that in first if another minidocker has just made it and
    not yet got that far."""
    above = os.path.dirname(group)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read_text(os.path.join(group, name)).strip():
            value = read_text(os.path.join(above, name)).strip()
            if not value:
                _inherit_cpuset(above)
                value = read_text(os.path.join(above, name)).strip()
            _write(group, name, value)


# -- limits, one function per controller ----------------------------------------------------

def set_memory(cgroup_dir: str, limits: CgroupLimits) -> None:
    if limits.memory:
        writes = [("memory.limit_in_bytes", limits.memory)]
        if limits.memory_swap and os.path.exists(
                os.path.join(cgroup_dir, "memory.memsw.limit_in_bytes")):
            memsw = ("memory.memsw.limit_in_bytes", limits.memory_swap)
            current = read_int(os.path.join(cgroup_dir, "memory.limit_in_bytes"))
            # memsw >= limit at every instant: a growing limit needs its memsw raised first.
            growing = current is not None and limits.memory > current
            writes = [memsw, *writes] if growing else [*writes, memsw]
            trace.note(f"memory.memsw.limit_in_bytes is memory + swap: {limits.memory_swap}")
        elif limits.memory_swap:
            trace.note("no memory.memsw.* files: this kernel does not account swap; "
                       "--memory-swap is ignored")
        for name, value in writes:
            _write(cgroup_dir, name, value)
    if limits.memory_reservation:
        _write(cgroup_dir, "memory.soft_limit_in_bytes", limits.memory_reservation)


def set_cpu(cgroup_dir: str, limits: CgroupLimits) -> None:
    if limits.cpu_shares:
        _write(cgroup_dir, "cpu.shares", limits.cpu_shares)
    period, quota = cfs(limits)
    if limits.nano_cpus:
        trace.note(f"--cpus {limits.nano_cpus / 1e9:g}: {quota}us of CPU time every "
                   f"{period}us")
    if period:
        _write(cgroup_dir, "cpu.cfs_period_us", period)
    if quota:
        _write(cgroup_dir, "cpu.cfs_quota_us", quota)


def set_blkio(cgroup_dir: str, limits: CgroupLimits) -> None:
    if not limits.blkio_weight:
        return
    # A host with neither file had the weight dropped by discard_unsupported; if the kernel
    # changed since (BFQ unloaded), the write fails with ENOENT naming the file.
    name = "blkio.weight"
    if not os.path.exists(os.path.join(cgroup_dir, name)):
        name = "blkio.bfq.weight"  # CFQ is gone from current kernels; BFQ has the same scale
        trace.note("no blkio.weight (the CFQ scheduler is gone): blkio.bfq.weight instead")
    _write(cgroup_dir, name, limits.blkio_weight)


# CFQ's file (CFQ left the kernel in 5.0), then BFQ's; both take 10..1000. Neither exists
# unless a disk can use that scheduler, and neither in the hierarchy's root group.
WEIGHT_FILES = ("blkio.weight", "blkio.bfq.weight")


def weight_file(cgroup_dir: str) -> str | None:
    """The file ``--blkio-weight`` goes to in this group, or None if the kernel has none."""
    return first_present(cgroup_dir, WEIGHT_FILES)


def weight_group(paths: dict[str, str]) -> str | None:
    """A container's group in the blkio hierarchy (None: blkio is not mounted)."""
    return paths.get("blkio")


def weight_parent(root: str, parent: str) -> str | None:
    """The containers' ``parent`` group in the blkio hierarchy, made if missing (a start
    would make it anyway): its children get the files it has. None: blkio is not mounted."""
    found = hierarchies(root, ("blkio", "cpuset"))
    if "blkio" not in found:
        return None
    shares_cpuset = found.get("cpuset") == found["blkio"]  # co-mounted: parents need cpus
    make_parents(found["blkio"], parent, _inherit_cpuset if shares_cpuset else None)
    return os.path.join(found["blkio"], parent)


SETTERS: dict[str, Callable[[str, CgroupLimits], None]] = {
    "memory": set_memory,
    "cpu": set_cpu,
    "cpuset": set_cpuset,
    "pids": set_pids,
    "blkio": set_blkio,
}


def set_limits(paths: dict[str, str], limits: CgroupLimits) -> None:
    """Write what ``limits`` sets, controller by controller."""
    for controller, cgroup_dir in paths.items():
        setter = SETTERS.get(controller)
        if setter is not None:
            setter(cgroup_dir, limits)


# -- membership, freezing, killing, removal ------------------------------------------------

def _unique(paths: dict[str, str]) -> list[str]:
    return list(dict.fromkeys(paths.values()))


def move(paths: dict[str, str], pid: int) -> None:
    """Move process ``pid`` (all its threads) into every hierarchy's group."""
    for cgroup_dir in _unique(paths):
        _write(cgroup_dir, "cgroup.procs", pid)


def join(paths: dict[str, str]) -> None:
    """Move the calling process into the group ("0" means "the writer").

    A child between fork and exec has one thread, so it writes to ``tasks`` (move this
    thread) rather than ``cgroup.procs`` (move the whole thread group): the same move, but the
    kernel then skips the global ``cgroup_threadgroup_rwsem``, whose writer waits for an RCU
    grace period (5-30 ms here), because a thread moving itself cannot race a fork or an exec
    of its own process (``cgroup_procs_write_start`` in kernel/cgroup/cgroup.c). 0.2 ms
    instead of a grace period, on every start.
    """
    if not single_threaded():  # more threads: move them all together
        move(paths, 0)
        return
    trace.note("one thread: 0 > tasks moves it without the threadgroup lock's grace period")
    for cgroup_dir in _unique(paths):
        _write(cgroup_dir, "tasks", 0)


def single_threaded() -> bool:
    return len(os.listdir("/proc/self/task")) == 1


def pids(paths: dict[str, str]) -> list[int]:
    """Every process in the group, in any hierarchy (host PIDs)."""
    found: dict[int, None] = {}
    for cgroup_dir in _unique(paths):
        found.update(dict.fromkeys(read_pids(os.path.join(cgroup_dir, "cgroup.procs"))))
    return list(found)


def freeze(paths: dict[str, str], timeout: float = 10) -> None:
    """``FROZEN``: the kernel stops every task in the group; it reads back FREEZING until all
    have stopped."""
    group = paths["freezer"]
    _write(group, "freezer.state", "FROZEN")
    wait_until(lambda: frozen(paths), timeout, f"{group} to freeze")


def thaw(paths: dict[str, str]) -> None:
    _write(paths["freezer"], "freezer.state", "THAWED")


def frozen(paths: dict[str, str]) -> bool:
    return read_text(os.path.join(paths["freezer"], "freezer.state")).strip() == "FROZEN"


def kill_all(paths: dict[str, str]) -> None:
    """SIGKILL every process in the group. Frozen first, so that none can fork a new one
    between our reading ``cgroup.procs`` and the kill; a frozen task dies when thawed."""
    has_freezer = "freezer" in paths and os.path.isdir(paths["freezer"])
    if has_freezer:
        _write(paths["freezer"], "freezer.state", "FROZEN")
    try:
        for pid in pids(paths):
            try:  # noqa: SIM105 -- contextlib costs start-up time
                syscalls.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        if has_freezer:
            thaw(paths)


def destroy(paths: dict[str, str], timeout: float = 10) -> None:
    """Remove the group's directory in every hierarchy (:func:`remove_groups`)."""
    remove_groups(paths, kill_all, pids, timeout)


# -- accounting -----------------------------------------------------------------------------

def oom_kills(paths: dict[str, str]) -> int:
    """How many processes the OOM killer killed in the group (``oom_kill`` in
    memory.oom_control, since Linux 4.13)."""
    if "memory" not in paths:
        return 0
    return read_keyed(os.path.join(paths["memory"], "memory.oom_control")).get("oom_kill", 0)


def stats(paths: dict[str, str]) -> dict[str, int | None]:
    """What the group has used, in the units ``minidocker stats`` needs (bytes, ns)."""
    out: dict[str, int | None] = {}
    if "cpuacct" in paths:
        out["cpu_usage_ns"] = read_int(os.path.join(paths["cpuacct"], "cpuacct.usage"))
    if "memory" in paths:
        mem = paths["memory"]
        out["memory_usage"] = read_int(os.path.join(mem, "memory.usage_in_bytes"))
        out["memory_limit"] = read_int(os.path.join(mem, "memory.limit_in_bytes"))
        out["memory_max_usage"] = read_int(os.path.join(mem, "memory.max_usage_in_bytes"))
        out["memory_inactive_file"] = read_keyed(os.path.join(mem, "memory.stat")).get(
            "total_inactive_file", 0)
        out["oom_kills"] = oom_kills(paths)
    if "pids" in paths:
        out["pids_current"] = read_int(os.path.join(paths["pids"], "pids.current"))
        out["pids_limit"] = read_int(os.path.join(paths["pids"], "pids.max"))
    if "blkio" in paths:
        out["io_read_bytes"], out["io_write_bytes"] = _io_bytes(paths["blkio"])
    return out


def _io_bytes(cgroup_dir: str) -> tuple[int, int]:
    """Read and Write totals of ``blkio.throttle.io_service_bytes_recursive`` (lines like
    ``8:0 Read 4096``), which counts every request, throttled or not."""
    read = write = 0
    try:
        text = read_text(os.path.join(cgroup_dir, "blkio.throttle.io_service_bytes_recursive"))
    except FileNotFoundError:
        return 0, 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == "Read":
            read += int(fields[2])
        elif len(fields) == 3 and fields[1] == "Write":
            write += int(fields[2])
    return read, write
