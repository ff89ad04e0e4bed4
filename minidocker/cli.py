"""The ``minidocker`` command: Docker's command line, over minidocker's mechanisms.

Only the parser of the command being run is built, and each command imports what it needs
when it runs: ``minidocker run --rm busybox true`` has a start-up budget measured in
milliseconds (see ``benchmarks/``).

Errors print one line, ``minidocker: <what went wrong>``, and exit with Docker's codes: 125 for
a runtime error or bad flag, 126/127 when the command can't be invoked or found, otherwise the
container's own status.
"""

from __future__ import annotations

import os
import sys

from minidocker.commands import table
from minidocker.commands.table import COMMANDS, parser  # noqa: F401 -- here for readers
from minidocker.errors import EXIT_RUNTIME, MinidockerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def __getattr__(name: str) -> object:
    """``cli.config_from_flags``, ``cli.cmd_run``...: ``run``'s face moved to
    :mod:`minidocker.commands.run`; found there, importing it only when asked."""
    from minidocker.commands import run

    moved = {"_run_flags": "run_flags", "_resource_flags": "resource_flags",
             "_security_flags": "security_flags", "_mount_flags": "mount_flags",
             "_network_flags": "network_flags", "_setup_trace": "setup_trace"}
    if name in moved or name in ("cmd_run", "config_from_flags", "SUBID_ENV"):
        return getattr(run, moved.get(name, name))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cmd_doctor(argv: list[str]) -> int:
    from minidocker import doctor

    return doctor.main(argv)


def cmd_version(argv: list[str]) -> int:
    from minidocker import __version__

    print(f"minidocker {__version__}")
    return 0


def handler(name: str) -> Callable[[list[str]], int] | None:
    """The function behind command ``name``, importing its module only now."""
    if name not in COMMANDS:
        return None
    if COMMANDS[name][0] is None:
        return globals()["cmd_" + name.replace("-", "_")]  # type: ignore[no-any-return,unused-ignore]
    return table.function(name)


def usage() -> str:
    lines = ["usage: minidocker [--root DIR] COMMAND [OPTIONS]", "", "Commands:"]
    lines += [f"  {name:<9} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run 'minidocker COMMAND --help' for more on a command.",
              "State lives under --root, $MINIDOCKER_ROOT, or /var/lib/minidocker."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--root"] and len(argv) > 1:
        os.environ["MINIDOCKER_ROOT"] = os.path.abspath(argv[1])
        argv = argv[2:]
    elif argv[:1] and argv[0].startswith("--root="):
        os.environ["MINIDOCKER_ROOT"] = os.path.abspath(argv[0].split("=", 1)[1])
        argv = argv[1:]
    if argv[:1] in (["-v"], ["--version"]):
        argv = ["version"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 1
    command = handler(argv[0])
    if command is None:
        print(f"minidocker: '{argv[0]}' is not a minidocker command.\n\n{usage()}",
              file=sys.stderr)
        return EXIT_RUNTIME
    try:
        code = command(argv[1:])
        if argv[0] == "run" and as_program:
            # Skip the interpreter's clean-up (~2 ms of every run); nothing is left to flush
            # but the standard streams, and the container is already gone.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except MinidockerError as exc:
        print(f"minidocker: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        print(f"minidocker: {exc}" + (f" ({notes})" if notes else ""), file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130
