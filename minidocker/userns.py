"""User namespaces: root in the container, an unprivileged nobody on the host.

Without a user namespace (Docker's default), uid 0 in a container *is* uid 0 on the host;
only capabilities, seccomp and the other namespaces hold it in, and any way out (a kernel bug,
a mount it should not see, CVE-2019-5736) lands it as real root. ``--userns private`` gives
the container its own user namespace, whose ids are *mapped* onto a range of host ids nobody
else uses: container uid 0 is host uid 100000, uid 1000 is 101000, and so on. Capabilities in
it count only for what the namespace owns (its own mounts, network, hostname), never for the
host's files or devices. Docker calls this ``userns-remap``; podman's rootless mode is built on
it.

**The range** comes from ``/etc/subuid`` and ``/etc/subgid`` (``name:start:count``, see
subuid(5)), the entries for the user :data:`REMAP_USER` (Docker's is ``dockremap``). A test or
a lab can point ``$MINIDOCKER_SUBUID`` / ``$MINIDOCKER_SUBGID`` at copies instead of editing the
host's files.

**The order of a start** changes, and that is the lesson:

1. The user namespace must come *first and alone*: every other namespace records the user
   namespace that was current when it was made as its owner, and capabilities over it are
   checked there. So the parent clones the child with ``CLONE_NEWUSER|CLONE_NEWPID`` together
   (the kernel makes the user namespace first; mounting the new /proc needs
   ``CAP_SYS_ADMIN`` in the user namespace that owns the PID namespace), and the child then
   unshares mnt, uts, ipc, net and cgroup, which its user namespace owns.
2. The child starts unmapped (its ids show as 65534, "overflow"). Only a process *outside* may
   write its ``/proc/<pid>/uid_map`` and ``gid_map`` with ids outside the child's own, so the
   parent does it (:func:`write_maps`), while the child waits after unsharing.
3. The image's files belong to host uid 0, which is unmapped: inside they would show as
   nobody and root could not write to them. With an **idmapped mount** (mount_setattr(2),
   ``MOUNT_ATTR_IDMAP``, Linux 5.12; overlayfs over idmapped layers since 5.19) the layers
   appear owned through the container's mapping, without changing a byte on disk. The parent
   makes them (it needs ``CAP_SYS_ADMIN`` in the host's user namespace), builds the overlay on
   top with the new mount API as the container's root (``setfsuid``), and hands the finished,
   still-detached mount to the child over a socket; the child attaches it with move_mount(2).
   On a kernel without idmapped mounts the fallback is Docker's: a copy of each layer chowned
   into the range on unpack (not implemented here: the error says so).
4. The child becomes root *of its namespace* (``setresuid(0)`` maps to host 100000) before it
   creates any file; from then on it works in its container directory by relative paths, since
   the host path leading there may be closed to uid 100000.

Device nodes cannot be created in a user namespace (``CAP_MKNOD`` in the initial one is
needed): /dev gets the host's own nodes, bind-mounted (see :mod:`minidocker.devices`).
``--privileged`` and ``--userns private`` cannot be combined, as in Docker.

Notebook: ``03_capabilities``. Man pages: user_namespaces(7), subuid(5), subgid(5),
mount_setattr(2), open_tree(2), fsopen(2), move_mount(2), setfsuid(2).
"""

from __future__ import annotations

import os

from minidocker import syscalls
from minidocker.errors import UsageError

REMAP_USER = "minidocker"
SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
MAP_SIZE = 65536  # ids 0..65535 inside, as Docker maps


class IdMap:
    """One line of uid_map / gid_map: ``inside outside count``."""

    __slots__ = ("inside", "outside", "count")

    def __init__(self, inside: int, outside: int, count: int) -> None:
        self.inside, self.outside, self.count = inside, outside, count

    def line(self) -> str:
        return f"{self.inside} {self.outside} {self.count}"

    def to_host(self, inside: int) -> int:
        if not 0 <= inside - self.inside < self.count:
            raise ValueError(f"id {inside} is not mapped")
        return self.outside + inside - self.inside

    def __repr__(self) -> str:
        return f"IdMap({self.line()})"


class UsernsPlan:
    """The container's uid and gid maps (printable; no root needed to make one)."""

    __slots__ = ("uid_map", "gid_map")

    def __init__(self, uid_map: IdMap, gid_map: IdMap) -> None:
        self.uid_map, self.gid_map = uid_map, gid_map

    def as_dict(self) -> dict[str, str]:
        return {"UidMap": self.uid_map.line(), "GidMap": self.gid_map.line()}

    def __repr__(self) -> str:
        return f"UsernsPlan(uid {self.uid_map.line()}, gid {self.gid_map.line()})"


def parse_subid(text: str, user: str, uid: int | None = None) -> tuple[int, int] | None:
    """The first ``user:start:count`` (or ``uid:start:count``) entry, as (start, count)."""
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or line.lstrip().startswith("#"):
            continue
        name, start, count = fields
        if name == user or (uid is not None and name == str(uid)):
            try:
                return int(start), int(count)
            except ValueError:
                continue
    return None


def _range(path: str, kind: str, user: str) -> tuple[int, int]:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    found = parse_subid(text, user)
    tool = "--add-subuids" if kind == "uid" else "--add-subgids"
    if found is None:
        raise UsageError(f"--userns private: no subordinate {kind} range for user "
                         f"{user!r} in {path} (add one: useradd -r {user}; usermod {tool} "
                         f"100000-165535 {user})")
    start, count = found
    if count < 1 or start < 1:
        raise UsageError(f"--userns private: the {kind} range {start}:{count} for {user!r} in "
                         f"{path} is unusable")
    return start, min(count, MAP_SIZE)


def plan(user: str | None = None, subuid: str | None = None,
         subgid: str | None = None) -> UsernsPlan:
    """Read the ranges now, so a missing one is an error before anything is created."""
    user = user or os.environ.get("MINIDOCKER_USERNS_REMAP") or REMAP_USER
    uid_start, uid_count = _range(subuid or os.environ.get("MINIDOCKER_SUBUID") or SUBUID,
                                  "uid", user)
    gid_start, gid_count = _range(subgid or os.environ.get("MINIDOCKER_SUBGID") or SUBGID,
                                  "gid", user)
    return UsernsPlan(IdMap(0, uid_start, uid_count), IdMap(0, gid_start, gid_count))


def check_kernel() -> None:
    """Idmapped overlay layers need Linux 5.19 (mount_setattr itself 5.12)."""
    release = os.uname().release.split(".")
    try:
        version = (int(release[0]), int("".join(c for c in release[1] if c.isdigit())))
    except (IndexError, ValueError):
        return
    if version < (5, 19):
        raise UsageError(f"--userns private needs idmapped overlay layers (Linux 5.19); this "
                         f"kernel is {os.uname().release} (the chown-on-unpack fallback is not "
                         "implemented)")


# -- the parent's side: maps and the idmapped root filesystem ---------------------------------

def write_maps(pid: int, userns: UsernsPlan) -> None:
    """Map the child's ids; from the parent, which holds CAP_SETUID/SETGID on the host."""
    syscalls.write_file(f"/proc/{pid}/uid_map", userns.uid_map.line())
    syscalls.write_file(f"/proc/{pid}/gid_map", userns.gid_map.line())


def chown_to_root(paths: list[str], userns: UsernsPlan) -> None:
    """Files minidocker writes for the container (/etc/hosts...) belong to its root."""
    for path in paths:
        os.chown(path, userns.uid_map.outside, userns.gid_map.outside)


def idmapped(path: str, userns_fd: int) -> int:
    """A detached copy of the mount at ``path``, its files seen through the user namespace."""
    fd = syscalls.open_tree(path)
    try:
        syscalls.mount_setattr_idmap(fd, userns_fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def overlay_fd(lowers: list[str], cdir: str, pid: int, userns: UsernsPlan) -> int:
    """The container's overlay, built detached over idmapped layers; returns its mount fd.

    overlayfs does its work in the layers with the credentials of whoever mounted it, and an
    idmapped mount refuses to create a file for an id outside its mapping (host root is
    outside: EOVERFLOW), so the overlay is created with the file-system ids of the container's
    root (setfsuid/setfsgid). That clears the file capabilities from the effective set, which
    are switched on again for the moment of the mount.
    """
    userns_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    fds: list[int] = []
    try:
        fds += [idmapped(lower, userns_fd) for lower in lowers]
        cdir_fd = idmapped(cdir, userns_fd)
        fds.append(cdir_fd)
        fs = syscalls.fsopen("overlay")
        fds.append(fs)
        layers = ":".join(f"/proc/self/fd/{fd}" for fd in fds[:len(lowers)])
        if len(layers) < 256:  # fsconfig copies at most 256 bytes of a string
            syscalls.fsconfig(fs, "lowerdir", layers)
        else:  # one at a time: Linux 6.8
            for fd in fds[:len(lowers)]:
                syscalls.fsconfig(fs, "lowerdir+", f"/proc/self/fd/{fd}")
        syscalls.fsconfig(fs, "upperdir", f"/proc/self/fd/{cdir_fd}/upper")
        syscalls.fsconfig(fs, "workdir", f"/proc/self/fd/{cdir_fd}/work")
        old_uid = syscalls.setfsuid(userns.uid_map.outside)
        old_gid = syscalls.setfsgid(userns.gid_map.outside)
        try:
            _, permitted, inheritable = syscalls.capget()
            syscalls.capset(permitted, permitted, inheritable)
            syscalls.fsconfig(fs, None)
            return syscalls.fsmount(fs)
        finally:
            syscalls.setfsgid(old_gid)
            syscalls.setfsuid(old_uid)  # back to 0: the kernel restores the fs capabilities
    finally:
        os.close(userns_fd)
        for fd in fds:
            os.close(fd)


def rootfs_fd(rootfs: str, pid: int) -> int:
    """The vfs driver's plain copy, idmapped (no overlay to build)."""
    userns_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return idmapped(rootfs, userns_fd)
    finally:
        os.close(userns_fd)


# -- the child's side ---------------------------------------------------------------------------

def become_root() -> None:
    """Become uid/gid 0 of the new namespace (host 100000...), once the parent has mapped it."""
    syscalls.setresgid(0)
    syscalls.setresuid(0)


def attach(mount_fd: int, target: str) -> None:
    """Attach the parent's detached root filesystem at ``target`` (merged)."""
    syscalls.move_mount(mount_fd, target)
    os.close(mount_fd)
