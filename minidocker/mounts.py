"""Mounts a container asks for: ``-v``, ``--mount``, ``--tmpfs`` and ``--read-only``.

Three kinds, as in Docker:

- a **bind mount** shows a host path inside the container (``-v /srv/www:/usr/share/www:ro``);
- a **volume** is a directory minidocker keeps for you under ``<root>/volumes/<name>/_data``
  (``-v data:/var/lib/db``, or ``-v /var/lib/db`` for an anonymous one; see
  :mod:`minidocker.volumes`), which outlives the container;
- a **tmpfs** is memory (``--tmpfs /run:size=64m``), gone with the container.

Decide, then do. :func:`parse_volume`, :func:`parse_mount` and :func:`parse_tmpfs` turn what
was typed into :class:`minidocker.config.Mount` records, with Docker's rules and Docker's words
for what is wrong (moby ``volume/mounts/linux_parser.go``, docker/cli ``opts/mount.go``); they
mount nothing. At start, :func:`plan` resolves them to host paths (:class:`MountPoint`, sorted
so a parent is mounted before what lies under it), and in the container's child, after the
root filesystem is mounted and before ``pivot_root``, :func:`apply_mounts` carries the plan
out: ``mount(src, dst, NULL, MS_BIND|MS_REC)``, then the propagation
(``MS_REC|MS_PRIVATE``...), then ``MS_BIND|MS_REMOUNT|MS_RDONLY`` for ``:ro``, made recursive
with mount_setattr(2). :func:`remount_root_readonly` is ``--read-only``.

:func:`parse_volumes_from` reads ``--volumes-from C[:ro|:rw]``, and :func:`with_image_volumes`
adds an anonymous volume for each of the image's ``VOLUME`` paths nothing else covers.

Every target is resolved inside the image with :func:`minidocker.rootfs.secure_join`, so an
image whose ``/data`` is a symlink to ``/etc`` cannot make a mount land on the host's.

Notebook: ``08_volumes``. Man pages: mount(2), mount_namespaces(7) (propagation),
mount_setattr(2), tmpfs(5).
"""

from __future__ import annotations

import os

from minidocker.errors import UsageError
from minidocker.record import Record


class Mount(Record):
    """One mount the container asked for, as Docker's ``-v``, ``--mount`` and ``--tmpfs`` say
    it (parsed by :mod:`minidocker.mounts`, kept lossless so ``inspect`` can show it).

    ``type``: ``bind`` (``source`` a host path), ``volume`` (``source`` a volume's name, ""
    for an anonymous one, see :mod:`minidocker.volumes`) or ``tmpfs`` (no source).
    ``propagation``: a bind's (``rprivate`` when "", Docker's default). ``nocopy``: do not seed
    a new volume from the image. ``tmpfs_options``: ``size=64m,mode=1777``... as typed.
    ``create_source``: a missing bind source is made as a directory at start (``-v`` does
    that; ``--mount`` refuses instead). ``relabel``: ``z``/``Z``, kept but not applied (no
    SELinux labels in minidocker). ``labels``: ``volume-label``s for a volume it creates.
    ``mode``: what ``inspect`` shows as ``Mode``: ``-v``'s mode field as typed, ``z`` for a
    ``-v`` volume typed without one (Docker's Linux default), "" for ``--mount``.
    """

    __slots__ = ("source", "target", "readonly", "type", "propagation", "nocopy",
                 "tmpfs_options", "create_source", "relabel", "labels", "mode")

    def __init__(self, source: str, target: str, readonly: bool = False,
                 type: str = "bind", propagation: str = "", nocopy: bool = False,
                 tmpfs_options: str = "", create_source: bool = False, relabel: str = "",
                 labels: Mapping[str, str] | None = None, mode: str = "") -> None:
        self.source = source
        self.target = target
        self.readonly = readonly
        self.type = type
        self.propagation = propagation
        self.nocopy = nocopy
        self.tmpfs_options = tmpfs_options
        self.create_source = create_source
        self.relabel = relabel
        self.labels = dict(labels or {})
        self.mode = mode


TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

# -v's mode field: each group may appear once (linuxValidMountMode).
RW_MODES = ("ro", "rw")
LABEL_MODES = ("z", "Z")  # SELinux relabelling: accepted, kept, not applied
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
COPY_MODES = ("nocopy",)
CONSISTENCY_MODES = ("consistent", "cached", "delegated")  # macOS-era hints; no-ops on Linux
DEFAULT_PROPAGATION = "rprivate"

# Docker's local driver's names (moby names.RestrictedNamePattern): at least two characters.
VOLUME_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"

# --tmpfs options: mount flags (``exec`` clears what the default ``noexec`` set) and the data
# keys tmpfs(5) takes (moby/sys/mount's validFlags for tmpfs).
TMPFS_DEFAULT_FLAGS = ("noexec", "nosuid", "nodev")
TMPFS_FLAG_OPTIONS = ("ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync",
                      "async", "dirsync", "atime", "noatime", "diratime", "nodiratime",
                      "relatime", "norelatime", "strictatime", "nostrictatime",
                      *PROPAGATIONS, "defaults")
TMPFS_DATA_OPTIONS = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")


def _clean(path: str) -> str:
    """Go's ``path.Clean``: ``/data/`` and ``//data`` are ``/data`` (normpath keeps ``//``)."""
    cleaned = os.path.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _mount_config_error(kind: str, reason: str) -> UsageError:
    return UsageError(f'invalid mount config for type "{kind}": {reason}')


def _check_target(kind: str, target: str) -> None:
    """The daemon's checks on a destination, in its order (validateMountConfigImpl)."""
    if not target:
        raise _mount_config_error(kind, "field Target must not be empty")
    if _clean(target) == "/":
        raise _mount_config_error(kind, "invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise _mount_config_error(kind, f"invalid mount path: '{target}' mount path must be "
                                        "absolute")


def check_volume_name(name: str) -> None:
    """Docker's local driver's rule, and its hint: a relative path is taken for a name."""
    import re

    if not re.fullmatch(VOLUME_NAME_CHARS + "+", name):
        raise UsageError(f'"{name}" includes invalid characters for a local volume name, only '
                         f'"{VOLUME_NAME_CHARS}" are allowed. If you intended to pass a host '
                         "directory, use absolute path")


def _valid_mode(mode: str) -> bool:
    if not mode:
        return True
    counts = [0] * 5
    for option in mode.split(","):
        for i, group in enumerate((RW_MODES, LABEL_MODES, PROPAGATIONS, COPY_MODES,
                                   CONSISTENCY_MODES)):
            if option in group:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1  # "ro,rw" or "shared,slave": conflicting, refused


def parse_volume(spec: str, cwd: str) -> Mount:
    """One ``-v``/``--volume``: ``/data``, ``name:/data``, ``/host:/data``, each with an
    optional ``:ro,rw,z,Z,nocopy,<propagation>`` mode. A source starting with ``.`` is a host
    path relative to ``cwd`` (the docker CLI's rule since 23.0).

    A bind source is not checked here: ``-v`` makes a missing one a directory at start, as
    Docker's daemon does (``create_source``); only the start can know what exists then.
    """
    def invalid(reason: str = "") -> UsageError:
        return UsageError(f"invalid volume specification: '{spec}'"
                          + (f": {reason}" if reason else ""))

    fields = spec.split(":", 3)
    if not fields[0]:
        raise invalid()
    source, mode = "", ""
    if len(fields) == 1:
        target = fields[0]
    elif len(fields) == 2:
        if _valid_mode(fields[1]):  # "/data:ro": a mode on an anonymous volume is meaningless
            raise invalid()
        source, target = fields
    elif len(fields) == 3:
        source, target, mode = fields
    else:
        raise invalid()
    if not _valid_mode(mode):
        raise UsageError(f"invalid mode: {mode}")
    if source.startswith("."):
        source = os.path.normpath(os.path.join(cwd, source))
    kind = "bind" if source.startswith("/") else "volume"
    options = mode.split(",") if mode else []
    propagation = next((o for o in options if o in PROPAGATIONS), "")
    try:
        # The daemon's order: options of the wrong kind first, then the destination.
        if propagation and kind != "bind":
            raise _mount_config_error(kind, "field BindOptions must not be specified")
        if "nocopy" in options and kind != "volume":
            raise _mount_config_error(kind, "field VolumeOptions must not be specified")
        _check_target(kind, target)
    except UsageError as exc:
        raise invalid(str(exc)) from None
    if kind == "volume" and source:
        check_volume_name(source)
    return Mount(_clean(source) if kind == "bind" else source, _clean(target),
                 readonly="ro" in options, type=kind,
                 propagation=(propagation or DEFAULT_PROPAGATION) if kind == "bind" else "",
                 nocopy="nocopy" in options, create_source=kind == "bind",
                 relabel=next((o for o in options if o in LABEL_MODES), ""),
                 mode=mode or ("z" if kind == "volume" else ""))


def parse_mount(spec: str, cwd: str, exists: Callable[[str], bool] = os.path.exists) -> Mount:
    """One ``--mount type=bind|volume|tmpfs,source=...,target=...,...`` (CSV, as docker/cli
    reads it). Unlike ``-v``, a bind whose source does not exist is refused (``exists``
    answers that; a test passes its own)."""
    import csv

    def invalid(reason: str) -> UsageError:
        return UsageError(f'invalid argument "{spec}" for "--mount" flag: {reason}')

    value = spec.strip()
    if not value:
        raise invalid("value is empty")
    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration) as exc:
        raise invalid(str(exc)) from None
    kind, source, target, readonly, nocopy = "volume", "", "", False, False
    propagation, tmpfs_size, tmpfs_mode = "", "", ""
    labels: dict[str, str] = {}
    groups: set[str] = set()  # which kind's options were given: bind, volume, tmpfs
    for field in fields:
        key, sep, val = field.partition("=")
        has_value = bool(sep)
        if key.strip() != key:
            raise invalid(f"invalid option '{key.strip()}' in '{field}': option should not "
                          "have whitespace")
        if has_value and not val.strip():
            raise invalid(f"invalid value for '{key}': value is empty")
        if has_value and val.strip() != val:
            raise invalid(f"invalid value for '{key}' in '{field}': value should not have "
                          "whitespace")
        key = key.lower()
        if not has_value and key not in ("readonly", "ro", "volume-nocopy"):
            raise invalid(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            kind = val.lower()
        elif key in ("source", "src"):
            source = os.path.normpath(os.path.join(cwd, val)) if val.startswith(".") else val
        elif key in ("target", "dst", "destination"):
            target = val
        elif key in ("readonly", "ro"):
            readonly = _parse_bool(key, val, has_value, invalid)
        elif key == "volume-nocopy":
            nocopy = _parse_bool(key, val, has_value, invalid)
            groups.add("volume")
        elif key == "volume-label":
            name, _, label_value = val.partition("=")
            labels[name] = label_value
            groups.add("volume")
        elif key == "bind-propagation":
            propagation = val.lower()
            groups.add("bind")
        elif key == "tmpfs-size":
            tmpfs_size = _tmpfs_size(val, invalid)
            groups.add("tmpfs")
        elif key == "tmpfs-mode":
            try:
                tmpfs_mode = f"{int(val, 8):o}"
            except ValueError:
                raise invalid(f"invalid value for {key}: {val}") from None
            groups.add("tmpfs")
        elif key == "consistency":
            pass  # a macOS-era hint; nothing to do on Linux
        else:
            raise invalid(f"unknown option '{key}' in '{field}'")
    for group in sorted(groups - {kind}):
        raise invalid(f"cannot mix '{group}-*' options with mount type '{kind}'")
    if kind not in ("bind", "volume", "tmpfs"):
        raise _mount_config_error(kind, "mount type unknown")
    _check_target(kind, target)
    if kind == "bind":
        if not source:
            raise _mount_config_error(kind, "field Source must not be empty")
        if propagation and propagation not in PROPAGATIONS:
            raise _mount_config_error(kind, f"invalid propagation mode: {propagation}")
        if not source.startswith("/"):
            raise _mount_config_error(kind, f"invalid mount path: '{source}' mount path must "
                                            "be absolute")
        if not exists(source):
            raise _mount_config_error(kind, f"bind source path does not exist: {source}")
        return Mount(_clean(source), _clean(target), readonly, "bind",
                     propagation or DEFAULT_PROPAGATION)
    if kind == "tmpfs":
        if source:
            raise _mount_config_error(kind, "field Source must not be specified")
        options = ",".join(o for o in (f"mode={tmpfs_mode}" if tmpfs_mode else "",
                                       f"size={tmpfs_size}" if tmpfs_size else "") if o)
        return Mount("", _clean(target), readonly, "tmpfs", tmpfs_options=options)
    if source:
        check_volume_name(source)
    return Mount(source, _clean(target), readonly, "volume", nocopy=nocopy, labels=labels)


def _parse_bool(key: str, val: str, has_value: bool,
                invalid: Callable[[str], UsageError]) -> bool:
    if not has_value or val in ("1", "true"):
        return True
    if val in ("0", "false"):
        return False
    raise invalid(f"invalid value for '{key}': invalid boolean value (\"{val}\"): must be one "
                  'of "true", "1", "false", or "0" (default "true")')


def _tmpfs_size(val: str, invalid: Callable[[str], UsageError]) -> str:
    """go-units' RAMInBytes (``64m``, ``1.5g``, ``512``: binary units), written back as
    Docker's ConvertTmpfsOptions writes it: the largest unit that divides it evenly."""
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", val, re.IGNORECASE)
    if not match:
        raise invalid(f"invalid value for tmpfs-size: {val}")
    size = int(float(match[1]) * 1024 ** " kmgtp".index(match[2].lower() or " "))
    for suffix, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % divisor == 0:
            return f"{size // divisor}{suffix}"
    return str(size)


def parse_tmpfs(spec: str) -> Mount:
    """One ``--tmpfs /run[:size=64m,mode=1777,...]``: a destination and mount options."""
    target, _, options = spec.partition(":")
    _check_target("tmpfs", target)
    check_tmpfs_options(options)  # refuse a bad option now, not at start
    return Mount("", _clean(target), "ro" in options.split(","), "tmpfs",
                 tmpfs_options=options)


def parse_flags(volumes: Sequence[str], mounts: Sequence[str], tmpfs: Sequence[str],
                cwd: str) -> list[Mount]:
    """``run``'s ``-v``, ``--mount`` and ``--tmpfs`` together; one destination, one mount."""
    parsed = [parse_volume(v, cwd) for v in volumes] + [parse_mount(m, cwd) for m in mounts]
    parsed += [parse_tmpfs(t) for t in tmpfs]
    seen: set[str] = set()
    for m in parsed:
        if m.target in seen:
            raise UsageError(f"Duplicate mount point: {m.target}")
        seen.add(m.target)
    return parsed


def parse_volumes_from(spec: str) -> tuple[str, bool]:
    """One ``--volumes-from CONTAINER[:ro|:rw]``: the container, and whether its mounts are
    forced read-only. ``rw`` (the default) keeps each mount's own mode: it never makes a
    read-only mount writable (moby: ``RW = m.RW && ReadWrite(mode)``). Propagation and
    ``nocopy`` are refused: the mounts keep the other container's (ParseVolumesFrom)."""
    if not spec:
        raise UsageError("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    options = mode.split(",") if mode else []
    if not ref or not _valid_mode(mode) or any(o in PROPAGATIONS + COPY_MODES
                                               for o in options):
        raise UsageError(f"invalid mode for volumes-from: {mode or spec}")
    return ref, "ro" in options


def with_image_volumes(asked: Sequence[Mount], taken: Sequence[str],
                       image_volumes: Sequence[str]) -> list[Mount]:
    """``asked`` and an anonymous volume for each of the image's ``VOLUME`` paths that no
    mount already covers (``taken``: the targets of ``asked`` and of ``--volumes-from``), as
    Docker's daemon adds them at create."""
    covered = {_clean(t) for t in taken} | {m.target for m in asked}
    added = [Mount("", _clean(path), type="volume") for path in sorted(image_volumes)
             if path.startswith("/") and _clean(path) not in covered | {"/"}]
    return [*asked, *added]


def notes(mounts: Sequence[Mount], selinux: bool | None = None) -> list[str]:
    """What was asked but is not done, one line each, for the command to print.

    ``z``/``Z`` ask Docker to relabel the source for SELinux. Where SELinux is not enabled
    (``selinux``: None reads the host, :func:`minidocker.lsm.status`) there is nothing to
    relabel; where it is, minidocker still does not, and the container may be denied."""
    asked = [m for m in mounts if m.relabel]
    if not asked:
        return []
    if selinux is None:
        from minidocker import lsm

        selinux = lsm.status().selinux_present
    if not selinux:
        return [f"{m.source or m.target}: {m.relabel} ignored: no SELinux on this host"
                for m in asked]
    return [f"{m.source or m.target}: {m.relabel}: minidocker does not relabel for SELinux; "
            "the container may be denied access to it" for m in asked]


# -- the plan: host paths, in mounting order --------------------------------------------------

class MountPoint(Record):
    """One mount decided: ``source`` a host path (a volume's ``_data`` by now; "" for tmpfs),
    ``target`` the path inside the container, ``propagation`` a bind's, ``data`` tmpfs's."""

    __slots__ = ("source", "target", "type", "readonly", "propagation", "data")

    def __init__(self, source: str, target: str, type: str = "bind", readonly: bool = False,
                 propagation: str = DEFAULT_PROPAGATION, data: str = "") -> None:
        self.source = source
        self.target = target
        self.type = type
        self.readonly = readonly
        self.propagation = propagation
        self.data = data


def plan(mounts: Sequence[Mount], volume_paths: Mapping[str, str]) -> list[MountPoint]:
    """The mounts as host paths, parents first (Docker's mountSort: fewer path components
    first), so ``/data`` does not hide a ``/data/cache`` mounted before it.

    ``volume_paths``: for each volume mount's target, its volume's ``_data`` directory (the
    start step got it from :func:`minidocker.volumes.use`).
    """
    planned = []
    for m in mounts:
        if m.type == "volume":
            planned.append(MountPoint(volume_paths[m.target], m.target, "bind", m.readonly))
        elif m.type == "tmpfs":
            planned.append(MountPoint("", m.target, "tmpfs", m.readonly, "", m.tmpfs_options))
        else:
            planned.append(MountPoint(m.source, m.target, "bind", m.readonly,
                                      m.propagation or DEFAULT_PROPAGATION))
    return sorted(planned, key=lambda p: p.target.rstrip("/").count("/"))


def check_propagation(binds: Sequence[tuple[str, str]]) -> None:
    """Docker's rule for ``(source, propagation)`` pairs, on the host at start: a bind that
    asks for shared propagation needs a source on a shared mount, slave a shared or slave one
    (else there is no peer group to take part in); one line if not."""
    asked = [(source, p.removeprefix("r")) for source, p in binds
             if p.removeprefix("r") in ("shared", "slave")]
    if not asked:
        return
    from minidocker import mountinfo

    for source, kind in asked:
        entry = mountinfo.mount_of(source)
        has = mountinfo.propagation(entry) if entry else "private"
        if "shared" not in has and not (kind == "slave" and "slave" in has):
            wanted = "a shared mount" if kind == "shared" else "a shared or slave mount"
            where = entry.mount_point if entry else "/"
            raise UsageError(f"path {source} is mounted on {where} but it is not {wanted}")


def prepare_bind_sources(mounts: Sequence[Mount]) -> None:
    """On the host, before the child: make the missing sources ``-v`` asked for (directories,
    as Docker makes them); a ``--mount`` source that vanished since ``create`` is refused."""
    for m in mounts:
        if m.type != "bind" or os.path.exists(m.source):
            continue
        if not m.create_source:
            raise _mount_config_error("bind", f"bind source path does not exist: {m.source}")
        os.makedirs(m.source, mode=0o755, exist_ok=True)


# -- applying it, in the container's mount namespace ------------------------------------------


TMPFS_SET_FLAGS = ("ro", "sync", "dirsync", "noatime", "nodiratime", "relatime", "strictatime",
                   "noexec", "nosuid", "nodev")
TMPFS_CLEAR_FLAGS = ("rw", "exec", "suid", "dev", "async", "atime", "diratime", "norelatime",
                     "nostrictatime")


def check_tmpfs_options(options: str) -> None:
    """Refuse a ``--tmpfs`` option mount(2) would not take, as Docker does, when it is typed
    (:func:`minidocker.mounting.tmpfs_flags_and_data` turns the good ones into flags)."""
    for option in (o for o in options.split(",") if o):
        key = option.partition("=")[0]
        if not ((key in TMPFS_DATA_OPTIONS and "=" in option) or option in TMPFS_SET_FLAGS
                or option in TMPFS_CLEAR_FLAGS or option in PROPAGATIONS
                or option == "defaults"):
            raise UsageError(f'invalid tmpfs option "{key}"')
