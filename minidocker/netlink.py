"""Netlink: the socket through which programs ask the kernel to change its network stack.

``ip link add``, ``ip addr add`` and ``ip route add`` are not system calls: ``ip`` writes a
*netlink message* to an ``AF_NETLINK`` socket, the kernel's rtnetlink code carries it out and
answers with another message. This module is minidocker's seam for that conversation, as
:mod:`minidocker.syscalls` is for system calls: every request goes through :meth:`Netlink.request`,
which records a trace event (``RTM_NEWLINK`` with its attributes spelled out) and turns the
kernel's error answer into an ``OSError`` naming the request.

A message is a header and a body, every field in the host's byte order::

    struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }        16 bytes
    body for links:     struct ifinfomsg { u8 family; u16 type; i32 index; u32 flags, change; }
    body for addresses: struct ifaddrmsg { u8 family, prefixlen, flags, scope; u32 index; }
    body for routes:    struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol,
                                       scope, type; u32 flags; }
    then attributes:    struct rtattr { u16 len; u16 type; } + value, padded to 4 bytes

Attributes carry everything of variable size: the name of a link (``IFLA_IFNAME``), its kind
(``IFLA_LINKINFO`` > ``IFLA_INFO_KIND`` = ``"veth"``), and for a veth the *peer*, a whole
ifinfomsg of its own nested in ``VETH_INFO_PEER``, which may say in which network namespace to
create it (``IFLA_NET_NS_FD``). That one attribute is why a container's ``eth0`` can be born
inside the container's namespace instead of being created on the host and moved.

pyroute2 speaks the same protocol with far more coverage; minidocker encodes the few messages it
needs itself because importing pyroute2 costs ~100 ms, more than a whole ``minidocker run``
(the tests decode these messages with pyroute2 to check them).

Notebook: ``06_networking``. Man pages: netlink(7), rtnetlink(7), ip-link(8), veth(4).
"""

from __future__ import annotations

import os
import struct
import time

from minidocker import syscalls, trace

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads the hints
if TYPE_CHECKING:
    from typing import TypedDict

    class Link(TypedDict):
        index: int
        ifname: str
        flags: int
        up: bool
        kind: str
        master: int
        link: int
        mac: str

    class Address(TypedDict):
        family: int
        index: int
        prefixlen: int
        address: str
        label: str

    class Route(TypedDict):
        family: int
        dst: str
        dst_len: int
        gateway: str
        oif: int
        table: int
        protocol: int
        scope: int
        type: int

AF_NETLINK = 16
SOCK_RAW = 3
NETLINK_ROUTE = 0
AF_INET = 2

# nlmsghdr.type: the kernel's answers, then the rtnetlink requests (linux/rtnetlink.h).
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NAMES = {16: "RTM_NEWLINK", 17: "RTM_DELLINK", 18: "RTM_GETLINK", 20: "RTM_NEWADDR",
             21: "RTM_DELADDR", 22: "RTM_GETADDR", 24: "RTM_NEWROUTE", 25: "RTM_DELROUTE",
             26: "RTM_GETROUTE"}

# nlmsghdr.flags
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
FLAG_NAMES = ((NLM_F_DUMP, "NLM_F_DUMP"), (NLM_F_CREATE, "NLM_F_CREATE"),
              (NLM_F_EXCL, "NLM_F_EXCL"), (NLM_F_REPLACE, "NLM_F_REPLACE"))

# ifinfomsg attributes (linux/if_link.h)
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000

# ifaddrmsg attributes (linux/if_addr.h)
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4

# rtmsg fields and attributes (linux/rtnetlink.h)
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_PREFSRC = 7
RTA_TABLE = 15
RT_TABLE_MAIN = 254
RT_TABLE_LOCAL = 255
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")


# -- encoding ---------------------------------------------------------------------------------

def attr(kind: int, value: bytes) -> bytes:
    """One ``rtattr``: length, type, value, padded to a multiple of 4 bytes."""
    length = _RTA.size + len(value)
    return _RTA.pack(length, kind) + value + b"\0" * (-length % 4)


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attr_ip(kind: int, address: str) -> bytes:
    return attr(kind, ip_bytes(address))


def ip_bytes(address: str) -> bytes:
    """``"172.17.0.2"`` -> 4 bytes in network order (without the socket module)."""
    parts = address.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"not an IPv4 address: {address!r}")
    return bytes(int(p) for p in parts)


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0, family: int = 0) -> bytes:
    return _IFINFO.pack(family, 0, index, flags, change)


def ifaddrmsg(index: int, prefixlen: int, family: int = AF_INET, scope: int = 0) -> bytes:
    return _IFADDR.pack(family, prefixlen, 0, scope, index)


def rtmsg(dst_len: int = 0, table: int = RT_TABLE_MAIN, protocol: int = RTPROT_BOOT,
          scope: int = RT_SCOPE_UNIVERSE, kind: int = RTN_UNICAST, family: int = AF_INET) -> bytes:
    return _RTMSG.pack(family, dst_len, 0, 0, table, protocol, scope, kind, 0)


# -- decoding ---------------------------------------------------------------------------------

def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """The attributes in ``data[offset:]``, by type (the last one wins, as in the kernel)."""
    attrs = {}
    while offset + _RTA.size <= len(data):
        length, kind = _RTA.unpack_from(data, offset)
        if length < _RTA.size:
            break
        attrs[kind & 0x3FFF] = data[offset + _RTA.size:offset + length]  # drop NLA_F_NESTED
        offset += (length + 3) & ~3
    return attrs


def _str(value: bytes | None) -> str:
    return value.split(b"\0", 1)[0].decode() if value is not None else ""


def _ip(value: bytes | None) -> str:
    return ".".join(str(b) for b in value) if value is not None and len(value) == 4 else ""


def parse_link(body: bytes) -> Link:
    """An RTM_NEWLINK answer: index, name, flags, kind, master, MAC address."""
    _family, _kind, index, flags, _change = _IFINFO.unpack_from(body)
    attrs = parse_attrs(body, _IFINFO.size)
    info = parse_attrs(attrs[IFLA_LINKINFO]) if IFLA_LINKINFO in attrs else {}
    mac = attrs.get(IFLA_ADDRESS, b"")
    master = attrs.get(IFLA_MASTER)
    link = attrs.get(IFLA_LINK)
    return {"index": index, "ifname": _str(attrs.get(IFLA_IFNAME)), "flags": flags,
            "up": bool(flags & IFF_UP), "kind": _str(info.get(IFLA_INFO_KIND)),
            "master": struct.unpack("=I", master)[0] if master else 0,
            "link": struct.unpack("=I", link)[0] if link else 0,
            "mac": ":".join(f"{b:02x}" for b in mac)}


def parse_addr(body: bytes) -> Address:
    """An RTM_NEWADDR answer (IPv4): the address, its prefix length and link index."""
    family, prefixlen, _flags, _scope, index = _IFADDR.unpack_from(body)
    attrs = parse_attrs(body, _IFADDR.size)
    return {"family": family, "index": index, "prefixlen": prefixlen,
            "address": _ip(attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)),
            "label": _str(attrs.get(IFA_LABEL))}


def parse_route(body: bytes) -> Route:
    """An RTM_NEWROUTE answer (IPv4): destination/length, gateway, output link, table."""
    family, dst_len, _src, _tos, table, protocol, scope, kind, _flags = _RTMSG.unpack_from(body)
    attrs = parse_attrs(body, _RTMSG.size)
    oif = attrs.get(RTA_OIF)
    if RTA_TABLE in attrs:
        table = struct.unpack("=I", attrs[RTA_TABLE])[0]
    return {"family": family, "dst": _ip(attrs.get(RTA_DST)) or "0.0.0.0", "dst_len": dst_len,
            "gateway": _ip(attrs.get(RTA_GATEWAY)), "oif": struct.unpack("=I", oif)[0] if oif
            else 0, "table": table, "protocol": protocol, "scope": scope, "type": kind}


# -- the socket -------------------------------------------------------------------------------

def flag_names(flags: int) -> str:
    """The request flags worth showing (NLM_F_DUMP reuses the bits of EXCL and REPLACE)."""
    if flags & NLM_F_DUMP == NLM_F_DUMP:
        return "NLM_F_DUMP"
    return "|".join(name for bit, name in FLAG_NAMES if flags & bit == bit)


class Netlink:
    """An rtnetlink socket in the calling process's network namespace (where it was opened).

    A socket belongs to the network namespace it was created in, for life: that is how the
    container's side is configured by a process inside the container's namespace.
    """

    def __init__(self) -> None:
        self.fd = syscalls.socket(AF_NETLINK, SOCK_RAW)  # protocol 0: NETLINK_ROUTE
        self.seq = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes, shown: list[str]) -> list[bytes]:
        """Send one request; return the bodies of the kernel's answers (a dump's entries).

        ``shown`` is how the trace spells the request's content (``ifname="eth0"``...). A
        negative errno in the kernel's NLMSG_ERROR answer is raised as ``OSError``.
        """
        self.seq += 1
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        flags |= NLM_F_REQUEST | (0 if dump else NLM_F_ACK)
        name = RTM_NAMES.get(kind, str(kind))
        args = [name, *([flag_names(flags)] if flag_names(flags) else []), *shown]
        t0 = time.monotonic_ns()
        os.write(self.fd, _HDR.pack(_HDR.size + len(body), kind, flags, self.seq, 0) + body)
        answers: list[bytes] = []
        error = 0
        done = False
        while not done:
            data = os.read(self.fd, 1 << 16)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, _mflags, seq, _pid = _HDR.unpack_from(data, offset)
                payload = data[offset + _HDR.size:offset + length]
                offset += (length + 3) & ~3
                if seq != self.seq:
                    continue  # an answer to an earlier request we stopped reading
                if mtype == NLMSG_ERROR:
                    error = -struct.unpack_from("=i", payload)[0]
                    done = True
                elif mtype == NLMSG_DONE:
                    done = True
                else:
                    answers.append(payload)
                    done = done or not dump
        if trace.enabled():
            import errno as _errno

            result = f"-1 {_errno.errorcode.get(error, '?')}" if error else (
                f"{len(answers)} entries" if dump else "0")
            trace.emit("syscall", "netlink", args, result, time.monotonic_ns() - t0)
        if error:
            exc = OSError(error, os.strerror(error))
            exc.add_note(f"netlink: {' '.join(args)}")
            raise exc
        return answers

    # -- the requests minidocker makes ----------------------------------------------------

    def links(self) -> list[Link]:
        """``ip link show``: every link in this namespace."""
        return [parse_link(b) for b in self.request(RTM_GETLINK, NLM_F_DUMP, ifinfomsg(), [])]

    def link(self, ifname: str) -> Link | None:
        """One link by name, or None if there is none."""
        try:
            answers = self.request(RTM_GETLINK, 0, ifinfomsg() + attr_str(IFLA_IFNAME, ifname),
                                   [f'ifname="{ifname}"'])
        except OSError as exc:
            if exc.errno == 19:  # ENODEV
                return None
            raise
        return parse_link(answers[0]) if answers else None

    def addresses(self) -> list[Address]:
        """``ip -4 addr show``."""
        body = ifaddrmsg(0, 0)
        return [parse_addr(b) for b in self.request(RTM_GETADDR, NLM_F_DUMP, body, ["AF_INET"])]

    def routes(self) -> list[Route]:
        """``ip -4 route show table all``."""
        body = rtmsg(table=0, protocol=0, kind=0)
        return [parse_route(b) for b in self.request(RTM_GETROUTE, NLM_F_DUMP, body, ["AF_INET"])]

    def add_bridge(self, ifname: str) -> None:
        """``ip link add NAME type bridge``."""
        info = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge"))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                     ifinfomsg() + attr_str(IFLA_IFNAME, ifname) + info,
                     [f'ifname="{ifname}"', 'kind="bridge"'])

    def add_veth(self, ifname: str, peer: str, peer_netns_fd: int, netns_label: str,
                 master: int = 0) -> None:
        """``ip link add IFNAME [master M] up type veth peer name PEER netns NS``, in one message:
        the host end is enslaved to the bridge and up, the peer born in the container's netns."""
        peer_msg = (ifinfomsg() + attr_str(IFLA_IFNAME, peer)
                    + attr_u32(IFLA_NET_NS_FD, peer_netns_fd))
        info = attr(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth")
                    + attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)))
        body = (ifinfomsg(flags=IFF_UP, change=IFF_UP) + attr_str(IFLA_IFNAME, ifname)
                + (attr_u32(IFLA_MASTER, master) if master else b"") + info)
        shown = [f'ifname="{ifname}"', *([f"master={master}"] if master else []), "IFF_UP",
                 'kind="veth"', f'peer={{ifname="{peer}", net_ns_fd={netns_label}}}']
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, shown)

    def set_up(self, index: int, ifname: str = "") -> None:
        """``ip link set DEV up``."""
        self.request(RTM_NEWLINK, 0, ifinfomsg(index, IFF_UP, IFF_UP),
                     [f"index={index}", *([f'"{ifname}"'] if ifname else []), "IFF_UP"])

    def delete_link(self, index: int, ifname: str = "") -> None:
        """``ip link del DEV`` (a veth takes its peer with it)."""
        self.request(RTM_DELLINK, 0, ifinfomsg(index),
                     [f"index={index}", *([f'"{ifname}"'] if ifname else [])])

    def add_address(self, index: int, address: str, prefixlen: int, broadcast: str = "") -> None:
        """``ip addr add ADDRESS/PREFIXLEN [brd B] dev DEV``."""
        body = (ifaddrmsg(index, prefixlen) + attr_ip(IFA_LOCAL, address)
                + attr_ip(IFA_ADDRESS, address)
                + (attr_ip(IFA_BROADCAST, broadcast) if broadcast else b""))
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body,
                     [f"index={index}", f"{address}/{prefixlen}",
                      *([f"brd {broadcast}"] if broadcast else [])])

    def add_default_route(self, gateway: str, index: int) -> None:
        """``ip route add default via GATEWAY dev DEV``."""
        body = rtmsg() + attr_ip(RTA_GATEWAY, gateway) + attr_u32(RTA_OIF, index)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body,
                     ["default", f"via {gateway}", f"oif={index}"])
