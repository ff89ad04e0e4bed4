"""Layers: turning a layer tar into a directory that overlayfs can stack, without escaping it.

An image's filesystem is a stack of *layers*. Each layer is a tar archive of the files that
changed relative to the layer below (the OCI image-spec calls it a "filesystem changeset", see
``layer.md``): added or modified files are stored whole, and deleted files are *whiteouts*.

- ``dir/.wh.NAME`` says "``dir/NAME`` from a lower layer is deleted";
- ``dir/.wh..wh..opq`` says "``dir`` is *opaque*: hide everything lower layers had in it".

overlayfs (see the kernel's ``Documentation/filesystems/overlayfs.rst``) spells the same two facts
differently, so we convert while unpacking: a whiteout becomes a character device 0/0 named
``NAME``, and an opaque directory gets the xattr ``trusted.overlay.opaque=y``. Each layer is
unpacked into its own directory and used unchanged as an overlay ``lowerdir``; layers are shared
between images, keyed by their *chain ID* (below). Under the ``vfs`` storage driver
(:mod:`minidocker.graphdriver`) whiteouts stay in the OCI form (``whiteouts="oci"``): an overlay
mount cannot hold a 0/0 device, and vfs applies them itself when it copies.

A whiteout applies to the layers *below* only (image-spec: "files that are present in the same
layer as a whiteout file can only be hidden by whiteout files in subsequent layers"). So a
whiteout for a name this layer also has keeps this layer's entry; for a directory it hides the
lower layers' one by making this one opaque. The order of entries in the tar does not matter.

:class:`Stack` (in :mod:`minidocker.whiteouts`, re-exported here) reads a stack of unpacked
layers back as one tree, as overlayfs would show it, without mounting anything.

**Unpacking is the dangerous part.** A layer comes from someone else, and we unpack it as root.
A hostile tar can try ``../../etc/cron.d/x``, an absolute ``/etc/passwd``, or a symlink
``link -> /etc`` followed by an entry ``link/passwd`` that writes *through* the link onto the
host (Docker's CVE-2014-6407 and CVE-2014-9356 were exactly these). So:

- every name is split into components, and ``..`` or a leading ``/`` is refused;
- parent directories are opened one component at a time with ``O_NOFOLLOW`` relative to the
  previous one (``openat(2)``), and every write is relative to the final directory's fd, so a
  symlink in the path is refused rather than followed;
- an entry that already exists is removed and recreated, never opened and written into.

A symlink *entry* may point anywhere (``/bin/sh -> busybox`` is normal): it is only ever
resolved later, inside the container, where ``/`` is the container's root.

**Extended attributes** come as ``SCHILY.xattr.*`` PAX records. A store on a filesystem that
cannot hold some of them (tmpfs has ``user.*`` only from Linux 6.6, ramfs none) keeps the file
and drops a ``user.*`` or ``trusted.*`` one with one warning per layer; a ``security.*`` or
``system.*`` one (a file capability, an LSM label, an ACL) fails the unpack, since the file
would do something else without it.

**Digests.** Content is addressed by ``sha256:<hex>``; a layer's *diff ID* and *chain ID* are
computed by :mod:`minidocker.digests` (re-exported here), as its bytes go by.

Notebooks: ``04_overlayfs``, ``05_images``. Man pages: openat(2), mknodat(2), linkat(2),
fchownat(2), utimensat(2), setxattr(2).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from minidocker.digests import COMPRESSIONS as COMPRESSIONS
from minidocker.digests import HashingReader as HashingReader
from minidocker.digests import ReadAhead as ReadAhead
from minidocker.digests import chain_id as chain_id
from minidocker.digests import chain_ids as chain_ids
from minidocker.digests import compression as compression
from minidocker.digests import copy_hashed as copy_hashed
from minidocker.digests import decompressed as decompressed
from minidocker.digests import sha256_digest as sha256_digest
from minidocker.errors import ImageError, UnsafeArchive
from minidocker.whiteouts import OPAQUE_MARKER as OPAQUE_MARKER
from minidocker.whiteouts import OVERLAY_OPAQUE_XATTR as OVERLAY_OPAQUE_XATTR
from minidocker.whiteouts import WHITEOUT_FORMATS as WHITEOUT_FORMATS
from minidocker.whiteouts import WHITEOUT_META_PREFIX as WHITEOUT_META_PREFIX
from minidocker.whiteouts import WHITEOUT_PREFIX as WHITEOUT_PREFIX
from minidocker.whiteouts import Node as Node
from minidocker.whiteouts import Stack as Stack
from minidocker.whiteouts import is_opaque as is_opaque
from minidocker.whiteouts import is_whiteout as is_whiteout

# Not `from typing import TYPE_CHECKING`: importing typing alone costs ~2 ms of the start-up
# budget. Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    # Only for the type checker. At run time tarfile, hashlib (and typing itself) are imported
    # inside the functions that need them: they cost milliseconds, and ``minidocker run`` of an
    # image already unpacked needs none of them.
    import tarfile
    from collections.abc import Callable
    from typing import Protocol

    class Readable(Protocol):
        """Anything with ``read(n) -> bytes``: a file, stdin, a gzip stream, a hasher."""

        def read(self, n: int = -1, /) -> bytes: ...

OVERLAY_XATTR_PREFIX = "trusted.overlay."
PAX_XATTR_PREFIX = "SCHILY.xattr."
# Xattrs only programs read: a filesystem that cannot hold them (tmpfs before Linux 6.6 has no
# user.*) loses them with a warning. The kernel enforces security.* (file capabilities, LSM
# labels) and system.* (POSIX ACLs): dropping one would change what a file lets a process do,
# so a store that cannot hold them fails the unpack.
DROPPABLE_XATTR_PREFIXES = ("user.", "trusted.")

_CHUNK = 1 << 20
# O_PATH: we only need the directory as an anchor for *at() calls, not its contents.
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# -- unpacking --------------------------------------------------------------------------------

def unpack_atomically(tar_stream: Readable, dest: Path, tmp_root: Path, *, label: str = "layer",
                      verify: Callable[[], None] | None = None,
                      whiteouts: str = "overlay",
                      warn: Callable[[str], None] | None = None) -> None:
    """Unpack into a fresh directory under ``tmp_root`` and rename it to ``dest`` when complete.

    A half-unpacked layer is never visible under its final name. ``verify`` runs after the last
    byte is read and before the rename (it checks digests); whatever it raises aborts. On any
    error the temporary directory is removed. If another process finished the same layer first,
    ours is discarded: the content is the same, since the name is a digest.
    """
    stage = unpack_staged(tar_stream, tmp_root, label=label, verify=verify, whiteouts=whiteouts,
                          warn=warn)
    publish_staged(stage, dest)


def unpack_staged(tar_stream: Readable, tmp_root: Path, *, label: str = "layer",
                  verify: Callable[[], None] | None = None,
                  whiteouts: str = "overlay",
                  warn: Callable[[str], None] | None = None) -> Path:
    """The first half of :func:`unpack_atomically`: a complete, verified layer in ``tmp_root``.

    The caller publishes it with :func:`publish_staged` (or deletes it): ``load`` unpacks every
    layer of an archive first, so that a bad one leaves the store as it was.
    """
    import shutil
    import tempfile

    stage = Path(tempfile.mkdtemp(prefix=f"layer-{os.getpid()}-", dir=tmp_root))
    try:
        # mkdtemp makes 0700; the layer root becomes the container's "/", which all users read.
        os.chmod(stage, 0o755)
        unpack(tar_stream, stage, label=label, whiteouts=whiteouts, warn=warn)
        if verify is not None:
            verify()
    except BaseException:
        shutil.rmtree(stage)
        raise
    return stage


def publish_staged(stage: Path, dest: Path) -> None:
    """Rename a staged layer to ``dest``; if one is already there (same digest), drop ours."""
    import shutil

    placed = False
    try:
        placed = _rename_dir(stage, dest)
    finally:
        if not placed:
            shutil.rmtree(stage)


def _rename_dir(src: Path, dest: Path) -> bool:
    try:
        os.rename(src, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def unpack(tar_stream: Readable, dest: Path, *, label: str = "layer",
           whiteouts: str = "overlay", warn: Callable[[str], None] | None = None) -> None:
    """Unpack an uncompressed layer tar, read sequentially, into the directory ``dest``.

    Raises :class:`UnsafeArchive` for an entry that would land outside ``dest``, and
    :class:`ImageError` for a truncated or malformed archive. ``label`` names the archive in
    messages. The stream is read to its end, so a hashing wrapper sees every byte.
    ``whiteouts`` is ``"overlay"`` (convert) or ``"oci"`` (keep ``.wh.`` files as they are).

    ``user.*`` and ``trusted.*`` xattrs the filesystem under ``dest`` cannot hold are dropped,
    and ``warn`` (default: a line on stderr) is told once, naming the first and counting the
    rest; a ``security.*`` or ``system.*`` one is an :class:`ImageError`.
    """
    import tarfile
    from typing import IO, cast

    if whiteouts not in WHITEOUT_FORMATS:
        raise ValueError(f"unknown whiteout format {whiteouts!r}")
    root_fd = os.open(dest, _DIR_FLAGS)
    dirs = _Dirs(root_fd)
    # Directory mtimes are set last: creating anything inside a directory changes its mtime.
    dir_times: dict[tuple[str, ...], int] = {}
    dropped = _Dropped(dest, label)
    try:
        # Stream mode ("r|") only ever calls read(): no seeking back into a pipe or a hasher.
        with tarfile.open(fileobj=cast(IO[bytes], tar_stream), mode="r|") as tar:
            for member in tar:
                _unpack_member(tar, member, dirs, dir_times, label, whiteouts, dropped)
        while tar_stream.read(_CHUNK):
            pass
        for parts, mtime_ns in dir_times.items():
            _set_dir_mtime(root_fd, parts, mtime_ns, label)
    except (tarfile.TarError, EOFError) as exc:
        raise ImageError(f"invalid tar archive {label}: {exc}") from exc
    finally:
        dirs.forget()
        os.close(root_fd)
    if dropped.items:
        dropped.report(warn)


class _Dropped:
    """The xattrs of a layer that the filesystem under ``dest`` cannot hold."""

    __slots__ = ("dest", "label", "items")

    def __init__(self, dest: Path, label: str) -> None:
        self.dest, self.label = dest, label
        self.items: list[tuple[str, str]] = []  # (xattr, tar entry)

    def add(self, attr: str, entry: str, exc: OSError) -> None:
        if not attr.startswith(DROPPABLE_XATTR_PREFIXES):
            raise ImageError(f"cannot unpack {self.label}: the filesystem under {self.dest} "
                             f"does not support the xattr {attr} that '{entry}' carries "
                             "(without it the file would behave differently)") from exc
        self.items.append((attr, entry))

    def report(self, warn: Callable[[str], None] | None) -> None:
        """One line per layer, not one per file: a layer can carry thousands of them."""
        kinds = " and ".join(sorted({a.split(".", 1)[0] + ".*" for a, _ in self.items}))
        attr, entry = self.items[0]
        more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
        text = (f"{self.label}: the filesystem under {self.dest} does not support {kinds} "
                f"xattrs: dropped {attr} on /{'/'.join(split_name(entry, entry, self.label))}"
                f"{more}")
        if warn is None:
            import sys

            print(f"minidocker: warning: {text}", file=sys.stderr)
        else:
            warn(text)


class _Dirs:
    """Opens an entry's parent directory, keeping the last path's directories open.

    A tar lists a directory's entries one after another, and siblings share all but the last
    component: walking each parent path from the layer's root (one ``openat`` per component)
    is mostly wasted. So the directories of the last path stay open, and a new path opens only
    the components after the part it shares with it. They are all forgotten whenever a
    directory is removed, since one of them might be that directory or lie under it. (Even a
    stale descriptor could not escape: it names an inode, and a removed directory takes no
    new entries.)
    """

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.parts: list[str] = []
        self.fds: list[int] = []  # fds[i] is the directory parts[:i + 1]

    def open(self, parts: list[str], entry: str, label: str) -> int:
        """A new descriptor (the caller closes it) for ``root/parts...``, as :func:`_open_dir`."""
        keep = 0
        while keep < min(len(parts), len(self.parts)) and parts[keep] == self.parts[keep]:
            keep += 1
        for fd in self.fds[keep:]:
            os.close(fd)
        del self.fds[keep:]
        self.parts = list(parts[:keep])
        for i in range(keep, len(parts)):
            fd = _open_component(self.fds[-1] if self.fds else self.root_fd, parts, i, entry,
                                 label)
            self.fds.append(fd)
            self.parts.append(parts[i])
        return os.dup(self.fds[-1] if self.fds else self.root_fd)

    def forget(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.parts, self.fds = [], []


def _forget(dir_times: dict[tuple[str, ...], int], parts: list[str]) -> None:
    """Drop pending mtimes of a directory that was replaced, and of everything under it."""
    for key in [k for k in dir_times if k[:len(parts)] == tuple(parts)]:
        del dir_times[key]


def _set_dir_mtime(root_fd: int, parts: tuple[str, ...], mtime_ns: int, label: str) -> None:
    *parents, name = parts or (".",)
    parent_fd = _open_dir(root_fd, parents, "/".join(parts), label, create=False)
    try:
        os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=parent_fd, follow_symlinks=False)
    finally:
        os.close(parent_fd)


def split_name(name: str, entry: str, label: str) -> list[str]:
    """``./usr/bin/`` -> ``["usr", "bin"]``; refuse absolute names and ``..`` components."""
    what = "path" if name == entry else f"hard link target '{name}'"
    if name.startswith("/"):
        raise UnsafeArchive(f"unsafe tar entry '{entry}' in {label}: {what} is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"unsafe tar entry '{entry}' in {label}: {what} goes up with '..'")
    return parts


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dirs: _Dirs,
                   dir_times: dict[tuple[str, ...], int], label: str,
                   whiteouts: str, dropped: _Dropped) -> None:
    root_fd = dirs.root_fd
    parts = split_name(member.name, member.name, label)
    if any(p.startswith(WHITEOUT_PREFIX) for p in parts[:-1]):
        raise ImageError(f"invalid tar entry '{member.name}' in {label}: a whiteout name is "
                         "used as a directory")
    mtime_ns = round(member.mtime * 1_000_000_000)
    if not parts:
        # "./": the layer's own root directory; only its metadata can change.
        if not member.isdir():
            raise UnsafeArchive(f"unsafe tar entry '{member.name}' in {label}: the layer root "
                                "must be a directory")
        _set_metadata(root_fd, ".", member, dropped)
        dir_times[()] = mtime_ns
        return
    *parents, name = parts
    if name.startswith(WHITEOUT_PREFIX):
        if whiteouts == "oci":
            _keep_oci_whiteout(member, dirs, parents, name, label)
        else:
            _unpack_whiteout(member, dirs, parents, name, label)
        return
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()
            or member.ischr() or member.isblk() or member.isfifo()):
        raise ImageError(f"invalid tar entry '{member.name}' in {label}: unsupported type "
                         f"{member.type!r}")
    parent_fd = dirs.open(parents, member.name, label)
    try:
        existing = _lstat(parent_fd, name)
        # Replace whatever is there, never write into it: it may be a symlink to anywhere.
        # Only a directory over a directory merges, as in Docker.
        merge = existing is not None and member.isdir() and stat.S_ISDIR(existing.st_mode)
        # A directory over this layer's own whiteout: the lower layers' one stays hidden.
        opaque = member.isdir() and existing is not None and is_whiteout(existing)
        if existing is not None and not merge:
            if stat.S_ISDIR(existing.st_mode):
                dirs.forget()
            _remove(parent_fd, name, existing)
            _forget(dir_times, parts)
        if member.islnk():
            _hard_link(member, root_fd, parent_fd, name, label)
            return  # a hard link shares its target's inode, and so its metadata
        _create(tar, member, parent_fd, name, merge=merge)
        _set_metadata(parent_fd, name, member, dropped)
        if opaque:
            _set_opaque(parent_fd, name)
        if member.isdir():
            dir_times[tuple(parts)] = mtime_ns
        else:
            os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=parent_fd, follow_symlinks=False)
    finally:
        os.close(parent_fd)


def _create(tar: tarfile.TarFile, member: tarfile.TarInfo, parent_fd: int, name: str,
            merge: bool) -> None:
    """Create the entry with owner-only permissions; :func:`_set_metadata` sets the real ones."""
    if member.isreg():
        import shutil

        # O_EXCL|O_NOFOLLOW: the name was just cleared; if anything appeared there, fail.
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent_fd)
        with open(fd, "wb", buffering=_CHUNK) as out:  # a size given: no isatty() ioctl
            src = tar.extractfile(member)
            if src is not None:  # None only for non-regular members
                shutil.copyfileobj(src, out, _CHUNK)
    elif member.isdir():
        if not merge:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=parent_fd)
    elif member.ischr() or member.isblk():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                 dir_fd=parent_fd)
    elif member.isfifo():
        os.mkfifo(name, 0o600, dir_fd=parent_fd)


def _set_metadata(parent_fd: int, name: str, member: tarfile.TarInfo,
                  dropped: _Dropped) -> None:
    # Order matters: chown(2) clears the setuid/setgid bits and the security.capability xattr,
    # so owner first, then mode, then xattrs.
    if os.geteuid() == 0:
        # Unprivileged, we keep the files as our own, as GNU tar does (--no-same-owner).
        os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
    if not member.issym():
        # Following is safe here: the final component was just created and is not a symlink
        # (Linux has no lchmod, and symlink permissions mean nothing).
        os.chmod(name, member.mode & 0o7777, dir_fd=parent_fd)
    for key, value in member.pax_headers.items():
        if not key.startswith(PAX_XATTR_PREFIX):
            continue
        attr = key[len(PAX_XATTR_PREFIX):]
        if attr.startswith(OVERLAY_XATTR_PREFIX):
            # Overlay metadata is ours to write (from whiteouts); a layer setting it directly
            # could forge redirects or opaque directories.
            continue
        try:
            _set_xattr(parent_fd, name, attr, value.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:  # ENOTSUP is the same number on Linux
                raise
            dropped.add(attr, member.name, exc)


def _set_xattr(parent_fd: int, name: str, attr: str, value: bytes) -> None:
    # There is no setxattrat(2) before Linux 6.13: go through the directory fd's /proc link,
    # with follow_symlinks=False (lsetxattr) for the last component.
    path = f"/proc/self/fd/{parent_fd}/{name}"
    try:
        os.setxattr(path, attr, value, follow_symlinks=False)
    except OSError as exc:
        exc.add_note(f"setxattr: {attr} on {name}")
        raise


def _unpack_whiteout(member: tarfile.TarInfo, dirs: _Dirs, parents: list[str], name: str,
                     label: str) -> None:
    """``.wh.NAME`` -> a 0/0 device ``NAME``; ``.wh..wh..opq`` -> the opaque xattr."""
    parent_fd = dirs.open(parents, member.name, label)
    try:
        if name == OPAQUE_MARKER:
            os.setxattr(f"/proc/self/fd/{parent_fd}", OVERLAY_OPAQUE_XATTR, b"y")
            return
        if name.startswith(WHITEOUT_META_PREFIX):
            return
        hidden = _whiteout_target(member, name, label)
        existing = _lstat(parent_fd, hidden)
        if existing is not None:
            # This layer has the name too: it stays, and hides the lower layers' by itself
            # (a non-directory always does; a directory once it is opaque).
            if stat.S_ISDIR(existing.st_mode):
                _set_opaque(parent_fd, hidden)
            return
        # overlayfs's whiteout: a character device with device number 0/0.
        os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent_fd)
        if os.geteuid() == 0:
            os.chown(hidden, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
    finally:
        os.close(parent_fd)


def _keep_oci_whiteout(member: tarfile.TarInfo, dirs: _Dirs, parents: list[str], name: str,
                       label: str) -> None:
    """``whiteouts="oci"``: keep ``.wh.NAME`` as an empty file; :class:`Stack` reads it."""
    if name != OPAQUE_MARKER and name.startswith(WHITEOUT_META_PREFIX):
        return
    if name != OPAQUE_MARKER:
        _whiteout_target(member, name, label)
    parent_fd = dirs.open(parents, member.name, label)
    try:
        existing = _lstat(parent_fd, name)
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                dirs.forget()
            _remove(parent_fd, name, existing)
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=parent_fd))
    finally:
        os.close(parent_fd)


def _whiteout_target(member: tarfile.TarInfo, name: str, label: str) -> str:
    hidden = name[len(WHITEOUT_PREFIX):]
    if hidden in ("", ".", ".."):
        raise UnsafeArchive(f"unsafe tar entry '{member.name}' in {label}: a whiteout "
                            "must name a file")
    return hidden


def _set_opaque(parent_fd: int, name: str) -> None:
    # Not _set_xattr: a filesystem without trusted xattrs must fail here, loudly, or the
    # lower layers' files would reappear in the directory.
    os.setxattr(f"/proc/self/fd/{parent_fd}/{name}", OVERLAY_OPAQUE_XATTR, b"y",
                follow_symlinks=False)


def _hard_link(member: tarfile.TarInfo, root_fd: int, parent_fd: int, name: str,
               label: str) -> None:
    target = split_name(member.linkname, member.name, label)
    if not target:
        raise UnsafeArchive(f"unsafe tar entry '{member.name}' in {label}: hard link to the "
                            "layer root")
    *target_parents, target_name = target
    # The target's parents are checked like any path: a hard link through "link -> /etc" would
    # otherwise put the host's /etc/shadow inode inside the layer.
    target_fd = _open_dir(root_fd, target_parents, member.name, label, create=False)
    try:
        # follow_symlinks=False: link the target itself even if it is a symlink (linkat(2)
        # without AT_SYMLINK_FOLLOW), never the file it points to.
        os.link(target_name, name, src_dir_fd=target_fd, dst_dir_fd=parent_fd,
                follow_symlinks=False)
    except FileNotFoundError as exc:
        raise ImageError(f"invalid tar entry '{member.name}' in {label}: hard link target "
                         f"'{member.linkname}' is not in the layer") from exc
    finally:
        os.close(target_fd)


def _open_dir(root_fd: int, parts: list[str], entry: str, label: str,
              create: bool = True) -> int:
    """Open ``root/parts...`` one component at a time, never following a symlink.

    Missing directories are created (0755, as Docker does), since tars may omit them.
    """
    fd = os.dup(root_fd)
    try:
        for i in range(len(parts)):
            next_fd = _open_component(fd, parts, i, entry, label, create)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_component(fd: int, parts: list[str], i: int, entry: str, label: str,
                    create: bool = True) -> int:
    """Open ``parts[i]`` in the directory ``fd`` (which is ``parts[:i]``), as :func:`_open_dir`."""
    part = parts[i]
    try:
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise ImageError(f"invalid tar entry '{entry}' in {label}: "
                             f"'{'/'.join(parts[:i + 1])}' is not in the layer") from None
        os.mkdir(part, 0o755, dir_fd=fd)
        os.chmod(part, 0o755, dir_fd=fd)  # whatever the umask
        return os.open(part, _DIR_FLAGS, dir_fd=fd)
    except NotADirectoryError:
        # With O_PATH|O_NOFOLLOW, a symlink opens as itself and fails O_DIRECTORY.
        what = "a symlink" if _is_symlink(fd, part) else "not a directory"
        raise UnsafeArchive(f"unsafe tar entry '{entry}' in {label}: "
                            f"'{'/'.join(parts[:i + 1])}' is {what}") from None


def _lstat(parent_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_symlink(parent_fd: int, name: str) -> bool:
    st = _lstat(parent_fd, name)
    return st is not None and stat.S_ISLNK(st.st_mode)


def _remove(parent_fd: int, name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        import shutil

        shutil.rmtree(name, dir_fd=parent_fd)  # fd-based: does not follow symlinks inside
    else:
        os.unlink(name, dir_fd=parent_fd)
