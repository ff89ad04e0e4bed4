"""The image store: images kept as an OCI image layout, layers unpacked once and shared.

An image is data addressed by digest (OCI image-spec): a *config* (the JSON that says how to run
it and lists its layers' diff IDs), a *manifest* (the JSON that points at the config and the
layer blobs by digest), and the layer tars themselves. The image ID is the config's digest; a
name such as ``busybox:latest`` is only a label pointing at a manifest.

The store is built in three layers, one module each, a class standing on the one below:

- :mod:`minidocker.blobs` (``OciLayout``): the OCI image layout under ``images/``, blobs named by
  digest, ``index.json``, staging in ``tmp/``, and the locks writers and the collector take;
- :mod:`minidocker.layerstore` (``LayerStore``): ``layers/<chain-id-hex>/``, each layer unpacked
  once and shared by images, verified when unpacked, and garbage collection;
- here (``ImageStore``): images, their names and tags, ``rmi``'s rules and ``import``.

Invariants a learner should check in the code (and the two modules below):

- **Nothing half-written is visible**, and **bad input changes nothing**: see
  :mod:`minidocker.blobs` and :mod:`minidocker.layerstore`.
- **Publish in dependency order**: layer blobs and directories, then config, then manifest, then
  the index entry, so an entry never points at something missing (:meth:`ImageStore.write_image`).
- **Reading is cheap**: resolving a name reads three small JSON files and hashes nothing (blobs
  were verified when written; layers are verified when unpacked). ``minidocker run`` starts
  here, so tarfile, hashlib and gzip are imported only when a layer is written or unpacked.

Every change to ``index.json`` replaces it by rename(2): :mod:`minidocker.imagecache` trusts
its cache only while ``index.json``'s inode, size and mtime stay the same.

Notebook: ``05_images``.
"""

from __future__ import annotations

import io
import json
import re
import time
from contextlib import contextmanager
from pathlib import Path

from minidocker import layers
from minidocker.blobs import DEFAULT_ROOT as DEFAULT_ROOT
from minidocker.blobs import json_bytes
from minidocker.errors import CorruptBlob, ImageError, ImageNotFound, InvalidReference, UsageError
from minidocker.layerstore import Layer as Layer
from minidocker.layerstore import LayerStore
from minidocker.ocispec import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    CONFIG_FIELDS,
    DEFAULT_PATH_ENV,
    DOCKER_MANIFEST,
    MEDIA_CONFIG,
    MEDIA_MANIFEST,
    host_architecture,
)

# Re-exported for callers that name them as store.X: notebook 05 prints store.MEDIA_*, and the
# registry puller imports the layer types from here.
from minidocker.ocispec import DOCKER_LAYER as DOCKER_LAYER
from minidocker.ocispec import DOCKER_LAYER_GZIP as DOCKER_LAYER_GZIP
from minidocker.ocispec import MEDIA_LAYER as MEDIA_LAYER
from minidocker.ocispec import MEDIA_LAYER_GZIP as MEDIA_LAYER_GZIP
from minidocker.reference import Reference, parse

# Not `from typing import TYPE_CHECKING`: importing typing alone costs ~2 ms of the start-up
# budget. Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and dataclasses cost milliseconds at run time: annotations only
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

    from minidocker.layers import Readable

BUILTIN_IMAGES = ("docker.io/library/busybox:latest",)

_ID_PREFIX = re.compile(r"[0-9a-f]{4,63}")


class Image:
    """An image found in the store. ``id`` is the config digest, as ``docker images`` shows."""

    __slots__ = ("id", "ref", "config", "manifest_digest", "manifest", "store")

    def __init__(self, id: str, ref: str | None, config: dict[str, Any], manifest_digest: str,
                 manifest: dict[str, Any], store: ImageStore) -> None:
        self.id = id
        self.ref = ref  # the familiar name it was found by (busybox:latest), None if untagged
        self.config = config
        self.manifest_digest = manifest_digest
        self.manifest = manifest
        self.store = store

    def __repr__(self) -> str:
        return f"Image({self.ref or '<none>'}, id={self.id})"

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def size(self) -> int:
        return sum(int(layer["size"]) for layer in self.manifest.get("layers", []))

    def chain_ids(self) -> list[str]:
        return layers.chain_ids(self.diff_ids)

    @property
    def created(self) -> str:
        return str(self.config.get("created") or "")

    @property
    def history(self) -> list[dict[str, Any]]:
        return [h for h in self.config.get("history") or [] if isinstance(h, dict)]

    def layers(self) -> list[Layer]:
        """The manifest's layer descriptors paired with the config's diff IDs, base first."""
        descriptors = self.manifest.get("layers", [])
        if len(descriptors) != len(self.diff_ids):
            raise CorruptBlob(f"image {self.id}: manifest lists {len(descriptors)} layers, "
                              f"config {len(self.diff_ids)}")
        return [Layer(d, diff_id) for d, diff_id in zip(descriptors, self.diff_ids, strict=True)]

    def layer_dirs(self) -> list[Path]:
        """The unpacked layers in overlayfs ``lowerdir`` order: the topmost layer first."""
        return self.store.layer_dirs(self)


class ImageStore(LayerStore):
    """The images under ``root``; see the module docstring for the layout."""

    # -- reading --------------------------------------------------------------------------------

    def resolve(self, ref: str) -> Image:
        """Find an image by name[:tag], name@digest or image ID (unambiguous hex prefix).

        The built-in ``busybox:latest`` is built from the host's busybox when missing.
        """
        index = self._read_index()
        if ref.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{64}", ref):
            image = self._by_id(index, ref)  # an ID, never a name (parse() refuses these)
            if image is None:
                raise ImageNotFound(f"unable to find image '{ref}' locally")
            return image
        reference = parse(ref)
        entry = _find_entry(index, reference)
        if entry is not None:
            return self._load(entry)
        # Like Docker: a name first, then an ID prefix ("abcd" is a valid name too).
        if _ID_PREFIX.fullmatch(ref) and (image := self._by_id(index, ref)):
            return image
        if reference.canonical in BUILTIN_IMAGES:
            from minidocker.busybox import install  # the built-in image, built on demand

            return install(self)
        raise ImageNotFound(f"unable to find image '{reference.familiar}' locally")

    def list_images(self) -> list[Image]:
        """Every image in the index, one per name; an untagged image has ``ref`` None."""
        return [self._load(entry) for entry in self._read_index()["manifests"]]

    def lookup(self, ref: str) -> Image:
        """Like :meth:`resolve`, but never builds the built-in image: for ``rmi``."""
        return self._lookup(self._read_index(), ref)[0]

    def _lookup(self, index: dict[str, Any], ref: str) -> tuple[Image, dict[str, Any] | None]:
        """The image ``ref`` names, and the index entry if it was found by name, not by ID."""
        if not (ref.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{64}", ref)):
            try:
                entry = _find_entry(index, parse(ref))
            except InvalidReference:
                entry = None
            if entry is not None:
                return self._load(entry), entry
        image = self._by_id(index, ref) if (ref.startswith("sha256:") or
                                            _ID_PREFIX.fullmatch(ref) or
                                            re.fullmatch(r"[0-9a-f]{64}", ref)) else None
        if image is None:
            raise ImageNotFound(f"no such image: {ref}")
        return image, None

    def by_manifest(self, digest: str) -> Image:
        """The image whose manifest is ``digest``, untagged (a build step's: its cache keeps
        the digest, so a hit reads two small blobs and scans no index)."""
        return self._load({"digest": digest})

    def image_size(self, image: Image) -> int:
        """What ``docker images`` calls SIZE: every layer, uncompressed."""
        return sum(self.layer_size(d) for d in image.manifest.get("layers", []))

    # -- removing -------------------------------------------------------------------------------

    def remove(self, ref: str, *, force: bool = False,
               users: Callable[[str], list[tuple[str, bool]]] = lambda image_id: []
               ) -> list[tuple[str, str]]:
        """``docker rmi`` of one image: untag it, and delete it when no name is left.

        ``users(image_id)`` lists the containers made from an image as ``(id, running)``. The
        rules are Docker's (daemon/images/image_delete.go): a name is only untagged if other
        names keep the image; the last name, or an ID, deletes the image, which a stopped
        container's use refuses unless ``force`` and a running container's use refuses always.
        Returns ``[("Untagged", name), ("Deleted", id)...]``. Nothing is changed on refusal.
        Blobs and layers are freed by :meth:`collect_garbage`.
        """
        with self.writing(), self._index_lock():
            index = self._read_index()
            image, entry = self._lookup(index, ref)
            same = [e for e in index["manifests"] if self._entry_image_id(e) == image.id]
            names = sorted({_familiar(e) for e in same if _entry_name(e)})
            short = image.short_id
            containers = users(image.id)
            running = [cid for cid, alive in containers if alive]
            last = len(names) <= 1
            if entry is not None:  # by name: untag, and delete only with the last name
                if last and containers and not force:
                    raise ImageError(f'conflict: unable to remove repository reference "{ref}" '
                                     f"(must force) - container {containers[0][0][:12]} is using "
                                     f"its referenced image {short}")
                records = [("Untagged", _familiar(entry))]
                if not last:
                    name = _entry_name(entry)
                    index["manifests"] = [e for e in index["manifests"]
                                          if _entry_name(e) != name]
                    self._write_index(index)
                    return records
            else:
                if not last and not force:
                    raise ImageError(f"conflict: unable to delete {short} (must be forced) - "
                                     "image is referenced in multiple repositories")
                if containers and not running and not force:
                    raise ImageError(f"conflict: unable to delete {short} (must be forced) - "
                                     f"image is being used by stopped container "
                                     f"{containers[0][0][:12]}")
                records = [("Untagged", n) for n in names]
            if running:  # its layers are mounted: never, whatever force says
                raise ImageError(f"conflict: unable to delete {short} (cannot be forced) - "
                                 f"image is being used by running container {running[0][:12]}")
            index["manifests"] = [e for e in index["manifests"]
                                  if self._entry_image_id(e) != image.id]
            self._write_index(index)
            return [*records, ("Deleted", image.id)]

    def _entry_image_id(self, entry: dict[str, Any]) -> str | None:
        try:
            return self._load(entry).id
        except ImageError:
            return None

    # -- writing --------------------------------------------------------------------------------

    def write_image(self, config: dict[str, Any], image_layers: list[Layer],
                    ref: str | Reference | None = None) -> Image:
        """Write config and manifest for layers already stored, then name the image ``ref``."""
        reference = parse(ref) if isinstance(ref, str) else ref
        if reference is not None and reference.digest:
            raise InvalidReference(f"invalid reference format: cannot name an image with a "
                                   f"digest ({reference.familiar})")
        with self.writing():
            return self._write_image(config, image_layers, reference)

    def _write_image(self, config: dict[str, Any], image_layers: list[Layer],
                     reference: Reference | None) -> Image:
        config = {**config, "rootfs": {"type": "layers",
                                       "diff_ids": [layer.diff_id for layer in image_layers]}}
        config_descriptor = self.write_blob(json_bytes(config), MEDIA_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config_descriptor,
                    "layers": [layer.descriptor for layer in image_layers]}
        descriptor = self.write_blob(json_bytes(manifest), MEDIA_MANIFEST)
        descriptor["platform"] = {"architecture": config.get("architecture", host_architecture()),
                                  "os": config.get("os", "linux")}
        self._add_to_index(descriptor, reference)
        return Image(config_descriptor["digest"], reference.familiar if reference else None,
                     config, descriptor["digest"], manifest, self)

    def import_tarball(self, src: str | Path | BinaryIO, ref: str | None,
                       changes: dict[str, Any] | None = None, message: str | None = None
                       ) -> Image:
        """``minidocker import``: a rootfs tar (plain or gzip; ``-`` is stdin) as a new image.

        ``changes`` sets fields of the config's ``config`` object (``Cmd``, ``Env``...), as
        ``docker import --change`` does once its Dockerfile syntax is parsed.
        """
        import gzip
        import zlib

        reference = parse(ref) if ref is not None else None  # refuse a bad name before writing
        if reference is not None and reference.digest:
            raise InvalidReference(f"invalid reference format: cannot import to a digest ({ref})")
        run_config = _run_config(changes or {})
        label = _source_label(src)
        with self.writing(), open_source(src, label) as raw:
            try:
                layer = self.add_layer(_decompressed(raw, label), label=label)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise ImageError(f"invalid tar archive {label}: truncated or corrupt gzip "
                                 f"data ({exc})") from exc
            created = timestamp()
            history = {"created": created, "created_by": f"minidocker import {label}",
                       "comment": message or f"Imported from {label}"}
            config = {"created": created, "architecture": host_architecture(), "os": "linux",
                      "config": run_config, "history": [history]}
            return self.write_image(config, [layer], reference)

    def tag(self, src: str, new: str) -> Image:
        """Point the name ``new`` at the image ``src`` (``docker tag``)."""
        image = self.resolve(src)
        reference = parse(new)
        if reference.digest:
            raise InvalidReference(f"invalid reference format: cannot tag with a digest ({new})")
        entry = next((e for e in self._read_index()["manifests"]
                      if e["digest"] == image.manifest_digest), None)
        if entry is None:  # removed since we resolved it
            raise ImageNotFound(f"unable to find image '{src}' locally")
        with self.writing():
            self._add_to_index(_untagged(entry), reference)
        return Image(image.id, reference.familiar, image.config, image.manifest_digest,
                     image.manifest, self)

    def name_images(self, named: list[tuple[dict[str, Any], list[Reference]]]) -> list[str]:
        """Add index entries for manifests already stored, in one index write.

        ``named`` pairs a manifest descriptor with the names to give it (none: untagged).
        Returns Docker's notes for names taken from another image.
        """
        notes = []
        with self.writing(), self._index_lock():
            index = self._read_index()
            for descriptor, references in named:
                for reference in references:
                    old = _find_entry(index, reference)
                    if old is not None and old["digest"] != descriptor["digest"]:
                        old_id = self._entry_image_id(old)
                        notes.append(f"The image {reference.familiar} already exists, renaming "
                                     f"the old one with ID {old_id} to empty string")
                entries = [_untagged(e) if any(_entry_name(e) == r.canonical
                                               for r in references) else e
                           for e in index["manifests"]]
                entries += ([_tagged(descriptor, r) for r in references] if references
                            else [_untagged(descriptor)])
                index["manifests"] = _dedupe(entries)
            self._write_index(index)
        return notes

    # -- internals ------------------------------------------------------------------------------

    def _add_to_index(self, descriptor: dict[str, Any], reference: Reference | None) -> None:
        with self._index_lock():  # read-modify-write: concurrent writers must not lose entries
            index = self._read_index()
            entries = []
            for entry in index["manifests"]:
                if reference is not None and _entry_name(entry) == reference.canonical:
                    entry = _untagged(entry)  # re-pointed: the old image stays, untagged
                entries.append(entry)
            entries.append(_tagged(descriptor, reference) if reference else _untagged(descriptor))
            index["manifests"] = _dedupe(entries)
            self._write_index(index)

    def _load(self, entry: dict[str, Any]) -> Image:
        manifest = self._read_json(entry, "manifest")
        if manifest.get("mediaType", MEDIA_MANIFEST) not in (MEDIA_MANIFEST, DOCKER_MANIFEST):
            raise ImageError(f"manifest {entry['digest']}: unsupported media type "
                             f"{manifest.get('mediaType')}")
        config_descriptor = manifest.get("config")
        if not isinstance(config_descriptor, dict):
            raise CorruptBlob(f"manifest {entry['digest']} has no config descriptor")
        config = self._read_json(config_descriptor, "config")
        name = _entry_name(entry)
        ref = entry.get("annotations", {}).get(ANNOTATION_REF_NAME) if name else None
        if name and not isinstance(ref, str):
            ref = parse(name).familiar
        return Image(config_descriptor["digest"], ref, config, entry["digest"], manifest, self)

    def _read_json(self, descriptor: dict[str, Any], what: str) -> dict[str, Any]:
        """A small JSON blob, checked by size only: see "Reading is cheap" above."""
        digest = descriptor["digest"]
        data = self.read_blob(digest, verify=False)
        if len(data) != descriptor.get("size", len(data)):
            raise CorruptBlob(f"blob {digest} ({what}) is {len(data)} bytes, "
                              f"expected {descriptor['size']}")
        try:
            value = json.loads(data)
        except ValueError:
            raise CorruptBlob(f"blob {digest} ({what}) is not valid JSON") from None
        if not isinstance(value, dict):
            raise CorruptBlob(f"blob {digest} ({what}) is not a JSON object")
        return value

    def _by_id(self, index: dict[str, Any], ref: str) -> Image | None:
        prefix = ref.removeprefix("sha256:")
        found: dict[str, Image] = {}
        for entry in index["manifests"]:
            image = self._load(entry)
            if image.id.removeprefix("sha256:").startswith(prefix):
                found.setdefault(image.id, image)  # first entry wins: it carries a name
        if len(found) > 1:
            raise ImageError(f"image ID prefix '{ref}' is ambiguous: it matches "
                             f"{len(found)} images")
        return next(iter(found.values()), None)


# -- helpers --------------------------------------------------------------------------------------

def timestamp() -> str:
    from minidocker.timefmt import format_time

    return format_time(time.time_ns(), fixed=True)  # all nine digits, as docker commit writes


def _familiar(entry: dict[str, Any]) -> str:
    name = _entry_name(entry)
    return parse(name).familiar if name else "<none>:<none>"


def _entry_name(entry: dict[str, Any]) -> str | None:
    """The canonical name an index entry carries, if any."""
    annotations = entry.get("annotations", {})
    name = annotations.get(ANNOTATION_IMAGE_NAME)
    if name is None and ANNOTATION_REF_NAME in annotations:
        try:  # a layout written by another tool may only have the familiar name
            name = parse(annotations[ANNOTATION_REF_NAME]).canonical
        except InvalidReference:
            return None
    return name if isinstance(name, str) else None


def _find_entry(index: dict[str, Any], reference: Reference) -> dict[str, Any] | None:
    for entry in index["manifests"]:
        name = _entry_name(entry)
        if reference.digest:
            # name@sha256:...: the manifest digest pins the image; the repository must agree.
            if entry["digest"] == reference.digest and (
                    name is None or name.rpartition(":")[0] == reference.name):
                return entry
        elif name == reference.canonical:
            return entry
    return None


def _tagged(descriptor: dict[str, Any], reference: Reference) -> dict[str, Any]:
    annotations = {ANNOTATION_REF_NAME: reference.familiar,
                   ANNOTATION_IMAGE_NAME: reference.canonical}
    return {**_untagged(descriptor), "annotations": annotations}


def _untagged(entry: dict[str, Any]) -> dict[str, Any]:
    annotations = {k: v for k, v in entry.get("annotations", {}).items()
                   if k not in (ANNOTATION_REF_NAME, ANNOTATION_IMAGE_NAME)}
    bare = {k: v for k, v in entry.items() if k != "annotations"}
    return {**bare, "annotations": annotations} if annotations else bare


def _dedupe(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (manifest, name); an untagged entry only if no name holds the manifest."""
    named = {e["digest"] for e in entries if _entry_name(e)}
    seen: set[tuple[str, str | None]] = set()
    kept = []
    for entry in entries:
        key = (entry["digest"], _entry_name(entry))
        if key in seen or (key[1] is None and key[0] in named):
            continue
        seen.add(key)
        kept.append(entry)
    return kept


def _run_config(changes: dict[str, Any]) -> dict[str, Any]:
    from minidocker.buildconfig import merge_env  # ENV's rule, as commit --change has it

    unknown = sorted(set(changes) - set(CONFIG_FIELDS))
    if unknown:
        raise UsageError(f"cannot change image config field '{unknown[0]}': "
                         f"known fields are {', '.join(CONFIG_FIELDS)}")
    config: dict[str, Any] = {"Env": [DEFAULT_PATH_ENV]}
    for key, value in changes.items():
        config[key] = merge_env(config["Env"], value) if key == "Env" else value
    return config


def _source_label(src: str | Path | BinaryIO) -> str:
    """How history and messages name the source: its path, or ``-`` for stdin, as Docker."""
    if isinstance(src, str | Path):
        return str(src)
    name = getattr(src, "name", "-")
    return "-" if name in ("<stdin>", 0) else str(name)


@contextmanager
def open_source(src: str | Path | BinaryIO, label: str) -> Iterator[BinaryIO]:
    """``src`` read as bytes: an open stream as is, ``-`` as stdin, else the file, opened here
    and closed after; a file that cannot be opened is a UsageError naming ``label``."""
    if not isinstance(src, str | Path):
        yield src
        return
    if str(src) == "-":
        import sys

        yield sys.stdin.buffer
        return
    try:
        f = open(src, "rb")  # noqa: SIM115 -- closed below; only open() errors become ours
    except OSError as exc:
        raise UsageError(f"cannot open {label}: {exc.strerror}") from None
    with f:
        yield f


def _decompressed(raw: BinaryIO, label: str) -> Readable:
    """The tar inside ``raw``: gzip is detected by its magic number, as ``docker import`` does."""
    kind = layers.compression(_peek(raw, 6))
    if kind not in (None, "gzip"):  # docker import takes these too; we do not (yet)
        raise ImageError(f"{label} is {kind}-compressed: minidocker imports plain or gzip "
                         "tarballs")
    return layers.decompressed(raw, kind)


def _peek(raw: BinaryIO, n: int) -> bytes:
    if isinstance(raw, io.BufferedReader):  # files and stdin: peek without consuming
        return raw.peek(n)[:n]
    if raw.seekable():
        head = raw.read(n)
        raw.seek(-len(head), io.SEEK_CUR)
        return head
    raise UsageError(f"cannot read {_source_label(raw)}: need a file, a pipe or a seekable stream")
