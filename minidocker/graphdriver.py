"""Storage drivers: how a container gets its root filesystem from an image's layers.

Docker calls these *graph drivers*. minidocker has two, and picks one per state root:

- ``overlay`` (the default, Docker's ``overlay2``): image layers stay read-only, stacked as
  overlayfs ``lowerdir`` s under the container's own ``upperdir`` (see :mod:`minidocker.overlay`).
  Starting a container copies nothing.
- ``vfs``: no union filesystem at all. Each container gets a full *copy* of its image's
  files (see :mod:`minidocker.vfs`). Slow and large, but it works on any filesystem.

**Why ``vfs`` exists.** overlayfs needs its upper directory on a filesystem that supports
``trusted.*`` xattrs, ``d_type`` and ``RENAME_WHITEOUT``, and refuses some outright: overlayfs
itself above all (``overlay: filesystem on ... not supported as upperdir``). That is exactly
the case of a container runtime running inside a container (Docker-in-Docker), whose state
directory sits on the outer container's overlay. Layers are affected too: a whiteout is a 0/0
character device, which an overlay mount refuses to create (mknod gives ``EPERM``), so under
``vfs`` layers keep their whiteouts in the OCI form (``.wh.NAME`` files) and the copy applies
them.

**How the choice is made.** Once per state root, the first time an image layer is unpacked or
a container is created, by the same rule ``minidocker doctor`` reports
(:func:`storage_driver`: the filesystem under the root, read from
``/proc/self/mountinfo``, and whether the kernel has overlayfs). The answer is written to
``<root>/storage-driver`` and kept: layers unpacked for one driver are not in the other's format,
and a container made with one must be started with it (Docker keeps its choice the same way, in
the name of ``/var/lib/docker/<driver>``). ``MINIDOCKER_STORAGE_DRIVER=overlay|vfs`` forces the
choice for a new root, as ``dockerd --storage-driver`` does; naming the other driver for a root
already in use is an error.

Each container records its driver and its lower directories in ``<container>/storage`` (one
line each), so ``diff``, ``commit`` and ``rmi`` know how its files are laid out, and the start
sequence knows what to mount. This module imports only ``os``: ``minidocker run`` reads both
files on its start path.

Notebook: ``04_overlayfs``. See also ``minidocker doctor`` ("storage driver").
"""

from __future__ import annotations

import os

from minidocker.errors import HostError

TYPE_CHECKING = False  # not typing's: importing typing (and re with it) costs run ~4.5 ms
if TYPE_CHECKING:
    from minidocker.mountinfo import MountEntry

DRIVERS = ("overlay", "vfs")
DRIVER_FILE = "storage-driver"  # <root>/storage-driver: "<driver>\n<why>\n"
RECORD_FILE = "storage"  # <container>/storage: "<driver>\n<lower>\n<lower>..."
ENV_OVERRIDE = "MINIDOCKER_STORAGE_DRIVER"


def current(root: str) -> str:
    """The driver of the state root ``root``, choosing (and recording) it on first use."""
    chosen = recorded_choice(root)
    wanted = os.environ.get(ENV_OVERRIDE) or None
    if wanted is not None and wanted not in DRIVERS:
        raise HostError(f"unknown storage driver '{wanted}' in ${ENV_OVERRIDE}: "
                        f"choose {' or '.join(DRIVERS)}")
    if chosen is not None:
        if wanted is not None and wanted != chosen[0]:
            raise HostError(f"{root} uses the {chosen[0]} storage driver, not {wanted}: "
                            f"unset ${ENV_OVERRIDE}, or use another --root")
        return chosen[0]
    driver, why = (wanted, f"${ENV_OVERRIDE}={wanted}") if wanted else decide(root)
    _write_choice(root, driver, why)
    return driver


def recorded_choice(root: str) -> tuple[str, str] | None:
    """``(driver, why)`` as recorded for ``root``, or None before its first use."""
    try:
        with open(os.path.join(root, DRIVER_FILE)) as f:
            driver, _, why = f.read().partition("\n")
    except FileNotFoundError:
        return None
    if driver not in DRIVERS:
        raise HostError(f"{os.path.join(root, DRIVER_FILE)} names an unknown storage driver "
                        f"'{driver}'")
    return driver, why.strip()


# Filesystems overlayfs refuses (or misbehaves on) as the upper layer: they lack the xattrs,
# d_type or RENAME_WHITEOUT that copy-up and whiteouts need.
UPPER_UNSUITABLE = frozenset({
    "overlay", "aufs", "nfs", "nfs4", "cifs", "smb3", "vfat", "exfat", "ecryptfs", "9p",
    "vboxsf", "squashfs", "iso9660",
})

def storage_driver(path: str, mounts: list[MountEntry], overlay: bool) -> tuple[str, str]:
    """Which driver a state directory at ``path`` gets, and why: ``overlay`` or ``vfs``."""
    if not overlay:
        return "vfs", "the kernel has no overlayfs"
    from minidocker.mountinfo import mount_containing

    m = mount_containing(path, mounts)
    if m is None:
        return "overlay", f"{path} is on an unknown filesystem"
    if m.fstype in UPPER_UNSUITABLE or m.fstype.startswith("fuse"):
        return "vfs", f"{path} is on {m.fstype} ({m.mount_point}), which overlayfs refuses as upper"
    return "overlay", f"{path} is on {m.fstype} ({m.mount_point})"


def decide(root: str) -> tuple[str, str]:
    """Which driver ``root`` should get, and why: :func:`storage_driver`, applied to this host."""
    # imported here, not at the top: ``run`` only reads the recorded choice
    from minidocker import overlay
    from minidocker.mountinfo import parse_mountinfo

    with open("/proc/self/mountinfo") as f:
        mounts = parse_mountinfo(f.read())
    has_overlay = overlay.ensure_loaded()  # a module not loaded yet is loaded, as Docker does
    return storage_driver(os.path.realpath(root), mounts, has_overlay)


def _write_choice(root: str, driver: str, why: str) -> None:
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, DRIVER_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{driver}\n{why}\n")
    try:
        os.link(tmp, path)  # first writer wins; a racing one reads the winner's choice
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def record(cdir: str, driver: str, lowers: list[str]) -> None:
    """Write ``<container>/storage``: the driver, then the lower dirs (topmost first)."""
    with open(os.path.join(cdir, RECORD_FILE), "w") as f:
        f.write("\n".join([driver, *lowers]) + "\n")


def recorded(cdir: str) -> tuple[str, list[str]]:
    """``(driver, lowers)`` of a container; one made before drivers were recorded is overlay."""
    try:
        with open(os.path.join(cdir, RECORD_FILE)) as f:
            driver, *lowers = f.read().split("\n")
    except FileNotFoundError:
        return "overlay", []
    return driver, [line for line in lowers if line]
