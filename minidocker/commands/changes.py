"""A container's changes: ``diff``, ``commit`` and ``export``.

A container is found as every command finds it, a :class:`minidocker.lifecycle.Container`; its
files are where its storage driver recorded them (:func:`minidocker.graphdriver.recorded`): its
own top directory over its image's layers, which :mod:`minidocker.diff` compares and writes.
"""

from __future__ import annotations

import contextlib
import sys

from minidocker.cli import COMMANDS, parser
from minidocker.commands.archives import atomic_output
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from minidocker.commit import Files
    from minidocker.lifecycle import Container
    from minidocker.store import ImageStore


def _store() -> ImageStore:
    from minidocker import state
    from minidocker.store import ImageStore

    return ImageStore(state.Layout().root)


def _container(name: str) -> Container:
    from minidocker import lifecycle, state

    layout = state.Layout()
    # Resolved here first: an unknown or ambiguous name fails with exit code 125, as Docker's
    # diff, commit and export do (lifecycle.Container's own error exits 1, as stop does).
    return lifecycle.Container(layout, layout.resolve(name))


def _files(c: Container, store: ImageStore) -> Files:
    from minidocker.commit import Files

    return Files.of(c, store)


def cmd_diff(argv: list[str]) -> int:
    p = parser("minidocker diff", COMMANDS["diff"][1], "minidocker diff CONTAINER")
    p.add_argument("container")
    args = p.parse_args(argv)
    for change in _files(_container(args.container), _store()).changes():
        print(change)
    return 0


def cmd_export(argv: list[str]) -> int:
    p = parser("minidocker export", COMMANDS["export"][1], "minidocker export [OPTIONS] CONTAINER")
    p.add_argument("container")
    p.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    args = p.parse_args(argv)
    from minidocker import diff
    from minidocker.layers import Stack

    files = _files(_container(args.container), _store())
    if files.driver == "vfs":
        tree = Stack([files.top], whiteouts=None)
    else:
        tree = Stack([files.top, *files.image_stack().dirs], whiteouts="overlay")
    if args.output is None:
        if sys.stdout.isatty():
            raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or "
                             "redirect")
        diff.write_tree(tree, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    with atomic_output(args.output) as out:
        diff.write_tree(tree, out)
    return 0


def cmd_commit(argv: list[str]) -> int:
    p = parser("minidocker commit", COMMANDS["commit"][1],
               "minidocker commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]")
    p.add_argument("container")
    p.add_argument("reference", nargs="?", help="the name to give the new image")
    p.add_argument("-a", "--author", help='author (e.g., "John Hannibal Smith '
                                          '<hannibal@a-team.com>")')
    p.add_argument("-m", "--message", help="commit message")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="apply a Dockerfile instruction to the created image")
    p.add_argument("-p", "--pause", default="true", nargs="?", const="true",
                   help="pause the container during commit (if it runs in a cgroup of its "
                        "own; default true)")
    args = p.parse_args(argv)
    from minidocker.reference import parse

    if args.reference is not None:
        reference = parse(args.reference)  # a bad name is refused before any work
        if reference.digest:
            raise UsageError(f"invalid reference format: cannot commit to a digest "
                             f"({args.reference})")
    c = _container(args.container)
    with _paused(c, args.pause.lower().lstrip("=") not in ("false", "0")):
        from minidocker.commit import commit

        image = commit(c, _store(), args.reference, author=args.author, message=args.message,
                       changes=args.change)
    print(image.id)
    return 0


@contextlib.contextmanager
def _paused(c: Container, pause: bool) -> Iterator[None]:
    """Freeze a running container's cgroup while its files are read, as Docker's commit does.

    A container without a cgroup record (started by an older minidocker) cannot be frozen;
    its files are read while it runs.
    """
    from minidocker import lifecycle

    record = c.state.get("Cgroup")
    # A restarting container counts as running: its supervisor will start it again.
    running = c.state.get("Status") == "restarting" or lifecycle.is_running(c.state)
    if not (pause and isinstance(record, dict) and running):
        yield
        return
    from minidocker import cgroups

    group = cgroups.Cgroup.from_dict(record)
    if group.frozen():  # paused already: leave it so
        yield
        return
    group.freeze()
    try:
        yield
    finally:
        group.thaw()
