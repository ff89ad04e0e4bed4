"""Layers in the image store: each unpacked once, shared, and collected when nothing needs it.

Beside the OCI layout of :mod:`minidocker.blobs`, under the same root::

    layers/<chain-id-hex>/   each layer unpacked once, an overlayfs lowerdir shared by images

- **Publish in dependency order**: a layer's blob and directory are in place before any config
  or manifest names them (:mod:`minidocker.store` writes those after).
- **Bad input changes nothing**: an unsafe or truncated tarball is refused before anything is
  renamed into place, and its temporary files are removed.
- **A layer is verified when it is unpacked**: the blob against its digest, the tar against its
  diff ID, both while the files are made (:meth:`LayerStore.stage_layer`).
- **A layer is deleted by renaming it into** ``tmp/`` **first**: a half-deleted layer is never
  visible either (:meth:`LayerStore.collect_garbage`, under the exclusive lock).
- **Layers are kept in the storage driver's format** (:mod:`minidocker.graphdriver`): whiteouts
  as overlay devices and xattrs, or, under ``vfs``, as the OCI ``.wh.`` files.

Notebook: ``05_images``.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

from minidocker import layers
from minidocker.blobs import DIGEST, OciLayout, list_dir
from minidocker.errors import CorruptBlob, ImageError, RegistryError
from minidocker.ocispec import GZIP_LAYERS, MEDIA_LAYER, PLAIN_LAYERS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from minidocker.layers import Readable
    from minidocker.store import Image


class Layer:
    """A layer as an image lists it: its blob's descriptor and the digest of its tar."""

    __slots__ = ("descriptor", "diff_id")

    def __init__(self, descriptor: dict[str, Any], diff_id: str) -> None:
        self.descriptor = descriptor
        self.diff_id = diff_id

    def __repr__(self) -> str:
        return f"Layer({self.descriptor['digest']}, diff_id={self.diff_id})"



class LayerStore(OciLayout):
    """The unpacked layers under ``root/layers``, beside the blobs they come from."""

    # -- reading --------------------------------------------------------------------------------

    def layer_path(self, chain_id: str) -> Path:
        return self.layers_dir / self.blob_path(chain_id).name

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

    @property
    def whiteouts(self) -> str:
        """How layers here keep whiteouts: ``"overlay"``, or ``"oci"`` under the vfs driver."""
        if self._whiteouts is None:
            from minidocker import graphdriver

            vfs = graphdriver.current(str(self.root)) == "vfs"
            self._whiteouts = "oci" if vfs else "overlay"
        return self._whiteouts

    # -- writing --------------------------------------------------------------------------------

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

    def _unpack_blob(self, descriptor: dict[str, Any], diff_id: str, path: Path) -> None:
        try:
            raw = open(self.blob_path(descriptor["digest"]), "rb")  # noqa: SIM115 -- closed below
        except FileNotFoundError:
            raise CorruptBlob(f"blob {descriptor['digest']} is missing from "
                              f"{self.blobs_dir}") from None
        with raw:
            stage = self.stage_layer(raw, descriptor, diff_id)
        layers.publish_staged(stage, path)

    def stage_layer(self, raw: Readable, descriptor: dict[str, Any], diff_id: str) -> Path:
        """Unpack the layer blob read from ``raw`` into ``tmp/``, checking both its digest
        (``descriptor``'s) and its diff ID; return the staged directory (not yet published)."""
        import gzip
        import zlib
        from typing import cast

        self._ensure_layout()
        digest, media_type = descriptor["digest"], descriptor.get("mediaType", MEDIA_LAYER)
        if media_type not in PLAIN_LAYERS + GZIP_LAYERS:
            raise ImageError(f"layer {digest}: unsupported media type {media_type}")
        # A download hashes as it goes (minidocker.registry.download): not twice.
        blob = raw if isinstance(raw, layers.HashingReader) else layers.HashingReader(raw)
        # Gunzip reading forward only ever calls read() on the hasher. An uncompressed
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
            if isinstance(exc, (CorruptBlob, RegistryError)):
                raise  # a download's own failure: it says what happened
            # A damaged blob shows up as a damaged tar: say which one it really is.
            blob.drain()
            if blob.digest != digest:
                raise CorruptBlob(f"blob {digest} does not match its digest (changed on "
                                  f"disk: {blob.digest})") from exc
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"layer {digest}: corrupt gzip data ({exc})") from exc

    # -- collecting -----------------------------------------------------------------------------

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
        for name in list_dir(self.blobs_dir):
            if f"sha256:{name}" not in blobs:
                path = self.blobs_dir / name
                freed += path.lstat().st_size
                path.unlink()
        deleted = []
        for name in list_dir(self.layers_dir):
            if name in chains or name in keep_layers:
                continue
            doomed = self.tmp_dir / f"gc-{os.getpid()}-{name}"
            os.rename(self.layers_dir / name, doomed)  # gone from layers/ in one step
            freed += _remove_counting(doomed)
            deleted.append(f"sha256:{name}")
        for name in list_dir(self.tmp_dir):  # no writer holds the lock: all of it is garbage
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
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest) or depth > 8:
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

