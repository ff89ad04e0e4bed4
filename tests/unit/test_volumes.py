"""The volume store: create, use/release, list filters, rm in use, prune, and seeding."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from minidocker import volumes
from minidocker.errors import UsageError
from tests import xattrs
from tests.conftest import needs_root

pytestmark = pytest.mark.nb08


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "root")


def _container(root: str, cid: str) -> None:
    """A container record, as far as the store looks: its directory."""
    os.makedirs(os.path.join(root, "containers", cid))


def test_create_named_and_anonymous(root: str) -> None:
    db = volumes.create(root, "db", labels={"team": "a"})
    assert db.mountpoint == os.path.join(root, "volumes", "db", "_data")
    assert os.path.isdir(db.mountpoint) and not db.anonymous
    shown = db.as_docker()
    assert shown["Name"] == "db" and shown["Driver"] == "local" and shown["Scope"] == "local"
    assert shown["Labels"] == {"team": "a"} and shown["Options"] is None
    assert shown["CreatedAt"].endswith("Z") and shown["Mountpoint"] == db.mountpoint
    # an existing name is returned as it is (labels of the second call are not applied)
    assert volumes.create(root, "db", labels={"team": "b"}).record == db.record
    anon = volumes.create(root)
    assert len(anon.name) == 64 and anon.anonymous
    assert anon.as_docker()["Labels"] == {volumes.ANONYMOUS_LABEL: ""}
    assert sorted(os.listdir(os.path.join(root, "volumes"))) == sorted(["db", anon.name])


def test_bad_names_and_options(root: str) -> None:
    with pytest.raises(UsageError, match='^"a b" includes invalid characters'):
        volumes.create(root, "a b")
    with pytest.raises(UsageError, match='^invalid option: "colour"$'):
        volumes.create(root, "v", options={"colour": "red"})
    with pytest.raises(UsageError, match='^missing required option: "device"$'):
        volumes.create(root, "v", options={"type": "tmpfs"})
    assert not os.path.exists(os.path.join(root, "volumes", "v"))


def test_options_are_recorded_and_a_plain_release_mounts_nothing(root: str) -> None:
    asked = {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    v = volumes.create(root, "mem", options=asked)
    assert v.record["Options"] == asked and v.as_docker()["Options"] == asked
    cid = "d" * 64
    _container(root, cid)
    volumes.use(root, "mem", cid)  # a create holds it: nothing is mounted until a start
    volumes.release(root, "mem", cid)  # and the last release finds nothing to unmount
    assert volumes.users(root, "mem") == []
    volumes.remove(root, "mem")
    with pytest.raises(volumes.VolumeNotFound, match="^get nope: no such volume$"):
        volumes.get(root, "nope")


def test_in_use_blocks_rm_until_released(root: str) -> None:
    cid = "c" * 64
    _container(root, cid)
    used = volumes.use(root, "db", cid)
    assert volumes.users(root, "db") == [cid]
    for force in (False, True):  # Docker's -f does not remove a volume in use either
        with pytest.raises(volumes.VolumeInUse) as err:
            volumes.remove(root, "db", force=force)
        assert str(err.value) == f"remove db: volume is in use - [{cid}]"
    assert os.path.isdir(used.mountpoint)
    volumes.release(root, "db", cid)
    volumes.release(root, "db", cid)  # idempotent
    volumes.remove(root, "db")
    assert not os.path.exists(used.path)
    assert os.listdir(os.path.join(root, "volumes")) == []  # no scratch or trash left
    with pytest.raises(volumes.VolumeNotFound):
        volumes.remove(root, "db")
    volumes.remove(root, "db", force=True)  # -f: a missing volume is no error


def test_reference_of_a_vanished_container_does_not_pin(root: str) -> None:
    volumes.use(root, "db", "d" * 64)  # no record: its rm died half-way
    assert volumes.users(root, "db") == []
    volumes.remove(root, "db")


def test_use_makes_anonymous_volumes(root: str) -> None:
    cid = "e" * 64
    _container(root, cid)
    anon = volumes.use(root, None, cid)
    assert anon.anonymous and volumes.users(root, anon.name) == [cid]
    assert volumes.use(root, anon.name, cid).record == anon.record  # reused, not remade


def test_list_filters(root: str) -> None:
    cid = "f" * 64
    _container(root, cid)
    volumes.create(root, "alpha", labels={"tier": "db"})
    volumes.use(root, "beta", cid)
    volumes.create(root, "gamma")

    def names(**filters: list[str]) -> list[str]:
        return [v.name for v in volumes.list_volumes(root, filters)]

    assert names() == ["alpha", "beta", "gamma"]
    assert names(dangling=["true"]) == ["alpha", "gamma"]
    assert names(dangling=["false"]) == ["beta"]
    assert names(name=["^b"]) == ["beta"]
    assert names(name=["a$"]) == ["alpha", "beta", "gamma"]
    assert names(label=["tier=db"]) == ["alpha"]
    assert names(label=["tier=web"]) == []
    assert names(driver=["local"]) == ["alpha", "beta", "gamma"]
    with pytest.raises(UsageError, match="^invalid filter 'colour'$"):
        names(colour=["red"])
    with pytest.raises(UsageError, match="^invalid filter 'dangling=maybe'$"):
        names(dangling=["maybe"])


def test_prune_takes_unused_anonymous_unless_all(root: str) -> None:
    cid = "a" * 64
    _container(root, cid)
    named = volumes.create(root, "kept")
    unused_anon = volumes.create(root)
    Path(unused_anon.mountpoint, "f").write_bytes(b"x" * 1500)
    os.link(Path(unused_anon.mountpoint, "f"), Path(unused_anon.mountpoint, "g"))
    used_anon = volumes.use(root, None, cid)
    assert volumes.prune(root) == ([unused_anon.name], 1500)  # a hard link counts once
    assert volumes.prune(root, all_volumes=True) == ([named.name], 0)
    assert [v.name for v in volumes.list_volumes(root)] == [used_anon.name]


def _tree(top: Path) -> dict[str, tuple[int, ...]]:
    out = {}
    for path in sorted([top, *top.rglob("*")]):
        st = os.lstat(path)
        out[str(path.relative_to(top))] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns,
                                           st.st_size)
    return out


@needs_root  # it gives files other owners, as an image's files have
def test_seed_copies_the_image_path_once_as_it_is(root: str, tmp_path: Path) -> None:
    image = tmp_path / "image-data"
    (image / "sub").mkdir(parents=True)
    (image / "sub" / "file").write_text("hello")
    os.link(image / "sub" / "file", image / "hardlink")
    (image / "link").symlink_to("sub/file")
    os.mkfifo(image / "fifo")
    (image / "secret").write_text("s")
    os.chmod(image / "secret", 0o4750)
    os.chown(image / "secret", 1234, 5678)
    os.chmod(image, 0o1777)
    has_user_xattrs = xattrs.supports(tmp_path)
    if has_user_xattrs:
        os.setxattr(image / "sub" / "file", "user.colour", b"blue")
    for path in (image / "sub", image):
        os.utime(path, ns=(1_000_000_000, 2_000_000_000))

    volume = volumes.create(root, "db")
    assert volumes.seed(volume.mountpoint, str(image))
    copied = Path(volume.mountpoint)
    assert _tree(copied) == _tree(image)
    assert os.lstat(copied / "hardlink").st_ino == os.lstat(copied / "sub" / "file").st_ino
    assert os.readlink(copied / "link") == "sub/file"
    assert stat.S_ISFIFO(os.lstat(copied / "fifo").st_mode)
    if has_user_xattrs:
        assert os.getxattr(copied / "sub" / "file", "user.colour") == b"blue"
    # only the first time: a later change in the image is not copied again
    (image / "new").write_text("later")
    os.unlink(copied / "secret")
    assert not volumes.seed(volume.mountpoint, str(image))
    assert not (copied / "new").exists() and not (copied / "secret").exists()


def test_seed_leaves_a_volume_with_data_and_marks_an_empty_source(root: str,
                                                                   tmp_path: Path) -> None:
    image = tmp_path / "image-data"
    image.mkdir()
    (image / "f").write_text("image")
    full = volumes.create(root, "full")
    Path(full.mountpoint, "mine").write_text("mine")
    assert not volumes.seed(full.mountpoint, str(image))
    assert os.listdir(full.mountpoint) == ["mine"]
    empty = volumes.create(root, "empty")
    assert not volumes.seed(empty.mountpoint, str(tmp_path / "absent"))
    assert volumes.get(root, "empty").record["Seeded"]
    assert not volumes.seed(empty.mountpoint, str(image))  # the first mount decided
    assert os.listdir(empty.mountpoint) == []


@needs_root  # chown(2) to other owners
def test_shift_owners_moves_ids_into_a_range_once(tmp_path: Path) -> None:
    root = str(tmp_path)
    volume = volumes.create(root, "shifted")
    data = Path(volume.mountpoint)
    (data / "d").mkdir()
    (data / "d" / "f").write_text("x")
    (data / "s").write_text("suid")
    os.chown(data / "d" / "f", 1000, 1000)
    os.chmod(data / "s", 0o4755)
    os.symlink("d", data / "link")
    assert volumes.shift_owners(str(data), 100000, 200000, 65536)
    owners = {p.name: (p.lstat().st_uid, p.lstat().st_gid) for p in [data, *data.rglob("*")]}
    assert owners == {"_data": (100000, 200000), "d": (100000, 200000),
                      "f": (101000, 201000), "s": (100000, 200000), "link": (100000, 200000)}
    assert (data / "s").stat().st_mode & 0o7777 == 0o4755  # chown cleared it; put back
    assert not volumes.shift_owners(str(data), 100000, 200000, 65536)  # once per range
    assert volumes.shift_owners(str(data), 300000, 300000, 65536)  # from the recorded one
    assert (data / "d" / "f").stat().st_uid == 301000
    assert volumes.get(root, "shifted").record["IdShift"] == [300000, 300000]
