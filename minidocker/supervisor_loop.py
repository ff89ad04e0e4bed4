"""The supervisor's machinery: what it watches, and how it waits without ever blocking.

- :class:`Box`, one container it watches (its process, pidfd, pipes, json-file log and the
  clients attached to it), and :class:`Conn`, one client connection. A container costs the
  supervisor one ``Box`` (``__slots__``, no ``__dict__``) and a few file descriptors: nothing more
  per container may be added, ``benchmarks/lifecycle.py`` measures it;
- :func:`frame`, the 8-byte header of Docker's attach stream (``docs/supervisor-protocol.md``);
- :class:`Loop`, the part of the supervisor every other part stands on: which fd has a reader
  (``watch``), bytes queued for an fd and written as it becomes writable (``write``, ``flush``),
  timers (``later``), and ``guarded``, which keeps a bug in one handler from ending the parent of
  every container.

The supervisor is :class:`minidocker.supervisor.Supervisor`, made of ``Loop`` and four parts,
each a mixin in its own module: ``supervisor_requests`` (the protocol), ``supervisor_streams``
(stdio, logs, the keeper), ``supervisor_exits`` (ends and ``--restart``) and
``supervisor_adoption`` (re-adoption at start). ``minidocker/supervisor.py`` holds the lesson
and the loop itself (``serve``).

Notebook: ``09_lifecycle``. Man pages: epoll(7), pidfd_open(2), pipe(7).
"""

from __future__ import annotations

import heapq
import os
import selectors
import socket
import struct
import time

from minidocker import client, lifecycle, logs, state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from minidocker.spec import Spec

STDOUT, STDERR, SYSTEM = 1, 2, 3  # stream numbers of an attach frame
FRAME = struct.Struct(">BxxxI")
MAX_CLIENT_BACKLOG = 4 << 20  # bytes queued for a slow attached client before we drop it
REAP_INTERVAL = 2.0  # seconds between sweeps for orphans re-parented to us


def frame(stream: int, payload: bytes) -> bytes:
    return FRAME.pack(stream, len(payload)) + payload


class Box:
    """One container the supervisor watches: its process, its streams, who is attached."""

    __slots__ = ("id", "cdir", "pid", "pidfd", "child", "tty", "master", "stdin", "streams",
                 "log", "attached", "started", "cgroup", "stdin_closed")

    def __init__(self, cid: str, cdir: str) -> None:
        self.id = cid
        self.cdir = cdir
        self.pid = 0
        self.pidfd = -1
        self.child = True  # our child: wait(2) tells how it ended (False once re-adopted)
        self.tty = False
        self.master: int | None = None  # -t: the pty master (stdin and stdout both)
        self.stdin: int | None = None  # -i without -t: the write end of its stdin pipe
        self.streams: dict[int, tuple[str, logs.LineSplitter]] = {}  # fd -> (name, lines)
        self.log = -1  # the json-file log, opened O_APPEND
        self.attached: list[Conn] = []
        self.started = time.monotonic()
        self.cgroup: Any = None
        self.stdin_closed = False


class Conn:
    """A client connection: a request line, then maybe an attach stream."""

    __slots__ = ("sock", "inbuf", "box", "want", "stdin", "closing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.box: Box | None = None
        self.want: set[int] = set()  # streams it attached to
        self.stdin = False
        self.closing = False  # close once its output is flushed


class Loop:
    """The supervisor's state and its selectors plumbing (see the module's docstring)."""

    listener: socket.socket  # the socket clients connect to (set by ``serve``)

    def __init__(self, layout: state.Layout) -> None:
        self.layout = layout
        self.paths = client.paths(layout)
        self.sel = selectors.DefaultSelector()
        self.readers: dict[int, Callable[[], None]] = {}
        self.outq: dict[int, bytearray] = {}
        self.boxes: dict[str, Box] = {}
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.delays: dict[str, float] = {}  # the last restart delay, per container
        self._fresh: dict[str, tuple[Spec, list[str], dict[str, Any]]] = {}  # created, to start
        self.conns: dict[int, Conn] = {}
        self.stopping = False
        self.in_select = False
        self._seq = 0
        self.keeper: Any = None
        self.monitors: dict[str, Any] = {}  # health checks (supervisor_health.Monitor), by ID
        self.checks: dict[int, Callable[[], None]] = {}  # PID of a check in flight -> its end
        self.root_ino = os.stat(layout.root).st_ino

    def guarded(self, callback: Callable[..., None], *args: int, fd: int | None = None) -> None:
        """Run one event's handler. A bug in it is logged with its traceback, and the fd it
        came from is no longer watched (so that it cannot spin); the supervisor serves on:
        every other container depends on it."""
        try:
            callback(*args)
        except _Interrupt:
            raise
        except Exception:
            import traceback

            log("internal error, serving on:\n" + traceback.format_exc().rstrip())
            if fd is not None and fd != self.listener.fileno():
                self.watch(fd, None)

    def watch(self, fd: int, reader: Callable[[], None] | None) -> None:
        """Call ``reader`` when ``fd`` is readable (None: stop reading it)."""
        if reader is None:
            self.readers.pop(fd, None)
        else:
            self.readers[fd] = reader
        self._update(fd)

    def _update(self, fd: int) -> None:
        events = (selectors.EVENT_READ if fd in self.readers else 0) | \
            (selectors.EVENT_WRITE if self.outq.get(fd) else 0)
        try:
            if events:
                self.sel.modify(fd, events)
            else:
                self.sel.unregister(fd)
        except KeyError:
            if events:
                self.sel.register(fd, events)

    def write(self, fd: int, data: bytes) -> None:
        """Queue ``data`` for ``fd``, written as it becomes writable: never blocking."""
        self.outq.setdefault(fd, bytearray()).extend(data)
        self.flush(fd)

    def flush(self, fd: int) -> None:
        buf = self.outq.get(fd)
        while buf:
            try:
                n = os.write(fd, buf)
            except BlockingIOError:
                break
            except OSError:  # its reader went away (EPIPE, ECONNRESET; EIO for a pty)
                self.outq.pop(fd, None)
                self._write_failed(fd)
                return
            del buf[:n]
        if not buf:
            self.outq.pop(fd, None)
            conn = self.conns.get(fd)
            if conn is not None and conn.closing:
                self.close_conn(conn)
                return
        self._update(fd)

    def _write_failed(self, fd: int) -> None:
        conn = self.conns.get(fd)
        if conn is not None:
            self.close_conn(conn)
            return
        for box in self.boxes.values():
            if fd == box.stdin:  # the container closed its stdin: stop writing to it
                self.close_stdin(box)
                return
        self._update(fd)

    def later(self, delay: float, callback: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self._seq, callback))

    if TYPE_CHECKING:  # what the other parts provide, for the type checker
        # supervisor_requests: the protocol
        def close_conn(self, conn: Conn) -> None: ...
        def start(self, cid: str,
                  attach: tuple[Conn, dict[str, Any] | None] | None = None) -> bool: ...
        # supervisor_streams: stdio, logs, the keeper
        def _pipes(self, spec: Spec) -> tuple[list[int], list[int],
                                              tuple[int, int, int] | None]: ...
        def _watch_box(self, box: Box, ours: list[int]) -> None: ...
        def on_output(self, box: Box, fd: int) -> None: ...
        def send_client(self, conn: Conn, data: bytes) -> None: ...
        def to_stdin(self, box: Box, data: bytes) -> None: ...
        def close_stdin(self, box: Box) -> None: ...
        def keep(self, box: Box) -> None: ...
        def forget(self, box: Box) -> None: ...
        # supervisor_exits: ends and restarts
        def exited(self, box: Box) -> None: ...
        def restart(self, cid: str) -> None: ...
        def reap_strays(self) -> None: ...
        # supervisor_health: health checks
        def health_start(self, box: Box, config: dict[str, Any] | None,
                         started_ns: int | None = None, status: str = "starting",
                         shell: list[str] | None = None) -> None: ...
        def health_stop(self, cid: str) -> None: ...


class _Interrupt(Exception):
    """SIGTERM or SIGINT arrived while the loop waited."""


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


def log(message: str) -> None:
    print(f"{lifecycle.now()} supervisor[{os.getpid()}]: {message}", flush=True)
