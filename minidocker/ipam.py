"""IPAM: which networks exist, and which address each container holds on them.

IP address management is bookkeeping, kept on disk so that every ``minidocker`` process (two
``run`` at once, a ``network inspect`` beside them) sees the same answer::

    ROOT/networks/.lock           flock(2)ed around every read-modify-write below
    ROOT/networks/<name>.json     a network: subnet, gateway, bridge, internal, who made the bridge
    ROOT/networks/<name>.leases   one line per address handed out: ``172.17.0.2 <container id>
                                  <pid> <pid's start time> <hostname> <names,for,/etc/hosts>``
    ROOT/networks/.host.json      what minidocker changed on the host (ip_forward's old value)

Three rules keep it correct:

- **Locked.** Allocation reads the leases, picks, and writes them back under one exclusive
  ``flock``: twenty containers started at once get twenty different addresses.
- **Never an address in use.** The network and broadcast addresses and the gateway are never
  handed out, nor any address whose lease is live.
- **Released.** A lease names the process that holds it (its PID *and* its start time, since
  PIDs are reused); ``rm`` deletes the lease, and a lease whose process is gone (``kill -9``)
  is reclaimed by the next allocation, so a crash cannot leak an address forever.

The default bridge's subnet is chosen as the article describes docker0's: the first of
Docker's private pools (172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/20 ...) that overlaps
no existing route or network.

IPv4 arithmetic is done on integers here (the ``ipaddress`` module costs ~3 ms of every run).

Notebook: ``06_networking``. Man pages: flock(2), ip-address(8), proc(5) (``/proc/<pid>/stat``).
"""

from __future__ import annotations

import os

from minidocker import procfs
from minidocker.errors import MinidockerError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

# Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20 pieces.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (
    *((f"172.{n}.0.0", 16) for n in range(17, 32)),
    *((f"192.168.{n}.0", 20) for n in range(0, 256, 16)),
)


class NetworkError(MinidockerError):
    """A network that does not exist, is in use, overlaps another, or has no address left."""


# -- IPv4 on integers -------------------------------------------------------------------------

def ip_int(address: str) -> int:
    parts = address.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts):
        raise UsageError(f"invalid IPv4 address: {address!r}")
    a, b, c, d = (int(p) for p in parts)
    return (a << 24) | (b << 16) | (c << 8) | d


def int_ip(value: int) -> str:
    return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def mask(prefixlen: int) -> int:
    return (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF


def parse_subnet(text: str) -> tuple[int, int]:
    """``"10.5.0.0/24"`` -> (network as int, 24). Host bits must be zero, as Docker insists."""
    address, slash, length = text.partition("/")
    if not slash or not length.isdigit() or not 0 <= int(length) <= 32:
        raise UsageError(f"invalid subnet {text!r}: want an IPv4 CIDR like 10.5.0.0/24")
    value, prefixlen = ip_int(address), int(length)
    if value & ~mask(prefixlen) & 0xFFFFFFFF:
        raise UsageError(f"invalid subnet {text}: it should be "
                         f"{int_ip(value & mask(prefixlen))}/{prefixlen}")
    return value, prefixlen


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Two CIDRs overlap when one contains the other's network address."""
    shorter = min(a[1], b[1])
    return a[0] & mask(shorter) == b[0] & mask(shorter)


def in_subnet(address: int, subnet: tuple[int, int]) -> bool:
    return address & mask(subnet[1]) == subnet[0]


def choose_subnet(taken: Iterable[tuple[int, int]],
                  pools: Iterable[tuple[str, int]] = DEFAULT_POOLS) -> str:
    """The first pool that overlaps nothing in ``taken`` (routes, addresses, other networks)."""
    taken = list(taken)
    for address, prefixlen in pools:
        candidate = (ip_int(address), prefixlen)
        if not any(overlaps(candidate, t) for t in taken):
            return f"{address}/{prefixlen}"
    raise NetworkError("could not find an available, non-overlapping IPv4 address pool among "
                       "the defaults to assign to the network")


def first_host(subnet: tuple[int, int]) -> str:
    """Docker's gateway: the first address after the network address."""
    return int_ip(subnet[0] + 1)


# -- leases -----------------------------------------------------------------------------------

class Lease:
    """One address handed out: to which container, held by which process, and the names other
    containers on the network know it by."""

    __slots__ = ("address", "container", "pid", "start", "hostname", "names")

    def __init__(self, address: str, container: str, pid: int, start: int, hostname: str = "-",
                 names: tuple[str, ...] = ()) -> None:
        self.address = address
        self.container = container
        self.pid = pid
        self.start = start
        self.hostname = hostname
        self.names = names

    def line(self) -> str:
        return (f"{self.address} {self.container} {self.pid} {self.start} {self.hostname} "
                f"{','.join(self.names) or '-'}\n")

    def __repr__(self) -> str:
        return f"Lease({self.address} {self.container[:12]} pid={self.pid})"


def live(lease: Lease) -> bool:
    """Is the lease's process still the one that took it (same PID, same start time)?"""
    return procfs.process_alive(lease.pid, lease.start)


def allocate(subnet: tuple[int, int], gateway: str, leases: Iterable[Lease],
             requested: str | None = None) -> str:
    """The lowest free address of ``subnet`` (or ``requested``, if it is free)."""
    used = {ip_int(lease.address) for lease in leases}
    used.add(ip_int(gateway))
    network, size = subnet[0], 1 << (32 - subnet[1])
    reserved = {network, network + size - 1} if size > 2 else set()
    if requested is not None:
        value = ip_int(requested)
        if not in_subnet(value, subnet):
            raise NetworkError(f"no configured subnet contains IP address {requested}")
        if value in used or value in reserved:
            raise NetworkError(f"address {requested} is already in use")
        return requested
    for value in range(network, network + size):
        if value not in used and value not in reserved:
            return int_ip(value)
    raise NetworkError(f"no available IPv4 addresses on this network's address pools: "
                       f"{int_ip(network)}/{subnet[1]} is exhausted")


# -- the store on disk ------------------------------------------------------------------------

class Lock:
    """``with Lock(path):`` holds an exclusive flock(2) on ``path`` (contextlib costs start-up
    time). The lock goes with the fd, so a killed holder never leaves it taken."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        import fcntl

        os.makedirs(os.path.dirname(self.path), 0o700, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing the last fd drops the lock
        self.fd = -1


class Store:
    """The network records and leases under ``ROOT/networks``."""

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, "networks")

    def lock(self) -> Lock:
        """An exclusive flock(2) on ``.lock``, held for a ``with`` block."""
        return Lock(os.path.join(self.dir, ".lock"))

    def path(self, name: str, suffix: str = ".json") -> str:
        return os.path.join(self.dir, name + suffix)

    def get(self, name: str) -> dict[str, object] | None:
        """The network record called ``name`` (not an ID: see :meth:`find`)."""
        if not name or "/" in name or name.startswith("."):
            return None
        try:
            return _read_record(self.path(name))
        except FileNotFoundError:
            return None

    def all(self) -> list[dict[str, object]]:
        try:
            names = sorted(f[:-5] for f in os.listdir(self.dir)
                           if f.endswith(".json") and not f.startswith("."))
        except FileNotFoundError:
            return []
        records = [self.get(name) for name in names]
        return [r for r in records if r is not None]

    def find(self, name_or_id: str) -> dict[str, object] | None:
        """A network by name, full ID, or unambiguous ID prefix (as Docker resolves them)."""
        record = self.get(name_or_id)
        if record is not None:
            return record
        matches = [r for r in self.all() if str(r["Id"]).startswith(name_or_id)] \
            if name_or_id else []
        if len(matches) > 1:
            raise NetworkError(f"network {name_or_id} is ambiguous ({len(matches)} matches found "
                               "based on ID prefix)")
        return matches[0] if matches else None

    def save(self, record: dict[str, object]) -> None:
        from minidocker.state import write_json

        os.makedirs(self.dir, 0o700, exist_ok=True)
        write_json(self.path(str(record["Name"])), record)

    def delete(self, name: str) -> None:
        for suffix in (".json", ".leases"):
            try:  # noqa: SIM105 -- contextlib costs start-up time
                os.unlink(self.path(name, suffix))
            except FileNotFoundError:
                pass

    def leases(self, name: str) -> list[Lease]:
        try:
            with open(self.path(name, ".leases")) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        leases = []
        for line in lines:
            address, container, pid, start, hostname, names = line.split()
            leases.append(Lease(address, container, int(pid), int(start), hostname,
                                tuple(n for n in names.split(",") if n != "-")))
        return leases

    def write_leases(self, name: str, leases: list[Lease]) -> None:
        path = self.path(name, ".leases")
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write("".join(lease.line() for lease in leases))
        os.replace(tmp, path)

    def host_record(self) -> dict[str, object]:
        try:
            return _read_record(os.path.join(self.dir, ".host.json"))
        except FileNotFoundError:
            return {}

    def save_host_record(self, record: dict[str, object]) -> None:
        from minidocker.state import write_json

        path = os.path.join(self.dir, ".host.json")
        if record:
            write_json(path, record)
        else:
            try:  # noqa: SIM105
                os.unlink(path)
            except FileNotFoundError:
                pass


def _read_record(path: str) -> dict[str, object]:
    from minidocker.state import loads  # the json module costs ~5 ms of every run

    with open(path) as f:
        return loads(f.read())
