"""User namespaces: root in the container, an unprivileged nobody on the host.

Without a user namespace (Docker's default), uid 0 in a container *is* uid 0 on the host;
only capabilities, seccomp and the other namespaces hold it in, and any way out (a kernel bug,
a mount it should not see, CVE-2019-5736) lands it as real root. ``--userns private`` gives
the container its own user namespace, whose ids are *mapped* onto a range of host ids nobody
else uses: container uid 0 is host uid 100000, uid 1000 is 101000, and so on. Capabilities in
it count only for what the namespace owns (its own mounts, network, hostname), never for the
host's files or devices. Docker calls this ``userns-remap``; podman's rootless mode is built on
it.

**The range** comes from ``/etc/subuid`` and ``/etc/subgid`` (``name:start:count``, see
subuid(5)), the entries for the user :data:`REMAP_USER` (Docker's is ``dockremap``). As
dockerd's ``userns-remap=default`` does, the first ``--userns private`` makes them when they
are missing: the system user (``useradd --system``, no home, no login shell) and, in each file,
the first 65536 ids from 100000 up that no other line holds (:func:`free_start`), written under
shadow's own lock (``<file>.lock``) so that a ``usermod`` at the same moment cannot interleave.
It says once, on stderr, what it added. A test or a lab can point ``$MINIDOCKER_SUBUID`` /
``$MINIDOCKER_SUBGID`` at other files: the ranges are then added to those (so the logic is
tested without touching ``/etc``), and no user is created. A user named by
``$MINIDOCKER_USERNS_REMAP`` gets nothing made: its ranges are its owner's business.

**The order of a start** changes, and that is the lesson:

1. The user namespace must come *first and alone*: every other namespace records the user
   namespace that was current when it was made as its owner, and capabilities over it are
   checked there. So the parent clones the child with ``CLONE_NEWUSER|CLONE_NEWPID`` together
   (the kernel makes the user namespace first; mounting the new /proc needs
   ``CAP_SYS_ADMIN`` in the user namespace that owns the PID namespace), and the child then
   unshares mnt, uts, ipc, net and cgroup, which its user namespace owns.
2. The child starts unmapped (its ids show as 65534, "overflow"). Only a process *outside* may
   write its ``/proc/<pid>/uid_map`` and ``gid_map`` with ids outside the child's own, so the
   parent does it (:func:`write_maps`), while the child waits after unsharing.
3. The image's files belong to host uid 0, which is unmapped: inside they would show as
   nobody and root could not write to them. With an **idmapped mount** (mount_setattr(2),
   ``MOUNT_ATTR_IDMAP``, Linux 5.12; overlayfs over idmapped layers since 5.19) the layers
   appear owned through the container's mapping, without changing a byte on disk. The parent
   makes them (it needs ``CAP_SYS_ADMIN`` in the host's user namespace), builds the overlay on
   top with the new mount API as the container's root (``setfsuid``), and hands the finished,
   still-detached mount to the child over a socket; the child attaches it with move_mount(2).
   On a kernel without idmapped mounts the fallback is Docker's: a copy of each layer chowned
   into the range on unpack (not implemented here: the error says so).
4. The child becomes root *of its namespace* (``setresuid(0)`` maps to host 100000) before it
   creates any file; from then on it works in its container directory by relative paths, since
   the host path leading there may be closed to uid 100000.

Device nodes cannot be created in a user namespace (``CAP_MKNOD`` in the initial one is
needed): /dev gets the host's own nodes, bind-mounted (see :mod:`minidocker.devices`).
``--privileged`` and ``--userns private`` cannot be combined, as in Docker.

Notebook: ``03_capabilities``. Man pages: user_namespaces(7), subuid(5), subgid(5),
mount_setattr(2), open_tree(2), fsopen(2), move_mount(2), setfsuid(2).
"""

from __future__ import annotations

import contextlib
import errno
import os

from minidocker import procfs, syscalls
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REMAP_USER = "minidocker"
SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
MAP_SIZE = 65536  # ids 0..65535 inside, as Docker maps
FIRST_SUBID = 100000  # where shadow's SUB_UID_MIN and dockerd start handing out ranges
LAST_ID = 2**32 - 2  # (uid_t)-1 means "no id" to the kernel
LOCK_WAIT = 5.0  # seconds to wait for another writer's <file>.lock


class IdMap:
    """One line of uid_map / gid_map: ``inside outside count``."""

    __slots__ = ("inside", "outside", "count")

    def __init__(self, inside: int, outside: int, count: int) -> None:
        self.inside, self.outside, self.count = inside, outside, count

    def line(self) -> str:
        return f"{self.inside} {self.outside} {self.count}"

    def to_host(self, inside: int) -> int:
        if not 0 <= inside - self.inside < self.count:
            raise ValueError(f"id {inside} is not mapped")
        return self.outside + inside - self.inside

    def __repr__(self) -> str:
        return f"IdMap({self.line()})"


class UsernsPlan:
    """The container's uid and gid maps (printable; no root needed to make one)."""

    __slots__ = ("uid_map", "gid_map")

    def __init__(self, uid_map: IdMap, gid_map: IdMap) -> None:
        self.uid_map, self.gid_map = uid_map, gid_map

    def as_dict(self) -> dict[str, str]:
        return {"UidMap": self.uid_map.line(), "GidMap": self.gid_map.line()}

    def __repr__(self) -> str:
        return f"UsernsPlan(uid {self.uid_map.line()}, gid {self.gid_map.line()})"


def parse_subid(text: str, user: str, uid: int | None = None) -> tuple[int, int] | None:
    """The first ``user:start:count`` (or ``uid:start:count``) entry, as (start, count)."""
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or line.lstrip().startswith("#"):
            continue
        name, start, count = fields
        if name == user or (uid is not None and name == str(uid)):
            try:
                return int(start), int(count)
            except ValueError:
                continue
    return None


def _range(path: str, kind: str, user: str) -> tuple[int, int]:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    found = parse_subid(text, user)
    tool = "--add-subuids" if kind == "uid" else "--add-subgids"
    if found is None:
        raise UsageError(f"--userns private: no subordinate {kind} range for user "
                         f"{user!r} in {path} (add one: useradd -r {user}; usermod {tool} "
                         f"100000-165535 {user})")
    start, count = found
    if count < 1 or start < 1:
        raise UsageError(f"--userns private: the {kind} range {start}:{count} for {user!r} in "
                         f"{path} is unusable")
    return start, min(count, MAP_SIZE)


def subid_ranges(text: str) -> list[tuple[int, int]]:
    """Every ``(start, count)`` in a subuid/subgid file, whoever holds it."""
    found = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and not line.lstrip().startswith("#"):
            try:
                found.append((int(fields[1]), int(fields[2])))
            except ValueError:
                continue
    return found


def free_start(taken: list[tuple[int, int]], count: int = MAP_SIZE,
               first: int = FIRST_SUBID) -> int:
    """The lowest start from ``first`` up whose ``count`` ids overlap none of ``taken``."""
    start = first
    for begin, length in sorted(taken):
        if begin < start + count and start < begin + length:
            start = begin + length
    if start + count - 1 > LAST_ID:
        raise UsageError(f"--userns private: no {count} free subordinate ids are left above "
                         f"{first}")
    return start


def plan(user: str | None = None, subuid: str | None = None, subgid: str | None = None,
         say: Callable[[str], None] | None = None) -> UsernsPlan:
    """Read the ranges now, so a missing one is an error before anything is created.

    The default user's missing ranges are added first (:func:`add_ranges`); ``say`` (default:
    stderr) is told what was added.
    """
    named = user or os.environ.get("MINIDOCKER_USERNS_REMAP")
    user = named or REMAP_USER
    uid_path = subuid or os.environ.get("MINIDOCKER_SUBUID") or SUBUID
    gid_path = subgid or os.environ.get("MINIDOCKER_SUBGID") or SUBGID
    if user == REMAP_USER and (_read(uid_path, user) is None or _read(gid_path, user) is None):
        add_ranges(user, uid_path, gid_path,
                   create_user=(uid_path, gid_path) == (SUBUID, SUBGID), say=say)
    uid_start, uid_count = _range(uid_path, "uid", user)
    gid_start, gid_count = _range(gid_path, "gid", user)
    return UsernsPlan(IdMap(0, uid_start, uid_count), IdMap(0, gid_start, gid_count))


def add_ranges(user: str, uid_path: str, gid_path: str, *, create_user: bool,
               say: Callable[[str], None] | None = None) -> None:
    """Give ``user`` a free range in whichever of the two files lacks one (and create it)."""
    created = create_user and _create_user(user)
    added: dict[str, int] = {}
    try:
        with _locked(uid_path), _locked(gid_path):
            # Read again under the lock: another minidocker may have just added them.
            missing = [p for p in (uid_path, gid_path) if _read(p, user) is None]
            # One start free in every file that needs a line: the same range on both sides.
            taken = [r for p in missing for r in subid_ranges(_text(p))]
            start = free_start(taken)
            for path in missing:
                _append_line(path, f"{user}:{start}:{MAP_SIZE}")
                added[path] = start
    except OSError as exc:
        raise UsageError(f"--userns private: no subordinate id range for user {user!r}, and "
                         f"adding one failed: {exc.strerror or exc}: "
                         f"{exc.filename or uid_path}") from exc
    if not added and not created:
        return
    what = [f"created the system user {user}"] if created else []
    if added:
        what.append(f"added {user}:{start}:{MAP_SIZE} to {' and '.join(added)}")
    text = f"{' and '.join(what)} for --userns private"
    if say is None:
        import sys

        print(f"minidocker: {text}", file=sys.stderr)
    else:
        say(text)


def _create_user(user: str) -> bool:
    """Make the system user that holds the ranges, if missing; True if it was made."""
    import pwd
    import shutil
    import subprocess

    try:
        pwd.getpwnam(user)
        return False
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        # /etc/passwd, /etc/shadow and /etc/group are not ours to edit by hand: the ranges
        # work without the user (only its name is written), so go on without it.
        return False
    # /nonexistent: Debian's home for system users that must own no files (Policy 9.2.1)
    result = subprocess.run([useradd, "--system", "--no-create-home", "--home-dir",
                             "/nonexistent", "--shell", "/usr/sbin/nologin", user],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise UsageError(f"--userns private: useradd {user} failed: "
                         f"{result.stderr.strip() or result.returncode}")
    return True


def _text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _read(path: str, user: str) -> tuple[int, int] | None:
    return parse_subid(_text(path), user)


def _append_line(path: str, line: str) -> None:
    """Add ``line``, replacing the file in one rename: a reader sees the old or the new one."""
    text = _text(path)
    if text and not text.endswith("\n"):
        text += "\n"
    try:
        st = os.stat(path)
        mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode, owner = 0o644, None  # subuid(5) files are world-readable
    tmp = f"{path}+"  # shadow's own name for the file it is about to rename into place
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        with open(fd, "w") as f:
            f.write(f"{text}{line}\n")
            f.flush()
            os.fchmod(f.fileno(), mode)
            if owner is not None:
                os.fchown(f.fileno(), *owner)
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    _lock(path)
    try:
        yield
    finally:
        os.unlink(f"{path}.lock")


def _lock(path: str) -> None:
    """shadow's protocol (lib/commonio.c): link a file holding our pid to ``<path>.lock``.

    A lock whose pid is gone was left by a crash and is broken; a live one is waited for.
    """
    import time

    mine, lock = f"{path}.{os.getpid()}", f"{path}.lock"
    with open(mine, "w") as f:
        f.write(f"{os.getpid()}\0")
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                os.link(mine, lock)
                return
            except FileExistsError:
                pass
            holder = _lock_holder(lock)
            if holder is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)
                continue
            if time.monotonic() > deadline:
                raise UsageError(f"--userns private: {path} is locked by process {holder} "
                                 f"({lock})")
            time.sleep(0.05)
    finally:
        os.unlink(mine)


def _lock_holder(lock: str) -> int | None:
    """The live pid in ``lock``, or None if it is stale (or vanished meanwhile)."""
    try:
        with open(lock) as f:
            pid = int(f.read().strip("\0\n ") or 0)
    except (FileNotFoundError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    return pid


def check_kernel() -> None:
    """Idmapped overlay layers need Linux 5.19 (mount_setattr itself 5.12)."""
    version = kernel_version()
    if version != (0, 0, 0) and version < (5, 19):
        raise UsageError(f"--userns private needs idmapped overlay layers (Linux 5.19); this "
                         f"kernel is {os.uname().release} (the chown-on-unpack fallback is not "
                         "implemented)")


# -- the parent's side: maps and the idmapped root filesystem ---------------------------------

def write_maps(pid: int, userns: UsernsPlan) -> None:
    """Map the child's ids; from the parent, which holds CAP_SETUID/SETGID on the host."""
    syscalls.write_file(f"/proc/{pid}/uid_map", userns.uid_map.line())
    syscalls.write_file(f"/proc/{pid}/gid_map", userns.gid_map.line())


def chown_to_root(paths: list[str], userns: UsernsPlan) -> None:
    """Files minidocker writes for the container (/etc/hosts...) belong to its root."""
    for path in paths:
        os.chown(path, userns.uid_map.outside, userns.gid_map.outside)


def idmapped(path: str, userns_fd: int) -> int:
    """A detached copy of the mount at ``path``, its files seen through the user namespace."""
    fd = syscalls.open_tree(path)
    try:
        syscalls.mount_setattr_idmap(fd, userns_fd, path)
    except OSError as exc:
        os.close(fd)
        if exc.errno != errno.EINVAL:
            raise
        # EINVAL here: the filesystem has no idmapped mounts (FS_ALLOW_IDMAP). tmpfs gained
        # them in Linux 6.3, so a state root under a tmpfs /tmp on Debian 12 lands here.
        fstype = filesystem_type(path)
        raise UsageError(f"--userns private: the {fstype} filesystem under {path} does not "
                         f"support idmapped mounts on Linux {os.uname().release}: keep the "
                         "state root on ext4, xfs or btrfs (tmpfs has them from Linux 6.3)"
                         ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def filesystem_type(path: str) -> str:
    """The type of the filesystem mounted at or above ``path`` (``/proc/self/mountinfo``)."""
    from minidocker.mountinfo import mount_of  # only to explain a failure

    found = mount_of(path)
    return found.fstype if found is not None else "unknown"


DETACHED_LAYERS = (6, 15)  # clone_private_mount() takes detached mounts as layers from here


def kernel_version() -> tuple[int, int, int]:
    """This kernel's version; (0, 0, 0) if its release does not say (no check then refuses)."""
    return procfs.kernel_version() or (0, 0, 0)


def layers_must_be_attached() -> bool:
    """Before Linux 6.15 overlayfs refuses a layer that is not attached in the mounter's mount
    namespace (``failed to clone upperpath``, EINVAL): Debian 12's 6.1, Ubuntu 24.04's 6.8.
    ``$MINIDOCKER_USERNS_ATTACHED_LAYERS=1`` takes that path on any kernel (tests, lessons)."""
    return (kernel_version() < DETACHED_LAYERS
            or os.environ.get("MINIDOCKER_USERNS_ATTACHED_LAYERS") == "1")


def overlay_fd(lowers: list[str], cdir: str, pid: int, userns: UsernsPlan) -> int:
    """The container's overlay, built detached over idmapped layers; returns its mount fd.

    On kernels that take detached layers (6.15+) the layers are named by their fds
    (``/proc/self/fd/N``); on older ones a throwaway process attaches them first
    (:func:`_overlay_with_attached_layers`).
    """
    userns_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    fds: list[int] = []
    try:
        fds += [idmapped(lower, userns_fd) for lower in lowers]
        cdir_fd = idmapped(cdir, userns_fd)
        fds.append(cdir_fd)
        if layers_must_be_attached():
            return _overlay_with_attached_layers(fds[:-1], cdir_fd, cdir, userns)
        return make_overlay([f"/proc/self/fd/{fd}" for fd in fds[:-1]],
                            f"/proc/self/fd/{cdir_fd}", userns)
    finally:
        os.close(userns_fd)
        for fd in fds:
            os.close(fd)


def make_overlay(layers: list[str], cdir: str, userns: UsernsPlan) -> int:
    """fsopen/fsconfig/fsmount an overlay of ``layers`` with ``cdir``'s upper and work dirs.

    overlayfs does its work in the layers with the credentials of whoever mounted it, and an
    idmapped mount refuses to create a file for an id outside its mapping (host root is
    outside: EOVERFLOW), so the overlay is created with the file-system ids of the container's
    root (setfsuid/setfsgid). That clears the file capabilities from the effective set, which
    are switched on again for the moment of the mount.
    """
    fs = syscalls.fsopen("overlay")
    try:
        joined = ":".join(layers)
        if len(joined) < 256:  # fsconfig copies at most 256 bytes of a string
            syscalls.fsconfig(fs, "lowerdir", joined)
        else:  # one at a time: Linux 6.8
            for layer in layers:
                syscalls.fsconfig(fs, "lowerdir+", layer)
        syscalls.fsconfig(fs, "upperdir", f"{cdir}/upper")
        syscalls.fsconfig(fs, "workdir", f"{cdir}/work")
        old_uid = syscalls.setfsuid(userns.uid_map.outside)
        old_gid = syscalls.setfsgid(userns.gid_map.outside)
        try:
            _, permitted, inheritable = syscalls.capget()
            syscalls.capset(permitted, permitted, inheritable)
            syscalls.fsconfig(fs, None)
            return syscalls.fsmount(fs)
        finally:
            syscalls.setfsgid(old_gid)
            syscalls.setfsuid(old_uid)  # back to 0: the kernel restores the fs capabilities
    finally:
        os.close(fs)


def _overlay_with_attached_layers(layer_fds: list[int], cdir_fd: int, cdir: str,
                                  userns: UsernsPlan) -> int:
    """The overlay, for kernels whose overlayfs wants attached layers: a child process gets a
    private mount namespace (nothing it mounts reaches the host, and all of it goes when it
    exits), attaches each idmapped layer on a tmpfs laid over ``cdir`` there, builds the
    overlay from those paths and sends its mount fd back over a socket (SCM_RIGHTS). The
    overlay keeps private clones of its layers, so it outlives that namespace."""
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = os.fork()
    if child == 0:  # pragma: no cover - the throwaway child; its result comes back below
        code = 0
        try:
            ours.close()
            syscalls.unshare(syscalls.CLONE.NEWNS)
            syscalls.mount(None, "/", None, syscalls.MS.REC | syscalls.MS.PRIVATE)
            syscalls.mount("tmpfs", cdir, "tmpfs", 0, "mode=0755")  # fsuid = its root looks up
            os.chdir(cdir)
            names = [str(i) for i in range(len(layer_fds))]
            for name, fd in zip([*names, "c"], [*layer_fds, cdir_fd], strict=True):
                os.mkdir(name)
                syscalls.move_mount(fd, name)
            # Relative names keep the lowerdir string short (fsconfig copies 256 bytes).
            mount_fd = make_overlay(names, "c", userns)
            socket.send_fds(theirs, [b"ok"], [mount_fd])
        except BaseException as exc:  # whatever it is, the parent must hear of it
            theirs.sendall(f"{getattr(exc, 'errno', 0) or 0}\0{exc}".encode())
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    try:
        message, fds, _, _ = socket.recv_fds(ours, 4096, 1)
    finally:
        ours.close()
        os.waitpid(child, 0)
    if fds:
        return fds[0]
    errno, _, text = message.decode(errors="replace").partition("\0")
    raise OSError(int(errno or 0), text or "the overlay could not be built with attached layers")


def rootfs_fd(rootfs: str, pid: int) -> int:
    """The vfs driver's plain copy, idmapped (no overlay to build)."""
    userns_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return idmapped(rootfs, userns_fd)
    finally:
        os.close(userns_fd)


# -- the child's side ---------------------------------------------------------------------------

def become_root() -> None:
    """Become uid/gid 0 of the new namespace (host 100000...), once the parent has mapped it."""
    syscalls.setresgid(0)
    syscalls.setresuid(0)


def attach(mount_fd: int, target: str) -> None:
    """Attach the parent's detached root filesystem at ``target`` (merged)."""
    syscalls.move_mount(mount_fd, target)
    os.close(mount_fd)


def idmap_supported(path: str | os.PathLike[str]) -> bool:
    """Does the filesystem under ``path`` take idmapped mounts (what ``--userns private``
    needs for its layers)? Asked of the kernel: a child unshares a user namespace, and a clone
    of ``path`` is idmapped into it. tmpfs before Linux 6.3 and ramfs say no (EINVAL). For the
    tests and the lessons, which choose what to show; a run just tries, and says why not."""
    path = os.fspath(path)
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.close(ready_r)
            os.close(done_w)  # our copy, or the read below never sees the parent's close
            syscalls.unshare(syscalls.CLONE.NEWUSER)
            os.write(ready_w, b"x")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        os.read(ready_r, 1)
        for kind in ("uid", "gid"):
            syscalls.write_file(f"/proc/{child}/{kind}_map", "0 100000 65536")
        userns_fd = os.open(f"/proc/{child}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        tree = syscalls.open_tree(path)
        try:
            syscalls.mount_setattr_idmap(tree, userns_fd, path)
            return True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            return False
        finally:
            os.close(tree)
            os.close(userns_fd)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(child, 0)
