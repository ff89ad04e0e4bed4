"""Publishing ports: ``-p``/``--publish`` and ``-P``, parsed exactly as Docker parses them.

A container on a bridge has its own address (172.17.0.2) that only the host can reach.
Publishing a port makes a *host* port lead to a container port, in two ways at once:

- a **DNAT rule** (:mod:`minidocker.nftables`): the kernel rewrites the destination of packets
  for ``<host address>:8080`` to ``172.17.0.2:80`` as they arrive, so most traffic never
  touches a program;
- a **userland proxy** (:mod:`minidocker.proxy`), as Docker's ``docker-proxy``: it listens on
  the host port itself, which reserves the port (a second container asking for it fails at
  once) and carries the connections the rule cannot, those to the host's own loopback.

The forms of ``-p`` (Docker's ``nat.ParsePortSpec``), ``[[ip:][hostPort]:]containerPort[/proto]``:

=============================== ========================================================
``80``                          container port 80/tcp on a random host port, every address
``8080:80``                     host port 8080
``127.0.0.1:8080:80``           only on 127.0.0.1
``127.0.0.1::80``               only on 127.0.0.1, random port
``8000-8001:80-81``             ranges, pairwise (the lengths must match)
``8000-8010:80``                one container port, the first free host port in a range
``53:53/udp``, ``9:9/sctp``     other protocols (tcp, udp, sctp)
``[::1]:8080:80``               an IPv6 address, bracketed
``published=8080,target=80``    the long form (``protocol=udp`` too)
=============================== ========================================================

``-P`` publishes every port the image EXPOSEs (its config's ``ExposedPorts``) on random host
ports. Everything here is pure parsing: unit-tested without root.

Notebook: ``06_networking``. Reference: docker-run(1) ``--publish``.
"""

from __future__ import annotations

from minidocker.errors import UsageError

PROTOCOLS = ("tcp", "udp", "sctp")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


class PortMapping:
    """One container port, published on one host address and port (or port range)."""

    __slots__ = ("container_port", "proto", "host_ip", "host_port")

    def __init__(self, container_port: int, proto: str = "tcp", host_ip: str = "",
                 host_port: str = "") -> None:
        self.container_port = container_port
        self.proto = proto
        self.host_ip = host_ip  # "" means every address (0.0.0.0 and [::])
        self.host_port = host_port  # "8080", "8000-8010" (the first free), or "" (random)

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> PortMapping:
        return cls(int(str(d["container_port"])), str(d["proto"]), str(d["host_ip"]),
                   str(d["host_port"]))

    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PortMapping) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        where = f"{self.host_ip}:" if self.host_ip else ""
        return f"PortMapping({where}{self.host_port or '<random>'}->{self.key()})"


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _split_proto(raw: str) -> tuple[str, str]:
    """``"80/udp"`` -> ("udp", "80"), as Docker's nat.SplitProtoPort: the port ends at the
    first ``/`` and the rest is the protocol, so ``80/tcp/udp`` has the protocol ``tcp/udp``
    (refused later), not ``tcp`` with the tail dropped, as older parsers did."""
    port, _, proto = raw.partition("/")
    if not port:
        return "", ""
    return proto or "tcp", port


def _uint16(text: str) -> int:
    """Go's strconv.ParseUint(text, 10, 16): digits only, at most 65535."""
    if not text.isdigit() or not text.isascii() or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def parse_range(text: str) -> tuple[int, int]:
    """``"8000"`` -> (8000, 8000); ``"8000-8010"`` -> (8000, 8010)."""
    if not text:
        raise ValueError("empty string specified for ports")
    if "-" not in text:
        value = _uint16(text)
        return value, value
    first, _, last = text.partition("-")
    start, end = _uint16(first), _uint16(last.split("-")[0])
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def valid_ip(text: str) -> bool:
    """Go's net.ParseIP: a dotted IPv4 address or an IPv6 address (no zone, no brackets)."""
    if "." in text and ":" not in text:
        parts = text.split(".")
        return len(parts) == 4 and all(p.isdigit() and p.isascii() and len(p) <= 3
                                       and int(p) < 256 for p in parts)
    import ipaddress  # only for IPv6, which is rare

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_spec(raw: str) -> list[PortMapping]:
    """One ``-p`` value -> its mappings (several for a range). Raises UsageError as Docker."""
    ip, host_port, container = _split_parts(raw)
    proto, container = _split_proto(container)
    if ip.startswith("["):
        if not ip.endswith("]") or "]" in ip[1:-1]:
            raise UsageError(f"invalid IP address {ip}: missing ']' in address")
        ip = ip[1:-1]
    if ip and not valid_ip(ip):
        raise UsageError(f"invalid IP address: {ip}")
    if not container:
        raise UsageError(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_range(container)
    except ValueError:
        raise UsageError(f"invalid containerPort: {container}") from None
    if start == 0:
        raise UsageError(f"invalid containerPort: {container}")
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_range(host_port)
        except ValueError:
            raise UsageError(f"invalid hostPort: {host_port}") from None
        if end - start != host_end - host_start and end != start:
            raise UsageError(f"invalid ranges specified for container and host Ports: "
                             f"{container} and {host_port}")
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise UsageError(f"invalid proto: {proto}")
    mappings = []
    for i in range(end - start + 1):
        if not host_port:
            published = ""
        elif start == end and host_start != host_end:
            published = f"{host_start}-{host_end}"  # the first free port of the range
        else:
            published = str(host_start + i)
        mappings.append(PortMapping(start + i, proto, ip, published))
    return mappings


def long_form(raw: str) -> str:
    """``published=8080,target=80,protocol=udp`` -> ``8080:80/udp`` (Docker's
    convertToStandardNotation)."""
    params = {"protocol": "tcp"}
    for param in raw.split(","):
        key, eq, value = param.partition("=")
        if not eq or not key:
            raise UsageError(f"invalid publish opts format (should be name=value but got "
                             f"'{param}')")
        params[key] = value
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def parse_publish(values: Iterable[str | PortMapping]) -> list[PortMapping]:
    """Every ``-p`` of a ``run``, in order (a mapping parsed already is kept as it is)."""
    mappings: list[PortMapping] = []
    for raw in values:
        if isinstance(raw, PortMapping):
            mappings.append(raw)
            continue
        mappings += parse_spec(long_form(raw) if "=" in raw else raw)
    return mappings


def parse_expose(values: Iterable[str]) -> list[str]:
    """``--expose 80``, ``--expose 7000-7002/udp`` -> ``["80/tcp", ...]`` (as ExposedPorts)."""
    keys = []
    for raw in values:
        proto, port = _split_proto(raw)
        try:
            start, end = parse_range(port)
        except ValueError:
            raise UsageError(f"invalid range format for --expose: {raw}") from None
        if proto.lower() not in PROTOCOLS:
            raise UsageError(f"invalid proto: {proto}")
        keys += [f"{p}/{proto.lower()}" for p in range(start, end + 1)]
    return keys


def publish_all(exposed: Iterable[str]) -> list[PortMapping]:
    """``-P``: each exposed ``port/proto`` on a random host port, on every address."""
    mappings = []
    for key in exposed:
        port, _, proto = key.partition("/")
        mappings.append(PortMapping(int(port), proto or "tcp"))
    return mappings


def merge(explicit: list[PortMapping], exposed: list[PortMapping]) -> list[PortMapping]:
    """``-p`` wins over ``-P`` for the same container port (Docker merges them this way)."""
    given = {m.key() for m in explicit}
    return explicit + [m for m in exposed if m.key() not in given]


def format_binding(host_ip: str, host_port: int) -> str:
    """``0.0.0.0:8080`` or ``[::]:8080``, as ``docker port`` prints them."""
    return f"[{host_ip}]:{host_port}" if ":" in host_ip else f"{host_ip}:{host_port}"
