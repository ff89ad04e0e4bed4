"""The image store: images kept as an OCI image layout, layers unpacked once and shared.

An image is data addressed by digest (OCI image-spec): a *config* (the JSON that says how to run
it and lists its layers' diff IDs), a *manifest* (the JSON that points at the config and the
layer blobs by digest), and the layer tars themselves. The image ID is the config's digest; a
name such as ``busybox:latest`` is only a label pointing at a manifest.

On disk, under the state root (``/var/lib/minidocker``)::

    images/                  an OCI image layout (image-spec ``image-layout.md``), readable by
      oci-layout             skopeo, umoci and plain ``json.load``
      index.json             one descriptor per image: manifest digest + name annotations
      blobs/sha256/<hex>     manifests, configs and layer tars, named by their sha256
    layers/<chain-id-hex>/   each layer unpacked once, an overlayfs lowerdir shared by images
    tmp/                     staging: same filesystem, so rename(2) can publish atomically

Invariants a learner should check in the code:

- **Nothing half-written is visible.** A blob is written to ``tmp/``, fsynced, checked against
  its digest and renamed into ``blobs/``; a layer is unpacked in ``tmp/`` and renamed into
  ``layers/``; ``index.json`` is replaced by rename under an exclusive ``flock(2)`` on
  ``images/.lock``. Readers take no lock: rename(2) gives them the old file or the new one.
- **Publish in dependency order**: layer blobs and directories, then config, then manifest, then
  the index entry, so an entry never points at something missing.
- **Bad input changes nothing**: a bad reference, an unsafe or truncated tarball is refused
  before anything is renamed into place, and its temporary files are removed.
- **Reading is cheap**: resolving a name reads three small JSON files and hashes nothing (blobs
  were verified when written; layers are verified when unpacked). ``minidocker run`` starts
  here, so tarfile, hashlib and gzip are imported only when a layer is written or unpacked.
- **Garbage is collected under a lock.** Every writer holds a shared flock(2) on
  ``images/.gc-lock`` from its first staged byte to its index entry; ``rmi`` and ``image
  prune`` take it exclusively, so they never delete a blob that a ``load`` has published but
  not yet named, and everything left in ``tmp/`` then belongs to a writer that died (``kill
  -9``) and can go. A layer is deleted by renaming it into ``tmp/`` first: a half-deleted
  layer is never visible either.
- **Layers are kept in the storage driver's format** (:mod:`minidocker.graphdriver`): whiteouts
  as overlay devices and xattrs, or, under ``vfs``, as the OCI ``.wh.`` files.

Every change to ``index.json`` replaces it by rename(2): :mod:`minidocker.imagecache` trusts
its cache only while ``index.json``'s inode, size and mtime stay the same.

Notebook: ``05_images``.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import time
from contextlib import contextmanager
from pathlib import Path

from minidocker import layers
from minidocker.errors import CorruptBlob, ImageError, ImageNotFound, InvalidReference, UsageError
from minidocker.ocispec import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    CONFIG_FIELDS,
    DEFAULT_PATH_ENV,
    DOCKER_MANIFEST,
    GZIP_LAYERS,
    LAYOUT_VERSION,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    PLAIN_LAYERS,
    host_architecture,
)

# Re-exported for callers that name them as store.X: notebook 05 prints store.MEDIA_*, and the
# registry puller imports the layer types from here.
from minidocker.ocispec import DOCKER_LAYER as DOCKER_LAYER
from minidocker.ocispec import DOCKER_LAYER_GZIP as DOCKER_LAYER_GZIP
from minidocker.ocispec import MEDIA_LAYER_GZIP as MEDIA_LAYER_GZIP
from minidocker.reference import Reference, parse

# Not `from typing import TYPE_CHECKING`: importing typing alone costs ~2 ms of the start-up
# budget. Type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and dataclasses cost milliseconds at run time: annotations only
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

    from minidocker.layers import Readable

DEFAULT_ROOT = Path("/var/lib/minidocker")

BUILTIN_IMAGES = ("docker.io/library/busybox:latest",)

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ID_PREFIX = re.compile(r"[0-9a-f]{4,63}")


class Layer:
    """A layer as an image lists it: its blob's descriptor and the digest of its tar."""

    __slots__ = ("descriptor", "diff_id")

    def __init__(self, descriptor: dict[str, Any], diff_id: str) -> None:
        self.descriptor = descriptor
        self.diff_id = diff_id

    def __repr__(self) -> str:
        return f"Layer({self.descriptor['digest']}, diff_id={self.diff_id})"


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


class ImageStore:
    """The images under ``root``; see the module docstring for the layout."""

    def __init__(self, root: Path | str = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.images_dir = self.root / "images"  # the OCI image layout
        self.blobs_dir = self.images_dir / "blobs" / "sha256"
        self.layers_dir = self.root / "layers"
        self.tmp_dir = self.root / "tmp"
        self._layout_ready = False
        self._writers = 0  # depth of nested _writing() blocks in this process
        self._gc_fd: int | None = None
        self._whiteouts: str | None = None

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

    def layer_size(self, descriptor: dict[str, Any]) -> int:
        """The uncompressed size of a layer: its tar's size (gzip's trailer says, mod 4 GiB)."""
        if descriptor.get("mediaType") not in GZIP_LAYERS:
            return int(descriptor.get("size", 0))
        try:
            with open(self.blob_path(descriptor["digest"]), "rb") as f:
                f.seek(-4, io.SEEK_END)
                return int.from_bytes(f.read(4), "little")  # ISIZE, RFC 1952
        except OSError:
            return int(descriptor.get("size", 0))

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

    def collect_garbage(self, keep_layers: frozenset[str] | set[str] = frozenset()
                        ) -> tuple[list[str], int]:
        """Delete every blob and layer no image in the index reaches, and ``tmp/``'s leftovers.

        Call it inside :meth:`collecting`. ``keep_layers`` names layer directories containers
        still stand on (their chain ID hex). Returns the chain IDs deleted and the bytes freed.
        """
        import shutil

        blobs: set[str] = set()
        chains: set[str] = set()
        for entry in self._read_index()["manifests"]:
            self._mark(entry, blobs, chains, depth=0)
        freed = 0
        for name in _listdir(self.blobs_dir):
            if f"sha256:{name}" not in blobs:
                path = self.blobs_dir / name
                freed += path.lstat().st_size
                path.unlink()
        deleted = []
        for name in _listdir(self.layers_dir):
            if name in chains or name in keep_layers:
                continue
            doomed = self.tmp_dir / f"gc-{os.getpid()}-{name}"
            os.rename(self.layers_dir / name, doomed)  # gone from layers/ in one step
            freed += _remove_counting(doomed)
            deleted.append(f"sha256:{name}")
        for name in _listdir(self.tmp_dir):  # no writer holds the lock: all of it is garbage
            path = self.tmp_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        return deleted, freed

    def _mark(self, descriptor: dict[str, Any], blobs: set[str], chains: set[str],
              depth: int) -> None:
        """Add what ``descriptor`` reaches (a manifest or an index) to ``blobs`` and ``chains``."""
        digest = descriptor.get("digest")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest) or depth > 8:
            return
        blobs.add(digest)
        try:
            value = json.loads(self.read_blob(digest, verify=False))
        except (CorruptBlob, ValueError, OSError):
            return  # missing or not JSON: it reaches nothing more
        if not isinstance(value, dict):
            return
        for child in value.get("manifests") or []:  # an index inside the index
            if isinstance(child, dict):
                self._mark(child, blobs, chains, depth + 1)
        config = value.get("config")
        if not isinstance(config, dict):
            return
        for d in [config, *(value.get("layers") or [])]:
            if isinstance(d, dict) and isinstance(d.get("digest"), str):
                blobs.add(d["digest"])
        try:
            diff_ids = json.loads(self.read_blob(config["digest"], verify=False))["rootfs"][
                "diff_ids"]
            chains.update(c.removeprefix("sha256:") for c in layers.chain_ids(diff_ids))
        except (CorruptBlob, ValueError, KeyError, TypeError, OSError):
            pass

    def _entry_image_id(self, entry: dict[str, Any]) -> str | None:
        try:
            return self._load(entry).id
        except ImageError:
            return None

    def blob_path(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):
            # Digests come from manifests, which may come from elsewhere: never a path.
            raise ImageError(f"invalid digest '{digest}': want sha256: and 64 lowercase hex")
        return self.blobs_dir / digest.removeprefix("sha256:")

    def layer_path(self, chain_id: str) -> Path:
        return self.layers_dir / self.blob_path(chain_id).name

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob's content as a stream (not verified: for large blobs, hash as you read)."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise CorruptBlob(f"blob {digest} is missing from {self.blobs_dir}") from None

    def read_blob(self, digest: str, verify: bool = True) -> bytes:
        with self.open_blob(digest) as f:
            data = f.read()
        if verify and layers.sha256_digest(data) != digest:
            raise CorruptBlob(f"blob {digest} does not match its digest (changed on disk)")
        return data

    def layer_dirs(self, image: Image) -> list[Path]:
        """Image layers as directories, topmost first, unpacking (and verifying) any missing."""
        descriptors = image.manifest.get("layers", [])
        diff_ids = image.diff_ids
        if len(descriptors) != len(diff_ids):
            raise CorruptBlob(f"image {image.id}: manifest lists {len(descriptors)} layers, "
                              f"config {len(diff_ids)}")
        dirs = []
        for descriptor, diff_id, chain_id in zip(descriptors, diff_ids, layers.chain_ids(diff_ids),
                                                 strict=True):
            path = self.layer_path(chain_id)
            if not path.is_dir():
                with self.writing():
                    self._unpack_blob(descriptor, diff_id, path)
            dirs.append(path)
        return dirs[::-1]  # lowerdir=top:...:base, the reverse of the manifest's order

    # -- writing --------------------------------------------------------------------------------

    def write_blob(self, data: bytes | Readable, media_type: str | None = None,
                   digest: str | None = None) -> dict[str, Any]:
        """Store a blob; return its descriptor. If ``digest`` is given the content must match."""
        self._ensure_layout()
        with self.writing():
            return self._write_blob(data, media_type, digest)

    def _write_blob(self, data: bytes | Readable, media_type: str | None,
                    digest: str | None) -> dict[str, Any]:
        staged, actual, size = self._stage_blob(io.BytesIO(data) if isinstance(data, bytes)
                                                else data)
        try:
            if digest is not None and actual != digest:
                raise CorruptBlob(f"blob {digest} does not match its content ({actual})")
            self._publish_blob(staged, actual)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        descriptor: dict[str, Any] = {"mediaType": media_type} if media_type else {}
        return {**descriptor, "digest": actual, "size": size}

    def add_layer(self, tar_stream: Readable, *, parent: str | None = None,
                  label: str = "layer") -> Layer:
        """Store an uncompressed layer tar and unpack it, refusing it if unsafe.

        ``parent`` is the chain ID of the layer below (``None`` for a base layer). The tar is
        staged first, to learn its diff ID (and so its directory) before unpacking it.
        """
        self._ensure_layout()
        with self.writing():
            staged, diff_id, size = self._stage_blob(tar_stream)
            return self._add_staged_layer(staged, diff_id, size, parent, label)

    def add_staged_layer(self, staged: Path, *, parent: str | None = None,
                         label: str = "layer") -> Layer:
        """Like :meth:`add_layer` for a tar already written to a file in ``tmp/`` (``commit``
        writes one there). The file is hashed, fsynced and becomes the blob, or is removed."""
        self._ensure_layout()
        with self.writing():
            try:
                with open(staged, "rb+") as f:
                    reader = layers.HashingReader(f)
                    reader.drain()
                    os.fsync(f.fileno())
            except BaseException:
                staged.unlink(missing_ok=True)
                raise
            return self._add_staged_layer(staged, reader.digest, reader.size, parent, label)

    def _add_staged_layer(self, staged: Path, diff_id: str, size: int, parent: str | None,
                          label: str) -> Layer:
        try:
            chain_id = diff_id if parent is None else layers.chain_id(parent, diff_id)
            path = self.layer_path(chain_id)
            if not path.is_dir():  # same digest, same content: already unpacked and checked
                with open(staged, "rb") as f:
                    layers.unpack_atomically(f, path, self.tmp_dir, label=label,
                                             whiteouts=self.whiteouts)
            self._publish_blob(staged, diff_id)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        return Layer({"mediaType": MEDIA_LAYER, "digest": diff_id, "size": size}, diff_id)

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
        config_descriptor = self.write_blob(_json_bytes(config), MEDIA_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config_descriptor,
                    "layers": [layer.descriptor for layer in image_layers]}
        descriptor = self.write_blob(_json_bytes(manifest), MEDIA_MANIFEST)
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

    def stage_file(self, src: Readable) -> tuple[Path, str, int]:
        """Copy ``src`` into ``tmp/`` (fsynced): its path, sha256 digest and size. Call inside
        :meth:`writing`; publish it with :meth:`publish_blob`, or unlink it."""
        if not self._writers:
            raise RuntimeError("stage_file() outside writing(): a collector could take it")
        return self._stage_blob(src)

    def publish_blob(self, staged: Path, digest: str) -> None:
        """Rename a file staged by :meth:`stage_file` (whose digest is ``digest``) into blobs/."""
        self._publish_blob(staged, digest)

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

    def _ensure_layout(self) -> None:
        if self._layout_ready:
            return
        self._make_dirs()
        layout = self.images_dir / "oci-layout"
        index = self.images_dir / "index.json"
        if not (layout.exists() and index.exists()):
            with self.writing():  # staged in tmp/: a collector must not take them
                if not layout.exists():
                    self._replace_file(layout,
                                       _json_bytes({"imageLayoutVersion": LAYOUT_VERSION}))
                with self._index_lock():
                    if not index.exists():
                        self._write_index(_empty_index())
        self._layout_ready = True

    def _make_dirs(self) -> None:
        # 0700: layers hold the setuid binaries of images; a world-traversable store lets any
        # host user run them as root (CVE-2021-41091 in Docker). The root itself is shared
        # with container state, so its mode is not ours to choose.
        self.root.mkdir(parents=True, exist_ok=True)
        for path in (self.images_dir, self.blobs_dir.parent, self.blobs_dir, self.layers_dir,
                     self.tmp_dir):
            path.mkdir(mode=0o700, exist_ok=True)
        for lock in (self.images_dir / ".lock", self.images_dir / ".gc-lock"):
            if not lock.exists():  # made now, so that no later command adds a file
                os.close(os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))

    def _read_index(self) -> dict[str, Any]:
        path = self.images_dir / "index.json"
        try:
            index = json.loads(path.read_bytes())
        except FileNotFoundError:
            return _empty_index()
        except ValueError as exc:
            raise ImageError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise ImageError(f"{path} is not an OCI image index")
        return index

    def _write_index(self, index: dict[str, Any]) -> None:
        self._replace_file(self.images_dir / "index.json", json.dumps(index, indent=2).encode())

    @property
    def whiteouts(self) -> str:
        """How layers here keep whiteouts: ``"overlay"``, or ``"oci"`` under the vfs driver."""
        if self._whiteouts is None:
            from minidocker import graphdriver

            vfs = graphdriver.current(str(self.root)) == "vfs"
            self._whiteouts = "oci" if vfs else "overlay"
        return self._whiteouts

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the shared lock every writer holds (see "Garbage is collected under a lock")."""
        import fcntl

        if self._writers == 0:
            self._make_dirs()
            fd = os.open(self.images_dir / ".gc-lock",
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._gc_fd = fd
        self._writers += 1
        try:
            yield
        finally:
            self._writers -= 1
            if self._writers == 0 and self._gc_fd is not None:
                os.close(self._gc_fd)
                self._gc_fd = None

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Hold the lock exclusively: no writer is between staging and naming anything."""
        import fcntl

        if self._writers:
            raise RuntimeError("collecting() inside writing(): it would wait for itself")
        self._make_dirs()
        fd = os.open(self.images_dir / ".gc-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._writers += 1  # writing() inside collecting() holds this lock already
            try:
                yield
            finally:
                self._writers -= 1
        finally:
            os.close(fd)

    @contextmanager
    def _index_lock(self) -> Iterator[None]:
        import fcntl

        fd = os.open(self.images_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last fd releases the flock

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

    def _replace_file(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically: temp file, fsync, rename, fsync directory."""
        staged, _, _ = self._stage_blob(io.BytesIO(data))
        try:
            os.rename(staged, path)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)

    def _stage_blob(self, src: Readable) -> tuple[Path, str, int]:
        """Copy ``src`` to a new file in ``tmp/``, fsynced; return it, its digest and size."""
        import tempfile

        fd, name = tempfile.mkstemp(prefix=f"blob-{os.getpid()}-", dir=self.tmp_dir)
        staged = Path(name)
        try:
            with open(fd, "wb") as out:
                digest, size = layers.copy_hashed(src, out)
                out.flush()
                os.fsync(out.fileno())  # the data is on disk before its name is
        except BaseException:
            staged.unlink()
            raise
        return staged, digest, size

    def _publish_blob(self, staged: Path, digest: str) -> None:
        # rename(2) over an existing blob is harmless (same name, same bytes), and repairs one
        # that was damaged on disk.
        os.rename(staged, self.blob_path(digest))
        _fsync_dir(self.blobs_dir)

    def _unpack_blob(self, descriptor: dict[str, Any], diff_id: str, path: Path) -> None:
        try:
            raw = open(self.blob_path(descriptor["digest"]), "rb")  # noqa: SIM115 -- closed below
        except FileNotFoundError:
            raise CorruptBlob(f"blob {descriptor['digest']} is missing from "
                              f"{self.blobs_dir}") from None
        with raw:
            stage = self.stage_layer(raw, descriptor, diff_id)
        layers.publish_staged(stage, path)

    def stage_layer(self, raw: BinaryIO, descriptor: dict[str, Any], diff_id: str) -> Path:
        """Unpack the layer blob read from ``raw`` into ``tmp/``, checking both its digest
        (``descriptor``'s) and its diff ID; return the staged directory (not yet published)."""
        import gzip
        import zlib
        from typing import cast

        self._ensure_layout()
        digest, media_type = descriptor["digest"], descriptor.get("mediaType", MEDIA_LAYER)
        if media_type not in PLAIN_LAYERS + GZIP_LAYERS:
            raise ImageError(f"layer {digest}: unsupported media type {media_type}")
        blob = layers.HashingReader(raw)
        # GzipFile reading forward only ever calls read() on the hasher. An uncompressed
        # layer's digest is its diff ID: one hash over the bytes is enough.
        tar = (layers.HashingReader(layers.decompressed(cast("BinaryIO", blob), "gzip"))
               if media_type in GZIP_LAYERS else blob)

        def verify() -> None:
            blob.drain()  # bytes after the end of the tar still belong to the blob
            if blob.digest != digest:
                raise CorruptBlob(f"blob {digest} does not match its digest (changed on "
                                  f"disk: {blob.digest})")
            if tar.digest != diff_id:
                raise CorruptBlob(f"layer {digest} does not match its diff ID {diff_id}")

        ahead = layers.ReadAhead(tar)  # decompress and hash while the files are made
        try:
            try:
                return layers.unpack_staged(ahead, self.tmp_dir, label=f"layer {digest}",
                                            verify=verify, whiteouts=self.whiteouts)
            finally:
                ahead.close()  # before anything else reads the blob
        except (ImageError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            if isinstance(exc, CorruptBlob):
                raise
            # A damaged blob shows up as a damaged tar: say which one it really is.
            blob.drain()
            if blob.digest != digest:
                raise CorruptBlob(f"blob {digest} does not match its digest (changed on "
                                  f"disk: {blob.digest})") from exc
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"layer {digest}: corrupt gzip data ({exc})") from exc

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

def _empty_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}


def _json_bytes(value: Any) -> bytes:
    # Compact and in insertion order, so that the same image gives the same digest.
    return json.dumps(value, separators=(",", ":")).encode()


def timestamp() -> str:
    from minidocker.timefmt import format_time

    return format_time(time.time_ns(), fixed=True)  # all nine digits, as docker commit writes


def _familiar(entry: dict[str, Any]) -> str:
    name = _entry_name(entry)
    return parse(name).familiar if name else "<none>:<none>"


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def _remove_counting(path: Path) -> int:
    """``rm -rf path``; the bytes its files held."""
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            total += 0 if stat.S_ISLNK(st.st_mode) else st.st_size
    import shutil

    shutil.rmtree(path)
    return total


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)  # makes the rename itself durable
    finally:
        os.close(fd)


def _run_config(changes: dict[str, Any]) -> dict[str, Any]:
    from minidocker.instructions import merge_env  # ENV's rule, as commit --change has it

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
