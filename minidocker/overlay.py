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

The container's overlay is mounted inside its own mount namespace, so it disappears with the
namespace when the container's last process exits: a crash can never leave it mounted on the
host.

Notebook: ``04_overlayfs``. Docs: Documentation/filesystems/overlayfs.rst in the kernel tree.
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


def mount_overlay(lowers: Sequence[str], upper: str, work: str, target: str) -> None:
    """Mount ``lowers`` (topmost first) under the writable ``upper`` at ``target``."""
    if not lowers:
        raise RootfsError("an overlay needs at least one lower layer")
    data = options(lowers, upper, work)
    if len(data) >= os.sysconf("SC_PAGE_SIZE"):
        # mount(2) copies at most one page of options; issue 6 adds a shorter path scheme.
        raise RootfsError(f"overlay options are {len(data)} bytes, more than one page")
    syscalls.mount("overlay", target, "overlay", syscalls.MS.NODEV, data)
