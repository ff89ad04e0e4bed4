"""Networking without root: IPAM bookkeeping, the nft text, the netlink bytes, the run plan."""

from __future__ import annotations

import os
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from minidocker import ipam, netlink, network, networking, nftables, procfs
from minidocker.errors import UsageError

pytestmark = pytest.mark.nb06


# -- IPAM ---------------------------------------------------------------------------------------

def test_subnets_parse_and_overlap() -> None:
    assert ipam.parse_subnet("10.5.0.0/24") == (ipam.ip_int("10.5.0.0"), 24)
    with pytest.raises(UsageError, match="it should be 10.5.0.0/24"):
        ipam.parse_subnet("10.5.0.7/24")
    with pytest.raises(UsageError, match="invalid subnet"):
        ipam.parse_subnet("10.5.0.0")
    a, b = ipam.parse_subnet("10.0.0.0/8"), ipam.parse_subnet("10.5.0.0/24")
    assert ipam.overlaps(a, b) and ipam.overlaps(b, a)
    assert not ipam.overlaps(b, ipam.parse_subnet("10.6.0.0/24"))


def test_default_subnet_skips_whatever_is_routed() -> None:
    assert ipam.choose_subnet([]) == "172.17.0.0/16"
    taken = [ipam.parse_subnet("172.16.0.0/12")]  # a route covering every 172.17-31 pool
    assert ipam.choose_subnet(taken) == "192.168.0.0/20"
    with pytest.raises(ipam.NetworkError, match="non-overlapping"):
        ipam.choose_subnet([ipam.parse_subnet("0.0.0.0/1"), ipam.parse_subnet("128.0.0.0/1")])


def test_allocation_skips_gateway_network_broadcast_and_leases() -> None:
    subnet = ipam.parse_subnet("10.9.0.0/29")  # .0 network, .7 broadcast
    leases = [ipam.Lease("10.9.0.2", "c1", 1, 1), ipam.Lease("10.9.0.3", "c2", 1, 1)]
    assert ipam.allocate(subnet, "10.9.0.1", leases) == "10.9.0.4"
    assert ipam.allocate(subnet, "10.9.0.1", leases, "10.9.0.6") == "10.9.0.6"
    with pytest.raises(ipam.NetworkError, match="already in use"):
        ipam.allocate(subnet, "10.9.0.1", leases, "10.9.0.1")
    with pytest.raises(ipam.NetworkError, match="no configured subnet contains"):
        ipam.allocate(subnet, "10.9.0.1", leases, "10.10.0.5")
    full = leases + [ipam.Lease(f"10.9.0.{n}", f"c{n}", 1, 1) for n in (4, 5, 6)]
    with pytest.raises(ipam.NetworkError, match="exhausted"):
        ipam.allocate(subnet, "10.9.0.1", full)


def test_a_lease_is_live_only_while_its_process_is() -> None:
    me = os.getpid()
    assert ipam.live(ipam.Lease("10.0.0.2", "c", me, procfs.process_start_time(me) or 0))
    assert not ipam.live(ipam.Lease("10.0.0.2", "c", me, 1))  # a reused PID: other start time
    assert not ipam.live(ipam.Lease("10.0.0.2", "c", 0, 0))
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not ipam.live(ipam.Lease("10.0.0.2", "c", gone.pid, 0))  # no start time, no process


def test_leases_round_trip_and_parallel_allocations_are_distinct(tmp_path: Path) -> None:
    store = ipam.Store(str(tmp_path))
    subnet, me = ipam.parse_subnet("10.1.0.0/24"), os.getpid()
    start = procfs.process_start_time(me) or 0
    got: list[str] = []

    def take(n: int) -> None:
        with store.lock():
            leases = store.leases("n")
            address = ipam.allocate(subnet, "10.1.0.1", leases)
            store.write_leases("n", [*leases, ipam.Lease(address, f"c{n}", me, start, "h",
                                                         ("web", "w"))])
            got.append(address)

    threads = [threading.Thread(target=take, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 20
    assert {lease.address for lease in store.leases("n")} == set(got)
    assert store.leases("n")[0].names == ("web", "w")


def test_records_save_find_and_delete(tmp_path: Path) -> None:
    store = ipam.Store(str(tmp_path))
    record = networking.new_network_record("web", "10.2.0.0/24", "10.2.0.1", "br-x", False, True)
    store.save(record)
    assert store.find("web") == record
    assert store.find(str(record["Id"])[:6]) == record
    assert store.find("nope") is None
    store.delete("web")
    assert store.all() == []


# -- nftables text --------------------------------------------------------------------------------

LISTING = """table ip minidocker { # handle 7
\tchain published { # handle 3
\t\tiifname != "minidocker0" tcp dport 8080 dnat to 172.17.0.2:80 comment "c=abc" # handle 9
\t\tip daddr 10.0.0.5 udp dport 53 dnat to 172.17.0.3:53 comment "c=def" # handle 10
\t}
\tchain postrouting { # handle 4
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 172.17.0.0/16 oifname != "minidocker0" masquerade comment "n=bridge" # handle 11
\t}
}
"""


def test_rules_are_found_again_by_their_owner() -> None:
    rules = nftables.parse_rules(LISTING)
    assert [(c, o, h) for c, o, h, _ in rules] == [
        ("published", "c=abc", 9), ("published", "c=def", 10), ("postrouting", "n=bridge", 11)]


def test_rule_text() -> None:
    assert nftables.dnat_rule("abc", "minidocker0", "tcp", "", 8080, "172.17.0.2", 80) == (
        'iifname != "minidocker0" tcp dport 8080 dnat to 172.17.0.2:80 comment "c=abc"')
    assert nftables.dnat_rule("abc", "br-1", "udp", "10.0.0.5", 53, "10.3.0.2", 53).startswith(
        "ip daddr 10.0.0.5 ")
    assert nftables.masquerade_rule("bridge", "172.17.0.0/16", "minidocker0") == (
        'ip saddr 172.17.0.0/16 oifname != "minidocker0" masquerade comment "n=bridge"')
    assert len(nftables.isolation_rules("web", "br-1", internal=True)) == 2
    assert "add table ip minidocker" in nftables.setup_script()


# -- netlink bytes, checked with pyroute2's decoder -------------------------------------------

def test_veth_request_decodes_as_pyroute2_reads_it() -> None:
    pytest.importorskip("pyroute2")
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    peer = (netlink.ifinfomsg() + netlink.attr_str(netlink.IFLA_IFNAME, "eth0")
            + netlink.attr_u32(netlink.IFLA_NET_NS_FD, 7))
    info = netlink.attr(netlink.IFLA_LINKINFO, netlink.attr_str(netlink.IFLA_INFO_KIND, "veth")
                        + netlink.attr(netlink.IFLA_INFO_DATA,
                                       netlink.attr(netlink.VETH_INFO_PEER, peer)))
    body = (netlink.ifinfomsg(flags=netlink.IFF_UP, change=netlink.IFF_UP)
            + netlink.attr_str(netlink.IFLA_IFNAME, "vethabc") + netlink.attr_u32(
                netlink.IFLA_MASTER, 5) + info)
    header = struct.pack("=IHHII", 16 + len(body), netlink.RTM_NEWLINK, 0, 1, 0)
    msg = ifinfmsg(header + body)
    msg.decode()
    assert msg.get_attr("IFLA_IFNAME") == "vethabc"
    assert msg.get_attr("IFLA_MASTER") == 5
    assert msg["flags"] & 1 and msg["change"] & 1
    linkinfo = msg.get_attr("IFLA_LINKINFO")
    assert linkinfo.get_attr("IFLA_INFO_KIND") == "veth"
    peer_msg = linkinfo.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer_msg.get_attr("IFLA_IFNAME") == "eth0"
    assert peer_msg.get_attr("IFLA_NET_NS_FD") == 7


def test_answers_parse() -> None:
    body = (netlink.ifaddrmsg(3, 16) + netlink.attr_ip(netlink.IFA_LOCAL, "172.17.0.1")
            + netlink.attr_str(netlink.IFA_LABEL, "minidocker0"))
    assert netlink.parse_addr(body) == {"family": 2, "index": 3, "prefixlen": 16,
                                        "address": "172.17.0.1", "label": "minidocker0"}
    route = netlink.parse_route(netlink.rtmsg(dst_len=16) + netlink.attr_ip(netlink.RTA_DST,
                                                                           "10.0.0.0"))
    assert (route["dst"], route["dst_len"], route["table"]) == ("10.0.0.0", 16, 254)
    assert netlink.flag_names(netlink.NLM_F_DUMP) == "NLM_F_DUMP"
    assert netlink.flag_names(netlink.NLM_F_CREATE | netlink.NLM_F_EXCL) == (
        "NLM_F_CREATE|NLM_F_EXCL")


# -- /etc files and the plan -----------------------------------------------------------------------

def test_hosts_managed_part_is_replaced_in_place(tmp_path: Path) -> None:
    text = network.hosts_text([("10.0.0.9", "db")], [("172.18.0.2", "me")])
    assert "10.0.0.9\tdb\n" in text and text.endswith("172.18.0.2\tme\n")
    again = network.replace_managed(text, [("172.18.0.3", "peer p")])
    assert "10.0.0.9\tdb" in again and "172.18.0.2" not in again and "peer p" in again
    path = tmp_path / "hosts"
    path.write_text(text)
    inode = path.stat().st_ino
    network.rewrite_in_place(str(path), again)
    assert path.read_text() == again and path.stat().st_ino == inode


def test_resolv_conf_options() -> None:
    host = "nameserver 127.0.0.53\nsearch lan\noptions edns0\n"
    out = network.resolv_conf_text(host, ["9.9.9.9"], [], ["ndots:2"])
    assert out == "search lan\nnameserver 9.9.9.9\noptions ndots:2\n"


def plan(root: Path, **kw: object) -> dict[str, object]:
    return networking.make_plan(str(root), **kw)  # type: ignore[arg-type]


def test_plan_defaults_and_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(networking.DEFAULT_ENV, raising=False)
    assert plan(tmp_path) == {"mode": "bridge", "networks": [{"name": "bridge"}]}
    assert plan(tmp_path, network_name="default")["mode"] == "bridge"
    assert plan(tmp_path, network_name="none") == {"mode": "none"}
    assert plan(tmp_path, network_name="host") == {"mode": "host"}
    monkeypatch.setenv(networking.DEFAULT_ENV, "none")
    assert plan(tmp_path) == {"mode": "none"}


def test_plan_ports_dns_hosts(tmp_path: Path) -> None:
    p = plan(tmp_path, network_name="bridge", publish=["8080:80"], publish_all=True,
             image_config={"ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
             dns=["1.1.1.1"], add_hosts=["db:10.0.0.9"])
    assert p["ports"] == [
        {"container_port": 80, "proto": "tcp", "host_ip": "", "host_port": "8080"},
        {"container_port": 53, "proto": "udp", "host_ip": "", "host_port": ""}]
    assert p["dns"] == ["1.1.1.1"] and p["add_hosts"] == [["db", "10.0.0.9"]]


@pytest.mark.parametrize("kw, message", [
    ({"network_name": "nosuch"}, "network nosuch not found"),
    ({"network_name": "bridge", "ip": "172.17.0.9"},
     "user specified IP address is supported on user defined networks only"),
    ({"network_name": "bridge", "aliases": ["x"]}, "network-scoped alias is supported only"),
    ({"network_name": "container:"}, "invalid container format container:<name|id>"),
    ({"dns": ["nine"]}, "nine is not an ip address"),
    ({"add_hosts": ["db"]}, "bad format for add-host: 'db'"),
    ({"add_hosts": ["db:1.2.3"]}, "invalid IP address in add-host"),
    ({"publish": ["80/icmp"]}, "invalid proto: icmp"),
    ({"add_hosts": ["gw:host-gateway"]}, "host-gateway: the default bridge has no address"),
])
def test_plan_refuses_bad_input(tmp_path: Path, kw: dict[str, object], message: str) -> None:
    with pytest.raises((UsageError, ipam.NetworkError)) as err:
        plan(tmp_path, **kw)
    assert message in str(err.value)
    assert not (tmp_path / "networks").exists()  # nothing stored


def test_user_network_plan_with_ip_and_alias(tmp_path: Path) -> None:
    ipam.Store(str(tmp_path)).save(networking.new_network_record(
        "web", "10.2.0.0/24", "10.2.0.1", "br-x", False, True))
    p = plan(tmp_path, network_name="web", ip="10.2.0.50", aliases=["api"])
    assert p == {"mode": "bridge", "networks": [{"name": "web", "ip": "10.2.0.50",
                                                 "aliases": ["api"]}]}


def test_interface_plan_prints_and_round_trips() -> None:
    iface = network.Interface("bridge", "minidocker0", network.veth_name("0123456789ab", 0),
                              "eth0", "172.17.0.2", 16, "172.17.0.1")
    assert iface.host_ifname == "veth0123456"
    assert network.Interface.from_dict(iface.as_dict()).as_dict() == iface.as_dict()
    assert "eth0 172.17.0.2/16 via 172.17.0.1" in repr(iface)
    assert network.broadcast("172.17.0.2", 16) == "172.17.255.255"
