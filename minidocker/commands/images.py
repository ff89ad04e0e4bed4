"""Image commands: ``images``, ``import`` (the image lessons grow this module)."""

from __future__ import annotations

import sys

from minidocker.cli import COMMANDS, parser


def cmd_import(argv: list[str]) -> int:
    p = parser("minidocker import", COMMANDS["import"][1],
                "minidocker import FILE|- REPOSITORY[:TAG]")
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
    p = parser("minidocker images", COMMANDS["images"][1])
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
