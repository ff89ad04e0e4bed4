"""Container commands: ``ps``, ``logs``, ``start``, ``stop``, ``kill``, ``restart``, ``rm``,
``wait``, ``attach``, ``exec``, ``inspect``, ``top``, ``rename``, ``create``, ``container ...``,
``system prune``; and ``run --restart`` in the foreground (:func:`run_supervised`).

Who does what (see :mod:`minidocker.supervisor`): what needs a long-lived parent (starting a
detached container, holding its output, attaching to it) is asked of the supervisor over its
socket; everything else reads the records and the kernel directly (:mod:`minidocker.lifecycle`)
and signals processes through pidfds, so ``ps``, ``inspect``, ``logs``, ``stop``, ``kill``,
``rm`` and ``exec`` work on foreground ``run`` containers too, from any terminal.

Errors print one line and exit as the docker CLI does: 125 for a bad flag or argument, 1 for
anything the daemon would refuse (no such container, not running, running...), the container's
own code for ``start -a``, ``attach``, ``wait`` and ``exec``.

Notebook: ``09_lifecycle``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from minidocker import lifecycle, state
from minidocker.commands.table import COMMANDS, parser
from minidocker.errors import MinidockerError, UsageError
from minidocker.lifecycle import Container, LifecycleError, parse_signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from minidocker.config import ContainerConfig

DEFAULT_STOP_TIMEOUT = 10  # seconds, as Docker's (engine.DEFAULT_STOP_TIMEOUT)
DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


# -- finding containers -------------------------------------------------------------------------

def _each(refs: list[str], action: Callable[[Container], str | None]) -> int:
    """Run ``action`` on each container; print what it returns; 1 if any failed (Docker)."""
    layout = state.Layout()
    failed = 0
    for ref in refs:
        try:
            out = action(Container(layout, ref))
        except MinidockerError as exc:
            print(f"minidocker: {exc}", file=sys.stderr)
            failed = max(failed, 1)
            continue
        if out is not None:
            print(out, flush=True)
    return failed


# -- signals, stop and wait ---------------------------------------------------------------------

# -- the supervisor's part ---------------------------------------------------------------------

def run_supervised(config: ContainerConfig) -> int:
    """``run --restart ...`` in the foreground: the supervisor makes the container from
    ``config`` and starts it, and we attach at once. (``run -d`` and ``create`` attach to
    nothing: :func:`minidocker.client.run_detached`, which imports far less.)"""
    from minidocker import client

    layout = state.Layout()
    cid = state.new_id()  # chosen here, so that we can find it if the supervisor dies
    interactive, tty = config.process.interactive, config.process.tty
    message = client.create_request(config, cid, start=True)
    message["attach"] = _attach_request(interactive, tty)
    try:
        sock = client.connect(layout)
        reply = client.send(sock, message)
    except client.SupervisorGone:
        return client.after_the_supervisor_died(layout, cid)
    client.print_output(reply)
    return _attached(sock, Container(layout, reply["id"]), interactive, tty, sig_proxy=True)


def _attach_request(stdin: bool, tty: bool) -> dict[str, Any]:
    request: dict[str, Any] = {"stdin": stdin, "stdout": True, "stderr": True}
    if tty and os.isatty(1):
        size = os.get_terminal_size(1)
        request.update(rows=size.lines, cols=size.columns)
    return request


def _attached(sock: Any, c: Container, stdin: bool, tty: bool, sig_proxy: bool,
              detach_keys: bytes = DETACH_KEYS) -> int:
    """Relay an attach stream until the container ends (its exit code) or we detach (0)."""
    from minidocker import attach

    pidfd = None
    if sig_proxy and not tty:
        c.reload()
        pidfd = c.pidfd()
    try:
        code = attach.relay(sock, stdin=stdin, tty=tty, pidfd=pidfd, detach_keys=detach_keys,
                            resize=lambda rows, cols: _resize(c, rows, cols))
    finally:
        sock.close()
        if pidfd is not None:
            os.close(pidfd)
    return 0 if code is None else code


def _resize(c: Container, rows: int, cols: int) -> None:
    from minidocker import client

    with contextlib.suppress(MinidockerError):
        client.request(c.layout, {"op": "resize", "id": c.id, "rows": rows, "cols": cols},
                       spawn=False)


def cmd_start(argv: list[str]) -> int:
    p = parser("minidocker start", COMMANDS["start"][1],
               "minidocker start [OPTIONS] CONTAINER [CONTAINER...]")
    p.add_argument("-a", "--attach", action="store_true",
                   help="attach STDOUT/STDERR and forward signals")
    p.add_argument("-i", "--interactive", action="store_true", help="attach STDIN")
    p.add_argument("--detach-keys", help="override the key sequence for detaching")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = p.parse_args(argv)
    if (args.attach or args.interactive) and len(args.containers) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    from minidocker import client

    if args.attach or args.interactive:
        c = Container(state.Layout(), args.containers[0])
        tty = bool(c.config.get("tty"))
        stdin = args.interactive and bool(c.config.get("interactive"))
        if stdin and tty and not os.isatty(0):
            raise UsageError("the input device is not a TTY")
        sock = client.connect(c.layout)
        client.send(sock, {"op": "start", "id": c.id, "attach": _attach_request(stdin, tty)})
        return _attached(sock, c, stdin, tty, sig_proxy=True,
                         detach_keys=_detach_keys(args.detach_keys))

    def start_one(c: Container) -> str:
        client.request(c.layout, {"op": "start", "id": c.id})
        return c.ref

    return _each(args.containers, start_one)


def cmd_attach(argv: list[str]) -> int:
    p = parser("minidocker attach", COMMANDS["attach"][1], "minidocker attach [OPTIONS] CONTAINER")
    p.add_argument("--no-stdin", action="store_true", help="do not attach STDIN")
    p.add_argument("--sig-proxy", nargs="?", const="true", default="true",
                   metavar="true|false", help="proxy all received signals to the process")
    p.add_argument("--detach-keys", help="override the key sequence for detaching")
    p.add_argument("container", metavar="CONTAINER")
    args = p.parse_args(argv)
    proxy = _bool_flag("--sig-proxy", args.sig_proxy)
    from minidocker import client

    c = Container(state.Layout(), args.container)
    status = c.status()
    if status == "paused":
        raise LifecycleError("cannot attach to a paused container, unpause it first")
    if status == "restarting":
        raise LifecycleError("cannot attach to a restarting container, wait until it is "
                             "running")
    if status != "running":
        raise LifecycleError("cannot attach to a stopped container, start it first")
    tty = bool(c.config.get("tty"))
    stdin = not args.no_stdin and bool(c.config.get("interactive"))
    if stdin and tty and not os.isatty(0):
        raise UsageError("the input device is not a TTY")
    sock = client.connect(c.layout)
    client.send(sock, {"op": "attach", "id": c.id, **_attach_request(stdin, tty)})
    return _attached(sock, c, stdin, tty, sig_proxy=proxy,
                     detach_keys=_detach_keys(args.detach_keys))


def _bool_flag(flag: str, value: str) -> bool:
    try:
        return {"true": True, "1": True, "false": False, "0": False}[value.lower()]
    except KeyError:
        raise UsageError(f'invalid argument "{value}" for {flag}: want true or false') \
            from None


def _detach_keys(spec: str | None) -> bytes:
    """Docker's ``--detach-keys``: ``ctrl-p,ctrl-q``, ``ctrl-a``, single characters."""
    if not spec:
        return DETACH_KEYS
    out = b""
    for key in spec.split(","):
        if key.startswith("ctrl-") and len(key) == 6 and key[5].lower() in \
                "abcdefghijklmnopqrstuvwxyz@[\\]^_":
            out += bytes([ord(key[5].upper()) & 0x1F])
        elif len(key) == 1:
            out += key.encode()
        else:
            raise UsageError(f"invalid detach keys ({spec}): use ctrl-<char> or <char>, "
                             "separated by commas")
    return out


# -- stop, kill, restart, rm, wait, rename ------------------------------------------------------

def _stop_args(command: str, argv: list[str]) -> tuple[argparse.Namespace, int | None]:
    """``stop`` and ``restart`` take the same flags: ``-t`` and ``-s``, then the containers.
    Returns the parsed flags and the signal (None: the image's, or SIGTERM)."""
    p = parser(f"minidocker {command}", COMMANDS[command][1],
               f"minidocker {command} [OPTIONS] CONTAINER [CONTAINER...]")
    p.add_argument("-t", "--time", "--timeout", type=int, dest="time",
                   help=f"seconds to wait before killing it (default {DEFAULT_STOP_TIMEOUT})")
    p.add_argument("-s", "--signal", help="signal to send (default: the image's, or SIGTERM)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = p.parse_args(argv)
    return args, parse_signal(args.signal) if args.signal else None


def cmd_stop(argv: list[str]) -> int:
    from minidocker import engine

    args, sig = _stop_args("stop", argv)

    def stop_one(c: Container) -> str:
        engine.stop(c, args.time, sig)
        return c.ref

    return _each(args.containers, stop_one)


def cmd_kill(argv: list[str]) -> int:
    from minidocker import engine

    p = parser("minidocker kill", COMMANDS["kill"][1],
               "minidocker kill [OPTIONS] CONTAINER [CONTAINER...]")
    p.add_argument("-s", "--signal", default="KILL", help="signal to send (default KILL)")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = p.parse_args(argv)
    sig = parse_signal(args.signal)

    def kill_one(c: Container) -> str:
        engine.kill(c, sig)
        return c.ref

    return _each(args.containers, kill_one)


def cmd_restart(argv: list[str]) -> int:
    from minidocker import engine

    args, sig = _stop_args("restart", argv)
    from minidocker import client

    def restart_one(c: Container) -> str:
        engine.stop(c, args.time, sig)
        client.request(c.layout, {"op": "start", "id": c.id})
        return c.ref

    return _each(args.containers, restart_one)


def cmd_rm(argv: list[str]) -> int:
    from minidocker import engine

    p = parser("minidocker rm", COMMANDS["rm"][1],
               "minidocker rm [OPTIONS] CONTAINER [CONTAINER...]")
    p.add_argument("-f", "--force", action="store_true",
                   help="force the removal of a running container (uses SIGKILL)")
    p.add_argument("-v", "--volumes", action="store_true", help="remove anonymous volumes")
    p.add_argument("-l", "--link", action="store_true", help="remove the specified link")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = p.parse_args(argv)

    def rm_one(c: Container) -> str:
        engine.remove(c, args.force)
        return c.ref

    return _each(args.containers, rm_one)


def cmd_wait(argv: list[str]) -> int:
    from minidocker import engine

    p = parser("minidocker wait", COMMANDS["wait"][1],
               "minidocker wait CONTAINER [CONTAINER...]")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    args = p.parse_args(argv)
    return _each(args.containers, lambda c: str(engine.wait(c)))


def cmd_rename(argv: list[str]) -> int:
    p = parser("minidocker rename", COMMANDS["rename"][1], "minidocker rename CONTAINER NEW_NAME")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")
    args = p.parse_args(argv)
    new = state.validate_name(args.new_name)
    c = Container(state.Layout(), args.container)
    if new == c.name:
        raise LifecycleError(f'renaming a container with the same name as its current name: '
                             f'"{new}"')
    with lifecycle.locked(c.dir):
        config = lifecycle.read(c.dir, "config")
        old = str(config.get("name") or "")
        try:
            c.layout.claim_name(new, c.id)
        except MinidockerError as exc:
            raise LifecycleError(str(exc)) from None
        config["name"] = new
        lifecycle.write(c.dir, "config", config)
        if old:
            c.layout.release_name(old, c.id)
    return 0


# -- ps -----------------------------------------------------------------------------------------

PS_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t" \
            "{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES", "Label": "LABEL"}
FILTERS = ("status", "name", "id")


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
        filters.setdefault(key, []).append(value)
    return filters


def matches(filters: dict[str, list[str]], cid: str, name: str, status: str) -> bool:
    """Docker's filter rules: values of one key are alternatives, keys must all match; a name
    matches as a substring (Docker's is a regular expression; a substring is one too)."""
    checks = {"status": lambda v: v == status, "name": lambda v: v.lstrip("/") in name,
              "id": lambda v: cid.startswith(v)}
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
                   help="filter output based on conditions provided (status=, name=, id=)")
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
    rows = [r for r in rows if matches(filters, r[0], str(r[1].get("name") or ""), r[3])]
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


# -- logs ---------------------------------------------------------------------------------------

def cmd_logs(argv: list[str]) -> int:
    p = parser("minidocker logs", COMMANDS["logs"][1], "minidocker logs [OPTIONS] CONTAINER")
    p.add_argument("-f", "--follow", action="store_true", help="follow log output")
    p.add_argument("-n", "--tail", default="all",
                   help='number of lines to show from the end of the logs (default "all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    p.add_argument("--since", help="show logs since a timestamp (2013-01-02T13:23:37Z) or a "
                                   "relative time (42m)")
    p.add_argument("--until", help="show logs before a timestamp or relative time")
    p.add_argument("--details", action="store_true", help="show extra details")
    p.add_argument("container", metavar="CONTAINER")
    args = p.parse_args(argv)
    from minidocker import logs

    tail = -1 if args.tail == "all" else _int(args.tail, "--tail")
    now_ns = time.time_ns()
    since = logs.parse_timestamp(args.since, now_ns) if args.since else 0
    until = logs.parse_timestamp(args.until, now_ns) if args.until else 0
    c = Container(state.Layout(), args.container)
    path = logs.log_path(c.dir)
    entries, offset = logs.read(path, since, until, tail)
    out, err = sys.stdout.buffer, sys.stderr.buffer

    def show(entry: tuple[int, str, bytes]) -> None:
        t, stream, data = entry
        target = err if stream == "stderr" else out
        if args.timestamps:
            target.write(lifecycle.format_time(t, fixed=True).encode() + b" ")
        target.write(data)

    for entry in entries:
        show(entry)
    out.flush()
    err.flush()
    if args.follow and not (until and until < now_ns):
        def still_running() -> bool:
            try:
                c.reload()
            except MinidockerError:
                return False
            return c.status() in ("running", "paused", "restarting")

        try:
            for entry in logs.follow(path, offset, still_running, since, until):
                show(entry)
                out.flush()
                err.flush()
        except BrokenPipeError:
            return 0
    return 0


def _int(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "{flag}": not a number') from None
    return value


# -- exec ---------------------------------------------------------------------------------------

def _exec_flags() -> tuple[Any, ...]:
    from minidocker.flags import Flag

    return (
        Flag("detach", "d", help="detached mode: run command in the background"),
        Flag("interactive", "i", help="keep STDIN open even if not attached"),
        Flag("tty", "t", help="allocate a pseudo-TTY"),
        Flag("env", "e", "list", "set environment variables"),
        Flag("env-file", kind="list", help="read in a file of environment variables"),
        Flag("user", "u", "value", "username or UID (format: <name|uid>[:<group|gid>])"),
        Flag("workdir", "w", "value", "working directory inside the container"),
        Flag("detach-keys", kind="value", help="override the key sequence for detaching"),
        Flag("privileged", help="give extended privileges to the command (not supported)"),
    )


def cmd_exec(argv: list[str]) -> int:
    from minidocker import config, engine, flags

    table = _exec_flags()
    args = flags.parse_command(table, argv, "exec", COMMANDS["exec"][1],
                               ("CONTAINER", "COMMAND"), "CONTAINER COMMAND [ARG...]")
    if args is None:
        return 0
    if args.privileged:
        raise UsageError("--privileged is not supported by minidocker exec")
    c = engine.check_exec(Container(state.Layout(), args.positional[0]))
    if args.interactive and args.tty and not args.detach and not os.isatty(0):
        raise UsageError("the input device is not a TTY")
    process = config.Process(args=args.positional[1:], env=args.env, user=args.user,
                             workdir=args.workdir, tty=args.tty, interactive=args.interactive)
    return engine.exec(c, process, env_files=args.env_file, detach=args.detach)


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
        "Mounts": [],
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
        },
        "NetworkSettings": network,
    }


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


# -- prune --------------------------------------------------------------------------------------

def _size(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def human_size(n: float) -> str:
    """Docker's ``units.HumanSize`` (decimal units, 3 significant digits)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            text = f"{n:.3g}"
            return f"{text}{unit}"
        n /= 1000
    return f"{n}B"


def _confirm(question: str, force: bool) -> bool:
    if force:
        return True
    print(question + "\nAre you sure you want to continue? [y/N] ", end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def prune_stopped(layout: state.Layout) -> tuple[list[str], int]:
    """Remove every container that is not running: ``(ids, bytes reclaimed)``."""
    removed, reclaimed = [], 0
    for cid, _config, _record, _status in list_containers(layout):
        c = Container(layout, cid)
        try:
            with lifecycle.locked(c.dir):
                c.reload()
                if c.status() in ("running", "paused", "restarting"):
                    continue
                size = _size(os.path.join(c.dir, "upper"))
                from minidocker import container

                container.teardown(layout, cid, c.name)
        except MinidockerError:
            continue
        removed.append(cid)
        reclaimed += size
    return removed, reclaimed


def cmd_container(argv: list[str]) -> int:
    """``container ls|ps|list|prune|inspect|...``: Docker's management command."""
    sub = argv[0] if argv else ""
    aliases = {"ls": "ps", "list": "ps", "ps": "ps", "remove": "rm"}
    if sub == "prune":
        return container_prune(argv[1:])
    name = aliases.get(sub, sub)
    if name in CONTAINER_SUBCOMMANDS:
        from minidocker.commands import table

        handler = table.function(name)
        assert handler is not None
        return handler(argv[1:])
    if sub in ("", "-h", "--help"):
        print("usage: minidocker container COMMAND\n\nCommands:\n" + "\n".join(
            f"  {n:<9} {COMMANDS[n][1]}" for n in CONTAINER_SUBCOMMANDS) +
            "\n  prune     Remove all stopped containers")
        return 0 if sub else 1
    raise UsageError(f"'{sub}' is not a minidocker container command")


CONTAINER_SUBCOMMANDS = ("attach", "create", "exec", "inspect", "kill", "logs", "ps", "rename",
                         "restart", "rm", "run", "start", "stop", "top", "wait")


def container_prune(argv: list[str]) -> int:
    p = parser("minidocker container prune", "Remove all stopped containers",
               "minidocker container prune [OPTIONS]")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    args = p.parse_args(argv)
    if not _confirm("WARNING! This will remove all stopped containers.", args.force):
        return 0
    removed, reclaimed = prune_stopped(state.Layout())
    if removed:
        print("Deleted Containers:")
        for cid in removed:
            print(cid)
        print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def cmd_system(argv: list[str]) -> int:
    from minidocker import engine

    sub = argv[0] if argv else ""
    if sub != "prune":
        raise UsageError("usage: minidocker system prune [-f]" if not sub else
                         f"'{sub}' is not a minidocker system command (try: prune)")
    p = parser("minidocker system prune", "Remove unused data, after making the records agree "
               "with the kernel", "minidocker system prune [OPTIONS]")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    p.add_argument("-a", "--all", action="store_true", help="(accepted; images are kept)")
    args = p.parse_args(argv[1:])
    if not _confirm("WARNING! This will remove:\n  - all stopped containers\n"
                    "and make every container record agree with the kernel.", args.force):
        return 0
    layout = state.Layout()
    for line in engine.reconcile(layout):
        print(f"Reconciled: {line}")
    removed, reclaimed = prune_stopped(layout)
    if removed:
        print("Deleted Containers:")
        for cid in removed:
            print(cid)
        print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0
