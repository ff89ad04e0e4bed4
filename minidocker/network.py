"""The container's network: a namespace, a veth pair, a bridge, an address and a route.

A new network namespace has exactly one device, ``lo``, and it is *down*: nothing, not even
127.0.0.1, works until it is brought up (:func:`bring_up_loopback`, by the same ioctl that
``ip link set lo up`` ends in). That is all ``--network none`` gets.

``--network bridge`` (the default) wires the namespace to the host the way Docker does::

      container netns                 host netns
    +----------------+            +-----------------------------------------+
    | eth0 172.17.0.2|== veth ====| vethXXXXXXX --+                          |
    | default via    |   pair     |               |  minidocker0 172.17.0.1  |-- nft: DNAT -p,
    |   172.17.0.1   |            | vethYYYYYYY --+  (a bridge: a switch)    |   masquerade out
    +----------------+            +-----------------------------------------+

1. **The bridge** (:func:`ensure_bridge`) is a software switch on the host. Its own address
   (the gateway, 172.17.0.1) makes the host a member of the container network; the kernel adds
   the route to the subnet by itself when the address goes on.
2. **A veth pair** (:func:`create_veth`) is two devices joined back to back: what goes in one
   comes out of the other. One end is plugged into the bridge; the other is *born inside the
   container's namespace* as ``eth0``, by naming the namespace in the creation message
   (``IFLA_NET_NS_FD``): measured here several times faster than creating it on the host and
   moving it, and never visible on the host under a clashing name.
3. **Inside** (:func:`configure_inside`): ``eth0`` gets its address and goes up, and the
   default route points at the bridge's address. A netlink socket belongs to the namespace it
   was opened in, so the host process enters the container's namespace just long enough to open
   one (setns(2) there and straight back) and configures the container through it.
4. **Nothing to undo on exit.** When the container's last process exits, the kernel destroys its
   namespace, ``eth0`` with it, and a veth never outlives its peer: the host end vanishes too.

``--network host`` skips all of it (no net namespace: the host's devices, ports and routes);
``--network container:NAME`` joins another container's namespace (setns(2) instead of
unshare(2)) and so shares its ``lo``, addresses and ports.

Everything here talks netlink through :mod:`minidocker.netlink`, so ``run --trace`` shows each
message; ``ip_forward`` is written through ``syscalls.write_file``. Deciding *which* addresses
and bridges to use is :mod:`minidocker.ipam`'s job; the firewall rules are
:mod:`minidocker.nftables`'s.

Notebooks: ``01_namespaces`` (net), ``06_networking``. Man pages: network_namespaces(7),
netdevice(7), veth(4), ip-link(8), ip-address(8), ip-route(8), bridge(8), setns(2).
"""

from __future__ import annotations

import fcntl
import os
import struct
import time

from minidocker import syscalls, trace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from minidocker.netlink import Netlink

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
AF_INET = 2
SOCK_DGRAM = 2
ENODEV = 19
EEXIST = 17
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"

HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""
# Below this line /etc/hosts is rewritten whenever a container joins or leaves a network.
MANAGED = "# minidocker: the addresses below are managed; edits to them are lost\n"


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


class Interface:
    """The plan of one container interface: a veth pair from a bridge into the container."""

    __slots__ = ("network", "bridge", "host_ifname", "ifname", "address", "prefixlen",
                 "gateway")

    def __init__(self, network: str, bridge: str, host_ifname: str, ifname: str, address: str,
                 prefixlen: int, gateway: str) -> None:
        self.network = network  # the minidocker network's name ("bridge" is the default)
        self.bridge = bridge  # the host's bridge device, minidocker0 or br-<id>
        self.host_ifname = host_ifname  # the host end of the pair, vethXXXXXXX
        self.ifname = ifname  # the container end: eth0, eth1...
        self.address = address
        self.prefixlen = prefixlen
        self.gateway = gateway  # "" for an --internal network: no default route out

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Interface:
        return cls(**{k: d[k] for k in cls.__slots__})  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (f"Interface({self.ifname} {self.address}/{self.prefixlen} via "
                f"{self.gateway or '-'} on {self.bridge} <-> {self.host_ifname})")


def veth_name(container_id: str, n: int) -> str:
    """The host end's name: ``veth`` and 7 hex digits, as Docker names them (IFNAMSIZ is 16)."""
    return f"veth{container_id[:7]}" + (str(n) if n else "")


def broadcast(address: str, prefixlen: int) -> str:
    value = struct.unpack("!I", bytes(int(p) for p in address.split(".")))[0]
    value |= (1 << (32 - prefixlen)) - 1
    return ".".join(str(b) for b in struct.pack("!I", value))


# -- the host side ----------------------------------------------------------------------------

def open_netlink() -> Netlink:
    from minidocker.netlink import Netlink

    return Netlink()


def ensure_bridge(nl: Netlink, name: str, gateway: str, prefixlen: int) -> bool:
    """``minidocker0`` (or ``br-<id>``) exists, is up and holds the gateway address.

    Returns True if it was created now. A device of that name that is not a bridge, or a bridge
    with another address, is somebody else's: it is refused, never changed.
    """
    link = nl.link(name)
    created = link is None
    if link is None:
        nl.add_bridge(name)
        link = nl.link(name)
        assert link is not None
    elif link["kind"] != "bridge":
        raise OSError(17, f"{name} exists and is not a bridge ({link['kind'] or 'no kind'})")
    index = link["index"]
    mine = [a for a in nl.addresses() if a["index"] == index]
    if not any(a["address"] == gateway and a["prefixlen"] == prefixlen for a in mine):
        if mine:
            raise OSError(17, f"bridge {name} exists with address {mine[0]['address']}/"
                              f"{mine[0]['prefixlen']}, not {gateway}/{prefixlen}")
        nl.add_address(index, gateway, prefixlen, broadcast(gateway, prefixlen))
    if not link["up"]:
        nl.set_up(index, name)
    return created


def delete_link(nl: Netlink, name: str) -> bool:
    """``ip link del NAME`` if it exists; False if it was already gone."""
    link = nl.link(name)
    if link is None:
        return False
    try:
        nl.delete_link(link["index"], name)
    except OSError as exc:
        if exc.errno != ENODEV:  # its namespace died between the two calls: gone anyway
            raise
        return False
    return True


def create_veth(nl: Netlink, iface: Interface, pid: int) -> None:
    """The pair, in one RTM_NEWLINK: host end on the bridge and up, peer born in ``pid``'s
    network namespace under its final name."""
    bridge = nl.link(iface.bridge)
    if bridge is None:
        raise OSError(ENODEV, f"bridge {iface.bridge} is gone")
    path = f"/proc/{pid}/ns/net"
    fd = syscalls.open_fd(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        nl.add_veth(iface.host_ifname, iface.ifname, fd, path, master=bridge["index"])
    finally:
        os.close(fd)


def open_netlink_in(pid: int) -> Netlink:
    """A netlink socket in ``pid``'s network namespace.

    setns(2) there, socket(2), setns(2) back: the caller spends microseconds in the container's
    namespace, and the socket stays bound to it. (A threaded process must not do this: setns
    moves only the calling thread. minidocker's CLI has one thread.)
    """
    from minidocker.syscalls import CLONE

    ours = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    theirs = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(theirs, CLONE.NEWNET, f"/proc/{pid}/ns/net")
        try:
            return open_netlink()
        finally:
            syscalls.setns(ours, CLONE.NEWNET, "/proc/self/ns/net")
    finally:
        os.close(theirs)
        os.close(ours)


def configure_inside(nl: Netlink, iface: Interface) -> None:
    """In the container's namespace (``nl`` was opened there): address, up, default route."""
    link = nl.link(iface.ifname)
    if link is None:
        raise OSError(ENODEV, f"{iface.ifname} did not appear in the container")
    index = link["index"]
    nl.add_address(index, iface.address, iface.prefixlen,
                   broadcast(iface.address, iface.prefixlen))
    nl.set_up(index, iface.ifname)
    if iface.gateway:
        try:
            nl.add_default_route(iface.gateway, index)
        except OSError as exc:
            if exc.errno != EEXIST:
                raise
            # `network connect` of a second network: as Docker, the container keeps the
            # default route it has, and reaches the new network through its subnet's route.
            trace.note(f"{iface.ifname}: a default route exists already; kept")


def occupied(nl: Netlink) -> list[tuple[str, int]]:
    """Every IPv4 network the host already reaches: its routes (but the default route) and
    the subnets of its addresses. A new bridge must overlap none of them."""
    found = [(r["dst"], r["dst_len"]) for r in nl.routes()
             if r["dst_len"] and r["table"] != 255 and r["type"] == 1]  # not local, unicast
    found += [(a["address"], a["prefixlen"]) for a in nl.addresses()
              if a["family"] == AF_INET and a["prefixlen"] < 32]
    return found


def ip_forward() -> str:
    with open(IP_FORWARD) as f:
        return f.read().strip()


def set_ip_forward(value: str) -> None:
    """``sysctl net.ipv4.ip_forward=VALUE`` (per network namespace)."""
    syscalls.write_file(IP_FORWARD, value)


# -- /etc files -------------------------------------------------------------------------------

def hosts_text(entries: Iterable[tuple[str, str]], managed: Iterable[tuple[str, str]] = ()) -> str:
    """/etc/hosts: localhost, then ``--add-host`` entries, then the managed ones (the
    container's own address and its peers' on user-defined networks)."""
    text = HOSTS + "".join(f"{ip}\t{names}\n" for ip, names in entries)
    return text + MANAGED + "".join(f"{ip}\t{names}\n" for ip, names in managed)


def replace_managed(text: str, managed: Iterable[tuple[str, str]]) -> str:
    """The same /etc/hosts with the managed part replaced."""
    head = text.split(MANAGED, 1)[0]
    return head + MANAGED + "".join(f"{ip}\t{names}\n" for ip, names in managed)


def rewrite_in_place(path: str, text: str) -> None:
    """Rewrite a file that is bind-mounted into a running container.

    Not by rename: the bind mount holds the old inode, so a new file would never be seen
    inside. The same inode is truncated and written instead.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        data = text.encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def resolv_conf(host_text: str) -> str:
    """The host's resolv.conf without loopback nameservers (they mean nothing in a new netns),
    falling back to public resolvers as Docker does."""
    lines = [line for line in host_text.splitlines()
             if not (line.split()[:1] == ["nameserver"] and len(line.split()) > 1
                     and (line.split()[1].startswith("127.") or line.split()[1] == "::1"))]
    if not any(line.startswith("nameserver") for line in lines):
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(lines) + "\n"


def resolv_conf_text(host_text: str, dns: Iterable[str], search: Iterable[str],
                     options: Iterable[str]) -> str:
    """resolv.conf: ``--dns`` replaces the nameservers, ``--dns-search`` the search list,
    ``--dns-option`` the options; what is not given comes from ``host_text``."""
    dns, search, options = list(dns), list(search), list(options)
    lines = []
    for line in host_text.splitlines():
        word = line.split()[:1]
        if (word == ["nameserver"] and dns) or (word in (["search"], ["domain"]) and search) \
                or (word == ["options"] and options):
            continue
        lines.append(line)
    lines += [f"nameserver {ns}" for ns in dns]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"
