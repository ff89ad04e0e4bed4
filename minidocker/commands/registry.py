"""Registry commands: ``pull``, ``push``, ``login``, ``logout``, ``search``.

Each parses its arguments, calls :mod:`minidocker.registry` and prints what Docker prints.
"""

from __future__ import annotations

import sys

from minidocker.commands.table import COMMANDS, parser
from minidocker.errors import Unauthorized, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from minidocker.store import ImageStore


def _store() -> ImageStore:
    from minidocker import state
    from minidocker.store import ImageStore

    return ImageStore(state.Layout().root)


def _say(quiet: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if not quiet:
            print(line, flush=True)
    return say


def cmd_pull(argv: list[str]) -> int:
    p = parser("minidocker pull", COMMANDS["pull"][1],
               "minidocker pull [OPTIONS] NAME[:TAG|@DIGEST]")
    p.add_argument("--platform", help="os/arch[/variant] of the image to pull from an index")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    args = p.parse_args(argv)
    from minidocker.reference import parse
    from minidocker.registry import platforms, progress, pull

    reference = parse(args.name)
    platform = platforms.parse_platform(args.platform) if args.platform else None
    say = _say(args.quiet)
    if ":" not in args.name.rpartition("/")[2] and "@" not in args.name:
        say("Using default tag: latest")
    with progress.for_output(args.quiet, say) as report:
        result = pull.pull(_store(), reference, platform=platform, report=report,
                           warn=lambda line: print(line, file=sys.stderr))
    say(f"Digest: {result.digest}")
    status = "Downloaded newer image" if result.downloaded else "Image is up to date"
    say(f"Status: {status} for {reference.familiar}")
    print(reference.canonical)
    return 0


def cmd_push(argv: list[str]) -> int:
    p = parser("minidocker push", COMMANDS["push"][1], "minidocker push [OPTIONS] NAME[:TAG]")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.add_argument("--chunk-size", metavar="SIZE",
                   help="upload blobs larger than SIZE (e.g. 5MB) in chunks of SIZE "
                        "(default: chunks of 32MiB above 64MiB)")
    p.add_argument("name", metavar="NAME[:TAG]")
    args = p.parse_args(argv)
    from minidocker.reference import parse
    from minidocker.registry import progress, push

    chunk = _size(args.chunk_size) if args.chunk_size else None
    with progress.for_output(args.quiet, _say(args.quiet)) as report:
        digest = push.push(_store(), parse(args.name), report=report, chunk_size=chunk)
    if args.quiet:
        print(digest)
    return 0


def _size(text: str) -> int:
    """``5MB``, ``512k``, ``1048576``: bytes, as ``docker run --memory`` reads sizes."""
    from minidocker.cgroups.limits import parse_bytes

    size = parse_bytes(text, "--chunk-size")
    if size <= 0:
        raise UsageError(f"invalid chunk size {text!r}: want a size in bytes (5MB, 512k)")
    return size


def _server(arg: str | None) -> str:
    """``SERVER`` as login takes it (a host, or a URL as Docker's docs write them)."""
    if not arg:
        return "docker.io"
    host = arg.split("://", 1)[-1].split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def cmd_login(argv: list[str]) -> int:
    p = parser("minidocker login", COMMANDS["login"][1], "minidocker login [OPTIONS] [SERVER]")
    p.add_argument("-u", "--username", help="username")
    p.add_argument("-p", "--password", help="password")
    p.add_argument("--password-stdin", action="store_true", help="take the password from stdin")
    p.add_argument("server", nargs="?", metavar="SERVER")
    args = p.parse_args(argv)
    from minidocker.registry import auth
    from minidocker.registry.client import Registry

    server = _server(args.server)
    if args.password_stdin:
        if args.password:
            raise UsageError("login: --password and --password-stdin are mutually exclusive")
        if not args.username:
            raise UsageError("login: must provide --username with --password-stdin")
        args.password = sys.stdin.read().rstrip("\r\n")
    elif args.password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
              file=sys.stderr)
    if not args.username:
        args.username = input("Username: ").strip()
    if not args.password:
        import getpass

        args.password = getpass.getpass("Password: ")
    if not args.username or not args.password:
        raise UsageError("login: a username and a password are required")
    try:
        Registry(server, (args.username, args.password)).ping()
    except Unauthorized as exc:
        raise Unauthorized(f"login to {server} failed: {exc}") from None
    path = auth.store_credentials(server, args.username, args.password)
    print(f"WARNING! Your password will be stored unencrypted in {path}.", file=sys.stderr)
    print("Login Succeeded")
    return 0


def cmd_logout(argv: list[str]) -> int:
    p = parser("minidocker logout", COMMANDS["logout"][1], "minidocker logout [SERVER]")
    p.add_argument("server", nargs="?", metavar="SERVER")
    args = p.parse_args(argv)
    from minidocker.registry import auth

    server = _server(args.server)
    label = auth.auth_key(server)
    if auth.erase_credentials(server):
        print(f"Removing login credentials for {label}")
    else:
        print(f"Not logged in to {label}")
    return 0


def cmd_search(argv: list[str]) -> int:
    p = parser("minidocker search", COMMANDS["search"][1],
               "minidocker search [OPTIONS] TERM\n       minidocker search [OPTIONS] "
               "REGISTRY/[TERM]   (a private registry's catalog)")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="filter output: stars=N, is-official=true|false")
    p.add_argument("--format", help="pretty-print results using a Go template")
    p.add_argument("--limit", type=int, default=None, help="max number of search results")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("term", metavar="TERM")
    args = p.parse_args(argv)
    from minidocker.commands.images import render_format
    from minidocker.registry import search

    limit = search.DEFAULT_LIMIT if args.limit is None else args.limit
    results = [r for r in search.search(args.term, limit) if search.keep(r, args.filter)]
    if args.format:
        source = args.format
        table = source.startswith("table")
        if table:  # Docker's "table" prefix: a header row, columns aligned
            source = source.removeprefix("table").lstrip()
            header = {field: title for field, title in search.COLUMNS}
            header["IsAutomated"] = "AUTOMATED"
            rows = [render_format(source, header)] + [
                render_format(source, r.fields(not args.no_trunc)) for r in results]
            _print_columns([row.split("\t") for row in rows])
        else:
            for r in results:
                print(render_format(source, r.fields(not args.no_trunc)))
        return 0
    _print_columns([[title for _, title in search.COLUMNS],
                  *(search.cells(r, truncate=not args.no_trunc) for r in results)])
    return 0


def _print_columns(rows: list[list[str]]) -> None:
    """Docker's CLI tables: Go's tabwriter with a minimum cell width of 10 and a padding of 3
    (``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``); the last cell of a line is not padded."""
    count = max(len(row) for row in rows)
    widths = [max(max((len(r[i]) for r in rows if i < len(r) - 1), default=0) + 3, 10)
              for i in range(count)]
    for row in rows:
        print("".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False))
              + row[-1])
