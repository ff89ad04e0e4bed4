"""``minidocker build``: a Dockerfile and its context become an image.

The flags become a :class:`minidocker.builder.BuildOptions` and the builder does the rest
(:mod:`minidocker.builder`): each RUN in a container started through the engine, each step an
image, the build cache, ``.dockerignore``. Docker's classic builder is the model for the output
(``Step N/M : INSTRUCTION``, `` ---> Using cache``, `` ---> <id>``, here with each step's time)
and for ``-q``, which prints only the image ID.

``--print`` only parses: it shows the parse tree (:mod:`minidocker.dockerfile`) with the FROM
lines resolved by the meta ARGs and ``--build-arg``, and builds nothing.

``minidocker build - < Dockerfile`` reads the Dockerfile from STDIN and has no context (so no
COPY or ADD of local files); ``-f -`` reads it from STDIN with PATH as the context.
"""

from __future__ import annotations

import os
import sys

from minidocker.commands.table import COMMANDS, parser
from minidocker.errors import UsageError


def cmd_build(argv: list[str]) -> int:
    p = parser("minidocker build", COMMANDS["build"][1],
               "minidocker build [OPTIONS] PATH | -")
    p.add_argument("path", nargs="?", default=".", help="the build context (a directory), "
                                                       "or - to read the Dockerfile from STDIN")
    p.add_argument("-f", "--file", help="the Dockerfile (default: PATH/Dockerfile; - for STDIN)")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                   help="name the image (several -t give several names)")
    p.add_argument("--build-arg", action="append", default=[], metavar="NAME[=value]",
                   help="set a build-time variable (NAME alone: from the environment)")
    p.add_argument("--target", help="build only up to this stage (and the stages it needs)")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="print only the image ID (a failing RUN's output is shown)")
    p.add_argument("--network", help="the network RUN steps use (default: bridge, or "
                                     "$MINIDOCKER_DEFAULT_NETWORK; none, host)")
    p.add_argument("--print", action="store_true", dest="print_tree",
                   help="parse the Dockerfile and print its instructions, without building")
    args = p.parse_args(argv)
    from minidocker import dockerfile

    context: str | None = args.path
    if args.path == "-" and args.file not in (None, "-"):
        raise UsageError("build -: the Dockerfile comes from STDIN, so -f cannot name one")
    if args.path == "-" or args.file == "-":
        text = sys.stdin.read()
        if args.path == "-":
            context = None
    else:
        name = args.file or os.path.join(args.path, "Dockerfile")
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read Dockerfile {name}: {exc.strerror}") from None
    if context is not None and not os.path.isdir(context):
        raise UsageError(f"unable to prepare context: path {context!r} not found")
    build_args = {}
    for item in args.build_arg:
        key, eq, value = item.partition("=")
        if eq:
            build_args[key] = value
        elif key in os.environ:
            build_args[key] = os.environ[key]
    if args.print_tree:
        parsed = dockerfile.parse(text)
        from minidocker.buildflags import platform_args

        parsed.stages = dockerfile.resolve_stages(parsed, build_args, platform_args())
        print(parsed.tree())
        return 0
    import signal

    from minidocker import builder

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds like Ctrl-C: the step's container is removed

    signal.signal(signal.SIGTERM, stop)
    options = builder.BuildOptions(context=context, tags=args.tag, build_args=build_args,
                                   target=args.target, no_cache=args.no_cache,
                                   quiet=args.quiet, network=args.network)
    image = builder.build(text, options)
    if args.quiet:
        print(image.id)
    return 0
