"""A supervised container's stdio: the pipes (or pty master) the supervisor reads, the lines it
writes to the container's json-file log (:mod:`minidocker.logs`), the frames it relays to
attached clients and the bytes it writes to the container's stdin; and the hand-off of every
descriptor to the keeper (:mod:`minidocker.keeper`), so that they outlive the supervisor.
``docs/supervisor-protocol.md`` describes the attach stream and the keeper's messages.

Notebook: ``09_lifecycle``. Man pages: pipe(7), pty(7), unix(7) (SCM_RIGHTS).
"""

from __future__ import annotations

import errno
import os
import time

from minidocker import logs
from minidocker.supervisor_loop import (
    MAX_CLIENT_BACKLOG,
    STDERR,
    STDOUT,
    Box,
    Conn,
    Loop,
    frame,
    log,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from minidocker.spec import Spec


class Streams(Loop):
    """Stdio, logs and the keeper: a mixin of :class:`minidocker.supervisor.Supervisor`."""

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
