"""Streams to and from a container: ``attach``, ``logs``, ``exec``; and ``run --restart`` in the
foreground (:func:`run_supervised`), which attaches to the container the supervisor starts.

A detached container's output is held by its parent, the supervisor (:mod:`minidocker.supervisor`),
so ``attach`` asks it over its socket and relays the stream (:mod:`minidocker.attach`); ``logs``
reads the json-file log (:mod:`minidocker.logs`); ``exec`` enters the running container
(:func:`minidocker.engine.exec`).

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
from minidocker.lifecycle import Container, LifecycleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minidocker.config import ContainerConfig

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


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
