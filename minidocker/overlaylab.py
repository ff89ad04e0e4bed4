"""The overlay bench for notebook 04: overlayfs experiments, each in a child process.

A notebook's kernel must never mount anything (see :mod:`minidocker.lab`): it runs threads,
and a mount would change every cell after it. So :meth:`OverlayLab.run` starts a fresh Python
child, which

1. unshares a mount namespace of its own and makes its mounts private
   (:func:`minidocker.namespaces.unshare`, :func:`minidocker.rootfs.make_mounts_private`);
2. mounts the lab's lower dirs and upper dir at ``merged`` with
   :func:`minidocker.overlay.mount_overlay`, the very call ``minidocker run`` makes;
3. runs the cell's snippet there, with ``merged``, ``upper``, ``work`` and ``lowers`` (paths)
   and an empty dict ``result`` in scope, and sends ``result`` back as JSON, together with
   the trace of the mount.

When the child exits, its mount namespace and the overlay in it are gone. What overlayfs wrote
stays in the upper dir, on the host's disk, where the notebook reads it directly
(:meth:`OverlayLab.upper_entries`): copied-up files, whiteouts, opaque directories.

Everything lives in one temporary directory (``mdlab-ovl-*``), deleted by :meth:`close`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import weakref

from minidocker import layers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PREFIX = "mdlab-ovl-"

_CHILD = r"""
import json, os, sys, time
from minidocker import namespaces, overlay, rootfs, trace
args = json.loads(sys.stdin.read())
events = []
trace.set_sink(events.append)
namespaces.unshare(["mnt"])
rootfs.make_mounts_private()
if args["upper"]:
    overlay.mount_overlay(args["lowers"], args["upper"], args["work"], args["merged"])
else:
    from minidocker import syscalls
    syscalls.mount("overlay", args["merged"], "overlay", syscalls.MS.RDONLY,
                   "lowerdir=" + ":".join(args["lowers"]))
trace.set_sink(None)
scope = {"merged": args["merged"], "upper": args["upper"], "work": args["work"],
         "lowers": args["lowers"], "result": {}, "os": os, "time": time}
exec(compile(args["code"], "<cell>", "exec"), scope)
print(json.dumps({"result": scope["result"], "trace": events}))
"""


class OverlayLab:
    """Lower dirs, an upper dir, a work dir and a mount point, in one temporary directory."""

    def __init__(self) -> None:
        self.root = tempfile.mkdtemp(prefix=PREFIX)
        self.upper = os.path.join(self.root, "upper")
        self.work = os.path.join(self.root, "work")
        self.merged = os.path.join(self.root, "merged")
        for path in (self.upper, self.work, self.merged):
            os.mkdir(path)
        self.lowers: list[str] = []  # topmost first, as overlay's lowerdir
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.root, True)

    def add_lower(self, name: str, files: dict[str, Any]) -> str:
        """A new lower dir on top of the others. ``files`` maps a path to its content: bytes
        (a file), None (a directory), ``("symlink", target)`` or ``("hardlink", path)``."""
        path = os.path.join(self.root, name)
        os.mkdir(path)
        for rel, content in files.items():
            target = os.path.join(path, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if content is None:
                os.makedirs(target, exist_ok=True)
            elif isinstance(content, tuple) and content[0] == "symlink":
                os.symlink(content[1], target)
            elif isinstance(content, tuple) and content[0] == "hardlink":
                os.link(os.path.join(path, content[1]), target)
            else:
                with open(target, "wb") as f:
                    f.write(content)
        self.lowers.insert(0, path)
        return path

    def run(self, code: str, *, writable: bool = True, timeout: float = 120) -> dict[str, Any]:
        """Mount the overlay in a child's own mount namespace and run ``code`` there.

        Returns ``{"result": ..., "trace": [...]}``. ``writable=False`` mounts the lower dirs
        alone, read-only (no upper dir: an overlay of images only).
        """
        args = {"lowers": self.lowers, "upper": self.upper if writable else None,
                "work": self.work, "merged": self.merged, "code": code}
        done = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(args),
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"the overlay child failed ({done.returncode}): "
                               f"{done.stderr.strip().splitlines()[-1:]}")
        return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return,unused-ignore]

    def upper_entries(self) -> list[tuple[str, str]]:
        """What overlayfs left in the upper dir, read from the host: ``(path, what)`` pairs."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.upper):
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, self.upper)
                found.append((rel, describe(path)))
        return sorted(found)

    def close(self) -> None:
        """Delete everything. Nothing is mounted on the host's side: nothing to unmount."""
        self._finalizer()

    def __enter__(self) -> OverlayLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe(path: str) -> str:
    """``whiteout (char 0/0)``, ``opaque directory``, ``file, 6 bytes``...: one entry in words."""
    st = os.lstat(path)
    if layers.is_whiteout(st):
        return "whiteout (character device 0/0)"
    if stat.S_ISDIR(st.st_mode):
        return "directory, opaque (trusted.overlay.opaque=y)" if layers.is_opaque(path) \
            else "directory"
    if stat.S_ISLNK(st.st_mode):
        return f"symlink -> {os.readlink(path)}"
    if stat.S_ISREG(st.st_mode):
        return f"file, {st.st_size} bytes, {st.st_nlink} link(s)"
    return stat.filemode(st.st_mode)


def overlay_xattrs(path: str) -> dict[str, bytes]:
    """The ``trusted.overlay.*`` xattrs overlayfs keeps on an upper entry (root can read them)."""
    found = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    for name in names:
        if name.startswith(layers.OVERLAY_XATTR_PREFIX):
            found[name] = os.getxattr(path, name, follow_symlinks=False)
    return found
