"""Mounting what :mod:`minidocker.mounts` parsed: binds, volumes and tmpfs in the container's
root, before ``pivot_root``; read-only by remount (and ``mount_setattr(2)`` for submounts).

Apart from the parsers so that reading a config (the ``run -d`` client does) never loads the
syscall layer: ctypes alone is ~10 ms of a start that is measured against runc's.

Notebook: ``08_volumes``. Man pages: mount(2), mount_setattr(2),
Documentation/filesystems/sharedsubtree.rst.
"""

from __future__ import annotations

import os

from minidocker import syscalls, trace
from minidocker.mounts import (
    DEFAULT_PROPAGATION,
    TMPFS_CLEAR_FLAGS,
    TMPFS_DATA_OPTIONS,
    TMPFS_SET_FLAGS,
    MountPoint,
    check_tmpfs_options,
)
from minidocker.rootfs import secure_join
from minidocker.syscalls import MS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


PROPAGATION_FLAGS: dict[str, MS] = {
    "private": MS.PRIVATE, "rprivate": MS.REC | MS.PRIVATE,
    "shared": MS.SHARED, "rshared": MS.REC | MS.SHARED,
    "slave": MS.SLAVE, "rslave": MS.REC | MS.SLAVE,
}

# statvfs(3) f_flag bits -> the mount(2) flags a remount must repeat. A bind remount replaces
# the per-mount flags: leaving one out clears it (the rootfs's nodev would be lost, reopening
# device nodes), and inside a user namespace the kernel refuses (EPERM) to clear locked ones.
_KEPT_FLAGS = ((2, MS.NOSUID), (4, MS.NODEV), (8, MS.NOEXEC), (1024, MS.NOATIME),
               (2048, MS.NODIRATIME), (4096, MS.RELATIME))


def kept_flags(path: str) -> MS:
    """The flags of the mount at ``path`` that a bind remount must keep."""
    have = os.statvfs(path).f_flag
    flags = MS(0)
    for bit, flag in _KEPT_FLAGS:
        if have & bit:
            flags |= flag
    return flags


def tmpfs_flags_and_data(options: str) -> tuple[MS, str]:
    """``--tmpfs`` options as mount(2) arguments, over Docker's ``noexec,nosuid,nodev``."""
    names = {"ro": MS.RDONLY, "exec": MS.NOEXEC, "suid": MS.NOSUID, "dev": MS.NODEV,
             "sync": MS.SYNCHRONOUS, "dirsync": MS.DIRSYNC, "atime": MS.NOATIME,
             "diratime": MS.NODIRATIME, "relatime": MS.RELATIME,
             "strictatime": MS.STRICTATIME}
    check_tmpfs_options(options)
    flags, data = MS.NOEXEC | MS.NOSUID | MS.NODEV, []
    for option in (o for o in options.split(",") if o):
        if option.partition("=")[0] in TMPFS_DATA_OPTIONS and "=" in option:
            data.append(option)
        elif option in TMPFS_SET_FLAGS:
            flags |= names.get(option) or names[option[2:]]
        elif option in TMPFS_CLEAR_FLAGS:
            clear = {"rw": "ro", "async": "sync"}.get(option, option.removeprefix("no"))
            flags &= ~names[clear]
        # else a propagation or "defaults": a fresh tmpfs has nothing under it to propagate
    return flags, ",".join(data)


def _make_target(where: str, source: str, is_dir: bool | None = None) -> None:
    """The mount point, inside the image: a file for a file, else a directory."""
    if os.path.lexists(where):
        return
    if is_dir is None:
        is_dir = not source or os.path.isdir(source)
    if not is_dir:
        os.makedirs(os.path.dirname(where), mode=0o755, exist_ok=True)
        os.close(os.open(where, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    else:
        os.makedirs(where, mode=0o755, exist_ok=True)


def make_readonly(where: str) -> None:
    """``MS_BIND|MS_REMOUNT|MS_RDONLY`` on ``where``, then the mounts under it too.

    The remount changes the one mount; mount_setattr(2) (Linux 5.12) with ``AT_RECURSIVE``
    reaches the submounts an ``MS_REC`` bind brought along, as Docker 25 does for ``:ro``.
    Without it they stay writable, as before Docker 25, and the trace says so.
    """
    syscalls.mount(None, where, None, MS.BIND | MS.REMOUNT | MS.RDONLY | kept_flags(where))
    try:
        syscalls.mount_setattr(where, syscalls.MOUNT_ATTR_RDONLY, recursive=True)
    except OSError as exc:
        import errno

        if exc.errno != errno.ENOSYS:
            raise
        if trace.enabled():
            trace.note(f"{where}: no mount_setattr(2): submounts stay writable")


def apply_mounts(root: str, mounts: Sequence[MountPoint]) -> None:
    """Mount ``mounts`` (from :func:`plan`) under ``root``, the container's root filesystem.

    Runs in the container's own mount namespace, after the root filesystem and before
    pivot_root (the host paths are still reachable then, and no longer after).
    """
    for m in mounts:
        where = secure_join(root, m.target)
        _make_target(where, m.source)
        if m.type == "tmpfs":
            flags, data = tmpfs_flags_and_data(m.data)
            syscalls.mount("tmpfs", where, "tmpfs", flags | (MS.RDONLY if m.readonly else 0),
                           data or None)
            continue
        syscalls.mount(m.source, where, None, MS.BIND | MS.REC)
        syscalls.mount(None, where, None, PROPAGATION_FLAGS[m.propagation or
                                                            DEFAULT_PROPAGATION])
        if m.readonly:
            make_readonly(where)


def remount_root_readonly(root: str) -> None:
    """``--read-only``: the root filesystem's own mount read-only; the mounts on it (/proc,
    /dev, volumes, tmpfs) keep theirs, as in Docker. Call after :func:`apply_mounts`."""
    syscalls.mount(None, root, None, MS.BIND | MS.REMOUNT | MS.RDONLY | kept_flags(root))


# -- --userns private: the parent makes each bind, the child attaches it -----------------------

def detached_bind(source: str, readonly: bool, userns_fd: int | None) -> int:
    """A detached bind of ``source`` (open_tree(2) ``OPEN_TREE_CLONE``), as an fd, made by the
    parent of a ``--userns private`` container: the child, root of its own user namespace,
    could not reach the state root's 0700 directories, nor make an idmapped mount.

    ``userns_fd``: the child's user namespace, to idmap the mount through it, so that files
    owned by uid 0 on disk appear owned by the container's root (None: no idmapping, where the
    filesystem has none). ``readonly`` is set on the mount before it is handed over.
    """
    fd = syscalls.open_tree(source)
    try:
        if userns_fd is not None:
            syscalls.mount_setattr_idmap(fd, userns_fd, source, readonly=readonly)
        elif readonly:
            syscalls.mount_setattr(f"/proc/self/fd/{fd}", syscalls.MOUNT_ATTR_RDONLY)
    except BaseException:
        os.close(fd)
        raise
    return fd


def attach_detached(root: str, point: MountPoint, fd: int) -> None:
    """In the child: attach the parent's detached bind ``fd`` at ``point``'s target under
    ``root`` (the mount point made as :func:`apply_mounts` makes it), then close it."""
    try:
        import stat

        where = secure_join(root, point.target)
        # The host path may be closed to us: the detached mount itself says what it is.
        _make_target(where, point.source, stat.S_ISDIR(os.fstat(fd).st_mode))
        syscalls.move_mount(fd, where)
    finally:
        os.close(fd)
