"""Health checks, run by the supervisor: one :class:`Monitor` per container that has a check,
and at most one check (a :class:`Check`) running for it at a time.

The supervisor is single-threaded and must never block, but a check is an ``exec`` that
waits for its command. So each check runs in a **process of its own**: the supervisor
forks, and the child calls the engine's :func:`minidocker.engine.exec` (the same path as
``minidocker exec``: the container's namespaces, cgroup, user, environment and confinement),
with its stdout and stderr on a pipe, and exits with the command's exit code. The supervisor
watches that child like a container (a pidfd, the output pipe) and keeps only the first
4096 bytes of what it writes. A second pipe carries one line from the child: ``started``
once the command runs (the timeout starts then: starting an ``exec`` is not the check's own
time, as in Docker), or ``error <message>`` when it could not be run (recorded as exit code
-1 with that message, as Docker records a failed exec).

**Killing a check.** The child makes itself a process group (setpgid(2)); the command it
runs, and anything that command starts, inherit it. A check past its timeout, a container
that stops, a supervisor that shuts down: ``killpg(SIGKILL)`` ends the whole group at once.
The command, a child of the killed one, is re-parented to us (we are a subreaper) and reaped.

**The record.** Each result is added to ``State.Health`` in ``state.json`` under the
container's lock, by the same atomic rename as every record (:func:`minidocker.lifecycle.write`);
a result that arrives after the container stopped or restarted is dropped, as Docker drops it.
The rules (:func:`minidocker.health.record`, :func:`minidocker.health.next_delay`) are pure
functions of :mod:`minidocker.health`.

Notebook: ``09_lifecycle``. Man pages: setpgid(2), killpg(3), pidfd_open(2), pipe(7).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from minidocker import health, lifecycle, timefmt
from minidocker.errors import MinidockerError
from minidocker.supervisor_loop import Box, Loop, log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minidocker import state


class Check:
    """One check in flight: its process (and group), its pipes, what it wrote."""

    __slots__ = ("pid", "pidfd", "out", "ctl", "output", "truncated", "start_ns", "started",
                 "timed_out", "error", "said")

    def __init__(self, pid: int, out: int, ctl: int) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.out, self.ctl = out, ctl
        self.output = bytearray()
        self.truncated = False
        self.start_ns = time.time_ns()
        self.started = False  # the command runs (its timeout counts from now)
        self.timed_out = False
        self.error = ""  # why the command could not be run
        self.said = b""  # the control pipe's bytes so far


class Monitor:
    """The health check of one running container."""

    __slots__ = ("cid", "cdir", "pid", "config", "argv", "started_ns", "status", "check",
                 "generation")

    def __init__(self, box: Box, config: dict[str, Any], argv: list[str], started_ns: int,
                 status: str) -> None:
        self.cid, self.cdir, self.pid = box.id, box.cdir, box.pid
        self.config = config
        self.argv = argv
        self.started_ns = started_ns  # the container's StartedAt (the start period's origin)
        self.status = status
        self.check: Check | None = None
        self.generation = 0  # bumped by every schedule: an older timer is stale


class Health(Loop):
    """Health checks: a mixin of :class:`minidocker.supervisor.Supervisor`."""

    def health_start(self, box: Box, config: dict[str, Any] | None,
                     started_ns: int | None = None, status: str = health.STARTING,
                     shell: list[str] | None = None) -> None:
        """Watch ``box``'s health, if its config has a check to run (``shell``: the image's
        SHELL, which runs a ``CMD-SHELL`` check)."""
        argv = health.probe_argv(config, shell)
        if config is None or argv is None:
            return
        self.health_stop(box.id)
        monitor = Monitor(box, config, argv, started_ns or time.time_ns(), status)
        self.monitors[box.id] = monitor
        self._schedule(monitor)

    def health_stop(self, cid: str) -> None:
        """Stop checking ``cid`` (it ended, or we shut down): a check in flight is killed."""
        monitor = self.monitors.pop(cid, None)
        if monitor is not None and monitor.check is not None:
            _kill_group(monitor.check)

    def health_shutdown(self) -> None:
        """At the supervisor's end: kill every check in flight and reap it."""
        checks = [m.check for m in self.monitors.values() if m.check is not None]
        for cid in list(self.monitors):
            self.health_stop(cid)
        for check in checks:
            self._end_check(check)

    def _schedule(self, monitor: Monitor) -> None:
        monitor.generation += 1
        generation = monitor.generation
        delay = health.next_delay(monitor.config, time.time_ns() - monitor.started_ns,
                                  monitor.status)
        self.later(delay / 1e9, lambda: self._due(monitor, generation))

    def _due(self, monitor: Monitor, generation: int) -> None:
        if self.monitors.get(monitor.cid) is not monitor or monitor.generation != generation:
            return
        if lifecycle.read(monitor.cdir, "state", {}).get("Paused"):
            self._schedule(monitor)  # a frozen container is not checked (Docker's rule)
            return
        check = _fork_check(self.layout, monitor.cid, monitor.argv)
        monitor.check = check
        self.watch(check.out, lambda: None if self._on_output(check) else None)
        self.watch(check.ctl, lambda: self._on_control(monitor, check))
        self.watch(check.pidfd, lambda: self._on_end(monitor, check))
        self.checks[check.pid] = lambda: self._on_end(monitor, check)  # for reap_strays
        self.later(health.START_TIMEOUT / 1e9, lambda: self._start_timeout(monitor, check))

    def _on_output(self, check: Check) -> bool:
        """Keep what the check wrote, up to the limit; False once nothing more is there."""
        try:
            data = os.read(check.out, 65536)
        except BlockingIOError:
            return False
        if not data:
            self.watch(check.out, None)
            return False
        room = health.MAX_OUTPUT - len(check.output)
        check.output += data[:max(room, 0)]
        check.truncated = check.truncated or len(data) > room
        return True

    def _on_control(self, monitor: Monitor, check: Check) -> None:
        try:
            data = os.read(check.ctl, 4096)
        except BlockingIOError:
            return
        if not data:
            self.watch(check.ctl, None)
            return
        check.said += data
        while b"\n" in check.said:
            line, _, check.said = check.said.partition(b"\n")
            word, _, rest = line.decode(errors="replace").partition(" ")
            if word == "started" and not check.started:
                check.started = True
                timeout = health.setting(monitor.config, "Timeout")
                self.later(timeout / 1e9, lambda: self._timeout(monitor, check))
            elif word == "error":
                check.error = rest

    def _timeout(self, monitor: Monitor, check: Check) -> None:
        if monitor.check is check:
            check.timed_out = True
            _kill_group(check)

    def _start_timeout(self, monitor: Monitor, check: Check) -> None:
        if monitor.check is check and not check.started:
            check.error = f"timed out starting health check for container {monitor.cid}"
            _kill_group(check)

    def _on_end(self, monitor: Monitor, check: Check) -> None:
        """The check's process ended: its result, recorded; the next one, scheduled."""
        if check.pidfd < 0:
            return  # already seen (reap_strays came first)
        code = self._end_check(check)
        if monitor.check is check:
            monitor.check = None
        if check.timed_out:  # its command was re-parented to us: reap it now, not in 2 s
            self.later(0.05, self.reap_strays)
        if self.monitors.get(monitor.cid) is not monitor:
            return  # stopped meanwhile: nothing to record
        output = health.output_text(bytes(check.output), check.truncated)
        if check.timed_out:
            code, output = -1, health.timeout_output(monitor.config, output)
        elif check.error:
            code, output = -1, check.error
        result = {"Start": timefmt.format_time(check.start_ns), "End": timefmt.now(),
                  "ExitCode": code, "Output": output}
        self._record(monitor, result, check.start_ns - monitor.started_ns)

    def _record(self, monitor: Monitor, result: dict[str, Any], since_start_ns: int) -> None:
        """Add ``result`` to the record, then schedule the next check. The container's lock
        is only *tried*: ``rm -f`` holds it while it waits for the container's init to die,
        and that init waits (in the kernel) until every process of its PID namespace has been
        reaped, the command of a killed check too, which is ours to reap: waiting for the lock
        here would wait for ourselves."""
        if self.monitors.get(monitor.cid) is not monitor:
            return  # stopped meanwhile: nothing to record
        try:
            fd = _try_lock(monitor.cdir)
        except FileNotFoundError:  # removed meanwhile
            self.monitors.pop(monitor.cid, None)
            return
        if fd is None:  # busy: reap what we must, and try again soon
            self.reap_strays()
            self.later(0.05, lambda: self._record(monitor, result, since_start_ns))
            return
        try:
            record = lifecycle.read(monitor.cdir, "state", {})
            if record.get("Status") not in ("running", "paused") or \
                    int(record.get("Pid") or 0) != monitor.pid:
                self.monitors.pop(monitor.cid, None)  # it ended: the result is stale
                return
            before = health.status_of(record.get("Health"))
            record["Health"] = health.record(record.get("Health") or health.initial(None),
                                             result, monitor.config, since_start_ns)
            lifecycle.write(monitor.cdir, "state", record)
        finally:
            os.close(fd)  # (closing the descriptor releases its flock)
        monitor.status = record["Health"]["Status"]
        if monitor.status != before:
            log(f"{monitor.cid[:12]} health_status: {monitor.status}")
        self._schedule(monitor)

    def _end_check(self, check: Check) -> int:
        """Read what is left, reap the check's process, close its descriptors; its code."""
        if check.pidfd < 0:
            return -1
        while check.out in self.readers and self._on_output(check):
            pass  # (what it started may hold the pipe open: no EOF to wait for)
        for fd in (check.out, check.ctl, check.pidfd):
            self.watch(fd, None)
        self.checks.pop(check.pid, None)
        try:
            _, status = os.waitpid(check.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = -1
        for fd in (check.out, check.ctl, check.pidfd):
            os.close(fd)
        check.pidfd = -1
        return code if code >= 0 else 128 - code


def _try_lock(cdir: str) -> int | None:
    """The container's lock (flock(2) on its directory, as :func:`minidocker.state.lock_container`
    takes it) if it is free now: its descriptor, or None if someone holds it.
    FileNotFoundError if the container is gone (or was renamed away to be removed)."""
    import fcntl

    fd = os.open(cdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        if os.stat(cdir).st_ino != os.fstat(fd).st_ino:
            raise FileNotFoundError(cdir)
    except FileNotFoundError:
        os.close(fd)
        raise
    return fd


def _kill_group(check: Check) -> None:
    if check.pidfd >= 0:  # not reaped yet: its group ID cannot have been reused
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(check.pid, signal.SIGKILL)


def _fork_check(layout: state.Layout, cid: str, argv: list[str]) -> Check:
    out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    ctl_r, ctl_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    pid = os.fork()
    if pid == 0:
        _check_child(layout, cid, argv, out_w, ctl_w)
    os.close(out_w)
    os.close(ctl_w)
    return Check(pid, out_r, ctl_r)


def _check_child(layout: state.Layout, cid: str, argv: list[str], out: int, ctl: int) -> None:
    """In the forked child: run ``argv`` in the container through the engine. Never returns."""
    code = 125
    try:
        os.setpgid(0, 0)  # a group of its own: killpg ends it and what it started
        with open("/proc/self/comm", "w") as comm:  # not to be taken for the supervisor
            comm.write("md-healthcheck")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.set_blocking(out, True)
        os.set_blocking(ctl, True)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.dup2(ctl, 3)
        os.closerange(4, os.sysconf("SC_OPEN_MAX"))  # the supervisor's sockets and pipes
        from minidocker import engine
        from minidocker.config import Process

        def started(_pid: int) -> None:
            os.write(3, b"started\n")

        code = engine.exec(lifecycle.Container(layout, cid), Process(args=argv), started=started)
    except MinidockerError as exc:
        code = exc.exit_code
        with contextlib.suppress(OSError):
            os.write(3, f"error {exc}\n".encode())
    except BaseException as exc:  # the process boundary: anything must be reported
        with contextlib.suppress(OSError):
            os.write(3, f"error {type(exc).__name__}: {exc}\n".encode())
    finally:
        os._exit(code & 0xFF)
