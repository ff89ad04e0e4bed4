"""``save`` and ``load``: images as one tar file, in Docker's format and in the OCI's.

Two formats move images between machines without a registry:

- **docker-archive** (``docker save``/``docker load``). Docker reads one file,
  ``manifest.json``, a list of ``{"Config": path, "RepoTags": [...], "Layers": [paths]}``
  (moby ``image/tarexport``): the config's ``rootfs.diff_ids`` must match the layers, in order,
  and each layer is a tar (compressed or not). Older Docker wrote ``<id>/layer.tar`` and
  ``<id>.json``; since Docker 25 the same archive is also an OCI image layout, with the files
  under ``blobs/sha256/``. minidocker writes the new form, which every ``docker load`` reads.
- **oci-archive**: a tar of an OCI image layout (``oci-layout``, ``index.json``,
  ``blobs/sha256/<digest>``), which skopeo (``oci-archive:``), umoci and podman read.

**Loading is all or nothing.** An archive comes from elsewhere: every file is first copied
into the store's ``tmp/`` while it is hashed; then every manifest, config and layer is checked
(digest, size, media type, that each blob is there at all) and every layer is unpacked and
checked against its diff ID, still in ``tmp/``. Only then is anything renamed into place,
blobs and layers first and the index last, so a bad archive, a full disk or a ``kill -9``
leaves the store as it was (the next ``image prune`` or ``rmi`` sweeps ``tmp/``).

Names: docker-archive's ``RepoTags``; in an OCI archive, the ``io.containerd.image.name``
annotation, else ``org.opencontainers.image.ref.name`` when it is a whole reference
(``busybox:latest``). A bare tag there (``latest``, as Docker writes it) names no repository,
and such an image is loaded untagged.

Notebook: ``05_images``. Specs: the OCI image-spec's ``image-layout.md``, ``manifest.md``,
``config.md``; Docker's format in moby ``image/tarexport/{save,load}.go``.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from contextlib import contextmanager
from pathlib import Path

from minidocker import layers

# The writing half: minidocker.archive_save (its names stay readable here).
from minidocker.archive_save import (  # noqa: F401
    FORMATS,
    blob_name,
    compact_json,
    save,
    select,
)
from minidocker.errors import CorruptBlob, ImageError, InvalidReference
from minidocker.ocispec import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    host_architecture,
)
from minidocker.reference import Reference, parse
from minidocker.store import Image, ImageStore
from minidocker.store import open_source as open_stream

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_INDEX = "application/vnd.docker.distribution.manifest.list.v2+json"
_CONFIGS = (MEDIA_CONFIG, DOCKER_CONFIG)
_MANIFESTS = (MEDIA_MANIFEST, DOCKER_MANIFEST)
_INDEXES = (MEDIA_INDEX, DOCKER_INDEX)
_LAYERS = (MEDIA_LAYER, MEDIA_LAYER_GZIP, DOCKER_LAYER, DOCKER_LAYER_GZIP)
_GZIP = (MEDIA_LAYER_GZIP, DOCKER_LAYER_GZIP)
_MAX_JSON = 16 << 20  # manifests, configs and indexes are small; refuse a memory bomb


# -- load -----------------------------------------------------------------------------------

class _Staged:
    """A file of the archive, copied into the store's ``tmp/`` and hashed on the way."""

    __slots__ = ("path", "digest", "size")

    def __init__(self, path: Path, digest: str, size: int) -> None:
        self.path, self.digest, self.size = path, digest, size


class _Plan:
    """One image of the archive, checked and ready to publish."""

    __slots__ = ("config", "manifest", "manifest_digest", "manifest_media", "layers", "refs")

    def __init__(self) -> None:
        self.config: _Staged
        self.manifest: bytes
        self.manifest_digest: str
        self.manifest_media: str
        self.layers: list[tuple[_Staged, dict[str, Any], str]] = []  # blob, descriptor, diff ID
        self.refs: list[Reference] = []


# Public names for minidocker.registry.pull, which stages a pulled image as load stages one.
Staged = _Staged
Plan = _Plan


class _Archive:
    """The files of an archive, staged: regular files by name, links resolved within it."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.files: dict[str, _Staged] = {}
        self.links: dict[str, str] = {}  # name -> target name (inside the archive)

    def find(self, name: str, what: str) -> _Staged:
        """The staged file ``name`` names, following the archive's own links (at most 16)."""
        current = _norm(name, self.label)
        for _ in range(16):
            if current in self.files:
                return self.files[current]
            if current not in self.links:
                break
            current = self.links[current]
        raise ImageError(f"invalid archive {self.label}: {what} '{name}' is missing")

    def json(self, staged: _Staged, what: str) -> Any:
        if staged.size > _MAX_JSON:
            raise ImageError(f"invalid archive {self.label}: {what} is {staged.size} bytes")
        try:
            return json.loads(staged.path.read_bytes())
        except ValueError:
            raise ImageError(f"invalid archive {self.label}: {what} is not valid JSON") from None


def load(store: ImageStore, src: BinaryIO | Path, label: str) -> tuple[list[str], list[Image]]:
    """``docker load``: every image in the archive read from ``src``, all or nothing.

    ``src`` may also be a directory holding an OCI image layout (as ``skopeo copy ... oci:DIR``
    and ``umoci`` write them). Returns Docker's output lines and the images loaded.
    """
    archive = _Archive(label)
    with store.writing():
        try:
            if isinstance(src, Path):
                _stage_directory(store, src, archive)
            else:
                _stage_members(store, _decompressed(src, label), archive)
            plans = _plan(archive)
            if not plans:
                raise ImageError(f"invalid archive {label}: it holds no image")
            return install(store, plans)
        finally:
            for staged in archive.files.values():
                staged.path.unlink(missing_ok=True)


def install(store: ImageStore, plans: list[_Plan], unpacked: dict[str, Path] | None = None
            ) -> tuple[list[str], list[Image]]:
    """Unpack and check every layer in ``tmp/``, then publish it all: the half of ``load``
    that ``pull`` shares, once its blobs are staged. ``unpacked`` maps chain IDs to layers
    already unpacked and checked in ``tmp/`` (``pull`` unpacks as it downloads); they are
    published or removed with the rest. Call inside ``store.writing()``; the caller removes
    the staged blobs that were not published."""
    staged_dirs: list[Path] = list((unpacked or {}).values())
    try:
        dirs = _unpack_layers(store, plans, staged_dirs, dict(unpacked or {}))
        return _publish(store, plans, dirs, staged_dirs)
    finally:
        for path in staged_dirs:  # anything not published
            if path.exists():
                import shutil

                shutil.rmtree(path)


def _stage_members(store: ImageStore, stream: BinaryIO, archive: _Archive) -> None:
    import zlib

    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = _norm(member.name, archive.label)
                if member.isreg():
                    f = tar.extractfile(member)
                    assert f is not None
                    path, digest, size = store.stage_file(f)
                    old = archive.files.pop(name, None)
                    if old is not None:
                        old.path.unlink()
                    archive.files[name] = _Staged(path, digest, size)
                elif member.issym():
                    base = name.rpartition("/")[0]
                    target = member.linkname if member.linkname.startswith("/") \
                        else f"{base}/{member.linkname}"
                    archive.links[name] = _norm(target.lstrip("/"), archive.label)
                elif member.islnk():
                    archive.links[name] = _norm(member.linkname, archive.label)
        while stream.read(1 << 20):  # the tar's end-of-archive blocks may be followed by zeros
            pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise ImageError(f"invalid archive {archive.label}: truncated or corrupt ({exc})") \
            from None


def _stage_directory(store: ImageStore, root: Path, archive: _Archive) -> None:
    """The files of a layout directory, as if they came in a tar (symlinks are not followed)."""
    for dirpath, _, filenames in os.walk(root):
        for filename in sorted(filenames):
            path = Path(dirpath, filename)
            name = path.relative_to(root).as_posix()
            if path.is_symlink() or not path.is_file():
                continue
            with open(path, "rb") as f:
                archive.files[name] = _Staged(*store.stage_file(f))


def _norm(name: str, label: str) -> str:
    """An archive path without ``./``; ``..`` may not climb out of the archive."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ImageError(f"invalid archive {label}: '{name}' points outside it")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _plan(archive: _Archive) -> list[_Plan]:
    if "manifest.json" in archive.files:
        return _plan_docker(archive)
    if "index.json" in archive.files:
        return _plan_oci(archive)
    raise ImageError(f"invalid archive {archive.label}: no manifest.json (docker-archive) or "
                     "index.json (oci-archive) in it")


def _plan_docker(archive: _Archive) -> list[_Plan]:
    items = archive.json(archive.files["manifest.json"], "manifest.json")
    if not isinstance(items, list):
        raise ImageError(f"invalid archive {archive.label}: manifest.json is not a list")
    oci = _oci_manifests(archive) if "index.json" in archive.files else {}
    plans = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                or not isinstance(item.get("Layers"), list):
            raise ImageError(f"invalid archive {archive.label}: manifest.json entry without "
                             "Config and Layers")
        plan = _Plan()
        plan.config = archive.find(item["Config"], "config")
        config = _check_config(archive, plan.config, len(item["Layers"]))
        for path, diff_id in zip(item["Layers"], config["rootfs"]["diff_ids"], strict=True):
            staged = archive.find(str(path), "layer")
            media = _layer_media(staged, archive.label, path)
            if media == MEDIA_LAYER and staged.digest != diff_id:
                raise CorruptBlob(f"invalid archive {archive.label}: layer '{path}' does not "
                                  f"match its diff ID {diff_id} ({staged.digest})")
            plan.layers.append((staged, {"mediaType": media, "digest": staged.digest,
                                         "size": staged.size}, diff_id))
        reused = oci.get(plan.config.digest)
        if reused is not None and [d["digest"] for d in reused[0].get("layers", [])] == \
                [d["digest"] for _, d, _ in plan.layers]:
            plan.manifest, plan.manifest_media = reused[1], reused[0].get("mediaType",
                                                                           MEDIA_MANIFEST)
            plan.layers = [(s, {**d, "mediaType": r.get("mediaType", d["mediaType"])}, i)
                           for (s, d, i), r in zip(plan.layers, reused[0]["layers"], strict=True)]
        else:
            plan.manifest = compact_json({"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                                   "config": {"mediaType": MEDIA_CONFIG,
                                              "digest": plan.config.digest,
                                              "size": plan.config.size},
                                   "layers": [d for _, d, _ in plan.layers]})
            plan.manifest_media = MEDIA_MANIFEST
        plan.manifest_digest = layers.sha256_digest(plan.manifest)
        for tag in item.get("RepoTags") or []:
            plan.refs.append(_tag(str(tag), archive.label))
        plans.append(plan)
    return plans


def _oci_manifests(archive: _Archive) -> dict[str, tuple[dict[str, Any], bytes]]:
    """config digest -> (manifest, its bytes), from the OCI side of a new docker-archive."""
    found = {}
    try:
        for descriptor in _index_descriptors(archive):
            staged = _blob(archive, descriptor, "manifest")
            data = staged.path.read_bytes()
            manifest = json.loads(data)
            found[manifest["config"]["digest"]] = (manifest, data)
    except (ImageError, ValueError, KeyError, TypeError):
        return {}  # manifest.json is what docker load reads; the OCI side is a bonus
    return found


def _plan_oci(archive: _Archive) -> list[_Plan]:
    layout = archive.files.get("oci-layout")
    if layout is None or not isinstance(archive.json(layout, "oci-layout"), dict):
        raise ImageError(f"invalid archive {archive.label}: index.json but no oci-layout file")
    plans = []
    for descriptor in _index_descriptors(archive):
        plan = _Plan()
        staged = _blob(archive, descriptor, "manifest")
        plan.manifest = staged.path.read_bytes()
        plan.manifest_digest, plan.manifest_media = staged.digest, descriptor["mediaType"]
        manifest = archive.json(staged, f"manifest {staged.digest}")
        if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict) \
                or not isinstance(manifest.get("layers"), list):
            raise ImageError(f"invalid archive {archive.label}: manifest {staged.digest} has "
                             "no config or layers")
        if manifest["config"].get("mediaType", MEDIA_CONFIG) not in _CONFIGS:
            raise ImageError(f"manifest {staged.digest}: unsupported config media type "
                             f"{manifest['config'].get('mediaType')}")
        plan.config = _blob(archive, manifest["config"], "config")
        config = _check_config(archive, plan.config, len(manifest["layers"]))
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            if not isinstance(layer, dict) or layer.get("mediaType") not in _LAYERS:
                media = layer.get("mediaType") if isinstance(layer, dict) else layer
                raise ImageError(f"manifest {staged.digest}: unsupported layer media type "
                                 f"{media}")
            plan.layers.append((_blob(archive, layer, "layer"), layer, diff_id))
        plan.refs = _names(descriptor.get("annotations") or {})
        plans.append(plan)
    return plans


def _index_descriptors(archive: _Archive) -> Iterator[dict[str, Any]]:
    """The image manifests index.json lists (one per name), nested indexes resolved to the
    manifest for this machine."""
    index = archive.json(archive.files["index.json"], "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageError(f"invalid archive {archive.label}: index.json lists no manifests")
    for descriptor in index["manifests"]:
        if not isinstance(descriptor, dict):
            raise ImageError(f"invalid archive {archive.label}: a bad descriptor in index.json")
        media = descriptor.get("mediaType")
        if media in _INDEXES:
            nested = archive.json(_blob(archive, descriptor, "index"), "a nested index")
            mine = [d for d in nested.get("manifests") or [] if isinstance(d, dict)
                    and (d.get("platform") or {}).get("architecture") == host_architecture()]
            if not mine:
                raise ImageError(f"index {descriptor.get('digest')}: no image for "
                                 f"{host_architecture()}")
            yield {**mine[0], "annotations": descriptor.get("annotations") or {}}
        elif media in _MANIFESTS:
            yield descriptor
        else:
            raise ImageError(f"index.json in {archive.label}: unsupported media type {media}")


def _blob(archive: _Archive, descriptor: dict[str, Any], what: str) -> _Staged:
    """The blob a descriptor points at, checked against its digest and size."""
    digest = descriptor.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:") \
            or len(digest) != 71 or "/" in digest:
        raise ImageError(f"invalid archive {archive.label}: {what} descriptor has a bad "
                         f"digest {digest!r}")
    staged = archive.files.get(blob_name(digest))
    if staged is None:
        raise CorruptBlob(f"invalid archive {archive.label}: {what} points at a missing blob "
                          f"{digest}")
    if staged.digest != digest:
        raise CorruptBlob(f"invalid archive {archive.label}: blob {digest} does not match its "
                          f"digest ({staged.digest})")
    if "size" in descriptor and descriptor["size"] != staged.size:
        raise CorruptBlob(f"invalid archive {archive.label}: blob {digest} is {staged.size} "
                          f"bytes, its descriptor says {descriptor['size']}")
    return staged


def _check_config(archive: _Archive, staged: _Staged, layer_count: int) -> dict[str, Any]:
    config = archive.json(staged, f"config {staged.digest}")
    diff_ids = config.get("rootfs", {}).get("diff_ids") if isinstance(config, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ImageError(f"invalid archive {archive.label}: config {staged.digest} has no "
                         "rootfs.diff_ids")
    if len(diff_ids) != layer_count:
        raise ImageError(f"invalid archive {archive.label}: config {staged.digest} lists "
                         f"{len(diff_ids)} layers, the manifest {layer_count}")
    if config.get("os", "linux") != "linux":
        raise ImageError(f"cannot load {config.get('os')} image on linux")
    return config  # type: ignore[no-any-return,unused-ignore]


def _layer_media(staged: _Staged, label: str, path: str) -> str:
    with open(staged.path, "rb") as f:
        head = f.read(6)
    name = layers.compression(head)
    if name is None:
        return MEDIA_LAYER
    if name == "gzip":
        return MEDIA_LAYER_GZIP
    raise ImageError(f"invalid archive {label}: layer '{path}' is {name}-compressed: "
                     "minidocker reads plain or gzip layers")


def _tag(text: str, label: str) -> Reference:
    try:
        reference = parse(text)
    except InvalidReference as exc:
        raise InvalidReference(f"{exc} (a RepoTags entry in {label})") from None
    if reference.digest:
        raise InvalidReference(f"invalid tag {text!r} in {label}")
    return reference


def _names(annotations: dict[str, Any]) -> list[Reference]:
    for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
        value = annotations.get(key)
        if not isinstance(value, str):
            continue
        if key == ANNOTATION_REF_NAME and ":" not in value and "/" not in value:
            return []  # only a tag, as Docker writes it: no repository to put it in
        try:
            reference = parse(value)
        except InvalidReference:
            return []
        return [] if reference.digest else [reference]
    return []


def _unpack_layers(store: ImageStore, plans: list[_Plan], staged_dirs: list[Path],
                   done: dict[str, Path]) -> dict[str, Path | None]:
    """Unpack and check every layer not yet in the store nor in ``done``, into ``tmp/``:
    chain ID -> dir."""
    unpacked: dict[str, Path | None] = dict(done)
    for plan in plans:
        diff_ids = [diff_id for _, _, diff_id in plan.layers]
        for (staged, descriptor, diff_id), chain in zip(plan.layers, layers.chain_ids(diff_ids),
                                                        strict=True):
            if chain in unpacked:
                continue
            with open(staged.path, "rb") as raw:
                if store.layer_path(chain).is_dir():
                    _check_only(raw, descriptor, diff_id)
                    unpacked[chain] = None
                    continue
                stage = store.stage_layer(raw, descriptor, diff_id)
            staged_dirs.append(stage)
            unpacked[chain] = stage
    return unpacked


def _check_only(raw: BinaryIO, descriptor: dict[str, Any], diff_id: str) -> None:
    """The layer is unpacked already (same chain ID): still, the blob must be what it says."""
    import zlib

    if descriptor["mediaType"] not in _GZIP:
        return  # a plain layer's digest is its diff ID, checked when it was staged
    reader = layers.HashingReader(layers.decompressed(raw, "gzip"))
    try:
        reader.drain()
    except (OSError, EOFError, zlib.error) as exc:
        raise ImageError(f"layer {descriptor['digest']}: corrupt gzip data ({exc})") from exc
    if reader.digest != diff_id:
        raise CorruptBlob(f"layer {descriptor['digest']} does not match its diff ID {diff_id}")


def _publish(store: ImageStore, plans: list[_Plan], unpacked: dict[str, Path | None],
             staged_dirs: list[Path]) -> tuple[list[str], list[Image]]:
    """Rename everything into place, in dependency order: layers, blobs, then the index."""
    for chain, stage in unpacked.items():
        if stage is not None:
            layers.publish_staged(stage, store.layer_path(chain))
            staged_dirs.remove(stage)
    published: set[str] = set()
    lines: list[str] = []
    named: list[tuple[dict[str, Any], list[Reference]]] = []
    for plan in plans:
        for staged in [s for s, _, _ in plan.layers] + [plan.config]:
            if staged.digest not in published and staged.path.exists():
                store.publish_blob(staged.path, staged.digest)
                published.add(staged.digest)
        if plan.manifest_digest not in published:
            store.write_blob(plan.manifest, digest=plan.manifest_digest)
            published.add(plan.manifest_digest)
        config = json.loads(store.read_blob(plan.config.digest, verify=False))
        descriptor = {"mediaType": plan.manifest_media, "digest": plan.manifest_digest,
                      "size": len(plan.manifest),
                      "platform": {"architecture": config.get("architecture",
                                                              host_architecture()),
                                   "os": config.get("os", "linux")}}
        named.append((descriptor, plan.refs))
    lines += store.name_images(named)
    images = []
    for plan, (_, refs) in zip(plans, named, strict=True):
        for reference in refs:
            lines.append(f"Loaded image: {reference.familiar}")
        if not refs:
            lines.append(f"Loaded image ID: {plan.config.digest}")
        images.append(store.lookup(refs[0].familiar if refs else plan.config.digest))
    return lines, images


def _decompressed(src: BinaryIO, label: str) -> BinaryIO:
    """``docker load`` takes a plain tar or one compressed with gzip, bzip2 or xz."""
    from typing import cast

    raw = src if isinstance(src, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, src))
    kind = layers.compression(raw.peek(6)[:6])
    if kind == "zstd":
        raise ImageError(f"{label} is zstd-compressed: minidocker loads plain, gzip, bzip2 or "
                         "xz archives")
    return layers.decompressed(raw, kind)  # type: ignore[return-value]


@contextmanager
def open_source(path: str | None) -> Iterator[tuple[BinaryIO | Path, str]]:
    """Yield ``(stream, label)`` for ``-i FILE`` or stdin (``None`` or ``-``); a directory
    (an OCI layout) is yielded as a :class:`Path`."""
    label = path or "-"
    if label != "-" and os.path.isdir(label):
        yield Path(label), label
        return
    with open_stream(label, label) as f:
        yield f, label
