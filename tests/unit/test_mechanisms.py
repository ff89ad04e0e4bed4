"""Pure parts of the mechanism modules: tables, path resolution, flag names, trace format."""

from __future__ import annotations

import os

import pytest

from minidocker import container, namespaces, network, overlay, rootfs, syscalls, trace
from minidocker.errors import ExecError, RootfsError


def test_flag_names_spell_the_man_page():
    assert syscalls.flag_names(syscalls.MS.BIND | syscalls.MS.REC, "MS") == "MS_BIND|MS_REC"
    assert syscalls.flag_names(syscalls.MS(0), "MS") == "0"
    flags = namespaces.flags_for(["mnt", "uts"])
    assert syscalls.flag_names(flags, "CLONE") == "CLONE_NEWNS|CLONE_NEWUTS"


def test_secure_join_keeps_symlinks_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../etc", root / "rel")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    assert rootfs.secure_join(str(root), "/abs/hosts") == str(root / "etc/hosts")
    assert rootfs.secure_join(str(root), "/rel/hosts") == str(root / "etc/hosts")
    assert rootfs.secure_join(str(root), "/../../x") == str(root / "x")
    assert rootfs.secure_join(str(root), "/missing/dir") == str(root / "missing/dir")
    with pytest.raises(RootfsError, match="symlinks"):
        rootfs.secure_join(str(root), "/loop1/x")


SHARED = "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
PRIVATE = "29 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
SLAVE = "29 1 254:0 / / rw,relatime master:3 - ext4 /dev/vda rw\n"


def test_propagation_read_from_mountinfo():
    assert rootfs.propagation_of("/", SHARED) == "shared"
    assert rootfs.propagation_of("/", PRIVATE) == "private"
    assert rootfs.propagation_of("/", SLAVE) == "slave"
    assert rootfs.propagation_of("/", PRIVATE + SHARED) == "shared"  # the top mount wins


def test_tables_match_dockers_defaults():
    assert {p for p, _, _ in rootfs.DEFAULT_DEVICES} == {
        "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}
    assert "/proc/kcore" in rootfs.MASKED_PATHS and "/proc/sys" in rootfs.READONLY_PATHS
    assert [m[0] for m in rootfs.DEFAULT_MOUNTS][:2] == ["/proc", "/dev"]


def test_overlay_options_put_the_top_layer_first():
    data = overlay.options(["/l/top", "/l/base"], "/c/upper", "/c/work")
    assert data == "lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work"
    with pytest.raises(RootfsError):
        overlay.options(["/a:b"], "/u", "/w")


def test_resolv_conf_drops_loopback_nameservers():
    text = network.resolv_conf("nameserver 127.0.0.53\nsearch lan\n")
    assert "127.0.0.53" not in text and "search lan" in text and "nameserver 8.8.8.8" in text
    assert network.resolv_conf("nameserver 10.0.0.1\n") == "nameserver 10.0.0.1\n"


def test_find_executable(tmp_path):
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (tmp_path / "data").write_text("")
    assert container.find_executable("tool", f"/nonexistent:{tmp_path}") == str(exe)
    assert container.find_executable("./x", "") == "./x"
    with pytest.raises(ExecError) as err:
        container.find_executable("data", str(tmp_path))
    assert err.value.exit_code == 127


def test_trace_records_and_formats():
    events = trace.collect()
    try:
        trace.step("rootfs", "detail")
        trace.emit("syscall", "mount", ['"a"'], "0", 1_500_000)
    finally:
        trace.set_sink(None)
    assert [e["kind"] for e in events] == ["step", "syscall"]
    line = trace.format_event(events[1])
    assert 'mount("a") = 0 <1.500ms>' in line


def test_failed_syscall_names_the_call(tmp_path):
    with pytest.raises(OSError) as err:
        syscalls.umount2(str(tmp_path / "not-a-mount"), syscalls.MNT.DETACH)
    assert any("umount2" in note and "MNT_DETACH" in note for note in err.value.__notes__)


def test_state_dumps_is_json():
    import json

    from minidocker.state import dumps

    record = {"a": [1, "x\n\"é", None, True, False], "b": {"c": -3}, "d": ("t",)}
    assert json.loads(dumps(record)) == {**record, "d": ["t"]}
    with pytest.raises(TypeError):
        dumps({"x": 1.5})


def test_random_names_avoid_taken_ones(tmp_path):
    from minidocker import state

    names = tmp_path / "names"
    names.mkdir()
    for adjective in state._ADJECTIVES:
        for scientist in state._SCIENTISTS:
            for digit in range(10):
                if (adjective, scientist, digit) != ("happy", "turing", 7):
                    os.symlink("x", names / f"{adjective}_{scientist}{digit}")
    # Every short name but one is taken: the one left, or a longer unused one, comes back.
    for _ in range(20):
        name = state.random_name(str(names))
        assert not (names / name).exists()
        assert state.NAME_PATTERN and name.startswith(tuple(state._ADJECTIVES))


def test_overlay_ensure_loaded_asks_the_kernel_only_when_it_is_not_listed(tmp_path, monkeypatch):
    """A modular overlayfs is absent from /proc/filesystems until something asks for it:
    fsopen("overlay") makes the kernel load it (request_module), as the first mount would."""
    from minidocker import overlay, syscalls

    listing = tmp_path / "filesystems"
    asked: list[str] = []

    def fsopen(fstype: str) -> int:
        asked.append(fstype)
        if fstype != "overlay" or not loadable:
            raise OSError(19, "No such device")
        listing.write_text("nodev\tproc\n\text4\nnodev\toverlay\n")  # the module is in now
        return os.open(os.devnull, os.O_RDONLY)

    monkeypatch.setattr(syscalls, "fsopen", fsopen)
    listing.write_text("nodev\tproc\n\text4\nnodev\toverlay\n")
    loadable = True
    assert overlay.ensure_loaded(str(listing)) is True and asked == []
    listing.write_text("nodev\tproc\n\text4\n")
    assert overlay.ensure_loaded(str(listing)) is True and asked == ["overlay"]
    listing.write_text("nodev\tproc\n\text4\nnodev\toverlayx\n")
    loadable = False
    assert overlay.ensure_loaded(str(listing)) is False
