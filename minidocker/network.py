"""The container's network namespace.

A new network namespace has exactly one device, ``lo``, and it is *down*: nothing, not even
127.0.0.1, works until it is brought up. This module brings it up with the same ioctl that
``ip link set lo up`` ends in (SIOCSIFFLAGS), issued on a socket created inside the namespace.

The real networking of a container (a veth pair into a bridge, addresses, routes, port
publishing) is the networking lesson's; this module is where it grows.

Notebook: ``01_namespaces`` (net). Man pages: network_namespaces(7), netdevice(7).
"""

from __future__ import annotations

import fcntl
import os
import struct
import time

from minidocker import syscalls, trace

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
AF_INET = 2
SOCK_DGRAM = 2


def bring_up_loopback() -> None:
    """``ip link set lo up``, by ioctl, in the calling process's network namespace."""
    sock = syscalls.socket(AF_INET, SOCK_DGRAM)
    t0 = time.monotonic_ns()
    try:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        os.close(sock)
    if trace.enabled():
        trace.emit("syscall", "ioctl", ["SIOCSIFFLAGS", '"lo"', "IFF_UP"], "0",
                   time.monotonic_ns() - t0)
