"""``minidocker build``: today only ``--print``, the Dockerfile's parse tree.

Building (each RUN in a container, each step a layer) needs the engine and comes with the
rest of issue 14. ``--print`` is the first step of a build, kept as its own option so a
learner can see what the parser (:mod:`minidocker.dockerfile`) made of a Dockerfile, with the
FROM lines resolved by the meta ARGs and ``--build-arg``.
"""

from __future__ import annotations

import os
import sys

from minidocker.cli import COMMANDS, parser
from minidocker.errors import UsageError


def cmd_build(argv: list[str]) -> int:
    p = parser("minidocker build", COMMANDS["build"][1],
               "minidocker build --print [-f FILE] [--build-arg NAME=value] [PATH | -]")
    p.add_argument("path", nargs="?", default=".", help="the build context (a directory), "
                                                       "or - to read the Dockerfile from STDIN")
    p.add_argument("-f", "--file", help="the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("--print", action="store_true", dest="print_tree",
                   help="parse the Dockerfile and print its instructions, without building")
    p.add_argument("--build-arg", action="append", default=[], metavar="NAME=value",
                   help="set a build-time variable (shown in the resolved FROM lines)")
    args = p.parse_args(argv)
    if not args.print_tree:
        raise UsageError("not yet: minidocker build only parses for now; use --print "
                         "(building lands with the engine, issue 14)")
    from minidocker import dockerfile

    if args.path == "-" and not args.file:
        text = sys.stdin.read()
    else:
        name = args.file or os.path.join(args.path, "Dockerfile")
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read Dockerfile {name}: {exc.strerror}") from None
    build_args = dict(a.partition("=")[::2] for a in args.build_arg)
    parsed = dockerfile.parse(text)
    parsed.stages = dockerfile.resolve_stages(parsed, build_args)
    print(parsed.tree())
    return 0
