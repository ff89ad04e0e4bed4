"""Users: who the container's process runs as.

``-u/--user`` takes ``user[:group]``, each a name or a number. Names mean what they mean
*inside the image*: they are looked up in the container's own ``/etc/passwd`` and
``/etc/group``, after pivot_root, never in the host's. A number needs no entry (``-u 1234``
works in any image), as in Docker. The result is applied with setgroups(2), setresgid(2) and
setresuid(2), in that order: once the uid is no longer 0 the process could not change its
groups any more.

Supplementary groups are every group in ``/etc/group`` that lists the user as a member, and
``HOME`` comes from the passwd entry (``/`` when there is none), unless the user set it.

Without a user namespace, uid 0 in the container *is* uid 0 on the host; only capabilities,
seccomp and the namespaces keep it in. Man pages: passwd(5), group(5), setresuid(2),
credentials(7).
"""

from __future__ import annotations

from collections import namedtuple

from minidocker import syscalls
from minidocker.errors import UsageError

MAX_ID = 2**31 - 1

ExecUser = namedtuple("ExecUser", "uid gid groups home")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Check the syntax of ``-u``: ``user``, ``user:group``; names or numbers."""
    user, sep, group = spec.partition(":")
    if not user or (sep and not group) or ":" in group:
        raise UsageError(f"invalid user: {spec!r} (expected user[:group], names or numbers)")
    for part in (user, group):
        if part.isdigit() and int(part) > MAX_ID:
            raise UsageError(f"invalid user: {spec!r}: ids must be in the range 0-{MAX_ID}")
    return user, (group if sep else None)


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    return [line.split(":") for line in lines if line and not line.startswith("#")]


def lookup(spec: str, passwd: str = "/etc/passwd", group: str = "/etc/group") -> ExecUser:
    """Resolve ``spec`` against the image's passwd and group files."""
    user, grp = parse_spec(spec)
    users = [e for e in _entries(passwd) if len(e) >= 7]
    match = [e for e in users if e[0] == user or (user.isdigit() and e[2] == user)]
    if match:
        name, uid, gid, home = match[0][0], int(match[0][2]), int(match[0][3]), match[0][5]
    elif user.isdigit():
        name, uid, gid, home = None, int(user), 0, "/"
    else:
        raise UsageError(f"unable to find user {user}: no matching entries in passwd file")

    groups = [e for e in _entries(group) if len(e) >= 4]
    if grp is not None:
        found = [e for e in groups if e[0] == grp or (grp.isdigit() and e[2] == grp)]
        if found:
            gid = int(found[0][2])
        elif grp.isdigit():
            gid = int(grp)
        else:
            raise UsageError(f"unable to find group {grp}: no matching entries in group file")

    supplementary = [int(e[2]) for e in groups if name and name in e[3].split(",")]
    extra = [g for g in dict.fromkeys(supplementary) if g != gid]
    return ExecUser(uid, gid, [gid, *extra], home or "/")


def become(user: ExecUser) -> None:
    """Switch credentials: groups first, then gid, then uid (after which we can't go back)."""
    syscalls.setgroups(user.groups)
    syscalls.setresgid(user.gid)
    syscalls.setresuid(user.uid)
