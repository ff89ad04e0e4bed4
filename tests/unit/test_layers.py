"""Layer tars: every entry type, whiteouts, and every way out of the layer refused."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from minidocker import layers
from minidocker.errors import ImageError, UnsafeArchive
from tests import xattrs

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mknod, chown and trusted.* xattrs need root "
                                                 "(CAP_MKNOD, CAP_CHOWN, CAP_SYS_ADMIN)")
MTIME = 1_600_000_000
CANARY = Path(f"/etc/minidocker-test-canary-{os.getpid()}")


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields: Any
          ) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = fields.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = fields.pop("mtime", MTIME)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def unpack(tmp_path: Path, *entries: tuple[tarfile.TarInfo, bytes]) -> Path:
    dest = tmp_path / "dest"
    dest.mkdir(parents=True, exist_ok=True)
    layers.unpack(io.BytesIO(make_tar(*entries)), dest)
    return dest


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything under root: type, mode, and content or link target."""
    found: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                found[rel] = ("file", st.st_mode, path.read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            else:
                found[rel] = ("other", st.st_mode)
    return found


# -- entry types -----------------------------------------------------------------------------

def test_regular_file_content_mode_and_mtime(tmp_path: Path) -> None:
    dest = unpack(tmp_path, entry("./bin/tool", data=b"#!/bin/sh\n", mode=0o4755))
    tool = dest / "bin" / "tool"
    assert tool.read_bytes() == b"#!/bin/sh\n"
    st = tool.lstat()
    assert stat.S_IMODE(st.st_mode) == 0o4755  # setuid kept
    assert st.st_mtime == MTIME
    # A parent the tar did not list is created 0755, like Docker does.
    assert stat.S_IMODE((dest / "bin").lstat().st_mode) == 0o755


@needs_root
def test_owner_is_set_before_setuid_bit(tmp_path: Path) -> None:
    # chown(2) clears setuid: the mode must be applied after the owner.
    dest = unpack(tmp_path, entry("su", data=b"x", mode=0o4755, uid=1000, gid=1001))
    st = (dest / "su").lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o4755)


def test_directory_metadata_is_set_after_its_contents(tmp_path: Path) -> None:
    dest = unpack(tmp_path,
                  entry("etc", tarfile.DIRTYPE, mode=0o750, mtime=1000),
                  entry("etc/hosts", data=b"127.0.0.1 localhost\n"))
    st = (dest / "etc").lstat()
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert st.st_mtime == 1000  # not the time etc/hosts was written
    assert (dest / "etc" / "hosts").read_bytes() == b"127.0.0.1 localhost\n"


def test_tmp_like_directory_keeps_sticky_bit(tmp_path: Path) -> None:
    dest = unpack(tmp_path, entry("tmp", tarfile.DIRTYPE, mode=0o1777))
    assert stat.S_IMODE((dest / "tmp").lstat().st_mode) == 0o1777


def test_layer_root_entry_sets_root_metadata(tmp_path: Path) -> None:
    dest = unpack(tmp_path, entry("./", tarfile.DIRTYPE, mode=0o711, mtime=2000),
                  entry("./a", data=b"a"))
    st = dest.lstat()
    assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o711, 2000)


def test_symlinks_are_kept_verbatim_even_absolute(tmp_path: Path) -> None:
    dest = unpack(tmp_path,
                  entry("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox"),
                  entry("lib", tarfile.SYMTYPE, linkname="../../../usr/lib"))
    assert os.readlink(dest / "bin" / "sh") == "/bin/busybox"
    assert os.readlink(dest / "lib") == "../../../usr/lib"
    assert (dest / "bin" / "sh").lstat().st_mtime == MTIME


def test_hard_link_shares_the_inode(tmp_path: Path) -> None:
    dest = unpack(tmp_path,
                  entry("bin/busybox", data=b"ELF", mode=0o755),
                  entry("bin/ls", tarfile.LNKTYPE, linkname="bin/busybox"))
    assert (dest / "bin" / "ls").lstat().st_ino == (dest / "bin" / "busybox").lstat().st_ino


def test_hard_link_to_a_symlink_links_the_symlink(tmp_path: Path) -> None:
    dest = unpack(tmp_path,
                  entry("sh", tarfile.SYMTYPE, linkname="/etc/passwd"),
                  entry("sh2", tarfile.LNKTYPE, linkname="sh"))
    assert os.readlink(dest / "sh2") == "/etc/passwd"


def test_fifo(tmp_path: Path) -> None:
    dest = unpack(tmp_path, entry("run/pipe", tarfile.FIFOTYPE, mode=0o620))
    st = (dest / "run" / "pipe").lstat()
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620


@needs_root
@pytest.mark.parametrize(("kind", "test"), [(tarfile.CHRTYPE, stat.S_ISCHR),
                                            (tarfile.BLKTYPE, stat.S_ISBLK)])
def test_device_nodes(tmp_path: Path, kind: bytes, test: Any) -> None:
    dest = unpack(tmp_path, entry("dev/null", kind, mode=0o666, devmajor=1, devminor=3))
    st = (dest / "dev" / "null").lstat()
    assert test(st.st_mode)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666


def test_user_xattrs_from_pax_headers(tmp_path: Path) -> None:
    info, data = entry("f", data=b"x")
    info.pax_headers = {"SCHILY.xattr.user.note": "hello"}
    dest = tmp_path / "dest"
    dest.mkdir()
    warnings: list[str] = []
    layers.unpack(io.BytesIO(make_tar((info, data))), dest, label="layer x",
                  warn=warnings.append)
    if xattrs.supports(tmp_path):
        assert os.getxattr(dest / "f", "user.note") == b"hello" and warnings == []
    else:  # tmpfs before Linux 6.6: the file, and a word that its xattr is gone
        assert (dest / "f").read_bytes() == b"x"
        assert warnings == [f"layer x: the filesystem under {dest} does not support user.* "
                            "xattrs: dropped user.note on /f"]


def test_xattrs_the_store_cannot_hold_are_dropped_with_one_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xattrs.refuse(monkeypatch, "user.", "trusted.")
    a, a_data = entry("./etc/a", data=b"a")
    a.pax_headers = {"SCHILY.xattr.user.one": "1", "SCHILY.xattr.user.two": "2"}
    d, _ = entry("etc/", tarfile.DIRTYPE)
    d.pax_headers = {"SCHILY.xattr.trusted.app": "3"}
    dest = tmp_path / "dest"
    dest.mkdir()
    warnings: list[str] = []
    layers.unpack(io.BytesIO(make_tar((d, b""), (a, a_data))), dest, label="layer x",
                  warn=warnings.append)
    assert (dest / "etc" / "a").read_bytes() == b"a"
    assert warnings == [f"layer x: the filesystem under {dest} does not support trusted.* "
                        "and user.* xattrs: dropped trusted.app on /etc (and 2 more)"]


def test_dropped_xattrs_are_said_on_stderr_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    xattrs.refuse(monkeypatch, "user.")
    info, data = entry("f", data=b"x")
    info.pax_headers = {"SCHILY.xattr.user.note": "hello"}
    unpack(tmp_path, (info, data))
    err = capsys.readouterr().err
    assert err.startswith("minidocker: warning: layer: the filesystem under ")
    assert err.endswith("does not support user.* xattrs: dropped user.note on /f\n")


@pytest.mark.parametrize("attr", ["security.capability", "security.selinux",
                                  "system.posix_acl_access"])
def test_kernel_enforced_xattrs_the_store_cannot_hold_fail_the_unpack(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attr: str) -> None:
    # A file capability or an ACL silently dropped changes what the file lets a process do.
    xattrs.refuse(monkeypatch, "security.", "system.")
    info, data = entry("bin/ping", data=b"x")
    info.pax_headers = {f"SCHILY.xattr.{attr}": "\x01"}
    with pytest.raises(ImageError) as caught:
        layers.unpack_staged(io.BytesIO(make_tar((info, data))), tmp_path, label="layer x")
    message = str(caught.value)
    assert message.startswith(f"cannot unpack layer x: the filesystem under {tmp_path}/layer-")
    assert f"does not support the xattr {attr} that 'bin/ping' carries" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []  # the half-made layer is gone


@needs_root
def test_binary_security_capability_survives_chown(tmp_path: Path) -> None:
    # cap_net_raw+ep, as ping carries it: binary, and cleared by chown(2) if set before it.
    cap = bytes.fromhex("0100000200200000000000000000000000000000")
    info, data = entry("ping", data=b"x", mode=0o755, uid=0, gid=0)
    info.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("utf-8",
                                                                       "surrogateescape")}
    dest = unpack(tmp_path, (info, data))
    assert os.getxattr(dest / "ping", "security.capability") == cap


@needs_root
def test_layer_cannot_forge_overlay_xattrs(tmp_path: Path) -> None:
    info, data = entry("d", tarfile.DIRTYPE)
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc"}
    dest = unpack(tmp_path, (info, data))
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "d")


def test_existing_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_text("original")
    dest = unpack(tmp_path,
                  entry("f", tarfile.SYMTYPE, linkname=str(outside / "target")),
                  entry("f", data=b"replaced"))
    assert (outside / "target").read_text() == "original"
    assert not (dest / "f").is_symlink()
    assert (dest / "f").read_bytes() == b"replaced"


def test_existing_directory_replaced_by_file_and_merged_with_directory(tmp_path: Path) -> None:
    dest = unpack(tmp_path,
                  entry("a/x", data=b"1"),
                  entry("a", data=b"now a file"),
                  entry("b/y", data=b"2"),
                  entry("b", tarfile.DIRTYPE, mode=0o700))
    assert (dest / "a").read_bytes() == b"now a file"
    assert (dest / "b" / "y").read_bytes() == b"2"
    assert stat.S_IMODE((dest / "b").lstat().st_mode) == 0o700


def test_directory_replaced_by_a_symlink_later_is_fine(tmp_path: Path) -> None:
    # Legal, if odd: the pending mtime of a/b must not be applied through the new symlink.
    dest = unpack(tmp_path,
                  entry("a", tarfile.DIRTYPE), entry("a/b", tarfile.DIRTYPE),
                  entry("a", tarfile.SYMTYPE, linkname=str(tmp_path)))
    assert os.readlink(dest / "a") == str(tmp_path)


def test_unsupported_entry_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="unsupported type"):
        unpack(tmp_path, entry("vol", b"V"))


# -- whiteouts --------------------------------------------------------------------------------

def is_whiteout(path: Path) -> bool:
    st = path.lstat()
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@needs_root
def test_whiteout_becomes_overlay_char_device(tmp_path: Path) -> None:
    dest = unpack(tmp_path,
                  entry("etc/.wh.motd"),
                  entry("usr/.wh.games"),
                  entry("etc/.wh..wh.plnk"))  # AUFS bookkeeping: skipped
    assert is_whiteout(dest / "etc" / "motd")
    assert is_whiteout(dest / "usr" / "games")
    assert not (dest / "etc" / ".wh.motd").exists()
    assert sorted(os.listdir(dest / "etc")) == ["motd"]


@needs_root
def test_whiteout_hides_lower_layers_only_never_its_own_layer(tmp_path: Path) -> None:
    # image-spec layer.md: "Files that are present in the same layer as a whiteout file can
    # only be hidden by whiteout files in subsequent layers." Order in the tar does not matter.
    dest = unpack(tmp_path,
                  entry("etc/motd", data=b"hi"), entry("etc/.wh.motd"),  # file, then whiteout
                  entry("etc/.wh.issue"), entry("etc/issue", data=b"new"))  # whiteout, then file
    assert (dest / "etc" / "motd").read_bytes() == b"hi"
    assert (dest / "etc" / "issue").read_bytes() == b"new"


@needs_root
def test_whiteout_of_a_directory_this_layer_also_has_makes_it_opaque(tmp_path: Path) -> None:
    # "rm -rf /opt/app; mkdir -p /opt/app/bin" in one step: the lower /opt/app must stay hidden
    # while this layer's new one shows. Both orders of the tar give the same directory.
    for name, entries in (("dir-first", [entry("opt/app/bin", data=b"x"), entry("opt/.wh.app")]),
                          ("whiteout-first", [entry("opt/.wh.app"),
                                              entry("opt/app", tarfile.DIRTYPE),
                                              entry("opt/app/bin", data=b"x")])):
        dest = unpack(tmp_path / name, *entries)
        app = dest / "opt" / "app"
        assert app.is_dir() and (app / "bin").read_bytes() == b"x", name
        assert os.getxattr(app, "trusted.overlay.opaque") == b"y", name


def test_whiteout_name_as_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="whiteout name is used as a directory"):
        unpack(tmp_path, entry("a/.wh.b/c", data=b"x"))


def test_oci_whiteout_form_keeps_wh_files(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    tar = make_tar(entry("etc/.wh.motd"), entry("var/.wh..wh..opq"), entry("var/new", data=b"n"),
                   entry("etc/.wh..wh.plnk"))
    layers.unpack(io.BytesIO(tar), dest, whiteouts="oci")
    assert sorted(os.listdir(dest / "etc")) == [".wh.motd"]
    assert sorted(os.listdir(dest / "var")) == [".wh..wh..opq", "new"]
    assert (dest / "etc" / ".wh.motd").stat().st_size == 0
    with pytest.raises(UnsafeArchive, match="must name a file"):
        layers.unpack(io.BytesIO(make_tar(entry("x/.wh."))), tmp_path / "dest",
                      whiteouts="oci")


@needs_root
def test_opaque_marker_sets_overlay_xattr_wherever_it_stands(tmp_path: Path) -> None:
    dest = unpack(tmp_path,
                  entry("var/cache/.wh..wh..opq"),  # before its directory's entry
                  entry("var/cache", tarfile.DIRTYPE, mode=0o700),
                  entry("var/cache/new", data=b"n"),
                  entry("srv", tarfile.DIRTYPE),
                  entry("srv/.wh..wh..opq"))  # after it
    for path in (dest / "var" / "cache", dest / "srv"):
        assert os.getxattr(path, "trusted.overlay.opaque") == b"y"
    assert stat.S_IMODE((dest / "var" / "cache").lstat().st_mode) == 0o700
    assert os.listdir(dest / "var" / "cache") == ["new"]


# -- escapes ----------------------------------------------------------------------------------

def escapes(outside: Path) -> list[tuple[str, list[tuple[tarfile.TarInfo, bytes]]]]:
    return [
        ("../x", [entry("../x", data=b"evil")]),
        ("a/../../x", [entry("a/../../x", data=b"evil")]),
        (f"{outside}/passwd", [entry(f"{outside}/passwd", data=b"evil")]),
        ("/etc/x", [entry(str(CANARY), data=b"evil")]),
        ("link/passwd", [entry("link", tarfile.SYMTYPE, linkname=str(outside)),
                         entry("link/passwd", data=b"evil")]),
        ("rel/passwd", [entry("rel", tarfile.SYMTYPE, linkname="../../outside"),
                        entry("rel/passwd", data=b"evil")]),
        # The classic: a symlink to the host's /etc, then a file "inside" it. (A canary, not
        # passwd: if this code were broken, the test must not damage the host.)
        ("etc/" + CANARY.name, [entry("etc", tarfile.SYMTYPE, linkname="/etc"),
                                entry("etc/" + CANARY.name, data=b"evil")]),
        ("link/sub/file", [entry("link", tarfile.SYMTYPE, linkname=str(outside)),
                           entry("link/sub/file", data=b"evil")]),
        ("link/.wh.passwd", [entry("link", tarfile.SYMTYPE, linkname=str(outside)),
                             entry("link/.wh.passwd")]),
        ("link/.wh..wh..opq", [entry("link", tarfile.SYMTYPE, linkname=str(outside)),
                               entry("link/.wh..wh..opq")]),
        ("hard", [entry("hard", tarfile.LNKTYPE, linkname="../../outside/passwd")]),
        ("hard", [entry("hard", tarfile.LNKTYPE, linkname=str(outside / "passwd"))]),
        ("hard", [entry("link", tarfile.SYMTYPE, linkname=str(outside)),
                  entry("hard", tarfile.LNKTYPE, linkname="link/passwd")]),
        (".wh.", [entry(".wh.")]),
        ("etc/.wh..", [entry("etc/.wh..")]),
        ("etc/.wh...", [entry("etc/.wh...")]),
    ]


@pytest.mark.parametrize("case", range(len(escapes(Path("/x")))))
def test_escapes_are_refused_and_leave_nothing(tmp_path: Path, case: int) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    before = tree(tmp_path)
    name, entries = escapes(outside)[case]
    store_tmp = tmp_path / "store-tmp"
    store_tmp.mkdir()
    dest = tmp_path / "layers" / "abc"
    dest.parent.mkdir()
    try:
        with pytest.raises(UnsafeArchive) as caught:
            layers.unpack_atomically(io.BytesIO(make_tar(*entries)), dest, store_tmp,
                                     label="evil.tar")
        assert not CANARY.exists()
    finally:
        CANARY.unlink(missing_ok=True)
    message = str(caught.value)
    assert message.startswith("unsafe tar entry '") and "in evil.tar: " in message
    assert name.split("/")[0] in message and "\n" not in message
    assert tree(outside) == before_outside(before)
    assert not dest.exists()
    assert os.listdir(store_tmp) == []  # the half-unpacked layer is gone


def before_outside(before: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    return {k.removeprefix("outside/"): v for k, v in before.items() if k.startswith("outside/")}


def test_entry_under_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchive, match="'f' is not a directory"):
        unpack(tmp_path, entry("f", data=b"x"), entry("f/g", data=b"y"))


def test_hard_link_to_missing_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="hard link target 'nope' is not in the layer"):
        unpack(tmp_path, entry("h", tarfile.LNKTYPE, linkname="nope"))


# -- atomic unpack ----------------------------------------------------------------------------

def test_truncated_tar_leaves_nothing(tmp_path: Path) -> None:
    data = make_tar(entry("big", data=b"x" * 100_000))[:50_000]
    (tmp_path / "tmp").mkdir()
    with pytest.raises(ImageError, match="invalid tar archive t.tar: unexpected end of data"):
        layers.unpack_atomically(io.BytesIO(data), tmp_path / "layer", tmp_path / "tmp",
                                 label="t.tar")
    assert os.listdir(tmp_path / "tmp") == []
    assert not (tmp_path / "layer").exists()


def test_verify_runs_before_the_rename_and_can_abort(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    seen: list[bool] = []

    def verify() -> None:
        seen.append((tmp_path / "layer").exists())
        raise ImageError("digest mismatch")

    with pytest.raises(ImageError, match="digest mismatch"):
        layers.unpack_atomically(io.BytesIO(make_tar(entry("a", data=b"a"))),
                                 tmp_path / "layer", tmp_path / "tmp", verify=verify)
    assert seen == [False]
    assert not (tmp_path / "layer").exists() and os.listdir(tmp_path / "tmp") == []


def test_unpack_atomically_publishes_a_readable_root(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    layers.unpack_atomically(io.BytesIO(make_tar(entry("a", data=b"a"))), tmp_path / "layer",
                             tmp_path / "tmp")
    assert (tmp_path / "layer" / "a").read_bytes() == b"a"
    assert stat.S_IMODE((tmp_path / "layer").lstat().st_mode) == 0o755  # not mkdtemp's 0700
    assert os.listdir(tmp_path / "tmp") == []


def test_losing_the_race_to_another_unpacker_is_fine(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "theirs").write_text("same content")
    layers.unpack_atomically(io.BytesIO(make_tar(entry("ours", data=b"x"))), tmp_path / "layer",
                             tmp_path / "tmp")
    assert os.listdir(tmp_path / "layer") == ["theirs"]
    assert os.listdir(tmp_path / "tmp") == []


def test_whole_stream_is_read_so_a_hasher_sees_every_byte(tmp_path: Path) -> None:
    data = make_tar(entry("a", data=b"a")) + b"\0" * 30_000  # extra padding after the end
    reader = layers.HashingReader(io.BytesIO(data))
    (tmp_path / "d").mkdir()
    layers.unpack(reader, tmp_path / "d")
    assert reader.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert reader.size == len(data)


# -- digests ----------------------------------------------------------------------------------

def test_copy_hashed(tmp_path: Path) -> None:
    out = io.BytesIO()
    digest, size = layers.copy_hashed(io.BytesIO(b"hello"), out)
    assert out.getvalue() == b"hello" and size == 5
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert layers.sha256_digest(b"hello") == digest


def test_chain_ids() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    assert layers.chain_ids([]) == []
    assert layers.chain_ids([a]) == [a]  # a base layer's chain ID is its diff ID
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert layers.chain_ids([a, b, c]) == [a, ab, abc]


def test_constants_for_the_reverse_direction() -> None:
    assert layers.WHITEOUT_PREFIX == ".wh."
    assert layers.OPAQUE_MARKER == ".wh..wh..opq"


# -- reading ahead ----------------------------------------------------------------------------

def test_read_ahead_returns_the_stream_and_ends_its_thread() -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    ahead = layers.ReadAhead(io.BytesIO(data), depth=2)
    got = ahead.read(10) + ahead.read(1 << 20) + ahead.read()
    assert got == data and ahead.read(5) == b""
    ahead.close()
    assert not ahead._thread.is_alive()


def test_read_ahead_raises_the_readers_error_and_stops_early() -> None:
    class Broken:
        calls = 0

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls == 3:
                raise OSError(5, "Input/output error")
            return b"x" * n

    ahead = layers.ReadAhead(Broken())
    with pytest.raises(OSError, match="Input/output error"):
        while ahead.read(1 << 20):
            pass
    endless = layers.ReadAhead(io.BytesIO(b"y" * (64 << 20)), depth=1)
    assert endless.read(3) == b"yyy"
    endless.close()  # with its queue full: close must still end the thread
    assert not endless._thread.is_alive()


def test_one_decompressor_reads_what_load_and_import_take() -> None:
    """Found by magic number, as Docker does; zstd is named but has no reader here."""
    import bz2
    import gzip
    import lzma

    tar = b"a tar's bytes" * 100
    for kind, data in (("gzip", gzip.compress(tar)), ("bzip2", bz2.compress(tar)),
                       ("xz", lzma.compress(tar)), (None, tar)):
        assert layers.compression(data[:6]) == kind
        assert layers.decompressed(io.BytesIO(data), kind).read() == tar
    assert layers.compression(b"\x28\xb5\x2f\xfd\x00\x00") == "zstd"
    with pytest.raises(ValueError, match="no decompressor for zstd"):
        layers.decompressed(io.BytesIO(b""), "zstd")


@pytest.mark.parametrize("size", [0, 5, 3 << 20])
@pytest.mark.parametrize("read_size", [7, 10240, 1 << 20, -1])
def test_gunzip_reads_what_gzip_wrote_at_any_read_size(size: int, read_size: int) -> None:
    import gzip

    data = (os.urandom(size // 2) + b"a" * (size - size // 2))
    reader = layers.decompressed(io.BytesIO(gzip.compress(data)), "gzip")
    parts = [reader.read()] if read_size < 0 else list(iter(lambda: reader.read(read_size), b""))
    assert b"".join(parts) == data
    assert all(len(p) <= read_size for p in parts) or read_size < 0


def test_gunzip_reads_members_in_turn_and_checks_each_trailer() -> None:
    import gzip
    import zlib

    padded = gzip.compress(b"ab") + gzip.compress(b"cd") + b"\0" * 100  # as gunzip reads it
    assert layers.decompressed(io.BytesIO(padded), "gzip").read() == b"abcd"
    whole = gzip.compress(os.urandom(1000))
    with pytest.raises(EOFError):
        layers.decompressed(io.BytesIO(whole[:-5]), "gzip").read()
    for at, check in ((-6, "incorrect data check"), (-2, "incorrect length check")):
        broken = bytearray(whole)
        broken[at] ^= 0x01  # the CRC-32, then the length, of the trailer
        with pytest.raises(zlib.error, match=check):
            layers.decompressed(io.BytesIO(bytes(broken)), "gzip").read()
    with pytest.raises(zlib.error, match="not a gzip member"):
        layers.decompressed(io.BytesIO(whole + b"junk"), "gzip").read()


def test_read_ahead_hands_out_small_reads_in_order() -> None:
    data = os.urandom(3 << 20)
    ahead = layers.ReadAhead(io.BytesIO(data))
    parts = list(iter(lambda: ahead.read(10240), b""))
    ahead.close()
    assert b"".join(parts) == data and {len(p) for p in parts[:-1]} == {10240}
