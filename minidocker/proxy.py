"""The userland proxy: what Docker's ``docker-proxy`` does, for the ports a container publishes.

The DNAT rules (:mod:`minidocker.nftables`) carry almost all published traffic inside the
kernel. Two things still need a program listening on the host port:

1. **The host's own loopback.** A connection to ``127.0.0.1:8080`` from the host cannot be
   DNATed to ``172.17.0.2:80``: the kernel refuses to route a packet whose source is a loopback
   address out of a real interface (unless ``route_localnet`` is set, which would expose
   127.0.0.1 to the network). So the DNAT rule skips 127.0.0.0/8, the connection arrives at
   this proxy's socket, and the proxy opens its own connection to the container and copies
   bytes both ways. The same happens for containers that reach a published port through the
   host, and for IPv6 host addresses (the containers have IPv4 only).
2. **Reserving the port.** Binding the host port is how a second container asking for the same
   port fails at once ("port is already allocated") instead of silently losing its traffic.

**Where it runs.** One proxy *process per container* that publishes ports (none otherwise),
holding all that container's ports, where Docker starts one docker-proxy per port. It is forked
from ``minidocker run`` once the ports are bound, so it starts without re-importing anything; it
calls setsid(2) to leave the terminal's signals behind, and exits when the container does (it
polls a pidfd for the container's PID 1), removing the container's DNAT rules on its way out so
no rule ever points at an address that may be handed to the next container. Connections are
relayed by one thread each; UDP "connections" are tracked per client address, as docker-proxy
does, and forgotten after 60 s of silence.

Notebook: ``06_networking``. Man pages: socket(7), tcp(7), udp(7), pidfd_open(2), setsid(2).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading

from minidocker import procfs
from minidocker.errors import MinidockerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

UDP_IDLE_S = 60.0
BUFSIZE = 65536


class PortInUse(MinidockerError):
    """The host port of a ``-p`` is taken."""


def _family(host_ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host_ip else socket.AF_INET


def bind(proto: str, host_ip: str, port: int) -> socket.socket:
    """A socket bound to ``host_ip:port`` (listening, for TCP and SCTP). Port 0: the kernel
    picks a free one (``getsockname`` tells which)."""
    family = _family(host_ip)
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    number = socket.IPPROTO_SCTP if proto == "sctp" else 0
    try:
        sock = socket.socket(family, kind, number)
    except OSError as exc:
        raise MinidockerError(f"cannot publish {proto} ports: {exc.strerror}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host_ip, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
    except OSError as exc:
        sock.close()
        shown = f"[{host_ip}]:{port}" if family == socket.AF_INET6 else f"{host_ip}:{port}"
        if exc.errno == 98:  # EADDRINUSE
            raise PortInUse(f"Bind for {shown} failed: port is already allocated") from None
        raise MinidockerError(f"Bind for {shown} failed: {exc.strerror}") from None
    return sock


class Listener:
    """One bound host socket and the container address it leads to."""

    __slots__ = ("sock", "proto", "target")

    def __init__(self, sock: socket.socket, proto: str, target: tuple[str, int]) -> None:
        self.sock = sock
        self.proto = proto
        self.target = target


def serve(listeners: list[Listener], pidfd: int, on_exit: Callable[[], None]) -> None:
    """Relay until the process behind ``pidfd`` exits; then run ``on_exit`` and return."""
    udp: dict[int, dict[tuple[object, ...], socket.socket]] = {}
    by_fd = {lst.sock.fileno(): lst for lst in listeners}
    poller = select.poll()
    for fd in (pidfd, *by_fd):
        poller.register(fd, select.POLLIN)
    while True:
        events = poller.poll(1000)
        if any(fd == pidfd for fd, _ in events):
            break
        for fd, _ in events:
            lst = by_fd[fd]
            if lst.proto == "udp":
                _udp_datagram(lst, udp.setdefault(fd, {}))
            else:
                try:
                    conn, _ = lst.sock.accept()
                except OSError:
                    continue
                threading.Thread(target=_relay_stream, args=(conn, lst), daemon=True).start()
    on_exit()


def _relay_stream(client: socket.socket, lst: Listener) -> None:
    try:
        upstream = socket.create_connection(lst.target, timeout=10) if lst.proto == "tcp" \
            else _connect_sctp(lst.target)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    _pump(client, upstream)


def _connect_sctp(target: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    sock.settimeout(10)
    sock.connect(target)
    return sock


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both sides have closed; a half-close is passed on (shutdown)."""
    open_ends = {a: b, b: a}
    try:
        while open_ends:
            ready, _, _ = select.select(list(open_ends), [], [])
            for src in ready:
                data = src.recv(BUFSIZE)
                dst = open_ends[src]
                if data:
                    dst.sendall(data)
                    continue
                del open_ends[src]
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def _udp_datagram(lst: Listener, flows: dict[tuple[object, ...], socket.socket]) -> None:
    """A client's datagram goes out through that client's own socket to the container; a thread
    per client sends the container's answers back from the published port."""
    try:
        data, client = lst.sock.recvfrom(BUFSIZE)
    except OSError:
        return
    upstream = flows.get(client)
    if upstream is None:
        upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream.connect(lst.target)
        flows[client] = upstream
        threading.Thread(target=_udp_answers, args=(lst, client, upstream, flows),
                         daemon=True).start()
    with contextlib.suppress(OSError):
        upstream.send(data)


def _udp_answers(lst: Listener, client: tuple[object, ...], upstream: socket.socket,
                 flows: dict[tuple[object, ...], socket.socket]) -> None:
    upstream.settimeout(UDP_IDLE_S)
    try:
        while True:
            data = upstream.recv(BUFSIZE)
            lst.sock.sendto(data, client)
    except OSError:  # the timeout included
        pass
    finally:
        flows.pop(client, None)
        upstream.close()


def start(listeners: list[Listener], container_pid: int, on_exit: Callable[[], None]) -> int:
    """Fork the proxy process for one container; return its PID. The caller closes its own
    copies of the listening sockets afterwards."""
    pidfd = os.pidfd_open(container_pid)
    pid = os.fork()
    if pid:
        os.close(pidfd)
        return pid
    code = 0
    try:
        import signal

        # The CLI may be forwarding signals to the container: not this process.
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGPIPE):
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.setsid()
        from minidocker import trace

        trace.set_sink(None)
        with open("/proc/self/comm", "w") as f:
            f.write("md-proxy")
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        keep = {pidfd, devnull, *(lst.sock.fileno() for lst in listeners)}
        for fd in [int(fd) for fd in os.listdir("/proc/self/fd")]:
            if fd > 2 and fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        serve(listeners, pidfd, on_exit)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def stop(pid: int, start_time: int, timeout: float = 2.0) -> None:
    """End a proxy (it normally ends by itself when its container exits). ``start_time``
    (field 22 of /proc/<pid>/stat) makes sure the PID is still the proxy's."""
    pidfd = procfs.pidfd_open(pid)
    if pidfd is None:
        return
    try:
        if procfs.process_start_time(pid) != start_time:  # a zombie still matches: reap it
            return
        os.kill(pid, 15)
        select.select([pidfd], [], [], timeout)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # ours to reap if we forked it (a foreground run)
    finally:
        os.close(pidfd)
