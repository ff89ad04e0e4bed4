"""The ``minidocker`` command: Docker's command line, over minidocker's mechanisms.

Only the parser of the command being run is built, and each command imports what it needs
when it runs: ``minidocker run --rm busybox true`` has a start-up budget measured in
milliseconds (see ``benchmarks/``).

Errors print one line, ``minidocker: <what went wrong>``, and exit with Docker's codes: 125 for
a runtime error or bad flag, 126/127 when the command can't be invoked or found, otherwise the
container's own status.
"""

from __future__ import annotations

import argparse
import os
import sys

from minidocker.errors import EXIT_RUNTIME, MinidockerError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

COMMANDS = {
    "run": "Create and run a new container from an image",
    "import": "Import the contents from a tarball to create a filesystem image",
    "images": "List images",
    "doctor": "Check that this host can run containers, with a fix for each problem",
    "version": "Show the minidocker version",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _run_parser() -> _Parser:
    p = _Parser(prog="minidocker run", add_help=False,
                usage="minidocker run [OPTIONS] IMAGE [COMMAND] [ARG...]",
                description=COMMANDS["run"])
    p.add_argument("--help", action="help", help="show this help")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-i", "--interactive", action="store_true", help="keep STDIN open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("--name", help="assign a name to the container")
    p.add_argument("-e", "--env", action="append", default=[], help="set environment variables")
    p.add_argument("--env-file", action="append", default=[], help="read a file of variables")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="username or UID (format: <name|uid>[:<group|gid>])")
    p.add_argument("-h", "--hostname", help="container host name")
    p.add_argument("--entrypoint", help="overwrite the default ENTRYPOINT of the image")
    for kind in ("pid", "uts", "ipc"):
        p.add_argument(f"--{kind}", choices=["host", "private"], default="private",
                       help=f"'host' shares the host's {kind} namespace (weakens isolation)")
    p.add_argument("--cgroupns", choices=["host", "private"], default="private",
                   help="'host' shares the host's cgroup namespace")
    p.add_argument("--init", action="store_true",
                   help="run an init inside the container that forwards signals and reaps "
                        "processes")
    p.add_argument("--trace", action="store_true",
                   help="print every kernel-facing step as it happens (to stderr)")
    p.add_argument("--trace-json", metavar="FILE",
                   help="append every step as a JSON line to FILE (for notebooks)")
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return p


def _setup_trace(args: argparse.Namespace) -> None:
    if not (args.trace or args.trace_json):
        return
    import json

    from minidocker import trace

    out = open(args.trace_json, "a") if args.trace_json else None  # noqa: SIM115 -- until exit

    def sink(ev: trace.Event) -> None:
        if args.trace:
            print(trace.format_event(ev), file=sys.stderr, flush=True)
        if out is not None:
            out.write(json.dumps(ev) + "\n")
            out.flush()

    trace.set_sink(sink)


def cmd_run(argv: list[str]) -> int:
    args = _run_parser().parse_args(argv)
    if args.interactive and args.tty and not os.isatty(0):
        raise UsageError("the input device is not a TTY")
    _setup_trace(args)
    from minidocker import container, namespaces, spec, state
    from minidocker.store import ImageStore

    layout = state.Layout()
    image = ImageStore(layout.root).resolve(args.image)
    lowers = [str(p) for p in image.layer_dirs()]
    cid = state.new_id()
    plan = spec.make_spec(
        cid=cid, name=state.validate_name(args.name) if args.name else state.random_name(),
        image_ref=args.image, image_id=image.id, image_config=image.config.get("config") or {},
        args=args.command, entrypoint=args.entrypoint, env=args.env, env_files=args.env_file,
        workdir=args.workdir, user=args.user, hostname=args.hostname, tty=args.tty,
        interactive=args.interactive, init=args.init, remove=args.rm,
        namespaces=[k for k in namespaces.DEFAULT_KINDS if _private(args, k)])
    return container.run(plan, lowers, layout)


def _private(args: argparse.Namespace, kind: str) -> bool:
    option = {"pid": args.pid, "uts": args.uts, "ipc": args.ipc, "cgroup": args.cgroupns}
    return option.get(kind, "private") == "private"


def cmd_import(argv: list[str]) -> int:
    p = _Parser(prog="minidocker import", usage="minidocker import FILE|- REPOSITORY[:TAG]",
                description=COMMANDS["import"])
    p.add_argument("file", help="a rootfs tarball (plain or gzip), or - for stdin")
    p.add_argument("reference", help="the name to give the image")
    args = p.parse_args(argv)
    from minidocker import state
    from minidocker.store import ImageStore

    src = sys.stdin.buffer if args.file == "-" else args.file
    image = ImageStore(state.Layout().root).import_tarball(src, args.reference)
    print(image.id)
    return 0


def cmd_images(argv: list[str]) -> int:
    p = _Parser(prog="minidocker images", description=COMMANDS["images"])
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    args = p.parse_args(argv)
    from minidocker import state
    from minidocker.store import ImageStore

    images = ImageStore(state.Layout().root).list_images()
    if not args.quiet:
        print(f"{'REPOSITORY':<30} {'TAG':<12} {'IMAGE ID':<14}")
    for image in images:
        short = image.id.removeprefix("sha256:")[:12]
        if args.quiet:
            print(short)
            continue
        repo, _, tag = (image.ref or "<none>:<none>").rpartition(":")
        print(f"{repo:<30} {tag:<12} {short:<14}")
    return 0


def cmd_doctor(argv: list[str]) -> int:
    from minidocker import doctor

    return doctor.main(argv)


def cmd_version(argv: list[str]) -> int:
    from minidocker import __version__

    print(f"minidocker {__version__}")
    return 0


HANDLERS: dict[str, Callable[[list[str]], int]] = {
    "run": cmd_run, "import": cmd_import, "images": cmd_images, "doctor": cmd_doctor,
    "version": cmd_version,
}


def usage() -> str:
    lines = ["usage: minidocker [--root DIR] COMMAND [OPTIONS]", "", "Commands:"]
    lines += [f"  {name:<9} {text}" for name, text in COMMANDS.items()]
    lines += ["", "Run 'minidocker COMMAND --help' for more on a command.",
              "State lives under --root, $MINIDOCKER_ROOT, or /var/lib/minidocker."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--root"] and len(argv) > 1:
        os.environ["MINIDOCKER_ROOT"] = os.path.abspath(argv[1])
        argv = argv[2:]
    elif argv[:1] and argv[0].startswith("--root="):
        os.environ["MINIDOCKER_ROOT"] = os.path.abspath(argv[0].split("=", 1)[1])
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 1
    handler = HANDLERS.get(argv[0])
    if handler is None:
        print(f"minidocker: '{argv[0]}' is not a minidocker command.\n\n{usage()}",
              file=sys.stderr)
        return EXIT_RUNTIME
    try:
        return handler(argv[1:])
    except MinidockerError as exc:
        print(f"minidocker: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        print(f"minidocker: {exc}" + (f" ({notes})" if notes else ""), file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130
