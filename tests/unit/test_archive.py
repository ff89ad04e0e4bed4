"""save and load: round trips, Docker's format rules, skopeo and umoci, and bad archives.

``docker load`` itself needs a daemon, which the test machines do not run; what it accepts is
written down in moby's ``image/tarexport/load.go``, and :func:`docker_load_check` applies those
rules to an archive, step by step. skopeo reads the same archives with its own independent
implementation (``docker-archive:``), and re-verifies every digest when it copies.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from minidocker import archive, layers
from minidocker.errors import CorruptBlob, ImageError, InvalidReference
from minidocker.reference import parse
from minidocker.store import MEDIA_LAYER_GZIP, ImageStore
from tests.tarfiles import make_tar

pytestmark = pytest.mark.nb05

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="whiteouts are 0/0 devices: mknod needs root")
needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None,
                                  reason="needs skopeo (apt-get install skopeo)")
needs_umoci = pytest.mark.skipif(shutil.which("umoci") is None,
                                 reason="needs umoci (apt-get install umoci)")


BASE = make_tar(("etc", None), ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                ("etc/motd", b"hello\n"), ("var", None), ("var/cache", None),
                ("var/cache/old", b"old"))
TOP = make_tar(("etc/.wh.motd", b""), ("var/cache/.wh..wh..opq", b""),
               ("var/cache/new", b"new"), ("app", None), ("app/run", b"#!/bin/sh\n"))


def two_layer(store: ImageStore, ref: str = "app:1", whiteouts: bool = True) -> Any:
    base = store.add_layer(io.BytesIO(BASE))
    top = store.add_layer(io.BytesIO(TOP if whiteouts else make_tar(("app/run", b"x"))),
                          parent=base.diff_id)
    config = {"created": "2024-01-02T03:04:05Z", "architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["/app/run"]},
              "history": [{"created": "2024-01-02T03:04:05Z", "created_by": "base"},
                          {"created": "2024-01-02T03:04:05Z", "created_by": "top"}]}
    return store.write_image(config, [base, top], ref)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "root")


def save_to(store: ImageStore, names: list[str], path: Path, fmt: str = "docker-archive") -> Path:
    with open(path, "wb") as out:
        archive.save(store, archive.select(store, names), out, fmt)
    return path


def load_from(store: ImageStore, path: Path) -> list[str]:
    with archive.open_source(str(path)) as (src, label):
        return archive.load(store, src, label)[0]


def snapshot(root: Path) -> dict[str, str]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            found[rel] = ("dir" if path.is_dir() else
                          hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file()
                          else "other")
    found.pop("images/.run-cache", None)
    return found


# -- what docker load checks (moby image/tarexport/load.go) ---------------------------------

def docker_load_check(path: Path, tmp: Path) -> list[tuple[str, list[str]]]:
    """Apply load.go's steps to the archive at ``path``; return (image ID, RepoTags) each."""
    out = tmp / "untarred"
    out.mkdir()
    with tarfile.open(path) as tar:
        for member in tar:
            assert not member.name.startswith("/") and ".." not in member.name.split("/")
        tar.extractall(out)  # names checked above; only files and directories in it
    manifest = json.loads((out / "manifest.json").read_text())  # "open manifest.json"
    assert manifest is not None, "invalid manifest, manifest cannot be null"
    loaded = []
    for item in manifest:
        config_bytes = (out / item["Config"]).resolve().read_bytes()  # safePath + ReadFile
        config = json.loads(config_bytes)  # image.NewFromJSON
        assert config.get("rootfs") is not None, "invalid image JSON, no RootFS key"
        assert config.get("os", "linux") == "linux"  # image.CheckOS
        diff_ids = config["rootfs"]["diff_ids"]
        assert len(item["Layers"]) == len(diff_ids), "invalid manifest, layers length mismatch"
        for layer_path, diff_id in zip(item["Layers"], diff_ids, strict=True):
            data = (out / layer_path).resolve().read_bytes()
            if data[:2] == b"\x1f\x8b":  # compression.DecompressStream
                data = gzip.decompress(data)
            assert "sha256:" + hashlib.sha256(data).hexdigest() == diff_id, "invalid diffID"
            with tarfile.open(fileobj=io.BytesIO(data)) as layer:  # layer.Register reads a tar
                layer.getmembers()
        history = [h for h in config.get("history", []) if not h.get("empty_layer")]
        assert len(history) <= len(diff_ids), "too many non-empty layers in History section"
        for tag in item["RepoTags"]:  # reference.ParseNormalizedNamed, then NamedTagged
            reference = parse(tag)
            assert reference.tag and not reference.digest and ":" in tag.rpartition("/")[2]
        loaded.append(("sha256:" + hashlib.sha256(config_bytes).hexdigest(), item["RepoTags"]))
    return loaded


@pytest.mark.parametrize("whiteouts", [False, pytest.param(True, marks=needs_root)])
def test_docker_archive_follows_docker_loads_rules(store: ImageStore, tmp_path: Path,
                                                  whiteouts: bool) -> None:
    image = two_layer(store, whiteouts=whiteouts)
    store.tag("app:1", "app:other")
    path = save_to(store, ["app"], tmp_path / "a.tar")
    [(image_id, tags)] = docker_load_check(path, tmp_path)
    assert image_id == image.id and sorted(tags) == ["app:1", "app:other"]
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert {"manifest.json", "index.json", "oci-layout"} <= set(names)  # Docker 25's layout


@pytest.mark.parametrize("fmt", archive.FORMATS)
def test_round_trip_keeps_ids_and_digests(store: ImageStore, tmp_path: Path, fmt: str) -> None:
    image = two_layer(store, whiteouts=ROOT)
    path = save_to(store, ["app:1"], tmp_path / "a.tar", fmt)
    other = ImageStore(tmp_path / "other")
    assert load_from(other, path) == ["Loaded image: app:1"]
    loaded = other.resolve("app:1")
    assert (loaded.id, loaded.manifest_digest) == (image.id, image.manifest_digest)
    assert [p.name for p in other.layer_dirs(loaded)] == [p.name for p in store.layer_dirs(image)]
    tree = {rel for rel, _ in layers.Stack(other.layer_dirs(loaded)).walk()}
    assert "etc/passwd" in tree and "app/run" in tree
    if ROOT:
        assert "etc/motd" not in tree and "var/cache/old" not in tree


def test_load_of_an_id_gives_an_untagged_image(store: ImageStore, tmp_path: Path) -> None:
    image = two_layer(store, whiteouts=False)
    path = save_to(store, [image.short_id], tmp_path / "a.tar")
    other = ImageStore(tmp_path / "other")
    assert load_from(other, path) == [f"Loaded image ID: {image.id}"]
    assert [i.ref for i in other.list_images()] == [None]


def test_load_over_an_existing_name_untags_the_old_image(store: ImageStore,
                                                         tmp_path: Path) -> None:
    first = two_layer(store, whiteouts=False)
    path = save_to(store, ["app:1"], tmp_path / "a.tar")
    other = ImageStore(tmp_path / "other")
    store_b = other.add_layer(io.BytesIO(make_tar(("x", b"x"))))
    old = other.write_image({"architecture": "amd64", "os": "linux"}, [store_b], "app:1")
    lines = load_from(other, path)
    assert lines[0] == (f"The image app:1 already exists, renaming the old one with ID {old.id} "
                        "to empty string")
    assert other.resolve("app:1").id == first.id
    assert {i.ref for i in other.list_images()} == {"app:1", None}


def test_load_of_a_layout_directory(store: ImageStore, tmp_path: Path) -> None:
    image = two_layer(store, whiteouts=False)
    other = ImageStore(tmp_path / "other")
    assert load_from(other, store.images_dir) == ["Loaded image: app:1"]
    assert other.resolve("app:1").id == image.id


def test_compressed_archives_load(store: ImageStore, tmp_path: Path) -> None:
    import bz2
    import lzma

    image = two_layer(store, whiteouts=False)
    raw = save_to(store, ["app:1"], tmp_path / "a.tar").read_bytes()
    for name, data in (("gz", gzip.compress(raw)), ("bz2", bz2.compress(raw)),
                       ("xz", lzma.compress(raw))):
        other = ImageStore(tmp_path / name)
        (tmp_path / f"a.tar.{name}").write_bytes(data)
        load_from(other, tmp_path / f"a.tar.{name}")
        assert other.resolve("app:1").id == image.id


# -- bad archives: one error, the store as it was -------------------------------------------

def rewrite(path: Path, change: Any) -> Path:
    """A copy of the archive with ``change(name, data) -> data | None`` applied to members."""
    out = path.with_suffix(".bad.tar")
    with tarfile.open(path) as src, tarfile.open(out, "w") as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
            if data is not None:
                data = change(member.name, data)
                if data is None:
                    continue
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
            else:
                dst.addfile(member)
    return out


def member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def _edit_json(data: bytes, edit: Any) -> bytes:
    value = json.loads(data)
    edit(value)
    return json.dumps(value).encode()


def _manifest_name(path: Path) -> str:
    index = json.loads(member(path, "index.json"))
    return "blobs/sha256/" + index["manifests"][0]["digest"].removeprefix("sha256:")


def _remanifest(path: Path, edit: Any) -> Path:
    """The OCI archive at ``path`` with its manifest edited, re-hashed and re-indexed, so that
    only the edit is wrong."""
    name = _manifest_name(path)
    data = _edit_json(member(path, name), edit)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    out = tmp = rewrite(path, lambda n, d: _edit_json(d, lambda i: i["manifests"][0].update(
        digest=digest, size=len(data))) if n == "index.json" else d)
    with tarfile.open(tmp, "a") as tar:
        info = tarfile.TarInfo("blobs/sha256/" + digest.removeprefix("sha256:"))
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out


BAD = {
    "truncated": (lambda p, o: _truncate(p), ImageError, "truncated or corrupt"),
    "garbage": (lambda p, o: _write(p, b"not an archive at all\n" * 100), ImageError,
                "invalid archive"),
    "missing-blob": (lambda p, o: rewrite(p, lambda n, d: None if n == _layer_name(p) else d),
                     ImageError, "missing"),
    "manifest-points-at-missing-blob": (lambda p, o: rewrite(
        o, lambda n, d: None if n == _layer_name(p, -1) else d), CorruptBlob,
        "points at a missing blob"),
    "unknown-layer-media-type": (lambda p, o: _remanifest(
        o, lambda m: m["layers"][0].update(mediaType="application/x-unknown")), ImageError,
        "unsupported layer media type application/x-unknown"),
    "unknown-config-media-type": (lambda p, o: _remanifest(
        o, lambda m: m["config"].update(mediaType="text/x-nope")), ImageError,
        "unsupported config media type text/x-nope"),
    "invalid-tag": (lambda p, o: rewrite(p, lambda n, d: _edit_json(
        d, lambda m: m[0].update(RepoTags=["app:bad tag!"])) if n == "manifest.json" else d),
        InvalidReference, "invalid reference format"),
    "layer-does-not-match-diff-id": (lambda p, o: rewrite(
        p, lambda n, d: d.replace(b"root:x", b"ROOT:x") if n == _layer_name(p) else d),
        CorruptBlob, "does not match its diff ID"),
    "blob-does-not-match-digest": (lambda p, o: rewrite(
        o, lambda n, d: d.replace(b"root:x", b"ROOT:x") if n == _layer_name(p) else d),
        CorruptBlob, "does not match its digest"),
}


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    return _write(path, data[: len(data) // 2])


def _write(path: Path, data: bytes) -> Path:
    out = path.with_suffix(".bad.tar")
    out.write_bytes(data)
    return out


def _layer_name(path: Path, which: int = 0) -> str:
    manifest = json.loads(member(path, "manifest.json"))
    return str(manifest[0]["Layers"][which])


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_archive_changes_nothing(store: ImageStore, tmp_path: Path, case: str) -> None:
    two_layer(store, whiteouts=False)
    good = save_to(store, ["app:1"], tmp_path / "good.tar")
    good_oci = save_to(store, ["app:1"], tmp_path / "good-oci.tar", "oci-archive")
    other = ImageStore(tmp_path / "other")
    other.add_layer(io.BytesIO(make_tar(("keep", b"k"))))  # a store with something in it
    before = snapshot(other.root)
    make, error, words = BAD[case]
    bad = make(good, good_oci)
    with pytest.raises(error, match=words) as caught:
        load_from(other, bad)
    assert "\n" not in str(caught.value)
    assert snapshot(other.root) == before


# -- other tools: skopeo and umoci read what we write, and we read what they write ----------

def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True,
                          text=True, check=True).stdout


@needs_skopeo
@pytest.mark.parametrize("fmt", archive.FORMATS)
def test_skopeo_reads_saved_archives(store: ImageStore, tmp_path: Path, fmt: str) -> None:
    image = two_layer(store, whiteouts=ROOT)
    path = save_to(store, ["app:1"], tmp_path / "a.tar", fmt)
    transport = f"{fmt}:{path}:app:1" if fmt == "oci-archive" else f"{fmt}:{path}"
    info = json.loads(skopeo("inspect", "--config", transport))
    assert info["rootfs"]["diff_ids"] == image.diff_ids
    skopeo("copy", transport, f"oci:{tmp_path / 'copy'}:x")  # re-verifies every digest


@needs_skopeo
@needs_umoci
def test_store_passes_skopeo_inspect_copy_and_umoci_unpack(store: ImageStore,
                                                           tmp_path: Path) -> None:
    two_layer(store, "app:1", whiteouts=ROOT)
    # And an image loaded with gzip layers, as registries serve them.
    skopeo("copy", "--dest-compress", f"oci:{store.images_dir}:app:1",
           f"oci:{tmp_path / 'gz'}:gz:1")
    load_from(store, tmp_path / "gz")
    for ref in ("app:1", "gz:1"):
        info = json.loads(skopeo("inspect", f"oci:{store.images_dir}:{ref}"))
        assert len(info["Layers"]) == 2
        skopeo("copy", f"oci:{store.images_dir}:{ref}", f"oci:{tmp_path / 'copy'}:{ref}")
        bundle = tmp_path / f"bundle-{ref.replace(':', '-')}"
        subprocess.run(["umoci", "unpack", *([] if ROOT else ["--rootless"]), "--image",
                        f"{store.images_dir}:{ref}", str(bundle)], check=True,
                       capture_output=True)
        assert (bundle / "rootfs" / "app" / "run").exists()
    assert store.resolve("gz:1").manifest["layers"][0]["mediaType"] == MEDIA_LAYER_GZIP


@needs_skopeo
@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive", "oci"])
def test_load_what_skopeo_writes(store: ImageStore, tmp_path: Path, transport: str) -> None:
    image = two_layer(store, "app:1", whiteouts=ROOT)
    dest = tmp_path / ("layout" if transport == "oci" else "a.tar")
    skopeo("copy", f"oci:{store.images_dir}:app:1", f"{transport}:{dest}:made/by:skopeo")
    other = ImageStore(tmp_path / "other")
    assert load_from(other, dest) == ["Loaded image: made/by:skopeo"]
    loaded = other.resolve("made/by:skopeo")
    assert loaded.id == image.id  # the config, byte for byte
    assert {rel for rel, _ in layers.Stack(other.layer_dirs(loaded)).walk()} == \
        {rel for rel, _ in layers.Stack(store.layer_dirs(image)).walk()}


@needs_umoci
@needs_root
def test_load_what_umoci_writes_with_its_whiteouts(tmp_path: Path) -> None:
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True)

    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:base")
    umoci("unpack", "--image", f"{layout}:base", str(bundle))
    rootfs = bundle / "rootfs"
    (rootfs / "etc" / "keep").parent.mkdir(parents=True, exist_ok=True)
    (rootfs / "etc" / "keep").write_text("k")
    (rootfs / "etc" / "gone").write_text("g")
    (rootfs / "d" / "old").parent.mkdir()
    (rootfs / "d" / "old").write_text("o")
    umoci("repack", "--image", f"{layout}:v1", str(bundle))
    shutil.rmtree(bundle)
    umoci("unpack", "--image", f"{layout}:v1", str(bundle))  # v2 = v1 + one more layer
    (rootfs / "etc" / "gone").unlink()  # a whiteout
    shutil.rmtree(rootfs / "d")
    (rootfs / "d").mkdir()  # rm -rf, mkdir: umoci writes whiteouts or an opaque dir
    (rootfs / "d" / "new").write_text("n")
    umoci("repack", "--image", f"{layout}:v2", str(bundle))
    store = ImageStore(tmp_path / "root")
    lines = load_from(store, layout)
    # umoci's ref.name is a bare tag ("v2"): it names no repository, so the images load
    # untagged, as Docker loads such an archive.
    assert len(lines) == 3 and all(line.startswith("Loaded image ID: sha256:") for line in lines)
    loaded = {tuple(i.diff_ids): i for i in store.list_images()}
    top = max(loaded.values(), key=lambda i: len(i.diff_ids))
    tree = {rel for rel, _ in layers.Stack(store.layer_dirs(top)).walk()}
    assert {"etc/keep", "d/new"} <= tree and not {"etc/gone", "d/old"} & tree
