"""``push``: an image of the store to a registry, blobs first, the manifest last.

For each blob (every layer, then the config), ``HEAD /v2/<repo>/blobs/<digest>`` asks whether
the registry has it; a missing one is uploaded: ``POST /v2/<repo>/blobs/uploads/`` opens an
upload and answers with a ``Location``, and one ``PUT <Location>?digest=<digest>`` sends the
whole blob (a *monolithic* upload; the registry hashes it and refuses it if the digest is
wrong). Only then is the manifest PUT under the tag: a registry refuses a manifest whose blobs
it does not have, so a tag never points at something half pushed.

The manifest is sent as the store holds it, byte for byte, so the digest ``push`` prints is the
store's manifest digest, and a ``pull`` elsewhere gets the same image ID and manifest digest.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from minidocker.errors import ImageNotFound, InvalidReference
from minidocker.registry import auth
from minidocker.registry.client import Registry
from minidocker.registry.pull import short
from minidocker.store import MEDIA_MANIFEST, ImageStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from minidocker.reference import Reference


def push(store: ImageStore, reference: Reference, *, out: Callable[[str], None] = print,
         registry: Registry | None = None) -> str:
    """Push the image ``reference`` names; return its manifest digest."""
    if reference.digest or not reference.tag:
        raise InvalidReference(f"cannot push a digest reference ({reference.familiar}): "
                               "push a tag")
    try:
        image = store.resolve(reference.familiar)
    except ImageNotFound:
        raise ImageNotFound(f"an image does not exist locally with the tag: "
                            f"{reference.familiar}") from None
    reg = registry or Registry(reference.domain, auth.load_credentials(reference.domain))
    repo = reference.path
    data = store.read_blob(image.manifest_digest)  # verified: we vouch for what we send
    manifest = json.loads(data)
    layers = manifest.get("layers", [])
    out(f"The push refers to repository [{reference.name}]")
    for descriptor in reversed(layers):  # docker lists them top layer first
        out(f"{short(descriptor['digest'])}: Preparing")
    for descriptor in [*reversed(layers), manifest["config"]]:
        digest = descriptor["digest"]
        if reg.blob_exists(repo, digest):
            status = "Layer already exists"
        else:
            with store.open_blob(digest) as f:
                reg.upload_blob(repo, digest, int(descriptor["size"]), f)
            status = "Pushed"
        if descriptor is not manifest["config"]:
            out(f"{short(digest)}: {status}")
    pushed = reg.put_manifest(repo, reference.tag, data,
                              manifest.get("mediaType", MEDIA_MANIFEST))
    out(f"{reference.tag}: digest: {pushed} size: {len(data)}")
    return pushed
