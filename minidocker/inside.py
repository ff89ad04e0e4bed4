"""The container's side of the start: PID 1 of its new PID namespace, until execve.

:data:`CHILD_STEPS` is the list, in order; :func:`start_in_child` runs it. Each step is one
call into a mechanism module, with :class:`Child` carrying what a later step needs (the pty,
the user, the environment). The host's side, which forks this process and waits for its
exec, is :mod:`minidocker.container` (:data:`~minidocker.container.HOST_STEPS`).

The child reports back over a pipe that closes on exec (``O_CLOEXEC``): end of file means the
command is running; a line ``!<code> <message>`` means it failed (with 125, 126 or 127, as
Docker would); a JSON line is a trace event. Everything the child needs must be imported
before ``pivot_root``: after it, the host's files, Python's standard library included, are
gone. Any failure ends the child, and with it every namespace and mount it made, so a failed
start leaves nothing behind on the host.
"""

from __future__ import annotations

import os
import signal

from minidocker import (
    cgroups,
    init,
    namespaces,
    network,
    overlay,
    rootfs,
    security,
    syscalls,
    trace,
    users,
)
from minidocker.errors import (
    EXIT_CANNOT_INVOKE,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME,
    ExecError,
    MinidockerError,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Sequence

    from minidocker.spec import Spec

ETC_FILES = ("hostname", "hosts", "resolv.conf")


def find_executable(name: str, path: str) -> str:
    """Go's exec.LookPath, as Docker uses it: names with a '/' are used as given."""
    if "/" in name:
        return name
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ExecError(f'exec: "{name}": executable file not found in $PATH', EXIT_NOT_FOUND)


def report_failure(fd: int, code: int, message: str) -> None:
    """Tell the parent why the start failed: ``!<code> <message>`` on one line.

    Not JSON: this runs after pivot_root, where the host's files (Python's own ``json``
    module among them) are out of reach, so nothing may be imported here.
    """
    os.write(fd, f"!{code} {' '.join(message.split())}\n".encode())


class Channel:
    """The child's end of its links to the parent, and what it was told to do with stdio."""

    __slots__ = ("report_fd", "go_fd", "console", "stdio", "tied", "rootfs")

    def __init__(self, report_fd: int, go_fd: int | None, console: socket.socket | None,
                 stdio: tuple[int, int, int] | None, tied: bool,
                 rootfs: socket.socket | None = None) -> None:
        self.report_fd = report_fd  # child -> parent: errors, trace events, sync requests
        self.go_fd = go_fd  # parent -> child: "carry on" after the host-side steps, if any
        self.console = console  # -t: where to send the pty master
        self.stdio = stdio  # fds to become 0, 1, 2 (None: keep the parent's)
        self.tied = tied  # die with the parent (foreground run) or outlive it (supervisor)
        self.rootfs = rootfs  # --userns private: where the parent sends the root filesystem


def wait_for_host(channel: Channel, phase: str) -> None:
    """Ask the parent to do its part now (``?phase``) and block until it says go."""
    if channel.go_fd is None:
        return
    os.write(channel.report_fd, f"?{phase}\n".encode())
    if os.read(channel.go_fd, 1) != b"g":
        raise MinidockerError(f"the host-side steps after {phase} failed")
    # Kept open: a bundle's hooks ask again (?hooks) before pivot_root; confine closes it.


def host_steps_for(phase: str, steps: Sequence[Callable[[int], None]]
                   ) -> list[Callable[[int], None]]:
    """The host's steps to run when the child asks ``?phase``: a step names its phase in a
    ``phase`` attribute (a bundle's hooks: ``hooks``), else it is ``namespaces``'."""
    return [step for step in steps if getattr(step, "phase", "namespaces") == phase]


class Child:
    """What the container's side of the start carries from one step to the next."""

    __slots__ = ("spec", "lowers", "cdir", "channel", "cgroup", "slave", "user", "env", "exe",
                 "fifo", "hook_state", "sources")

    def __init__(self, spec: Spec, lowers: list[str], cdir: str, channel: Channel,
                 cgroup: cgroups.Cgroup | None) -> None:
        self.spec, self.lowers, self.cdir, self.channel = spec, lowers, cdir, channel
        self.cgroup = cgroup  # None: born in it already (clone3 into the cgroup)
        self.slave: int | None = None  # -t: the pty's terminal end
        self.user: users.ExecUser | None = None
        self.env: dict[str, str] = {}
        self.exe = ""
        self.fifo: int | None = None  # a bundle's exec fifo (minidocker-runtime create)
        self.hook_state = b""  # a bundle's state JSON for its startContainer hooks
        self.sources: dict[str, int] = {}  # a bundle's in a user namespace: fds to bind from

    @property
    def merged(self) -> str:
        return os.path.join(self.cdir, "merged")


# -- the container's side, in order: PID 1 of its new PID namespace ---------------------------

def join_cgroup(c: Child) -> None:
    if c.cgroup is not None:  # before unsharing the cgroup namespace: then it is our "/"
        trace.step("cgroup", "join it first, so everything from here on is counted")
        c.cgroup.join()


def unshare_namespaces(c: Child) -> None:
    trace.step("namespaces", "the rest of the set, for this process itself")
    paths = c.spec.oci.namespace_paths if c.spec.oci is not None else {}
    namespaces.unshare([k for k in c.spec.namespaces if k not in ("pid", "user", *paths)])
    for kind, path in paths.items():  # a bundle's namespaces to join (pid and user: refused)
        trace.step("namespaces", f"join {kind} at {path}")
        namespaces.join_path(kind, path)
    if c.spec.network.get("mode") == "container":  # --network container:X: setns, not unshare
        from minidocker import networking

        target = networking.join_pid(c.spec, os.path.dirname(os.path.dirname(c.cdir)))
        trace.step("network", f"join the network namespace of PID {target}")
        namespaces.join(target, ["net"])
    wait_for_host(c.channel, "namespaces")  # the parent's steps: veth, --userns maps


# What the steps after become_userns_root import when they first need it. Once the child is
# its user namespace's root it reads files as a host uid such as 100000, which cannot cross a
# 0700 directory: a package cloned into /root would raise ImportError half-way through a start.
LATER_IMPORTS = ("graphdriver", "mounting", "mounts", "ocicontainer", "ocihooks", "rlimits",
                 "tty", "userns", "vfs", "volumes")


def become_userns_root(c: Child) -> None:
    if "user" in c.spec.namespaces:  # still host uid 0: load and open now
        import importlib

        for name in LATER_IMPORTS:
            importlib.import_module(f"minidocker.{name}")
        if c.spec.oci is not None:
            from minidocker import ocicontainer

            c.sources = ocicontainer.userns_sources(c.spec.oci)
    c.cdir = security.enter_userns(c.spec, c.cdir)  # --userns private: root of its own ns


def mount_rootfs(c: Child) -> None:
    if c.spec.oci is not None:
        from minidocker import ocicontainer

        ocicontainer.mount_rootfs(c.spec.oci, c.merged, c.cgroup, c.sources)
        return
    trace.step("rootfs", "overlay, kernel filesystems, pivot_root")
    rootfs.set_root_propagation(root_propagation(c), c.merged)
    from minidocker import graphdriver

    if security.attach_userns_rootfs(c.spec, c.merged, c.channel.rootfs):
        pass  # the parent built it over idmapped layers
    elif graphdriver.recorded(c.cdir)[0] == "vfs":
        from minidocker import vfs

        vfs.mount_rootfs(c.merged)  # a full copy of the image: no union to mount
    else:
        overlay.mount_overlay(c.lowers, os.path.join(c.cdir, "upper"),
                              os.path.join(c.cdir, "work"), c.merged)
    rootfs.mount_defaults(c.merged, make_devices=security.make_devices(c.spec))


def mount_cgroupfs(c: Child) -> None:
    """v2: the container's own cgroup2 tree, read-only, at /sys/fs/cgroup (as runc mounts it).
    A child born in its group by clone3 has no Cgroup to join: then the host is asked."""
    on_v2 = c.cgroup.version == 2 if c.cgroup is not None else cgroups.version() == 2
    if on_v2 and "cgroup" in c.spec.namespaces and c.spec.oci is None:  # a bundle: its table
        rootfs.mount_cgroup2(c.merged, writable=security.is_privileged(c.spec))


def mount_volumes(c: Child) -> None:
    """-v, --mount, --tmpfs (:mod:`minidocker.container_mounts`), while the host's paths are
    still in reach: a new volume is seeded from the image's files at its target (once: the
    volume records it), then everything is mounted, parents first."""
    if not (c.spec.mounts or c.spec.read_only):
        return
    # Imported here, before pivot_root, also for make_root_readonly after it.
    from minidocker import mounting, mounts, volumes

    if not c.spec.mounts:
        return
    trace.step("mounts", ", ".join(f"{m['target']} ({m['type']})" for m in c.spec.mounts))
    points = [mounts.MountPoint.from_dict(m) for m in c.spec.mounts]
    detached = security.receive_userns_mounts(c.spec, c.channel.rootfs)
    if detached is not None:  # --userns private: seeded and made by the parent
        for point in points:
            if point.type == "bind":
                mounting.attach_detached(c.merged, point, detached.pop(0))
            else:
                mounting.apply_mounts(c.merged, [point])
        return
    for m in c.spec.mounts:
        if m.get("name") and not m.get("nocopy"):  # a volume; never a bind
            volumes.seed(m["source"], rootfs.secure_join(c.merged, m["target"]))
    mounting.apply_mounts(c.merged, points)


def populate_dev(c: Child) -> None:
    if c.spec.oci is not None:
        from minidocker import ocicontainer

        ocicontainer.make_devices(c.spec.oci, c.merged, "user" in c.spec.namespaces)
        return
    security.populate_dev(c.spec, c.merged, rootfs.DEFAULT_DEVICES)


def open_console(c: Child) -> None:
    console = c.channel.console
    if console is not None:  # -t: the pty is made in the container's own /dev/pts
        from minidocker import tty

        master, c.slave, slave_path = tty.open_pty_in(rootfs.secure_join(c.merged, "/dev/pts"))
        tty.send_fd(console, master)
        os.close(master)
        console.close()
        rootfs.bind_console(c.merged, slave_path)


def pivot(c: Child) -> None:
    if c.spec.oci is None:
        rootfs.bind_files(c.merged, [(os.path.join(c.cdir, f), "/etc/" + f) for f in ETC_FILES])
    else:  # a bundle's root holds its own /etc files; its exec fifo is reachable only now
        from minidocker import ocicontainer

        if ocicontainer.runtime_hooks(c.spec.oci):  # prestart, createRuntime: by the runtime
            wait_for_host(c.channel, "hooks")
        c.hook_state = ocicontainer.create_container_hooks(c.spec.oci)
        c.fifo = ocicontainer.open_fifo(c.cdir)
    rootfs.pivot_into(c.merged, peers=root_propagation(c) != "rprivate")


def root_propagation(c: Child) -> str:
    """``/``'s propagation in the container's mount namespace, by its binds' (see rootfs)."""
    return rootfs.root_propagation(m.get("propagation") or "" for m in c.spec.mounts
                                   if m["type"] == "bind")


def mask_paths(c: Child) -> None:
    if c.spec.oci is not None:
        from minidocker import ocicontainer  # imported before pivot_root, by pivot

        ocicontainer.after_pivot(c.spec.oci)
        return
    security.after_pivot(c.spec)


def make_root_readonly(c: Child) -> None:
    """--read-only, as runc does it: last among the mounts, after the masks (whose ``nodev``
    remount of / would clear ``MS_RDONLY``); /proc, /dev, /sys, the volumes and tmpfs mounts
    on the root keep their own flags."""
    if c.spec.read_only:
        from minidocker import mounting  # loaded by mount_volumes, before pivot_root

        trace.step("read-only", "/ remounted MS_RDONLY")
        mounting.remount_root_readonly("/")


def set_hostname(c: Child) -> None:
    # With --uts host this would rename the host itself; a bundle may name no hostname.
    if "uts" in c.spec.namespaces and c.spec.hostname:
        trace.step("hostname")
        syscalls.sethostname(c.spec.hostname)


def bring_up_network(c: Child) -> None:
    if "net" in c.spec.namespaces:  # not with --network host or container:X (theirs is up)
        trace.step("network", "lo up" + ("; eth0 was set up from the host"
                                          if c.spec.network.get("mode") == "bridge" else ""))
        network.bring_up_loopback()


def find_user(c: Child) -> None:
    spec = c.spec
    trace.step("user", spec.user)
    c.user = users.lookup(spec.user)
    if spec.oci is not None:  # a bundle's groups are exactly its gid and additionalGids
        c.user = c.user._replace(groups=[c.user.gid, *spec.oci.additional_gids])
    c.env = dict(spec.env)
    c.env.setdefault("HOME", c.user.home)
    if not os.path.lexists(spec.workdir):
        os.makedirs(spec.workdir, 0o755)  # Docker creates a missing working directory too
    elif not os.path.isdir(spec.workdir):
        raise MinidockerError(f"the working directory {spec.workdir} is not a directory")
    syscalls.chdir(spec.workdir)


def set_up_stdio(c: Child) -> None:
    set_up_stdio_fds(c.spec, c.channel, c.slave)


def wait_for_start(c: Child) -> None:
    """A bundle's container (``minidocker-runtime create``): held here, confined and set up,
    until ``start`` (:func:`minidocker.ocicontainer.hold`); only execve is left after it, so
    once ``start`` returns, a signal finds the command's own handlers (as with runc)."""
    if c.spec.oci is not None and c.fifo is not None:
        from minidocker import ocicontainer

        # As runc: a command that is not there fails the create, where the engine hears it.
        exe = find_executable(c.spec.argv[0], c.env.get("PATH", ""))
        if not os.path.exists(exe):
            raise ExecError(f'exec: "{c.spec.argv[0]}": stat {exe}: no such file or directory',
                            EXIT_NOT_FOUND)
        ocicontainer.hold(c.spec.oci, c.channel.report_fd, c.fifo, c.hook_state)
        c.fifo = None


def start_init(c: Child) -> None:
    """``--init``: this process stays PID 1 (a tiny init that reaps); its child goes on."""
    if not c.spec.init:
        return
    # Named before the fork, so that no one can read /proc/1/comm before it says "init"
    # (the command's child inherits the name until its exec replaces it).
    syscalls.write_file("/proc/self/comm", "init")
    child = os.fork()
    if child:
        trace.set_sink(None)  # its pipe is about to close: init reports nothing more
        os.close(c.channel.report_fd)  # only the command's exec should end the parent's wait
        os.closerange(3, 1 << 20)  # never execs: nothing of its caller's may stay open
        if c.channel.tied:
            syscalls.prctl(syscalls.PR.SET_PDEATHSIG, signal.SIGKILL)
        security.confine_init(c.spec.security)
        os._exit(init.run_init(child))


def confine(c: Child) -> None:
    assert c.user is not None
    c.exe = find_executable(c.spec.argv[0], c.env.get("PATH", ""))
    security.apply(c.spec.security, c.user, c.exe, c.spec.argv[0])  # user, caps, seccomp
    if c.channel.tied:
        # Again: the kernel clears the parent-death signal when credentials change.
        syscalls.prctl(syscalls.PR.SET_PDEATHSIG, signal.SIGKILL)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; programs expect defaults
        signal.signal(sig, signal.SIG_DFL)
    close_inherited_fds(c.channel.report_fd, *([] if c.fifo is None else [c.fifo]))


def exec_command(c: Child) -> None:
    argv = c.spec.argv
    trace.step("exec", " ".join(argv))
    try:
        syscalls.execve(c.exe, argv, c.env)
    except PermissionError:
        raise ExecError(f'exec: "{argv[0]}": permission denied', EXIT_CANNOT_INVOKE) from None
    except FileNotFoundError:
        raise ExecError(f'exec: "{argv[0]}": no such file or directory',
                        EXIT_NOT_FOUND) from None
    except OSError as exc:
        raise ExecError(f'exec: "{argv[0]}": {exc.strerror}', EXIT_CANNOT_INVOKE) from None


# The container's side of the start, in order. Nothing here needs undoing: a failure ends the
# child, and with it every namespace and mount it made. Everything a step needs after
# pivot_root must have been imported before it (the host's files are gone by then).
CHILD_STEPS: tuple[Callable[[Child], None], ...] = (
    join_cgroup,         # 0. cgroup        everything from here on is counted
    unshare_namespaces,  # 1. namespaces    mnt, uts, ipc, net, cgroup; the host's steps
    become_userns_root,  #    userns        --userns private: root of its own namespace
    mount_rootfs,        # 2. rootfs        private propagation, overlay, /proc /dev /sys
    mount_cgroupfs,      #    cgroupfs      v2: its own cgroup2 tree, read-only
    mount_volumes,       #    mounts        -v, --mount, --tmpfs: seeded, then mounted
    populate_dev,        #    devices       the allowed nodes, bind-mounted; /dev nodev
    open_console,        #    console       -t: a pty in the container's /dev/pts
    pivot,               #    pivot_root    /etc files, then the new root
    mask_paths,          #    masks         Docker's masked and read-only /proc paths
    make_root_readonly,  #    read-only     --read-only: / MS_RDONLY, its mounts as they are
    set_hostname,        # 3. hostname      sethostname in the new UTS namespace
    bring_up_network,    # 4. network       lo up
    find_user,           # 5. user          /etc/passwd, $HOME, the working directory
    set_up_stdio,        #    stdio         the pty, the supervisor's pipes, or ours
    start_init,          #    init          --init: PID 1 reaps, its child goes on
    confine,             #    security      rlimits, capabilities, seccomp, the user
    wait_for_start,      #    created       a bundle's: held until minidocker-runtime start
    exec_command,        # 6. exec          execve: the command is running
)


def start_in_child(spec: Spec, lowers: list[str], cdir: str, channel: Channel,
                   cgroup: cgroups.Cgroup | None = None) -> None:
    """The container's side of the start sequence (:data:`CHILD_STEPS`). Runs as PID 1 of the
    new PID namespace and ends in execve(2); never returns."""
    trace.set_where("container")
    c = Child(spec, lowers, cdir, channel, cgroup)
    for step in CHILD_STEPS:
        step(c)


def close_inherited_fds(keep: int, *more: int) -> None:
    """Close every fd above 2 but ``keep`` (the report pipe, closed by exec itself) and
    ``more`` (a bundle's exec fifo, closed before exec).

    An fd the caller left open without O_CLOEXEC would survive execve into the container; if it
    names a host directory, ``/proc/self/fd/N`` leads out of the container's root. That is
    runc's CVE-2024-21626, and why runc closes them too.
    """
    low = 3
    for fd in sorted((keep, *more)):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def set_up_stdio_fds(spec: Spec, channel: Channel, slave: int | None) -> None:
    """The pty (``-t``), the fds the caller gave (a supervisor's log pipes), or ours."""
    if slave is not None:
        from minidocker import tty

        tty.make_controlling(slave)
        return
    if channel.stdio is not None:
        for target, fd in enumerate(channel.stdio):
            os.dup2(fd, target)
        for fd in set(channel.stdio):
            if fd > 2:
                os.close(fd)
    if not spec.interactive:
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)


def child_main(spec: Spec, lowers: list[str], cdir: str, channel: Channel, parent_fd: int,
           cgroup: cgroups.Cgroup | None = None) -> None:
    """Run :func:`start_in_child`; turn any failure into a report and an exit code."""
    trace.set_where("container")
    try:
        if trace.enabled():
            trace.send_to_fd(channel.report_fd)
        if channel.tied:
            trace.step("die-with-parent", "killed if minidocker run dies")
            die_with_parent(parent_fd)
        else:
            os.close(parent_fd)
        start_in_child(spec, lowers, cdir, channel, cgroup)
        code, message = EXIT_RUNTIME, "execve returned"
    except MinidockerError as exc:
        code, message = exc.exit_code, str(exc)
    except OSError as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        code, message = EXIT_RUNTIME, f"{exc}" + (f" ({notes})" if notes else "")
    except BaseException as exc:  # the process boundary: anything at all must be reported
        code, message = EXIT_RUNTIME, f"{type(exc).__name__}: {exc}"
    try:
        report_failure(channel.report_fd, code, message)
    finally:
        os._exit(code)


def die_with_parent(parent_fd: int) -> None:
    """Be killed if ``minidocker run`` dies, from the first instant of the child's life.

    PR_SET_PDEATHSIG covers the parent dying *later*; a parent that died before the prctl is
    caught by polling its pidfd (getppid() can't tell: our parent is outside our PID
    namespace, so it reads 0 either way).
    """
    import select

    syscalls.prctl(syscalls.PR.SET_PDEATHSIG, signal.SIGKILL)
    if select.select([parent_fd], [], [], 0)[0]:
        os._exit(EXIT_RUNTIME)
    os.close(parent_fd)
