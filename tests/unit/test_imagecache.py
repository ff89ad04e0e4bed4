"""The run cache is trusted only while index.json and the layer directories are unchanged."""

from __future__ import annotations

import os

from minidocker import imagecache


def make_store(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "index.json").write_text('{"manifests": []}')
    layer = tmp_path / "layers" / "abc"
    layer.mkdir(parents=True)
    return str(images), str(layer)


def test_hit_after_remember(tmp_path):
    images, layer = make_store(tmp_path)
    assert imagecache.lookup(images, "busybox") is None
    imagecache.remember(images, "busybox", "sha256:x", {"Cmd": ["sh"]}, [layer])
    assert imagecache.lookup(images, "busybox") == ("sha256:x", {"Cmd": ["sh"]}, [layer])
    assert imagecache.lookup(images, "other") is None


def test_a_new_index_invalidates_everything(tmp_path):
    images, layer = make_store(tmp_path)
    imagecache.remember(images, "busybox", "sha256:x", {}, [layer])
    index = os.path.join(images, "index.json")
    with open(index + ".new", "w") as f:  # the store replaces index.json by rename
        f.write('{"manifests": [1]}')
    os.replace(index + ".new", index)
    assert imagecache.lookup(images, "busybox") is None


def test_a_missing_layer_is_a_miss(tmp_path):
    images, layer = make_store(tmp_path)
    imagecache.remember(images, "busybox", "sha256:x", {}, [layer])
    os.rmdir(layer)
    assert imagecache.lookup(images, "busybox") is None


def test_a_corrupt_cache_is_a_miss(tmp_path):
    images, _ = make_store(tmp_path)
    with open(os.path.join(images, imagecache.CACHE_NAME), "wb") as f:
        f.write(b"\x00garbage")
    assert imagecache.lookup(images, "busybox") is None


def test_resolve_goes_through_the_store_and_caches(tmp_path):
    import pytest

    if os.geteuid() != 0:
        pytest.skip("building the busybox image needs root (device nodes, ownership)")
    image_id, config, lowers = imagecache.resolve(str(tmp_path), "busybox")
    assert config["Cmd"] == ["sh"] and os.path.isdir(lowers[0])
    assert imagecache.lookup(str(tmp_path / "images"), "busybox") == (image_id, config, lowers)
