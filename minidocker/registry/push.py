"""``push``: an image of the store to a registry, blobs first, the manifest last.

For each blob (every layer, then the config), ``HEAD /v2/<repo>/blobs/<digest>`` asks whether
the registry has it ("Layer already exists"). A missing one is uploaded: ``POST
/v2/<repo>/blobs/uploads/`` opens an upload and answers with a ``Location``, then either

- one ``PUT <Location>?digest=<digest>`` sends the whole blob (a *monolithic* upload), or
- for a blob over :data:`CHUNKED_ABOVE` bytes, or any blob with ``--chunk-size``, ``PATCH``
  requests send it a chunk at a time (``Content-Range: <first>-<last>``), and an empty ``PUT
  ...?digest=`` closes the upload. The registry hashes what it got and refuses it if the
  digest is wrong.

**Cross-repository mount.** When another repository of the same registry is known to hold the
blob (an image of the store named ``<registry>/<other repo>`` has it: pulled from there, or
pushed there), the POST asks to mount it instead, ``?mount=<digest>&from=<other repo>``, and a
``201`` means the registry linked the blob it has: "Mounted from <other repo>", no byte sent.
A registry that will not mount (no such blob, or no pull access to the other repository)
answers ``202`` and the upload goes on as usual.

Only then is the manifest PUT under the tag: a registry refuses a manifest whose blobs it does
not have, so a tag never points at something half pushed. The manifest is sent as the store
holds it, byte for byte, so the digest ``push`` prints is the store's manifest digest, and a
``pull`` elsewhere gets the same image ID and manifest digest.
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

from minidocker.errors import ImageNotFound, InvalidReference
from minidocker.registry import auth, progress
from minidocker.registry.client import Registry
from minidocker.store import MEDIA_MANIFEST, ImageStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from minidocker.reference import Reference

CHUNKED_ABOVE = 64 << 20  # a larger blob goes in chunks: proxies in front of
CHUNK_SIZE = 32 << 20  # registries often cap a request's body (100 MB at some)


def push(store: ImageStore, reference: Reference, *, out: Callable[[str], None] = print,
         registry: Registry | None = None, report: progress.Lines | None = None,
         chunk_size: int | None = None) -> str:
    """Push the image ``reference`` names; return its manifest digest. ``chunk_size``:
    upload every blob larger than that in chunks of that size."""
    if reference.digest or not reference.tag:
        raise InvalidReference(f"cannot push a digest reference ({reference.familiar}): "
                               "push a tag")
    try:
        image = store.resolve(reference.familiar)
    except ImageNotFound:
        raise ImageNotFound(f"an image does not exist locally with the tag: "
                            f"{reference.familiar}") from None
    report = report or progress.Lines(out)
    reg = registry or Registry(reference.domain, auth.load_credentials(reference.domain))
    repo = reference.path
    data = store.read_blob(image.manifest_digest)  # verified: we vouch for what we send
    manifest = json.loads(data)
    layers = manifest.get("layers", [])
    report.say(f"The push refers to repository [{reference.name}]")
    for descriptor in reversed(layers):  # docker lists them top layer first
        report.status(descriptor["digest"], "Preparing")
    sources = mount_sources(store, reference)
    with report:
        for descriptor in [*reversed(layers), manifest["config"]]:
            status = push_blob(store, reg, repo, descriptor, sources, report, chunk_size)
            if descriptor is not manifest["config"]:
                report.status(descriptor["digest"], status)
    pushed = reg.put_manifest(repo, reference.tag, data,
                              manifest.get("mediaType", MEDIA_MANIFEST))
    report.say(f"{reference.tag}: digest: {pushed} size: {len(data)}")
    return pushed


def push_blob(store: ImageStore, reg: Registry, repo: str, descriptor: dict[str, Any],
              sources: dict[str, list[str]], report: progress.Lines,
              chunk_size: int | None) -> str:
    """One blob to the registry, if it has not got it: its status line's last words."""
    digest, size = descriptor["digest"], int(descriptor["size"])
    if reg.blob_exists(repo, digest):
        return "Layer already exists"
    mount_from = next(iter(sources.get(digest, [])), None)
    if chunk_size is None and size > CHUNKED_ABOVE:
        chunk_size = CHUNK_SIZE
    with store.open_blob(digest) as f:
        counted = _Counted(f, lambda done: report.advance(digest, "Pushing", done, size))
        how = reg.upload_blob(repo, digest, size, counted, mount_from=mount_from,
                              chunk_size=chunk_size if chunk_size and size > chunk_size
                              else None)
    return f"Mounted from {mount_from}" if how == "mounted" else "Pushed"


def mount_sources(store: ImageStore, reference: Reference) -> dict[str, list[str]]:
    """Blob digest -> the other repositories of ``reference``'s registry that have it, as
    far as the store knows: the images it names ``<registry>/<repo>:<tag>``."""
    from minidocker.reference import parse

    found: dict[str, list[str]] = {}
    for image in store.list_images():
        if image.ref is None:
            continue
        other = parse(image.ref)
        if other.domain != reference.domain or other.path == reference.path:
            continue
        for descriptor in [*image.manifest.get("layers", []), image.manifest.get("config", {})]:
            repos = found.setdefault(descriptor.get("digest", ""), [])
            if other.path not in repos:
                repos.append(other.path)
    return found


class _Counted:
    """A blob file being sent, counting the bytes read from it (for the progress bar)."""

    def __init__(self, f: IO[bytes], advance: Callable[[int], None]) -> None:
        self._f, self._advance, self._done = f, advance, 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._done += len(data)
        self._advance(self._done)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        """The request is sent again after a 401: from the start, and counted again."""
        self._done = self._f.seek(offset, whence)
        return self._done
