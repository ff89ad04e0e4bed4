"""Whiteouts, read back: a stack of unpacked layers seen as one tree, as overlayfs shows it.

A layer says "deleted" in one of two spellings (see :mod:`minidocker.layers`, which writes
them): the OCI one, a file ``.wh.NAME`` (and ``.wh..wh..opq`` for an opaque directory), and
overlayfs's, a character device 0/0 named ``NAME`` (and the xattr ``trusted.overlay.opaque=y``).
:class:`Stack` reads a stack of unpacked layers in either spelling back as one tree, without
mounting anything: ``diff`` compares a container against its image with it, the ``vfs`` driver
copies an image with it, and ``export`` writes a container's files from it.

:mod:`minidocker.layers` re-exports every name here. Notebooks: ``04_overlayfs``,
``05_images``. Man pages: getxattr(2), and the kernel's ``filesystems/overlayfs.rst``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# Other ".wh..wh." names are AUFS bookkeeping (hard link directories); Docker skips them too.
WHITEOUT_META_PREFIX = ".wh..wh."
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_FORMATS = ("overlay", "oci")  # a 0/0 device and an xattr, or .wh. files kept as is


def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs's whiteout: a character device numbered 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    """Does the directory ``path`` carry ``trusted.overlay.opaque=y``? (Only root can tell.)"""
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES):
            return False
        raise


class Node:
    """One visible entry of a :class:`Stack`: where it really is, and what it is."""

    __slots__ = ("name", "path", "st", "sources")

    def __init__(self, name: str, path: str, st: os.stat_result, sources: list[str]) -> None:
        self.name = name
        self.path = path  # the entry in the topmost layer that has it
        self.st = st  # its lstat
        self.sources = sources  # for a directory: the same directory in every layer it merges

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.path!r})"


class Stack:
    """Layer directories, topmost first, read as one tree the way overlayfs merges them.

    The rules are overlayfs's (and the image-spec's): a name in a higher layer hides the same
    name below, except that directories merge; a whiteout hides the name in every layer below
    it and is itself invisible; an opaque directory hides everything below it. ``whiteouts``
    says which form the layers use: ``"overlay"`` (0/0 devices, the opaque xattr), ``"oci"``
    (``.wh.NAME`` and ``.wh..wh..opq`` files, as the ``vfs`` driver keeps them) or None (a
    plain directory tree: nothing is special).

    Only real directories are ever descended into (``lstat``, never ``stat``): a symlink in a
    layer is an entry, not a path to follow.
    """

    def __init__(self, dirs: list[str] | list[Path], whiteouts: str | None = "overlay") -> None:
        if whiteouts not in (*WHITEOUT_FORMATS, None):
            raise ValueError(f"unknown whiteout format {whiteouts!r}")
        self.dirs = [str(d) for d in dirs]
        self.whiteouts = whiteouts

    def root(self) -> list[str]:
        """The sources of the root directory: every layer's root."""
        return list(self.dirs)

    def children(self, sources: list[str]) -> dict[str, Node]:
        """The visible entries of the directory made of ``sources`` (topmost first)."""
        oci, overlay = self.whiteouts == "oci", self.whiteouts == "overlay"
        found: dict[str, Node] = {}
        hidden: set[str] = set()  # whited out by a layer above
        sealed: set[str] = set()  # opaque directories: they merge nothing more from below
        for source in sources:
            try:
                names = os.listdir(source)
            except FileNotFoundError:
                continue
            whited: set[str] = set()  # this layer's whiteouts hide the layers below only
            for name in names:
                if oci and name.startswith(WHITEOUT_PREFIX):
                    if not name.startswith(WHITEOUT_META_PREFIX):
                        whited.add(name[len(WHITEOUT_PREFIX):])
                    continue
                if name in hidden:
                    continue
                path = os.path.join(source, name)
                st = os.lstat(path)
                if overlay and is_whiteout(st):
                    whited.add(name)
                    continue
                node = found.get(name)
                is_dir = stat.S_ISDIR(st.st_mode)
                if node is None:
                    found[name] = Node(name, path, st, [path] if is_dir else [])
                elif node.is_dir and is_dir and name not in sealed:
                    node.sources.append(path)  # directories merge
                else:
                    continue  # hidden by a non-directory above, or under an opaque directory
                if is_dir and self._seals(path):
                    sealed.add(name)
            hidden |= whited
            if (oci and OPAQUE_MARKER in names) or (overlay and is_opaque(source)):
                break  # an opaque directory hides the same directory in every layer below
        return found

    def _seals(self, path: str) -> bool:
        """Is this directory opaque, in this stack's form?"""
        if self.whiteouts == "overlay":
            return is_opaque(path)
        return self.whiteouts == "oci" and os.path.lexists(os.path.join(path, OPAQUE_MARKER))

    def lookup(self, rel: str) -> Node | None:
        """The visible entry at ``rel`` (``"etc/passwd"``), or None."""
        sources = self.root()
        node = None
        for part in [p for p in rel.split("/") if p]:
            node = self.children(sources).get(part)
            if node is None:
                return None
            sources = node.sources  # empty for a non-directory: nothing below it is visible
        return node

    def walk(self, rel: str = "", sources: list[str] | None = None
             ) -> Iterator[tuple[str, Node]]:
        """Every visible entry, as ``(relative path, node)``, parents first, names sorted."""
        entries = self.children(self.root() if sources is None else sources)
        for name in sorted(entries):
            node = entries[name]
            path = f"{rel}/{name}" if rel else name
            yield path, node
            if node.is_dir:
                yield from self.walk(path, node.sources)
