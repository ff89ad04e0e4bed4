"""What a container changed: ``diff``, the layer ``commit`` makes, and ``export``.

Under the overlay driver, everything a container writes lands in its upper directory, so its
changes can be read from there without comparing a single file (Docker's overlay2 does the
same):

- an entry in the upper dir that the image also has is **C**hanged (a copied-up file, or a
  directory something below was changed in); one the image lacks is **A**dded;
- a whiteout (a 0/0 character device) is a **D**eleted entry, if the image had it;
- an opaque directory (``trusted.overlay.opaque=y``: ``rm -rf d; mkdir d``) hides all the
  image had in it, so each of those entries is **D**eleted too.

Under ``vfs`` there is no upper dir: the container's copy is compared with the image, entry
by entry, by type, mode, owner, size, mtime, device number and link target (Docker's "naive
diff"). Both give the same answer for the same changes.

``commit`` turns the same changes into a layer tar in OCI form: files as they are, a deleted
entry as an empty file ``.wh.NAME``, an opaque directory as the directory plus a
``.wh..wh..opq`` inside it; hard links stay links, and owners, modes, mtimes and extended
attributes (``SCHILY.xattr.*`` PAX records; never ``trusted.overlay.*``) are kept.
``export`` writes the container's whole merged tree.

The **init layer**: before mounting, the start sequence creates mount points in the upper
dir (``/proc``, ``/etc/hostname``...; see ``rootfs.prepare_init_layer``). Docker keeps these
in a separate layer, so ``docker diff`` never shows them; here :func:`init_placeholders`
finds those still in their empty, freshly made state, and every function below skips them.

overlayfs's ``redirect_dir`` and ``metacopy`` features would leave renamed directories and
metadata-only copies in the upper dir that a plain reading misses; minidocker's kernels run
without them, and :func:`upper_changes` refuses an upper dir that has them.

Notebook: ``05_images``. Man pages: tar(5) (``pax`` extended headers), overlayfs's
``Documentation/filesystems/overlayfs.rst`` ("whiteouts and opaque directories").
"""

from __future__ import annotations

import os
import stat
import tarfile

from minidocker.errors import ImageError
from minidocker.layers import (
    OPAQUE_MARKER,
    OVERLAY_XATTR_PREFIX,
    PAX_XATTR_PREFIX,
    WHITEOUT_PREFIX,
    Stack,
    is_opaque,
    is_whiteout,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import BinaryIO

KINDS = {"A": "added", "C": "changed", "D": "deleted"}
_REFUSED_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")


class Change:
    """One line of ``docker diff``: ``C /etc``."""

    __slots__ = ("kind", "path")

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind  # "A", "C" or "D"
        self.path = path  # relative: "etc/passwd"

    def __str__(self) -> str:
        return f"{self.kind} /{self.path}"

    def __repr__(self) -> str:
        return f"Change({self.kind!r}, {self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Change) and (self.kind, self.path) == (other.kind, other.path)

    def __hash__(self) -> int:
        return hash((self.kind, self.path))


def init_placeholders(top: str, dirs: Iterable[str], files: Iterable[str]) -> set[str]:
    """The init layer's mount points in ``top`` still as made: empty files, empty dirs."""
    skip: set[str] = set()
    for rel in files:
        st = _lstat(os.path.join(top, rel))
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_size == 0:
            skip.add(rel)
    for rel in dirs:
        path = os.path.join(top, rel)
        st = _lstat(path)
        if st is None or not stat.S_ISDIR(st.st_mode) or is_opaque(path):
            continue
        if all(f"{rel}/{name}" in skip for name in os.listdir(path)):
            skip.add(rel)
    return skip


# -- changes ---------------------------------------------------------------------------------

def upper_changes(upper: str, image: Stack, ignore: set[str] | frozenset[str] = frozenset()
                  ) -> list[Change]:
    """The changes an overlay upper dir records over ``image``, sorted by path."""
    changes: list[Change] = []

    def walk(rel: str, directory: str, sources: list[str], opaque: bool) -> None:
        below = image.children(sources) if sources else {}
        names = sorted(os.listdir(directory))
        if opaque:  # nothing the image had here shows through: what upper lacks is deleted
            changes.extend(Change("D", _join(rel, n)) for n in sorted(set(below) - set(names))
                           if _join(rel, n) not in ignore)
        for name in names:
            path, here = os.path.join(directory, name), _join(rel, name)
            if here in ignore:
                continue
            st = os.lstat(path)
            node = below.get(name)
            if is_whiteout(st):
                if node is not None:
                    changes.append(Change("D", here))
                continue
            _refuse_unreadable(path)
            changes.append(Change("A" if node is None else "C", here))
            if stat.S_ISDIR(st.st_mode):
                walk(here, path, node.sources if node is not None else [],
                     opaque or is_opaque(path))

    walk("", upper, image.root(), False)
    return sorted(changes, key=lambda c: c.path)


def tree_changes(rootfs: str, image: Stack, ignore: set[str] | frozenset[str] = frozenset()
                 ) -> list[Change]:
    """The changes of a full copy (``vfs``) against ``image``, sorted by path."""
    changes: list[Change] = []

    def added(rel: str, path: str) -> None:
        for name in sorted(os.listdir(path)):
            here, child = _join(rel, name), os.path.join(path, name)
            if here in ignore:
                continue
            changes.append(Change("A", here))
            if stat.S_ISDIR(os.lstat(child).st_mode):
                added(here, child)

    def walk(rel: str, directory: str, sources: list[str]) -> bool:
        below = image.children(sources)
        names = set(os.listdir(directory))
        changed = False
        for name in sorted(names | set(below)):
            here, path = _join(rel, name), os.path.join(directory, name)
            if here in ignore:
                continue
            node = below.get(name)
            if name not in names:
                changes.append(Change("D", here))
                changed = True
                continue
            st = os.lstat(path)
            if node is None:
                changes.append(Change("A", here))
                if stat.S_ISDIR(st.st_mode):
                    added(here, path)
                changed = True
            elif stat.S_ISDIR(st.st_mode) and node.is_dir:
                at = len(changes)
                if walk(here, path, node.sources) or _differs(st, node.st, path, node.path):
                    changes.insert(at, Change("C", here))
                    changed = True
            elif _differs(st, node.st, path, node.path):
                changes.append(Change("C", here))
                if stat.S_ISDIR(st.st_mode):
                    added(here, path)  # a file became a directory: all in it is new
                changed = True
        return changed

    walk("", rootfs, image.root())
    return sorted(changes, key=lambda c: c.path)


def _differs(new: os.stat_result, old: os.stat_result, new_path: str, old_path: str) -> bool:
    """Docker's naive comparison (pkg/archive/changes.go), plus symlink targets."""
    if (stat.S_IFMT(new.st_mode) != stat.S_IFMT(old.st_mode) or new.st_mode != old.st_mode
            or new.st_uid != old.st_uid or new.st_gid != old.st_gid
            or new.st_rdev != old.st_rdev or not _same_time(new, old)):
        return True
    if stat.S_ISDIR(new.st_mode):
        return False  # a directory's size says nothing about its contents
    if new.st_size != old.st_size:
        return True
    if stat.S_ISLNK(new.st_mode) and os.readlink(new_path) != os.readlink(old_path):
        return True
    return _xattr(new_path, "security.capability") != _xattr(old_path, "security.capability")


def _same_time(a: os.stat_result, b: os.stat_result) -> bool:
    # A tar keeps whole seconds: a time without nanoseconds matches on seconds alone.
    if a.st_mtime_ns % 10**9 == 0 or b.st_mtime_ns % 10**9 == 0:
        return a.st_mtime_ns // 10**9 == b.st_mtime_ns // 10**9
    return a.st_mtime_ns == b.st_mtime_ns


def _refuse_unreadable(path: str) -> None:
    for attr in _REFUSED_XATTRS:
        if _xattr(path, attr) is not None:
            raise ImageError(f"{path} has {attr}: overlayfs's redirect_dir and metacopy "
                             "features are not supported (load the overlay module with "
                             "redirect_dir=off metacopy=off)")


# -- layer tars ------------------------------------------------------------------------------

class LayerWriter:
    """Writes tar entries (PAX) for files on disk, with xattrs, keeping hard links linked."""

    def __init__(self, out: BinaryIO) -> None:
        # closed by close(): the writer is the context the caller manages
        self.tar = tarfile.open(fileobj=out, mode="w|",  # noqa: SIM115
                                format=tarfile.PAX_FORMAT)
        self.links: dict[tuple[int, int], str] = {}
        self.count = 0

    def add(self, rel: str, path: str, st: os.stat_result | None = None, *,
            owner: tuple[int, int] | None = None, mode: int | None = None) -> None:
        """The entry ``rel`` in the tar, from the file at ``path`` (not followed); ``owner``
        and ``mode`` replace the file's own (a build's ``COPY --chown``/``--chmod``)."""
        st = st or os.lstat(path)
        info = tarfile.TarInfo(rel + "/" if stat.S_ISDIR(st.st_mode) else rel)
        info.mode = stat.S_IMODE(st.st_mode) if mode is None else mode
        info.uid, info.gid = (st.st_uid, st.st_gid) if owner is None else owner
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 10**9
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in self.links:
            info.type, info.linkname = tarfile.LNKTYPE, self.links[key]
            self._write(info)
            return
        if stat.S_ISREG(st.st_mode):
            info.type, info.size = tarfile.REGTYPE, st.st_size
        elif stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets: Docker leaves them out too
        info.pax_headers = {PAX_XATTR_PREFIX + attr: value.decode("utf-8", "surrogateescape")
                            for attr, value in _xattrs(path)}
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            self.links[key] = rel
        if info.type == tarfile.REGTYPE:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb") as f:
                info.size = os.fstat(fd).st_size  # the size of what we opened, not of the lstat
                self._write(info, _Exactly(f, info.size))
        else:
            self._write(info)

    def made(self, rel: str, data: bytes | None, mode: int, owner: tuple[int, int] = (0, 0),
             mtime: int = 0) -> None:
        """An entry that is on no disk: a directory (``data`` None) or a file of ``data``
        (a build's new directories, its heredoc files)."""
        import io

        info = tarfile.TarInfo(rel + "/" if data is None else rel)
        info.type = tarfile.DIRTYPE if data is None else tarfile.REGTYPE
        info.mode, (info.uid, info.gid), info.mtime = mode, owner, mtime
        info.uname = info.gname = ""
        if data is None:
            self._write(info)
        else:
            info.size = len(data)
            self._write(info, io.BytesIO(data))

    def whiteout(self, rel: str) -> None:
        """``dir/.wh.name``: the lower layers' ``dir/name`` is deleted."""
        parent, _, name = rel.rpartition("/")
        self._marker(_join(parent, WHITEOUT_PREFIX + name))

    def opaque(self, rel_dir: str) -> None:
        """``dir/.wh..wh..opq``: nothing the lower layers have in ``dir`` shows."""
        self._marker(_join(rel_dir, OPAQUE_MARKER))

    def _marker(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.REGTYPE, 0o600, 0
        self._write(info)

    def _write(self, info: tarfile.TarInfo, f: BinaryIO | _Exactly | None = None) -> None:
        self.tar.addfile(info, f)
        self.count += 1

    def close(self) -> None:
        self.tar.close()


class _Exactly:
    """``size`` bytes of ``f``, whatever happens to the file while we read it.

    A running container may shrink or grow a file as ``commit --pause=false`` (or ``export``)
    reads it; the tar header already promised ``size`` bytes. As GNU tar does, a file that
    shrank is padded with zeros and one that grew is cut at the promised size.
    """

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        data += b"\0" * (n - len(data))
        self.left -= n
        return data


def write_upper_layer(upper: str, out: BinaryIO, ignore: set[str] | frozenset[str] = frozenset()
                      ) -> int:
    """``commit`` under overlay: the upper dir as an OCI layer tar. Returns its entry count."""
    writer = LayerWriter(out)

    def walk(rel: str, directory: str) -> None:
        for name in sorted(os.listdir(directory)):
            here, path = _join(rel, name), os.path.join(directory, name)
            if here in ignore:
                continue
            st = os.lstat(path)
            if is_whiteout(st):
                writer.whiteout(here)
                continue
            _refuse_unreadable(path)
            writer.add(here, path, st)
            if stat.S_ISDIR(st.st_mode):
                if is_opaque(path):
                    writer.opaque(here)
                walk(here, path)

    walk("", upper)
    writer.close()
    return writer.count


def write_changes_layer(rootfs: str, changes: list[Change], out: BinaryIO) -> int:
    """``commit`` under vfs: the changed entries of the copy, deletions as whiteouts."""
    writer = LayerWriter(out)
    for change in changes:
        if change.kind == "D":
            writer.whiteout(change.path)
        else:
            writer.add(change.path, os.path.join(rootfs, change.path))
    writer.close()
    return writer.count


def write_tree(tree: Stack, out: BinaryIO) -> int:
    """``export``: every visible entry of ``tree`` (a container's layers, topmost first)."""
    writer = LayerWriter(out)
    for rel, node in tree.walk():
        writer.add(rel, node.path, node.st)
    writer.close()
    return writer.count


# -- helpers ---------------------------------------------------------------------------------

def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _xattr(path: str, attr: str) -> bytes | None:
    try:
        return os.getxattr(path, attr, follow_symlinks=False)
    except OSError:  # ENODATA (none), EOPNOTSUPP (no xattrs here), EPERM (not root)
        return None


def _xattrs(path: str) -> list[tuple[str, bytes]]:
    """The xattrs a layer keeps: not overlay's own, not SELinux labels (host-specific)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    found = []
    for attr in sorted(names):
        if attr.startswith(OVERLAY_XATTR_PREFIX) or attr == "security.selinux":
            continue
        value = _xattr(path, attr)
        if value is not None:
            found.append((attr, value))
    return found
