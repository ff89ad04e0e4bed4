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
only ``os``; the driver for the other cgroup version is never imported.

Notebook: ``02_cgroups``. Man pages: cgroups(7), cgroup_namespaces(7); the kernel's
Documentation/admin-guide/cgroup-v1/ and cgroup-v2.rst.
"""

from __future__ import annotations

import os

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

ROOT = "/sys/fs/cgroup"
DEFAULT_PARENT = "minidocker"
MIN_MEMORY = 6 * 1024 * 1024  # Docker's linuxMinMemory: below this a container can't start
CFS_PERIOD_US = 100_000  # the period --cpus uses, as Docker does
UNLIMITED = 1 << 62  # v1 shows "no limit" as a huge page-aligned number; anything this big is one

# CgroupLimits' fields, Docker's HostConfig names for them (``inspect``, config.json), and the
# value that means "not set".
FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("memory", "Memory", 0),
    ("memory_swap", "MemorySwap", 0),
    ("memory_reservation", "MemoryReservation", 0),
    ("nano_cpus", "NanoCpus", 0),
    ("cpu_shares", "CpuShares", 0),
    ("cpu_period", "CpuPeriod", 0),
    ("cpu_quota", "CpuQuota", 0),
    ("cpuset_cpus", "CpusetCpus", ""),
    ("cpuset_mems", "CpusetMems", ""),
    ("pids_limit", "PidsLimit", None),
    ("blkio_weight", "BlkioWeight", 0),
)


def version(root: str = ROOT) -> int:
    """2 if ``root`` is a cgroup2 ("unified") mount, else 1 (legacy, or hybrid like here)."""
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1


# -- the plan -------------------------------------------------------------------------------

class CgroupLimits:
    """The resource settings of one container, in Docker's units: bytes, nano-CPUs,
    microseconds, cpuset lists. ``0``/``""``/``None`` means "not set": leave the kernel's
    default. Printable and comparable, so a plan can be checked without root."""

    __slots__ = tuple(name for name, _, _ in FIELDS)
    memory: int
    memory_swap: int  # memory + swap; -1: unlimited swap
    memory_reservation: int
    nano_cpus: int
    cpu_shares: int
    cpu_period: int
    cpu_quota: int  # -1: unlimited
    cpuset_cpus: str
    cpuset_mems: str
    pids_limit: int | None  # 0 or -1: unlimited
    blkio_weight: int

    def __init__(self, **values: Any) -> None:
        for name, _, unset in FIELDS:
            setattr(self, name, values.pop(name, unset))
        if values:
            raise TypeError(f"unknown limits: {sorted(values)}")

    def changed(self) -> list[str]:
        """The names of the fields that are set."""
        return [name for name, _, unset in FIELDS if getattr(self, name) != unset]

    def as_dict(self) -> dict[str, Any]:
        """Docker's HostConfig names: ``{"Memory": 67108864, "CpuShares": 0, ...}``."""
        return {key: getattr(self, name) for name, key, _ in FIELDS}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any] | None) -> CgroupLimits:
        record = record or {}
        return cls(**{name: record.get(key, unset) for name, key, unset in FIELDS})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CgroupLimits) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.changed())
        return f"CgroupLimits({shown})"


# -- parsing run's and update's flags ---------------------------------------------------------

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _bad(flag: str, value: str, why: str) -> UsageError:
    return UsageError(f'invalid argument "{value}" for "{flag}" flag: {why}')


def parse_bytes(value: str, flag: str = "--memory") -> int:
    """Docker's RAMInBytes: ``64m``, ``64MB``, ``64MiB``, ``1.5g``, ``1048576``: binary units."""
    text = value.strip().lower()
    for suffix in ("ib", "b"):
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    unit = text[-1:] if text[-1:] in _UNITS and text[-1:] else ""
    number = text[: len(text) - len(unit)].strip()
    if not number or not all(c.isdigit() or c == "." for c in number) or number.count(".") > 1 \
            or number.startswith(".") or number.endswith("."):
        raise _bad(flag, value, f"invalid size: '{value}'")
    return int(float(number) * _UNITS[unit])


def _memory_flag(value: str | None, flag: str, allow_unlimited: bool = False) -> int:
    if value is None or value == "":
        return 0
    if allow_unlimited and value.strip() == "-1":
        return -1
    return parse_bytes(value, flag)


def _int_flag(value: str | None, flag: str, minus_one: bool = False) -> int:
    if value is None or value == "":
        return 0
    try:
        number = int(value, 10)
    except ValueError:
        raise _bad(flag, value, "not an integer") from None
    if number < 0 and not (minus_one and number == -1):
        raise _bad(flag, value, "must not be negative" + (" (or -1)" if minus_one else ""))
    return number


def parse_cpus(value: str | None) -> int:
    """``--cpus 1.5`` -> 1_500_000_000 nano-CPUs (Docker's NanoCPUs)."""
    if value is None or value == "":
        return 0
    try:
        cpus = float(value)
    except ValueError:
        raise _bad("--cpus", value, "not a number") from None
    if cpus < 0 or cpus != cpus or cpus == float("inf"):
        raise _bad("--cpus", value, "must be a positive number")
    return round(cpus * 1e9)


def parse_cpuset(value: str, what: str = "cpus") -> list[int]:
    """``"0-2,4"`` -> ``[0, 1, 2, 4]`` (the kernel's list format, cpuset(7))."""
    members: set[int] = set()
    try:
        for part in value.split(","):
            low, dash, high = part.partition("-")
            if not low.isdigit() or (dash and not high.isdigit()):
                raise ValueError(part)
            first, last = int(low), int(high) if dash else int(low)
            if last < first:
                raise ValueError(part)
            members.update(range(first, last + 1))
    except ValueError:
        raise UsageError(f"invalid value {value} for cpuset {what}") from None
    return sorted(members)


def _online(path: str) -> list[int]:
    try:
        with open(path) as f:
            return parse_cpuset(f.read().strip())
    except (OSError, UsageError):
        return [0]


def _check_cpuset(value: str, what: str, available: list[int]) -> str:
    if not value:
        return ""
    wanted = parse_cpuset(value, what)
    missing = [n for n in wanted if n not in available]
    if missing:
        noun = "CPUs" if what == "cpus" else "memory nodes"
        raise UsageError(f"requested {noun} are not available - requested {value}, available: "
                         + format_cpuset(available))
    return value


def format_cpuset(members: list[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``"0-2,4"``."""
    runs: list[list[int]] = []
    for n in sorted(members):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def from_flags(args: Any, host_cpus: int | None = None) -> CgroupLimits:
    """The plan from ``run``'s flags, validated as Docker validates them.

    ``args`` has the flags as attributes (``memory``, ``cpu_shares``... as strings, or None).
    Bad input raises :class:`UsageError` (exit 125) before anything is created.
    """
    return validate(parse_flags(args), host_cpus)


def parse_flags(args: Any) -> CgroupLimits:
    """The flags' values in Docker's units, checked one by one (not against each other)."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    pids = get("pids_limit")
    return CgroupLimits(
        memory=_memory_flag(get("memory"), "--memory"),
        memory_swap=_memory_flag(get("memory_swap"), "--memory-swap", allow_unlimited=True),
        memory_reservation=_memory_flag(get("memory_reservation"), "--memory-reservation"),
        nano_cpus=parse_cpus(get("cpus")),
        cpu_shares=_int_flag(get("cpu_shares"), "--cpu-shares"),
        cpu_period=_int_flag(get("cpu_period"), "--cpu-period"),
        cpu_quota=_int_flag(get("cpu_quota"), "--cpu-quota", minus_one=True),
        cpuset_cpus=get("cpuset_cpus") or "",
        cpuset_mems=get("cpuset_mems") or "",
        pids_limit=None if pids in (None, "") else _pids(pids),
        blkio_weight=_int_flag(get("blkio_weight"), "--blkio-weight"),
    )


def _pids(value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise _bad("--pids-limit", value, "not an integer") from None


def validate(limits: CgroupLimits, host_cpus: int | None = None,
             defaults: bool = True) -> CgroupLimits:
    """Docker's checks and (with ``defaults``) its defaults; returns ``limits``, completed."""
    lim = limits
    if 0 < lim.memory < MIN_MEMORY:
        raise UsageError("minimum memory limit allowed is 6MB")
    if lim.memory_swap and not lim.memory:
        raise UsageError("you should always set the memory limit when using the memoryswap "
                         "limit, see usage")
    if lim.memory_swap > 0 and lim.memory_swap < lim.memory:
        raise UsageError("minimum memoryswap limit should be larger than memory limit, see "
                         "usage")
    if 0 < lim.memory_reservation < MIN_MEMORY:
        raise UsageError("minimum memory reservation allowed is 6MB")
    if lim.memory and lim.memory_reservation > lim.memory:
        raise UsageError("minimum memory limit can not be less than memory reservation limit, "
                         "see usage")
    if defaults and lim.memory and not lim.memory_swap:
        lim.memory_swap = 2 * lim.memory  # Docker's default: as much swap as memory
    if lim.nano_cpus:
        if lim.cpu_period:
            raise UsageError("conflicting options: Nano CPUs and CPU Period cannot both be set")
        if lim.cpu_quota:
            raise UsageError("conflicting options: Nano CPUs and CPU Quota cannot both be set")
        cpus = host_cpus or len(os.sched_getaffinity(0))
        if lim.nano_cpus < 10_000_000 or lim.nano_cpus > cpus * 1_000_000_000:
            raise UsageError(f"range of CPUs is from 0.01 to {cpus}.00, as there are only "
                             f"{cpus} CPUs available")
    if lim.cpu_period and not 1000 <= lim.cpu_period <= 1_000_000:
        raise UsageError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                         "(i.e. 1000000)")
    if 0 < lim.cpu_quota < 1000:
        raise UsageError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if lim.blkio_weight and not 10 <= lim.blkio_weight <= 1000:
        raise UsageError("range of blkio weight is from 10 to 1000")
    if lim.cpuset_cpus:
        _check_cpuset(lim.cpuset_cpus, "cpus", _online("/sys/devices/system/cpu/online"))
    if lim.cpuset_mems:
        _check_cpuset(lim.cpuset_mems, "mems", _online("/sys/devices/system/node/online"))
    return lim


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
        group = driver.weight_parent(root, check_parent(parent) if parent else DEFAULT_PARENT)
    if group is not None and driver.weight_file(group) is not None:
        return []
    from minidocker import trace

    where = f"in {group}" if group else "mounted"
    trace.note(f"no {' or '.join(driver.WEIGHT_FILES)} {where}: --blkio-weight "
               f"{limits.blkio_weight} is discarded (`minidocker doctor` says why)")
    limits.blkio_weight = 0
    return [WEIGHT_DISCARDED]


def check_parent(parent: str) -> str:
    """``--cgroup-parent``: a path under each hierarchy's root, with or without a leading '/'."""
    parts = parent.strip("/").split("/")
    if not parent.strip("/") or any(p in ("", ".", "..") for p in parts) or "\0" in parent:
        raise UsageError(f"invalid cgroup parent {parent!r}: want a path like /minidocker "
                         "or /tests/web")
    return "/".join(parts)


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


def _placement(cid: str, parent: str, root: str) -> tuple[int, dict[str, str]]:
    """Where the container's group is (or would be): (version, paths), without touching it."""
    v = version(root)
    parent = check_parent(parent) if parent else DEFAULT_PARENT
    if v == 2:
        return 2, {"unified": os.path.join(root, parent, cid)}
    from minidocker.cgroups import v1

    return 1, {c: os.path.join(h, parent, cid) for c, h in v1.hierarchies(root).items()}


def find(cid: str, parent: str = "", root: str = ROOT) -> Cgroup | None:
    """The container's cgroup if it exists.

    Every ``run`` asks when its container exits, so a miss costs only a few stat(2) calls.
    """
    under = check_parent(parent) if parent else DEFAULT_PARENT
    probes = [os.path.join(root, under, cid)] + [os.path.join(root, c, under, cid)
                                                 for c in ("pids", "memory", "freezer")]
    if not any(os.path.isdir(p) for p in probes):
        return None
    v, paths = _placement(cid, parent, root)
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
    named = check_parent(parent) if parent else DEFAULT_PARENT
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


# -- helpers both drivers use ----------------------------------------------------------------

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


def cfs(limits: CgroupLimits) -> tuple[int, int]:
    """(period, quota) in microseconds for the CFS bandwidth controller; 0 means "leave"."""
    if limits.nano_cpus:
        return CFS_PERIOD_US, limits.nano_cpus * CFS_PERIOD_US // 1_000_000_000
    return limits.cpu_period, limits.cpu_quota


def cpu_weight(shares: int) -> int:
    """v1 ``cpu.shares`` (2..262144) -> v2 ``cpu.weight`` (1..10000), as runc converts it."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight(blkio_weight: int) -> int:
    """v1 ``blkio.weight`` (10..1000) -> v2 ``io.weight`` (1..10000), as runc converts it."""
    return 1 + ((blkio_weight - 10) * 9999) // 990


def swap_only(memory: int, memory_swap: int) -> int:
    """Docker's ``--memory-swap`` is memory *plus* swap (v1's memsw); v2's ``memory.swap.max``
    is swap alone. -1 (unlimited) stays -1."""
    return -1 if memory_swap < 0 else memory_swap - memory
