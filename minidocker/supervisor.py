"""The supervisor: the one long-lived process behind every detached container.

**Why a container needs a parent that stays.** A container is a process, and three things
about a process need another process to be there for as long as it runs:

- *its end*: only its parent learns how it ended, from wait(2). A process nobody waits for
  stays a zombie, and its exit code is lost;
- *its output*: its stdout and stderr are pipes (or a terminal); if nobody reads them the
  container blocks when they fill up, or dies of SIGPIPE when nobody holds them at all;
- *its future*: a ``--restart`` policy needs someone awake when it exits.

``minidocker run`` without ``-d`` is that process itself: it waits, relays and exits with the
container (and takes it along if it is killed: see :func:`minidocker.container.die_with_parent`).
With ``-d`` the command returns at once, so someone else must be the parent: the supervisor.

**One for the whole host.** There is one supervisor per state root, started on demand by the
first command that needs it (:func:`minidocker.client.start_supervisor`: double fork, setsid(2),
its output to ``ROOT/supervisor/log``). It starts every detached container itself, by the same
:func:`minidocker.container.start` as ``run``, so it is their parent; it marks itself a *child
subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so processes orphaned below its containers are
re-parented to it rather than to the host's init, and it reaps them. It is single-threaded
(it forks, and threads and fork(2) do not mix): one :mod:`selectors` loop watches

- a **pidfd** per container (readable when it exits: then wait(2), record, restart or remove);
- its **stdout/stderr** pipes, or its pty master with ``-t`` (lines go to its json-file log,
  see :mod:`minidocker.logs`, and to any ``attach``-ed client);
- the **socket** ``ROOT/supervisor/sock``, where the CLI asks for things (below);
- **timers**: restart back-off, and reaping orphans.

A container costs it a few file descriptors and a small object: no process of its own (podman
keeps one ``conmon`` per container, ~2 MiB each; an idle Python process would cost 8-11 MiB).

**Then and now.** The 2014 Docker of the seed article was this shape: one daemon, the parent
of every container, the CLI talking to it over a unix socket (a REST API). Restarting that
daemon killed every container. Today ``dockerd`` talks to ``containerd``, which starts one
``containerd-shim`` per container; the shim is the container's parent and holds its stdio, so
the daemons can restart while containers run. minidocker keeps the 2014 shape (one process,
for memory), plus a small **keeper** (:mod:`minidocker.keeper`) that holds a duplicate of every
container's pipes and pty master. So when the supervisor dies:

- containers keep running (they were started without a parent-death signal) and are
  re-parented to the host's init; what they write waits in their pipes;
- the next command starts a new supervisor, which takes the pipes back from the keeper and
  *re-adopts* them: logs, attach and restart policies carry on;
- what is lost is the exit code of a container that ends while no supervisor is its parent:
  it is recorded as 255 with an ``Error`` saying why (Docker shows the same 255 after a crash).

**The protocol** (``docs/supervisor-protocol.md`` has examples). A client connects to
``ROOT/supervisor/sock`` (AF_UNIX, SOCK_STREAM), writes one JSON object and a newline, and
reads one JSON line back: ``{"ok": true, ...}`` or ``{"ok": false, "error": "...", "exit": N}``
(N is the exit code the CLI should use). Requests:

==================================================== ============================================
``{"op": "ping"}``                                   ``{"ok": true, "pid": P, "containers": [...]}``
``{"op": "create", "config": {...}, "start": B,       plan and make the container (the config is
``"attach": A}``                                     :class:`minidocker.config.ContainerConfig`
                                                     as a dict); start it if ``B``;
                                                     ``{"id": ID, "output": warnings}``
``{"op": "start", "id": ID, "attach": A}``           start a stopped container
``{"op": "attach", "id": ID, "stdin": B,             attach to a running one
``"stdout": B, "stderr": B}``
``{"op": "resize", "id": ID, "rows": R, "cols": C}`` the ``-t`` container's window size
==================================================== ============================================

With ``attach`` (or an ``"attach"`` object in ``create``/``start``), the connection carries a
stream after the reply line. From the supervisor: frames of Docker's attach format, an 8-byte
header (stream: 1 stdout, 2 stderr, 3 system; three zero bytes; the payload's length as a
big-endian uint32) then the payload. The last frame is a system frame ``{"exit": CODE}`` when
the container ends. From the client: raw bytes for the container's stdin; shutting down the
write side closes it. Everything else (``ps``, ``inspect``, ``logs``, ``stop``, ``kill``, ``rm``,
``exec``) the CLI does itself, from the records and the kernel: the supervisor is needed for
what needs a long-lived parent, and nothing else.

Notebook: ``09_lifecycle``. Man pages: prctl(2) (PR_SET_CHILD_SUBREAPER), pidfd_open(2),
wait(2), unix(7), epoll(7), daemon(7).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import heapq
import os
import selectors
import signal
import socket
import struct
import sys
import time

from minidocker import client, container, engine, lifecycle, logs, state, syscalls
from minidocker.config import ContainerConfig
from minidocker.errors import MinidockerError

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


class Supervisor:
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
        self.root_ino = os.stat(layout.root).st_ino

    # -- the loop ---------------------------------------------------------------------------

    def serve(self, listener: socket.socket) -> None:
        self.listener = listener
        self.sock_ino = os.stat(self.paths["sock"]).st_ino
        self.watch(listener.fileno(), self.accept)
        self.adopt()
        self.later(REAP_INTERVAL, self.housekeeping)
        while not self.stopping:
            timeout = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else None
            self.in_select = True
            try:
                events = self.sel.select(timeout)
            except _Interrupt:
                break
            finally:
                self.in_select = False
            for key, mask in events:
                fd = key.fd
                if mask & selectors.EVENT_WRITE:
                    self.guarded(self.flush, fd, fd=fd)
                if mask & selectors.EVENT_READ and fd in self.readers:
                    self.guarded(self.readers[fd], fd=fd)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, callback = heapq.heappop(self.timers)
                self.guarded(callback)
        self.shutdown()

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

    def housekeeping(self) -> None:
        """Reap orphans re-parented to us; exit if our state root was deleted."""
        self.reap_strays()
        try:
            gone = os.stat(self.layout.root).st_ino != self.root_ino
        except FileNotFoundError:
            gone = True
        if gone:
            log(f"the state root {self.layout.root} is gone: exiting")
            self.stopping = True
            return
        self.later(REAP_INTERVAL, self.housekeeping)

    def reap_strays(self) -> None:
        """wait(2) for every exited child that is not a container we watch: as a subreaper
        we inherit orphans from below (under ``--pid host``, say), and our keeper is ours."""
        ours = {box.pid: box for box in self.boxes.values() if box.child}
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            box = ours.pop(info.si_pid, None)
            if box is not None:
                self.exited(box)  # its pidfd event has not come round yet
            else:
                os.waitpid(info.si_pid, 0)

    # -- clients ----------------------------------------------------------------------------

    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = Conn(sock)
        self.conns[sock.fileno()] = conn
        self.watch(sock.fileno(), lambda: self.on_client(conn))

    def on_client(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if conn.box is not None:  # attached: what the client types goes to the container
            if data:
                if conn.stdin:
                    self.to_stdin(conn.box, data)
                return
            self.watch(conn.sock.fileno(), None)
            if _hung_up(conn.sock.fileno()):  # gone (detached, or killed): stdin stays open
                self.close_conn(conn)
                return
            if conn.stdin:  # shutdown(SHUT_WR): its input ended, so does the container's
                self.close_stdin(conn.box)
            if not conn.want:
                self.close_conn(conn)
            return
        if not data:
            self.close_conn(conn)
            return
        conn.inbuf += data
        if b"\n" not in conn.inbuf:
            if len(conn.inbuf) > 1 << 20:
                self.close_conn(conn)
            return
        line, _, rest = conn.inbuf.partition(b"\n")
        conn.inbuf = b""
        self.watch(conn.sock.fileno(), None)  # one request per connection
        try:
            reply = self.handle(state.loads(line.decode()), conn)
            reply["ok"] = True
        except MinidockerError as exc:
            reply = {"ok": False, "error": str(exc), "exit": exc.exit_code}
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "error": f"bad request: {exc!r}", "exit": 125}
        except OSError as exc:
            notes = "; ".join(getattr(exc, "__notes__", []))
            reply = {"ok": False, "error": f"{exc}" + (f" ({notes})" if notes else ""),
                     "exit": 125}
        except Exception as exc:  # a bug must fail one request, not every container's parent
            import traceback

            log("".join(traceback.format_exception(exc)).rstrip())
            reply = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc} "
                     f"(see {self.paths['log']})", "exit": 125}
        if not reply["ok"] and conn.box is not None:
            self.detach(conn)
        self.write(conn.sock.fileno(), state.dumps(reply).encode() + b"\n")
        if conn.box is not None:  # a stream from now on
            self.watch(conn.sock.fileno(), lambda: self.on_client(conn))
            if rest and conn.stdin:
                self.to_stdin(conn.box, rest)
        else:
            conn.closing = True
            self.flush(conn.sock.fileno())

    def close_conn(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        self.readers.pop(fd, None)
        self.outq.pop(fd, None)
        self._update(fd)
        self.conns.pop(fd, None)
        self.detach(conn)
        conn.sock.close()

    def detach(self, conn: Conn) -> None:
        if conn.box is not None and conn in conn.box.attached:
            conn.box.attached.remove(conn)
        conn.box = None

    def handle(self, message: dict[str, Any], conn: Conn) -> dict[str, Any]:
        op = message.get("op")
        if op == "ping":
            return {"pid": os.getpid(), "containers": sorted(self.boxes)}
        if op == "create":
            config = ContainerConfig.from_dict(message["config"])
            said: list[str] = []  # a warning, for the client to print
            made = engine.plan(config, self.layout, said.append, str(message.get("id") or ""))
            output = "".join(line + "\n" for line in said)
            cid = self.create(made, made.hostconfig(config), bool(message.get("start")))
            if message.get("start"):
                try:
                    self.start(cid, (conn, message.get("attach")))
                except BaseException:
                    self._fresh.pop(cid, None)
                    self.detach(conn)
                    container.teardown(self.layout, cid)
                    raise
            if os.environ.get("MINIDOCKER_TEST_CRASH_BEFORE_REPLY") == "1":
                os.kill(os.getpid(), signal.SIGKILL)  # the tests' kill -9 at the worst moment
            return {"id": cid, **({"output": output} if output else {})}
        if op == "start":
            cid = self.resolve(message["id"])
            started = self.start(cid, (conn, message.get("attach")))
            return {"id": cid, "started": started, "tty": self.boxes[cid].tty
                    if cid in self.boxes else False}
        if op == "attach":
            cid = self.resolve(message["id"])
            box = self.boxes.get(cid)
            if box is None:
                record = lifecycle.read(self.layout.container(cid), "state", {})
                if lifecycle.status(record) == "running":
                    raise lifecycle.LifecycleError(
                        f"container {cid[:12]} runs in the foreground of another minidocker "
                        "run: attach to that terminal instead")
                raise lifecycle.LifecycleError(
                    "cannot attach to a stopped container, start it first")
            self.join(box, conn, message)
            return {"id": cid, "tty": box.tty}
        if op == "resize":
            box = self.boxes.get(self.resolve(message["id"]))
            if box is not None and box.master is not None:
                from minidocker import tty

                tty.set_winsize(box.master, int(message["rows"]), int(message["cols"]))
            return {}
        raise MinidockerError(f"unknown request {op!r}")

    def resolve(self, ref: str) -> str:
        try:
            return self.layout.resolve(ref)
        except MinidockerError as exc:
            raise lifecycle.LifecycleError(str(exc)) from None

    def join(self, box: Box, conn: Conn, attach: dict[str, Any] | None) -> None:
        """Make ``conn`` a stream of ``box``: its output to it, its input to the container."""
        if not attach:
            return
        conn.want = {n for n, key in ((STDOUT, "stdout"), (STDERR, "stderr")) if attach.get(key)}
        conn.stdin = bool(attach.get("stdin"))
        conn.box = box
        box.attached.append(conn)
        if box.master is not None and attach.get("rows"):
            from minidocker import tty

            tty.set_winsize(box.master, int(attach["rows"]), int(attach["cols"]))

    # -- containers -------------------------------------------------------------------------

    def create(self, made: engine.Plan, hostconfig: dict[str, Any],
               starting: bool = False) -> str:
        """Make a container's directory and records (:func:`minidocker.engine.make`), as
        ``create`` (and ``run -d``) do. ``starting``: it starts at once, and :meth:`start`
        writes the records while the container's process sets itself up."""
        cid = engine.make(made, hostconfig, self.layout, starting)
        if starting:
            self._fresh[cid] = (made.spec, made.lowers, {**hostconfig, "LowerDirs": made.lowers})
        log(f"created {cid[:12]} ({made.spec.name})")
        return cid

    def start(self, cid: str, attach: tuple[Conn, dict[str, Any] | None] | None = None) -> bool:
        """Start a created or stopped container as our child; False if it already runs.
        ``attach`` joins a client to its streams before it can write anything."""
        cdir = self.layout.container(cid)
        with lifecycle.locked(cdir):
            record = lifecycle.read(cdir, "state", {})
            if cid in self.boxes or lifecycle.is_running(record):
                if attach and cid in self.boxes:
                    self.join(self.boxes[cid], *attach)
                return False
            fresh = self._fresh.pop(cid, None)  # just created: its plan is still here
            spec, lowers = fresh[:2] if fresh else self._plan(cdir)
            base: dict[str, Any] = {key: record[key] for key in
                                    ("Created", "RestartCount", "FinishedAt") if key in record}
            if fresh:
                base.update(Created=lifecycle.now(), RestartCount=0)
            base.update(Supervised=True, ManuallyStopped=False, Error="", ExitCode=0,
                        OOMKilled=False, Paused=False)

            def on_fork(pid: int) -> None:  # recorded at once: a crash now leaves no orphan
                lifecycle.write(cdir, "state", {**base, "Status": "starting", "Pid": pid,
                                                "StartTime": lifecycle.process_start_time(pid)})
                if fresh:  # written while the child sets up (config.json: by start())
                    lifecycle.write(cdir, "hostconfig", fresh[2])

            ours, theirs, stdio = self._pipes(spec)
            try:
                started = container.start(spec, lowers, cdir, stdio=stdio, tied=False,
                                          on_fork=on_fork)
            except BaseException as exc:
                for fd in ours:
                    os.close(fd)
                before = record.get("Status") or "created"
                lifecycle.write(cdir, "state", {
                    **record, "Status": "created" if before == "created" else "exited",
                    "Pid": 0, "ExitCode": getattr(exc, "exit_code", 125), "Error": str(exc)})
                raise
            finally:
                for fd in theirs:
                    os.close(fd)
            box = Box(cid, cdir)
            box.tty = spec.tty
            box.pid, box.pidfd, box.master = started.pid, started.pidfd, started.master
            box.cgroup = getattr(started, "cgroup", None)
            self.boxes[cid] = box
            self._watch_box(box, ours)
        if attach:
            self.join(box, *attach)
        self.keep(box)
        log(f"started {cid[:12]} as PID {box.pid}")
        return True

    def _plan(self, cdir: str) -> tuple[Spec, list[str]]:
        config = lifecycle.read(cdir, "config")
        try:
            spec = spec_from_record(config, cdir)
        except (TypeError, KeyError) as exc:
            raise MinidockerError(f"{cdir}/config.json was written by another version of "
                                  f"minidocker ({exc}): remove the container and create it "
                                  "again") from None
        lowers = lifecycle.read(cdir, "hostconfig", {}).get("LowerDirs")
        if not lowers:  # made by a foreground run: find its image's layers again
            from minidocker.store import ImageStore

            image = ImageStore(self.layout.root).resolve(spec.image_id)
            lowers = [str(p) for p in image.layer_dirs()]
        return spec, list(lowers)

    def _pipes(self, spec: Spec) -> tuple[list[int], list[int], tuple[int, int, int] | None]:
        """Our ends (stdout, stderr[, stdin]), the container's ends, and its stdio (None
        with -t: it makes a pty in its own devpts and sends us the master)."""
        if spec.tty:
            return [], [], None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if spec.interactive:
            in_r, in_w = os.pipe()
            return [out_r, err_r, in_w], [out_w, err_w, in_r], (in_r, out_w, err_w)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return [out_r, err_r], [out_w, err_w, null], (null, out_w, err_w)

    def _watch_box(self, box: Box, ours: list[int]) -> None:
        """Log and relay its output, and learn of its end (its pidfd becomes readable)."""
        box.log = os.open(logs.log_path(box.cdir), os.O_WRONLY | os.O_APPEND | os.O_CREAT |
                          os.O_CLOEXEC, 0o640)
        if box.master is not None:
            box.streams[box.master] = ("stdout", logs.LineSplitter())
        elif len(ours) >= 2:
            box.streams[ours[0]] = ("stdout", logs.LineSplitter())
            box.streams[ours[1]] = ("stderr", logs.LineSplitter())
            box.stdin = ours[2] if len(ours) > 2 else None
        for fd in [*box.streams, *([box.stdin] if box.stdin is not None else [])]:
            os.set_blocking(fd, False)
        for fd in box.streams:
            self.watch(fd, lambda fd=fd: self.on_output(box, fd))  # type: ignore[misc]
        self.watch(box.pidfd, lambda: self.exited(box))

    def on_output(self, box: Box, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the pty's last slave fd closed
            if exc.errno != errno.EIO:
                raise
            data = b""
        if fd not in box.streams:
            return
        name, splitter = box.streams[fd]
        if not data:
            self.end_stream(box, fd)
            return
        self.log_lines(box, name, splitter.feed(data))
        stream = STDOUT if name == "stdout" else STDERR
        for conn in list(box.attached):
            if stream in conn.want:
                self.send_client(conn, frame(stream, data))

    def log_lines(self, box: Box, name: str, lines: list[bytes]) -> None:
        if lines and box.log >= 0:
            t = time.time_ns()
            try:
                os.write(box.log, b"".join(logs.encode(name, line, t) for line in lines))
            except OSError as exc:  # a full disk must not take the supervisor down
                log(f"{box.id[:12]}: writing its log: {exc}")

    def end_stream(self, box: Box, fd: int) -> None:
        name, splitter = box.streams.pop(fd)
        self.log_lines(box, name, splitter.flush())
        self.watch(fd, None)
        if fd != box.master:
            os.close(fd)

    def send_client(self, conn: Conn, data: bytes) -> None:
        fd = conn.sock.fileno()
        if len(self.outq.get(fd, b"")) > MAX_CLIENT_BACKLOG:
            log("dropping an attached client that does not keep up")
            self.close_conn(conn)
            return
        self.write(fd, data)

    def to_stdin(self, box: Box, data: bytes) -> None:
        target = box.master if box.master is not None else box.stdin
        if target is not None:
            self.write(target, data)

    def close_stdin(self, box: Box) -> None:
        """An attached client's input ended: so does the container's (EOF; ^D with -t)."""
        if box.master is not None:
            self.write(box.master, b"\x04")
        elif box.stdin is not None:
            self.outq.pop(box.stdin, None)
            self.watch(box.stdin, None)
            os.close(box.stdin)
            box.stdin = None
            self.unkeep(box, "stdin")  # the keeper's copy would keep the pipe open

    def exited(self, box: Box) -> None:
        """Its first process ended: read what is left, wait(2), record, then restart,
        remove or forget it."""
        if self.boxes.get(box.id) is not box or not _readable(box.pidfd):
            return  # a stale event for a reused descriptor number
        for fd in list(box.streams):
            while fd in box.streams and _readable(fd):
                self.on_output(box, fd)
        code, error = lifecycle.NO_EXIT_CODE, ""
        if box.child:
            try:
                _, status = os.waitpid(box.pid, 0)
                from minidocker import init

                code = init.exit_code(status)
            except ChildProcessError:
                box.child = False
        if not box.child:
            error = lifecycle.READOPTED_END
        oom = self._release(box)
        self.forget(box)
        hostconfig: dict[str, Any] = {}
        restart = False
        try:
            with lifecycle.locked(box.cdir):
                record = lifecycle.read(box.cdir, "state", {})
                hostconfig = lifecycle.read(box.cdir, "hostconfig", {})
                restart = not hostconfig.get("AutoRemove") and lifecycle.should_restart(
                    hostconfig.get("RestartPolicy") or {}, code,
                    int(record.get("RestartCount") or 0), bool(record.get("ManuallyStopped")))
                record.update(Status="restarting" if restart else "exited", Pid=0,
                              ExitCode=code, Error=error, OOMKilled=oom,
                              FinishedAt=lifecycle.now())
                lifecycle.write(box.cdir, "state", record)
        except MinidockerError:  # removed meanwhile (rm -f): nothing left to record
            pass
        log(f"{box.id[:12]} exited with {code}" + (": restarting" if restart else ""))
        for conn in list(box.attached):
            conn.closing = True
            self.send_client(conn, frame(SYSTEM, state.dumps({"exit": code}).encode()))
        box.attached.clear()
        if restart:
            delay = lifecycle.restart_delay(self.delays.get(box.id, 0.0),
                                            time.monotonic() - box.started)
            self.delays[box.id] = delay
            self.later(delay, lambda: self.restart(box.id))
        else:
            self.delays.pop(box.id, None)
            if hostconfig.get("AutoRemove"):
                container.teardown(self.layout, box.id)

    def _release(self, box: Box) -> bool:
        """Give back what the container held on the host while it ran, as a foreground run
        does when its container exits: its cgroup (the kernel's OOM count is read first) and
        its network.
        Returns whether the kernel killed it for memory."""
        from minidocker import cgroups

        cgroup = box.cgroup
        if cgroup is None:
            parent = str(lifecycle.read(box.cdir, "config", {}).get("cgroup_parent") or "") \
                if os.path.isdir(box.cdir) else ""
            cgroup = cgroups.find(box.id, parent)
        oom = False
        if cgroup is not None:
            oom = cgroup.oom_killed()
            cgroup.destroy()
        container.release_network(box.cdir, box.id)
        return oom

    def forget(self, box: Box) -> None:
        """Close everything we hold for ``box`` (and have the keeper do the same)."""
        for fd in list(box.streams):
            self.end_stream(box, fd)
        for held in (box.pidfd, box.master, box.stdin):
            if held is not None and held >= 0:
                self.outq.pop(held, None)
                self.watch(held, None)
                os.close(held)
        if box.log >= 0:
            os.close(box.log)
        box.pidfd, box.master, box.stdin, box.log = -1, None, None, -1
        self.boxes.pop(box.id, None)
        self.unkeep(box, None)

    def restart(self, cid: str) -> None:
        """The restart timer: start it again, unless it was stopped or removed meanwhile."""
        cdir = self.layout.container(cid)
        try:
            with lifecycle.locked(cdir):
                record = lifecycle.read(cdir, "state", {})
                if record.get("Status") != "restarting":
                    return
                if record.get("ManuallyStopped"):
                    record["Status"] = "exited"
                    lifecycle.write(cdir, "state", record)
                    return
                record["RestartCount"] = int(record.get("RestartCount") or 0) + 1
                lifecycle.write(cdir, "state", record)
                self.start(cid)
        except MinidockerError as exc:
            log(f"restarting {cid[:12]} failed: {exc}")

    # -- re-adoption after a crash ------------------------------------------------------------

    def adopt(self) -> None:
        """Make sense of every record when we start: re-adopt what still runs, record the end
        of what died unseen, start what a restart policy says must run."""
        kept = self.keeper.take_all() if self.keeper is not None else {}
        for cid in lifecycle.list_ids(self.layout):
            try:
                self._adopt_one(cid, kept.pop(cid, {}))
            except MinidockerError as exc:
                log(f"{cid[:12]}: {exc}")
        for cid, fds in kept.items():  # removed while no supervisor ran
            for fd in fds.values():
                os.close(fd)
            self.keeper.drop(cid)
        _finish_removals(self.layout)

    def _adopt_one(self, cid: str, kept: dict[str, int]) -> None:
        cdir = self.layout.container(cid)
        try:
            with lifecycle.locked(cdir):
                self._reconcile(cid, cdir, kept)
        finally:
            for fd in kept.values():
                os.close(fd)
            if cid not in self.boxes and self.keeper is not None:
                self.keeper.drop(cid)

    def _reconcile(self, cid: str, cdir: str, kept: dict[str, int]) -> None:
        record = lifecycle.read(cdir, "state", {})
        hostconfig = lifecycle.read(cdir, "hostconfig", {})
        status = record.get("Status")
        alive = lifecycle.is_running(record)
        if not record.get("Supervised"):  # a foreground run's: its CLI is its parent
            if status in lifecycle.LIVE and not alive:  # ... and that was killed
                lifecycle.write(cdir, "state", {**record, **lifecycle.unseen_end(record)})
                container.release_cgroup(cdir, cid)
                if _config_says_remove(cdir):
                    container.teardown(self.layout, cid)
            return
        if status == "starting" and alive:  # we died half-way through starting it
            container.kill_container(int(record["Pid"]), record.get("StartTime"))
            alive = False
        if status in lifecycle.LIVE and alive:
            self._readopt(cid, cdir, record, kept)
            return
        if status in lifecycle.LIVE:
            record.update(lifecycle.unseen_end(record))
            lifecycle.write(cdir, "state", record)
            log(f"{cid[:12]} ended while no supervisor ran")
            container.release_cgroup(cdir, cid)
        if hostconfig.get("AutoRemove") and status != "created":
            container.teardown(self.layout, cid)
            return
        policy = hostconfig.get("RestartPolicy") or {}
        if status in (*lifecycle.LIVE, "restarting") and lifecycle.should_restart(
                policy, int(record.get("ExitCode") or 0), int(record.get("RestartCount") or 0),
                bool(record.get("ManuallyStopped"))):
            record["Status"] = "restarting"
            lifecycle.write(cdir, "state", record)
            self.later(0, lambda: self.restart(cid))
        elif status == "restarting":
            record["Status"] = "exited"
            lifecycle.write(cdir, "state", record)
        elif status in ("exited", *lifecycle.LIVE) and \
                lifecycle.start_on_boot(policy, record):
            self.later(0, lambda: self._start_logged(cid))

    def _start_logged(self, cid: str) -> None:
        try:
            self.start(cid)
        except MinidockerError as exc:
            log(f"starting {cid[:12]} failed: {exc}")

    def _readopt(self, cid: str, cdir: str, record: dict[str, Any],
                 kept: dict[str, int]) -> None:
        """Watch a container that a dead supervisor started: by a pidfd (it is not our child:
        how it ends will be unknown) and its streams, as the keeper kept them."""
        box = Box(cid, cdir)
        box.child = False
        box.pid = int(record["Pid"])
        box.pidfd = os.pidfd_open(box.pid)
        master = kept.pop("master", None)
        box.master, box.tty = master, master is not None
        ours: list[int] = []
        if box.master is None and "stdout" in kept and "stderr" in kept:
            ours = [kept.pop("stdout"), kept.pop("stderr")]
            if "stdin" in kept:
                ours.append(kept.pop("stdin"))
        elif box.master is None:
            log(f"{cid[:12]}: the keeper had no pipes for it: its output is not logged")
        self.boxes[cid] = box
        self._watch_box(box, ours)
        self.keep(box)
        log(f"re-adopted {cid[:12]} (PID {box.pid})")

    # -- the keeper ---------------------------------------------------------------------------

    def keep(self, box: Box) -> None:
        """Give the keeper copies of the container's pidfd and streams."""
        if self.keeper is None:
            return
        fds = {"pidfd": box.pidfd}
        fds.update({name: fd for fd, (name, _) in box.streams.items() if fd != box.master})
        if box.master is not None:
            fds["master"] = box.master
        if box.stdin is not None:
            fds["stdin"] = box.stdin
        self.keeper.put(box.id, fds)

    def unkeep(self, box: Box, which: str | None) -> None:
        if self.keeper is not None:
            self.keeper.drop(box.id, which)

    # -- the end ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop serving. Containers keep running; the keeper keeps their pipes for the next
        supervisor (and exits by itself once they have all ended)."""
        for box in list(self.boxes.values()):  # what has ended is recorded (and released)
            if _readable(box.pidfd):
                self.exited(box)
        log("shutting down" + (f"; {len(self.boxes)} containers keep running"
                               if self.boxes else ""))
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.paths["sock"]).st_ino == self.sock_ino:  # not a successor's
                os.unlink(self.paths["sock"])
        self.listener.close()
        if self.keeper is not None:
            self.keeper.close(exit_keeper=not self.boxes)


def spec_from_record(fields: dict[str, Any], cdir: str) -> Spec:
    """The plan :meth:`Spec.as_dict` recorded (config.json, or a ``create`` request), as a
    :class:`Spec` again; the security plan is rebuilt from its record, never dropped."""
    from minidocker.spec import Spec

    fields = dict(fields)
    if isinstance(fields.get("security"), dict):
        from minidocker import security  # type: ignore[attr-defined,unused-ignore]

        fields["security"] = security.from_record(fields["security"],
                                                  security.cache_dir_for(cdir))
    return Spec(**fields)


class _Interrupt(Exception):
    """SIGTERM or SIGINT arrived while the loop waited."""


def _hung_up(fd: int) -> bool:
    """Has the peer of this unix socket closed it, not just shut down its writing side?
    (unix(7): POLLHUP once both directions are shut down.)"""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(event & select.POLLHUP for _, event in poller.poll(0))


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


def _config_says_remove(cdir: str) -> bool:
    try:
        return bool(lifecycle.read(cdir, "config").get("remove"))
    except (MinidockerError, ValueError):
        return False


def _finish_removals(layout: state.Layout) -> None:
    """Finish removals that died half-way (``containers/.<id>.removing``)."""
    try:
        names = os.listdir(layout.containers)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(".") and name.endswith(".removing"):
            container.teardown(layout, name[1:-len(".removing")])


def log(message: str) -> None:
    print(f"{lifecycle.now()} supervisor[{os.getpid()}]: {message}", flush=True)


def main(argv: list[str]) -> int:
    """``python -c ... --root ROOT``: serve that state root until SIGTERM (see client.py)."""
    if argv[:1] != ["--root"] or len(argv) != 2:
        print("usage: supervisor --root ROOT", file=sys.stderr)
        return 2
    layout = state.Layout(argv[1])
    paths = client.paths(layout)
    os.makedirs(paths["dir"], mode=0o700, exist_ok=True)
    pid_fd = os.open(paths["pid"], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(pid_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another supervisor already serves this root
    os.ftruncate(pid_fd, 0)
    os.write(pid_fd, f"{os.getpid()} {lifecycle.process_start_time(os.getpid())}\n".encode())
    syscalls.write_file("/proc/self/comm", "md-supervisor")
    syscalls.prctl(syscalls.PR.SET_CHILD_SUBREAPER, 1)
    os.umask(0o022)
    os.chdir("/")

    supervisor = Supervisor(layout)
    from minidocker import keeper

    supervisor.keeper = keeper.connect(layout)

    def on_signal(_signum: int, _frame: object) -> None:
        supervisor.stopping = True
        if supervisor.in_select:
            raise _Interrupt

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths["sock"])
    listener.bind(client._address(paths["sock"]))
    os.chmod(paths["sock"], 0o600)
    listener.listen(128)
    listener.setblocking(False)
    log(f"serving {layout.root}")
    try:
        supervisor.serve(listener)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(paths["pid"])
    return 0
