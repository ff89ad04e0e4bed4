"""Control groups: what a container may *use*, where namespaces decide what it may *see*.

A cgroup is a directory in a special filesystem (``/sys/fs/cgroup``). Writing a process ID into
its ``cgroup.procs`` file moves the process (and every child it forks later) into the group;
writing other files in the directory sets rules for the whole group, and reading them tells
what the group has used. The article that seeds these lessons lists five jobs, and each is a
file or two:

============== ===================================== ==========================================
job            cgroup v1 (this module's ``v1``)       cgroup v2 (``v2``)
============== ===================================== ==========================================
limit          ``memory.limit_in_bytes``, ``pids.max`` ``memory.max``, ``pids.max``,
               ``cpu.cfs_quota_us``                  ``cpu.max``
prioritise     ``cpu.shares``, ``blkio.weight``      ``cpu.weight``, ``io.weight``
account        ``cpuacct.usage``, ``memory.usage_*``  ``cpu.stat``, ``memory.current``
isolate        ``cpuset.cpus``, ``cpuset.mems``       the same names
control        ``freezer.state``                     ``cgroup.freeze``, ``cgroup.kill``
============== ===================================== ==========================================

**v1 and v2.** The article describes cgroup v1: one tree per controller (``/sys/fs/cgroup/
memory/...``, ``/sys/fs/cgroup/cpu/...``), so a container has one directory in each. Linux
replaced it with v2, one tree for everything (``/sys/fs/cgroup/<path>``), where a parent turns
controllers on for its children in ``cgroup.subtree_control``. Current distributions (the
learners' VM) are v2 only; the machines minidocker is developed on are v1 "hybrid". Both
drivers are here, chosen at run time by :func:`version`, and the same plan
(:class:`CgroupLimits`, Docker's names and units) drives both. Where v2 changed a unit the
conversion is spelled out in the trace (``run --trace``):

- ``cpu.shares`` (2..262144, default 1024) becomes ``cpu.weight`` (1..10000, default 100):
  ``1 + (shares - 2) * 9999 / 262142``;
- v1's ``memory.memsw.limit_in_bytes`` is memory *plus* swap; v2's ``memory.swap.max`` is swap
  alone, so it gets ``--memory-swap`` minus ``--memory``;
- ``blkio.weight`` (10..1000) becomes ``io.weight`` (1..10000): ``1 + (w - 10) * 9999 / 990``.

**What the kernel may not offer.** An I/O weight needs an I/O scheduler that honours one (BFQ;
CFQ before Linux 5.0) or, on v2, blk-iocost; a host whose disks run ``none`` or
``mq-deadline`` has no weight file at all. Then ``--blkio-weight`` is dropped with Docker's
own warning and the container runs (:func:`discard_unsupported`); ``minidocker doctor`` says
why.

**The order of a start.** Every container gets a cgroup, as in Docker. The parent
(``minidocker run``) makes it and writes its limits *before* fork(2), so they hold from the
child's first instruction; the child is in the group before it does anything (below), and
only then unshares its cgroup namespace, after which ``/proc/self/cgroup`` shows ``/``: the
container sees its own group as the root. When the container exits, whatever is left in the
group is killed, the group is waited until empty, then removed (``rmdir``). See
:mod:`minidocker.container`.

**Getting the child in without waiting.** The obvious way, writing its PID to
``cgroup.procs``, moves a whole thread group, so the kernel takes the writer side of its global
``cgroup_threadgroup_rwsem`` (no process anywhere may fork, exit or exec meanwhile), and taking
that waits for an RCU grace period: 4-30 ms on these hosts, more than the whole start of a
container, on every start. runc pays it (it is in runc's figure in ``benchmarks/README.md``).
minidocker does not:

- **v2:** the child is *born* in its group. ``clone3(2)`` with ``CLONE_INTO_CGROUP`` and an fd
  of the group's directory (Linux 5.7) forks straight into it: nothing moves, nothing waits
  (:meth:`Cgroup.fork_into`).
- **v1** has no such flag, but it has a ``tasks`` file that moves a single *thread*. The child
  between fork and exec has exactly one thread, so writing ``0`` ("me") to ``tasks`` in each
  hierarchy moves all of it, and a thread moving itself cannot race a fork or exec of its own
  process, so the kernel skips the global lock (``cgroup_procs_write_start`` in
  kernel/cgroup/cgroup.c): 0.2 ms for the seven hierarchies (:func:`v1.join`).

``run --trace`` shows which one happened. Measured in ``benchmarks/README.md`` (issue 4's
budget: setup plus teardown at most 2 ms).

**Layout.** ``/sys/fs/cgroup/<controller>/minidocker/<id>`` on v1 (one per controller),
``/sys/fs/cgroup/minidocker/<id>`` on v2. ``--cgroup-parent`` replaces ``minidocker``. The
parent is created when first needed and then left in place, empty or not, as Docker leaves its
``docker`` group (making and removing it around every container would cost each start more
than its own group does). To keep the start path short, this package imports
only ``os`` and its own :mod:`~minidocker.cgroups.limits` (the plan) and
:mod:`~minidocker.cgroups.files` (cgroupfs reads and writes), which the drivers import too; the
driver for the other cgroup version is never imported.

Notebook: ``02_cgroups``. Man pages: cgroups(7), cgroup_namespaces(7); the kernel's
Documentation/admin-guide/cgroup-v1/ and cgroup-v2.rst.
"""

from __future__ import annotations

import os

# The plan and the file helpers live in their own modules, which the v1 and v2 drivers import
# (not this package, which imports the drivers). Their names stay importable from here, as
# notebook 02, the config and the command line use them.
from minidocker.cgroups.files import (
    UNLIMITED,
    gone,
    make_parents,
    read_int,
    read_keyed,
    read_pids,
    read_text,
    remove_groups,
    set_cpuset,
    set_pids,
    wait_until,
    write_value,
)
from minidocker.cgroups.limits import (
    CFS_PERIOD_US,
    FIELDS,
    MIN_MEMORY,
    CgroupLimits,
    cfs,
    check_parent,
    cpu_weight,
    format_cpuset,
    from_flags,
    io_weight,
    parse_bytes,
    parse_cpus,
    parse_cpuset,
    parse_flags,
    swap_only,
    validate,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "minidocker"

__all__ = [
    "CFS_PERIOD_US",
    "Cgroup",
    "CgroupLimits",
    "DEFAULT_PARENT",
    "FIELDS",
    "MIN_MEMORY",
    "ROOT",
    "UNLIMITED",
    "WEIGHT_DISCARDED",
    "cfs",
    "check_parent",
    "cpu_weight",
    "create",
    "discard_unsupported",
    "find",
    "format_cpuset",
    "from_flags",
    "gone",
    "io_weight",
    "make_parents",
    "parse_bytes",
    "parse_cpus",
    "parse_cpuset",
    "parse_flags",
    "read_int",
    "read_keyed",
    "read_pids",
    "read_text",
    "remove_groups",
    "set_cpuset",
    "set_pids",
    "swap_only",
    "validate",
    "version",
    "wait_until",
    "write_value",
]

def version(root: str = ROOT) -> int:
    """2 if ``root`` is a cgroup2 ("unified") mount, else 1 (legacy, or hybrid like here)."""
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1


# Docker's own words (daemon/daemon_unix.go), so scripts that look for them find them.
WEIGHT_DISCARDED = ("Your kernel does not support Block I/O weight or the cgroup is not "
                    "mounted. Weight discarded.")


def discard_unsupported(limits: CgroupLimits, parent: str = "", root: str = ROOT,
                        cgroup: Cgroup | None = None) -> list[str]:
    """Drop what this kernel cannot honour from ``limits``, as Docker does; return Docker's
    warnings for it (the caller prints them as ``WARNING: ...``).

    Only ``--blkio-weight`` can be missing on a kernel that has the controller: its file comes
    from the I/O scheduler or policy, not from the controller itself. v1 has ``blkio.weight``
    only with CFQ (removed in Linux 5.0) and ``blkio.bfq.weight`` only with BFQ; v2 has
    ``io.bfq.weight`` with BFQ and ``io.weight`` with blk-iocost, and neither without the io
    controller. Disks on ``none`` or ``mq-deadline`` (many VMs, NVMe) offer neither. The
    kernel's answer is whether the file exists in a group below the root (the root has none
    of them), so this looks in the container's ``cgroup`` (``update``) or else in its
    ``parent``, making that as a start would. A plan without a weight costs nothing here.
    """
    if not limits.blkio_weight:
        return []
    if cgroup is not None:
        driver = cgroup.driver()
        group = driver.weight_group(cgroup.paths)
    else:
        driver = Cgroup(version(root), {}).driver()
        group = driver.weight_parent(root, _under(parent))
    if group is not None and driver.weight_file(group) is not None:
        return []
    from minidocker import trace

    where = f"in {group}" if group else "mounted"
    trace.note(f"no {' or '.join(driver.WEIGHT_FILES)} {where}: --blkio-weight "
               f"{limits.blkio_weight} is discarded (`minidocker doctor` says why)")
    limits.blkio_weight = 0
    return [WEIGHT_DISCARDED]


# -- one container's cgroup -----------------------------------------------------------------

class Cgroup:
    """A container's cgroup on this host: the driver's version and its directories.

    v1: one directory per controller (``{"memory": "/sys/fs/cgroup/memory/minidocker/<id>",
    ...}``); v2: one (``{"unified": "/sys/fs/cgroup/minidocker/<id>"}``).
    """

    __slots__ = ("version", "paths")

    def __init__(self, version: int, paths: dict[str, str]) -> None:
        self.version = version
        self.paths = paths

    def driver(self) -> Any:
        if self.version == 2:
            from minidocker.cgroups import v2

            return v2
        from minidocker.cgroups import v1

        return v1

    def as_dict(self) -> dict[str, Any]:
        """What the container's state.json records, so other commands can find the group."""
        return {"Version": self.version, "Paths": dict(self.paths)}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Cgroup:
        return cls(int(record["Version"]), dict(record["Paths"]))

    def __repr__(self) -> str:
        return f"Cgroup(v{self.version}, {self.paths})"

    # The tiny interface: each call goes to the driver, which takes directories.
    def set_limits(self, limits: CgroupLimits) -> None:
        self.driver().set_limits(self.paths, limits)

    def join(self) -> None:
        """Move the calling process into the group (the child's first step)."""
        self.driver().join(self.paths)

    def freeze(self) -> None:
        self.driver().freeze(self.paths)

    def fork_into(self, flags: int = 0) -> tuple[int, bool]:
        """fork(2) (``flags``: namespaces for clone(2)) with the child born in this group where
        the kernel can do that: v2's ``clone3(CLONE_INTO_CGROUP)`` (Linux 5.7). Returns (pid,
        born inside); when it was not (v1, an older kernel), the child must :meth:`join`."""
        import errno

        from minidocker import syscalls, trace

        if self.version == 2:
            fd = os.open(self.paths["unified"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                return syscalls.clone(flags, fd), True
            except OSError as exc:
                if exc.errno not in (errno.ENOSYS, errno.E2BIG):
                    raise
                trace.note("no clone3(CLONE_INTO_CGROUP) here: the child moves itself in")
            finally:
                os.close(fd)
        return (syscalls.clone(flags) if flags else os.fork()), False

    def thaw(self) -> None:
        self.driver().thaw(self.paths)

    def frozen(self) -> bool:
        return bool(self.driver().frozen(self.paths))

    def pids(self) -> list[int]:
        return list(self.driver().pids(self.paths))

    def stats(self) -> dict[str, int | None]:
        return dict(self.driver().stats(self.paths))

    def oom_killed(self) -> bool:
        """Did the OOM killer kill anything in it? False for a group already removed: ``rm -f``
        and the supervisor, reading this when the container exits, may race."""
        try:
            return bool(self.driver().oom_kills(self.paths))
        except OSError as exc:
            if gone(exc):
                return False
            raise

    def destroy(self) -> None:
        """Kill what is left, wait until empty, remove. Idempotent, and safe to race: ``rm -f``
        and the supervisor may tear the same container down at once, and a file of a group
        the other one has just removed answers ENODEV (or is gone: ENOENT)."""
        for attempt in range(4):
            try:
                self.driver().destroy(self.paths)
                return
            except OSError as exc:
                if not gone(exc) or attempt == 3:
                    raise


def _under(parent: str) -> str:
    """Where groups go in each hierarchy: ``--cgroup-parent`` (checked), minidocker's own
    parent, or with "/" the hierarchy's root itself (an OCI bundle's ``cgroupsPath`` of one
    component, such as ``/cgrouptest``; not a flag's value: ``check_parent`` refuses it)."""
    if parent == "/":
        return ""
    return check_parent(parent) if parent else DEFAULT_PARENT


def _placement(cid: str, parent: str, root: str) -> tuple[int, dict[str, str]]:
    """Where the container's group is (or would be): (version, paths), without touching it."""
    v = version(root)
    parent = _under(parent)
    if v == 2:
        return 2, {"unified": os.path.join(root, parent, cid)}
    from minidocker.cgroups import v1

    return 1, {c: os.path.join(h, parent, cid) for c, h in v1.hierarchies(root).items()}


def find(cid: str, parent: str = "", root: str = ROOT) -> Cgroup | None:
    """The container's cgroup if it exists.

    Every ``run`` asks when its container exits, so a miss costs only a few stat(2) calls.
    """
    under = _under(parent)
    probes = [os.path.join(root, under, cid)] + [os.path.join(root, c, under, cid)
                                                 for c in ("pids", "memory", "freezer")]
    if not any(os.path.isdir(p) for p in probes):
        return None
    v, paths = _placement(cid, parent, root)
    if v == 1:  # a devices group is made only for device rules (minidocker.security)
        paths["devices"] = os.path.join(root, "devices", under, cid)
    paths = {c: p for c, p in paths.items() if os.path.isdir(p)}
    if not paths:
        return None
    return Cgroup(v, paths)


def create(cid: str, limits: CgroupLimits, parent: str = "", root: str = ROOT,
           cgroup_version: int | None = None) -> Cgroup:
    """Make the container's cgroup under ``root/[controller/]parent/cid``, write its limits.

    On failure, everything made so far is removed again before the error propagates.
    """
    v = cgroup_version or version(root)
    named = _under(parent)
    cgroup = Cgroup(v, {})
    driver = cgroup.driver()
    try:
        try:
            cgroup.paths = driver.create(root, named, cid)
        except FileExistsError:
            # Left by an earlier start of this same container that nobody cleaned up after
            # (its `run` was killed, its supervisor crashed): clear it out, then start afresh.
            stale = find(cid, parent, root)
            if stale is None:
                raise
            from minidocker import trace

            trace.note(f"a group of an earlier start of this container was left: removing {stale}")
            stale.destroy()
            cgroup.paths = driver.create(root, named, cid)
        driver.set_limits(cgroup.paths, limits)
    except BaseException:
        driver.destroy(cgroup.paths)
        raise
    return cgroup
