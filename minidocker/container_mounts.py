"""A container's mounts over its life: decided in the plan, taken at start, given back at removal.

The mechanisms are :mod:`minidocker.mounts` (what was asked, as host paths), :mod:`minidocker.
mounting` (the mount calls) and :mod:`minidocker.volumes` (the volume store); this module is
where the orchestration composes them, in the container's order:

1. ``plan``      :func:`plan_mounts` names each anonymous volume (a random 64-hex name, so the
                 record knows it before it exists) and resolves every mount to a host path;
                 nothing is created: a bad spec leaves the state root as it was;
2. ``host``      :func:`use_volumes`, a host step before fork: ``-v``'s missing bind sources
                 are made, each volume is made if needed and marked used by this container
                 (``refs/<cid>``), its undo registered at once (``create`` takes the
                 references earlier, with :func:`hold_volumes`, as Docker's daemon does);
3. ``child``     :mod:`minidocker.inside`'s ``mount_volumes``: a new volume is seeded from the
                 image (once), then everything is mounted before pivot_root; with
                 ``--userns private`` the child cannot reach the store, so the host seeds
                 (:func:`seed_from_image`) and makes each mount detached and idmapped
                 (:func:`detached_mounts`), and the child only attaches them;
4. ``teardown``  :func:`release_volumes`: the references go; ``rm -v`` and ``--rm`` also remove
                 the anonymous volumes (never a named one, as Docker).

Each mount is recorded in config.json (``Spec.mounts``) as a :class:`~minidocker.mounts.
MountPoint`'s fields plus ``name`` (the volume's, "" for a bind or tmpfs), ``nocopy``, ``labels``,
``create_source`` and ``mode``, so any later process (``rm``, ``inspect``) knows what it held.

Notebook: ``08_volumes``.
"""

from __future__ import annotations

import contextlib
import os

from minidocker import mounts, state, trace, volumes
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from minidocker.container import Start
    from minidocker.mounts import Mount


def plan_mounts(root: str, asked: Sequence[Mount], image_volumes: Sequence[str] = (),
                inherited: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """What the spec records for ``asked``, in mounting order (parents first).

    ``inherited``: the records ``--volumes-from`` brings (:func:`inherit`); a destination the
    container mounts itself wins, as in Docker. ``image_volumes``: the image's ``VOLUME``
    paths; each one nothing else covers becomes an anonymous volume, seeded from the image.
    """
    asked = mounts.with_image_volumes(asked, [r["target"] for r in inherited], image_volumes)
    names = {m.target: m.source or state.new_id() for m in asked if m.type == "volume"}
    paths = {target: os.path.join(volumes.volumes_dir(root), name, "_data")
             for target, name in names.items()}
    by_target = {m.target: m for m in asked}
    records = {r["target"]: dict(r) for r in inherited if r["target"] not in by_target}
    for point in mounts.plan(asked, paths):
        m = by_target[point.target]
        records[m.target] = {**point.to_dict(), "name": names.get(m.target, ""),
                             "anonymous": m.type == "volume" and not m.source,
                             "nocopy": m.nocopy, "labels": dict(m.labels),
                             "create_source": m.create_source, "mode": m.mode}
    return sorted(records.values(), key=lambda r: r["target"].rstrip("/").count("/"))


def volumes_from(specs: Sequence[str],
                 recorded_mounts: Callable[[str], Sequence[Mapping[str, Any]]]
                 ) -> list[dict[str, Any]]:
    """``--volumes-from C[:ro|:rw]``, each ``C`` looked up by ``recorded_mounts`` (the
    engine's: a container's recorded mounts, or UsageError), later ones winning a
    destination two of them share."""
    inherited: dict[str, dict[str, Any]] = {}
    for spec in specs:
        ref, readonly = mounts.parse_volumes_from(spec)
        for r in inherit(recorded_mounts(ref), readonly):
            inherited[r["target"]] = r
    return list(inherited.values())


def inherit(records: Sequence[Mapping[str, Any]], readonly: bool) -> list[dict[str, Any]]:
    """``--volumes-from C[:ro]``: C's volumes and binds (its recorded ``records``), at the
    same destinations and in the same mode, read-only if ``readonly``; not its tmpfs mounts
    (memory of its own). Never seeded again: the volume is C's, as it is."""
    return [{**r, "readonly": bool(r.get("readonly")) or readonly, "nocopy": True}
            for r in records if r.get("type") != "tmpfs"]


def plan_userns(root: str, records: Sequence[dict[str, Any]], uid: int, gid: int
                ) -> list[str]:
    """``--userns private``: how each volume's and bind's files will be owned, recorded in
    its record (``idmap``); returns the notes to show. Root inside is host ``uid``/``gid``.

    Where the filesystem takes idmapped mounts the mount is idmapped through the container's
    user namespace: the files keep their ids on disk (uid 0 stays 0, as any container without
    a user namespace sees them) and appear to the container as its own. Where it does not,
    a volume's files are chowned into the range the first time (Docker's ``userns-remap``
    owns its volumes by the remapped root), and a bind is shown as it is: the host's files
    are not ours to chown, and their owners appear as nobody (65534).
    """
    from minidocker import userns

    notes, probed = [], {}
    for r in records:
        if r["type"] != "bind":
            continue
        if r.get("name"):
            _refuse_driver_options(root, r)
        if r.get("propagation", mounts.DEFAULT_PROPAGATION) != mounts.DEFAULT_PROPAGATION:
            raise UsageError(f"--userns private: {r['target']}: bind propagation "
                             f"{r['propagation']} is not supported (rprivate only)")
        where = volumes.volumes_dir(root) if r.get("name") else r["source"]
        while not os.path.exists(where):  # a -v bind source made at start: its parent's fs
            where = os.path.dirname(where)
        dev = os.stat(where).st_dev
        if dev not in probed:
            probed[dev] = userns.idmap_supported(where)
        r["idmap"] = probed[dev]
        if r["idmap"]:
            continue
        if r.get("name"):
            try:
                if volumes.get(root, r["name"]).record.get("IdShift") == [uid, gid]:
                    continue  # chowned before: nothing new to say
            except volumes.VolumeNotFound:
                pass
            notes.append(f"volume {r['name'][:12]}: no idmapped mounts on its filesystem: "
                         f"its files are chowned to the container's range ({uid}:{gid} for "
                         "its root), as Docker's userns-remap owns volumes")
        else:
            notes.append(f"{r['source']}: no idmapped mounts on its filesystem: its files "
                         "keep their host owners, shown as nobody unless in the range")
    return notes


def _refuse_driver_options(root: str, record: Mapping[str, Any]) -> None:
    """A volume with ``--opt`` is a mount of its own (a tmpfs, a bind) that the user
    namespace would have to be mapped onto: not done, and said in one line."""
    try:
        options = volumes.get(root, record["name"]).record.get("Options")
    except volumes.VolumeNotFound:
        return  # made at start, without options
    if options:
        shown = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
        raise UsageError(f"--userns private: volume {record['name']}: volumes with driver "
                         f"options ({shown}) are not supported with a user namespace")


def _root(cdir: str) -> str:
    return os.path.dirname(os.path.dirname(cdir))  # ROOT/containers/<id>


def use_volumes(s: Start) -> None:
    """Host step, before fork: bind sources ``-v`` may make; each volume made if missing and
    referenced by this container, under the volume's lock (``volume rm`` sees it in use).
    A reference the container held already (since ``create``, or an earlier run) is kept if
    the start fails: the container still exists, and still holds it."""
    records = s.spec.mounts
    if not records:
        return
    trace.step("volumes", "bind sources made; each volume made if missing, and referenced")
    mounts.prepare_bind_sources([
        mounts.Mount(r["source"], r["target"], type="bind",
                     create_source=bool(r.get("create_source")))
        for r in records if r["type"] == "bind" and not r.get("name")])
    mounts.check_propagation([(r["source"], r.get("propagation") or "") for r in records
                              if r["type"] == "bind" and not r.get("name")])
    root = _root(s.cdir)
    for r in records:
        name = r.get("name")
        if not name:
            continue
        vdir = os.path.join(volumes.volumes_dir(root), name)
        fresh = not os.path.isdir(vdir)
        held = os.path.exists(os.path.join(vdir, "refs", s.spec.id))
        _use(root, s.spec.id, r, mount=True)
        if not held:
            s.undo.callback(_give_back, root, name, s.spec.id,
                            fresh and bool(r.get("anonymous")))
    mapping = s.spec.security.userns if s.spec.security is not None else None
    if mapping is not None:  # the child could not reach the volumes: seeded and owned here
        seed_from_image(s.cdir, s.lowers, records)
        for r in records:
            if r.get("name") and not r.get("idmap"):
                volumes.shift_owners(r["source"], mapping.uid_map.outside,
                                     mapping.gid_map.outside, mapping.uid_map.count)


def seed_from_image(cdir: str, lowers: Sequence[str], records: Sequence[Mapping[str, Any]]
                    ) -> None:
    """Seed new volumes from the image on the host side, for a ``--userns private`` child,
    which cannot reach the volume store: a throwaway process mounts the container's layers
    (its own upper among them) read-only, in a private mount namespace that dies with it,
    and copies what the image has at each target (:func:`minidocker.volumes.seed`)."""
    from minidocker import graphdriver, rootfs

    wanted = [r for r in records if r.get("name") and not r.get("nocopy")
              and not _seeded(os.path.dirname(r["source"]))]
    if not wanted:
        return  # the usual case after the first start: no process, no mount
    merged = os.path.join(cdir, "merged")
    if graphdriver.recorded(cdir)[0] == "vfs":  # a plain copy of the image: nothing to mount
        for r in wanted:
            volumes.seed(r["source"], rootfs.secure_join(merged, r["target"]))
        return
    from minidocker import syscalls

    trace.step("seed", "the image's files, read through a throwaway read-only overlay")
    child = os.fork()
    if child == 0:  # pragma: no cover - the throwaway child; its exit status says how it went
        code = 1
        try:
            syscalls.unshare(syscalls.CLONE.NEWNS)
            syscalls.mount(None, "/", None, syscalls.MS.REC | syscalls.MS.PRIVATE)
            layers = [os.path.join(cdir, "upper"), *lowers]  # topmost first, upper as a lower
            fds = [os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p in layers]
            syscalls.mount("overlay", merged, "overlay", syscalls.MS.RDONLY | syscalls.MS.NODEV,
                           "lowerdir=" + ":".join(f"/proc/self/fd/{fd}" for fd in fds))
            for r in wanted:
                volumes.seed(r["source"], rootfs.secure_join(merged, r["target"]))
            code = 0
        except BaseException as exc:  # whatever it is, the parent must hear of it
            os.write(2, f"minidocker: seeding the volumes failed: {exc}\n".encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise volumes.VolumeError("seeding the volumes from the image failed (see above)")


def _seeded(vdir: str) -> bool:
    """Seeded already (read without the lock: :func:`volumes.seed` looks again under it)."""
    try:
        return bool(state.read_json(os.path.join(vdir, "opts.json")).get("Seeded"))
    except FileNotFoundError:
        return False


def detached_mounts(records: Sequence[Mapping[str, Any]], pid: int) -> list[int]:
    """``--userns private``, in the parent once the child's ids are mapped: each volume and
    bind as a detached mount (idmapped through the child's user namespace where its
    filesystem allows, read-only if asked), in mounting order, for the child to attach."""
    from minidocker import mounting

    trace.step("detached mounts", "each volume and bind, idmapped where it can be, sent over")
    userns_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    fds: list[int] = []
    try:
        for r in records:
            if r["type"] == "bind":
                fds.append(mounting.detached_bind(r["source"], bool(r.get("readonly")),
                                                  userns_fd if r.get("idmap") else None))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        os.close(userns_fd)
    return fds


def _use(root: str, cid: str, record: Mapping[str, Any], mount: bool = False) -> None:
    labels = dict(record.get("labels") or {})
    if record.get("anonymous"):
        labels[volumes.ANONYMOUS_LABEL] = ""
    volumes.use(root, record["name"], cid, labels, mount=mount)


def hold_volumes(root: str, cid: str, records: Sequence[Mapping[str, Any]]) -> None:
    """At ``create``: each volume made if missing and referenced by container ``cid``, so
    ``volume rm`` refuses it before the first start too (its record, written already, lets
    the teardown give them back if anything fails after)."""
    for r in records:
        if r.get("name"):
            _use(root, cid, r)


def _give_back(root: str, name: str, cid: str, remove: bool) -> None:
    volumes.release(root, name, cid)
    if remove:
        # another container uses it now, or it is gone already: either way, not ours to remove
        with contextlib.suppress(volumes.VolumeInUse, volumes.VolumeNotFound):
            volumes.remove(root, name)


def release_volumes(root: str, cdir: str, cid: str, remove_anonymous: bool) -> None:
    """Container ``cid`` (its record in ``cdir``) gives back its volumes; idempotent. With
    ``remove_anonymous`` (``rm -v``, ``--rm``) its anonymous volumes are removed too."""
    try:
        record = state.read_json(os.path.join(cdir, "config.json"))
    except (OSError, ValueError):
        return
    records = record.get("mounts") if isinstance(record, dict) else None
    for r in records if isinstance(records, list) else []:
        if r.get("name"):
            _give_back(root, r["name"], cid, remove_anonymous and bool(r.get("anonymous")))


def docker_mounts(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``inspect``'s ``Mounts``, as Docker shows them (in the order they were mounted)."""
    shown = []
    for r in records:
        kind = "volume" if r.get("name") else r.get("type", "bind")
        entry: dict[str, Any] = {"Type": kind}
        if kind == "volume":
            entry["Name"] = r["name"]
        entry.update({"Source": r.get("source", ""), "Destination": r.get("target", "")})
        if kind == "volume":
            entry["Driver"] = volumes.DRIVER
        entry.update({"Mode": r.get("mode", ""), "RW": not r.get("readonly"),
                      "Propagation": r.get("propagation", "") if kind == "bind" else ""})
        shown.append(entry)
    return shown
