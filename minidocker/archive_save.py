"""``save``: images as one tar file, in Docker's format and in the OCI's (the writing half of
:mod:`minidocker.archive`, whose docstring describes both formats).

docker-archive is written in Docker 25's form: an OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/``) plus ``manifest.json``, which every ``docker load`` reads.
Every blob is hashed again as it is copied, so a file changed on disk is refused rather than
saved.

Notebook: ``05_images``. Docker's format: moby ``image/tarexport/save.go``.
"""

from __future__ import annotations

import io
import json
import os
import tarfile

from minidocker import layers
from minidocker.errors import CorruptBlob, InvalidReference, UsageError
from minidocker.ocispec import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    LAYOUT_VERSION,
    MEDIA_INDEX,
    MEDIA_MANIFEST,
    host_architecture,
)
from minidocker.reference import Reference, parse
from minidocker.store import Image, ImageStore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

FORMATS = ("docker-archive", "oci-archive")


# -- save -----------------------------------------------------------------------------------

def select(store: ImageStore, names: list[str]) -> list[tuple[Image, list[Reference]]]:
    """The images ``save`` writes, each with the names it carries in the archive.

    As ``docker save``: ``busybox`` (no tag) is every tag of that repository, ``busybox:1``
    one tag, an image ID the image with no name.
    """
    chosen: dict[str, tuple[Image, list[Reference]]] = {}
    for name in names:
        found: list[tuple[Image, Reference | None]] = []
        tail = name.rpartition("/")[2]
        if ":" not in tail and "@" not in name:
            try:
                repo = parse(name).name
            except InvalidReference:
                repo = None
            if repo is not None:
                for image in store.list_images():
                    if image.ref and parse(image.ref).name == repo:
                        found.append((image, parse(image.ref)))
        if not found:
            image = store.resolve(name)
            reference = None
            if image.ref is not None and not name.startswith("sha256:") and \
                    not image.id.removeprefix("sha256:").startswith(name):
                reference = parse(image.ref)
            found.append((image, reference))
        for image, reference in found:
            entry = chosen.setdefault(image.manifest_digest, (image, []))
            if reference is not None and reference not in entry[1]:
                entry[1].append(reference)
    return list(chosen.values())


def save(store: ImageStore, images: list[tuple[Image, list[Reference]]], out: BinaryIO,
         fmt: str = "docker-archive") -> None:
    """Write ``images`` to ``out`` as one tar: docker-archive (also an OCI layout) or oci."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown archive format '{fmt}': use {' or '.join(FORMATS)}")
    written: set[str] = set()
    index: list[dict[str, Any]] = []
    manifest_json: list[dict[str, Any]] = []
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in ("blobs/", "blobs/sha256/"):
            _add_bytes(tar, path, None)
        for image, references in images:
            descriptor = {"mediaType": image.manifest.get("mediaType", MEDIA_MANIFEST),
                          "digest": image.manifest_digest,
                          "size": store.blob_path(image.manifest_digest).stat().st_size,
                          "platform": {"architecture": image.config.get("architecture",
                                                                        host_architecture()),
                                       "os": image.config.get("os", "linux")}}
            config = image.manifest["config"]
            blob_descriptors = [config, *image.manifest.get("layers", []),
                                {"digest": image.manifest_digest}]
            for blob in blob_descriptors:
                if blob["digest"] not in written:
                    _add_blob(tar, store, blob["digest"])
                    written.add(blob["digest"])
            for reference in references:
                index.append({**descriptor, "annotations": {
                    ANNOTATION_IMAGE_NAME: reference.canonical,
                    ANNOTATION_REF_NAME: reference.familiar}})
            if not references:
                index.append(descriptor)
            manifest_json.append({
                "Config": blob_name(config["digest"]),
                "RepoTags": [r.familiar for r in references],
                "Layers": [blob_name(d["digest"]) for d in image.manifest.get("layers", [])]})
        _add_bytes(tar, "oci-layout", compact_json({"imageLayoutVersion": LAYOUT_VERSION}))
        _add_bytes(tar, "index.json", compact_json({"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                                             "manifests": index}))
        if fmt == "docker-archive":
            _add_bytes(tar, "manifest.json", compact_json(manifest_json))


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uname, info.gname = 0, "", ""
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.mode, info.size = 0o644, len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, store: ImageStore, digest: str) -> None:
    path = store.blob_path(digest)
    with store.open_blob(digest) as f:
        info = tarfile.TarInfo(blob_name(digest))
        info.mtime, info.mode, info.uname, info.gname = 0, 0o644, "", ""
        info.size = os.fstat(f.fileno()).st_size
        hashing = layers.HashingReader(f)
        tar.addfile(info, hashing)  # type: ignore[arg-type,unused-ignore]
        if hashing.digest != digest:  # never hand out a blob that changed on disk
            raise CorruptBlob(f"blob {digest} does not match its digest (changed on disk: "
                              f"{hashing.digest}); {path} is damaged")
