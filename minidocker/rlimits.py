"""rlimits: per-process ceilings, set with ``--ulimit name=soft[:hard]``.

Each process carries a soft and a hard limit for about 16 resources (open files, processes,
core file size, locked memory...). The kernel enforces the soft one; a process may raise its
soft limit up to the hard one, and lower the hard one, but raising a hard limit needs
``CAP_SYS_RESOURCE``. Limits are inherited across fork and execve, so the container's first
process sets them just before exec and everything it starts keeps them.

Unlike cgroups, rlimits count per process (``nofile``) or per *real user* on the whole host
(``nproc`` counts every process of that uid, inside containers or not: without a user
namespace, root in every container is the same uid 0). Docker's names are the ``ulimit -a``
names below.

**This host.** ``minidocker`` itself runs with a hard ``nofile`` of 20000 and without
``CAP_SYS_RESOURCE``, so it cannot give a container more: a value above the hard limit is
refused up front with a clear error, before anything is created.

Notebook: ``03_capabilities``. Man pages: getrlimit(2) / prlimit(2), bash(1) ``ulimit``.
"""

from __future__ import annotations

from minidocker import syscalls
from minidocker.errors import UsageError

# Docker's --ulimit names -> the RLIMIT_* number (asm-generic/resource.h).
RLIMITS: dict[str, tuple[int, str]] = {
    "cpu": (0, "CPU time, seconds"),
    "fsize": (1, "largest file it may create, bytes"),
    "data": (2, "data segment size, bytes"),
    "stack": (3, "stack size, bytes"),
    "core": (4, "core dump size, bytes"),
    "rss": (5, "resident set size (ignored by Linux)"),
    "nproc": (6, "processes of the same real uid, host-wide"),
    "nofile": (7, "open file descriptors"),
    "memlock": (8, "locked memory, bytes"),
    "as": (9, "address space, bytes"),
    "locks": (10, "file locks"),
    "sigpending": (11, "queued signals"),
    "msgqueue": (12, "POSIX message queue bytes"),
    "nice": (13, "ceiling for nice (20 - value)"),
    "rtprio": (14, "real-time priority ceiling"),
    "rttime": (15, "real-time CPU time, microseconds"),
}
UNLIMITED = (1 << 64) - 1  # RLIM_INFINITY
CAP_SYS_RESOURCE = 24


class Ulimit:
    """One ``--ulimit``: Docker's record shape is {"Name", "Soft", "Hard"}."""

    __slots__ = ("name", "soft", "hard")

    def __init__(self, name: str, soft: int, hard: int) -> None:
        self.name, self.soft, self.hard = name, soft, hard

    def as_dict(self) -> dict[str, object]:
        return {"Name": self.name, "Soft": _shown(self.soft), "Hard": _shown(self.hard)}

    def __repr__(self) -> str:
        return f"Ulimit({self.name}={_shown(self.soft)}:{_shown(self.hard)})"


def _shown(value: int) -> int:
    return -1 if value == UNLIMITED else value


def _number(text: str, flag: str) -> int:
    if text in ("-1", "unlimited"):
        return UNLIMITED
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"invalid --ulimit {flag}: {text!r} is not a number") from None
    if value < 0:
        raise UsageError(f"invalid --ulimit {flag}: {text!r} is negative")
    return value


def parse(flag: str) -> Ulimit:
    """``nofile=1024``, ``nofile=1024:2048``, ``core=-1`` (unlimited)."""
    name, sep, values = flag.partition("=")
    if not sep or not values:
        raise UsageError(f"invalid --ulimit {flag!r}: want name=soft[:hard]")
    if name not in RLIMITS:
        raise UsageError(f"invalid --ulimit {flag!r}: unknown limit {name!r} (one of "
                         + ", ".join(RLIMITS) + ")")
    soft_text, _, hard_text = values.partition(":")
    soft = _number(soft_text, flag)
    hard = _number(hard_text, flag) if hard_text else soft
    if soft > hard:
        raise UsageError(f"invalid --ulimit {flag}: soft limit {soft_text} is above the hard "
                         f"limit {hard_text}")
    return Ulimit(name, soft, hard)


def current_hard(name: str) -> int:
    import resource

    return resource.getrlimit(RLIMITS[name][0])[1] & UNLIMITED  # RLIM_INFINITY reads as -1


def check(limits: list[Ulimit], can_raise: bool) -> None:
    """Refuse a hard limit above ours when we can't raise it (no CAP_SYS_RESOURCE)."""
    if can_raise:
        return
    for lim in limits:
        ours = current_hard(lim.name)
        if lim.hard > ours:
            raise UsageError(
                f"--ulimit {lim.name}={_shown(lim.soft)}:{_shown(lim.hard)}: the hard limit is "
                f"above minidocker's own ({_shown(ours)}) and raising it needs "
                "CAP_SYS_RESOURCE, which this host does not give minidocker")


def plan(flags: list[str], available_caps: int) -> list[Ulimit]:
    """Parse and check every ``--ulimit``; the last one for a name wins, as in Docker."""
    by_name = {u.name: u for u in (parse(f) for f in flags)}
    limits = list(by_name.values())
    check(limits, bool(available_caps >> CAP_SYS_RESOURCE & 1))
    return limits


def apply(limits: list[Ulimit]) -> None:
    """Set them on this process; inherited by everything it runs."""
    for lim in limits:
        syscalls.prlimit(RLIMITS[lim.name][0], lim.soft, lim.hard, f"RLIMIT_{lim.name.upper()}")
