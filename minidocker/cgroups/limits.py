"""The plan of a container's cgroup: :class:`CgroupLimits`, from flags, checked, converted.

A limit is decided before any cgroup exists: ``run``'s and ``update``'s flags become one
:class:`CgroupLimits` in Docker's units (bytes, nano-CPUs, microseconds, cpuset lists),
:func:`validate` refuses what Docker refuses with Docker's words, and the converters
(:func:`cfs`, :func:`cpu_weight`, :func:`io_weight`, :func:`swap_only`) turn Docker's units into
what each cgroup version's files take, as runc does. Nothing here touches cgroupfs (except
reading which CPUs are online), so every rule is a unit test.

The drivers (:mod:`minidocker.cgroups.v1`, :mod:`minidocker.cgroups.v2`) import this, never the
package itself, so the package can choose a driver without a circle.

Notebook: ``02_cgroups``.
"""

from __future__ import annotations

import os

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

MIN_MEMORY = 6 * 1024 * 1024  # Docker's linuxMinMemory: below this a container can't start
CFS_PERIOD_US = 100_000  # the period --cpus uses, as Docker does

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


def check_parent(parent: str) -> str:
    """``--cgroup-parent``: a path under each hierarchy's root, with or without a leading '/'."""
    parts = parent.strip("/").split("/")
    if not parent.strip("/") or any(p in ("", ".", "..") for p in parts) or "\0" in parent:
        raise UsageError(f"invalid cgroup parent {parent!r}: want a path like /minidocker "
                         "or /tests/web")
    return "/".join(parts)


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
