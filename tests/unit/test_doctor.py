"""Unit tests for ``minidocker doctor``: no root needed, a temp dir stands in for the host's /."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from minidocker import doctor, mountinfo, procfs

# The development hosts: v1 controllers plus an empty cgroup2 tree, / private.
MOUNTINFO_HYBRID = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# The learner's VM (Debian 12 / Ubuntu 24.04 with systemd): cgroup2 only, / shared.
MOUNTINFO_V2 = """\
21 26 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
22 26 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
27 21 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
30 26 0:27 / /var/lib/minidocker rw,relatime shared:14 - tmpfs tmpfs rw,size=1024k
"""

# Old-style v1 only, no cgroup2 anywhere.
MOUNTINFO_V1 = """\
26 1 8:1 / / rw,relatime shared:1 - xfs /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup/memory rw,relatime shared:3 - cgroup cgroup rw,memory
32 23 0:29 / /sys/fs/cgroup/pids rw,relatime shared:4 - cgroup cgroup rw,pids
33 23 0:30 / /sys/fs/cgroup/cpu rw,relatime shared:5 - cgroup cgroup rw,cpu
"""

# Docker-in-Docker: / is itself an overlay, a slave of the outer host's mounts.
MOUNTINFO_DIND = """\
600 500 0:50 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
601 600 0:51 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
602 600 0:52 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
603 600 0:53 / /mnt/my\\040data rw,relatime shared:4 master:2 - ext4 /dev/sdb rw
604 600 0:54 / /mnt/never rw,relatime unbindable - ext4 /dev/sdc rw
"""

FILESYSTEMS = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\nnodev\toverlay\n"
FILESYSTEMS_NO_OVERLAY = "nodev\tsysfs\nnodev\ttmpfs\n\text4\n"


# -- mountinfo -------------------------------------------------------------------------------

def test_parse_mountinfo_fields() -> None:
    mounts = doctor.parse_mountinfo(MOUNTINFO_DIND)
    root = mounts[0]
    assert (root.mount_id, root.parent_id, root.mount_point) == (600, 500, "/")
    assert root.optional == ("master:1",)
    assert (root.fstype, root.source) == ("overlay", "overlay")
    assert "upperdir=/u" in root.super_options
    assert mounts[3].mount_point == "/mnt/my data"  # \040 is a space
    assert mounts[3].optional == ("shared:4", "master:2")
    assert mounts[1].optional == ()


def test_parse_mountinfo_skips_garbage() -> None:
    assert doctor.parse_mountinfo("\nnot a mountinfo line\n") == []


@pytest.mark.parametrize(("text", "mode", "v2_path"), [
    (MOUNTINFO_HYBRID, "hybrid", "/sys/fs/cgroup/unified"),
    (MOUNTINFO_V2, "v2", "/sys/fs/cgroup"),
    (MOUNTINFO_V1, "v1", None),
    (MOUNTINFO_DIND, "v2", "/sys/fs/cgroup"),
    ("26 1 8:1 / / rw - ext4 /dev/sda1 rw\n", "none", None),
])
def test_cgroup_layout(text: str, mode: str, v2_path: str | None) -> None:
    layout = doctor.cgroup_layout(doctor.parse_mountinfo(text))
    assert (layout.mode, layout.v2_path) == (mode, v2_path)


def test_cgroup_layout_hybrid_controllers_exclude_named_hierarchies() -> None:
    layout = doctor.cgroup_layout(doctor.parse_mountinfo(MOUNTINFO_HYBRID))
    assert layout.v1_controllers == ("cpu", "cpuacct", "cpuset", "memory", "pids")


def test_check_cgroups_hybrid_explains(tmp_path: Path) -> None:
    check = doctor.check_cgroups(MOUNTINFO_HYBRID, tmp_path)
    assert check.ok is True
    assert "hybrid" in check.detail and "/sys/fs/cgroup/unified" in check.detail
    assert "v2 only" in check.detail


def test_check_cgroups_v2_reads_controllers(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    check = doctor.check_cgroups(MOUNTINFO_V2, tmp_path)
    assert check.ok is True
    assert "v2" in check.detail and "memory" in check.detail


def test_check_cgroups_v2_without_memory_warns(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io pids\n")
    check = doctor.check_cgroups(MOUNTINFO_V2, tmp_path)
    assert check.ok is None
    assert "memory" in check.detail and check.fix


# -- the I/O weight ---------------------------------------------------------------------------

MOUNTINFO_HYBRID_BLKIO = MOUNTINFO_HYBRID + (
    "42 31 0:39 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n")


def _disks(sys_root: Path, **schedulers: str) -> None:
    for disk, line in schedulers.items():
        _write(sys_root / "block" / disk / "queue/scheduler", line + "\n")


def test_io_weight_without_bfq_warns_that_the_weight_is_discarded(tmp_path: Path) -> None:
    # The CI machines of issue 10: every disk on none or mq-deadline.
    _disks(tmp_path, vda="[none] mq-deadline kyber", vdb="none [mq-deadline] kyber")
    check = doctor.check_io_weight(MOUNTINFO_HYBRID_BLKIO, tmp_path)
    assert check.ok is None  # a warning, not a failure: nothing else needs it
    assert check.detail == ("no BFQ scheduler on any disk (in use: mq-deadline, none): "
                            "--blkio-weight is discarded")
    assert check.fix.startswith("modprobe bfq, then echo bfq > /sys/block/<disk>/")


def test_io_weight_with_bfq_in_use_is_fine(tmp_path: Path) -> None:
    _disks(tmp_path, vda="[none] mq-deadline kyber", sda="mq-deadline kyber [bfq] none")
    check = doctor.check_io_weight(MOUNTINFO_HYBRID_BLKIO, tmp_path)
    assert check.ok is True and check.detail.startswith("bfq on sda: ")


def test_io_weight_with_bfq_loaded_but_unused_warns(tmp_path: Path) -> None:
    _disks(tmp_path, sda="[mq-deadline] kyber bfq none")
    check = doctor.check_io_weight(MOUNTINFO_HYBRID_BLKIO, tmp_path)
    assert check.ok is None and "bfq is loaded but no disk uses it" in check.detail
    assert check.fix.startswith("echo bfq > ")


def test_io_weight_v1_without_blkio_warns(tmp_path: Path) -> None:
    _disks(tmp_path, sda="mq-deadline kyber [bfq] none")
    check = doctor.check_io_weight(MOUNTINFO_HYBRID, tmp_path)  # no blkio hierarchy
    assert check.ok is None and "no blkio controller" in check.detail and check.fix


def test_io_weight_v2_with_iocost_or_without_io(tmp_path: Path) -> None:
    _disks(tmp_path, vda="[none] mq-deadline kyber")
    _write(tmp_path / "fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
    check = doctor.check_io_weight(MOUNTINFO_V2, tmp_path)
    assert check.ok is None and "no BFQ scheduler" in check.detail
    _write(tmp_path / "fs/cgroup/io.cost.qos", "")  # blk-iocost built in: io.weight exists
    check = doctor.check_io_weight(MOUNTINFO_V2, tmp_path)
    assert check.ok is True and "blk-iocost" in check.detail
    _write(tmp_path / "fs/cgroup/cgroup.controllers", "cpuset cpu memory pids\n")
    check = doctor.check_io_weight(MOUNTINFO_V2, tmp_path)
    assert check.ok is None and "no io controller" in check.detail


def test_check_cgroups_none_fails(tmp_path: Path) -> None:
    check = doctor.check_cgroups("26 1 8:1 / / rw - ext4 /dev/sda1 rw\n", tmp_path)
    assert check.ok is False
    assert "mount -t cgroup2" in check.fix


@pytest.mark.parametrize(("text", "expected"), [
    (MOUNTINFO_HYBRID, "private"),
    (MOUNTINFO_V2, "shared"),
    (MOUNTINFO_DIND, "slave"),
])
def test_root_propagation(text: str, expected: str) -> None:
    root = [m for m in doctor.parse_mountinfo(text) if m.mount_point == "/"][-1]
    assert doctor.propagation(root) == expected


def test_propagation_other_kinds() -> None:
    mounts = doctor.parse_mountinfo(MOUNTINFO_DIND)
    assert doctor.propagation(mounts[3]) == "shared and slave"
    assert doctor.propagation(mounts[4]) == "unbindable"


def test_check_propagation_shared_is_fine_but_explained() -> None:
    check = doctor.check_propagation(MOUNTINFO_V2)
    assert check.ok is True
    assert check.detail.startswith("shared (shared:1)")
    assert "EINVAL" in check.detail and "private" in check.detail


def test_check_propagation_without_root_mount() -> None:
    check = doctor.check_propagation("")
    assert check.ok is None and check.fix


# -- storage ---------------------------------------------------------------------------------

def test_mount_containing_is_longest_prefix_not_string_prefix() -> None:
    mounts = doctor.parse_mountinfo(MOUNTINFO_V2)
    m = mountinfo.mount_containing("/var/lib/minidocker/images", mounts)
    assert m is not None and m.fstype == "tmpfs"
    m = mountinfo.mount_containing("/var/lib/minidocker2", mounts)
    assert m is not None and m.mount_point == "/"


@pytest.mark.parametrize(("text", "path", "overlay", "driver"), [
    (MOUNTINFO_HYBRID, "/var/lib/minidocker", True, "overlay"),  # ext4
    (MOUNTINFO_V2, "/var/lib/minidocker", True, "overlay"),  # tmpfs is a fine upper
    (MOUNTINFO_DIND, "/var/lib/minidocker", True, "vfs"),  # overlay on overlay: no
    (MOUNTINFO_HYBRID, "/var/lib/minidocker", False, "vfs"),  # no overlayfs at all
])
def test_storage_driver(text: str, path: str, overlay: bool, driver: str) -> None:
    got, why = doctor.storage_driver(path, doctor.parse_mountinfo(text), overlay)
    assert got == driver
    assert why


def test_check_storage_vfs_fallback_warns_with_fix() -> None:
    check = doctor.check_storage("/var/lib/minidocker", MOUNTINFO_DIND, FILESYSTEMS)
    assert check.ok is None
    assert check.detail.startswith("vfs") and "overlay" in check.detail
    assert "MINIDOCKER_ROOT" in check.fix


def test_state_dir_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINIDOCKER_ROOT", raising=False)
    assert doctor.state_dir() == "/var/lib/minidocker"
    monkeypatch.setenv("MINIDOCKER_ROOT", "/tmp/md-test")
    assert doctor.state_dir() == "/tmp/md-test"


def test_check_overlay() -> None:
    assert doctor.check_overlay(FILESYSTEMS).ok is True
    missing = doctor.check_overlay(FILESYSTEMS_NO_OVERLAY)
    assert missing.ok is False and "modprobe overlay" in missing.fix


# -- versions --------------------------------------------------------------------------------

@pytest.mark.parametrize(("release", "version"), [
    ("6.1.0-13-amd64", (6, 1, 0)),
    ("6.8.0-31-generic", (6, 8, 0)),
    ("6.18.44-fc-v657", (6, 18, 44)),
    ("5.4", (5, 4, 0)),
    ("4.19.0-26-amd64", (4, 19, 0)),
    ("unknown", None),
    ("", None),
])
def test_kernel_version(release: str, version: tuple[int, int, int] | None) -> None:
    assert procfs.kernel_version(release) == version


def test_check_kernel() -> None:
    assert doctor.check_kernel("6.1.0-13-amd64").ok is True
    old = doctor.check_kernel("4.19.0-26-amd64")
    assert old.ok is False and old.fix
    partial = doctor.check_kernel("5.10.0-28-amd64")
    assert partial.ok is None
    assert "idmapped mounts (5.12+)" in partial.detail
    assert "time namespaces" not in partial.detail  # 5.6 < 5.10
    assert doctor.check_kernel("weird").ok is None


def test_check_python() -> None:
    assert doctor.check_python((3, 11, 2)).ok is True
    assert doctor.check_python((3, 12, 0)).ok is True
    old = doctor.check_python((3, 10, 12))
    assert old.ok is False and "3.10.12" in old.detail and old.fix


def test_check_root() -> None:
    assert doctor.check_root(0).ok is True
    binder = doctor.check_root(1000)
    assert binder.ok is False and "1000" in binder.detail and "sudo" in binder.fix


# -- ELF and busybox -------------------------------------------------------------------------

def _elf64(program_types: list[int]) -> bytes:
    """A little-endian ELF64 header followed by program headers of the given p_types."""
    phoff, phentsize = 64, 56
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, phoff, 0, 0, 64, phentsize,
                                 len(program_types), 0, 0, 0)
    return header + b"".join(struct.pack("<II", t, 0) + bytes(phentsize - 8)
                             for t in program_types)


def _elf32(program_types: list[int]) -> bytes:
    phoff, phentsize = 52, 32
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, 0, phoff, 0, 0, 52, phentsize,
                                 len(program_types), 0, 0, 0)
    return header + b"".join(struct.pack("<I", t) + bytes(phentsize - 4) for t in program_types)


PT_LOAD, PT_INTERP, PT_DYNAMIC = 1, 3, 2


def test_elf_is_static() -> None:
    assert doctor.elf_is_static(_elf64([PT_LOAD, PT_LOAD])) is True
    assert doctor.elf_is_static(_elf64([PT_LOAD, PT_DYNAMIC])) is True  # static-pie
    assert doctor.elf_is_static(_elf64([PT_INTERP, PT_LOAD, PT_DYNAMIC])) is False
    assert doctor.elf_is_static(_elf32([PT_LOAD])) is True
    assert doctor.elf_is_static(_elf32([PT_INTERP, PT_LOAD])) is False
    assert doctor.elf_is_static(b"#!/bin/sh\necho hi\n" + bytes(64)) is None


def _write_exe(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o755)


def test_check_busybox(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    missing = doctor.check_busybox(busybox)
    assert missing.ok is False and "busybox-static" in missing.fix
    _write_exe(busybox, _elf64([PT_INTERP, PT_LOAD]))
    dynamic = doctor.check_busybox(busybox)
    assert dynamic.ok is False and "dynamically linked" in dynamic.detail
    _write_exe(busybox, _elf64([PT_LOAD]))
    assert doctor.check_busybox(busybox).ok is True
    busybox.chmod(0o644)
    if os.geteuid() != 0:  # root may execute anything with any x bit; 0o644 has none
        assert doctor.check_busybox(busybox).ok is False


# -- /proc and /sys files --------------------------------------------------------------------

def _make_ns(ns_dir: Path, kinds: list[str]) -> None:
    ns_dir.mkdir(parents=True, exist_ok=True)
    for i, kind in enumerate(kinds):
        (ns_dir / kind).symlink_to(f"{kind}:[{4026531830 + i}]")


def test_check_namespaces(tmp_path: Path) -> None:
    _make_ns(tmp_path, ["mnt", "uts", "ipc", "pid", "user", "cgroup"])
    checks = {c.name: c for c in doctor.check_namespaces(tmp_path)}
    assert len(checks) == len(doctor.NAMESPACES)
    assert checks["namespace mnt"].ok is True
    assert checks["namespace mnt"].detail.startswith("mnt:[")
    assert checks["namespace net"].ok is False  # required
    assert "CONFIG_NET_NS" in checks["namespace net"].fix
    assert checks["namespace time"].ok is None  # optional


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_check_user_namespaces(tmp_path: Path) -> None:
    assert doctor.check_user_namespaces(tmp_path).ok is None  # no file at all
    _write(tmp_path / "sys/user/max_user_namespaces", "0\n")
    off = doctor.check_user_namespaces(tmp_path)
    assert off.ok is None and "sysctl" in off.fix
    _write(tmp_path / "sys/user/max_user_namespaces", "63413\n")
    assert doctor.check_user_namespaces(tmp_path).ok is True
    _write(tmp_path / "sys/kernel/apparmor_restrict_unprivileged_userns", "1\n")
    ubuntu = doctor.check_user_namespaces(tmp_path)
    assert ubuntu.ok is True and "AppArmor" in ubuntu.detail
    _write(tmp_path / "sys/kernel/unprivileged_userns_clone", "0\n")
    debian11 = doctor.check_user_namespaces(tmp_path)
    assert debian11.ok is None and "unprivileged_userns_clone" in debian11.fix


def test_check_tools(tmp_path: Path) -> None:
    _write_exe(tmp_path / "usr/sbin/nft", b"#!/bin/sh\n")
    _write_exe(tmp_path / "opt/bin/crun", b"#!/bin/sh\n")
    checks = {c.name: c for c in doctor.check_tools(tmp_path, "/opt/bin")}
    assert checks["nft"].ok is True and checks["crun"].ok is True
    assert checks["runc"].ok is None and checks["runc"].fix == "apt-get install runc"


def test_check_security_modules(tmp_path: Path) -> None:
    none = doctor.check_security_modules(tmp_path)
    assert none.ok is True and "not present" in none.detail
    _write(tmp_path / "module/apparmor/parameters/enabled", "Y\n")
    assert "apparmor enabled" in doctor.check_security_modules(tmp_path).detail
    _write(tmp_path / "fs/selinux/enforce", "1")
    enforcing = doctor.check_security_modules(tmp_path)
    assert enforcing.ok is None and "ausearch" in enforcing.fix


# -- whole host ------------------------------------------------------------------------------

def _healthy_host(root: Path) -> None:
    _write(root / "proc/self/mountinfo", MOUNTINFO_V2)
    _write(root / "proc/filesystems", FILESYSTEMS)
    _write(root / "proc/sys/kernel/osrelease", "6.1.0-13-amd64\n")
    _write(root / "proc/sys/user/max_user_namespaces", "63413\n")
    _write(root / "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
    _write(root / "sys/block/vda/queue/scheduler", "mq-deadline kyber [bfq] none\n")
    _make_ns(root / "proc/self/ns", [k.name for k in doctor.NAMESPACES])
    _write_exe(root / "bin/busybox", _elf64([PT_LOAD]))
    for tool in ("nft", "runc", "crun"):
        _write_exe(root / "usr/sbin" / tool, b"#!/bin/sh\n")


def _broken_host(root: Path) -> None:
    """Everything that can fail, fails: an old kernel with nothing built in."""
    _write(root / "proc/self/mountinfo", "26 1 8:1 / / rw shared:1 - overlay overlay rw\n")
    _write(root / "proc/filesystems", FILESYSTEMS_NO_OVERLAY)
    _write(root / "proc/sys/kernel/osrelease", "4.4.0-1-generic\n")
    _write(root / "proc/sys/user/max_user_namespaces", "0\n")
    (root / "proc/self/ns").mkdir(parents=True)
    _write_exe(root / "bin/busybox", _elf64([PT_INTERP, PT_LOAD]))


def test_healthy_host_passes(tmp_path: Path) -> None:
    _healthy_host(tmp_path)
    checks = doctor.run_checks(tmp_path, euid=0, python=(3, 11, 2), path_env="",
                               state="/var/lib/minidocker")
    assert [c for c in checks if c.ok is not True] == []
    assert doctor.can_run_containers(tmp_path, euid=0) == (
        True, "root, namespaces and overlayfs are available")


def test_every_failure_has_a_fix(tmp_path: Path) -> None:
    _broken_host(tmp_path)
    checks = doctor.run_checks(tmp_path, euid=1000, python=(3, 10, 0), path_env="",
                               state="/var/lib/minidocker")
    failed = {c.name for c in checks if c.ok is False}
    assert {"root", "python", "kernel", "namespace mnt", "cgroups", "overlayfs",
            "busybox"} <= failed
    for c in checks:
        if c.ok is not True:
            assert c.fix.strip(), f"{c.name} fails without a fix: {c.detail}"
            assert c.detail.strip()


def test_can_run_containers_says_why_not(tmp_path: Path) -> None:
    _healthy_host(tmp_path)
    ok, why = doctor.can_run_containers(tmp_path, euid=1000)
    assert not ok and "not root" in why and "1000" in why
    _write(tmp_path / "proc/filesystems", FILESYSTEMS_NO_OVERLAY)
    ok, why = doctor.can_run_containers(tmp_path, euid=0)
    assert not ok and "modprobe overlay" in why
    (tmp_path / "proc/self/ns/pid").unlink()
    ok, why = doctor.can_run_containers(tmp_path, euid=0)
    assert not ok and "namespace pid" in why


# -- the report ------------------------------------------------------------------------------

SAMPLE = [
    doctor.Check("root", True, "running as uid 0"),
    doctor.Check("overlayfs", False, "overlay is not in /proc/filesystems", "modprobe overlay"),
    doctor.Check("runc", None, "not found", "apt-get install runc"),
]


def test_format_table_marks_and_fix_lines() -> None:
    lines = doctor.format_table(SAMPLE).splitlines()
    assert lines[0].startswith("✓ root")
    assert lines[1].startswith("✗ overlayfs")
    assert lines[2].strip() == "fix: modprobe overlay"
    assert lines[3].startswith("! runc")
    assert lines[-1] == "3 checks: 1 failed, 1 warnings"
    ascii_lines = doctor.format_table(SAMPLE, ascii_only=True).splitlines()
    assert ascii_lines[1].startswith("FAIL overlayfs")
    assert all(line.isascii() for line in ascii_lines)


def test_main_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(doctor, "run_checks", lambda: SAMPLE)
    assert doctor.main(["--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["root", "overlayfs", "runc"]
    assert data[1] == {"name": "overlayfs", "ok": False,
                       "detail": "overlay is not in /proc/filesystems", "fix": "modprobe overlay"}
    assert data[2]["ok"] is None


def test_main_exit_zero_without_failures(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(doctor, "run_checks", lambda: [SAMPLE[0], SAMPLE[2]])
    assert doctor.main([]) == 0
    assert "runc" in capsys.readouterr().out


def test_main_on_this_host(capsys: pytest.CaptureFixture[str]) -> None:
    """The real host, whatever it is: the JSON parses and the exit code agrees with it."""
    code = doctor.main(["--json"])
    data = json.loads(capsys.readouterr().out)
    assert {"root", "kernel", "cgroups", "overlayfs", "busybox"} <= {d["name"] for d in data}
    assert code == (1 if any(d["ok"] is False for d in data) else 0)
    assert all(d["fix"] for d in data if d["ok"] is False)
