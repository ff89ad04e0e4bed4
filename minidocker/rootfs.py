"""The container's root filesystem: from an overlay mount to ``/`` of a new world.

Inside the container's fresh mount namespace, the start sequence does, in order:

1. :func:`make_mounts_private` -- ``mount(NULL, "/", NULL, MS_REC|MS_PRIVATE)``. A new mount
   namespace starts as a *copy* of the host's, and on most distributions ``/`` is a *shared*
   mount (systemd makes it so): a mount under a shared mount propagates to its peers. Without
   this step our mounts would leak back to the host, and pivot_root(2) refuses with ``EINVAL``
   because it may not move a shared mount.
2. the overlay is mounted at the container's ``merged`` directory (:mod:`minidocker.overlay`).
3. :func:`mount_defaults` -- the kernel filesystems every program expects (``DEFAULT_MOUNTS``):
   a ``proc`` that shows only the container's PID namespace, ``sysfs`` read-only, a ``tmpfs`` at
   ``/dev`` holding only ``DEFAULT_DEVICES`` (never the host's ``/dev``: that would expose its
   disks), a private ``devpts`` instance, ``/dev/shm`` and ``/dev/mqueue``.
4. :func:`bind_files` -- ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf``, written by
   minidocker and bind-mounted over the image's, as Docker does.
5. :func:`pivot_into` -- ``pivot_root(".", ".")`` then ``umount2(".", MNT_DETACH)``: the merged
   directory becomes ``/`` and the host's root is detached, so no path leads back to it. (A plain
   chroot(2) leaves the old root reachable; see the escape suite.)
6. :func:`mask_paths` -- Docker's ``MASKED_PATHS`` get ``/dev/null`` or an empty read-only tmpfs
   over them; ``READONLY_PATHS`` are remounted read-only. These /proc files leak host
   information (``/proc/kcore`` is the host's memory) or change the host (``/proc/sysrq-trigger``).

Every mount target inside the image is resolved with :func:`secure_join`, so an image whose
``/proc`` is a symlink to ``/etc`` cannot make us mount over the host.

Notebook: ``01_namespaces`` (mount namespace). Man pages: mount_namespaces(7), pivot_root(2),
proc(5), sysfs(5), devpts in Documentation/filesystems/devpts.rst. The tables follow runc's
``libcontainer/SPEC.md`` and Docker's defaults.
"""

from __future__ import annotations

import errno
import os
import stat

from minidocker import syscalls, trace
from minidocker.errors import RootfsError
from minidocker.syscalls import MNT, MS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_NOSUID_NODEV_NOEXEC = MS.NOSUID | MS.NODEV | MS.NOEXEC

# (target, fstype, source, flags, data) -- mounted in this order, over the new root.
DEFAULT_MOUNTS: tuple[tuple[str, str, str, MS, str | None], ...] = (
    ("/proc", "proc", "proc", _NOSUID_NODEV_NOEXEC, None),
    ("/dev", "tmpfs", "tmpfs", MS.NOSUID | MS.STRICTATIME, "mode=755,size=65536k"),
    ("/dev/pts", "devpts", "devpts", MS.NOSUID | MS.NOEXEC,
     "newinstance,ptmxmode=0666,mode=0620,gid=5"),
    ("/dev/shm", "tmpfs", "shm", _NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k"),
    ("/dev/mqueue", "mqueue", "mqueue", _NOSUID_NODEV_NOEXEC, None),
    ("/sys", "sysfs", "sysfs", _NOSUID_NODEV_NOEXEC | MS.RDONLY, None),
)

# (path, major, minor): the only device nodes a default container gets, all mode 0666.
DEFAULT_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)

# (link, target)
DEFAULT_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
    ("/dev/core", "/proc/kcore"),
)

# Docker's defaults (moby oci/defaults.go): hidden from the container entirely.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

# Visible, but read-only: writing them would reconfigure the host's kernel.
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


def secure_join(root: str, path: str) -> str:
    """``root`` + ``path``, following symlinks as if ``root`` were ``/``.

    An absolute symlink target restarts at ``root`` and ``..`` never climbs above it, which is
    what the path means to a process inside the container. Mount targets are resolved this way
    so that a hostile image cannot point one at the host (the class of bug behind CVE-2021-30465).
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 40:  # the kernel's own limit gives ELOOP here too
                raise RootfsError(f"too many levels of symlinks in the image at {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


# Mount points every container needs: directories, then files (bind-mount targets).
INIT_DIRS = ("proc", "sys", "dev", "etc")
INIT_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")


def prepare_init_layer(upper: str, lowers: list[str]) -> None:
    """Create the mount points in the container's upper dir, on the host, before mounting.

    Creating them later through the overlay costs a copy-up each (and milliseconds); Docker
    keeps them in a separate "init" layer for the same reason. A path the image has as a
    symlink or as something else is left alone: it is resolved inside the image later.
    """
    def image_has(rel: str) -> tuple[bool, bool]:
        """(found, is a plain directory or file as wanted) in the topmost layer that has it."""
        for lower in lowers:
            try:
                st = os.lstat(os.path.join(lower, rel))
            except FileNotFoundError:
                continue
            return True, stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
        return False, True

    for rel in INIT_DIRS:
        if image_has(rel)[1]:
            os.mkdir(os.path.join(upper, rel), 0o755)
    for rel in INIT_FILES:
        if os.path.isdir(os.path.join(upper, os.path.dirname(rel))) and image_has(rel)[1]:
            os.close(os.open(os.path.join(upper, rel), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                             0o644))


def make_mounts_private() -> None:
    """Stop mount events propagating between this namespace and the host's."""
    syscalls.mount(None, "/", None, MS.REC | MS.PRIVATE)


ROOT_PROPAGATION = {"rprivate": MS.REC | MS.PRIVATE, "rslave": MS.REC | MS.SLAVE,
                    "rshared": MS.REC | MS.SHARED}


def root_propagation(binds: Iterable[str]) -> str:
    """What ``/`` of the container's mount namespace gets, from its binds' propagations (as
    Docker sets runc's ``rootfsPropagation``): ``rshared`` if one asks for shared propagation,
    ``rslave`` if one asks for slave, else ``rprivate``. A bind can only share its source's
    peer group if the namespace's copy of the source still belongs to it."""
    kinds = {p.removeprefix("r") for p in binds}
    return "rshared" if "shared" in kinds else "rslave" if "slave" in kinds else "rprivate"


def set_root_propagation(propagation: str, rootfs: str) -> None:
    """:func:`make_mounts_private`, unless a bind needs the host's peer groups kept. Then the
    mount holding ``rootfs`` becomes a slave (runc's ``rootfsParentMountPrivate``): what we
    mount under it (the overlay, /proc...) does not reach the host, and pivot_root(2), which
    refuses a shared parent, accepts it."""
    if propagation == "rprivate":
        make_mounts_private()
        return
    from minidocker import mountinfo

    syscalls.mount(None, "/", None, ROOT_PROPAGATION[propagation])
    parent = mountinfo.mount_of(rootfs)
    syscalls.mount(None, parent.mount_point if parent else "/", None, MS.SLAVE)


def _mkdirs(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def mount_defaults(root: str, make_devices: bool = True) -> None:
    """Mount /proc, /dev (+ pts, shm, mqueue) and a read-only /sys under ``root``.

    ``make_devices=False``: leave /dev without device nodes (a user namespace may not mknod;
    :mod:`minidocker.devices` bind-mounts the host's instead).
    """
    for target, fstype, source, flags, data in DEFAULT_MOUNTS:
        where = secure_join(root, target)
        _mkdirs(where)
        syscalls.mount(source, where, fstype, flags, data)
        if target == "/dev" and make_devices:
            create_devices(where)


def mount_cgroup2(root: str, writable: bool = False) -> None:
    """``/sys/fs/cgroup``: the container's own cgroup, as runc mounts it on a cgroup v2 host.

    Mounted from inside the container's cgroup namespace, the root of this cgroup2 tree *is*
    the container's group: a process reads its own ``memory.max``, ``cpu.max`` and
    ``pids.max`` there (the JVM, Go and Node size themselves from them). Read-only, as in
    Docker, except under ``--privileged``.
    """
    flags = _NOSUID_NODEV_NOEXEC | (MS(0) if writable else MS.RDONLY)
    syscalls.mount("cgroup2", secure_join(root, "/sys/fs/cgroup"), "cgroup2", flags, None)


def create_devices(dev: str) -> None:
    """Make ``DEFAULT_DEVICES`` and ``DEFAULT_SYMLINKS`` in ``dev``, the fresh /dev tmpfs.

    ``dev`` is the tmpfs's real location, already resolved inside the image: joining the
    image's root with "/dev/null" instead would follow an image whose /dev is a symlink out
    to the host.
    """
    old_umask = os.umask(0)  # the modes below are meant exactly
    try:
        for path, major, minor in DEFAULT_DEVICES:
            syscalls.mknod(os.path.join(dev, os.path.basename(path)), stat.S_IFCHR | 0o666,
                           major, minor)
    finally:
        os.umask(old_umask)
    for link, target in DEFAULT_SYMLINKS:
        os.symlink(target, os.path.join(dev, os.path.basename(link)))


def bind_files(root: str, files: list[tuple[str, str]]) -> None:
    """Bind-mount host files (``source``) over paths in the image (``target``)."""
    for source, target in files:
        where = secure_join(root, target)
        _mkdirs(os.path.dirname(where))
        if not os.path.lexists(where):
            os.close(os.open(where, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        syscalls.mount(source, where, None, MS.BIND)


def pivot_into(root: str, peers: bool = False) -> None:
    """Make ``root`` (a mount point) this namespace's ``/``, and detach the old root.
    ``peers``: the old root's mounts may still share peer groups with the host's (a shared or
    slave bind asked for them, :func:`set_root_propagation`)."""
    old = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if peers else -1
    syscalls.chdir(root)
    try:
        # new_root and put_old may be the same directory: the old root is then stacked on top
        # of the new one, and unmounting "." removes it (see pivot_root(2), NOTES).
        syscalls.pivot_root(".", ".")
    except OSError as exc:
        if exc.errno == errno.EINVAL and propagation_of("/") == "shared":
            raise RootfsError(
                "pivot_root: EINVAL because / is a shared mount: make mounts private first "
                "(mount --make-rprivate /), as make_mounts_private() does"
            ) from exc
        raise
    if peers:  # from the old root's own directory, "." is its mount (not the new root's):
        try:   # as slaves, its mounts unmount here alone, never the host's (as runc does)
            syscalls.fchdir(old)
            syscalls.mount(None, ".", None, MS.REC | MS.SLAVE)
        finally:
            os.close(old)
    syscalls.umount2(".", MNT.DETACH)
    syscalls.chdir("/")


def propagation_of(mount_point: str, mountinfo: str | None = None) -> str:
    """``shared``, ``slave`` or ``private``, read from /proc/self/mountinfo's optional fields."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    kind = "private"
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[4] == mount_point:
            optional = fields[6:fields.index("-")]
            kind = ("shared" if any(o.startswith("shared:") for o in optional)
                    else "slave" if any(o.startswith("master:") for o in optional)
                    else "private")
    return kind  # the last line for a mount point is the one on top


def mask_paths(masked: tuple[str, ...] = MASKED_PATHS,
               readonly: tuple[str, ...] = READONLY_PATHS) -> None:
    """Hide ``masked`` and make ``readonly`` read-only. Runs after pivot_into: paths are final."""
    # A path this kernel doesn't have needs no hiding (runc skips those too); any other
    # failure (no /dev/null to bind, say) must stop the container, never leave a path bare.
    for path in masked:
        if not os.path.lexists(path):
            continue
        if os.path.isdir(path):
            syscalls.mount("tmpfs", path, "tmpfs", MS.RDONLY, "size=0")
        else:
            syscalls.mount("/dev/null", path, None, MS.BIND)
    for path in readonly:
        if not os.path.lexists(path):
            continue
        syscalls.mount(path, path, None, MS.BIND | MS.REC)
        syscalls.mount(path, path, None,
                       MS.BIND | MS.REMOUNT | MS.RDONLY | _NOSUID_NODEV_NOEXEC)
    if trace.enabled():
        trace.note(f"masked {len(masked)} paths, {len(readonly)} read-only (Docker's defaults)")


def bind_console(root: str, pty_path: str) -> None:
    """With ``-t``, the terminal also appears as ``/dev/console`` (as runc does)."""
    where = secure_join(root, "/dev/console")
    os.close(os.open(where, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    syscalls.mount(pty_path, where, None, MS.BIND)
