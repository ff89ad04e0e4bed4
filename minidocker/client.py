"""The CLI's side of the supervisor: find it, start it if needed, ask it something.

The protocol is described in :mod:`minidocker.supervisor` (and ``docs/supervisor-protocol.md``):
one JSON object per line over the unix socket ``ROOT/supervisor/sock``, one JSON line back.
This module stays light on purpose: ``run -d`` speaks it on every call, so it uses the C
``_socket`` module and the JSON helpers of :mod:`minidocker.state`, not ``socket`` and
``json`` (~10 ms of imports together).
"""

from __future__ import annotations

import os
import sys
import time

from minidocker import procfs, state
from minidocker.errors import MinidockerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from typing import Any

    from minidocker.config import ContainerConfig

SUPERVISOR_DIR = state.SUPERVISOR_DIR
START_TIMEOUT = 10.0  # seconds for a new supervisor to answer


class SupervisorError(MinidockerError):
    """The supervisor refused a request (its message and exit code), or cannot be reached."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SupervisorGone(SupervisorError):
    """The supervisor ended between our request and its answer (killed, crashed): whether
    it did what we asked is for the caller to find out."""


def paths(layout: state.Layout) -> dict[str, str]:
    """``ROOT/supervisor/{sock,pid,log}``."""
    base = os.path.join(layout.root, SUPERVISOR_DIR)
    return {name: os.path.join(base, name) for name in ("sock", "pid", "log", "keeper")} | \
        {"dir": base}  # keeper: the keeper's socket; keeper.pid its pid file


def supervisor_pid(layout: state.Layout, which: str = "pid") -> int | None:
    """The live supervisor's PID, or None (see :func:`minidocker.lifecycle.supervisor_pid`)."""
    from minidocker import lifecycle

    return lifecycle.supervisor_pid(layout, which)


def _address(path: str) -> str:
    """A unix socket address for ``path``; longer than sun_path's 108 bytes, go through the
    directory's ``/proc/self/fd`` link (the socket is the same file either way)."""
    if len(path) < 100:
        return path
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{os.path.basename(path)}"  # fd lives as long as this process


def connect(layout: state.Layout, spawn: bool = True) -> _socket.socket:
    """A connection to this state root's supervisor, starting one if there is none."""
    import _socket

    address = _address(paths(layout)["sock"])
    deadline = None
    while True:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(address)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if not spawn:
                raise SupervisorError(f"no supervisor is running for {layout.root}") from None
        if deadline is None:
            start_supervisor(layout)
            deadline = time.monotonic() + START_TIMEOUT
        elif time.monotonic() > deadline:
            raise SupervisorError(f"the supervisor for {layout.root} did not start within "
                                  f"{START_TIMEOUT:.0f}s; see {paths(layout)['log']}")
        time.sleep(0.005)


def send(sock: _socket.socket, message: dict[str, Any]) -> dict[str, Any]:
    """Send one request line and read the one reply line; raise its error if it has one."""
    import _socket

    buf = b""
    try:
        sock.sendall(state.dumps(message).encode() + b"\n")
        while not buf.endswith(b"\n"):  # no further: an attach stream may follow the line
            chunk = sock.recv(65536, _socket.MSG_PEEK)
            if not chunk:
                break
            end = chunk.find(b"\n")
            buf += sock.recv(end + 1 if end >= 0 else len(chunk))
    except (ConnectionResetError, BrokenPipeError):
        pass  # a listener that dies resets the connections it had not accepted yet
    if not buf.endswith(b"\n"):
        raise SupervisorGone("the supervisor closed the connection without answering")
    reply: dict[str, Any] = state.loads(buf.decode())
    if not reply.get("ok"):
        raise SupervisorError(str(reply.get("error", "the supervisor failed")),
                              int(reply.get("exit", 125)))
    return reply


def request(layout: state.Layout, message: dict[str, Any], spawn: bool = True) -> dict[str, Any]:
    """One request, one reply, on a connection of its own."""
    sock = connect(layout, spawn)
    try:
        return send(sock, message)
    finally:
        sock.close()


# -- run -d and create: the supervisor makes the container ------------------------------------

def create_request(config: ContainerConfig, cid: str, start: bool,
                   trace: str = "") -> dict[str, Any]:
    """The ``create`` request: the typed config crosses the socket as a dict; ``trace``, a
    file the supervisor appends the start's trace events to (``run -d --trace``)."""
    return {"op": "create", "config": config.to_dict(), "id": cid, "start": start,
            **({"trace": trace} if trace else {})}


def run_detached(config: ContainerConfig, *, start: bool, trace: str = "") -> int:
    """``run -d`` and ``create``: the supervisor makes the container from ``config`` (and
    starts it); print its ID. Kept here, in the light client, because ``run -d`` is a
    start-up path: it imports no command module, signal or contextlib (~10 ms)."""
    layout = state.Layout()
    cid = state.new_id()  # chosen here, so that we can find it if the supervisor dies
    try:
        reply = request(layout, create_request(config, cid, start, trace))
    except SupervisorGone:
        return after_the_supervisor_died(layout, cid)
    print_output(reply)
    print(reply["id"], flush=True)
    return 0


def print_output(reply: dict[str, Any]) -> None:
    """What the engine had to say (a warning) comes back in the reply: to stderr."""
    if reply.get("output"):
        sys.stderr.write(str(reply["output"]))
        sys.stderr.flush()


def after_the_supervisor_died(layout: state.Layout, cid: str) -> int:
    """The supervisor ended between our request and its answer: ask a new one (which
    re-adopts whatever the old one had started) and say what became of the container."""
    from minidocker import lifecycle

    # The dying supervisor's listening socket can outlive the connection it dropped by a few
    # moments; a ping that lands in its queue is dropped too. Ask again, a bounded few times.
    for attempt in range(20):
        try:
            request(layout, {"op": "ping"})  # starts a new supervisor; it re-adopts
            break
        except SupervisorGone:
            if attempt == 19:
                raise
            time.sleep(0.02 * (attempt + 1))
    cdir, short = layout.container(cid), cid[:12]
    record = lifecycle.read(cdir, "state", {}) if os.path.isdir(cdir) else {}
    if not record:
        if os.path.isdir(cdir):  # made in part, never recorded: leave nothing behind
            from minidocker import container

            container.teardown(layout, cid)
        raise SupervisorError(f"the supervisor ended before it answered: container "
                              f"{short} was not made, and nothing was created")
    current = lifecycle.status(record)
    if current == "exited":
        current = f"exited ({lifecycle.exit_code(record)})"
    print(f"minidocker: warning: the supervisor ended before it answered; container {short} "
          f"is {current}{', and a new supervisor looks after it' if current == 'running' else ''}",
          file=sys.stderr)
    print(cid, flush=True)
    return 0


# -- starting and stopping the supervisor -------------------------------------------------------

def start_supervisor(layout: state.Layout) -> int:
    """Start a supervisor for ``layout.root``, detached from us: double fork, setsid(2), its
    stdio on ``ROOT/supervisor/log``. Returns its PID at once; :func:`connect` waits for its
    socket. Two commands starting one at the same time start two; the second finds the first
    holding the lock on ``ROOT/supervisor/pid`` and exits quietly.
    """
    import minidocker

    os.makedirs(paths(layout)["dir"], mode=0o700, exist_ok=True)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(minidocker.__file__)))
    argv = [sys.executable, "-I", "-S", "-c",
            f"import sys; sys.path.insert(0, {package_parent!r}); "
            "from minidocker.supervisor import main; sys.exit(main(sys.argv[1:]))",
            "--root", os.path.abspath(layout.root)]
    sys.stdout.flush()
    sys.stderr.flush()
    pid_r, pid_w = os.pipe()  # the middle process tells us the supervisor's PID
    pid = os.fork()
    if pid == 0:  # the middle process: a new session, then out of the way
        try:
            os.close(pid_r)
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                os.write(pid_w, str(grandchild).encode())
            else:
                log = os.open(paths(layout)["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                              0o600)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.closerange(3, 1 << 16)
                os.execv(sys.executable, argv)
        finally:
            os._exit(0)
    os.close(pid_w)
    os.waitpid(pid, 0)
    with os.fdopen(pid_r, "rb") as f:
        return int(f.read() or 0)


def stop_supervisor(layout: state.Layout, timeout: float = 10, which: str = "pid") -> bool:
    """Stop this root's supervisor (SIGTERM, then SIGKILL) and wait for it; False if none ran.
    ``which="keeper.pid"`` stops its keeper instead (tests, at the end).

    Containers keep running: they do not depend on it (see :mod:`minidocker.supervisor`).
    """
    import select
    import signal

    pid = supervisor_pid(layout, which)
    if pid is None:
        return False
    pidfd = procfs.pidfd_open(pid)
    if pidfd is None:
        return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                signal.pidfd_send_signal(pidfd, sig)
            except ProcessLookupError:
                return True
            if poller.poll(int(timeout * 1000)):
                return True
        return True
    finally:
        os.close(pidfd)


def stop_everything(layout: state.Layout) -> list[str]:
    """Stop this root's supervisor, remove every container of it (teardown: killed if it still
    runs, its cgroup and network given back, also those of one whose ``run`` was killed), then
    stop its keeper; processes by PID. What a test or a notebook does before it deletes a state
    root. Returns what it had to stop."""
    from minidocker import container, lifecycle

    stopped = []
    # The supervisor first, so that it cannot start (restart) a container behind our back.
    if stop_supervisor(layout):
        stopped.append("supervisor")
    for cid, record in lifecycle.iter_records(layout):
        running = lifecycle.is_running(record)
        container.teardown(layout, cid, pid=int(record["Pid"]) if running else 0,
                           start_time=record.get("StartTime"))
        if running:
            stopped.append(f"container {cid[:12]}")
    if stop_supervisor(layout, which="keeper.pid"):
        stopped.append("keeper")
    return stopped
