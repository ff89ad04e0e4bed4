"""What ``ps``, ``inspect`` and ``top`` show: the records and the kernel's word, under Docker's
field names and formats (Go templates: :mod:`minidocker.gotemplate`; the columns: Go's
tabwriter as Docker uses it).

Notebook: ``09_lifecycle``.
"""

from __future__ import annotations

import os
import sys
import time

from minidocker import lifecycle, state
from minidocker.commands.table import COMMANDS, parser
from minidocker.errors import MinidockerError, UsageError
from minidocker.lifecycle import Container, LifecycleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# -- ps -----------------------------------------------------------------------------------------

PS_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t" \
            "{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES", "Label": "LABEL"}
FILTERS = ("status", "name", "id", "health")
HEALTH_STATES = ("starting", "healthy", "unhealthy", "none")  # minidocker.health.STATUSES


def ellipsis(text: str, width: int) -> str:
    """Docker's ``formatter.Ellipsis``: cut to ``width`` characters, the last one ``…``."""
    return text if len(text) <= width else text[:width - 1] + "…"


def ps_ports(net: dict[str, Any]) -> str:
    """``0.0.0.0:8080->80/tcp, :::8080->80/tcp``: the published ports, as ``ps`` shows them
    (from the container's ``network.json``, see :mod:`minidocker.networking`)."""
    shown = []
    for b in net.get("Ports") or []:
        ip, port = str(b.get("host_ip")), b.get("host_port")
        host = f":::{port}" if ip == "::" else f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        shown.append(f"{host}->{b.get('container_port')}/{b.get('proto')}")
    return ", ".join(shown)


def ps_row(cid: str, config: dict[str, Any], record: dict[str, Any], status: str,
           now_ns: int, trunc: bool = True, net: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row of ``ps``, the fields of Docker's ``ContainerContext``."""
    from _json import encode_basestring as quote  # Go's strconv.Quote, near enough; no re

    command = " ".join(config.get("argv") or [])
    created = lifecycle.parse_time(str(record.get("Created") or record.get("StartedAt") or ""))
    network = config.get("network")
    net = net or {}
    attached = sorted({str(i.get("network")) for i in net.get("Interfaces") or []})
    return {
        "ID": cid[:12] if trunc else cid,
        "Image": str(config.get("image") or ""),
        "Command": quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z",
                                   time.localtime(created / 1e9)) if created else "",
        "RunningFor": lifecycle.human_duration((now_ns - created) / 1e9) + " ago"
        if created else "",
        "Ports": ps_ports(net),
        "State": status,
        "Status": lifecycle.status_text(record, status, now_ns),
        "Size": "0B",
        "Names": str(config.get("name") or ""),
        "Labels": "",
        "Label": "",
        "Mounts": "",
        "Networks": ",".join(attached) or (str(network.get("mode") or "")
                                           if isinstance(network, dict) else "none"),
        "LocalVolumes": "0",
    }


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f'bad format of filter (expected name=value): "{item}"')
        key = key.strip().lower()
        if key not in FILTERS:
            raise LifecycleError(f"invalid filter '{key}'")
        if key == "status" and value not in lifecycle.STATES:
            raise LifecycleError(f"invalid filter 'status={value}': use one of "
                                 + ", ".join(lifecycle.STATES))
        if key == "health" and value not in HEALTH_STATES:
            raise LifecycleError(f"Unrecognised filter value for health: {value}")
        filters.setdefault(key, []).append(value)
    return filters


def matches(filters: dict[str, list[str]], cid: str, name: str, status: str,
            health_status: str = "none") -> bool:
    """Docker's filter rules: values of one key are alternatives, keys must all match; a name
    matches as a substring (Docker's is a regular expression; a substring is one too).
    ``health_status``: :func:`minidocker.health.status_of` the container's State.Health."""
    checks = {"status": lambda v: v == status, "name": lambda v: v.lstrip("/") in name,
              "id": lambda v: cid.startswith(v), "health": lambda v: v == health_status}
    return all(any(checks[key](v) for v in values) for key, values in filters.items())


def list_containers(layout: state.Layout) -> list[tuple[str, dict[str, Any], dict[str, Any],
                                                        str]]:
    """``(id, config, state, status)`` of every container, newest first."""
    alive = lifecycle.supervisor_pid(layout) is not None
    rows = []
    for cid, record in lifecycle.iter_records(layout):
        config = lifecycle.read(layout.container(cid), "config", {})
        rows.append((cid, config, record, lifecycle.status(record, alive)))
    rows.sort(key=lambda row: str(row[2].get("Created") or row[2].get("StartedAt") or ""),
              reverse=True)
    return rows


def cmd_ps(argv: list[str]) -> int:
    p = parser("minidocker ps", COMMANDS["ps"][1], "minidocker ps [OPTIONS]")
    p.add_argument("-a", "--all", action="store_true", help="show all containers")
    p.add_argument("-q", "--quiet", action="store_true", help="only display container IDs")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="filter output based on conditions provided (status=, name=, id=, "
                   "health=)")
    p.add_argument("-n", "--last", type=int, default=-1,
                   help="show n last created containers (includes all states)")
    p.add_argument("-l", "--latest", action="store_true",
                   help="show the latest created container (includes all states)")
    p.add_argument("--format", help="format output using a Go template")
    p.add_argument("-s", "--size", action="store_true", help="display total file sizes")
    args = p.parse_args(argv)
    filters = parse_filters(args.filter)
    fmt = "{{.ID}}" if args.quiet else (args.format or PS_FORMAT)
    from minidocker import gotemplate

    table = fmt.startswith("table")
    body = fmt[len("table"):].lstrip(" ") if table else fmt
    try:
        template = gotemplate.parse(body)
        now_ns = time.time_ns()
        probe = gotemplate.Strict(ps_row("0" * 64, {}, {}, "created", now_ns),
                                  "*formatter.ContainerContext")
        template.render(probe)  # unknown fields fail now, as Docker checks before listing
    except gotemplate.TemplateError as exc:
        raise LifecycleError(f"failed to parse template: {exc}") from None
    layout = state.Layout()
    limit = 1 if args.latest and args.last < 0 else args.last
    rows = list_containers(layout)
    if limit >= 0:
        rows = rows[:limit]
    elif not args.all:
        rows = [r for r in rows if r[3] in ("running", "paused", "restarting")]
    rows = [r for r in rows if matches(filters, r[0], str(r[1].get("name") or ""), r[3],
                                       _health_status(r[2]))]
    lines = []
    if table:
        lines.append(template.render(gotemplate.Strict(PS_HEADERS,
                                                       "*formatter.ContainerContext")))
    for cid, config, record, status in rows:
        net = lifecycle.read(layout.container(cid), "network", {}) \
            if status in ("running", "paused") else {}
        row = gotemplate.Strict(ps_row(cid, config, record, status, now_ns,
                                       trunc=not args.no_trunc, net=net),
                                "*formatter.ContainerContext")
        lines.append(template.render(row))
    out = tabulate(lines) if table else lines
    for line in out:
        print(line)
    return 0


def _health_status(record: dict[str, Any]) -> str:
    if not record.get("Health"):
        return "none"
    from minidocker import health

    return health.status_of(record["Health"])


def tabulate(lines: list[str], minwidth: int = 10, padding: int = 3) -> list[str]:
    """Go's tabwriter as Docker uses it (minwidth 10, padding 3): tab-separated cells padded
    into columns; the last cell of a line is not padded."""
    cells = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for row in cells:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, 0), max(len(cell) + padding, minwidth))
    return ["".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + row[-1]
            for row in cells]


# -- inspect, top -------------------------------------------------------------------------------

def inspect_container(c: Container) -> dict[str, Any]:
    """The container as ``docker inspect`` shows it, under Docker's field names."""
    from minidocker import logs

    config, record, host = c.config, c.state, c.hostconfig
    status = c.status()
    running = status in ("running", "paused", "restarting")
    argv = list(config.get("argv") or [])
    kinds = list(config.get("namespaces") or [])

    def mode(kind: str) -> str:
        return "" if kind in kinds else "host"

    upper = os.path.join(c.dir, "upper")
    log_path = logs.log_path(c.dir)
    pid = int(record.get("Pid") or 0) if status in ("running", "paused") else 0
    lowers = host.get("LowerDirs") or []
    network = network_settings(lifecycle.read(c.dir, "network", {}) if pid else {}, pid)
    return {
        "Id": c.id,
        "Created": record.get("Created") or record.get("StartedAt") or lifecycle.ZERO_TIME,
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": {
            "Status": status,
            "Running": running,
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": bool(record.get("OOMKilled")),
            "Dead": False,
            "Pid": pid,
            "ExitCode": lifecycle.exit_code(record),
            "Error": str(record.get("Error") or ("" if status != "exited" or
                                                 record.get("Status") == "exited"
                                                 else lifecycle.UNSEEN_END)),
            "StartedAt": record.get("StartedAt") or lifecycle.ZERO_TIME,
            "FinishedAt": record.get("FinishedAt") or lifecycle.ZERO_TIME,
            **({"Health": record["Health"]} if record.get("Health") else {}),
        },
        "Image": config.get("image_id") or "",
        "ResolvConfPath": os.path.join(c.dir, "resolv.conf"),
        "HostnamePath": os.path.join(c.dir, "hostname"),
        "HostsPath": os.path.join(c.dir, "hosts"),
        "LogPath": log_path if os.path.exists(log_path) else "",
        "Name": "/" + c.name,
        "RestartCount": int(record.get("RestartCount") or 0),
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": {
            "AutoRemove": bool(config.get("remove")),
            "ReadonlyRootfs": bool(config.get("read_only")),
            "RestartPolicy": host.get("RestartPolicy") or {"Name": "no",
                                                           "MaximumRetryCount": 0},
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": str((config.get("network") or {}).get("mode") or "none")
            if "net" in kinds or (config.get("network") or {}).get("mode") else "host",
            "PidMode": mode("pid"),
            "UTSMode": mode("uts"),
            "IpcMode": "private" if "ipc" in kinds else "host",
            "CgroupnsMode": "private" if "cgroup" in kinds else "host",
            "Init": bool(config.get("init")) or None,
            "CgroupParent": str(config.get("cgroup_parent") or ""),
            **_resources(config),
        },
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(lowers), "UpperDir": upper,
            "WorkDir": os.path.join(c.dir, "work"), "MergedDir": os.path.join(c.dir, "merged")}},
        "Mounts": _mounts(config),
        "Config": {
            "Hostname": config.get("hostname") or "",
            "Domainname": "",
            "User": "" if str(config.get("user") or "0") == "0" else config.get("user"),
            "AttachStdin": False,
            "AttachStdout": not host.get("Detached", bool(record.get("Supervised"))),
            "AttachStderr": not host.get("Detached", bool(record.get("Supervised"))),
            "Tty": bool(config.get("tty")),
            "OpenStdin": bool(config.get("interactive")),
            "StdinOnce": False,
            "Env": [f"{k}={v}" for k, v in (config.get("env") or {}).items()],
            "Cmd": argv,
            "Image": config.get("image") or "",
            "Volumes": None,
            "WorkingDir": config.get("workdir") or "",
            "Entrypoint": None,
            "OnBuild": None,
            "Labels": {},
            "StopSignal": host.get("StopSignal") or config.get("stop_signal") or None,
            **({"Healthcheck": config["healthcheck"]} if config.get("healthcheck") else {}),
        },
        "NetworkSettings": network,
    }


def _mounts(config: dict[str, Any]) -> list[dict[str, Any]]:
    if not config.get("mounts"):
        return []
    from minidocker import container_mounts

    return container_mounts.docker_mounts(config["mounts"])


def network_settings(net: dict[str, Any], pid: int) -> dict[str, Any]:
    """``NetworkSettings`` as Docker shows it, from the container's ``network.json``."""
    networks = {str(i.get("network")): {"IPAddress": i.get("address") or "",
                                        "IPPrefixLen": i.get("prefixlen") or 0,
                                        "Gateway": i.get("gateway") or ""}
                for i in net.get("Interfaces") or []}
    ports: dict[str, list[dict[str, str]]] = {}
    for b in net.get("Ports") or []:
        ports.setdefault(f"{b.get('container_port')}/{b.get('proto')}", []).append(
            {"HostIp": str(b.get("host_ip")), "HostPort": str(b.get("host_port"))})
    first = next(iter(networks.values()), {})
    return {"Bridge": "", "SandboxID": "", "SandboxKey": f"/proc/{pid}/ns/net" if pid else "",
            "Ports": ports, "IPAddress": first.get("IPAddress", ""),
            "IPPrefixLen": first.get("IPPrefixLen", 0), "Gateway": first.get("Gateway", ""),
            "MacAddress": "", "Networks": networks}


def _resources(config: dict[str, Any]) -> dict[str, Any]:
    """The cgroup limits under HostConfig's names (recorded by :mod:`minidocker.cgroups`)."""
    resources = config.get("resources")
    return dict(resources) if isinstance(resources, dict) else {}


def cmd_inspect(argv: list[str]) -> int:
    p = parser("minidocker inspect", COMMANDS["inspect"][1],
               "minidocker inspect [OPTIONS] NAME|ID [NAME|ID...]")
    p.add_argument("-f", "--format", help="format output using a Go template")
    p.add_argument("-s", "--size", action="store_true", help="display total file sizes")
    p.add_argument("--type", choices=("container",), help="only inspect containers")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    args = p.parse_args(argv)
    return inspect_command(args.names, args.format)


def inspect_command(names: list[str], fmt: str | None) -> int:
    import json

    from minidocker import gotemplate

    template = None
    if fmt:
        try:
            template = gotemplate.parse(fmt)
        except gotemplate.TemplateError as exc:
            raise LifecycleError(f"template parsing error: {exc}") from None
    layout = state.Layout()
    found, failed = [], 0
    for name in names:
        try:
            found.append(inspect_container(Container(layout, name)))
        except MinidockerError as exc:
            message = f"no such object: {name}" if "no such container" in str(exc) else exc
            print(f"minidocker: {message}", file=sys.stderr)
            failed = 1
    if template is None:
        print(json.dumps(found, indent=4, ensure_ascii=False))
        return failed
    for item in found:
        try:
            print(template.render(item))
        except gotemplate.TemplateError as exc:
            raise LifecycleError(f"template parsing error: {exc}") from None
    return failed


def cmd_top(argv: list[str]) -> int:
    p = parser("minidocker top", COMMANDS["top"][1], "minidocker top CONTAINER [ps OPTIONS]")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs="*", metavar="ps OPTIONS")
    args, extra = p.parse_known_args(argv)
    c = Container(state.Layout(), args.container)
    if c.status() not in ("running", "paused"):
        raise LifecycleError(f"container {c.id} is not running")
    pids = set(container_pids(c))
    import subprocess

    ps_args = [*args.ps_args, *extra] or ["-ef"]
    try:
        result = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LifecycleError("top needs ps(1) (Debian package procps)") from None
    if result.returncode != 0:
        raise LifecycleError(f"ps {' '.join(ps_args)}: {result.stderr.strip()}")
    lines = result.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise LifecycleError(f"ps {' '.join(ps_args)}: its output has no PID column")
    column = header.index("PID")
    print(lines[0])
    for line in lines[1:]:
        fields = line.split(None, len(header) - 1)
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            print(line)
    return 0


def container_pids(c: Container) -> list[int]:
    """Host PIDs of the container's processes: those in its PID namespace (with ``--pid host``,
    its first process and that one's descendants)."""
    pid = int(c.state.get("Pid") or 0)
    if "pid" in (c.config.get("namespaces") or []):
        try:
            ns = os.readlink(f"/proc/{pid}/ns/pid")
        except FileNotFoundError:
            return []
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.readlink(f"/proc/{name}/ns/pid") == ns:
                        found.append(int(name))
                except OSError:
                    continue
        return sorted(found)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo += [int(p) for p in f.read().split()]
        except OSError:
            continue
    return sorted(found)
