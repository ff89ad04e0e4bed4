"""Volume commands: ``volume create/ls/inspect/rm/prune``, over :mod:`minidocker.volumes`.

Exit codes are the docker CLI's: 1 for what the daemon refuses (no such volume, in use), 125
for a bad flag or filter.

Notebook: ``08_volumes``.
"""

from __future__ import annotations

import json
import sys

from minidocker import volumes
from minidocker.commands.table import COMMANDS, parser
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SUBCOMMANDS = {
    "create": "Create a volume",
    "ls": "List volumes",
    "inspect": "Display detailed information on one or more volumes",
    "rm": "Remove one or more volumes",
    "prune": "Remove unused local volumes",
}
ALIASES = {"list": "ls", "remove": "rm"}


def cmd_volume(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("Usage:  minidocker volume COMMAND\n\n" + COMMANDS["volume"][1] + "\n\nCommands:")
        for name, text in SUBCOMMANDS.items():
            print(f"  {name:<11} {text}")
        return 0 if argv else 1
    name = ALIASES.get(argv[0], argv[0])
    if name not in SUBCOMMANDS:
        raise UsageError(f"volume: unknown command {argv[0]!r} (see 'minidocker volume --help')")
    handler: Callable[[list[str]], int] = globals()["_" + name]
    return handler(argv[1:])


def _root() -> str:
    from minidocker.state import Layout

    return Layout().root


def _pairs(items: list[str], what: str) -> dict[str, str]:
    """``key=value`` flags (``--label``, ``--opt``); a bare ``key`` is ``key=""``."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid {what} {item!r}: empty key")
        out[key] = value
    return out


def _filters(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"bad format of filter (expected name=value): {item}")
        out.setdefault(key.lower(), []).append(value)
    return out


def _render(template: str, value: dict[str, Any]) -> str:
    from minidocker import gotemplate

    try:
        return gotemplate.render(template.replace("\\t", "\t").replace("\\n", "\n"), value)
    except gotemplate.TemplateError as exc:
        raise UsageError(f"template parsing error: {exc}") from None


def _create(argv: list[str]) -> int:
    p = parser("minidocker volume create", SUBCOMMANDS["create"],
               "minidocker volume create [OPTIONS] [VOLUME]")
    p.add_argument("-d", "--driver", default="local", help="specify volume driver name")
    p.add_argument("--label", action="append", default=[], help="set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", default=[],
                   help="set driver specific options")
    p.add_argument("name", nargs="?")
    args = p.parse_args(argv)
    if args.driver != "local":
        raise UsageError(f"volume create: driver {args.driver!r} not found (only local)")
    volume = volumes.create(_root(), args.name, labels=_pairs(args.label, "label"),
                            options=_pairs(args.opt, "option"))
    print(volume.name)
    return 0


def _ls(argv: list[str]) -> int:
    p = parser("minidocker volume ls", SUBCOMMANDS["ls"])
    p.add_argument("-q", "--quiet", action="store_true", help="only display volume names")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="provide filter values (e.g. 'dangling=true')")
    p.add_argument("--format", help="format output using a Go template")
    args = p.parse_args(argv)
    found = volumes.list_volumes(_root(), _filters(args.filter))
    if args.quiet:
        for volume in found:
            print(volume.name)
        return 0
    rows = [{"Driver": volumes.DRIVER, "Name": v.name, "Scope": "local",
             "Mountpoint": v.mountpoint, "Labels": ",".join(
                 f"{k}={val}" for k, val in (v.record.get("Labels") or {}).items())}
            for v in found]
    template = args.format or "table {{.Driver}}\t{{.Name}}"
    if template == "json":
        for row in rows:
            print(json.dumps(row, separators=(",", ":")))
        return 0
    if not template.startswith("table"):
        for row in rows:
            print(_render(template, row))
        return 0
    body = template.removeprefix("table").strip() or "{{.Driver}}\t{{.Name}}"
    headers = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
               "Mountpoint": "MOUNTPOINT", "Labels": "LABELS"}
    _print_table([_render(body, headers).split("\t")]
                 + [_render(body, row).split("\t") for row in rows])
    return 0


def _print_table(rows: list[list[str]]) -> None:
    """Docker's tabwriter: cells padded to the widest plus three spaces, at least ten wide."""
    widths = [max(max(len(r[i]) for r in rows if i < len(r)) + 3, 10)
              for i in range(len(rows[0]))]
    for row in rows:
        print("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())


def _inspect(argv: list[str]) -> int:
    p = parser("minidocker volume inspect", SUBCOMMANDS["inspect"],
               "minidocker volume inspect [OPTIONS] VOLUME [VOLUME...]")
    p.add_argument("-f", "--format", help="format output using a Go template")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    args = p.parse_args(argv)
    found, code = [], 0
    for name in args.names:
        try:
            found.append(volumes.get(_root(), name).as_docker())
        except volumes.VolumeNotFound as exc:
            print(f"minidocker: {exc}", file=sys.stderr)
            code = 1
    if args.format:
        for item in found:
            print(_render(args.format, item))
    else:
        print(json.dumps(found, indent=4))
    return code


def _rm(argv: list[str]) -> int:
    p = parser("minidocker volume rm", SUBCOMMANDS["rm"],
               "minidocker volume rm [OPTIONS] VOLUME [VOLUME...]")
    p.add_argument("-f", "--force", action="store_true",
                   help="force the removal of one or more volumes")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    args = p.parse_args(argv)
    code = 0
    for name in args.names:
        try:
            volumes.remove(_root(), name, force=args.force)
            print(name)
        except volumes.VolumeError as exc:
            print(f"minidocker: {exc}", file=sys.stderr)
            code = 1
    return code


def _prune(argv: list[str]) -> int:
    p = parser("minidocker volume prune", SUBCOMMANDS["prune"])
    p.add_argument("-a", "--all", action="store_true",
                   help="remove all unused volumes, not just anonymous ones")
    p.add_argument("--filter", action="append", default=[],
                   help="provide filter values (e.g. 'label=<label>')")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    args = p.parse_args(argv)
    if not args.force:
        what = "all local volumes" if args.all else "anonymous local volumes"
        print(f"WARNING! This will remove {what} not used by at least one container.\n"
              "Are you sure you want to continue? [y/N] ", end="", flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    from minidocker import humanize

    removed, freed = volumes.prune(_root(), all_volumes=args.all,
                                   filters=_filters(args.filter))
    if removed:
        print("Deleted Volumes:\n" + "\n".join(removed) + "\n")
    print(f"Total reclaimed space: {humanize.size(freed)}")
    return 0
