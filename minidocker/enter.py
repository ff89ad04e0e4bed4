"""``exec``: a new process inside a running container.

A running container is a set of namespaces (and a cgroup) that its processes are in. Entering
it means putting a new process into the same ones, with setns(2), which is all ``nsenter`` and
``docker exec`` do. Three ordering rules shape :func:`exec_in`:

1. **PID namespace: before fork, in the parent.** As with unshare(2), setns(CLONE_NEWPID) only
   decides where the caller's *next child* is born. So ``minidocker exec`` (on the host) joins
   the container's PID namespace for its children, forks, and goes back: the child is a process
   of the container (it has a PID there, and ``ps`` inside shows it), its parent is on the host,
   where it can relay a terminal and wait for it.
2. **The cgroup: before the cgroup namespace.** The child moves into the container's cgroup
   first (if it has one), so whatever it does is counted and limited with the container; then
   joining the cgroup namespace makes that group its ``/``.
3. **The rest, mount last.** The child joins user (if any), uts, ipc, net, cgroup, then mnt:
   :func:`minidocker.namespaces.join` opens every ``/proc/<pid>/ns/*`` first, because once in
   the container's mount namespace the host's ``/proc`` is out of reach. Joining a mount
   namespace also moves the caller's root and working directory to that namespace's root: the
   container's, after its ``pivot_root``. There the child reads the container's
   ``/etc/passwd`` for ``-u``, opens a terminal in the container's devpts for ``-t``, changes
   to ``-w``, and executes the command with the container's environment plus ``-e``.

Like the container's own start, the child then takes on the container's confinement (its
capabilities, seccomp filter and rlimits, rebuilt from ``config.json``: see
:func:`minidocker.security.apply`), closes every descriptor it inherited before exec (runc's
CVE-2024-21626 was exactly an ``exec`` that leaked one), and reports a failure to start
(``!<code> <message>``) over a pipe that closes on exec.

Notebook: ``09_lifecycle``. Man pages: setns(2), nsenter(1), pid_namespaces(7),
cgroup_namespaces(7).
"""

from __future__ import annotations

import os
import signal
import sys

from minidocker import container, namespaces, security, syscalls, trace, users
from minidocker.errors import EXIT_CANNOT_INVOKE, ExecError, MinidockerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Sequence
    from typing import Any


class ExecPlan:
    """What ``exec`` will run, decided (and checked) before anything is touched. ``security``
    is the container's own confinement, rebuilt from its record: an exec'd process gets the
    same capabilities, seccomp filter and limits as the container's first one."""

    __slots__ = ("argv", "env", "user", "workdir", "tty", "interactive", "detach", "security",
                 "keep_stdio", "console_socket")

    def __init__(self, argv: list[str], env: dict[str, str], user: str, workdir: str,
                 tty: bool, interactive: bool, detach: bool, security: Any = None) -> None:
        self.argv, self.env, self.user, self.workdir = argv, env, user, workdir
        self.tty, self.interactive, self.detach = tty, interactive, detach
        self.security = security
        self.keep_stdio = False  # -d, but on the caller's stdio (an OCI runtime's exec)
        self.console_socket = ""  # -t: where the pty master goes (an OCI runtime's exec)


def make_plan(config: dict[str, Any], argv: list[str], *, env: Sequence[str] = (),
              env_files: Sequence[str] = (), user: str | None = None,
              workdir: str | None = None, tty: bool = False, interactive: bool = False,
              detach: bool = False, host_env: dict[str, str] | None = None,
              cdir: str | None = None) -> ExecPlan:
    """Docker's rules: the container's environment, then ``--env-file``, then ``-e``
    (``TERM=xterm`` with ``-t``); the container's user and working directory unless ``-u`` or
    ``-w`` says otherwise; the container's confinement (``cdir`` finds its seccomp cache)."""
    from minidocker import security, spec

    if not argv:
        from minidocker.errors import UsageError

        raise UsageError('"minidocker exec" requires at least 2 arguments: CONTAINER COMMAND')
    base = [f"{k}={v}" for k, v in (config.get("env") or {}).items()]
    merged = spec.build_env(base, env_files, env, os.environ if host_env is None else host_env)
    if tty:
        merged.setdefault("TERM", "xterm")
    workdir = workdir or str(config.get("workdir") or "/")
    if not workdir.startswith("/"):
        from minidocker.errors import UsageError

        raise UsageError(f"the working directory {workdir!r} is invalid, it needs to be an "
                         "absolute path")
    user = user or str(config.get("user") or "0")
    users.parse_spec(user)
    record = config.get("security")
    confinement = security.from_record(record if isinstance(record, dict) else None,
                                       security.cache_dir_for(cdir) if cdir else None)
    return ExecPlan(list(argv), merged, user, workdir, tty, interactive, detach, confinement)


def joinable(pid: int) -> list[str]:
    """The namespace kinds in which ``pid`` differs from us (joining our own user namespace
    is an error, and joining any other of our own is pointless)."""
    mine = namespaces.ns_ids("self")
    theirs = namespaces.ns_ids(pid)
    return [kind for kind, ns in theirs.items() if mine.get(kind) != ns]


def exec_in(pid: int, plan: ExecPlan, cgroup: Any = None,
            started: Callable[[int], None] | None = None) -> int:
    """Run ``plan`` in the container whose first process is ``pid``; its exit code (0 at once
    with ``-d``). ``cgroup`` (a :class:`minidocker.cgroups.Cgroup`, if the container has one)
    is joined first. ``started`` is told the process's PID once it has exec'd."""
    kinds = joinable(pid)
    console = None
    # -d: nobody would be there to read the terminal, unless it goes to a console socket
    if plan.tty and (not plan.detach or plan.console_socket):
        import socket

        console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    read_fd, write_fd = os.pipe()
    own_pidns = None
    sys.stdout.flush()
    sys.stderr.flush()
    if "pid" in kinds:
        trace.step("setns", "the container's PID namespace, for our next child")
        own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            syscalls.setns(target, namespaces.FLAGS["pid"], f"/proc/{pid}/ns/pid")
        finally:
            os.close(target)
    trace.step("fork")
    try:
        child, born_in_cgroup = cgroup.fork_into() if cgroup is not None else (os.fork(), False)
    except BaseException:
        if own_pidns is not None:
            syscalls.setns(own_pidns, namespaces.FLAGS["pid"], "/proc/self/ns/pid")
        raise
    if child == 0:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.close(read_fd)
        if console is not None:
            console[0].close()
        _child(pid, [k for k in kinds if k != "pid"], plan, write_fd,
               console[1] if console else None, None if born_in_cgroup else cgroup)
    if own_pidns is not None:  # our own later children belong in *our* PID namespace
        syscalls.setns(own_pidns, namespaces.FLAGS["pid"], "/proc/self/ns/pid")
        os.close(own_pidns)
    os.close(write_fd)
    master = None
    try:
        if console is not None:
            from minidocker import tty

            console[1].close()
            master = tty.recv_fd(console[0])
            console[0].close()
        error = container.read_reports(read_fd, None, child, ())
        if error is not None:
            os.waitpid(child, 0)
            raise ExecError(error[1], error[0])
        if started is not None:
            started(child)
        if master is not None and plan.console_socket:
            tty.send_to_console_socket(plan.console_socket, master)
            os.close(master)
            master = None
        if plan.detach:
            return 0  # it runs on; the host's init reaps it when it ends
        if master is not None:
            return _relay(child, master, plan.interactive)
        from minidocker import init

        _, status = os.waitpid(child, 0)
        return init.exit_code(status)
    except BaseException:
        if not plan.detach:
            container.kill_and_reap(child)
        raise
    finally:
        if master is not None:
            os.close(master)


def _relay(child: int, master: int, interactive: bool) -> int:
    import contextlib

    from minidocker import init, tty

    pidfd = os.pidfd_open(child)
    try:
        tty.copy_winsize(1, master)
        with tty.raw_mode(0) if interactive else contextlib.nullcontext():
            tty.relay(master, pidfd, 0 if interactive else None)
    finally:
        os.close(pidfd)
    _, status = os.waitpid(child, 0)
    return init.exit_code(status)


def _child(pid: int, kinds: list[str], plan: ExecPlan, report_fd: int,
           console: socket.socket | None, cgroup: Any) -> None:
    """In the container's PID namespace already: join the rest and exec. Never returns."""
    trace.set_where("container")
    try:
        if trace.enabled():
            trace.send_to_fd(report_fd)
        if console is not None:  # everything must be imported before joining the mount ns
            from minidocker import tty
        if cgroup is not None:
            trace.step("cgroup", "the container's, before its cgroup namespace")
            cgroup.join()
        trace.step("setns", ", ".join(kinds))
        namespaces.join(pid, kinds)
        slave = None
        if console is not None:
            master, slave, _ = tty.open_pty_in("/dev/pts")
            tty.send_fd(console, master)
            os.close(master)
            console.close()
        user = users.lookup(plan.user)
        env = dict(plan.env)
        env.setdefault("HOME", user.home)
        try:
            syscalls.chdir(plan.workdir)
        except OSError as exc:
            raise ExecError(f"chdir to cwd ({plan.workdir!r}) failed: "
                            f"{(exc.strerror or str(exc)).lower()}", EXIT_CANNOT_INVOKE) from None
        _stdio(plan, slave)
        exe = container.find_executable(plan.argv[0], env.get("PATH", ""))
        security.apply(plan.security, user, exe, plan.argv[0])  # the user, then caps, seccomp
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        container.close_inherited_fds(keep=report_fd)
        trace.step("exec", " ".join(plan.argv))
        try:
            syscalls.execve(exe, plan.argv, env)
        except PermissionError:
            raise ExecError(f'exec: "{plan.argv[0]}": permission denied',
                            EXIT_CANNOT_INVOKE) from None
        except FileNotFoundError:
            raise ExecError(f'exec: "{plan.argv[0]}": no such file or directory', 127) from None
        code, message = 125, "execve returned"
    except MinidockerError as exc:
        code, message = exc.exit_code, str(exc)
    except OSError as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        code, message = 125, f"{exc}" + (f" ({notes})" if notes else "")
    except BaseException as exc:  # the process boundary: anything must be reported
        code, message = 125, f"{type(exc).__name__}: {exc}"
    try:
        container.report_failure(report_fd, code, message)
    finally:
        os._exit(code)


def _stdio(plan: ExecPlan, slave: int | None) -> None:
    """The pty with ``-t``; nothing at all with ``-d``; else our caller's, minus stdin
    without ``-i``."""
    if slave is not None:
        from minidocker import tty  # imported by _child before it left the host's files

        tty.make_controlling(slave)
        return
    if plan.detach and not plan.keep_stdio:
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)
        return
    if not plan.interactive:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
