"""The client's side of ``attach`` (and ``start -a``, ``run --restart`` in the foreground).

After the supervisor answers an attach request, the same connection carries the container's
streams both ways (see :mod:`minidocker.supervisor`): frames from it (Docker's format: a stream
byte, three zeros, a big-endian length, the bytes), raw bytes to it for the container's stdin.
:func:`relay` copies them between the connection and our own stdin/stdout/stderr until

- a ``system`` frame brings the container's exit code: we return it;
- the user types the detach keys (ctrl-p ctrl-q by default): we leave, the container runs on
  (:class:`DetachScanner`: a key that starts the sequence is held back until the next one
  shows whether it was meant);
- the connection drops: the supervisor is gone.

With ``--sig-proxy`` (the default without ``-t``) the signals we receive are sent to the
container's first process, through a pidfd; with ``-t`` the terminal carries them instead
(ctrl-c is a byte, turned into SIGINT by the container's own terminal). Window size changes
(SIGWINCH) are forwarded with a separate ``resize`` request.

Man pages: signal(7), pidfd_send_signal(2), tty_ioctl(4).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import sys

from minidocker.errors import MinidockerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

HEADER = struct.Struct(">BxxxI")
STDOUT, STDERR, SYSTEM = 1, 2, 3


class FrameReader:
    """Cuts a byte stream into ``(stream, payload)`` frames."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self.buf += data
        while len(self.buf) >= HEADER.size:
            stream, size = HEADER.unpack_from(self.buf)
            if len(self.buf) < HEADER.size + size:
                return
            payload = self.buf[HEADER.size:HEADER.size + size]
            self.buf = self.buf[HEADER.size + size:]
            yield stream, payload


class DetachScanner:
    """Finds the detach sequence in what the user types; passes everything else through."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """``(bytes to send on, detach?)``."""
        out = b""
        for byte in data:
            self.held += bytes([byte])
            if self.held == self.keys:
                return out, True
            if not self.keys.startswith(self.held):
                out += self.held
                self.held = b""
        return out, False


def relay(sock: Any, *, stdin: bool, tty: bool, pidfd: int | None, detach_keys: bytes,
          resize: Callable[[int, int], None] | None = None) -> int | None:
    """Copy the attach stream until the container exits (its code) or we detach (None)."""
    frames = FrameReader()
    scanner = DetachScanner(detach_keys)
    watch_stdin = stdin
    sock_fd = sock.fileno()
    previous: dict[signal.Signals, Any] = {}

    def forward(signum: int, _frame: object) -> None:
        if pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signum)

    def winch(_signum: int, _frame: object) -> None:
        if resize is not None and os.isatty(1):
            size = os.get_terminal_size(1)
            resize(size.lines, size.columns)

    if pidfd is not None:
        from minidocker import init

        for sig in init.FORWARDED:
            previous[sig] = signal.signal(sig, forward)
    if tty:
        previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, winch)
    raw = _raw(0) if (tty and stdin and os.isatty(0)) else contextlib.nullcontext()
    try:
        with raw:
            while True:
                watched = [sock_fd] + ([0] if watch_stdin else [])
                ready, _, _ = select.select(watched, [], [])
                if 0 in ready:
                    data = os.read(0, 4096)
                    if not data:
                        watch_stdin = False
                        with contextlib.suppress(OSError):
                            sock.shutdown(1)  # SHUT_WR: the container's stdin ends
                    else:
                        data, detach = scanner.feed(data)
                        if data:
                            sock.sendall(data)
                        if detach:
                            return None
                if sock_fd in ready:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise MinidockerError("lost the connection to the supervisor")
                    for stream, payload in frames.feed(chunk):
                        if stream == SYSTEM:
                            return int(json.loads(payload).get("exit", 0))
                        target = sys.stderr.buffer if stream == STDERR and not tty \
                            else sys.stdout.buffer
                        target.write(payload)
                        target.flush()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raw(fd: int) -> contextlib.AbstractContextManager[None]:
    from minidocker import tty

    return tty.raw_mode(fd)
