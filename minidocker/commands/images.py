"""Image commands: ``images``, ``image ...``, ``tag``, ``rmi`` and ``history``.

Each parses its arguments, calls the mechanism (:mod:`minidocker.store`) and prints what Docker
prints. Tarballs in and out of the store (``save``, ``load``, ``import``) are in
:mod:`minidocker.commands.archives`; a container's changes (``diff``, ``commit``, ``export``) in
:mod:`minidocker.commands.changes`. The command line finds every image command here, so their
``cmd_`` functions stay importable from this module, each importing its own only when called.
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
    from typing import Any

    from minidocker.state import Layout
    from minidocker.store import Image, ImageStore


def _store() -> ImageStore:
    from minidocker import state
    from minidocker.store import ImageStore

    return ImageStore(state.Layout().root)


# -- tag, rmi -----------------------------------------------------------------------------------

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
    ``commit`` leaves it), and so is one with the same layers as a newer image (a build's step
    that changed only the config): ``images`` hides such *intermediate* images unless ``-a``.
    """
    from minidocker.reference import parse

    images = store.list_images()
    children_of: set[tuple[str, ...]] = set()
    newest: dict[tuple[str, ...], str] = {}
    for image in images:
        ids = tuple(image.diff_ids)
        children_of.update(ids[:n] for n in range(len(ids)))  # () : FROM scratch's base
        newest[ids] = max(newest.get(ids, ""), image.created)
    rows = []
    for image in images:
        if image.ref is None:
            repo, tag = "<none>", "<none>"
        else:
            reference = parse(image.ref)
            repo, tag = reference.familiar_name, reference.tag or "<none>"
        ids = tuple(image.diff_ids)
        intermediate = image.ref is None and (ids in children_of
                                              or newest[ids] > image.created)
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


# -- the commands that live elsewhere, found here by the command line ------------------------------

def cmd_import(argv: list[str]) -> int:
    from minidocker.commands import archives

    return archives.cmd_import(argv)


def cmd_save(argv: list[str]) -> int:
    from minidocker.commands import archives

    return archives.cmd_save(argv)


def cmd_load(argv: list[str]) -> int:
    from minidocker.commands import archives

    return archives.cmd_load(argv)


def cmd_diff(argv: list[str]) -> int:
    from minidocker.commands import changes

    return changes.cmd_diff(argv)


def cmd_export(argv: list[str]) -> int:
    from minidocker.commands import changes

    return changes.cmd_export(argv)


def cmd_commit(argv: list[str]) -> int:
    from minidocker.commands import changes

    return changes.cmd_commit(argv)
