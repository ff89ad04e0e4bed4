"""Image commands: ``images``, ``image ...``, ``import``, ``tag``, ``rmi``, ``history``,
``save``, ``load``, and the container-to-image ones, ``diff``, ``commit`` and ``export``.

Each parses its arguments, calls the mechanism (:mod:`minidocker.store`,
:mod:`minidocker.archive`, :mod:`minidocker.diff`) and prints what Docker prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from minidocker.cli import COMMANDS, parser
from minidocker.errors import ImageError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from minidocker.layers import Stack
    from minidocker.state import Layout
    from minidocker.store import Image, ImageStore


def _store() -> ImageStore:
    from minidocker import state
    from minidocker.store import ImageStore

    return ImageStore(state.Layout().root)


# -- import, tag, rmi ---------------------------------------------------------------------------

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


def cmd_tag(argv: list[str]) -> int:
    p = parser("minidocker tag", COMMANDS["tag"][1],
               "minidocker tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")
    p.add_argument("source")
    p.add_argument("target")
    args = p.parse_args(argv)
    _store().tag(args.source, args.target)
    return 0


def cmd_rmi(argv: list[str]) -> int:
    p = parser("minidocker rmi", COMMANDS["rmi"][1], "minidocker rmi [OPTIONS] IMAGE [IMAGE...]")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true",
                   help="force removal of the image (even if a stopped container uses it)")
    args = p.parse_args(argv)
    return _remove(args.images, args.force)


def _remove(names: list[str], force: bool) -> int:
    from minidocker import state

    store = _store()
    layout = state.Layout()
    users, keep = _container_refs(layout, store)
    failed: list[str] = []
    with store.collecting():
        for name in names:
            try:
                records = store.remove(name, force=force,
                                       users=lambda image_id: users.get(image_id, []))
            except ImageError as exc:
                failed.append(str(exc))
                continue
            for kind, what in records:
                print(f"{kind}: {what}")
        deleted, _ = store.collect_garbage(keep)
    for chain in deleted:
        print(f"Deleted: {chain}")
    if failed:
        raise ImageError("; ".join(failed))
    return 0


def _container_refs(layout: Layout, store: ImageStore
                    ) -> tuple[dict[str, list[tuple[str, bool]]], set[str]]:
    """Which containers use which image (``{image_id: [(id, running)]}``), and the layer
    directories containers stand on, which garbage collection must keep."""
    users: dict[str, list[tuple[str, bool]]] = {}
    keep: set[str] = set()
    for cid, cdir in _container_dirs(layout):
        config = _read_json(os.path.join(cdir, "config.json"))
        image_id = config.get("image_id")
        if isinstance(image_id, str):
            users.setdefault(image_id, []).append((cid, _is_running(cdir)))
        from minidocker import graphdriver

        _, lowers = graphdriver.recorded(cdir)
        keep.update(os.path.basename(lower) for lower in lowers
                    if os.path.dirname(lower) == str(store.layers_dir))
        if not lowers and isinstance(image_id, str):  # made before records were kept
            with contextlib.suppress(ImageError):
                keep.update(c.removeprefix("sha256:") for c in store.lookup(image_id).chain_ids())
    return users, keep


def _container_dirs(layout: Layout) -> Iterator[tuple[str, str]]:
    try:
        names = sorted(os.listdir(layout.containers))
    except FileNotFoundError:
        return
    for cid in names:
        cdir = layout.container(cid)
        if os.path.isdir(cdir):
            yield cid, cdir


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _is_running(cdir: str) -> bool:
    """Does the container's recorded process still run? The kernel, not the record, says;
    a restarting container counts, as its supervisor will start it again."""
    from minidocker import lifecycle

    record = _read_json(os.path.join(cdir, "state.json"))
    return record.get("Status") == "restarting" or lifecycle.is_running(record)


# -- images -------------------------------------------------------------------------------------

class _Row:
    __slots__ = ("image", "repo", "tag", "size", "intermediate")

    def __init__(self, image: Image, repo: str, tag: str, size: int, intermediate: bool) -> None:
        self.image, self.repo, self.tag = image, repo, tag
        self.size, self.intermediate = size, intermediate


def image_rows(store: ImageStore) -> list[_Row]:
    """One row per name (and one per unnamed image), newest first, as ``docker images``.

    An unnamed image whose layers are the first layers of another image is its parent (as a
    ``commit`` leaves it): ``images`` hides such *intermediate* images unless ``-a``.
    """
    from minidocker.reference import parse

    images = store.list_images()
    children_of: set[tuple[str, ...]] = set()
    for image in images:
        ids = tuple(image.diff_ids)
        children_of.update(ids[:n] for n in range(1, len(ids)))
    rows = []
    for image in images:
        if image.ref is None:
            repo, tag = "<none>", "<none>"
        else:
            reference = parse(image.ref)
            repo, tag = reference.familiar_name, reference.tag or "<none>"
        intermediate = image.ref is None and tuple(image.diff_ids) in children_of
        rows.append(_Row(image, repo, tag, store.image_size(image), intermediate))
    rows.sort(key=lambda r: (r.image.created, r.repo, r.tag), reverse=True)
    return rows


def cmd_images(argv: list[str]) -> int:
    p = parser("minidocker images", COMMANDS["images"][1],
               "minidocker images [OPTIONS] [REPOSITORY[:TAG]]")
    p.add_argument("reference", nargs="?", help="only images whose name matches")
    p.add_argument("-a", "--all", action="store_true",
                   help="show all images (by default intermediate images are hidden)")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="filter output: dangling=true|false, reference=PATTERN")
    p.add_argument("--format", help="format output using a Go template")
    args = p.parse_args(argv)
    rows = _filter_rows(image_rows(_store()), args)
    if args.format:
        for row in rows:
            print(render_format(args.format, _row_fields(row, args.no_trunc)))
        return 0
    if args.quiet:
        for row in rows:
            print(_image_id(row.image.id, args.no_trunc))
        return 0
    from minidocker import humanize

    header = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "CREATED",
              "SIZE"]
    table = [header]
    for row in rows:
        table.append([row.repo, row.tag, *([row.image.manifest_digest] if args.digests else []),
                      _image_id(row.image.id, args.no_trunc), humanize.ago(row.image.created),
                      humanize.size(row.size)])
    _print_table(table)
    return 0


def _filter_rows(rows: list[_Row], args: Any) -> list[_Row]:
    dangling: bool | None = None
    patterns = [args.reference] if args.reference else []
    for item in args.filter:
        key, eq, value = item.partition("=")
        if key == "dangling" and value.lower() in ("true", "1", "false", "0"):
            dangling = value.lower() in ("true", "1")
        elif key == "reference" and eq and value:
            patterns.append(value)
        else:
            raise UsageError(f"invalid filter '{item}': minidocker filters on "
                             "dangling=true|false and reference=PATTERN")
    kept = []
    for row in rows:
        if row.intermediate and not args.all:
            continue
        untagged = row.image.ref is None
        if dangling is not None and untagged != dangling:
            continue
        if patterns and not any(_matches(row, pattern) for pattern in patterns):
            continue
        kept.append(row)
    return kept


def _matches(row: _Row, pattern: str) -> bool:
    import fnmatch

    if row.image.ref is None:
        return False
    if ":" not in pattern.rpartition("/")[2]:
        return fnmatch.fnmatchcase(row.repo, pattern)
    return fnmatch.fnmatchcase(f"{row.repo}:{row.tag}", pattern)


def _row_fields(row: _Row, no_trunc: bool) -> dict[str, Any]:
    from minidocker import humanize

    return {"Repository": row.repo, "Tag": row.tag, "ID": _image_id(row.image.id, no_trunc),
            "Digest": row.image.manifest_digest, "CreatedAt": row.image.created,
            "CreatedSince": humanize.ago(row.image.created), "Size": humanize.size(row.size)}


def render_format(source: str, value: dict[str, Any]) -> str:
    """``--format`` for ``images`` and ``image inspect``, through :mod:`minidocker.gotemplate`
    as ``ps`` and ``inspect`` go, printing what these two commands always printed: a typed
    ``\\t`` or ``\\n`` is a real one (Docker's CLI formatter does this), a null field shows
    as ``<no value>`` rather than ``<nil>``, and ``json`` escapes non-ASCII."""
    from minidocker import gotemplate

    try:
        template = gotemplate.parse(source.replace("\\t", "\t").replace("\\n", "\n"),
                                    {"json": _ascii_json})
        return template.render(_nulls_unset(value))
    except gotemplate.TemplateError as exc:
        raise UsageError(f"template parsing error: {exc}") from None


def _nulls_unset(value: Any) -> Any:
    from minidocker.gotemplate import MISSING

    if value is None:
        return MISSING
    if isinstance(value, dict):
        return {k: _nulls_unset(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls_unset(v) for v in value]
    return value


def _ascii_json(value: Any) -> str:
    from minidocker.gotemplate import MISSING

    def null(unset: object) -> None:  # a null that _nulls_unset made <no value>
        if unset is not MISSING:
            raise TypeError(f"{type(unset).__name__} is not JSON")
        return None

    return json.dumps(value, separators=(",", ":"), default=null)


def _image_id(image_id: str, no_trunc: bool) -> str:
    return image_id if no_trunc else image_id.removeprefix("sha256:")[:12]


def _print_table(rows: list[list[str]]) -> None:
    """Columns padded to the widest cell plus three spaces, as Docker's tabwriter does."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


# -- image (the management command), inspect, history, prune ------------------------------------

_IMAGE_SUBCOMMANDS = {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi",
                      "tag": "tag", "history": "history", "save": "save", "load": "load",
                      "import": "import", "inspect": None, "prune": None}


def cmd_image(argv: list[str]) -> int:
    usage = ("minidocker image COMMAND\n\nCommands:\n  inspect   Display detailed information "
             "on one or more images\n  prune     Remove unused images\n  ls        List images\n"
             "  rm        Remove one or more images\n  tag, history, save, load, import: as "
             "the top-level commands")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 1
    sub, rest = argv[0], argv[1:]
    if sub not in _IMAGE_SUBCOMMANDS:
        raise UsageError(f"'image {sub}' is not a minidocker command: see 'minidocker image "
                         "--help'")
    if sub == "inspect":
        return _inspect(rest)
    if sub == "prune":
        return _prune(rest)
    target = _IMAGE_SUBCOMMANDS[sub]
    assert target is not None
    handler = globals()["cmd_" + target]
    return int(handler(rest))


def _inspect(argv: list[str]) -> int:
    p = parser("minidocker image inspect", "Display detailed information on one or more images",
               "minidocker image inspect [OPTIONS] IMAGE [IMAGE...]")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", help="format the output using a Go template")
    args = p.parse_args(argv)
    store = _store()
    found = [inspect_image(store, store.resolve(name)) for name in args.images]
    if args.format:
        for item in found:
            print(render_format(args.format, item))
    else:
        print(json.dumps(found, indent=4))
    return 0


def inspect_image(store: ImageStore, image: Image) -> dict[str, Any]:
    """``docker image inspect``'s object for ``image``."""
    from minidocker.reference import parse

    names = sorted({i.ref for i in store.list_images() if i.id == image.id and i.ref})
    repos = sorted({parse(n).familiar_name for n in names})
    lowers = [str(p) for p in store.layer_dirs(image)] if image.diff_ids else []
    return {
        "Id": image.id,
        "RepoTags": names,
        "RepoDigests": [f"{r}@{image.manifest_digest}" for r in repos],
        "Parent": "",
        "Comment": (image.history[-1].get("comment", "") if image.history else ""),
        "Created": image.created,
        "Author": image.config.get("author", ""),
        "Config": image.config.get("config") or {},
        "Architecture": image.config.get("architecture", ""),
        "Os": image.config.get("os", ""),
        "Size": store.image_size(image),
        "GraphDriver": {"Name": "vfs" if store.whiteouts == "oci" else "overlay",
                        "Data": {"LowerDir": ":".join(lowers)}},
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "Descriptor": {"mediaType": image.manifest.get("mediaType"),
                       "digest": image.manifest_digest,
                       "size": store.blob_path(image.manifest_digest).stat().st_size},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def _prune(argv: list[str]) -> int:
    p = parser("minidocker image prune", "Remove unused images",
               "minidocker image prune [OPTIONS]")
    p.add_argument("-a", "--all", action="store_true",
                   help="remove all images not used by a container, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    args = p.parse_args(argv)
    if not args.force and sys.stdin.isatty():
        what = "all images without at least one container associated to them" if args.all \
            else "all dangling images"
        answer = input(f"WARNING! This will remove {what}.\nAre you sure you want to continue? "
                       "[y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    from minidocker import humanize, state

    store = _store()
    users, keep = _container_refs(state.Layout(), store)
    lines: list[str] = []
    with store.collecting():
        rows = image_rows(store)
        for row in rows:
            used = row.image.id in users
            if used or (not args.all and (row.image.ref is not None or row.intermediate)):
                continue
            ref = row.image.ref or row.image.id
            try:
                records = store.remove(ref, force=False, users=lambda i: users.get(i, []))
            except ImageError:
                continue  # gone with an earlier name of the same image, or in use
            lines += [f"{kind}: {what}" for kind, what in records]
        deleted, freed = store.collect_garbage(keep)
    lines += [f"Deleted: {chain}" for chain in deleted]
    if lines:
        print("Deleted Images:\n" + "\n".join(lines) + "\n")
    print(f"Total reclaimed space: {humanize.size(freed)}")
    return 0


def cmd_history(argv: list[str]) -> int:
    p = parser("minidocker history", COMMANDS["history"][1],
               "minidocker history [OPTIONS] IMAGE")
    p.add_argument("image")
    p.add_argument("-H", "--human", default="true", nargs="?", const="true",
                   help="print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    args = p.parse_args(argv)
    from minidocker import humanize

    store = _store()
    image = store.resolve(args.image)
    rows = history_rows(store, image)
    if args.quiet:
        for row in rows:
            print(row["id"] if args.no_trunc or row["id"] == "<missing>"
                  else row["id"].removeprefix("sha256:")[:12])
        return 0
    human = args.human.lower().lstrip("=") not in ("false", "0")  # -H=false, as Docker writes
    table = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for row in rows:
        created_by = " ".join(row["created_by"].split())
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        shown_id = row["id"] if args.no_trunc or row["id"] == "<missing>" \
            else row["id"].removeprefix("sha256:")[:12]
        table.append([shown_id, humanize.ago(row["created"]) if human else row["created"],
                      created_by, humanize.size(row["size"]) if human else str(row["size"]),
                      row["comment"]])
    _print_table(table)
    return 0


def history_rows(store: ImageStore, image: Image) -> list[dict[str, Any]]:
    """``docker history``: one row per history entry, newest first, each with its layer's size
    and, where an image in the store has exactly the layers up to there, that image's ID."""
    history = image.history or [{"created": image.created, "created_by": ""}
                                for _ in image.diff_ids]
    by_layers = {tuple(i.diff_ids): i.id for i in store.list_images()}
    descriptors = image.manifest.get("layers", [])
    rows, layer = [], 0
    for entry in history:
        empty = bool(entry.get("empty_layer"))
        size = 0
        if not empty and layer < len(descriptors):
            size = store.layer_size(descriptors[layer])
            layer += 1
        rows.append({"id": by_layers.get(tuple(image.diff_ids[:layer]), "<missing>"),
                     "created": entry.get("created", ""), "created_by":
                     entry.get("created_by", ""), "size": size,
                     "comment": entry.get("comment", "")})
    rows.reverse()
    rows[0]["id"] = image.id
    seen: set[str] = set()
    for row in rows:  # an ID once, on its newest row, as Docker shows it
        if row["id"] in seen:
            row["id"] = "<missing>"
        seen.add(row["id"])
    return rows


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
    with _atomic_output(args.output) as out:
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


class _atomic_output:
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


# -- diff, commit, export -----------------------------------------------------------------------

class _Container:
    """What ``diff``, ``commit`` and ``export`` need of a container."""

    def __init__(self, name: str) -> None:
        from minidocker import graphdriver, state

        layout = state.Layout()
        self.id = layout.resolve(name)
        self.dir = layout.container(self.id)
        self.config = _read_json(os.path.join(self.dir, "config.json"))
        self.driver, self.lowers = graphdriver.recorded(self.dir)
        self.store = _store()
        if not self.lowers:  # a container made before the storage record existed
            image_id = self.config.get("image_id")
            if not isinstance(image_id, str):
                raise ImageError(f"container {self.id[:12]} records no image")
            self.lowers = [str(p) for p in self.store.layer_dirs(self.store.lookup(image_id))]

    @property
    def top(self) -> str:
        """Its own files: the upper dir (overlay) or the full copy (vfs)."""
        return os.path.join(self.dir, "merged" if self.driver == "vfs" else "upper")

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
    for change in _Container(args.container).changes():
        print(change)
    return 0


def cmd_export(argv: list[str]) -> int:
    p = parser("minidocker export", COMMANDS["export"][1], "minidocker export [OPTIONS] CONTAINER")
    p.add_argument("container")
    p.add_argument("-o", "--output", help="write to a file, instead of STDOUT")
    args = p.parse_args(argv)
    from minidocker import diff
    from minidocker.layers import Stack

    c = _Container(args.container)
    if c.driver == "vfs":
        tree = Stack([c.top], whiteouts=None)
    else:
        tree = Stack([c.top, *c.image_stack().dirs], whiteouts="overlay")
    if args.output is None:
        if sys.stdout.isatty():
            raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or "
                             "redirect")
        diff.write_tree(tree, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    with _atomic_output(args.output) as out:
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
    c = _Container(args.container)
    with _paused(c, args.pause.lower().lstrip("=") not in ("false", "0")):
        image = commit(c, args.reference, author=args.author, message=args.message,
                       changes=args.change)
    print(image.id)
    return 0


@contextlib.contextmanager
def _paused(c: _Container, pause: bool) -> Iterator[None]:
    """Freeze a running container's cgroup while its files are read, as Docker's commit does.

    A container without a cgroup record (started by an older minidocker) cannot be frozen;
    its files are read while it runs.
    """
    record = _read_json(os.path.join(c.dir, "state.json")).get("Cgroup")
    if not (pause and isinstance(record, dict) and _is_running(c.dir)):
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


def commit(c: _Container, ref: str | None, *, author: str | None = None,
           message: str | None = None, changes: list[str] | tuple[str, ...] = ()) -> Image:
    """A new image: the container's image plus one layer of its changes (``docker commit``)."""
    import tempfile
    from pathlib import Path

    from minidocker import diff, instructions
    from minidocker.store import timestamp

    store = c.store
    image_id = c.config.get("image_id")
    try:
        base = store.lookup(str(image_id))
    except ImageError:
        raise ImageError(f"container {c.id[:12]}: its image {image_id} was removed, so there is "
                         "nothing to commit onto") from None
    run_config = instructions.apply(_container_run_config(c.config, base), list(changes))
    stack = c.image_stack()
    with store.writing():
        fd, name = tempfile.mkstemp(prefix=f"commit-{os.getpid()}-", suffix=".tar",
                                    dir=store.tmp_dir)
        staged = Path(name)
        try:
            with open(fd, "wb") as out:
                if c.driver == "vfs":
                    diff.write_changes_layer(c.top, diff.tree_changes(c.top, stack, c.ignore()),
                                             out)
                else:
                    diff.write_upper_layer(c.top, out, c.ignore())
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
