"""Drive a command on a real pseudo-terminal, as a person at a keyboard would."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time


class PtyProcess:
    """``argv`` running with a pty as its stdin, stdout and stderr, of a given window size."""

    def __init__(self, argv: list[str], env: dict[str, str],
                 size: tuple[int, int] = (33, 101)) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        self.proc = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.output = b""

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def _read(self, wait: float) -> bool:
        """Read one chunk; False at end of output (EOF, or EIO once the other side closed)."""
        if not select.select([self.master], [], [], wait)[0]:
            return self.proc.poll() is None
        try:
            chunk = os.read(self.master, 4096)
        except OSError:
            return False
        self.output += chunk
        return bool(chunk)

    def read_until(self, marker: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.output and time.monotonic() < deadline:
            if not self._read(1):
                break
        return self.output

    def finish(self, timeout: float = 20) -> tuple[str, int]:
        """Read everything until the command ends; its output and exit code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(1):
            pass
        code = self.proc.wait(timeout=10)
        while self._read(0.2):
            pass
        return self.output.decode(errors="replace"), code

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)
