"""cgroupfs files: write one, read one, make and remove groups, wait for them to empty.

Both drivers (:mod:`minidocker.cgroups.v1`, :mod:`minidocker.cgroups.v2`) read and write their
controllers' files the same way: every write through the syscall layer, so ``--trace`` shows
each file a limit writes, and every read tolerant of a group removed under it. Every function
takes the cgroup directory as an argument, so the unit tests pass a temporary directory standing
in for cgroupfs.

Notebook: ``02_cgroups``. See cgroups(7).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from minidocker.cgroups.limits import CgroupLimits

UNLIMITED = 1 << 62  # v1 shows "no limit" as a huge page-aligned number; anything this big is one


def write_value(cgroup_dir: str, name: str, value: object) -> None:
    """Write one cgroup file, traced (``--trace`` shows every file a limit writes)."""
    from minidocker import syscalls

    syscalls.write_file(os.path.join(cgroup_dir, name), str(value))


def set_cpuset(cgroup_dir: str, limits: CgroupLimits) -> None:
    """cpuset.cpus and cpuset.mems: the same files, and meaning, in v1 and v2."""
    if limits.cpuset_cpus:
        write_value(cgroup_dir, "cpuset.cpus", limits.cpuset_cpus)
    if limits.cpuset_mems:
        write_value(cgroup_dir, "cpuset.mems", limits.cpuset_mems)


def set_pids(cgroup_dir: str, limits: CgroupLimits) -> None:
    """pids.max: the same file, and meaning, in v1 and v2."""
    if limits.pids_limit is not None:
        write_value(cgroup_dir, "pids.max",
                    "max" if limits.pids_limit <= 0 else limits.pids_limit)


def make_parents(top: str, parent: str, prepare: Callable[[str], None] | None = None) -> None:
    """``mkdir -p top/parent``, calling ``prepare`` on every level: also on one another
    minidocker made just now, whose maker may not have prepared it yet."""
    from minidocker import syscalls

    path = top
    for part in parent.split("/"):
        path = os.path.join(path, part)
        if not os.path.isdir(path):
            try:  # noqa: SIM105 -- contextlib costs start-up time
                syscalls.mkdir(path)
            except FileExistsError:  # another minidocker made it just now
                pass
        if prepare:
            prepare(path)


def remove_groups(paths: dict[str, str], kill_all: Callable[[dict[str, str]], None],
                  pids: Callable[[dict[str, str]], list[int]], timeout: float) -> None:
    """rmdir each of a group's directories; if processes are left in it (EBUSY), kill them
    (the driver's ``kill_all``), wait until ``pids`` finds none, and rmdir again. A directory
    already gone is fine, so this is idempotent."""
    import errno

    from minidocker import syscalls

    for cgroup_dir in dict.fromkeys(paths.values()):
        try:
            syscalls.rmdir(cgroup_dir)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            kill_all(paths)
            wait_until(lambda: not pids(paths), timeout, "the container's processes to exit")
            syscalls.rmdir(cgroup_dir)


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_int(path: str) -> int | None:
    """A one-number file; ``max`` (v2's "no limit") and v1's huge "no limit" read as None."""
    text = read_text(path).strip()
    if text == "max":
        return None
    value = int(text)
    return None if value >= UNLIMITED else value


def read_keyed(path: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events, memory.oom_control)."""
    out = {}
    for line in read_text(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def read_pids(path: str) -> list[int]:
    """A ``cgroup.procs`` file; a group already removed (or being removed) holds nobody."""
    try:
        return [int(line) for line in read_text(path).split()]
    except OSError as exc:
        if gone(exc):
            return []
        raise


def gone(exc: OSError) -> bool:
    """Is this the error of a group that no longer exists? ENOENT once it is removed; ENODEV
    from a file opened just before another process removed it."""
    import errno

    return exc.errno in (errno.ENOENT, errno.ENODEV)


def wait_until(done: Any, timeout: float, what: str) -> None:
    """Poll ``done()`` (1 ms, doubling to 50 ms) until it is true; raise after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    pause = 0.001
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def first_present(cgroup_dir: str, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` this group has: which file a setting goes to depends on what
    the kernel offers (the I/O weight on the scheduler, say), not on the cgroup version alone."""
    for name in names:
        if os.path.exists(os.path.join(cgroup_dir, name)):
            return name
    return None
