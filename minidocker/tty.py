"""``-t``: a real pseudo-terminal for the container.

A program such as ``sh`` behaves differently on a terminal: it prints a prompt, edits lines,
and gets SIGINT when you press Ctrl-C. None of that works over plain pipes. So for ``-t``:

1. the container's process opens a pty pair *in its own devpts instance* (``/dev/pts/ptmx``
   gives the *master*, ``/dev/pts/0`` the *slave*), so ``tty`` inside prints ``/dev/pts/0``, a
   path that exists there; it sends the master to the parent over a unix socket (SCM_RIGHTS),
   which is how runc's ``--console-socket`` works too;
2. it makes the slave its controlling terminal (setsid(2), then the ioctl ``TIOCSCTTY``) and
   its stdin, stdout and stderr;
3. the parent puts *its own* terminal in raw mode, so every key (Ctrl-C included) goes through
   unchanged to the container's terminal, whose line discipline turns it into a signal there;
4. the parent copies bytes both ways until the container exits, and forwards window-size
   changes (SIGWINCH -> ``TIOCSWINSZ`` on the master), so full-screen programs redraw right.

Man pages: pty(7), pts(4), tty_ioctl(4), termios(3).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


TIOCGPTN = 0x80045430  # _IOR('T', 0x30, unsigned int): which /dev/pts/N the master has
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): unlock the slave


def open_pty_in(devpts: str) -> tuple[int, int, str]:
    """A new pty pair in the devpts instance mounted at ``devpts``: (master, slave, slave path).

    This is posix_openpt(3) + unlockpt(3) + ptsname(3), spelled as the ioctls they are, so
    that the pair is made in the container's devpts rather than the host's.
    """
    master = os.open(os.path.join(devpts, "ptmx"), os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    index = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    path = os.path.join(devpts, str(index))
    slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    return master, slave, path


def send_fd(sock: socket.socket, fd: int) -> None:
    socket.send_fds(sock, [b"pty"], [fd])


def send_to_console_socket(path: str, fd: int) -> None:
    """Send ``fd`` (a pty master) over the unix socket at ``path`` by SCM_RIGHTS, as runc does
    with ``--console-socket``: the engine (podman's conmon, containerd's shim) listens there."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        socket.send_fds(sock, [b"/dev/ptmx"], [fd])


def recv_fd(sock: socket.socket) -> int | None:
    """The fd the other side sent, or None if it closed the socket without sending one."""
    _, fds, _, _ = socket.recv_fds(sock, 16, 1)
    return fds[0] if fds else None


def copy_winsize(src_fd: int, dst_fd: int) -> None:
    """Give ``dst_fd``'s terminal the window size of ``src_fd``'s (if it is a terminal)."""
    try:
        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return
    fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, size)


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def make_controlling(slave_fd: int) -> None:
    """In the container: a new session whose controlling terminal is the pty slave."""
    os.setsid()
    fcntl.ioctl(slave_fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave_fd, target)
    if slave_fd > 2:
        os.close(slave_fd)


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Put the user's terminal in raw mode for the duration; always restore it."""
    if not os.isatty(fd):
        yield
        return
    import tty as _tty

    saved = termios.tcgetattr(fd)
    _tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def relay(master: int, pidfd: int, stdin: int | None, stdout: int = 1) -> None:
    """Copy stdin -> master and master -> stdout until the container exits (pidfd readable).

    ``stdin`` is None without ``-i``. Window-size changes of ``stdout`` follow the user's
    terminal through SIGWINCH.
    """
    def on_winch(_sig: int, _frame: object) -> None:
        copy_winsize(stdout, master)

    previous = signal.signal(signal.SIGWINCH, on_winch)
    watch = [master, pidfd] + ([stdin] if stdin is not None else [])
    try:
        while True:
            ready, _, _ = select.select(watch, [], [])
            if master in ready and not _pump(master, stdout):
                break
            if stdin is not None and stdin in ready:
                data = os.read(stdin, 4096)
                if data:
                    _write_all(master, data)
                else:  # EOF on our stdin: send the terminal's EOF character
                    watch.remove(stdin)
                    stdin = None
                    _write_all(master, b"\x04")
            if pidfd in ready:
                while _pump(master, stdout, block=False):
                    pass  # drain what the container wrote before it exited
                break
    finally:
        signal.signal(signal.SIGWINCH, previous)


def _pump(master: int, stdout: int, block: bool = True) -> bool:
    """Move one chunk from the master to stdout; False once the slave side is gone."""
    if not block and not select.select([master], [], [], 0)[0]:
        return False
    try:
        data = os.read(master, 65536)
    except OSError as exc:
        if exc.errno == errno.EIO:  # every slave fd is closed: the container's side is gone
            return False
        raise
    if not data:
        return False
    _write_all(stdout, data)
    return True
