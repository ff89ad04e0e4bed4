"""Network commands: ``network create/ls/inspect/rm/connect/disconnect/prune`` and ``port``.

A user-defined network is a bridge of its own (``br-<id>``) with its own subnet; containers on
it find each other by name through their managed /etc/hosts. The predefined networks are
Docker's: ``bridge`` (``minidocker0``, made on first use), ``host`` and ``none``.
The commands below parse and print; the functions after them carry them out, composing
:mod:`minidocker.networking` (records, bridges, rules, leases) the way ``run`` does.

Notebook: ``06_networking``.
"""

from __future__ import annotations

import os
import sys

from minidocker import ipam, network, networking, procfs, trace
from minidocker.commands.table import COMMANDS, parser
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

SUBCOMMANDS = {
    "create": "Create a network",
    "ls": "List networks",
    "inspect": "Display detailed information on one or more networks",
    "rm": "Remove one or more networks",
    "connect": "Connect a container to a network",
    "disconnect": "Disconnect a container from a network",
    "prune": "Remove all unused networks",
}
ALIASES = {"list": "ls", "remove": "rm"}


def cmd_network(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage:  minidocker network COMMAND\n\n" + COMMANDS["network"][1] + "\n\nCommands:")
        for name, text in SUBCOMMANDS.items():
            print(f"  {name:<11} {text}")
        return 0 if argv else 1
    name = ALIASES.get(argv[0], argv[0])
    if name not in SUBCOMMANDS:
        raise UsageError(f"network: unknown command {argv[0]!r} (see 'minidocker network "
                         "--help')")
    handler: Callable[[list[str]], int] = globals()["_" + name]
    return handler(argv[1:])


def _store() -> ipam.Store:
    from minidocker.state import Layout

    return ipam.Store(Layout().root)


def _root() -> str:
    from minidocker.state import Layout

    return Layout().root


def _create(argv: list[str]) -> int:
    p = parser("minidocker network create", SUBCOMMANDS["create"],
               "minidocker network create [OPTIONS] NETWORK")
    p.add_argument("-d", "--driver", default="bridge", help="driver to manage the network")
    p.add_argument("--subnet", help="subnet in CIDR format, e.g. 10.5.0.0/24")
    p.add_argument("--gateway", help="IPv4 gateway for the subnet")
    p.add_argument("--internal", action="store_true",
                   help="restrict external access to the network")
    p.add_argument("name")
    args = p.parse_args(argv)
    record = create_network(_root(), args.name, driver=args.driver,
                                       subnet=args.subnet, gateway=args.gateway,
                                       internal=args.internal)
    print(record["Id"])
    return 0


def _ls(argv: list[str]) -> int:
    p = parser("minidocker network ls", SUBCOMMANDS["ls"])
    p.add_argument("-q", "--quiet", action="store_true", help="only display network IDs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    args = p.parse_args(argv)
    rows = list_networks(_root())
    if not args.quiet:
        print(f"{'NETWORK ID':<14}{'NAME':<20}{'DRIVER':<10}SCOPE")
    for row in rows:
        nid = str(row["Id"]) if args.no_trunc else str(row["Id"])[:12]
        if args.quiet:
            print(nid)
        else:
            print(f"{nid:<14}{row['Name']!s:<20}{row['Driver']!s:<10}local")
    return 0


def _inspect(argv: list[str]) -> int:
    p = parser("minidocker network inspect", SUBCOMMANDS["inspect"],
               "minidocker network inspect NETWORK [NETWORK...]")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    args = p.parse_args(argv)
    import json

    found, code = [], 0
    for name in args.names:
        try:
            found.append(inspect_network(_root(), name))
        except ipam.NetworkError as exc:
            print(f"minidocker: {exc}", file=sys.stderr)
            code = 1
    print(json.dumps(found, indent=4))
    return code


def _rm(argv: list[str]) -> int:
    p = parser("minidocker network rm", SUBCOMMANDS["rm"],
               "minidocker network rm NETWORK [NETWORK...]")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    args = p.parse_args(argv)
    code = 0
    for name in args.names:
        try:
            remove_network_by_name(_root(), name)
            print(name)
        except ipam.NetworkError as exc:
            print(f"minidocker: {exc}", file=sys.stderr)
            code = 1
    return code


def _connect(argv: list[str]) -> int:
    p = parser("minidocker network connect", SUBCOMMANDS["connect"],
               "minidocker network connect [OPTIONS] NETWORK CONTAINER")
    p.add_argument("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    p.add_argument("--alias", action="append", default=[], help="add network-scoped alias")
    p.add_argument("network")
    p.add_argument("container")
    args = p.parse_args(argv)
    connect_container(_root(), args.network, args.container, ip=args.ip,
                                 aliases=args.alias)
    return 0


def _disconnect(argv: list[str]) -> int:
    p = parser("minidocker network disconnect", SUBCOMMANDS["disconnect"],
               "minidocker network disconnect [OPTIONS] NETWORK CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="force the disconnection")
    p.add_argument("network")
    p.add_argument("container")
    args = p.parse_args(argv)
    disconnect_container(_root(), args.network, args.container)
    return 0


def _prune(argv: list[str]) -> int:
    p = parser("minidocker network prune", SUBCOMMANDS["prune"])
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    args = p.parse_args(argv)
    if not args.force:
        print("WARNING! This will remove all custom networks not used by at least one "
              "container,\nand the default bridge if no container uses it.\n"
              "Are you sure you want to continue? [y/N] ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed = prune_networks(_root())
    if removed:
        print("Deleted Networks:\n" + "\n".join(removed))
    return 0


def cmd_port(argv: list[str]) -> int:
    p = parser("minidocker port", COMMANDS["port"][1],
               "minidocker port CONTAINER [PRIVATE_PORT[/PROTO]]")
    p.add_argument("container")
    p.add_argument("port", nargs="?")
    args = p.parse_args(argv)
    from minidocker.ports import format_binding
    from minidocker.state import Layout

    layout = Layout()
    cid = layout.resolve(args.container)
    bindings = networking.port_bindings(layout.root, cid)
    if args.port is None:
        for b in bindings:
            print(f"{b['container_port']}/{b['proto']} -> "
                  f"{format_binding(str(b['host_ip']), int(str(b['host_port'])))}")
        return 0
    port, _, proto = args.port.partition("/")
    proto = proto or "tcp"
    chosen = [b for b in bindings if str(b["container_port"]) == port and b["proto"] == proto]
    if not chosen:
        raise UsageError(f"no public port '{port}/{proto}' published for {args.container}")
    for b in chosen:
        print(format_binding(str(b["host_ip"]), int(str(b["host_port"]))))
    return 0


# -- what the commands do ---------------------------------------------------------------------

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


def create_network(root: str, name: str, *, driver: str = "bridge", subnet: str | None = None,
                   gateway: str | None = None, internal: bool = False) -> dict[str, object]:
    """``network create``: a record, a bridge ``br-<id>`` with the gateway address, its rules.
    Refused (with nothing made) for a taken name, a subnet that overlaps a route or another
    network, or a gateway outside the subnet."""
    if driver != "bridge":
        raise UsageError(f"plugin \"{driver}\" not found (minidocker has the bridge driver only)")
    if name in ("host", "none"):
        raise UsageError(f"operation is not permitted on predefined {name} network")
    if not name or name[0] in "_.-" or any(c not in NAME_CHARS for c in name):
        raise UsageError(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                         "allowed")
    if gateway is not None and subnet is None:
        raise UsageError("every ip-range or gateway must have a corresponding subnet")
    store = ipam.Store(root)
    with store.lock(), network.open_netlink() as nl:
        if store.get(name) is not None:
            raise ipam.NetworkError(f"network with name {name} already exists")
        networking.reclaim(store)
        taken = networking.taken_subnets(nl, store)
        if subnet is None:
            subnet = ipam.choose_subnet(
                (ipam.ip_int(c.split("/")[0]) & ipam.mask(int(c.split("/")[1])),
                 int(c.split("/")[1])) for _, c in taken)
        else:
            networking.check_overlap(subnet, taken)
        value = ipam.parse_subnet(subnet)
        if gateway is None:
            gateway = ipam.first_host(value)
        elif not ipam.in_subnet(ipam.ip_int(gateway), value):
            raise ipam.NetworkError(f"no matching subnet for gateway {gateway}")
        if value[1] > 30:
            raise ipam.NetworkError(f"invalid subnet {subnet}: too small for a gateway and a "
                                    "container")
        record = networking.new_network_record(name, subnet, gateway, "", internal, owned=True)
        record["Bridge"] = "br-" + str(record["Id"])[:12]
        store.save(record)
        trace.step("bridge", f"{record['Bridge']} {gateway}/{value[1]} for network {name}")

        def make() -> None:
            network.ensure_bridge(nl, str(record["Bridge"]), str(gateway), value[1])
            networking.outside_rules(store, record)

        networking.undo_on_error(store, nl, record, True, True, make)
    return record


def list_networks(root: str) -> list[dict[str, object]]:
    """``network ls``: the predefined networks first (as Docker lists them), then the rest."""
    import hashlib

    store = ipam.Store(root)
    records: dict[str, dict[str, object] | None] = {str(r["Name"]): r for r in store.all()}
    rows: list[dict[str, object]] = []
    for name in networking.PREDEFINED:
        rows.append(records.pop(name, None) or {
            "Name": name, "Driver": name if name != networking.DEFAULT_NETWORK else "bridge",
            "Id": hashlib.sha256(f"minidocker {name} {root}".encode()).hexdigest()})
    return rows + sorted((r for r in records.values() if r), key=lambda r: str(r["Name"]))


def find_network(root: str, name: str) -> dict[str, object]:
    record = ipam.Store(root).find(name)
    if record is None:
        if name in networking.PREDEFINED:
            return next(r for r in list_networks(root) if r["Name"] == name)
        raise ipam.NetworkError(f"network {name} not found")
    return record


def inspect_network(root: str, name: str) -> dict[str, object]:
    """``network inspect``: Docker's fields, with the containers holding addresses on it."""
    from minidocker import lifecycle
    from minidocker.state import Layout

    record = find_network(root, name)
    store = ipam.Store(root)
    containers: dict[str, object] = {}
    prefix = str(record.get("Subnet", "/")).split("/")[1]
    for lease in networking.live_leases(store, str(record["Name"])):
        config = lifecycle.read(Layout(root).container(lease.container), "config", {})
        containers[lease.container] = {"Name": config.get("name", ""),
                                       "IPv4Address": f"{lease.address}/{prefix}"}
    subnet = record.get("Subnet")
    return {
        "Name": record["Name"], "Id": record["Id"], "Created": record.get("Created", ""),
        "Scope": "local", "Driver": record.get("Driver", "bridge"), "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [{"Subnet": subnet, "Gateway": record["Gateway"]}] if subnet else []},
        "Internal": bool(record.get("Internal")), "Attachable": False, "Ingress": False,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": record["Bridge"]} if subnet else {},
        "Labels": {},
    }


def remove_network_by_name(root: str, name: str) -> None:
    """``network rm``: refused for a predefined network or one a container still uses."""
    store = ipam.Store(root)
    with store.lock():
        record = store.find(name)
        if record is None:
            if name in networking.PREDEFINED:
                raise ipam.NetworkError(f"{name} is a pre-defined network and cannot be removed")
            raise ipam.NetworkError(f"network {name} not found")
        if record["Name"] == networking.DEFAULT_NETWORK:
            raise ipam.NetworkError(f"{name} is a pre-defined network and cannot be removed")
        _refuse_in_use(store, record)
        networking.remove_network(store, record)


def _refuse_in_use(store: ipam.Store, record: dict[str, object]) -> None:
    users = networking.live_leases(store, str(record["Name"]))
    if users:
        raise ipam.NetworkError(f"error while removing network: network {record['Name']} id "
                                f"{record['Id']} has active endpoints (container "
                                f"{users[0].container[:12]})")


def prune_networks(root: str) -> list[str]:
    """``network prune``: every unused user-defined network, and (unlike Docker, which keeps
    docker0 while the daemon runs) the default bridge too if no container uses it, so that
    the host is left as it was: no bridge, no nft table, ``ip_forward`` restored."""
    store = ipam.Store(root)
    removed = []
    with store.lock():
        networking.reclaim(store)
        records = sorted(store.all(), key=lambda r: r["Name"] == networking.DEFAULT_NETWORK)
        for record in records:
            if networking.live_leases(store, str(record["Name"])):
                continue
            networking.remove_network(store, record)
            if record["Name"] != networking.DEFAULT_NETWORK:
                removed.append(str(record["Name"]))
    return removed


def _running(root: str, name: str) -> tuple[str, int]:
    from minidocker.state import Layout

    cid = Layout(root).resolve(name)
    return cid, networking.container_pid(root, cid)


def connect_container(root: str, net_name: str, container: str, *, ip: str | None = None,
                      aliases: list[str] | None = None) -> None:
    """``network connect``: a running container gets one more veth (eth1, eth2...) now; a
    stopped one gets the network added to its plan, for its next start."""
    from minidocker import lifecycle
    from minidocker.state import Layout, lock_container, unlock_container

    store = ipam.Store(root)
    record = store.find(net_name)
    if record is None:
        if net_name in ("host", "none"):
            raise ipam.NetworkError(f"container cannot be disconnected from host network or "
                                    f"connected to {net_name} network")
        if net_name != networking.DEFAULT_NETWORK:
            raise ipam.NetworkError(f"network {net_name} not found")
    name = str(record["Name"]) if record else networking.DEFAULT_NETWORK
    if ip is not None and name == networking.DEFAULT_NETWORK:
        raise UsageError("user specified IP address is supported on user defined networks only")
    cid, pid = _running(root, container)
    cdir = Layout(root).container(cid)
    config = lifecycle.read(cdir, "config")
    plan = config.get("network") or {}
    if plan.get("mode") != "bridge":
        raise ipam.NetworkError(f"container sharing network namespace with another container or "
                                f"host cannot be connected to any other network "
                                f"(--network {plan.get('mode')})")
    if any(n["name"] == name for n in plan.get("networks", [])):
        raise ipam.NetworkError(f"endpoint with name {config.get('name')} already exists in "
                                f"network {name}")
    want: dict[str, object] = {"name": name}
    if ip is not None:
        want["ip"] = ip
    if aliases:
        want["aliases"] = [networking.valid_name(a, "alias") for a in aliases]
    if pid:
        held = networking.read_record(os.path.join(cdir, "network.json"))
        interfaces = held.get("Interfaces", [])
        with store.lock():
            networking.reclaim(store)
            with network.open_netlink() as nl:
                who = networking.Who(cid, str(config.get("name")), str(config.get("hostname")))
                iface = networking.attach_one(store, nl, who, len(interfaces), want, pid,
                                   procfs.process_start_time(pid) or 0)
                try:
                    with network.open_netlink_in(pid) as inside:
                        network.configure_inside(inside, iface)
                except BaseException:
                    networking.drop_lease(store, name, cid)
                    network.delete_link(nl, iface.host_ifname)  # it runs: the kernel won't
                    raise
            networking.refresh_hosts(store, root, {cid} | {lease.container
                                                for lease in store.leases(name)})
        held["Interfaces"] = [*interfaces, iface.as_dict()]
        from minidocker.state import write_json

        write_json(os.path.join(cdir, "network.json"), held)
    locked = lock_container(cdir)
    try:
        config = lifecycle.read(cdir, "config")
        config["network"]["networks"].append(want)
        lifecycle.write(cdir, "config", config)
    finally:
        if locked:
            unlock_container(cdir)


def disconnect_container(root: str, net_name: str, container: str) -> None:
    """``network disconnect``: delete the container's veth on that network (it is running, so
    the kernel would not), give back the address, update /etc/hosts."""
    from minidocker import lifecycle
    from minidocker.state import Layout, lock_container, unlock_container, write_json

    store = ipam.Store(root)
    record = store.find(net_name)
    name = str(record["Name"]) if record else net_name
    if record is None and net_name != networking.DEFAULT_NETWORK:
        raise ipam.NetworkError(f"network {net_name} not found")
    cid, pid = _running(root, container)
    cdir = Layout(root).container(cid)
    config = lifecycle.read(cdir, "config")
    plan = config.get("network") or {}
    if not any(n["name"] == name for n in plan.get("networks", [])):
        raise ipam.NetworkError(f"container {container} is not connected to network {net_name}")
    if pid:
        held = networking.read_record(os.path.join(cdir, "network.json"))
        interfaces = held.get("Interfaces", [])
        with store.lock():
            with network.open_netlink() as nl:
                for d in interfaces:
                    if d["network"] == name:
                        network.delete_link(nl, str(d["host_ifname"]))
            networking.drop_lease(store, name, cid)
            peers = {lease.container for lease in store.leases(name)}
            networking.refresh_hosts(store, root, peers | {cid})
        held["Interfaces"] = [d for d in interfaces if d["network"] != name]
        write_json(os.path.join(cdir, "network.json"), held)
    locked = lock_container(cdir)
    try:
        config = lifecycle.read(cdir, "config")
        config["network"]["networks"] = [n for n in config["network"]["networks"]
                                         if n["name"] != name]
        lifecycle.write(cdir, "config", config)
    finally:
        if locked:
            unlock_container(cdir)
