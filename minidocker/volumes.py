"""Volumes: directories minidocker keeps for containers, which outlive them (and their images).

Docker's ``local`` driver, on disk as Docker lays it out::

    ROOT/volumes/<name>/_data       what the container sees at its mount point
    ROOT/volumes/<name>/opts.json   Name, CreatedAt, Driver, Labels, Options; Seeded, IdShift
    ROOT/volumes/<name>/refs/<cid>  one empty file per container that uses the volume

A volume is named (``-v db:/data``, ``volume create db``) or anonymous (``-v /data``: a random
64-hex-digit name and Docker's label ``com.docker.volume.anonymous``, which ``volume prune``
looks for).

**In use** is recorded, not computed: the start step calls :func:`use`, which makes the volume
if needed and adds ``refs/<cid>`` in one step under the volume's lock, so a ``volume rm``
racing with a ``run`` either sees the reference or removes the volume before the run makes a
new one; ``rm`` of the container calls :func:`release`. A reference whose container record
(``ROOT/containers/<cid>``) is gone counts for nothing: a removal that died half-way cannot
pin a volume forever. (Reading every container's record instead would race with a container
being created, whose record is not written yet.)

**The lock** is flock(2) on the volume's directory, as a container's is on its own
(:mod:`minidocker.lifecycle`). A volume is made in a scratch directory and renamed into
place, and removed by renaming it away under the lock before deleting it, so nobody ever
sees half a volume, and a waiter that wakes to find the directory renamed knows it is gone.

**Seeding** (:func:`seed`): a new volume mounted where the image has files starts as a copy
of them (owners, modes, times, xattrs, hard links), once: ``Seeded`` in opts.json says it was
done, and an empty volume stays empty after its first use even if the image changes.
Never for a bind mount; not with ``nocopy``.

**Driver options** (``volume create --opt type=tmpfs --opt device=tmpfs``, checked and
mounted by :mod:`minidocker.volumeopts`): the device is mounted on ``_data`` under the lock
at the first start of a user, kept while any container references the volume, and unmounted
at the last :func:`release` and by :func:`remove` (before anything is deleted). Docker
unmounts at the last *stop*; here a reference lives from ``create`` to ``rm``.

**A user namespace** (``--userns private``) sees a volume through an idmapped mount, so its
files keep the ids a container without one would store. On a filesystem without idmapped
mounts, :func:`shift_owners` chowns them into the namespace's range instead, once
(``IdShift`` in opts.json), as Docker's ``userns-remap`` owns its volumes.

Notebook: ``08_volumes``. Man pages: flock(2), rename(2), xattr(7).
"""

from __future__ import annotations

import os
import stat

from minidocker import state, timefmt
from minidocker.errors import MinidockerError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
DRIVER = "local"
LIST_FILTERS = ("dangling", "name", "label", "driver")


class VolumeError(MinidockerError):
    """A volume that cannot be made, found or removed."""


class VolumeNotFound(VolumeError):
    pass


class VolumeInUse(VolumeError):
    pass


class Volume:
    """One volume as recorded: where it is and what opts.json says."""

    __slots__ = ("name", "path", "record")

    def __init__(self, name: str, path: str, record: Mapping[str, Any]) -> None:
        self.name = name
        self.path = path  # ROOT/volumes/<name>
        self.record = dict(record)

    @property
    def mountpoint(self) -> str:
        return os.path.join(self.path, "_data")

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in (self.record.get("Labels") or {})

    def as_docker(self) -> dict[str, Any]:
        """``docker volume inspect``'s fields (nulls where Docker shows null)."""
        return {"CreatedAt": self.record["CreatedAt"], "Driver": DRIVER,
                "Labels": self.record.get("Labels") or None, "Mountpoint": self.mountpoint,
                "Name": self.name, "Options": self.record.get("Options") or None,
                "Scope": "local"}


def volumes_dir(root: str) -> str:
    return os.path.join(root, "volumes")


def _record_path(vdir: str) -> str:
    return os.path.join(vdir, "opts.json")


def _read(vdir: str, name: str) -> Volume:
    try:
        return Volume(name, vdir, state.read_json(_record_path(vdir)))
    except FileNotFoundError:
        raise VolumeNotFound(f"get {name}: no such volume") from None


class _locked:
    """``with _locked(vdir, name):`` hold the volume's flock; VolumeNotFound if it is gone
    (or was renamed away to be removed while we waited)."""

    def __init__(self, vdir: str, name: str) -> None:
        self.vdir, self.name, self.fd = vdir, name, -1

    def __enter__(self) -> None:
        import fcntl

        try:
            fd = os.open(self.vdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise VolumeNotFound(f"get {self.name}: no such volume") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(self.vdir).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            raise VolumeNotFound(f"get {self.name}: no such volume")
        self.fd = fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # the last fd of the open file: the flock goes with it


def create(root: str, name: str | None = None, labels: Mapping[str, str] | None = None,
           options: Mapping[str, str] | None = None) -> Volume:
    """Make a volume (None: an anonymous one, with a random name); an existing name is
    returned as it is, as ``docker volume create`` does."""
    if options:
        from minidocker import volumeopts

        options = volumeopts.check(options)
    record_labels = dict(labels or {})
    if name is None:
        name = state.new_id()
        record_labels[ANONYMOUS_LABEL] = ""
    else:
        from minidocker.mounts import check_volume_name

        check_volume_name(name)
    top = volumes_dir(root)
    vdir = os.path.join(top, name)
    if os.path.isdir(vdir):
        return _read(vdir, name)
    os.makedirs(top, mode=0o700, exist_ok=True)
    scratch = os.path.join(top, f".new-{state.new_id()[:16]}")
    os.mkdir(scratch, 0o700)
    try:
        os.mkdir(os.path.join(scratch, "_data"), 0o755)
        os.mkdir(os.path.join(scratch, "refs"), 0o700)
        state.write_json(_record_path(scratch), {
            "Name": name, "CreatedAt": _created_at(), "Driver": DRIVER,
            "Labels": record_labels, "Options": dict(options or {}), "Seeded": False})
        os.rename(scratch, vdir)  # atomic; fails if another create got there first
    except OSError as exc:
        state.remove_tree(scratch)
        import errno

        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    return _read(vdir, name)


def _created_at() -> str:
    """Docker's volumes show RFC 3339 to the second (Go's time.RFC3339), not nanoseconds."""
    import time

    return timefmt.format_time(time.time_ns() // 1_000_000_000 * 1_000_000_000)


def get(root: str, name: str) -> Volume:
    return _read(os.path.join(volumes_dir(root), name), name)


def _names(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(volumes_dir(root)) if not n.startswith("."))
    except FileNotFoundError:
        return []


def users(root: str, name: str) -> list[str]:
    """The IDs of the containers that use volume ``name`` and still exist."""
    refs = os.path.join(volumes_dir(root), name, "refs")
    try:
        cids = sorted(os.listdir(refs))
    except FileNotFoundError:
        return []
    return [cid for cid in cids if os.path.isdir(state.Layout(root).container(cid))]


def use(root: str, name: str | None, cid: str,
        labels: Mapping[str, str] | None = None, mount: bool = False) -> Volume:
    """The start step's call: the volume (made now if missing, anonymous for None), with
    container ``cid`` recorded as its user, both under its lock, so ``volume rm`` cannot
    remove it between the two. With ``mount`` (a start, not a ``create``), a volume with
    driver options has its device mounted on ``_data`` first if it is not yet; if that
    fails, no reference is taken."""
    for _ in range(3):
        volume = create(root, name, labels)
        try:
            with _locked(volume.path, volume.name):
                if mount:
                    _mount_device(volume)
                ref = os.path.join(volume.path, "refs", cid)
                os.close(os.open(ref, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
                return volume
        except VolumeNotFound:
            name = volume.name  # removed while we waited: make it again
    raise VolumeError(f"{name}: removed by another command three times while being used")


def _mount_device(volume: Volume) -> None:
    """Under the volume's lock: its ``--opt`` device on ``_data``, once for all its users."""
    options = volume.record.get("Options")
    if not options or "type" not in options:
        return
    from minidocker import volumeopts

    if not volumeopts.needs_mount(options) or volumeopts.mounted(volume.mountpoint):
        return
    try:
        volumeopts.mount(options, volume.mountpoint)
    except OSError as exc:  # Docker's words, then the kernel's
        from minidocker.syscalls import flag_names

        p = volumeopts.plan(options)
        raise VolumeError(
            f"volume {volume.name}: failed to mount local volume: mount {p.device}:"
            f"{volume.mountpoint}, type: {p.fstype}, flags: {flag_names(p.flags, 'MS')}, "
            f"data: {p.data!r}: {exc.strerror or exc}") from None


def release(root: str, name: str, cid: str) -> None:
    """Container ``cid`` no longer uses volume ``name``. Idempotent. The last user of a
    volume with driver options unmounts its device: a tmpfs's data is gone with it, and
    the next first use seeds the fresh, empty mount again (as Docker copies into any
    empty volume)."""
    vdir = os.path.join(volumes_dir(root), name)
    try:  # noqa: SIM105 -- contextlib is an import the start path need not pay for
        os.unlink(os.path.join(vdir, "refs", cid))
    except FileNotFoundError:
        pass
    try:
        options = state.read_json(_record_path(vdir)).get("Options")
    except FileNotFoundError:
        return
    if not isinstance(options, dict) or "type" not in options:
        return
    try:
        with _locked(vdir, name):
            if not users(root, name):
                _unmount_device(vdir)
    except VolumeNotFound:
        pass


def _unmount_device(vdir: str) -> None:
    """Under the lock: ``_data``'s device unmounted, if mounted; unseeded, for the next."""
    from minidocker import volumeopts

    data = os.path.join(vdir, "_data")
    if volumeopts.mounted(data):
        volumeopts.unmount(data)
        record = state.read_json(_record_path(vdir))
        record["Seeded"] = False
        state.write_json(_record_path(vdir), record)


def remove(root: str, name: str, force: bool = False) -> None:
    """``volume rm``: refused while a container (running or not) uses it, even with
    ``force``, as in Docker; ``force`` only makes a missing volume no error."""
    vdir = os.path.join(volumes_dir(root), name)
    try:
        with _locked(vdir, name):
            in_use = users(root, name)
            if in_use:
                raise VolumeInUse(f"remove {name}: volume is in use - [{', '.join(in_use)}]")
            # Still mounted (a start that died): unmounted first, whatever the record says,
            # so that deleting the volume never reaches into the device (a host directory).
            _unmount_device(vdir)
            doomed = os.path.join(volumes_dir(root), f".rm-{state.new_id()[:16]}")
            os.rename(vdir, doomed)  # under the lock: a waiter wakes to find it gone
    except VolumeNotFound:
        if force:
            return
        raise
    state.remove_tree(doomed)


def _matches(root: str, volume: Volume, filters: Mapping[str, Sequence[str]]) -> bool:
    import re

    for key, values in filters.items():
        if key == "dangling":
            for value in values:
                if (value.lower() in ("true", "1")) == bool(users(root, volume.name)):
                    return False
        elif key == "name":
            if not any(re.search(v, volume.name) for v in values):
                return False
        elif key == "driver":
            if DRIVER not in values:
                return False
        elif key == "label":
            have = volume.record.get("Labels") or {}
            for value in values:
                k, eq, v = value.partition("=")
                if k not in have or (eq and have[k] != v):
                    return False
    return True


def list_volumes(root: str, filters: Mapping[str, Sequence[str]] | None = None
                 ) -> list[Volume]:
    """Every volume, or those matching ``filters`` (``dangling``: used by no container;
    ``name``: a regular expression, as Docker's; ``label``: ``key`` or ``key=value``)."""
    for key, values in (filters or {}).items():  # refused even when nothing would match
        if key not in LIST_FILTERS:
            raise UsageError(f"invalid filter '{key}'")
        for value in values if key == "dangling" else ():
            if value.lower() not in ("true", "1", "false", "0"):
                raise UsageError(f"invalid filter 'dangling={value}'")
    found = []
    for name in _names(root):
        try:
            volume = get(root, name)
        except VolumeNotFound:
            continue  # removed while we listed
        if _matches(root, volume, filters or {}):
            found.append(volume)
    return found


def _size(path: str) -> int:
    """Bytes in ``path``'s files, each hard-linked file once (what removing it frees)."""
    total, seen = 0, set()
    for top, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(top, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def prune(root: str, all_volumes: bool = False,
          filters: Mapping[str, Sequence[str]] | None = None) -> tuple[list[str], int]:
    """Remove unused volumes: anonymous ones only, unless ``all_volumes`` (Docker 23's
    ``volume prune`` and ``-a``). Returns the names removed and the bytes freed."""
    wanted = {**(filters or {}), "dangling": ["true"]}
    removed, freed = [], 0
    for volume in list_volumes(root, wanted):
        if not (all_volumes or volume.anonymous):
            continue
        size = _size(volume.mountpoint)
        try:
            remove(root, volume.name)
        except (VolumeInUse, VolumeNotFound):
            continue  # taken by a run, or removed, since we listed
        removed.append(volume.name)
        freed += size
    return removed, freed


# -- seeding a new volume from the image -------------------------------------------------------

def seed(data_dir: str, source: str) -> bool:
    """Copy the image's ``source`` (a host path into the container's root filesystem, already
    resolved with secure_join) into a volume's ``data_dir``, the first time only.

    Done under the volume's lock; True if it copied. A volume that was seeded before, or
    that holds anything already, is left as it is; so is one whose image has nothing there
    (it is marked seeded all the same: the first mount decides, as in Docker).
    """
    vdir = os.path.dirname(data_dir)
    name = os.path.basename(vdir)
    with _locked(vdir, name):
        record = state.read_json(_record_path(vdir))
        if record.get("Seeded") or os.listdir(data_dir):
            return False
        copied = False
        if os.path.isdir(source):
            links: dict[tuple[int, int], str] = {}
            for entry in sorted(os.listdir(source)):
                _copy(os.path.join(source, entry), os.path.join(data_dir, entry), links)
            _copy_metadata(source, data_dir, os.lstat(source))
            copied = True
        record["Seeded"] = True
        state.write_json(_record_path(vdir), record)
        return copied


def _copy(src: str, dst: str, links: dict[tuple[int, int], str]) -> None:
    """One entry and what is under it, as it is: owner, mode, times, xattrs, hard links."""
    st = os.lstat(src)
    key = (st.st_dev, st.st_ino)
    if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in links:
        os.link(links[key], dst)
        return
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(dst, 0o700)  # opened up by _copy_metadata once its entries are in
        for entry in sorted(os.listdir(src)):
            _copy(os.path.join(src, entry), os.path.join(dst, entry), links)
    elif stat.S_ISREG(st.st_mode):
        _copy_file(src, dst)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    else:  # fifos, sockets, device nodes: the node itself, as an image layer carries it
        os.mknod(dst, st.st_mode, st.st_rdev)
    if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
        links[key] = dst
    _copy_metadata(src, dst, st)


def _copy_file(src: str, dst: str) -> None:
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            # sendfile(2), not copy_file_range(2): the image is on overlayfs and the volume
            # elsewhere, and copy_file_range refuses (EXDEV) between filesystem types.
            while os.sendfile(fout, fin, None, 1 << 30):
                pass
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    """Owner before mode, xattrs (not overlayfs's own), then times: as the vfs driver copies
    an image, so a seeded volume holds what the image's files hold."""
    from minidocker import vfs

    vfs.set_metadata(src, dst, st)


# -- --userns private where the filesystem has no idmapped mounts ------------------------------

def shift_owners(data_dir: str, uid: int, gid: int, count: int) -> bool:
    """Own the volume's files by a user namespace's range: container id ``k`` is stored as
    host id ``uid + k`` (``gid + k``), as Docker's ``userns-remap`` owns its volumes, so the
    container's root (host ``uid``) can write to them. The fallback for a filesystem without
    idmapped mounts; done once per range, under the volume's lock (``IdShift`` in opts.json
    records it), and a later range shifts from the recorded one. True if it changed anything.

    Ids outside the old range stay as they are (the container sees them as nobody). chown(2)
    clears set-user-ID and set-group-ID bits, which are put back.
    """
    vdir = os.path.dirname(data_dir)
    with _locked(vdir, os.path.basename(vdir)):
        record = state.read_json(_record_path(vdir))
        shift = record.get("IdShift")
        old_uid, old_gid = (shift[0], shift[1]) if isinstance(shift, list) else (0, 0)
        if (old_uid, old_gid) == (uid, gid):
            return False

        def shifted(n: int, old: int, new: int) -> int:
            return n - old + new if old <= n < old + count else n

        for top, dirs, files in os.walk(data_dir):
            # each directory once, as the top of its own walk; a symlink to one is not walked
            links = [n for n in dirs if os.path.islink(os.path.join(top, n))]
            for path in [top] + [os.path.join(top, n) for n in files + links]:
                st = os.lstat(path)
                os.lchown(path, shifted(st.st_uid, old_uid, uid),
                          shifted(st.st_gid, old_gid, gid))
                if st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISLNK(st.st_mode):
                    os.chmod(path, stat.S_IMODE(st.st_mode))
        record["IdShift"] = [uid, gid]
        state.write_json(_record_path(vdir), record)
        return True
