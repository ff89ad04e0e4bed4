"""Network commands: ``network create/ls/inspect/rm/connect/disconnect/prune`` and ``port``.

A user-defined network is a bridge of its own (``br-<id>``) with its own subnet; containers on
it find each other by name through their managed /etc/hosts. The predefined networks are
Docker's: ``bridge`` (``minidocker0``, made on first use), ``host`` and ``none``.
Everything is done by :mod:`minidocker.networking`; this module parses and prints.

Notebook: ``06_networking``.
"""

from __future__ import annotations

import sys

from minidocker import ipam, networking
from minidocker.cli import COMMANDS, parser
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
    record = networking.create_network(_root(), args.name, driver=args.driver,
                                       subnet=args.subnet, gateway=args.gateway,
                                       internal=args.internal)
    print(record["Id"])
    return 0


def _ls(argv: list[str]) -> int:
    p = parser("minidocker network ls", SUBCOMMANDS["ls"])
    p.add_argument("-q", "--quiet", action="store_true", help="only display network IDs")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate the output")
    args = p.parse_args(argv)
    rows = networking.list_networks(_root())
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
            found.append(networking.inspect_network(_root(), name))
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
            networking.remove_network_by_name(_root(), name)
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
    networking.connect_container(_root(), args.network, args.container, ip=args.ip,
                                 aliases=args.alias)
    return 0


def _disconnect(argv: list[str]) -> int:
    p = parser("minidocker network disconnect", SUBCOMMANDS["disconnect"],
               "minidocker network disconnect [OPTIONS] NETWORK CONTAINER")
    p.add_argument("-f", "--force", action="store_true", help="force the disconnection")
    p.add_argument("network")
    p.add_argument("container")
    args = p.parse_args(argv)
    networking.disconnect_container(_root(), args.network, args.container)
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
    removed = networking.prune_networks(_root())
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
