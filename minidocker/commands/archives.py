"""Tarballs in and out of the image store: ``save``, ``load`` and ``import``.

Each parses its arguments, calls :mod:`minidocker.archive` or the store's ``import_tarball``
and prints what Docker prints. ``export`` (a container's files as a tarball) is in
:mod:`minidocker.commands.changes`; it writes its file with :class:`atomic_output` too.
"""

from __future__ import annotations

import os
import sys

from minidocker.cli import COMMANDS, parser
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from minidocker.store import ImageStore


def _store() -> ImageStore:
    from minidocker import state
    from minidocker.store import ImageStore

    return ImageStore(state.Layout().root)


# -- import -------------------------------------------------------------------------------------

def cmd_import(argv: list[str]) -> int:
    p = parser("minidocker import", COMMANDS["import"][1],
               "minidocker import [OPTIONS] FILE|- [REPOSITORY[:TAG]]")
    p.add_argument("file", help="a rootfs tarball (plain or gzip), or - for stdin")
    p.add_argument("reference", nargs="?", help="the name to give the image")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="apply a Dockerfile instruction to the image (CMD, ENV...)")
    p.add_argument("-m", "--message", help="set a commit message for the imported image")
    args = p.parse_args(argv)
    from minidocker import instructions
    from minidocker.ocispec import DEFAULT_PATH_ENV

    changes = instructions.apply({"Env": [DEFAULT_PATH_ENV]}, args.change)
    src = sys.stdin.buffer if args.file == "-" else args.file
    image = _store().import_tarball(src, args.reference, changes=changes, message=args.message)
    print(image.id)
    return 0



# -- save, load ---------------------------------------------------------------------------------

def cmd_save(argv: list[str]) -> int:
    p = parser("minidocker save", COMMANDS["save"][1], "minidocker save [OPTIONS] IMAGE [IMAGE...]")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    p.add_argument("--format", default="docker-archive", choices=("docker-archive",
                                                                   "oci-archive"),
                   help="docker-archive (what docker load reads; also an OCI layout) or "
                        "oci-archive")
    args = p.parse_args(argv)
    from minidocker import archive

    store = _store()
    images = archive.select(store, args.images)
    if args.output is None:
        if sys.stdout.isatty():
            raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or "
                             "redirect")
        archive.save(store, images, sys.stdout.buffer, args.format)
        sys.stdout.buffer.flush()
        return 0
    with atomic_output(args.output) as out:
        archive.save(store, images, out, args.format)
    return 0


def cmd_load(argv: list[str]) -> int:
    p = parser("minidocker load", COMMANDS["load"][1], "minidocker load [OPTIONS]")
    p.add_argument("-i", "--input", help="read from a tar archive file, instead of STDIN")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress the load output")
    args = p.parse_args(argv)
    from minidocker import archive

    if args.input is None and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty")
    with archive.open_source(args.input) as (src, label):
        lines, _ = archive.load(_store(), src, label)
    if not args.quiet:
        print("\n".join(lines))
    return 0


class atomic_output:
    """A file written under a temporary name and renamed into place only when complete."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp = f"{path}.tmp-{os.getpid()}"

    def __enter__(self) -> BinaryIO:
        try:
            self.f = open(self.tmp, "wb")  # noqa: SIM115 -- closed in __exit__
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror}") from None
        return self.f

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.f.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)
