"""The image store: import, resolve, tags, integrity, and the built-in busybox image."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from minidocker import busybox, layers
from minidocker.errors import (
    CorruptBlob,
    HostError,
    ImageError,
    ImageNotFound,
    InvalidReference,
    UnsafeArchive,
    UsageError,
)
from minidocker.store import (
    DEFAULT_PATH_ENV,
    MEDIA_LAYER_GZIP,
    ImageStore,
    Layer,
    host_architecture,
)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="whiteouts are char devices: mknod needs root")


def _static_busybox() -> bool:
    try:
        busybox.check_static()
    except HostError:
        return False
    return True


STATIC_BUSYBOX = _static_busybox()
needs_busybox = pytest.mark.skipif(not STATIC_BUSYBOX,
                                   reason="needs a static /bin/busybox (busybox-static)")


def rootfs_tar(files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return out.getvalue()


def snapshot(root: Path) -> dict[str, Any]:
    """A listing of everything under root, with file contents: to compare byte for byte."""
    found: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                found[rel] = (st.st_mode, path.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                found[rel] = os.readlink(path)
            else:
                found[rel] = st.st_mode
    return found


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "state")


# -- import and resolve -----------------------------------------------------------------------

def test_import_then_resolve_round_trip(store: ImageStore, tmp_path: Path) -> None:
    tar = rootfs_tar({"bin/hello": b"#!/bin/sh\necho hi\n", "etc/os-release": b"ID=test\n"})
    src = tmp_path / "rootfs.tar"
    src.write_bytes(tar)
    imported = store.import_tarball(src, "myrepo/app:v1")
    image = store.resolve("myrepo/app:v1")
    assert (image.id, image.ref, image.manifest_digest) == (
        imported.id, "myrepo/app:v1", imported.manifest_digest)
    assert image.diff_ids == [sha256(tar)]  # diff ID: the digest of the uncompressed tar
    assert image.config["os"] == "linux"
    assert image.config["architecture"] == host_architecture()
    assert image.config["config"]["Env"] == [DEFAULT_PATH_ENV]
    assert image.config["history"][0]["comment"] == f"Imported from {src}"
    assert image.config["created"].endswith("Z")
    [layer] = image.layer_dirs()
    assert layer == store.layers_dir / sha256(tar).removeprefix("sha256:")
    assert (layer / "bin" / "hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.listdir(store.tmp_dir) == []
    # Every spelling of the name, and the ID, find the same image.
    for ref in ("docker.io/myrepo/app:v1", image.id, image.id.removeprefix("sha256:"),
                image.short_id, image.short_id[:4], f"myrepo/app@{image.manifest_digest}"):
        assert store.resolve(ref).id == image.id, ref


def test_import_from_stdin_is_labelled_dash(store: ImageStore, monkeypatch: Any) -> None:
    stdin = io.BufferedReader(io.BytesIO(rootfs_tar({"a": b"a"})))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
    image = store.import_tarball("-", "from-stdin")
    assert image.config["history"][0]["comment"] == "Imported from -"
    assert image.config["history"][0]["created_by"] == "minidocker import -"


def test_import_gzip_from_a_stream(store: ImageStore) -> None:
    tar = rootfs_tar({"a": b"a"})
    image = store.import_tarball(io.BytesIO(gzip.compress(tar)), "gz")
    assert image.ref == "gz:latest"
    assert image.diff_ids == [sha256(tar)]  # of the uncompressed tar, not of the gzip
    assert (image.layer_dirs()[0] / "a").read_bytes() == b"a"


def test_import_applies_changes(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(rootfs_tar({"a": b"a"})), "c",
                                 changes={"Cmd": ["/a"], "Env": ["PATH=/x", "A=1"],
                                          "WorkingDir": "/w"})
    assert image.config["config"] == {"Env": ["PATH=/x", "A=1"], "Cmd": ["/a"],
                                      "WorkingDir": "/w"}
    with pytest.raises(UsageError, match="cannot change image config field 'Bogus'"):
        store.import_tarball(io.BytesIO(rootfs_tar({"a": b"a"})), "c", changes={"Bogus": 1})


def test_layout_is_readable_with_plain_json(store: ImageStore) -> None:
    store.import_tarball(io.BytesIO(rootfs_tar({"a": b"a"})), "plain:1")
    images = store.root / "images"
    assert json.loads((images / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((images / "index.json").read_text())
    assert index["schemaVersion"] == 2
    [entry] = index["manifests"]
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "plain:1",
                                    "io.containerd.image.name": "docker.io/library/plain:1"}

    def blob(descriptor: dict[str, Any]) -> bytes:
        data = (images / "blobs" / "sha256" / descriptor["digest"][7:]).read_bytes()
        assert sha256(data) == descriptor["digest"] and len(data) == descriptor["size"]
        return data

    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    manifest = json.loads(blob(entry))
    assert manifest["mediaType"] == entry["mediaType"]
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    config = json.loads(blob(manifest["config"]))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(blob(layer))]}


def test_missing_image(store: ImageStore) -> None:
    with pytest.raises(ImageNotFound, match=r"^unable to find image 'nothere:latest' locally$"):
        store.resolve("nothere")
    with pytest.raises(ImageNotFound, match="unable to find image 'sha256:"):
        store.resolve("sha256:" + "0" * 64)
    with pytest.raises(InvalidReference, match=r"repository name \(library/Nope\)"):
        store.resolve("Nope")


def test_retag_leaves_the_old_image_untagged(store: ImageStore) -> None:
    old = store.import_tarball(io.BytesIO(rootfs_tar({"v": b"1"})), "app:1")
    new = store.import_tarball(io.BytesIO(rootfs_tar({"v": b"2"})), "app:1")
    assert store.resolve("app:1").id == new.id != old.id
    listed = {image.id: image.ref for image in store.list_images()}
    assert listed == {old.id: None, new.id: "app:1"}
    assert store.resolve(old.id).ref is None  # still there, by ID, as in Docker


def test_tag(store: ImageStore) -> None:
    image = store.import_tarball(io.BytesIO(rootfs_tar({"a": b"a"})), "one")
    tagged = store.tag("one", "localhost:5000/two:x")
    assert tagged.ref == "localhost:5000/two:x" and tagged.id == image.id
    assert sorted(i.ref or "" for i in store.list_images()) == ["localhost:5000/two:x",
                                                                 "one:latest"]
    store.tag("one", "one:latest")  # again: no duplicate entry
    assert len(store.list_images()) == 2
    with pytest.raises(InvalidReference):
        store.tag("one", "Bad")


def test_same_content_shares_blobs_and_layers(store: ImageStore) -> None:
    tar = rootfs_tar({"a": b"a"})
    one = store.import_tarball(io.BytesIO(tar), "one")
    two = store.import_tarball(io.BytesIO(tar), "two")
    assert one.layer_dirs() == two.layer_dirs()
    assert len(os.listdir(store.layers_dir)) == 1


def test_concurrent_writers_lose_no_entry(store: ImageStore, tmp_path: Path) -> None:
    # index.json is read-modify-written under flock: four processes at once keep all four tags.
    sources = []
    for i in range(4):
        sources.append(tmp_path / f"{i}.tar")
        sources[-1].write_bytes(rootfs_tar({"n": str(i).encode()}))
    code = ("import sys; from minidocker.store import ImageStore; "
            "ImageStore(sys.argv[1]).import_tarball(sys.argv[2], sys.argv[3])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store.root), str(src), f"c:{i}"])
             for i, src in enumerate(sources)]
    assert [p.wait() for p in procs] == [0] * 4
    assert sorted(i.ref or "" for i in store.list_images()) == [f"c:{i}" for i in range(4)]
    assert os.listdir(store.tmp_dir) == []


# -- bad input changes nothing ----------------------------------------------------------------

@pytest.fixture
def used_store(store: ImageStore) -> ImageStore:
    store.import_tarball(io.BytesIO(rootfs_tar({"a": b"a"})), "existing")
    return store


def test_truncated_gzip_leaves_store_unchanged(used_store: ImageStore, tmp_path: Path) -> None:
    data = gzip.compress(rootfs_tar({"big": os.urandom(200_000)}))
    src = tmp_path / "cut.tar.gz"
    src.write_bytes(data[: len(data) // 2])
    before = snapshot(used_store.root)
    with pytest.raises(ImageError) as caught:
        used_store.import_tarball(src, "cut")
    assert str(caught.value).startswith(f"invalid tar archive {src}: truncated or corrupt gzip")
    assert snapshot(used_store.root) == before


@pytest.mark.parametrize(("data", "error", "message"), [
    (rootfs_tar({"a": b"a"})[:700], ImageError, "unexpected end of data"),
    (b"not a tar at all" * 64, ImageError, "invalid tar archive"),
    (b"", ImageError, "empty file"),
    (rootfs_tar({"../escape": b"x"}), UnsafeArchive, "unsafe tar entry '../escape'"),
    (rootfs_tar({"/etc/x": b"x"}), UnsafeArchive, "is absolute"),
    (b"\xfd7zXZ\x00" + b"\0" * 100, ImageError, "is xz-compressed"),
])
def test_bad_tarball_leaves_store_unchanged(used_store: ImageStore, data: bytes,
                                            error: type[Exception], message: str) -> None:
    before = snapshot(used_store.root)
    with pytest.raises(error, match=message):
        used_store.import_tarball(io.BytesIO(data), "bad")
    assert snapshot(used_store.root) == before


def test_bad_reference_or_source_leaves_store_unchanged(used_store: ImageStore,
                                                        tmp_path: Path) -> None:
    before = snapshot(used_store.root)
    with pytest.raises(InvalidReference, match="must be lowercase"):
        used_store.import_tarball(io.BytesIO(rootfs_tar({"a": b"b"})), "Bad")
    with pytest.raises(InvalidReference, match="cannot import to a digest"):
        used_store.import_tarball(io.BytesIO(rootfs_tar({"a": b"b"})), "x@sha256:" + "a" * 64)
    with pytest.raises(UsageError, match=f"cannot open {tmp_path}/nope.tar: No such file"):
        used_store.import_tarball(tmp_path / "nope.tar", "x")
    assert snapshot(used_store.root) == before


# -- integrity --------------------------------------------------------------------------------

def test_corrupt_blob_is_detected(used_store: ImageStore) -> None:
    image = used_store.resolve("existing")
    digest = image.manifest["layers"][0]["digest"]
    path = used_store.blob_path(digest)
    data = bytearray(path.read_bytes())
    data[600] ^= 0xFF  # inside the file content, so the tar itself still parses
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptBlob, match=f"^blob {digest} does not match its digest"):
        used_store.read_blob(digest)
    # The layer directory is gone: unpacking it again must notice.
    shutil.rmtree(image.layer_dirs()[0])
    with pytest.raises(CorruptBlob, match=f"^blob {digest} does not match its digest"):
        image.layer_dirs()
    assert os.listdir(used_store.tmp_dir) == [] and os.listdir(used_store.layers_dir) == []


def test_corrupt_tar_header_is_reported_as_corrupt_blob(used_store: ImageStore) -> None:
    image = used_store.resolve("existing")
    digest = image.manifest["layers"][0]["digest"]
    used_store.blob_path(digest).write_bytes(b"garbage" * 200)
    shutil.rmtree(image.layer_dirs()[0])
    with pytest.raises(CorruptBlob, match=f"^blob {digest} does not match"):
        image.layer_dirs()


def test_missing_and_truncated_json_blobs(used_store: ImageStore) -> None:
    image = used_store.resolve("existing")
    config = used_store.blob_path(image.id)
    config.write_bytes(config.read_bytes()[:-5])
    with pytest.raises(CorruptBlob, match=f"blob {image.id} \\(config\\) is .* bytes"):
        used_store.resolve("existing")
    config.unlink()
    with pytest.raises(CorruptBlob, match=f"blob {image.id} is missing"):
        used_store.resolve("existing")


def test_write_blob_verifies_the_expected_digest(store: ImageStore) -> None:
    descriptor = store.write_blob(b"hello", "text/plain")
    assert descriptor == {"mediaType": "text/plain", "digest": sha256(b"hello"), "size": 5}
    assert store.read_blob(sha256(b"hello")) == b"hello"
    with pytest.raises(CorruptBlob, match=f"blob {sha256(b'other')} does not match"):
        store.write_blob(b"hello!", digest=sha256(b"other"))
    assert os.listdir(store.tmp_dir) == []
    assert os.listdir(store.blobs_dir) == [sha256(b"hello")[7:]]
    with pytest.raises(ImageError, match="invalid digest '../../etc/passwd'"):
        store.read_blob("../../etc/passwd")


# -- multi-layer: what commit and pull will build on ------------------------------------------

@needs_root
def test_multi_layer_image_in_lowerdir_order(store: ImageStore) -> None:
    base = store.add_layer(io.BytesIO(rootfs_tar({"etc/motd": b"base", "bin/a": b"a"})))
    whiteout = tarfile.TarInfo("etc/.wh.motd")
    top = store.add_layer(io.BytesIO(rootfs_tar({"bin/b": b"b"}, [whiteout])),
                          parent=base.diff_id)
    image = store.write_image({"architecture": "amd64", "os": "linux"}, [base, top], "multi")
    chain = layers.chain_ids([base.diff_id, top.diff_id])
    dirs = image.layer_dirs()
    assert dirs == [store.layer_path(chain[1]), store.layer_path(chain[0])]  # top first
    assert (dirs[0] / "bin" / "b").exists() and stat.S_ISCHR((dirs[0] / "etc" / "motd")
                                                             .lstat().st_mode)
    # Layers are unpacked on demand from their blobs, e.g. after a pull, and verified.
    for path in dirs:
        shutil.rmtree(path)
    assert store.resolve("multi").layer_dirs() == dirs
    assert (dirs[1] / "etc" / "motd").read_bytes() == b"base"


def test_gzip_layer_blob_is_unpacked_on_demand(store: ImageStore) -> None:
    tar = rootfs_tar({"hello": b"world"})
    descriptor = store.write_blob(gzip.compress(tar, mtime=0), MEDIA_LAYER_GZIP)
    image = store.write_image({"os": "linux"}, [Layer(descriptor, sha256(tar))], "pulled")
    [layer] = store.resolve("pulled").layer_dirs()
    assert (layer / "hello").read_bytes() == b"world"
    wrong = store.write_image({"os": "linux"}, [Layer(descriptor, sha256(b"x"))], "wrong")
    with pytest.raises(CorruptBlob, match=f"does not match its diff ID {sha256(b'x')}"):
        wrong.layer_dirs()
    assert image.id != wrong.id


# -- the hot path stays light -----------------------------------------------------------------

def test_resolving_imports_no_tarfile_hashlib_or_gzip(used_store: ImageStore) -> None:
    code = ("import sys; from minidocker.store import ImageStore; "
            f"img = ImageStore({str(used_store.root)!r}).resolve('existing'); img.layer_dirs(); "
            "print(sorted(m for m in ('tarfile', 'hashlib', 'gzip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# -- busybox ----------------------------------------------------------------------------------

@needs_busybox
def test_busybox_is_built_on_demand_and_reproducible(tmp_path: Path) -> None:
    one = ImageStore(tmp_path / "one").resolve("busybox")
    two = ImageStore(tmp_path / "two").resolve("docker.io/library/busybox:latest")
    assert one.ref == two.ref == "busybox:latest"
    assert (one.id, one.manifest_digest) == (two.id, two.manifest_digest)
    assert one.config["config"]["Cmd"] == ["sh"]
    assert one.config["config"]["Env"] == [DEFAULT_PATH_ENV]
    assert one.config["config"]["WorkingDir"] == "/"
    [root] = one.layer_dirs()
    assert (root / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()
    assert os.readlink(root / "bin" / "sh") == "/bin/busybox"
    assert (root / "usr" / "bin" / "env").is_symlink()
    assert not (root / "bin" / "busybox").is_symlink()
    assert stat.S_IMODE((root / "tmp").lstat().st_mode) == 0o1777
    assert stat.S_IMODE((root / "root").lstat().st_mode) == 0o700
    passwd = (root / "etc" / "passwd").read_text()
    assert passwd.startswith("root:x:0:0:root:/root:/bin/sh\n")
    assert "nobody:x:65534:65534:" in passwd
    assert "wheel:x:10:root\n" in (root / "etc" / "group").read_text()
    for d in ("proc", "sys", "dev", "home", "var/spool/mail", "var/www", "sbin", "usr/sbin"):
        assert (root / d).is_dir(), d
    # Found by name next time: not rebuilt.
    assert ImageStore(tmp_path / "one").resolve("busybox:latest").id == one.id


@needs_busybox
def test_busybox_rootfs_is_deterministic() -> None:
    data = busybox.check_static()
    applets = busybox.applets()
    assert "bin/sh" in applets and "bin/busybox" not in applets
    assert busybox.build_rootfs(data, applets, 1) == busybox.build_rootfs(data, applets, 1)


def test_busybox_needs_a_static_binary(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="not found.*apt-get install busybox-static"):
        busybox.check_static(tmp_path / "busybox")
    (tmp_path / "text").write_text("#!/bin/sh\n")
    with pytest.raises(HostError, match="is not an ELF executable"):
        busybox.check_static(tmp_path / "text")
    with pytest.raises(HostError, match="is dynamically linked.*busybox-static"):
        busybox.check_static(Path(sys.executable).resolve())


def test_only_busybox_is_built_in(store: ImageStore) -> None:
    with pytest.raises(ImageNotFound):
        store.resolve("busybox:1.36")
    assert not (store.root / "layers").exists() or os.listdir(store.layers_dir) == []


# -- other tools read what we write -----------------------------------------------------------

@pytest.mark.skipif(shutil.which("umoci") is None, reason="needs umoci (apt-get install umoci)")
def test_umoci_reads_the_layout(used_store: ImageStore, tmp_path: Path) -> None:
    out = subprocess.run(["umoci", "ls", "--layout", str(used_store.images_dir)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["existing:latest"]
    subprocess.run(["umoci", "unpack", "--image", f"{used_store.images_dir}:existing:latest",
                    str(tmp_path / "bundle")], capture_output=True, check=True)
    assert (tmp_path / "bundle" / "rootfs" / "a").read_bytes() == b"a"


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo (apt-get install skopeo)")
def test_skopeo_reads_the_layout(used_store: ImageStore) -> None:
    out = subprocess.run(["skopeo", "inspect", "--config", f"oci:{used_store.images_dir}"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["rootfs"]["type"] == "layers"
