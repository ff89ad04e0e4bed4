"""The start sequence: how ``minidocker run`` turns a plan into a running container.

This module composes the mechanism modules; it holds no mechanism of its own. Read
:func:`start_in_child` top to bottom and you have read what ``run`` does inside the kernel:

On the host (the ``minidocker`` process):

1. ``prepare``       the container's directory: upper/work/merged, config, /etc files
2. ``unshare``       ``CLONE_NEWPID``, so that the next child is PID 1 of a new PID namespace
3. ``cgroup``        the container's cgroup, with its limits (see :mod:`minidocker.cgroups`)
4. ``fork``          that child starts the container (below); we wait for it to exec
5. ``wait``          relay the terminal (``-t``) or forward signals, then collect the exit code
6. ``cleanup``       kill what is left in the cgroup and remove it; ``--rm``: delete the
                     directory. Mounts need no cleanup: they lived in the container's mount
                     namespace, which the kernel destroyed with its last process

In the child, PID 1 of its new PID namespace:

0. ``cgroup``        join the container's cgroup first, so everything it does is counted
1. ``namespaces``    unshare mnt, uts, ipc, net, cgroup
2. ``rootfs``        private propagation, overlay, /proc /dev /sys, /etc files, pivot_root, masks
3. ``hostname``      sethostname in the new UTS namespace
4. ``network``       bring up ``lo`` in the new network namespace
5. ``user``          look the user up in the image's /etc/passwd, switch credentials
6. ``exec``          execve the command; it is PID 1 now (or PID 2 under ``--init``)

The child reports back over a pipe that closes on exec (``O_CLOEXEC``): end of file means the
command is running; a line ``!<code> <message>`` means it failed (with 125, 126 or 127, as Docker
would); a JSON line is a trace event. Everything the child needs must be imported before
``pivot_root``: after it, the host's files, Python's standard library included, are gone.

Any failure in the child ends the child, and with it every namespace and mount it made, so a
failed start leaves nothing behind on the host.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

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
    from typing import Any

    from minidocker.spec import Spec
    from minidocker.state import Layout

ETC_FILES = ("hostname", "hosts", "resolv.conf")


def resolv_conf(host_text: str) -> str:
    """The host's resolv.conf without loopback nameservers (they mean nothing in a new netns),
    falling back to public resolvers as Docker does."""
    lines = [line for line in host_text.splitlines()
             if not (line.split()[:1] == ["nameserver"] and len(line.split()) > 1
                     and (line.split()[1].startswith("127.") or line.split()[1] == "::1"))]
    if not any(line.startswith("nameserver") for line in lines):
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(lines) + "\n"


def prepare(spec: Spec, layout: Layout, lowers: list[str]) -> str:
    """Create the container's directory and files; returns it."""
    from minidocker import graphdriver

    cdir = layout.container(spec.id)
    driver = graphdriver.current(layout.root)  # overlay, or vfs where overlay can't work
    os.makedirs(layout.containers, exist_ok=True)
    os.mkdir(cdir, 0o710)
    graphdriver.record(cdir, driver, lowers)
    if driver == "vfs":
        from minidocker import vfs  # copies the whole image: only under this driver

        try:
            vfs.prepare(cdir, lowers, rootfs.INIT_DIRS, rootfs.INIT_FILES)
        except BaseException:
            layout.remove_container(spec.id, None)
            raise
    else:
        for sub in ("upper", "work", "merged"):
            os.mkdir(os.path.join(cdir, sub), 0o755)
        rootfs.prepare_init_layer(os.path.join(cdir, "upper"), lowers)
    try:
        with open("/etc/resolv.conf") as f:
            host_resolv = f.read()
    except FileNotFoundError:
        host_resolv = ""
    files = {"hostname": spec.hostname + "\n",
             "hosts": network.HOSTS,
             "resolv.conf": resolv_conf(host_resolv)}
    if len(spec.network) > 1 or spec.network.get("mode", "none") != "none":
        from minidocker import networking  # --add-host, --dns, host and container: modes

        files = networking.etc_files(spec, layout.root, files)
    for name, text in files.items():
        with open(os.path.join(cdir, name), "w") as f:
            f.write(text)
    return cdir


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
    os.close(channel.go_fd)
    channel.go_fd = None


class Child:
    """What the container's side of the start carries from one step to the next."""

    __slots__ = ("spec", "lowers", "cdir", "channel", "cgroup", "slave", "user", "env", "exe")

    def __init__(self, spec: Spec, lowers: list[str], cdir: str, channel: Channel,
                 cgroup: cgroups.Cgroup | None) -> None:
        self.spec, self.lowers, self.cdir, self.channel = spec, lowers, cdir, channel
        self.cgroup = cgroup  # None: born in it already (clone3 into the cgroup)
        self.slave: int | None = None  # -t: the pty's terminal end
        self.user: users.ExecUser | None = None
        self.env: dict[str, str] = {}
        self.exe = ""

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
    namespaces.unshare([k for k in c.spec.namespaces if k not in ("pid", "user")])  # cloned
    if c.spec.network.get("mode") == "container":  # --network container:X: setns, not unshare
        from minidocker import networking

        target = networking.join_pid(c.spec, os.path.dirname(os.path.dirname(c.cdir)))
        trace.step("network", f"join the network namespace of PID {target}")
        namespaces.join(target, ["net"])
    wait_for_host(c.channel, "namespaces")  # the parent's steps: veth, --userns maps


def become_userns_root(c: Child) -> None:
    c.cdir = security.enter_userns(c.spec, c.cdir)  # --userns private: root of its own ns


def mount_rootfs(c: Child) -> None:
    trace.step("rootfs", "overlay, kernel filesystems, pivot_root")
    rootfs.make_mounts_private()
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


def populate_dev(c: Child) -> None:
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
    rootfs.bind_files(c.merged, [(os.path.join(c.cdir, f), "/etc/" + f) for f in ETC_FILES])
    rootfs.pivot_into(c.merged)


def mask_paths(c: Child) -> None:
    security.after_pivot(c.spec)


def set_hostname(c: Child) -> None:
    if "uts" in c.spec.namespaces:  # with --uts host this would rename the host itself
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
    c.env = dict(spec.env)
    c.env.setdefault("HOME", c.user.home)
    if not os.path.lexists(spec.workdir):
        os.makedirs(spec.workdir, 0o755)  # Docker creates a missing working directory too
    elif not os.path.isdir(spec.workdir):
        raise MinidockerError(f"the working directory {spec.workdir} is not a directory")
    syscalls.chdir(spec.workdir)


def set_up_stdio(c: Child) -> None:
    _set_up_stdio(c.spec, c.channel, c.slave)


def start_init(c: Child) -> None:
    """``--init``: this process stays PID 1 (a tiny init that reaps); its child goes on."""
    if not c.spec.init:
        return
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
    close_inherited_fds(keep=c.channel.report_fd)


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
    populate_dev,        #    devices       the allowed nodes, bind-mounted; /dev nodev
    open_console,        #    console       -t: a pty in the container's /dev/pts
    pivot,               #    pivot_root    /etc files, then the new root
    mask_paths,          #    masks         Docker's masked and read-only /proc paths
    set_hostname,        # 3. hostname      sethostname in the new UTS namespace
    bring_up_network,    # 4. network       lo up
    find_user,           # 5. user          /etc/passwd, $HOME, the working directory
    set_up_stdio,        #    stdio         the pty, the supervisor's pipes, or ours
    start_init,          #    init          --init: PID 1 reaps, its child goes on
    confine,             #    security      rlimits, capabilities, seccomp, the user
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


def close_inherited_fds(keep: int) -> None:
    """Close every fd above 2 but ``keep`` (the report pipe, closed by exec itself).

    An fd the caller left open without O_CLOEXEC would survive execve into the container; if it
    names a host directory, ``/proc/self/fd/N`` leads out of the container's root. That is
    runc's CVE-2024-21626, and why runc closes them too.
    """
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 20)


def _set_up_stdio(spec: Spec, channel: Channel, slave: int | None) -> None:
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


def _child(spec: Spec, lowers: list[str], cdir: str, channel: Channel, parent_fd: int,
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


def read_reports(fd: int, go_fd: int | None, pid: int,
                  host_steps: Sequence[Callable[[int], None]]) -> tuple[int, str] | None:
    """Follow the child until exec (EOF): relay its trace events, run the host-side steps when
    it asks (``?phase``), and return its error if it sent one (``!code message``)."""
    error = None
    buf = b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"!"):
                    code, _, message = line[1:].decode().partition(" ")
                    error = (int(code), message)
                elif line.startswith(b"?") and go_fd is not None:
                    trace.step("host", f"while the child waits after {line[1:].decode()}")
                    for step in host_steps:
                        step(pid)
                    os.write(go_fd, b"g")
                elif trace._sink is not None:
                    import json  # only with --trace: a clean exec sends nothing at all

                    trace._sink(json.loads(line))
    return error


def _write_record(cdir: str, name: str, record: dict[str, object]) -> None:
    from minidocker.state import write_json

    write_json(os.path.join(cdir, name), record)


def _set_state(cdir: str, **changes: object) -> None:
    """Change ``state.json`` under the container's lock (see :mod:`minidocker.lifecycle`).

    A running container's record also gets its process's start time (/proc/<pid>/stat), by
    which every later reader tells it apart from a process that reused its PID. A container
    removed meanwhile (``rm -f`` from another terminal) has nothing left to record.
    """
    from minidocker import state

    if not state.lock_container(cdir):
        return
    try:
        record = state.read_state(cdir)
        record.update(changes)
        if changes.get("Status") == "running":
            record["StartTime"] = state.process_start_time(int(str(changes["Pid"])))
            record.setdefault("Created", changes["StartedAt"])
        elif changes.get("Status") == "exited":
            record["Pid"] = 0
        _write_record(cdir, "state.json", record)
    finally:
        state.unlock_container(cdir)


def _now() -> str:
    """RFC 3339 with nanoseconds, in UTC, as Docker records times."""
    from minidocker.timefmt import format_time

    return format_time(time.time_ns(), fixed=True)


class Started:
    """A container whose command is running: its host PID, a pidfd for it, its pty master,
    its cgroup."""

    __slots__ = ("pid", "pidfd", "master", "cgroup")

    def __init__(self, pid: int, pidfd: int, master: int | None,
                 cgroup: cgroups.Cgroup) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.master = master
        self.cgroup = cgroup


class Start:
    """What the host's side of the start carries from one step to the next.

    ``undo`` unwinds only if a later step fails (each step registers its undo on it the moment
    it makes the resource); ``always`` unwinds in any case, after ``undo`` (our ends of the
    pipes, our own PID namespace).
    """

    __slots__ = ("spec", "lowers", "cdir", "stdio", "tied", "host_steps", "on_fork", "undo",
                 "always", "cgroup", "own_pidns", "fds", "rootfs_link", "pid",
                 "born_in_cgroup", "pidfd", "master")

    def __init__(self, spec: Spec, lowers: list[str], cdir: str,
                 stdio: tuple[int, int, int] | None, tied: bool,
                 host_steps: Sequence[Callable[[int], None]],
                 on_fork: Callable[[int], None] | None,
                 undo: contextlib.ExitStack, always: contextlib.ExitStack) -> None:
        self.spec, self.lowers, self.cdir, self.stdio, self.tied = spec, lowers, cdir, stdio, tied
        self.host_steps = list(host_steps)  # run with the child's PID while it waits
        self.on_fork, self.undo, self.always = on_fork, undo, always
        self.cgroup: cgroups.Cgroup | None = None
        self.own_pidns: int | None = None
        self.fds: dict[str, Any] = {}  # our pipes and sockets to the child, by name
        self.rootfs_link: socket.socket | None = None
        self.pid = self.pidfd = 0
        self.born_in_cgroup = False
        self.master: int | None = None

    def close(self, *names: str) -> None:
        """Close the named pipe ends and sockets, once (each is forgotten as it closes)."""
        for name in names:
            fd = self.fds.pop(name, None)
            if isinstance(fd, int):
                os.close(fd)
            elif fd is not None:
                fd.close()

    def close_all(self) -> None:
        self.close(*list(self.fds))


# -- the host's side, in order: the minidocker process -----------------------------------------

def plan_security(s: Start) -> None:
    security.of(s.spec, s.cdir)  # Docker's defaults, if the caller made the spec without a plan


def make_cgroup(s: Start) -> None:
    """The container's cgroup, made and limited before fork so the limits hold from the
    child's first instruction. Every container has one, as in Docker; see
    :mod:`minidocker.cgroups` for how the child gets in without a kernel grace period."""
    spec = s.spec
    trace.step("cgroup", "made and limited before fork")
    s.cgroup = cgroups.create(spec.id, cgroups.CgroupLimits.from_dict(spec.resources),
                              spec.cgroup_parent)
    s.undo.callback(s.cgroup.destroy)
    security.device_cgroup(spec, s.cgroup)  # --device ...:r or :w: rules only a cgroup can say


def reserve_network(s: Start) -> None:
    if s.spec.network.get("mode") == "bridge":  # the veth, address, rules: networking's steps
        from minidocker import networking

        net = networking.Attachment(s.spec, s.cdir)
        s.undo.callback(net.release)
        net.bind_ports()  # a published port in use fails here, before anything exists
        s.host_steps.insert(0, net.connect)  # first, once the child has its netns


def link_userns(s: Start) -> None:
    steps, s.rootfs_link = security.userns_link(s.spec, s.cdir, s.lowers)  # --userns private
    if s.rootfs_link is not None:
        s.fds["rootfs link"] = s.rootfs_link  # the child's end: ours to close after fork
    s.host_steps[:0] = steps  # map its ids, send its root filesystem: once it has its userns


def unshare_pid(s: Start) -> None:
    if "pid" in s.spec.namespaces and "user" not in s.spec.namespaces:  # userns: see fork
        trace.step("unshare", "a new PID namespace for our next child")
        s.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        s.always.callback(return_to_own_pidns, s)
        syscalls.unshare(namespaces.FLAGS["pid"])


def open_pipes(s: Start) -> None:
    if s.spec.tty:
        import socket

        s.fds["console"], s.fds["console (child)"] = socket.socketpair(socket.AF_UNIX,
                                                                       socket.SOCK_STREAM)
    s.fds["report"], s.fds["report (child)"] = os.pipe()
    if s.host_steps:
        s.fds["go (child)"], s.fds["go"] = os.pipe()
    s.fds["parent"] = os.pidfd_open(os.getpid())  # the child's: to see us die (die_with_parent)


def fork(s: Start) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    trace.step("fork")
    assert s.cgroup is not None
    # --userns private: clone(CLONE_NEWUSER|CLONE_NEWPID); v2: born in its cgroup
    s.pid, s.born_in_cgroup = security.fork(s.spec, s.cgroup)
    if s.pid == 0:
        _become_the_container(s)  # never returns
    s.undo.callback(kill_and_reap, s.pid)
    if s.on_fork is not None:
        s.on_fork(s.pid)


def return_to_own_pidns(s: Start) -> None:
    """Our own later children (a subprocess, the next container) belong in *our* namespace."""
    if s.own_pidns is not None:
        syscalls.setns(s.own_pidns, namespaces.FLAGS["pid"], "/proc/self/ns/pid")
        os.close(s.own_pidns)
        s.own_pidns = None


def close_child_ends(s: Start) -> None:
    s.close("rootfs link", "parent", "report (child)", "go (child)", "console (child)")
    s.pidfd = os.pidfd_open(s.pid)
    s.undo.callback(os.close, s.pidfd)


def follow_child(s: Start) -> None:
    """Until it execs: relay its trace, run the host-side steps when it asks, take its pty."""
    # Written while the child sets up (on another core): json is slow to import.
    _write_record(s.cdir, "config.json", s.spec.as_dict())
    report = s.fds.pop("report")  # read_reports closes it
    error = read_reports(report, s.fds.get("go"), s.pid, s.host_steps)
    s.close("go")
    if "console" in s.fds:
        from minidocker import tty

        # Only now: the child makes the pty after the host-side steps, which run while we
        # read its reports; the master waits in the socket meanwhile.
        s.master = tty.recv_fd(s.fds["console"])  # None: the child failed before the pty
        if s.master is not None:
            s.undo.callback(os.close, s.master)
    if error is not None:
        os.waitpid(s.pid, 0)
        raise ExecError(error[1], error[0])


def record_running(s: Start) -> None:
    assert s.cgroup is not None
    _set_state(s.cdir, Status="running", Pid=s.pid, StartedAt=_now(),
               Cgroup=s.cgroup.as_dict())


# The host's side of the start, in order. Each step registers the undo of what it makes on
# ``Start.undo`` as it makes it; a failure unwinds them in reverse.
HOST_STEPS: tuple[Callable[[Start], None], ...] = (
    plan_security,       # security     Docker's defaults, unless the spec has a plan
    link_userns,         # userns       --userns private: a socket for the root filesystem
    make_cgroup,         # cgroup       made and limited before fork     undo: destroy
    reserve_network,     # network      addresses, published ports       undo: release
    unshare_pid,         # unshare      CLONE_NEWPID for our next child  always: setns back
    open_pipes,          # pipes        reports, "go", the console       (closed at the end)
    fork,                # fork         the child runs CHILD_STEPS       undo: kill, reap
    return_to_own_pidns, #              so that our next children are ours
    close_child_ends,    #              the child's ends are the child's alone
    follow_child,        # host steps   veth, id maps; then wait for exec
    record_running,      # record       state.json: running, its PID and start time
)


def start(spec: Spec, lowers: list[str], cdir: str, *,
          stdio: tuple[int, int, int] | None = None, tied: bool = True,
          host_steps: Sequence[Callable[[int], None]] = (),
          on_fork: Callable[[int], None] | None = None) -> Started:
    """Start the container's process (:data:`HOST_STEPS`) and return once its command runs
    (after execve).

    ``stdio`` replaces the caller's stdin/stdout/stderr (without ``-t``). ``tied`` kills the
    container when the caller dies (a foreground ``run``); a supervisor passes False.
    ``host_steps`` run in the caller with the child's PID while the child waits, after it made
    its namespaces: what only the host side can do (a veth into its network namespace).
    ``on_fork`` runs right after fork(2) in the caller. On failure the child is gone, all
    that was made is undone, and the error is raised here (an :class:`ExecError` with
    Docker's exit code).
    """
    with contextlib.ExitStack() as always, contextlib.ExitStack() as undo:
        s = Start(spec, lowers, cdir, stdio, tied, host_steps, on_fork, undo, always)
        always.callback(s.close_all)  # our ends of the pipes and sockets, whatever happens
        for step in HOST_STEPS:
            step(s)
        undo.pop_all()  # started: what it made is the container's now
    assert s.cgroup is not None
    return Started(s.pid, s.pidfd, s.master, s.cgroup)


def _become_the_container(s: Start) -> None:
    """In the child, right after fork: keep only its ends of the links, then CHILD_STEPS."""
    # The container starts with no signal blocked, whatever its caller had blocked.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    fds = s.fds
    for ours in ("report", "go", "console"):
        if ours in fds:
            s.close(ours)
    console = fds.get("console (child)")
    _child(s.spec, s.lowers, s.cdir,
           Channel(fds["report (child)"], fds.get("go (child)"), console, s.stdio, s.tied,
                   s.rootfs_link),
           fds["parent"], None if s.born_in_cgroup else s.cgroup)


def run(spec: Spec, lowers: list[str], layout: Layout) -> int:
    """Run ``spec`` in the foreground and return its exit code (``minidocker run``)."""
    trace.step("prepare", layout.container(spec.id))
    cdir = prepare(spec, layout, lowers)
    claimed = False
    try:
        layout.claim_name(spec.name, spec.id)
        claimed = True
        return _run_foreground(spec, lowers, cdir, layout)
    except BaseException:
        layout.remove_container(spec.id, spec.name if claimed else None)
        raise


def _run_foreground(spec: Spec, lowers: list[str], cdir: str, layout: Layout) -> int:
    # Signals that arrive before the proxy is in place wait (blocked) instead of killing us.
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, init.FORWARDED)

    def proxy(pid: int) -> None:
        init.proxy_signals(pid)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)

    try:
        started = start(spec, lowers, cdir, on_fork=proxy)
        cgroup = started.cgroup
        try:
            if started.master is not None:
                import contextlib

                from minidocker import tty

                tty.copy_winsize(1, started.master)
                with tty.raw_mode(0) if spec.interactive else contextlib.nullcontext():
                    tty.relay(started.master, started.pidfd, 0 if spec.interactive else None)
            _, status = os.waitpid(started.pid, 0)
            oom_killed = cgroup.oom_killed()  # counted by the kernel, not guessed from 137
        except BaseException:
            kill_and_reap(started.pid)
            raise
        finally:
            os.close(started.pidfd)
            if started.master is not None:
                os.close(started.master)
            cgroup.destroy()
            release_network(cdir, spec.id)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
        for sig in init.FORWARDED:
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGPIPE else signal.SIG_IGN)
    code = init.exit_code(status)
    trace.step("exited", f"status {code}")
    if spec.remove:
        layout.remove_container(spec.id, spec.name)
    else:
        _set_state(cdir, Status="exited", ExitCode=code, OOMKilled=oom_killed,
                   FinishedAt=_now())
    return code


def kill_and_reap(pid: int) -> None:
    """SIGKILL our child ``pid`` and reap it; nothing if it is gone already."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def teardown(layout: Layout, cid: str, name: str | None = None, *, pid: int = 0,
             start_time: int | None = None) -> None:
    """Undo everything container ``cid`` holds on the host. Idempotent; any process may call it.
    ``name``: the name to release; None to look it up, "" if it never claimed one.

    The one place that knows what a container leaves behind, so ``run --rm``, ``rm``,
    ``container prune``, ``system prune`` and the supervisor all tear down alike:

    1. ``kill``     its processes: SIGKILL to its PID 1 (``pid``, if it is still the process
                    that started at ``start_time``) ends its whole PID namespace; we wait
                    until it is gone;
    2. ``release``  what each mechanism holds on the host for it (the cgroup, the network)
                    is given back here, while the record that names it still exists;
    3. ``unlist``   its directory is renamed to ``containers/.<id>.removing`` under its lock,
                    so no command sees half a container and no start can race the removal;
    4. ``name``     its name is released (only if it still points at this container);
    5. ``delete``   the renamed directory is deleted (mounts need no undo: they lived in the
                    container's mount namespace, which died with its last process).

    A crash anywhere leaves a state the next call (or ``system prune``) finishes.
    """
    from minidocker import state

    cdir = layout.container(cid)
    tomb = os.path.join(layout.containers, f".{cid}.removing")
    locked = state.lock_container(cdir)
    try:
        # The cgroup first: it kills every process (even with --pid host) and thaws a paused
        # container, whose frozen PID 1 could not act on the SIGKILL below.
        release_cgroup(cdir, cid)
        release_network(cdir, cid)
        if pid:
            trace.step("kill", f"PID {pid} and with it the container's PID namespace")
            kill_container(pid, start_time)
        if locked:
            if name is None:
                name = _recorded_name(cdir)
            trace.step("unlist", tomb)
            os.rename(cdir, tomb)
    finally:
        if locked:
            state.unlock_container(cdir)
    if name:
        layout.release_name(name, cid)
    elif name is None:  # the record is gone: look for a name still pointing at it
        try:
            links = os.listdir(layout.names)
        except FileNotFoundError:
            links = []
        for link in links:
            layout.release_name(link, cid)
    state.remove_tree(tomb)


def release_cgroup(cdir: str, cid: str) -> None:
    """Kill whatever is left in the container's cgroup, wait until it is empty, remove it.

    Found by where it must be (``--cgroup-parent`` from config.json), not by state.json, so a
    start that died before recording it still leaves nothing behind. Idempotent.
    """
    try:
        from minidocker.state import read_json

        parent = read_json(os.path.join(cdir, "config.json")).get("cgroup_parent")
    except (OSError, ValueError):
        parent = ""
    cgroup = cgroups.find(cid, parent if isinstance(parent, str) else "")
    if cgroup is not None:
        trace.step("release", f"cgroup {cgroup}: kill what is left, wait until empty, rmdir")
        cgroup.destroy()


def release_network(cdir: str, cid: str) -> None:
    """Give back its addresses, DNAT rules, proxy and host links (see
    :func:`minidocker.networking.release`); nothing to do without a ``network.json``."""
    if os.path.exists(os.path.join(cdir, "network.json")):
        from minidocker import networking

        trace.step("release", "network: address, rules, proxy (the veth goes with the netns)")
        networking.release(os.path.dirname(os.path.dirname(cdir)), cid)


def _recorded_name(cdir: str) -> str | None:
    try:
        from minidocker.state import read_json

        name = read_json(os.path.join(cdir, "config.json")).get("name")
    except (OSError, ValueError):
        return None
    return name if isinstance(name, str) else None


def kill_container(pid: int, start_time: int | None = None, timeout: float = 10) -> bool:
    """SIGKILL ``pid`` (if it is still the process that started at ``start_time``, in clock
    ticks since boot, as /proc/<pid>/stat field 22 has it) and wait until it has exited.

    Killing a PID namespace's init kills every process in it. Returns False if the process was
    already gone. A pidfd pins the process, so a PID reused meanwhile is never signalled.
    """
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if start_time is not None:
            from minidocker.lifecycle import process_start_time

            if process_start_time(pid) != start_time:
                return False
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            return False
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(int(timeout * 1000)):
            raise MinidockerError(f"PID {pid} did not die within {timeout}s of SIGKILL")
        return True
    finally:
        os.close(pidfd)
