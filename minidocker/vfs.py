"""The ``vfs`` storage driver: a container's root is a plain copy of its image.

Where overlayfs cannot be used (see :mod:`minidocker.graphdriver`: a state directory on
overlayfs itself, on NFS, ...), there is still a way to give each container its own writable
root: copy every visible file of the image into a directory of its own. That is Docker's
``vfs`` driver, and it is what a union filesystem saves us from: here starting a container
costs a copy of the whole image, and every container holds its own copy.

The copy reads the image's layers with :class:`minidocker.layers.Stack`, the same merge rules
overlayfs applies in the kernel (a higher layer hides a lower one, directories merge,
whiteouts and opaque directories hide), so the container sees exactly what it would see on
overlay. Every entry keeps its type, owner, mode, times and extended attributes (not
``trusted.overlay.*``: there is no overlay); hard links inside a layer stay hard links.

At start-up the container's root is not a mount point of its own, and pivot_root(2) needs
one, so :func:`mount_rootfs` bind-mounts the directory onto itself, in the container's mount
namespace, where overlay would mount the union.

``diff`` and ``commit`` cannot read a list of changes from an upper directory here: they
compare the copy with the image, file by file (Docker's "naive diff").

Notebook: ``04_overlayfs`` (why the other driver exists). Man pages: mount(2) (``MS_BIND``),
copy_file_range(2), lsetxattr(2).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from minidocker import syscalls
from minidocker.layers import OVERLAY_XATTR_PREFIX, Stack

TYPE_CHECKING = False
if TYPE_CHECKING:
    from minidocker.layers import Node


def prepare(cdir: str, lowers: list[str], init_dirs: tuple[str, ...],
            init_files: tuple[str, ...]) -> str:
    """Make ``<cdir>/merged``, a copy of the image, with the mount points a container needs.

    The mount points (``init_dirs``, ``init_files``: /proc, /etc/hostname...) are made only
    where the image has nothing, and the times of their parent directories are put back, so
    that ``diff`` does not report them (Docker keeps them in its "init layer").
    """
    merged = os.path.join(cdir, "merged")
    os.mkdir(merged, 0o755)
    populate(merged, lowers)
    for rel in (*init_dirs, *init_files):
        path = os.path.join(merged, rel)
        parent = os.path.dirname(path)
        if os.path.lexists(path) or not os.path.isdir(parent) or os.path.islink(parent):
            continue
        st = os.lstat(parent)
        if rel in init_dirs:
            os.mkdir(path, 0o755)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644))
        os.utime(parent, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    return merged


def populate(dest: str, lowers: list[str]) -> int:
    """Copy the image made of ``lowers`` (topmost first) into the empty directory ``dest``.

    Returns the number of entries copied.
    """
    stack = Stack(lowers, whiteouts="oci")  # vfs keeps layers' whiteouts in the OCI form
    links: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) -> first copy, for hard links
    dirs: list[tuple[str, os.stat_result]] = []
    count = 0
    for rel, node in stack.walk():
        target = os.path.join(dest, rel)
        copy_entry(node, target, links)
        if node.is_dir:
            dirs.append((target, node.st))
        count += 1
    # Directory times last: creating anything inside a directory changes its mtime.
    for target, st in reversed(dirs):
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    if lowers:
        set_metadata(lowers[0], dest)  # the merged root is the topmost layer's root
    return count


def copy_entry(node: Node, target: str, links: dict[tuple[int, int], str]) -> None:
    """Create ``target`` as a copy of the layer entry ``node`` (not its directory contents)."""
    st = node.st
    key = (st.st_dev, st.st_ino)
    if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
        first = links.get(key)
        if first is not None:
            os.link(first, target, follow_symlinks=False)
            return
        links[key] = target
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(target, 0o700)
    elif stat.S_ISREG(mode):
        # copyfile uses copy_file_range/sendfile: the data need not pass through Python.
        shutil.copyfile(node.path, target, follow_symlinks=False)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(node.path), target)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        os.mknod(target, stat.S_IFMT(mode) | 0o600, st.st_rdev)
    else:
        return  # a socket means nothing in an image
    set_metadata(node.path, target, st)


def set_metadata(src: str, target: str, st: os.stat_result | None = None) -> None:
    """Owner, then mode (chown clears setuid bits), xattrs and times of ``src`` onto ``target``."""
    st = st or os.lstat(src)
    if os.geteuid() == 0:
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, stat.S_IMODE(st.st_mode))
    for attr in _xattrs(src):
        os.setxattr(target, attr, os.getxattr(src, attr, follow_symlinks=False),
                    follow_symlinks=False)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _xattrs(path: str) -> list[str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno != errno.EOPNOTSUPP:  # a filesystem without xattrs has none to copy
            raise
        return []
    return [n for n in names if not n.startswith(OVERLAY_XATTR_PREFIX)
            and n != "security.selinux"]


def mount_rootfs(rootfs: str) -> None:
    """Make the copy a mount point (bind it onto itself), as pivot_root(2) requires.

    Then remount it ``nodev``, as the overlay is: a device node in an image must not open the
    host's disk.
    """
    syscalls.mount(rootfs, rootfs, None, syscalls.MS.BIND | syscalls.MS.REC)
    syscalls.mount(None, rootfs, None,
                   syscalls.MS.BIND | syscalls.MS.REMOUNT | syscalls.MS.NODEV)
