"""A bundle's container: what the start does differently when ``config.json`` drives it.

``minidocker-runtime`` (:mod:`minidocker.ociruntime`) hands the engine a config and an
:class:`~minidocker.runtimespec.OciSpec`; the start is the same two lists of steps
(:data:`minidocker.container.HOST_STEPS`, :data:`minidocker.inside.CHILD_STEPS`), and where a
step must do what the bundle says instead of what ``minidocker run`` does, it calls a function
here:

============================ ===============================================================
step                         with a bundle
============================ ===============================================================
``prepare`` (engine)         a directory holding only ``merged`` (the mount point) and
                             ``exec.fifo``: no image, no layers, no /etc files
``mount_rootfs``             ``root.path`` bind-mounted (not overlaid), then the bundle's
                             mount table in order (:func:`mount_table`), in place of the
                             defaults: mount(2) flags and data, propagation, ``r*``
                             attributes by mount_setattr(2)
``populate_dev``             the default nodes and ``linux.devices`` made with mknod(2)
``pivot``                    the exec fifo opened (``O_PATH``) while its host path is in reach
``mask_paths``               ``linux.sysctl``, the domainname, then ``maskedPaths`` and
                             ``readonlyPaths``, ``rootfsPropagation`` on /, ``oomScoreAdj``
                             and ``umask``
``wait_for_start``           after ``confine`` (user, capabilities, seccomp): tell the runtime
                             "created", then block opening the fifo until
                             ``minidocker-runtime start`` reads it; only execve is left
============================ ===============================================================

That last step is runc's ``exec.fifo``: ``create`` returns while the container's process,
fully set up in its namespaces, waits in open(2) for a reader; ``start`` opens the fifo for
reading, which lets the open complete, and reads the one byte the process writes before its
execve. Everything else (namespaces, cgroups, capabilities, seccomp, rlimits, the user) is the
ordinary start, driven through the typed config.

See the OCI runtime-spec ``config.md``, ``config-linux.md`` and ``runtime.md`` (the state and
the lifecycle); runc's ``libcontainer/rootfs_linux.go`` does the same for runc.
"""

from __future__ import annotations

import os
import stat

from minidocker import rootfs, syscalls, trace
from minidocker.errors import MinidockerError, UsageError
from minidocker.syscalls import MS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from minidocker.cgroups import Cgroup
    from minidocker.runtimespec import OciMount, OciSpec
    from minidocker.spec import Spec
    from minidocker.state import Layout
    from minidocker.userns import UsernsPlan

FIFO = "exec.fifo"
PIPE_BUF = 4096  # a write up to this size reaches a pipe's reader whole (pipe(7))
# mount_setattr(2)'s MOUNT_ATTR_* for the runtime-spec's recursive options: (set, clear).
_ATIME_MASK = 0x70
RECURSIVE_ATTRS: dict[str, tuple[int, int]] = {
    "rro": (0x1, 0), "rrw": (0, 0x1), "rnosuid": (0x2, 0), "rsuid": (0, 0x2),
    "rnodev": (0x4, 0), "rdev": (0, 0x4), "rnoexec": (0x8, 0), "rexec": (0, 0x8),
    "rnodiratime": (0x80, 0), "rdiratime": (0, 0x80), "rrelatime": (0, _ATIME_MASK),
    "rnorelatime": (0, 0), "rnoatime": (0x10, _ATIME_MASK), "ratime": (0, _ATIME_MASK),
    "rstrictatime": (0x20, _ATIME_MASK), "rnostrictatime": (0, 0),
    "rnosymfollow": (0x200000, 0), "rsymfollow": (0, 0x200000),
}
_PROPAGATION = MS.SHARED | MS.SLAVE | MS.PRIVATE | MS.UNBINDABLE
_DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def check(oci: OciSpec) -> None:
    """Refuse, with one line naming the field, what the start cannot apply yet; nothing is
    made before this runs (the engine's plan calls it)."""
    for kind in ("user", "mnt"):
        if kind in oci.namespace_paths:
            raise UsageError(f"config.json: linux.namespaces: joining a {kind} namespace by "
                             "path is not supported yet")
    if oci.uid_mappings or oci.gid_mappings:
        userns_plan(oci)
        if oci.namespace_paths:  # owned by the host's user namespace: not ours to join
            raise UsageError(f"config.json: linux.namespaces: joining a "
                             f"{sorted(oci.namespace_paths)[0]} namespace by path together with "
                             "a new user namespace is not supported")
    if oci.memory_v1:
        from minidocker import cgroups

        if cgroups.version() == 2:
            raise UsageError("config.json: linux.resources.memory: kernel, kernelTCP, "
                             "swappiness and disableOOMKiller have no cgroup v2 file")
    path = oci.cgroups_path
    if ":" in path:
        raise UsageError(f"config.json: linux.cgroupsPath {path!r}: a systemd "
                         "slice:prefix:name is not supported")
    parts = path.strip("/").split("/")
    if path and (not path.strip("/") or any(p in ("", ".", "..") for p in parts)):
        raise UsageError(f"config.json: linux.cgroupsPath {path!r}: want a path like "
                         "/parent/name")
    for m in oci.mounts:
        if m.type == "cgroup" and not MS(m.flags) & MS.RDONLY:
            raise UsageError(f"config.json: mounts: a writable cgroup mount at "
                             f"{m.destination} is not supported")


def userns_plan(oci: OciSpec) -> UsernsPlan:
    """``linux.uidMappings``/``gidMappings`` as the engine's user namespace plan: one line each
    (what :class:`~minidocker.userns.UsernsPlan` holds), mapping the container's root."""
    from minidocker.userns import IdMap, UsernsPlan

    maps = []
    for field, entries in (("uidMappings", oci.uid_mappings), ("gidMappings", oci.gid_mappings)):
        if len(entries) != 1:
            raise UsageError(f"config.json: linux.{field}: {len(entries)} mappings; "
                             "minidocker-runtime maps one range")
        m = entries[0]
        if not m["containerID"] <= 0 < m["containerID"] + m["size"]:
            raise UsageError(f"config.json: linux.{field}: the container's root (0) is not "
                             "mapped")
        maps.append(IdMap(m["containerID"], m["hostID"], m["size"]))
    return UsernsPlan(maps[0], maps[1])


def userns_sources(oci: OciSpec) -> dict[str, int]:
    """In a new user namespace, before its root takes over (still the host's uid 0, so the
    bundle's directories open, however closed): ``O_PATH`` fds of the root filesystem and the
    bind sources, to mount through ``/proc/self/fd`` (runc's "mount fds")."""
    paths = [oci.rootfs] + [m.source for m in oci.mounts if m.type == "bind"]
    return {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in dict.fromkeys(paths)}


def cgroup_place(oci: OciSpec) -> tuple[str, str]:
    """``linux.cgroupsPath`` as (parent, name); ("", "") for minidocker's own place. A path of
    one component is right under each hierarchy's root (parent "/"). A relative path is taken
    from the root too (runc: from the runtime's own group, which here is the root anyway)."""
    if not oci.cgroups_path:
        return "", ""
    parent, _, name = oci.cgroups_path.strip("/").rpartition("/")
    return parent or "/", name


def set_memory_v1(oci: OciSpec, cgroup: Cgroup) -> None:
    """The bundle's v1-only memory settings, before fork (kmem limits cannot change once a
    task is in the group, on the kernels that still enforce them: Linux 6.x takes the write
    to ``memory.kmem.limit_in_bytes`` and enforces nothing)."""
    trace.step("cgroup", ", ".join(f"{f}={v}" for f, v in oci.memory_v1.items()))
    for file, value in oci.memory_v1.items():
        syscalls.write_file(os.path.join(cgroup.paths["memory"], file), value)


def prepare(spec: Spec, layout: Layout) -> str:
    """The container's directory: ``merged`` to bind the bundle's root on, the exec fifo."""
    cdir = layout.container(spec.id)
    os.makedirs(layout.containers, exist_ok=True)
    os.mkdir(cdir, 0o710)
    os.mkdir(os.path.join(cdir, "merged"), 0o755)
    fifo = os.path.join(cdir, FIFO)
    os.mkfifo(fifo, 0o622)
    os.chmod(fifo, 0o622)  # whatever the umask: the container's user, maybe not root, writes
    return cdir


# -- the container's side ------------------------------------------------------------------

def mount_rootfs(oci: OciSpec, merged: str, cgroup: Cgroup | None,
                 sources: dict[str, int] | None = None) -> None:
    """``root.path`` bind-mounted at ``merged``, then the bundle's mount table. ``sources``:
    fds opened before (:func:`userns_sources`) to bind from instead of the paths."""
    trace.step("rootfs", f"bind {oci.rootfs}, then the bundle's {len(oci.mounts)} mounts")
    sources = sources or {}

    def source(path: str) -> str:
        return f"/proc/self/fd/{sources[path]}" if path in sources else path

    rootfs.make_mounts_private()
    syscalls.mount(source(oci.rootfs), merged, None, MS.BIND | MS.REC)
    mount_table(merged, oci.mounts, cgroup, source)
    for fd in sources.values():
        os.close(fd)


def mount_table(root: str, mounts: list[OciMount], cgroup: Cgroup | None,
                source: Callable[[str], str] = str) -> None:
    for m in mounts:
        where = rootfs.secure_join(root, m.destination)
        flags = MS(m.flags)
        if m.type == "bind":
            _make_target(where, os.path.isdir(source(m.source)))
            syscalls.mount(source(m.source), where, None, MS.BIND | (flags & MS.REC))
            if flags & ~(MS.BIND | MS.REC):  # the flags need a remount of the bind
                syscalls.mount(None, where, None, MS.BIND | MS.REMOUNT | _kept(where) |
                               (flags & ~MS.REC))
        elif m.type == "cgroup":
            _make_target(where, True)
            _mount_cgroup(where, cgroup, flags)
        else:
            _make_target(where, True)
            syscalls.mount(m.source or m.type, where, m.type, flags, m.data or None)
        if m.propagation:
            syscalls.mount(None, where, None, MS(m.propagation))
        for option in m.recursive:
            attr_set, attr_clr = RECURSIVE_ATTRS[option]
            syscalls.mount_setattr(where, attr_set, attr_clr, recursive=True)


def _kept(where: str) -> MS:
    """A bind remount must repeat the flags the mount has locked (statvfs's ST_*)."""
    from minidocker.mounting import kept_flags

    return kept_flags(where)


def _make_target(where: str, directory: bool) -> None:
    if directory:
        os.makedirs(where, 0o755, exist_ok=True)
    elif not os.path.lexists(where):
        os.makedirs(os.path.dirname(where), 0o755, exist_ok=True)
        os.close(os.open(where, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _mount_cgroup(where: str, cgroup: Cgroup | None, flags: MS) -> None:
    """The container's own cgroups, read-only: cgroup2 on a v2 host (from inside its cgroup
    namespace, the tree's root is its group); on v1 a tmpfs holding a bind of its group in
    each hierarchy, as runc mounts them."""
    flags = flags | MS.RDONLY
    if cgroup is None or cgroup.version == 2:
        syscalls.mount("cgroup2", where, "cgroup2", flags, None)
        return
    syscalls.mount("tmpfs", where, "tmpfs", MS.NOSUID | MS.NODEV | MS.NOEXEC, "mode=755")
    for controller, path in sorted(cgroup.paths.items()):
        target = os.path.join(where, controller)
        os.mkdir(target, 0o755)
        syscalls.mount(path, target, None, MS.BIND)
        syscalls.mount(None, target, None, MS.BIND | MS.REMOUNT | flags)
    syscalls.mount(None, where, None, MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV |
                   MS.NOEXEC, "mode=755")


def make_devices(oci: OciSpec, merged: str, userns: bool = False) -> None:
    """A /dev tmpfs in the table gets the default nodes (the spec's list, as runc makes them)
    and ``linux.devices``, with mknod(2); in a user namespace, which may not mknod, the host's
    own nodes bind-mounted (as runc does there)."""
    if not any(m.destination == "/dev" and m.type == "tmpfs" for m in oci.mounts):
        if oci.devices:
            raise UsageError("config.json: linux.devices need a tmpfs mounted at /dev")
        return
    dev = rootfs.secure_join(merged, "/dev")
    trace.step("devices", f"the defaults and {len(oci.devices)} from linux.devices" +
               (", bound from the host" if userns else ""))
    if userns:
        for path in [p for p, _, _ in rootfs.DEFAULT_DEVICES] + [d["path"] for d in oci.devices]:
            _bind_host_node(path, rootfs.secure_join(merged, path))
        for link, target in rootfs.DEFAULT_SYMLINKS:
            os.symlink(target, rootfs.secure_join(merged, link))
        return
    rootfs.create_devices(dev)
    old_umask = os.umask(0)
    try:
        for d in oci.devices:
            where = rootfs.secure_join(merged, d["path"])
            os.makedirs(os.path.dirname(where), 0o755, exist_ok=True)
            if os.path.lexists(where):
                os.unlink(where)
            mode = d["fileMode"] if d["fileMode"] is not None else 0o666
            syscalls.mknod(where, _DEVICE_TYPES[d["type"]] | (mode & 0o7777), d["major"],
                           d["minor"])
            os.chown(where, d["uid"] or 0, d["gid"] or 0)
    finally:
        os.umask(old_umask)


def _bind_host_node(host_path: str, where: str) -> None:
    os.makedirs(os.path.dirname(where), 0o755, exist_ok=True)
    if not os.path.lexists(where):
        os.close(os.open(where, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    syscalls.mount(host_path, where, None, MS.BIND)


def runtime_hooks(oci: OciSpec) -> bool:
    """Has the bundle ``prestart`` or ``createRuntime`` hooks, for the runtime to run?"""
    return any(oci.hooks.get(name) for name in ("prestart", "createRuntime"))


def create_container_hooks(oci: OciSpec) -> bytes:
    """Before pivot_root, in the container's namespaces: its ``createContainer`` hooks. Returns
    the state its ``startContainer`` hooks will read, rendered now: its host PID is
    ``/proc/self`` while /proc is still the runtime's, and ``json`` is gone after pivot_root."""
    if not (oci.hooks.get("createContainer") or oci.hooks.get("startContainer")):
        return b""
    from minidocker import ocihooks  # and with it everything its hooks need after pivot_root

    created = ocihooks.state_of(oci, int(os.readlink("/proc/self")), "created")
    ocihooks.run("createContainer", oci.hooks.get("createContainer") or [], created)
    return created


def open_fifo(cdir: str) -> int:
    """Before pivot_root: the fifo, by a path only reachable now (O_PATH: opening it to write
    would block here)."""
    return os.open(os.path.join(cdir, FIFO), os.O_PATH | os.O_CLOEXEC)


def after_pivot(oci: OciSpec) -> None:
    """Paths are final: sysctls and the domainname (before /proc/sys turns read-only), the
    masks, then the propagation of /."""
    for key, value in oci.sysctl.items():
        syscalls.write_file("/proc/sys/" + key.replace(".", "/"), value)
    if oci.domainname:
        syscalls.write_file("/proc/sys/kernel/domainname", oci.domainname)
    trace.step("masks", f"{len(oci.masked_paths)} masked and {len(oci.readonly_paths)} "
               "read-only paths, as the bundle lists them")
    rootfs.mask_paths(tuple(oci.masked_paths), tuple(oci.readonly_paths))
    if oci.rootfs_propagation:
        from minidocker.runtimespec import PROPAGATION_FLAGS

        syscalls.mount(None, "/", None, PROPAGATION_FLAGS[oci.rootfs_propagation])
    if oci.oom_score_adj is not None:  # while still root: lowering it needs privilege
        syscalls.write_file("/proc/self/oom_score_adj", str(oci.oom_score_adj))
    if oci.umask is not None:
        os.umask(oci.umask)


def hold(oci: OciSpec, report_fd: int, fifo: int, hook_state: bytes = b"") -> None:
    """Wait for ``start``, confined already: say "created" on the report pipe (the runtime's
    ``create`` returns on it), block in open(2) until ``start`` opens the fifo to read, run the
    ``startContainer`` hooks, write one byte (or ``!`` and why a hook failed: ``start`` fails
    with it). The fifo's mode (0622) lets a process that is no longer root open it."""
    trace.step("created", "held before execve until minidocker-runtime start")
    os.write(report_fd, b"=\n")
    try:
        writer = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC)
    finally:
        os.close(fifo)
    try:
        if oci.hooks.get("startContainer"):
            from minidocker import ocihooks  # imported before pivot_root

            try:
                ocihooks.run("startContainer", oci.hooks["startContainer"], hook_state)
            except MinidockerError as exc:
                os.write(writer, b"!" + str(exc).encode()[:PIPE_BUF - 1])
                raise
        os.write(writer, b"0")
    finally:
        os.close(writer)


def release(cdir: str, pidfd: int) -> None:
    """``start``: open the fifo to read, which lets the held process go on; read its byte.
    A process that died meanwhile (its pidfd turns readable) is an error, not a hang."""
    import select

    path = os.path.join(cdir, FIFO)
    try:
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MinidockerError("cannot start an already running container") from None
    try:
        poller = select.poll()
        poller.register(reader, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if reader in ready:
                try:
                    data = os.read(reader, PIPE_BUF)
                except BlockingIOError:
                    continue
                if data == b"0":
                    break
                if data.startswith(b"!"):  # a startContainer hook failed; the process exits
                    raise MinidockerError(data[1:].decode(errors="replace"))
                raise MinidockerError("the container's process closed its fifo without "
                                      "writing to it")
            if pidfd in ready:
                raise MinidockerError("the container's process died before start")
    finally:
        os.close(reader)
    os.unlink(path)
