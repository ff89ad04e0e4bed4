"""The build cache: a step's key to the image it made, a miss once that image is gone."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from minidocker.buildcache import CACHE_FILE, BuildCache
from minidocker.store import ImageStore
from tests.tarfiles import make_tar

pytestmark = pytest.mark.nb07


def test_hit_miss_and_removed(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "root")
    layer = store.add_layer(io.BytesIO(make_tar(("f", b"1"))))
    config = {"architecture": "amd64", "os": "linux", "config": {}, "history": []}
    image = store.write_image(config, [layer], "cached:1")
    cache = BuildCache(store)
    assert cache.get("sha256:key") is None
    cache.put("sha256:key", image)
    again = BuildCache(store)  # read back from images/.build-cache.json
    assert (store.images_dir / CACHE_FILE).is_file()
    hit = again.get("sha256:key")
    assert hit is not None and hit.id == image.id
    store.remove("cached:1")
    with store.collecting():
        store.collect_garbage()
    assert BuildCache(store).get("sha256:key") is None  # removed since: a miss, not an error
