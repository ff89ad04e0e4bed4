"""Container lifecycle commands: ``start``, ``stop``, ``kill``, ``restart``, ``rm``, ``wait``,
``rename``, ``container ...``, ``container prune``, ``system prune``. Their neighbours:
:mod:`minidocker.commands.listing` (``ps``, ``inspect``, ``top``),
:mod:`minidocker.commands.attaching` (``attach``, ``logs``, ``exec``, ``run --restart``) and
:mod:`minidocker.commands.run` (``run``, ``create``).

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

import os
import sys

from minidocker import lifecycle, state
from minidocker.commands.attaching import (  # noqa: F401 -- here for old callers
    DETACH_KEYS,
    _attach_request,
    _attached,
    _detach_keys,
    run_supervised,
)
from minidocker.commands.listing import (  # noqa: F401 -- here for old callers
    ellipsis,
    inspect_container,
    list_containers,
    matches,
    network_settings,
    parse_filters,
    ps_ports,
    ps_row,
    tabulate,
)
from minidocker.commands.table import COMMANDS, parser
from minidocker.errors import MinidockerError, UsageError
from minidocker.lifecycle import Container, LifecycleError, parse_signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

DEFAULT_STOP_TIMEOUT = 10  # seconds, as Docker's (engine.DEFAULT_STOP_TIMEOUT)


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
        engine.remove(c, args.force, args.volumes)
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
