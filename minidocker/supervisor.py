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
- **timers**: restart back-off, reaping orphans, and health checks (each check an ``exec``
  in a process of its own: :mod:`minidocker.supervisor_health`).

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

**Where the code is.** This module holds the loop (:meth:`Supervisor.serve`) and :func:`main`;
the supervisor's parts are mixins, one module each, on :class:`minidocker.supervisor_loop.Loop`
(the state, ``watch``, ``write``, timers; and :class:`Box`, one per container):

- :mod:`minidocker.supervisor_requests`: the protocol, ``create``, ``start``, ``attach``;
- :mod:`minidocker.supervisor_streams`: stdio, json-file logs, the keeper;
- :mod:`minidocker.supervisor_exits`: how a container ends, ``--restart``;
- :mod:`minidocker.supervisor_adoption`: re-adoption when a supervisor starts;
- :mod:`minidocker.supervisor_health`: health checks (``HEALTHCHECK``, ``--health-cmd``).
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import os
import selectors
import signal
import socket
import sys
import time

from minidocker import client, lifecycle, state, syscalls
from minidocker.supervisor_adoption import Adoption
from minidocker.supervisor_exits import Exits
from minidocker.supervisor_health import Health
from minidocker.supervisor_loop import (
    FRAME,
    MAX_CLIENT_BACKLOG,
    REAP_INTERVAL,
    STDERR,
    STDOUT,
    SYSTEM,
    Box,
    Conn,
    Loop,
    _Interrupt,
    _readable,
    frame,
    log,
)
from minidocker.supervisor_requests import Requests, spec_from_record
from minidocker.supervisor_streams import Streams

__all__ = [
    "FRAME", "MAX_CLIENT_BACKLOG", "REAP_INTERVAL", "STDERR", "STDOUT", "SYSTEM", "Box", "Conn",
    "Loop", "Supervisor", "frame", "log", "main", "spec_from_record",
]


class Supervisor(Requests, Streams, Exits, Adoption, Health, Loop):
    """The supervisor: the loop below, and its parts (each a module: see "Where the code is"
    above)."""

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

    # -- the end ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop serving. Containers keep running; the keeper keeps their pipes for the next
        supervisor (and exits by itself once they have all ended)."""
        for box in list(self.boxes.values()):  # what has ended is recorded (and released)
            if _readable(box.pidfd):
                self.exited(box)
        self.health_shutdown()  # checks in flight are killed; the next supervisor resumes them
        log("shutting down" + (f"; {len(self.boxes)} containers keep running"
                               if self.boxes else ""))
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.paths["sock"]).st_ino == self.sock_ino:  # not a successor's
                os.unlink(self.paths["sock"])
        self.listener.close()
        if self.keeper is not None:
            self.keeper.close(exit_keeper=not self.boxes)


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
