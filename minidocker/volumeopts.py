"""``volume create --opt``: Docker's ``local`` driver options, a mount(2) made on ``_data``.

``--opt type=T --opt device=D --opt o=OPTS`` (``-o`` for short) says what to mount on the
volume's ``_data`` directory, as mount(8) would take it::

    --opt type=tmpfs --opt device=tmpfs --opt o=size=64m,uid=1000    memory, 64 MiB at most
    --opt type=none --opt o=bind --opt device=/host/dir              a host directory

The rules are Docker's (moby ``volume/local``), checked at ``volume create`` so nothing bad
is stored: the keys are ``type``, ``device``, ``o`` and ``size``; ``type`` and ``device``
need each other and ``o`` needs both; ``size`` is a quota, which needs XFS project quotas
(minidocker has none, so ``size`` above zero is refused, as Docker refuses it without them).
Docker's network filesystems (``type=nfs`` or ``cifs``, whose ``addr=`` it resolves itself)
are left out, and refused in one line.

The ``o`` string is split as mount(8) and Docker split it (:func:`plan`): the words that are
mount flags (``ro``, ``nosuid``, ``bind``, ``rshared``...) become ``MS_*`` flags, the rest
(``size=64m``, ``uid=1000``) the filesystem's data string. Mounting (:func:`mount`) is then
up to three calls: the mount itself, its propagation if one was named, and a read-only
remount for ``bind,ro`` (a bind ignores ``MS_RDONLY`` until remounted). If a later call
fails, the first is undone: nothing stays mounted.

When it happens (:mod:`minidocker.volumes`): at the first start of a container that uses the
volume; it stays mounted while any container uses it and is unmounted at the last release
(and by ``volume rm``).

Notebook: ``08_volumes``. Man pages: mount(2), mount(8), tmpfs(5), umount2(2).
"""

from __future__ import annotations

import os
import re

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from minidocker.syscalls import MS

VALID_KEYS = ("type", "o", "device", "size")
# A key and the keys it cannot go without (moby's mandatoryOpts), checked in this order.
REQUIRED_WITH = (("device", ("type",)), ("type", ("device",)), ("o", ("device", "type")))
NETWORK_TYPES = ("nfs", "nfs4", "cifs", "smb3")

# mount(8)'s flag words: name -> (clear instead of set, mount(2) flag name). Propagation words
# are applied by a second call, as mount(2) takes no other flag along with them.
FLAG_WORDS: dict[str, tuple[bool, str]] = {
    "defaults": (False, ""),
    "ro": (False, "RDONLY"), "rw": (True, "RDONLY"),
    "nosuid": (False, "NOSUID"), "suid": (True, "NOSUID"),
    "nodev": (False, "NODEV"), "dev": (True, "NODEV"),
    "noexec": (False, "NOEXEC"), "exec": (True, "NOEXEC"),
    "sync": (False, "SYNCHRONOUS"), "async": (True, "SYNCHRONOUS"),
    "dirsync": (False, "DIRSYNC"),
    "noatime": (False, "NOATIME"), "atime": (True, "NOATIME"),
    "nodiratime": (False, "NODIRATIME"), "diratime": (True, "NODIRATIME"),
    "relatime": (False, "RELATIME"), "norelatime": (True, "RELATIME"),
    "strictatime": (False, "STRICTATIME"), "nostrictatime": (True, "STRICTATIME"),
    "bind": (False, "BIND"), "rbind": (False, "BIND|REC"),
}
PROPAGATION_WORDS: dict[str, str] = {
    "private": "PRIVATE", "rprivate": "PRIVATE|REC", "shared": "SHARED",
    "rshared": "SHARED|REC", "slave": "SLAVE", "rslave": "SLAVE|REC",
    "unbindable": "UNBINDABLE", "runbindable": "UNBINDABLE|REC",
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?", re.IGNORECASE)


def parse_size(value: str) -> int:
    """Bytes in ``64m``, ``1g``, ``512`` (Docker's RAMInBytes: binary multiples)."""
    found = _SIZE.fullmatch(value.strip())
    if found is None:
        raise UsageError(f"invalid size: '{value}'")
    power = " kmgtp".index(found.group(2).lower() or " ")
    return int(float(found.group(1)) * 1024 ** power)


def check(options: Mapping[str, str]) -> dict[str, str]:
    """The options ``volume create`` stores, or UsageError with Docker's words."""
    for key in options:
        if key not in VALID_KEYS:
            raise UsageError(f'invalid option: "{key}"')
    kind = options.get("type", "")
    if kind in NETWORK_TYPES:
        raise UsageError(f"--opt type={kind}: network filesystems are not supported "
                         "(Docker resolves their addr= itself; minidocker does not)")
    if "size" in options and parse_size(options["size"]) > 0:
        raise UsageError("quota size requested but no quota support")
    for key, needs in REQUIRED_WITH:
        if key in options:
            for need in needs:
                if need not in options:
                    raise UsageError(f'missing required option: "{need}"')
    return dict(options)


def needs_mount(options: Mapping[str, str] | None) -> bool:
    """Whether the volume is a mount on ``_data`` rather than the directory itself."""
    return bool(options and (options.get("type") or options.get("device")))


class Plan:
    """The mount(2) calls for a volume's options: what :func:`mount` does, printable."""

    __slots__ = ("device", "fstype", "flags", "data", "propagation")

    def __init__(self, device: str, fstype: str, flags: MS, data: str,
                 propagation: MS) -> None:
        self.device, self.fstype, self.flags = device, fstype, flags
        self.data, self.propagation = data, propagation

    def __repr__(self) -> str:
        return (f"Plan(device={self.device!r}, fstype={self.fstype!r}, flags={self.flags!r}, "
                f"data={self.data!r}, propagation={self.propagation!r})")


def _flag(names: str) -> MS:
    from minidocker.syscalls import MS

    flag = MS(0)
    for name in filter(None, names.split("|")):
        flag |= MS[name]
    return flag


def plan(options: Mapping[str, str]) -> Plan:
    """Split ``o`` into mount flags and the data string, as mount(8) and Docker do."""
    from minidocker.syscalls import MS

    device = options.get("device", "")
    if not device:
        raise UsageError("missing device in volume options")
    flags, propagation, data = MS(0), MS(0), []
    for word in (w for w in options.get("o", "").split(",") if w):
        if word in FLAG_WORDS:
            clear, names = FLAG_WORDS[word]
            flags = flags & ~_flag(names) if clear else flags | _flag(names)
        elif word in PROPAGATION_WORDS:
            propagation |= _flag(PROPAGATION_WORDS[word])
        else:
            data.append(word)
    return Plan(device, options.get("type", ""), flags, ",".join(data), propagation)


def mount(options: Mapping[str, str], target: str) -> None:
    """Mount what ``options`` name on ``target``; all or nothing (OSError if it fails)."""
    from minidocker import syscalls
    from minidocker.syscalls import MS

    p = plan(options)
    syscalls.mount(p.device, target, p.fstype or None, p.flags, p.data or None)
    try:
        if p.propagation:
            syscalls.mount(None, target, None, p.propagation)
        if p.flags & (MS.BIND | MS.RDONLY) == MS.BIND | MS.RDONLY:
            syscalls.mount(None, target, None, p.flags | MS.REMOUNT)
    except BaseException:
        unmount(target)
        raise


def mounted(target: str) -> bool:
    """Whether something is mounted on ``target`` (as this process's mountinfo says)."""
    from minidocker import mountinfo

    where = os.path.realpath(target)
    with open("/proc/self/mountinfo") as f:
        return any(e.mount_point == where for e in mountinfo.parse_mountinfo(f.read()))


def unmount(target: str) -> None:
    """Unmount everything stacked on ``target``; nothing if nothing is. Detached (lazily), as
    Docker unmounts a volume: a process with a file open there keeps it, nobody else sees it."""
    from minidocker import syscalls
    from minidocker.syscalls import MNT

    while mounted(target):
        syscalls.umount2(target, MNT.DETACH)
