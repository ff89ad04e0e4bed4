"""A cache of resolved image names, so ``minidocker run`` needn't parse JSON to start.

Resolving ``busybox`` properly means parsing the reference (regular expressions), reading
``index.json``, the manifest and the config (JSON), and checking the layer directories. That is
cheap, but importing ``re`` and ``json`` alone costs Python several milliseconds, a large part of
a container's start-up budget. So after a successful resolve, :mod:`minidocker.store` records
what ``run`` needs (image ID, the config's ``config`` object, the layer directories) in
``images/.run-cache``, in :mod:`marshal` format (built in, no import cost).

The cache is derived data and is trusted only while it matches: each entry is stored under the
``(st_ino, st_size, st_mtime_ns)`` of ``index.json``, which every change to the index replaces by
rename, and a hit also requires every layer directory to exist. Anything else is a miss, and
the store resolves the slow way. Deleting the file is always safe.
"""

from __future__ import annotations

import marshal
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CACHE_NAME = ".run-cache"


def _stamp(images_dir: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(os.path.join(images_dir, "index.json"))
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def lookup(images_dir: str, ref: str) -> tuple[str, dict[str, Any], list[str]] | None:
    """``(image_id, config, lower_dirs)`` for ``ref`` if the cache is current, else None."""
    try:
        with open(os.path.join(images_dir, CACHE_NAME), "rb") as f:
            stamp, entries = marshal.load(f)
    except (FileNotFoundError, EOFError, ValueError, TypeError):
        return None
    if stamp != _stamp(images_dir) or ref not in entries:
        return None
    image_id, config, lowers = entries[ref]
    if not all(os.path.isdir(d) for d in lowers):
        return None
    return image_id, config, lowers


def remember(images_dir: str, ref: str, image_id: str, config: dict[str, Any],
             lowers: list[str]) -> None:
    """Record a resolve; entries made under an older index are dropped."""
    stamp = _stamp(images_dir)
    if stamp is None:
        return
    try:
        with open(os.path.join(images_dir, CACHE_NAME), "rb") as f:
            old_stamp, entries = marshal.load(f)
        if old_stamp != stamp:
            entries = {}
    except (FileNotFoundError, EOFError, ValueError, TypeError):
        entries = {}
    entries[ref] = (image_id, config, lowers)
    tmp = os.path.join(images_dir, f"{CACHE_NAME}.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            marshal.dump((stamp, entries), f)
        os.replace(tmp, os.path.join(images_dir, CACHE_NAME))
    except OSError:  # a cache that can't be written only means the next run resolves again
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve(root: str, ref: str) -> tuple[str, dict[str, Any], list[str]]:
    """What ``run`` needs of image ``ref``: from the cache, or from the store (then cached)."""
    images_dir = os.path.join(root, "images")
    hit = lookup(images_dir, ref)
    if hit is not None:
        return hit
    from minidocker.store import ImageStore

    image = ImageStore(root).resolve(ref)
    lowers = [str(p) for p in image.layer_dirs()]
    config = image.config.get("config") or {}
    remember(images_dir, ref, image.id, config, lowers)
    return image.id, config, lowers
