"""A container's changes: ``diff``, ``commit`` and ``export``.

A container is found as every command finds it, a :class:`minidocker.lifecycle.Container`; its
files are where its storage driver recorded them (:func:`minidocker.graphdriver.recorded`): its
own top directory over its image's layers, which :mod:`minidocker.diff` compares and writes.
"""

from __future__ import annotations

import contextlib
import os
import sys

from minidocker.cli import COMMANDS, parser
from minidocker.commands.archives import atomic_output
from minidocker.errors import ImageError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from minidocker.layers import Stack
    from minidocker.lifecycle import Container
    from minidocker.store import Image, ImageStore


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


class _Files:
    """A container's files as its storage driver recorded them: its own over its image's."""

    def __init__(self, c: Container, store: ImageStore) -> None:
        from minidocker import graphdriver

        self.id = c.id
        self.driver, self.lowers = graphdriver.recorded(c.dir)
        if not self.lowers:  # a container made before the storage record existed
            image_id = c.config.get("image_id")
            if not isinstance(image_id, str):
                raise ImageError(f"container {c.id[:12]} records no image")
            self.lowers = [str(p) for p in store.layer_dirs(store.lookup(image_id))]
        # Its own files: the upper dir (overlay) or the full copy (vfs).
        self.top = os.path.join(c.dir, "merged" if self.driver == "vfs" else "upper")

    def image_stack(self) -> Stack:
        from minidocker.layers import Stack

        missing = [d for d in self.lowers if not os.path.isdir(d)]
        if missing:
            raise ImageError(f"container {self.id[:12]}: its image layer {missing[0]} is gone")
        return Stack(self.lowers, whiteouts="oci" if self.driver == "vfs" else "overlay")

    def ignore(self) -> set[str]:
        from minidocker import diff, rootfs

        return diff.init_placeholders(self.top, rootfs.INIT_DIRS, rootfs.INIT_FILES)

    def changes(self) -> list[Any]:
        from minidocker import diff

        if self.driver == "vfs":
            return diff.tree_changes(self.top, self.image_stack(), self.ignore())
        return diff.upper_changes(self.top, self.image_stack(), self.ignore())


def cmd_diff(argv: list[str]) -> int:
    p = parser("minidocker diff", COMMANDS["diff"][1], "minidocker diff CONTAINER")
    p.add_argument("container")
    args = p.parse_args(argv)
    for change in _Files(_container(args.container), _store()).changes():
        print(change)
    return 0


def cmd_export(argv: list[str]) -> int:
    p = parser("minidocker export", COMMANDS["export"][1], "minidocker export [OPTIONS] CONTAINER")
    p.add_argument("container")
    p.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    args = p.parse_args(argv)
    from minidocker import diff
    from minidocker.layers import Stack

    files = _Files(_container(args.container), _store())
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


def commit(c: Container, store: ImageStore, ref: str | None, *, author: str | None = None,
           message: str | None = None, changes: list[str] | tuple[str, ...] = ()) -> Image:
    """A new image: the container's image plus one layer of its changes (``docker commit``)."""
    import tempfile
    from pathlib import Path

    from minidocker import diff, instructions
    from minidocker.store import timestamp

    image_id = c.config.get("image_id")
    try:
        base = store.lookup(str(image_id))
    except ImageError:
        raise ImageError(f"container {c.id[:12]}: its image {image_id} was removed, so there is "
                         "nothing to commit onto") from None
    run_config = instructions.apply(_container_run_config(c.config, base), list(changes))
    files = _Files(c, store)
    stack = files.image_stack()
    with store.writing():
        fd, name = tempfile.mkstemp(prefix=f"commit-{os.getpid()}-", suffix=".tar",
                                    dir=store.tmp_dir)
        staged = Path(name)
        try:
            with open(fd, "wb") as out:
                if files.driver == "vfs":
                    found = diff.tree_changes(files.top, stack, files.ignore())
                    diff.write_changes_layer(files.top, found, out)
                else:
                    diff.write_upper_layer(files.top, out, files.ignore())
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        chains = base.chain_ids()
        layer = store.add_staged_layer(staged, parent=chains[-1] if chains else None,
                                       label=f"container {c.id[:12]}")
        created = timestamp()
        entry: dict[str, Any] = {"created": created}
        if author:
            entry["author"] = author
        entry["created_by"] = " ".join(c.config.get("argv") or [])
        if message:
            entry["comment"] = message
        config = {k: v for k, v in base.config.items() if k not in ("rootfs", "history")}
        config.update({"created": created, "config": run_config,
                       "history": [*base.history, entry]})
        if author:
            config["author"] = author
        return store.write_image(config, [*base.layers(), layer], ref)


def _container_run_config(spec: dict[str, Any], image: Image) -> dict[str, Any]:
    """The image config's ``config`` object as the container ran it: Docker commits the
    container's command, environment, working directory and user, not the image's."""
    config = dict(image.config.get("config") or {})
    argv = [str(a) for a in spec.get("argv") or []]
    entrypoint = list(config.get("Entrypoint") or [])
    if entrypoint and argv[:len(entrypoint)] == entrypoint:
        config["Cmd"] = argv[len(entrypoint):] or None
    elif argv:
        config["Entrypoint"], config["Cmd"] = None, argv
    env = spec.get("env")
    if isinstance(env, dict):
        # HOSTNAME and TERM are the runtime's, not the image's (Docker adds them at start).
        config["Env"] = [f"{k}={v}" for k, v in env.items() if k not in ("HOSTNAME", "TERM")]
    if spec.get("workdir"):
        config["WorkingDir"] = spec["workdir"]
    user = spec.get("user")
    if isinstance(user, str) and not (user == "0" and not config.get("User")):
        config["User"] = user
    return {k: v for k, v in config.items() if v is not None}
