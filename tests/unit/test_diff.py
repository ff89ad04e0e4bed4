"""Changes (A/C/D), the layers commit writes, the Stack view, vfs copies, and drivers."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from minidocker import diff, graphdriver, layers, vfs
from minidocker.errors import HostError
from minidocker.layers import Stack
from tests import xattrs

pytestmark = [pytest.mark.nb04, pytest.mark.nb05]

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="whiteouts are 0/0 devices (mknod needs "
                                                 "CAP_MKNOD) and opaque dirs trusted.* xattrs")
MTIME = 1_600_000_000


def make_tar(*entries: tuple[str, bytes, Any]) -> bytes:
    """(name, type, data or link target) entries as an uncompressed PAX tar."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.type, info.mtime = kind, MTIME
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data
            tar.addfile(info)
    return out.getvalue()


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


R, D, S, H = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE

# Three layers, base first: whiteouts, an opaque dir, dir->file and file->dir, a whiteout and
# the same name in one layer (the name stays), a symlink and a hard link.
LAYERS = [
    make_tar(("a", D, b""), ("a/x", R, b"1"), ("a/y", R, b"2"), ("b", D, b""), ("b/z", R, b"3"),
             ("f", R, b"f"), ("d2f", D, b""), ("d2f/k", R, b"k"), ("o", D, b""),
             ("o/old", R, b"o")),
    make_tar(("a/.wh.x", R, b""), ("b/.wh..wh..opq", R, b""), ("b/new", R, b"n"),
             ("d2f", R, b"now a file"), ("f", R, b"f2"), (".wh.zz", R, b"")),
    make_tar(("o/.wh..wh..opq", R, b""), ("o/fresh", R, b"fr"), ("f", D, b""),
             ("f/in", R, b"in"), ("a/.wh.y", R, b""), ("a/y", R, b"same layer keeps"),
             ("l", S, "/etc"), ("hl", H, "f/in")),
]
EXPECTED = {"a": None, "a/y": b"same layer keeps", "b": None, "b/new": b"n",
            "d2f": b"now a file", "f": None, "f/in": b"in", "hl": b"in", "l": "/etc",
            "o": None, "o/fresh": b"fr"}


def unpack_layers(tmp_path: Path, whiteouts: str) -> list[str]:
    """LAYERS unpacked in ``whiteouts`` form; topmost first, as overlay's lowerdir."""
    dirs = []
    for i, data in enumerate(LAYERS):
        d = tmp_path / f"{whiteouts}{i}"
        d.mkdir()
        layers.unpack(io.BytesIO(data), d, whiteouts=whiteouts)
        dirs.append(str(d))
    return dirs[::-1]


def view(stack: Stack) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for rel, node in stack.walk():
        if stat.S_ISREG(node.st.st_mode):
            found[rel] = Path(node.path).read_bytes()
        elif stat.S_ISLNK(node.st.st_mode):
            found[rel] = os.readlink(node.path)
        else:
            found[rel] = None
    return found


# -- Stack: the union, in user space ---------------------------------------------------------

def test_stack_of_oci_form_layers(tmp_path: Path) -> None:
    assert view(Stack(unpack_layers(tmp_path, "oci"), "oci")) == EXPECTED


@needs_root
def test_stack_of_overlay_form_layers_is_the_same_tree(tmp_path: Path) -> None:
    # (The kernel's own merge of these layers is checked in tests/kernel/test_images.py.)
    assert view(Stack(unpack_layers(tmp_path, "overlay"), "overlay")) == EXPECTED


def test_stack_lookup_and_plain_trees(tmp_path: Path) -> None:
    stack = Stack(unpack_layers(tmp_path, "oci"), "oci")
    node = stack.lookup("f/in")
    assert node is not None and Path(node.path).read_bytes() == b"in"
    assert stack.lookup("a/x") is None and stack.lookup("zz") is None
    assert stack.lookup("d2f/k") is None  # under a file now
    # A plain tree: ".wh." names are ordinary files there.
    plain = tmp_path / "plain"
    (plain / "d").mkdir(parents=True)
    (plain / "d" / ".wh.x").write_text("")
    assert [rel for rel, _ in Stack([plain], whiteouts=None).walk()] == ["d", "d/.wh.x"]


def test_stack_never_descends_into_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host")
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "etc").symlink_to(outside)
    assert [rel for rel, _ in Stack([layer], "oci").walk()] == ["etc"]
    assert Stack([layer], "oci").lookup("etc/secret") is None


# -- changes ---------------------------------------------------------------------------------

@needs_root
def test_upper_changes_like_docker_diff(tmp_path: Path) -> None:
    lowers = unpack_layers(tmp_path, "overlay")
    upper = tmp_path / "upper"
    (upper / "a").mkdir(parents=True)
    os.mknod(upper / "a" / "y", stat.S_IFCHR, os.makedev(0, 0))  # rm /a/y
    os.mknod(upper / "ghost", stat.S_IFCHR, os.makedev(0, 0))  # rm of something not there
    (upper / "o").mkdir()
    os.setxattr(upper / "o", "trusted.overlay.opaque", b"y")  # rm -rf /o; mkdir /o
    (upper / "o" / "mine").write_text("m")
    (upper / "new").mkdir()
    (upper / "new" / "file").write_text("n")
    (upper / "f").mkdir()
    (upper / "f" / "in").write_text("changed")
    changes = [str(c) for c in diff.upper_changes(str(upper), Stack(lowers))]
    assert changes == ["C /a", "D /a/y", "C /f", "C /f/in", "A /new", "A /new/file", "C /o",
                       "D /o/fresh", "A /o/mine"]


def test_tree_changes_of_a_copy(tmp_path: Path) -> None:
    lowers = unpack_layers(tmp_path, "oci")
    copy = tmp_path / "copy"
    copy.mkdir()
    vfs.populate(str(copy), lowers)
    image = Stack(lowers, "oci")
    assert diff.tree_changes(str(copy), image) == []
    (copy / "a" / "y").unlink()
    (copy / "new").mkdir()
    (copy / "new" / "file").write_text("n")
    (copy / "f" / "in").write_text("changed, and longer")
    (copy / "d2f").unlink()
    (copy / "d2f").mkdir()  # a file became a directory
    (copy / "d2f" / "k").write_text("k")
    assert [str(c) for c in diff.tree_changes(str(copy), image)] == [
        "C /a", "D /a/y", "C /d2f", "A /d2f/k", "C /f", "C /f/in", "C /hl", "A /new",
        "A /new/file"]


def test_init_layer_placeholders_are_ignored(tmp_path: Path) -> None:
    top = tmp_path / "upper"
    for d in ("proc", "sys", "dev", "etc"):
        (top / d).mkdir(parents=True)
    for f in ("hostname", "hosts", "resolv.conf"):
        (top / "etc" / f).touch()
    dirs, files = ("proc", "sys", "dev", "etc"), ("etc/hostname", "etc/hosts",
                                                  "etc/resolv.conf")
    skip = diff.init_placeholders(str(top), dirs, files)
    assert skip == {*dirs, *files}
    (top / "etc" / "hosts").write_text("written by the container")  # no longer a placeholder
    (top / "etc" / "passwd").write_text("x")
    skip = diff.init_placeholders(str(top), dirs, files)
    assert skip == {"proc", "sys", "dev", "etc/hostname", "etc/resolv.conf"}
    empty_image = Stack([str(tmp_path / "none")], "oci")
    assert [str(c) for c in diff.tree_changes(str(top), empty_image, skip)] == [
        "A /etc", "A /etc/hosts", "A /etc/passwd"]


# -- the layer commit writes -------------------------------------------------------------------

@needs_root
def test_upper_layer_round_trips_through_the_unpacker(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "o" / "sub").mkdir(parents=True)
    os.setxattr(upper / "o", "trusted.overlay.opaque", b"y")
    os.mknod(upper / "gone", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "o" / "sub" / "f").write_bytes(b"data")
    os.link(upper / "o" / "sub" / "f", upper / "o" / "link")
    (upper / "o" / "sym").symlink_to("/nowhere")
    os.mkfifo(upper / "o" / "fifo")
    os.chmod(upper / "o" / "sub" / "f", 0o4751)
    # tmpfs holds user.* xattrs only from Linux 6.6; the unpacker's fallback is in test_layers.
    user_xattrs = xattrs.supports(tmp_path)
    if user_xattrs:
        os.setxattr(upper / "o" / "sub" / "f", "user.note", b"\xff binary")
    os.utime(upper / "o" / "sub" / "f", (MTIME, MTIME))
    (upper / "o" / "owned").write_text("o")
    os.chown(upper / "o" / "owned", 1234, 5678)
    (upper / "proc").mkdir()  # an init-layer placeholder: left out
    out = io.BytesIO()
    diff.write_upper_layer(str(upper), out, {"proc"})
    names = tar_names(out.getvalue())
    assert ".wh.gone" in names and "o/.wh..wh..opq" in names and "proc" not in names
    assert names.index("o") < names.index("o/.wh..wh..opq")  # the dir, then its marker
    back = tmp_path / "back"
    back.mkdir()
    layers.unpack(io.BytesIO(out.getvalue()), back)
    assert layers.is_whiteout((back / "gone").lstat())
    assert os.getxattr(back / "o", "trusted.overlay.opaque") == b"y"
    f = back / "o" / "sub" / "f"
    assert f.read_bytes() == b"data" and stat.S_IMODE(f.stat().st_mode) == 0o4751
    assert f.stat().st_mtime == MTIME
    assert not user_xattrs or os.getxattr(f, "user.note") == b"\xff binary"
    assert (back / "o" / "link").stat().st_ino == f.stat().st_ino
    assert os.readlink(back / "o" / "sym") == "/nowhere"
    assert stat.S_ISFIFO((back / "o" / "fifo").lstat().st_mode)
    owned = (back / "o" / "owned").stat()
    assert (owned.st_uid, owned.st_gid) == (1234, 5678)
    assert not (back / "proc").exists()


def test_changes_layer_has_whiteouts_for_deletions(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "motd").write_text("hi")
    out = io.BytesIO()
    diff.write_changes_layer(str(rootfs), [diff.Change("C", "etc"), diff.Change("D", "etc/x"),
                                           diff.Change("A", "etc/motd")], out)
    assert tar_names(out.getvalue()) == [
        "etc", "etc/.wh.x", "etc/motd"]


# -- vfs ---------------------------------------------------------------------------------------

def test_vfs_populate_copies_the_merged_view_with_metadata(tmp_path: Path) -> None:
    lowers = unpack_layers(tmp_path, "oci")
    copy = tmp_path / "copy"
    copy.mkdir()
    vfs.populate(str(copy), lowers)
    assert view(Stack([copy], whiteouts=None)) == EXPECTED
    assert (copy / "hl").stat().st_ino == (copy / "f" / "in").stat().st_ino
    assert (copy / "f").stat().st_mtime == MTIME  # directory times set after their contents
    assert not any(n.startswith(".wh.") for _, _, files in os.walk(copy) for n in files)


def test_vfs_prepare_adds_mount_points_without_touching_parent_times(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    layer.mkdir()
    layers.unpack(io.BytesIO(make_tar(("etc", D, b""), ("etc/passwd", R, b"root"))), layer)
    cdir = tmp_path / "c"
    cdir.mkdir()
    merged = Path(vfs.prepare(str(cdir), [str(layer)], ("proc", "etc"), ("etc/hosts",)))
    assert (merged / "proc").is_dir() and (merged / "etc" / "hosts").read_bytes() == b""
    assert (merged / "etc").stat().st_mtime == MTIME
    skip = diff.init_placeholders(str(merged), ("proc", "etc"), ("etc/hosts",))
    assert diff.tree_changes(str(merged), Stack([layer], "oci"), skip) == []


# -- choosing the driver -----------------------------------------------------------------------

def test_driver_choice_is_made_once_and_kept(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv(graphdriver.ENV_OVERRIDE, raising=False)
    monkeypatch.setattr(graphdriver, "decide", lambda root: ("vfs", "a test says so"))
    assert graphdriver.current(str(tmp_path)) == "vfs"
    assert graphdriver.recorded_choice(str(tmp_path)) == ("vfs", "a test says so")
    monkeypatch.setattr(graphdriver, "decide", lambda root: ("overlay", "changed its mind"))
    assert graphdriver.current(str(tmp_path)) == "vfs"  # layers are in vfs's format now
    monkeypatch.setenv(graphdriver.ENV_OVERRIDE, "overlay")
    with pytest.raises(HostError, match="uses the vfs storage driver"):
        graphdriver.current(str(tmp_path))
    monkeypatch.setenv(graphdriver.ENV_OVERRIDE, "btrfs")
    with pytest.raises(HostError, match="unknown storage driver 'btrfs'"):
        graphdriver.current(str(tmp_path / "other"))


def test_env_override_chooses_a_new_roots_driver(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv(graphdriver.ENV_OVERRIDE, "vfs")
    assert graphdriver.current(str(tmp_path)) == "vfs"
    assert graphdriver.recorded_choice(str(tmp_path))[1] == "$MINIDOCKER_STORAGE_DRIVER=vfs"


def test_doctor_rule_decides_a_real_root(tmp_path: Path) -> None:
    driver, why = graphdriver.decide(str(tmp_path))
    assert driver in graphdriver.DRIVERS and str(tmp_path) in why


def test_container_record(tmp_path: Path) -> None:
    assert graphdriver.recorded(str(tmp_path)) == ("overlay", [])  # an older container
    graphdriver.record(str(tmp_path), "vfs", ["/l/top", "/l/base"])
    assert graphdriver.recorded(str(tmp_path)) == ("vfs", ["/l/top", "/l/base"])


def test_a_file_that_changes_while_read_still_gives_the_promised_size():
    import io as _io

    from minidocker.diff import _Exactly

    shrunk = _Exactly(_io.BytesIO(b"abc"), 6)
    assert shrunk.read(4) + shrunk.read(4) == b"abc\0\0\0"
    grown = _Exactly(_io.BytesIO(b"abcdefgh"), 5)
    assert grown.read() == b"abcde" and grown.read(3) == b""
