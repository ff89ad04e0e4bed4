"""The build cache: a step's key to the image it made, kept in the image store.

Each step of a build (:mod:`minidocker.builder`) has a key
(:func:`minidocker.buildconfig.cache_key`: the parent image's ID, the instruction as expanded,
the content hash of what it copies). A step that ran is recorded here, in
``images/.build-cache.json`` beside the OCI layout, as ``key -> (image ID, manifest digest)``;
the next build with the same key reuses that image and starts no container.

The images themselves are ordinary untagged images in the store's index, so garbage collection
keeps them. An entry whose image is gone (``rmi``, ``image prune``) is a miss; deleting the
file only makes the next build run every step again. ``build --no-cache`` skips lookups (and
records what it made, as Docker does).

Notebook: ``07_dockerfiles``.
"""

from __future__ import annotations

import json
import os

from minidocker.errors import MinidockerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minidocker.store import Image, ImageStore

CACHE_FILE = ".build-cache.json"


class BuildCache:
    """``images/.build-cache.json``: step key -> the image it made (ID, manifest digest)."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.path = os.path.join(store.images_dir, CACHE_FILE)
        try:
            with open(self.path) as f:
                self.entries: dict[str, dict[str, Any]] = json.load(f)
        except (FileNotFoundError, ValueError):
            self.entries = {}
        self.present = {e["digest"] for e in store._read_index()["manifests"]}

    def get(self, key: str) -> Image | None:
        entry = self.entries.get(key)
        if entry is None or entry.get("manifest") not in self.present:
            return None  # never made, or removed (rmi, prune) since
        try:
            image = self.store.by_manifest(entry["manifest"])
        except MinidockerError:
            return None
        return image if image.id == entry["image"] else None

    def put(self, key: str, image: Image) -> None:
        self.entries[key] = {"image": image.id, "manifest": image.manifest_digest}
        self.present.add(image.manifest_digest)
        tmp = f"{self.path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.entries, f)
        os.replace(tmp, self.path)
