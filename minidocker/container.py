"""The start sequence: how ``minidocker run`` turns a plan into a running container.

This module composes the mechanism modules; it holds no mechanism of its own. The start is two
lists of named steps, each one call into a mechanism, each resource's undo registered on an
``ExitStack`` the moment it is made, so a failure unwinds in reverse order:

- :data:`HOST_STEPS`, in the ``minidocker`` process: the security plan, the cgroup, the
  network, ``CLONE_NEWPID``, the fork, then following the child until it execs;
- :data:`minidocker.inside.CHILD_STEPS`, in the child, PID 1 of its new PID namespace: join the
  cgroup, unshare the other namespaces, the root filesystem and ``pivot_root``, hostname,
  network, user, confinement, ``execve``. ``print(*CHILD_STEPS, sep="\n")`` lists them.

Then :func:`run` waits (relaying the terminal or forwarding signals) and :func:`teardown`
gives back what the container held: its processes, its cgroup, its network, its directory.
Mounts need no cleanup: they lived in the container's mount namespace, which the kernel
destroyed with its last process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from minidocker import (
    cgroups,
    container_mounts,
    init,
    inside,
    namespaces,
    network,
    procfs,
    rootfs,
    security,
    syscalls,
    trace,
)
from minidocker.errors import ExecError, MinidockerError

# The container's side lives in minidocker.inside; its names stay readable from here, where
# notebooks, enter and the tests have always found them.
from minidocker.inside import (  # noqa: F401
    CHILD_STEPS,
    ETC_FILES,
    Channel,
    Child,
    close_inherited_fds,
    die_with_parent,
    find_executable,
    report_failure,
    start_in_child,
    wait_for_host,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Sequence
    from typing import Any

    from minidocker.spec import Spec
    from minidocker.state import Layout


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
             "resolv.conf": network.resolv_conf(host_resolv)}
    if len(spec.network) > 1 or spec.network.get("mode", "none") != "none":
        from minidocker import networking  # --add-host, --dns, host and container: modes

        files = networking.etc_files(spec, layout.root, files)
    for name, text in files.items():
        with open(os.path.join(cdir, name), "w") as f:
            f.write(text)
    return cdir


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
                if line == b"=":  # held before execve (minidocker-runtime create): ready
                    return error
                if line.startswith(b"!"):
                    code, _, message = line[1:].decode().partition(" ")
                    error = (int(code), message)
                elif line.startswith(b"?") and go_fd is not None:
                    trace.step("host", f"while the child waits after {line[1:].decode()}")
                    for step in inside.host_steps_for(line[1:].decode(), host_steps):
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
    s.cgroup = cgroups.create(spec.cgroup_name or spec.id,
                              cgroups.CgroupLimits.from_dict(spec.resources), spec.cgroup_parent)
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
        paths = s.spec.oci.namespace_paths if s.spec.oci is not None else {}  # a bundle's
        namespaces.new_or_join("pid", paths.get("pid", ""))


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
    container_mounts.use_volumes,  # -v   bind sources; volumes made, used   undo: release
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
    inside.child_main(s.spec, s.lowers, s.cdir,
           Channel(fds["report (child)"], fds.get("go (child)"), console, s.stdio, s.tied,
                   s.rootfs_link),
           fds["parent"], None if s.born_in_cgroup else s.cgroup)


def run(spec: Spec, lowers: list[str], layout: Layout,
        stdio: tuple[int, int, int] | None = None) -> int:
    """Run ``spec`` in the foreground and return its exit code (``minidocker run``).
    ``stdio``: fds to become the container's 0, 1, 2 (a build's RUN): then our signals are not
    forwarded to it: a Ctrl-C interrupts the caller, and the container is killed."""
    trace.step("prepare", layout.container(spec.id))
    cdir = prepare(spec, layout, lowers)
    claimed = False
    try:
        layout.claim_name(spec.name, spec.id)
        claimed = True
        return _run_foreground(spec, lowers, cdir, layout, stdio)
    except BaseException:
        layout.remove_container(spec.id, spec.name if claimed else None)
        raise


def _run_foreground(spec: Spec, lowers: list[str], cdir: str, layout: Layout,
                    stdio: tuple[int, int, int] | None = None) -> int:
    # Signals that arrive before the proxy is in place wait (blocked) instead of killing us.
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, init.FORWARDED)

    def proxy(pid: int) -> None:
        if stdio is None:  # a build's RUN (stdio given): a Ctrl-C is the builder's to handle
            init.proxy_signals(pid)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)

    try:
        started = start(spec, lowers, cdir, stdio=stdio, on_fork=proxy)
        cgroup = started.cgroup
        try:
            if started.master is not None:
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
            trace.step("cgroup", "release: kill what is left, wait until empty, rmdir")
            cgroup.destroy()
            release_network(cdir, spec.id)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
        for sig in init.FORWARDED if stdio is None else ():  # the proxy's handlers go
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGPIPE else signal.SIG_IGN)
    code = init.exit_code(status)
    trace.step("exited", f"status {code}")
    if spec.remove:  # --rm: as the supervisor removes one, its anonymous volumes too
        teardown(layout, spec.id, spec.name, volumes=True)
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
             start_time: int | None = None, volumes: bool = False) -> None:
    """Undo everything container ``cid`` holds on the host. Idempotent; any process may call it.
    ``name``: the name to release; None to look it up, "" if it never claimed one.

    The one place that knows what a container leaves behind, so ``run --rm``, ``rm``,
    ``container prune``, ``system prune`` and the supervisor all tear down alike:

    1. ``kill``     its processes: SIGKILL to its PID 1 (``pid``, if it is still the process
                    that started at ``start_time``) ends its whole PID namespace; we wait
                    until it is gone;
    2. ``release``  what each mechanism holds on the host for it (the cgroup, the network, its
                    volume references; with ``volumes``, its anonymous volumes) is given
                    back here, while the record that names it still exists;
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
            container_mounts.release_volumes(layout.root, cdir, cid, volumes)
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
    trace.step("delete", "its directory: the upper dir, logs and records")
    state.remove_tree(tomb)
    trace.note("deleted")  # so the delete's time ends here, not at its start


def release_cgroup(cdir: str, cid: str) -> None:
    """Kill whatever is left in the container's cgroup, wait until it is empty, remove it.

    Found by where it must be (``--cgroup-parent`` from config.json), not by state.json, so a
    start that died before recording it still leaves nothing behind. Idempotent.
    """
    try:
        from minidocker.state import read_json

        record = read_json(os.path.join(cdir, "config.json"))
    except (OSError, ValueError):
        record = {}
    parent, name = record.get("cgroup_parent"), record.get("cgroup_name")  # bundles name theirs
    cgroup = cgroups.find(name if isinstance(name, str) and name else cid,
                          parent if isinstance(parent, str) else "")
    if cgroup is not None:
        trace.step("cgroup", f"release {cgroup}: kill what is left, wait until empty, rmdir")
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

    pidfd = procfs.pidfd_open(pid)
    if pidfd is None:
        return False
    try:
        if start_time is not None and procfs.process_start_time(pid) != start_time:
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
