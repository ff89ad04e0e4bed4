"""Capabilities: root's power, cut into 41 pieces, and the 14 a container keeps.

Since Linux 2.2 "root" is not one privilege but a set of them. Each capability unlocks a
group of operations that the kernel otherwise allows only to uid 0: ``CAP_CHOWN`` lets a
process chown any file, ``CAP_NET_ADMIN`` configure interfaces and routes, ``CAP_SYS_ADMIN``
mount filesystems (and a hundred other things), ``CAP_SYS_MODULE`` load kernel modules. The
kernel checks the capability, never the uid. So a container's root can keep uid 0, and with it
the ownership of its own files, while losing nearly everything else: "most containers need no
real root". Docker keeps the 14 in :data:`DEFAULT_CAPABILITIES`; ``--cap-add`` and
``--cap-drop`` change that list, ``--privileged`` keeps all of them.

**Five sets.** Every thread carries five 64-bit masks (``grep Cap /proc/self/status``):

=========== ==================================================================================
bounding    the ceiling: nothing outside it can ever be gained again, not even by execve of a
            setuid-root or file-capability program. Dropped with ``prctl(PR_CAPBSET_DROP)``,
            one capability at a time, which itself needs ``CAP_SETPCAP``, so it goes first.
permitted   what the thread may switch on (a superset of effective).
effective   what the kernel checks right now.
inheritable what may pass to the program after execve, if the file also lists it.
ambient     what passes through execve of an ordinary (non-setuid, no file caps) program, and
            the only way a non-root user keeps a capability across execve. Each one must also be
            in permitted and inheritable (``PR_CAP_AMBIENT_RAISE``).
=========== ==================================================================================

**Root and non-root.** At execve the kernel recomputes the sets (capabilities(7),
"Transformation of capabilities during execve()"). For uid 0 it treats every program as if it
had all file capabilities, so root gets ``permitted = effective = bounding``: the bounding set
*is* what root in the container has. A non-root user (``-u 1000``) gets only the ambient set.
So, as in Docker, ``-u 1000 --cap-add NET_BIND_SERVICE`` puts the capability in the bounding
set but leaves the user without it; minidocker's own ``--cap-ambient NET_BIND_SERVICE`` (Docker
has no such flag; the OCI runtime spec has the field) grants it as ambient. Inheritable stays
empty otherwise: Docker fixed CVE-2022-24769 by no longer filling it.

**Across setresuid.** Changing all uids from 0 to non-zero clears permitted and effective,
unless ``PR_SET_KEEPCAPS`` is on; then permitted survives (effective is still cleared), so the
last step can hand the user exactly its ambient set.

Order in the start sequence (:mod:`minidocker.security`): bounding drop, keepcaps, user switch,
then :func:`apply` (capset + ambient), last before execve, with seccomp.

Notebook: ``03_capabilities``. Man pages: capabilities(7), capget(2), prctl(2)
(PR_CAPBSET_DROP, PR_SET_KEEPCAPS, PR_CAP_AMBIENT), credentials(7).
"""

from __future__ import annotations

from minidocker import syscalls
from minidocker.errors import UsageError
from minidocker.syscalls import PR

# Index = capability number (linux/capability.h), as the masks in /proc/<pid>/status count them.
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: number for number, name in enumerate(CAPABILITIES)}

# Docker's default set (moby's oci/caps defaults), and why a container is given each one.
DEFAULT_CAPABILITIES: tuple[tuple[str, str], ...] = (
    ("CAP_CHOWN", "chown files: package managers and tar need it"),
    ("CAP_DAC_OVERRIDE", "read and write files whatever their mode, as root expects"),
    ("CAP_FSETID", "keep setuid/setgid bits when modifying a file"),
    ("CAP_FOWNER", "chmod, utime... on files root does not own"),
    ("CAP_MKNOD", "create device nodes (opening them is still up to the device policy)"),
    ("CAP_NET_RAW", "raw sockets: ping (and ARP/ICMP spoofing on the container's network)"),
    ("CAP_SETGID", "change group ids: su, login daemons dropping privileges"),
    ("CAP_SETUID", "change user ids: the same"),
    ("CAP_SETFCAP", "set file capabilities (installing ping, for example)"),
    ("CAP_SETPCAP", "change its own capability sets within the bounding set"),
    ("CAP_NET_BIND_SERVICE", "bind ports below 1024: web servers"),
    ("CAP_SYS_CHROOT", "chroot(2): some build tools and daemons"),
    ("CAP_KILL", "signal processes of other users (in the container)"),
    ("CAP_AUDIT_WRITE", "write to the kernel audit log: login, sshd"),
)

# What the notebook points at: capabilities a default container does NOT have, and the escape
# each one would open (see minidocker.escapes for the attacks themselves).
NOTABLE_DROPPED: tuple[tuple[str, str], ...] = (
    ("CAP_SYS_ADMIN", "mount, unshare, setns, bpf...: the 'new root' capability"),
    ("CAP_SYS_MODULE", "load a kernel module: run code in the host's kernel"),
    ("CAP_SYS_PTRACE", "trace and inject into other processes"),
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at: reach host files by inode ('shocker')"),
    ("CAP_NET_ADMIN", "reconfigure the container's network: interfaces, routes, firewall"),
    ("CAP_SYS_RAWIO", "iopl/ioperm, /dev/mem: talk to hardware directly"),
    ("CAP_SYS_TIME", "set the clock of the whole machine (time is not namespaced)"),
    ("CAP_SYS_BOOT", "reboot(2) the host"),
)


def normalize(name: str) -> str:
    """``net_admin``, ``NET_ADMIN``, ``cap_net_admin`` -> ``CAP_NET_ADMIN``; ``all`` -> ``ALL``."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in NUMBERS:
        raise UsageError(f"unknown capability: {name!r}")
    return upper


def to_mask(names: list[str] | tuple[str, ...]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << NUMBERS[normalize(name)]
    return mask


def to_names(mask: int) -> list[str]:
    """The capabilities in ``mask``, by name (numbers this table doesn't know as ``cap_N``)."""
    return [CAPABILITIES[n] if n < len(CAPABILITIES) else f"cap_{n}"
            for n in range(64) if mask >> n & 1]


def decode(hex_mask: str) -> list[str]:
    """A ``CapEff:`` value from /proc/<pid>/status (``00000000a80425fb``) -> names."""
    return to_names(int(hex_mask, 16))


def default_mask() -> int:
    return to_mask([name for name, _ in DEFAULT_CAPABILITIES])


def last_cap() -> int:
    """The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):  # an old kernel without the file: the table's last one
        return len(CAPABILITIES) - 1


def grant(cap_add: list[str], cap_drop: list[str], privileged: bool, available: int) -> int:
    """The capabilities the container gets, as a mask: Docker's rules (TweakCapabilities).

    ``--cap-add ALL`` gives everything not in ``--cap-drop``; ``--cap-drop ALL`` keeps only
    ``--cap-add``; otherwise the defaults minus the drops plus the adds. ``--privileged`` starts
    from everything. ``available`` is what minidocker itself holds (its own bounding and
    permitted sets): a capability the host withholds from us can't be handed on, so asking for
    it by name is an error, and "everything" means everything we have.
    """
    adds = [normalize(n) for n in cap_add]
    drops = [normalize(n) for n in cap_drop]
    everything = available
    if "ALL" in adds:
        mask = everything & ~to_mask([d for d in drops if d != "ALL"])
    elif "ALL" in drops:
        mask = to_mask(adds)
    else:
        base = everything if privileged else default_mask()
        mask = (base & ~to_mask(drops)) | to_mask(adds)
    missing = to_mask([a for a in adds if a != "ALL"]) & ~available
    if missing:
        name = to_names(missing)[0]
        raise UsageError(f"--cap-add {name}: this host withholds it from minidocker itself "
                         "(it is not in minidocker's own bounding set), so no container can "
                         "have it")
    return mask & available


class CapSets:
    """The five sets a container's process gets, as masks (printable, unit-testable)."""

    __slots__ = ("bounding", "permitted", "effective", "inheritable", "ambient")

    def __init__(self, bounding: int, permitted: int, effective: int, inheritable: int,
                 ambient: int) -> None:
        self.bounding = bounding
        self.permitted = permitted
        self.effective = effective
        self.inheritable = inheritable
        self.ambient = ambient

    def as_dict(self) -> dict[str, list[str]]:
        return {s: to_names(getattr(self, s)) for s in self.__slots__}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CapSets) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self) -> str:
        return "CapSets(" + ", ".join(f"{s}={getattr(self, s):#x}" for s in self.__slots__) + ")"


def sets_for(granted: int, uid: int, ambient: int = 0) -> CapSets:
    """The five sets for a process running as ``uid`` in a container granted ``granted``.

    Root: bounding = permitted = effective = granted. Anyone else: granted only as the ceiling,
    and nothing usable but ``ambient`` (which must lie within ``granted``).
    """
    if ambient & ~granted:
        raise UsageError(f"--cap-ambient {to_names(ambient & ~granted)[0]}: not granted to the "
                         "container (add it with --cap-add too)")
    if uid == 0:
        return CapSets(granted, granted, granted, ambient, ambient)
    return CapSets(granted, ambient, ambient, ambient, ambient)


# -- applying them (in the container's process, last before execve) ----------------------------

def drop_bounding(keep: int, top: int | None = None) -> None:
    """Drop every capability not in ``keep`` from the bounding set: for good, for every
    program this process will ever run. Needs CAP_SETPCAP, so it comes before the others."""
    top = last_cap() if top is None else top
    for number in range(top + 1):
        if not keep >> number & 1:
            syscalls.prctl(PR.CAPBSET_DROP, number)


def keep_caps(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set across the switch from uid 0 to a user."""
    syscalls.prctl(PR.SET_KEEPCAPS, 1 if on else 0)


def raise_effective() -> None:
    """Effective = permitted again (after setresuid cleared it, with keepcaps on)."""
    _, permitted, inheritable = syscalls.capget()
    syscalls.capset(permitted, permitted, inheritable)


PR_CAP_AMBIENT_RAISE = 2


def apply(sets: CapSets) -> None:
    """Set permitted, effective and inheritable, then raise each ambient capability."""
    syscalls.capset(sets.effective, sets.permitted, sets.inheritable)
    for number in range(64):
        if sets.ambient >> number & 1:
            syscalls.prctl(PR.CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number)


def own_available() -> int:
    """What this process can hand on: its permitted set (within its bounding set)."""
    _, permitted, _ = syscalls.capget()
    return permitted
