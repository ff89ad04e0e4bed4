"""A container's networking, composed: how ``run`` puts a container on its networks.

This is orchestration, like :mod:`minidocker.container`: it holds no mechanism of its own but
composes :mod:`minidocker.ipam` (addresses), :mod:`minidocker.network` (links, routes),
:mod:`minidocker.nftables` (rules), :mod:`minidocker.ports` and :mod:`minidocker.proxy`
(publishing). Read :meth:`Attachment.connect` top to bottom and you have read what
``--network bridge`` does on the host:

Before fork (so a bad request fails before anything exists):

1. ``ports``      bind every published host port (a port in use fails here)

While the child waits, its namespaces made (a ``host_steps`` entry of ``container.start``):

2. ``lock``       flock the network state: parallel starts take turns from here to 8
3. ``reclaim``    leases whose process is gone (a ``kill -9``) are given back
4. ``bridge``     the default ``minidocker0`` is made on first use: a subnet that overlaps no
                  route, the gateway address on the bridge, masquerade out, ``ip_forward``
5. ``address``    one per network, leased to the container's PID 1
6. ``veth``       one pair per network, the peer born in the container's namespace
7. ``inside``     eth0: address, up, default route (through a socket opened in its namespace)
8. ``hosts``      /etc/hosts: its own address, and its peers' on user-defined networks
9. ``publish``    the DNAT rules, then the proxy process that holds the ports

:func:`release` undoes all of it, from any process (``rm``, the end of ``run --rm``, a failed
start), and is idempotent. The kernel undoes the links itself when the container's namespace
dies; the leases of a crashed ``run`` are reclaimed by step 3 of the next start.

The plan (:func:`make_plan`) is decided before anything is created and recorded in the
container's config.json; what was actually set up is recorded in ``network.json`` beside it.

Notebook: ``06_networking``.
"""

from __future__ import annotations

import contextlib
import os

from minidocker import ipam, network, procfs, trace
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from socket import socket
    from typing import Any

    from minidocker.netlink import Netlink
    from minidocker.ports import PortMapping
    from minidocker.proxy import Listener
    from minidocker.spec import Spec

# The plan lives in minidocker.netplan; its names stay readable from here, where the commands,
# the notebooks and the tests have always found them.
from minidocker.netplan import (  # noqa: E402,F401
    DEFAULT_BRIDGE,
    DEFAULT_ENV,
    DEFAULT_NETWORK,
    PREDEFINED,
    container_pid,
    default_network,
    etc_files,
    hostname_for,
    join_pid,
    make_plan,
    valid_name,
)

# -- networks ---------------------------------------------------------------------------------

def new_network_record(name: str, subnet: str, gateway: str, bridge: str, internal: bool,
                       owned: bool) -> dict[str, object]:
    import time

    from minidocker.timefmt import format_time

    whole_seconds = time.time_ns() // 1_000_000_000 * 1_000_000_000  # as networks always had
    return {"Name": name, "Id": os.urandom(32).hex(), "Driver": "bridge", "Subnet": subnet,
            "Gateway": gateway, "Bridge": bridge, "Internal": internal, "Owned": owned,
            "Created": format_time(whole_seconds)}


def taken_subnets(nl: Netlink, store: ipam.Store, skip: str = "") -> list[tuple[str, str]]:
    """(what, cidr) for every route and address of the host, and every minidocker network."""
    found = [(f'network "{r["Name"]}" ({r["Subnet"]})', str(r["Subnet"])) for r in store.all()
             if r["Name"] != skip]
    return found + [(f"the route to {ipam.int_ip(ipam.ip_int(dst) & ipam.mask(n))}/{n}",
                     f"{dst}/{n}") for dst, n in network.occupied(nl)]


def check_overlap(subnet: str, taken: list[tuple[str, str]]) -> None:
    value = ipam.parse_subnet(subnet)
    for what, cidr in taken:
        address, _, length = cidr.partition("/")
        other = (ipam.ip_int(address) & ipam.mask(int(length)), int(length))
        if ipam.overlaps(value, other):
            raise ipam.NetworkError(f"invalid subnet {subnet}: it overlaps with {what}")


def ensure_network(store: ipam.Store, nl: Netlink, name: str) -> dict[str, object]:
    """The network's record, with its bridge present in the kernel (made now if need be).

    The default network is created on first use, as the article describes docker0: a subnet
    that overlaps no existing route, its first address on the bridge. Called under the lock.
    """
    record = store.get(name)
    new = record is None
    if record is None:
        if name != DEFAULT_NETWORK:
            raise ipam.NetworkError(f"network {name} not found")
        record = _adopt_or_choose_default(store, nl)
    subnet = str(record["Subnet"])
    prefixlen = int(subnet.split("/")[1])
    bridge = str(record["Bridge"])
    if nl.link(bridge) is not None:
        if new:  # adopted: a bridge made by hand still needs the rules out
            undo_on_error(store, nl, record, new, False, lambda: outside_rules(store, record))
        return record
    if not record.get("Owned", True):
        raise ipam.NetworkError(f"bridge {bridge} of network {name} is gone (it was not made by "
                                "minidocker, so minidocker does not remake it)")
    trace.step("bridge", f"{bridge} {record['Gateway']}/{prefixlen}: first use")
    if not new:  # remade (after a reboot): is its subnet still free? (a new one was chosen so)
        check_overlap(subnet, [t for t in taken_subnets(nl, store, skip=name)
                               if not t[0].startswith("network")])

    def make() -> None:
        network.ensure_bridge(nl, bridge, str(record["Gateway"]), prefixlen)
        outside_rules(store, record)

    undo_on_error(store, nl, record, new, True, make)
    return record


def undo_on_error(store: ipam.Store, nl: Netlink, record: dict[str, object], new: bool,
                   made_bridge: bool, steps: Callable[[], None]) -> None:
    """Run ``steps``; if they fail, remove what they made (the bridge, its rules, the record
    if it is new), so a failed start leaves nothing behind."""
    try:
        steps()
    except BaseException:
        from minidocker import nftables

        nftables.remove_owned([f"n={record['Name']}"])
        if made_bridge:
            network.delete_link(nl, str(record["Bridge"]))
        if new:
            store.delete(str(record["Name"]))
        restore_forwarding(store)
        raise


def _adopt_or_choose_default(store: ipam.Store, nl: Netlink) -> dict[str, object]:
    link = nl.link(DEFAULT_BRIDGE)
    if link is not None:  # made by hand (or by another state root): use it, never delete it
        mine = [a for a in nl.addresses() if a["index"] == link["index"]]
        if link["kind"] != "bridge" or not mine:
            raise ipam.NetworkError(f"{DEFAULT_BRIDGE} exists but is not a bridge with an IPv4 "
                                    "address: delete it or give it one")
        address, prefixlen = mine[0]["address"], mine[0]["prefixlen"]
        value = ipam.ip_int(address) & ipam.mask(prefixlen)
        record = new_network_record(DEFAULT_NETWORK, f"{ipam.int_ip(value)}/{prefixlen}",
                                    address, DEFAULT_BRIDGE, False, owned=False)
    else:
        taken = [cidr for _, cidr in taken_subnets(nl, store)]
        subnet = ipam.choose_subnet(
            (ipam.ip_int(c.split("/")[0]) & ipam.mask(int(c.split("/")[1])), int(c.split("/")[1]))
            for c in taken)
        gateway = ipam.first_host(ipam.parse_subnet(subnet))
        trace.note(f"default bridge: {subnet} overlaps no route, gateway {gateway}")
        record = new_network_record(DEFAULT_NETWORK, subnet, gateway, DEFAULT_BRIDGE, False,
                                    owned=True)
    store.save(record)
    return record


def outside_rules(store: ipam.Store, record: dict[str, object]) -> None:
    """The network's nft rules (masquerade out, or an internal network's drops), and
    ``ip_forward`` on for a network that routes out. Under the lock."""
    from minidocker import nftables

    name, bridge = str(record["Name"]), str(record["Bridge"])
    internal = bool(record.get("Internal"))
    nftables.remove_owned([f"n={name}"])  # a bridge remade after a reboot: no duplicates
    rules = [("forward", r) for r in nftables.isolation_rules(name, bridge, internal)]
    if not internal:
        rules.append(("postrouting", nftables.masquerade_rule(name, str(record["Subnet"]),
                                                              bridge)))
        enable_forwarding(store)
    nftables.apply(rules)


def enable_forwarding(store: ipam.Store) -> None:
    """``ip_forward=1``, recording the value it had so :func:`restore_forwarding` can put it
    back when the last network that needed it is gone."""
    host = store.host_record()
    current = network.ip_forward()
    if current != "1":
        if "ip_forward" not in host:
            host["ip_forward"] = current
            store.save_host_record(host)
        network.set_ip_forward("1")


def restore_forwarding(store: ipam.Store) -> None:
    """Put ``ip_forward`` back as it was, if minidocker changed it and no network that routes
    out is left."""
    host = store.host_record()
    if "ip_forward" not in host or any(not r.get("Internal") for r in store.all()):
        return
    network.set_ip_forward(str(host.pop("ip_forward")))
    store.save_host_record(host)


def remove_network(store: ipam.Store, record: dict[str, object]) -> None:
    """Delete a network that no container uses: its rules, its bridge (only if minidocker made
    it), its record; then maybe restore ip_forward. Under the lock."""
    from minidocker import nftables

    nftables.remove_owned([f"n={record['Name']}"])
    if record.get("Owned", True):
        with network.open_netlink() as nl:
            network.delete_link(nl, str(record["Bridge"]))
    store.delete(str(record["Name"]))
    restore_forwarding(store)


def live_leases(store: ipam.Store, name: str) -> list[ipam.Lease]:
    return [lease for lease in store.leases(name) if ipam.live(lease)]


def reclaim(store: ipam.Store) -> None:
    """Give back the leases of processes that are gone (a ``run`` killed by SIGKILL, a
    detached container that exited), with the DNAT rules that may still point at their
    addresses and their lines in their peers' /etc/hosts. Under the lock."""
    root = os.path.dirname(store.dir)
    stale: set[str] = set()
    peers: set[str] = set()
    for record in store.all():
        name = str(record["Name"])
        leases = store.leases(name)
        keep = [lease for lease in leases if ipam.live(lease)]  # a zombie is gone too
        if len(keep) != len(leases):
            stale |= {lease.container for lease in leases if lease not in keep}
            store.write_leases(name, keep)
            if name != DEFAULT_NETWORK:
                peers |= {lease.container for lease in keep}
    if not stale:
        return
    trace.step("reclaim", f"{len(stale)} lease(s) of exited containers")
    published = [cid for cid in stale
                 if read_record(os.path.join(root, "containers", cid, "network.json"))
                 .get("Ports")]
    if published:  # normally their proxy removed these as they exited: nft only if need be
        from minidocker import nftables

        nftables.remove_owned(f"c={cid}" for cid in published)
    if peers:
        refresh_hosts(store, root, peers)


# -- one container ----------------------------------------------------------------------------

class Who:
    """What the network needs to know of a container: its ID, name and hostname."""

    __slots__ = ("id", "name", "hostname")

    def __init__(self, cid: str, name: str, hostname: str) -> None:
        self.id, self.name, self.hostname = cid, name, hostname


def attach_one(store: ipam.Store, nl: Netlink, who: Spec | Who, n: int,
               want: Mapping[str, Any], pid: int, start: int) -> network.Interface:
    """Steps 4-6 for one network: its bridge, an address leased to ``pid``, the veth pair.
    On failure nothing of this network is left but the lease, which :func:`release` (or
    :func:`drop_lease`) gives back."""
    record = ensure_network(store, nl, str(want["name"]))
    name, subnet = str(record["Name"]), ipam.parse_subnet(str(record["Subnet"]))
    leases = store.leases(name)  # the caller reclaimed the dead ones: the rest are live
    address = ipam.allocate(subnet, str(record["Gateway"]), leases,
                            str(want["ip"]) if want.get("ip") else None)
    names = (who.name, *want.get("aliases", []), who.id[:12])
    trace.step("address", f"{address} on {name}")
    store.write_leases(name, [*leases, ipam.Lease(address, who.id, pid, start, who.hostname,
                                                  tuple(names))])
    iface = network.Interface(name, str(record["Bridge"]), network.veth_name(who.id, n),
                              f"eth{n}", address, subnet[1],
                              "" if record.get("Internal") else str(record["Gateway"]))
    trace.step("veth", f"{iface.host_ifname} on {iface.bridge} <-> {iface.ifname} inside")
    try:
        network.create_veth(nl, iface, pid)
    except BaseException:
        drop_lease(store, name, who.id)
        raise
    return iface


class Attachment:
    """One container's networking while it starts: what was made, so it can all be undone."""

    def __init__(self, spec: Spec, cdir: str) -> None:
        self.spec = spec
        self.cdir = cdir
        self.root = os.path.dirname(os.path.dirname(cdir))
        self.plan = spec.network
        self.interfaces: list[network.Interface] = []
        self.listeners: list[Listener] = []
        self.bindings: list[dict[str, object]] = []
        self.proxy: tuple[int, int] | None = None  # (pid, start time)
        self.published = False
        self.pid = 0

    @property
    def wanted(self) -> bool:
        return self.plan.get("mode") == "bridge"

    def bind_ports(self) -> None:
        """Step 1, before fork: bind every published host port, or fail."""
        from minidocker.ports import PortMapping

        mappings = [PortMapping.from_dict(d) for d in self.plan.get("ports", [])]
        if not mappings:
            return
        trace.step("ports", ", ".join(f"{m.host_ip or '*'}:{m.host_port or '?'}->{m.key()}"
                                      for m in mappings))
        try:
            for m in mappings:
                self._bind(m)
        except BaseException:
            self.close_listeners()
            raise

    def _bind(self, m: PortMapping) -> None:
        from minidocker import ports, proxy

        ips = [m.host_ip] if m.host_ip else ["0.0.0.0", "::"]
        first, last = ports.parse_range(m.host_port) if m.host_port else (0, 0)
        tries = range(first, last + 1) if m.host_port else range(20)  # random: retry clashes
        error: Exception | None = None
        for port in tries:
            got: list[tuple[socket, str, int]] = []
            try:
                for ip in ips:
                    try:
                        sock = proxy.bind(m.proto, ip, got[0][2] if got else port)
                    except proxy.PortInUse:
                        raise
                    except Exception:
                        if ip == "::" and not m.host_ip:
                            continue  # no IPv6 here: IPv4 only, as Docker does
                        raise
                    got.append((sock, ip, sock.getsockname()[1]))
            except proxy.PortInUse as exc:
                for sock, _, _ in got:
                    sock.close()
                error = exc
                continue
            for sock, ip, bound in got:
                self.bindings.append({"container_port": m.container_port, "proto": m.proto,
                                      "host_ip": ip, "host_port": bound})
                self.listeners.append(proxy.Listener(sock, m.proto, ("", m.container_port)))
            return
        if m.host_port and first != last and error is not None:
            raise proxy.PortInUse(f"Bind for {ips[0]}:{m.host_port} failed: every port in the "
                                  "range is already allocated")
        raise error if error is not None else UsageError(f"cannot publish {m!r}")

    def close_listeners(self) -> None:
        for lst in self.listeners:
            lst.sock.close()
        self.listeners = []

    def connect(self, pid: int) -> None:
        """Steps 2-9: a ``host_steps`` entry, run while the child waits."""
        store = ipam.Store(self.root)
        self.pid, start = pid, procfs.process_start_time(pid) or 0  # a lease line holds an int
        with store.lock():
            reclaim(store)
            with network.open_netlink() as nl:
                for n, want in enumerate(self.plan["networks"]):
                    self.interfaces.append(attach_one(store, nl, self.spec, n, want, pid, start))
            inside = network.open_netlink_in(pid)
            with inside:
                trace.step("inside", "the container's eth0: address, up, default route")
                for iface in self.interfaces:
                    network.configure_inside(inside, iface)
            refresh_hosts(store, self.root, {self.spec.id} | self._peers(store))
            if self.bindings:
                self._publish()
        self._record()

    def _peers(self, store: ipam.Store) -> set[str]:
        peers: set[str] = set()
        for iface in self.interfaces:
            if iface.network != DEFAULT_NETWORK:
                peers |= {lease.container for lease in store.leases(iface.network)}
        return peers

    def _publish(self) -> None:
        from minidocker import nftables, proxy

        iface = next((i for i in self.interfaces if i.gateway), None)
        if iface is None:
            trace.note("only internal networks: ports are not published")
            self.close_listeners()
            return
        for lst in self.listeners:
            lst.target = (iface.address, lst.target[1])
        rules = [("published", nftables.dnat_rule(self.spec.id, iface.bridge, str(b["proto"]),
                                                  str(b["host_ip"]), int(b["host_port"]),  # type: ignore[call-overload]
                                                  iface.address, int(b["container_port"])))  # type: ignore[call-overload]
                 for b in self.bindings
                 if ":" not in str(b["host_ip"]) and not str(b["host_ip"]).startswith("127.")]
        trace.step("publish", f"a proxy for {len(self.listeners)} socket(s), "
                              f"{len(rules)} DNAT rule(s)")
        # The proxy first: from here on, whenever the container dies (even with this process
        # killed mid-way), the proxy removes the container's rules and lease on its way out.
        root, cid = self.root, self.spec.id
        pid = proxy.start(self.listeners, self.pid, lambda: release(root, cid, None, True))
        self.proxy = (pid, procfs.process_start_time(pid) or 0)
        self.close_listeners()
        self.published = True
        nftables.apply(rules)

    def _record(self) -> None:
        from minidocker.state import write_json

        write_json(os.path.join(self.cdir, "network.json"), {
            "Interfaces": [i.as_dict() for i in self.interfaces],
            "Ports": self.bindings if self.published else [],
            "Proxy": list(self.proxy) if self.proxy else None,
        })

    def release(self) -> None:
        """Undo what :meth:`connect` made (a failed start). Idempotent."""
        self.close_listeners()
        release(self.root, self.spec.id, self.proxy, self.published)


def release(root: str, cid: str, proxy_pid: tuple[int, int] | None = None,
            published: bool | None = None) -> None:
    """Give back everything container ``cid`` holds: proxy, DNAT rules, leases, and its
    entries in its peers' /etc/hosts. From any process; idempotent.

    Called once the container's processes are gone, so its links need nothing: the kernel
    deletes the veth pair with the container's namespace (within a few ms, asynchronously;
    deleting it ourselves would wait ~25 ms for the same RCU grace period). A namespace still
    held by a ``container:`` joiner keeps its eth0, as it should.

    Without the arguments, they are read from the container's ``network.json``.
    """
    cdir = os.path.join(root, "containers", cid)
    if published is None:
        record = read_record(os.path.join(cdir, "network.json"))
        proxy_pid = (int(record["Proxy"][0]), int(record["Proxy"][1])) \
            if record.get("Proxy") else None
        published = bool(record.get("Ports"))
    if proxy_pid:
        from minidocker import proxy

        proxy.stop(*proxy_pid)
    store = ipam.Store(root)
    if not os.path.isdir(store.dir):
        return
    with store.lock():
        if published:
            from minidocker import nftables

            nftables.remove_owned([f"c={cid}"])
        peers: set[str] = set()
        for record in store.all():
            name = str(record["Name"])
            leases = store.leases(name)
            keep = [lease for lease in leases if lease.container != cid]
            if len(keep) != len(leases):
                store.write_leases(name, keep)
                if name != DEFAULT_NETWORK:
                    peers |= {lease.container for lease in keep}
        if peers:
            refresh_hosts(store, root, peers)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(cdir, "network.json"))


def read_record(path: str) -> dict[str, Any]:
    from minidocker.lifecycle import loads  # not the json module: ~5 ms of every run

    try:
        with open(path) as f:
            record: dict[str, Any] = loads(f.read())
    except (OSError, ValueError):
        return {}
    return record


def refresh_hosts(store: ipam.Store, root: str, containers: Iterable[str]) -> None:
    """Rewrite the managed part of these containers' /etc/hosts (in place: it is bind-mounted):
    their own address on each network, and on user-defined networks every peer's. Called
    under the lock, after :func:`reclaim` where it matters, so the leases are taken as live."""
    leases = {str(r["Name"]): store.leases(str(r["Name"])) for r in store.all()}
    for cid in containers:
        entries: list[tuple[str, str]] = []
        for name, held in leases.items():
            own = [lease for lease in held if lease.container == cid]
            if not own:
                continue
            entries += [(lease.address, lease.hostname) for lease in own]
            if name != DEFAULT_NETWORK:
                entries += [(lease.address, " ".join(lease.names)) for lease in held
                            if lease.container != cid]
        path = os.path.join(root, "containers", cid, "hosts")
        try:
            with open(path) as f:
                text = f.read()
            network.rewrite_in_place(path, network.replace_managed(text, entries))
        except FileNotFoundError:
            continue



def drop_lease(store: ipam.Store, name: str, cid: str) -> None:
    store.write_leases(name, [lease for lease in store.leases(name) if lease.container != cid])


def port_bindings(root: str, cid: str) -> list[dict[str, object]]:
    """What ``port`` prints: the host addresses and ports actually bound, from network.json."""
    held = read_record(os.path.join(root, "containers", cid, "network.json"))
    return list(held.get("Ports", []))
