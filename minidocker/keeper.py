"""The keeper: a tiny process that holds a copy of every detached container's pipes.

A pipe whose last reader has gone kills its writer (SIGPIPE); a terminal whose master side
closes hangs up (SIGHUP to its processes); a stdin pipe whose last writer closes reads as end
of file. So if the supervisor (:mod:`minidocker.supervisor`) died holding the only copies of its
containers' pipes, every container that wrote a line would die with it. Docker avoids this with
one ``containerd-shim`` per container, podman with one ``conmon``; minidocker keeps one process
per state root, this one, which does nothing but hold duplicates of the descriptors (they cost
the kernel a reference each) and hand them to the next supervisor:

- while a supervisor runs, it sends the keeper each container's fds when it starts it, and tells
  it to drop them when the container ends;
- when the supervisor dies, the keeper's copies keep the pipes and terminals open: the
  containers run on, and what they write waits in the pipe (64 KiB, then they block);
- a new supervisor connects and takes copies of everything back (:meth:`Keeper.take_all`).

It also holds each container's pidfd, so when no supervisor is connected it can notice a
container ending and let go of its pipes, and exit once it holds nothing.

The protocol, over the AF_UNIX SOCK_SEQPACKET socket ``ROOT/supervisor/keeper`` (one message
per request, fds attached as SCM_RIGHTS; see unix(7)):

================================ =================================================================
``put ID NAME...`` + fds         keep these, one per NAME (``pidfd stdout stderr stdin master``)
``drop ID [NAME]``               close them
``take``                         answer one message ``ID NAME...`` + fds per container, then
                                 ``end``; the keeper keeps its own copies
``exit``                         close everything and exit
================================ =================================================================

Man pages: unix(7) (SCM_RIGHTS), pidfd_open(2), pipe(7) ("If all file descriptors referring to
the read end of a pipe have been closed, then a write(2) will cause a SIGPIPE signal").
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from minidocker.state import Layout

MAX_FDS = 16  # per message: a container has at most pidfd, stdin, stdout, stderr, master


class Keeper:
    """The supervisor's connection to the keeper (started here if none runs)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _send(self, text: str, fds: Sequence[int] = ()) -> None:
        try:
            socket.send_fds(self.sock, [text.encode()], list(fds))
        except OSError as exc:  # the keeper died: containers lose their safety net, not more
            print(f"keeper: {exc}", file=sys.stderr, flush=True)

    def put(self, cid: str, fds: dict[str, int]) -> None:
        if fds:
            self._send(f"put {cid} {' '.join(fds)}", list(fds.values()))

    def drop(self, cid: str, name: str | None = None) -> None:
        self._send(f"drop {cid}" + (f" {name}" if name else ""))

    def take_all(self) -> dict[str, dict[str, int]]:
        """Copies of every descriptor the keeper holds, by container and name."""
        self._send("take")
        kept: dict[str, dict[str, int]] = {}
        while True:
            msg, fds, _, _ = socket.recv_fds(self.sock, 4096, MAX_FDS)
            words = msg.decode().split()
            if not words or words == ["end"]:
                return kept
            cid, names = words[0], words[1:]
            kept[cid] = dict(zip(names, fds, strict=True))

    def close(self, exit_keeper: bool) -> None:
        if exit_keeper:
            self._send("exit")
        self.sock.close()


def path(layout: Layout) -> str:
    from minidocker import client

    return client.paths(layout)["keeper"]


def connect(layout: Layout) -> Keeper | None:
    """Connect to this root's keeper, starting one if there is none; None if that fails."""
    address = _address(path(layout))
    for attempt in range(200):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(address)
            return Keeper(sock)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
        if attempt == 0:
            _spawn(layout)
        import time

        time.sleep(0.01)
    print("keeper: did not start; containers will not survive a supervisor crash",
          file=sys.stderr, flush=True)
    return None


def _address(sock_path: str) -> str:
    from minidocker import client

    return client._address(sock_path)


def _spawn(layout: Layout) -> None:
    """fork + exec a fresh, small interpreter (a fork of the supervisor would carry its
    memory), in the supervisor's session; it outlives the supervisor by design."""
    import minidocker

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(minidocker.__file__)))
    argv = [sys.executable, "-I", "-S", "-c",
            f"import sys; sys.path.insert(0, {package_parent!r}); "
            "from minidocker.keeper import main; sys.exit(main(sys.argv[1:]))",
            "--root", os.path.abspath(layout.root)]
    pid = os.fork()
    if pid == 0:
        try:
            os.closerange(3, 1 << 16)
            os.execv(sys.executable, argv)
        finally:
            os._exit(127)
    # Not waited for here: the supervisor, its parent while both live, reaps it if it exits.


def main(argv: list[str]) -> int:
    """Hold descriptors for the supervisors of one state root until told to exit."""
    if argv[:1] != ["--root"] or len(argv) != 2:
        return 2
    import fcntl

    from minidocker import client, procfs, state

    layout = state.Layout(argv[1])
    sock_path = path(layout)
    lock = os.open(sock_path + ".pid", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another keeper serves this root
    os.ftruncate(lock, 0)
    os.write(lock, f"{os.getpid()} {procfs.process_start_time(os.getpid())}\n".encode())
    with open("/proc/self/comm", "w") as f:
        f.write("md-keeper")
    with contextlib.suppress(PermissionError):
        os.setsid()  # out of the supervisor's session: a hang-up there is not ours
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock_path)
    listener.bind(client._address(sock_path))
    os.chmod(sock_path, 0o600)
    inode = os.stat(sock_path).st_ino
    listener.listen(4)
    try:
        _serve(listener)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if os.stat(sock_path).st_ino == inode:  # not a successor's
                os.unlink(sock_path)
    return 0


FIRST_CONTACT = 30.0  # seconds to wait for the supervisor that started us


def _serve(listener: socket.socket) -> None:
    held: dict[str, dict[str, int]] = {}
    conn: socket.socket | None = None
    served = False
    while True:
        watched: list[int] = [listener.fileno()]
        if conn is not None:
            watched.append(conn.fileno())
        else:  # nobody to tell us: watch the containers ourselves
            watched += [fds["pidfd"] for fds in held.values() if "pidfd" in fds]
        ready, _, _ = select.select(watched, [], [], None if served else FIRST_CONTACT)
        if not ready and not served:
            return
        for fd in ready:
            if fd == listener.fileno():
                new, _ = listener.accept()
                if conn is not None:
                    conn.close()  # the newest supervisor wins
                conn, served = new, True
            elif conn is not None and fd == conn.fileno():
                msg, fds, _, _ = socket.recv_fds(conn, 4096, MAX_FDS)
                if not msg:
                    conn.close()
                    conn = None
                elif not _request(conn, msg.decode().split(), fds, held):
                    return
            else:  # a container's pidfd: it ended while no supervisor was connected
                for cid, mine in list(held.items()):
                    if mine.get("pidfd") == fd:
                        _drop(held, cid, None)
        if served and conn is None and not held:
            return


def _request(conn: socket.socket, words: list[str], fds: list[int],
             held: dict[str, dict[str, int]]) -> bool:
    """Carry out one request; False means exit."""
    if words[:1] == ["put"] and len(words) - 2 == len(fds):
        mine = held.setdefault(words[1], {})
        for name, fd in zip(words[2:], fds, strict=True):
            if name in mine:
                os.close(mine[name])
            mine[name] = fd
        return True
    for fd in fds:  # nothing else carries descriptors
        os.close(fd)
    if words[:1] == ["drop"] and len(words) in (2, 3):
        _drop(held, words[1], words[2] if len(words) == 3 else None)
    elif words == ["take"]:
        for cid, mine in held.items():
            socket.send_fds(conn, [f"{cid} {' '.join(mine)}".encode()], list(mine.values()))
        conn.send(b"end")
    elif words == ["exit"]:
        for cid in list(held):
            _drop(held, cid, None)
        return False
    return True


def _drop(held: dict[str, dict[str, int]], cid: str, name: str | None) -> None:
    mine = held.get(cid, {})
    for key in [name] if name else list(mine):
        fd = mine.pop(key, None)
        if fd is not None:
            os.close(fd)
    if not mine:
        held.pop(cid, None)
