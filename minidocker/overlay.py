"""overlayfs: the union filesystem under every container.

An image is a stack of read-only layers; a container adds one writable layer on top. overlayfs
(in the kernel since 3.18; the article's AUFS never was merged, and Docker moved to overlay2)
presents them as a single tree:

- ``lowerdir=A:B:C``  the image layers, read-only. **The leftmost is the top**: a file in A hides
  the same path in B and C.
- ``upperdir``        the container's own layer. Every change lands here.
- ``workdir``         scratch space on the upper's filesystem, used to make copy-up atomic.
- the mount point     ("merged") what the container sees.

Writing to a file that exists only in a lower layer first *copies it up* whole into upperdir.
Deleting one leaves a *whiteout* in upperdir (a 0/0 character device) that hides it. Replacing a
directory leaves an *opaque* directory (xattr ``trusted.overlay.opaque=y``) whose lower contents
are hidden. ``minidocker diff`` and ``commit`` read exactly these traces.

**The one-page limit.** mount(2) copies at most one page (4096 bytes) of option text, and a
layer's path in the store is ~120 bytes (``/var/lib/minidocker/layers/`` + a 64-digit chain ID):
an image of ~30 layers would not fit. Docker's overlay2 driver keeps a directory ``l/`` of short
symlinks to its layers and mounts with relative paths after a ``chdir``. We use a trick that
needs no state on disk: when the real paths do not fit, :func:`mount_overlay` opens each lower
directory (``O_PATH``) and names it ``/proc/self/fd/N``, a magic link the kernel resolves to
the open directory when it parses the options. That is ~18 bytes a layer, so Docker's limit of
128 layers fits with room to spare; the descriptors are closed once the mount exists (overlayfs
holds its own references). The new mount API (fsopen(2), fsconfig(2)) would avoid the page
limit too, but adding lower layers one at a time (``lowerdir+``) needs Linux 6.8, newer than
Debian 12's kernel, and a single ``lowerdir`` string there is capped at 256 bytes.

The container's overlay is mounted inside its own mount namespace, so it disappears with the
namespace when the container's last process exits: a crash can never leave it mounted on the
host.

Notebook: ``04_overlayfs``. Docs: Documentation/filesystems/overlayfs.rst in the kernel tree.
Man pages: mount(2), open(2) (``O_PATH``), proc(5) (``/proc/[pid]/fd``).
"""

from __future__ import annotations

import os

from minidocker import syscalls
from minidocker.errors import RootfsError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def options(lowers: Sequence[str], upper: str, work: str) -> str:
    """The mount data string, lowers given topmost first."""
    for path in (*lowers, upper, work):
        # The option parser splits on ',' and ':' (with '\\' escapes we don't emit).
        if "," in path or ":" in path:
            raise RootfsError(f"overlay path contains ',' or ':': {path}")
    return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"


# overlayfs stacks at most this many lower layers (OVL_MAX_STACK in fs/overlayfs/params.h).
MAX_LOWERS = 500


def mount_overlay(lowers: Sequence[str], upper: str, work: str, target: str) -> None:
    """Mount ``lowers`` (topmost first) under the writable ``upper`` at ``target``.

    Paths too long for one page of options are passed as ``/proc/self/fd/N`` (see above).
    """
    if not lowers:
        raise RootfsError("an overlay needs at least one lower layer")
    if len(lowers) > MAX_LOWERS:
        raise RootfsError(f"an overlay stacks at most {MAX_LOWERS} lower layers, not "
                          f"{len(lowers)}")
    page = os.sysconf("SC_PAGE_SIZE")
    data = options(lowers, upper, work)
    if len(data) < page:
        syscalls.mount("overlay", target, "overlay", syscalls.MS.NODEV, data)
        return
    fds: list[int] = []
    try:
        for lower in lowers:
            fds.append(syscalls.open_fd(lower, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        data = options([f"/proc/self/fd/{fd}" for fd in fds], upper, work)
        if len(data) >= page:
            raise RootfsError(f"overlay options are {len(data)} bytes even with short lower "
                              f"paths ({len(lowers)} layers): more than one page")
        syscalls.mount("overlay", target, "overlay", syscalls.MS.NODEV, data)
    finally:
        for fd in fds:
            os.close(fd)


def ensure_loaded(filesystems: str = "/proc/filesystems") -> bool:
    """Is overlayfs in this kernel, loading its module if it is one and is not loaded yet?

    Until something mounts an overlay, a modular overlayfs (Debian's) is absent from
    ``/proc/filesystems``, and a state root first used then would be fixed to the vfs
    driver for good. Docker runs ``modprobe overlay`` before it decides; here ``fsopen(2)``
    does the same without a command: asking for a filesystem type the kernel does not know
    makes it call ``request_module("fs-overlay")`` (the usermode helper, modprobe), as the
    first ``mount -t overlay`` would.
    """
    def listed() -> bool:
        with open(filesystems) as f:
            return any(line.split()[-1:] == ["overlay"] for line in f)

    if listed():
        return True
    try:
        os.close(syscalls.fsopen("overlay"))
    except OSError:
        return False  # ENODEV: no such filesystem, built in or as a module
    return listed()
