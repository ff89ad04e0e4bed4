"""``pull``: an image from a registry into the store, all or nothing, as ``load`` does.

The steps, each one call:

1. resolve the reference to a manifest: ``GET /v2/<repo>/manifests/<tag>``; an index (or
   manifest list) is one more GET, for the entry of this machine's platform (or ``--platform``);
2. fetch the config, then the layers three at a time (dockerd's ``max-concurrent-downloads``).
   Each layer streams through its digest into a temp file in the store's ``tmp/`` and, in the
   same pass, into the unpacker, which makes its directory in ``tmp/`` and checks its diff ID
   (:mod:`minidocker.registry.download`). A layer whose blob the store has already is not
   fetched ("Already exists"); a dropped connection resumes with a ``Range`` request;
3. hand the staged blobs and layers to :func:`minidocker.archive.install`, the same code
   ``load`` runs: layers, blobs, manifest and the index entry are renamed into place, in that
   order.

A digest that does not match, a dropped connection that will not resume, or ctrl-c anywhere
before step 3's renames leaves the store as it was: the temp files are removed. A ``kill -9``
leaves only files in ``tmp/`` named after its pid, which the next pull sweeps
(:func:`sweep_abandoned`), as do ``rmi`` and ``image prune``. A failed pull starts from the
start; the blobs it had verified are not kept.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minidocker import archive
from minidocker.errors import ImageError, ImageNotFound, MinidockerError, RegistryError
from minidocker.registry import auth, client, download, platforms, progress
from minidocker.registry.client import INDEXES, MANIFESTS, Manifest, Registry
from minidocker.store import (
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    MEDIA_LAYER,
    MEDIA_LAYER_GZIP,
    ImageStore,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from minidocker.reference import Reference
    from minidocker.registry.platforms import Platform

LAYER_TYPES = (MEDIA_LAYER, MEDIA_LAYER_GZIP, DOCKER_LAYER, DOCKER_LAYER_GZIP)
CONCURRENT_DOWNLOADS = 3  # dockerd's default max-concurrent-downloads


class PullResult:
    """What ``docker pull`` reports: the digest the reference resolved to, and whether
    anything was downloaded."""

    __slots__ = ("digest", "downloaded", "image_id")

    def __init__(self, digest: str, downloaded: bool, image_id: str) -> None:
        self.digest, self.downloaded, self.image_id = digest, downloaded, image_id


def pull(store: ImageStore, reference: Reference, *, platform: Platform | None = None,
         out: Callable[[str], None] = print, registry: Registry | None = None,
         warn: Callable[[str], None] | None = None,
         report: progress.Lines | None = None) -> PullResult:
    """Pull ``reference``; a docker.io image from each mirror of
    ``$MINIDOCKER_REGISTRY_MIRRORS`` in turn, then from docker.io (dockerd's order). A mirror
    that fails is reported to ``warn`` and the next is tried: a failed pull leaves nothing.
    Progress goes to ``report`` (default: a line per status through ``out``)."""
    report = report or progress.Lines(out)
    if registry is not None or reference.domain != "docker.io":
        return pull_from(store, reference, platform, report, registry)
    for base in client.mirrors():
        host = base.split("://", 1)[1]
        mirror = Registry(host, auth.load_credentials(host), base=base)
        try:
            return pull_from(store, reference, platform, report, mirror)
        except RegistryError as exc:  # unreachable, or it has not got it: next one
            (warn or report.say)(f"mirror {base}: {exc}")
    return pull_from(store, reference, platform, report, None)


def pull_from(store: ImageStore, reference: Reference, platform: Platform | None,
              report: progress.Lines, registry: Registry | None) -> PullResult:
    reg = registry or Registry(reference.domain, auth.load_credentials(reference.domain))
    repo, label = reference.path, reference.familiar
    top = reg.get_manifest(repo, reference.digest or reference.tag or "latest")
    manifest = resolve_index(reg, repo, top, platform, label)
    config_descriptor, layer_descriptors = check_manifest(manifest, label)
    report.say(f"{reference.digest or reference.tag}: Pulling from {repo}")
    descriptor = {"mediaType": manifest.media_type, "digest": manifest.digest,
                  "size": len(manifest.data)}
    refs = [] if reference.digest else [reference]
    if store.blob_path(manifest.digest).exists():
        # Published last (after its config and layers): its being there means the rest is.
        config = json.loads(store.read_blob(config_descriptor["digest"], verify=False))
        check_config(config, len(layer_descriptors), platform, label)  # --platform still holds
        descriptor["platform"] = {"architecture": config.get("architecture"),
                                  "os": config.get("os", "linux")}
        store.name_images([(descriptor, refs)])
        return PullResult(top.digest, False, config_descriptor["digest"])
    with store.writing():
        sweep_abandoned(store)
        staging = _Staging(store, report)
        try:
            config = staging.fetch(reg, repo, config_descriptor)
            diff_ids = check_config(json.loads(config.path.read_bytes()), len(layer_descriptors),
                                    platform, label)
            blobs = staging.fetch_layers(reg, repo, layer_descriptors, diff_ids)
            plan = archive.Plan()
            plan.config, plan.manifest = config, manifest.data
            plan.manifest_digest, plan.manifest_media = manifest.digest, manifest.media_type
            plan.layers = list(zip(blobs, layer_descriptors, diff_ids, strict=True))
            plan.refs = refs
            archive.install(store, [plan], staging.unpacked)
        finally:
            staging.remove()
    for d in layer_descriptors:
        if d["digest"] in staging.fetched:
            report.status(d["digest"], "Pull complete")
    return PullResult(top.digest, True, config.digest)


def resolve_index(reg: Registry, repo: str, top: Manifest, platform: Platform | None,
                  label: str) -> Manifest:
    """The image manifest itself: ``top``, or the entry of an index for ``platform``."""
    if top.media_type not in INDEXES:
        return top
    chosen = platforms.choose(top.json, platform or platforms.host_platform(), label)
    manifest = reg.get_manifest(repo, chosen["digest"])
    if manifest.media_type not in MANIFESTS:
        raise ImageError(f"index {top.digest} of {label}: entry {chosen['digest']} is "
                         f"{manifest.media_type}, not an image manifest")
    return manifest


def check_manifest(manifest: Manifest, label: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The config and layer descriptors, each with a valid digest and a layer type we unpack."""
    config, found = manifest.json.get("config"), manifest.json.get("layers")
    if not isinstance(config, dict) or not isinstance(found, list):
        raise ImageError(f"manifest {manifest.digest} of {label} has no config or layers")
    for descriptor in (config, *found):
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("size"), int):
            raise ImageError(f"manifest {manifest.digest} of {label}: a descriptor without "
                             "a size")
        if not layers_digest_ok(descriptor.get("digest")):
            raise ImageError(f"manifest {manifest.digest} of {label}: bad digest "
                             f"{descriptor.get('digest')!r}")
    for descriptor in found:
        if descriptor.get("mediaType") not in LAYER_TYPES:
            raise ImageError(f"layer {descriptor['digest']} of {label}: unsupported media "
                             f"type {descriptor.get('mediaType')} (minidocker unpacks plain "
                             "and gzip tar layers)")
    return config, found


def layers_digest_ok(digest: object) -> bool:
    import re

    # A digest becomes a file name: never let one be a path.
    return isinstance(digest, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", digest) is not None


def check_config(config: Any, layer_count: int, platform: Platform | None,
                 label: str) -> list[str]:
    """The config's diff IDs, once it is known to describe a Linux image of ``layer_count``
    layers for the wanted platform."""
    diff_ids = config.get("rootfs", {}).get("diff_ids") if isinstance(config, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ImageError(f"the config of {label} has no rootfs.diff_ids")
    if len(diff_ids) != layer_count:
        raise ImageError(f"the config of {label} lists {len(diff_ids)} layers, its manifest "
                         f"{layer_count}")
    if config.get("os", "linux") != "linux":
        raise ImageError(f"{label} is a {config.get('os')} image; minidocker runs linux images")
    want = platform.architecture if platform else None
    # Without --platform an image of another architecture is kept, as Docker keeps it: it
    # fails at run time with "exec format error", which teaches more than a refusal here.
    if want and config.get("architecture") not in (None, want):
        raise ImageError(f"image with reference {label} was found but does not match the "
                         f"specified platform: wanted {platform}, actual: linux/"
                         f"{config.get('architecture')}")
    return diff_ids


class _Aborted(MinidockerError):
    """Another download failed: this one stops early."""


class _Staging:
    """The blobs and layers of one pull, in ``tmp/`` until :func:`archive.install` publishes
    them."""

    def __init__(self, store: ImageStore, report: progress.Lines) -> None:
        self.store, self.report = store, report
        self.paths: list[Path] = []
        self.fetched: set[str] = set()
        self.unpacked: dict[str, Path] = {}  # chain ID -> layer unpacked in tmp/
        self._lock = threading.Lock()
        self._abort = threading.Event()

    def _temp_file(self) -> Path:
        import tempfile

        self.store.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"blob-{os.getpid()}-", dir=self.store.tmp_dir)
        os.close(fd)
        with self._lock:
            self.paths.append(Path(name))
        return Path(name)

    def fetch(self, reg: Registry, repo: str, descriptor: dict[str, Any]) -> archive.Staged:
        """Download one blob into a temp file (verified, fsynced), or reuse the stored one."""
        digest = descriptor["digest"]
        stored = self.store.blob_path(digest)
        if stored.exists():
            # Verified when it was written (store invariant); publishing renames it onto itself.
            return archive.Staged(stored, digest, stored.stat().st_size)
        path = self._temp_file()
        with open(path, "wb") as f:
            download.fetch_blob(reg, repo, descriptor, f, progress=self._check_abort)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before its name is
        with self._lock:
            self.fetched.add(digest)
        return archive.Staged(path, digest, descriptor["size"])

    def fetch_layer(self, reg: Registry, repo: str, descriptor: dict[str, Any], diff_id: str,
                    chain: str) -> archive.Staged:
        """Download a layer and unpack it in the same pass, both into ``tmp/``: each byte is
        hashed, written to the blob's temp file and handed to the unpacker as it arrives."""
        digest = descriptor["digest"]
        if self.store.blob_path(digest).exists() or self.store.layer_path(chain).is_dir():
            return self.fetch(reg, repo, descriptor)  # archive.install unpacks or checks it
        attempt = 0
        while True:
            path = self._temp_file()
            with open(path, "wb") as f:
                blob = download.BlobDownload(reg, repo, descriptor, f,
                                             self._progress(digest, descriptor["size"]),
                                             attempt)
                try:
                    stage = self.store.stage_layer(blob, descriptor, diff_id)
                except download.Restart:
                    if blob.attempt >= download.ATTEMPTS:
                        raise
                    attempt = blob.attempt
                    path.unlink()
                    continue
                finally:
                    blob.close()
                with self._lock:
                    self.unpacked[chain] = stage
                    self.fetched.add(digest)
                f.flush()
                os.fsync(f.fileno())  # the data is on disk before its name is
            return archive.Staged(path, digest, descriptor["size"])

    def _check_abort(self, _: int) -> None:
        if self._abort.is_set():
            raise _Aborted("download stopped: another one failed")

    def _progress(self, digest: str, total: int) -> Callable[[int], None]:
        """What a layer's download calls with its byte count so far, after each read."""
        def advance(done: int) -> None:
            self._check_abort(done)
            if done < total:
                self.report.advance(digest, "Downloading", done, total)
            else:  # the last byte is in: its digest is checked now
                self.report.status(digest, "Verifying Checksum")
        return advance

    def fetch_layers(self, reg: Registry, repo: str, descriptors: list[dict[str, Any]],
                     diff_ids: list[str]) -> list[archive.Staged]:
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        from minidocker import layers

        # The storage driver is decided (and recorded) on first use: here, not in three
        # threads at once, which would each write the record.
        self.store.whiteouts  # noqa: B018
        for d in descriptors:
            present = self.store.blob_path(d["digest"]).exists()
            self.report.status(d["digest"], "Already exists" if present else "Pulling fs layer")

        def one(descriptor: dict[str, Any], diff_id: str, chain: str) -> archive.Staged:
            staged = self.fetch_layer(reg, repo, descriptor, diff_id, chain)
            if descriptor["digest"] in self.fetched:
                self.report.status(descriptor["digest"], "Download complete")
            return staged

        pool = ThreadPoolExecutor(CONCURRENT_DOWNLOADS, thread_name_prefix="pull")
        futures = [pool.submit(one, *job) for job in
                   zip(descriptors, diff_ids, layers.chain_ids(diff_ids), strict=True)]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            # After a failure or ctrl-c the other downloads stop at their next chunk: none is
            # still writing when the caller removes the temp files.
            self._abort.set()
            pool.shutdown(wait=True, cancel_futures=True)
        errors = [e for f in futures if not f.cancelled() and (e := f.exception())]
        real = [e for e in errors if not isinstance(e, _Aborted)]
        if errors:
            raise (real or errors)[0]
        return [f.result() for f in futures]

    def remove(self) -> None:
        """Remove the temp files and layers still there (a published one was moved away)."""
        import shutil

        for path in self.paths:
            path.unlink(missing_ok=True)
        for stage in self.unpacked.values():
            if stage.exists():
                shutil.rmtree(stage)


def sweep_abandoned(store: ImageStore) -> list[str]:
    """Remove what killed pulls left in ``tmp/``: the temp blobs and half-made layers named
    after a process that is gone (``blob-<pid>-*``, ``layer-<pid>-*``). Nothing there was
    ever visible; this only gives the disk space back before ``image prune`` would. A pid
    that is alive (or reused) keeps its files."""
    import re
    import shutil

    removed: list[str] = []
    try:
        names = os.listdir(store.tmp_dir)
    except FileNotFoundError:
        return removed
    for name in names:
        found = re.match(r"(?:blob|layer)-(\d+)-", name)
        if found is None or int(found.group(1)) == os.getpid() or _alive(int(found.group(1))):
            continue
        path = store.tmp_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)  # another pull may be sweeping it too
        else:
            path.unlink(missing_ok=True)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    return True


def pull_missing(root: str, ref: str, missing: ImageNotFound,
                 say: Callable[[str], None]) -> PullResult:
    """``run``/``create`` of an image the store has not got: pull it first, as Docker does,
    saying so on ``say`` (the user's stderr). An image ID is never pulled (``missing`` is
    raised again): a registry is asked for names, not for IDs."""
    import re

    from minidocker.reference import parse

    if ref.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{64}", ref):
        raise missing
    reference = parse(ref)
    say(f"Unable to find image '{reference.familiar}' locally")
    result = pull(ImageStore(root), reference, out=say)
    say(f"Digest: {result.digest}")
    say(f"Status: Downloaded newer image for {reference.familiar}")
    return result
