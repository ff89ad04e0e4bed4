"""The cgroup v2 driver against a directory standing in for a unified /sys/fs/cgroup: the
exact files and values it writes, and the v1 -> v2 arithmetic shown in the trace. No root."""

from __future__ import annotations

from pathlib import Path

import pytest

from minidocker import cgroups, trace
from minidocker.cgroups import CgroupLimits
from tests.unit.fake_cgroupfs import FakeCgroupfs, install

pytestmark = pytest.mark.nb02

CID = "c0ffee"
G = "minidocker/" + CID


@pytest.fixture
def fs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeCgroupfs:
    return install(monkeypatch, tmp_path, 2)


def make(fs: FakeCgroupfs, limits: CgroupLimits | None = None,
         parent: str = "") -> cgroups.Cgroup:
    return cgroups.create(CID, limits or CgroupLimits(), parent, root=str(fs.root))


def traced(fn):  # type: ignore[no-untyped-def]
    events = trace.collect()
    try:
        fn()
    finally:
        trace.set_sink(None)
    return [ev["call"] for ev in events if ev["kind"] == "note"]


def test_detects_v2(fs: FakeCgroupfs) -> None:
    assert cgroups.version(str(fs.root)) == 2


def test_create_enables_controllers_on_the_way_down(fs: FakeCgroupfs) -> None:
    cg = make(fs)
    assert cg.version == 2
    assert cg.paths == {"unified": str(fs.root / G)}
    assert fs.writes == [("cgroup.subtree_control", "+cpu +cpuset +io +memory +pids"),
                         ("minidocker/cgroup.subtree_control", "+cpu +cpuset +io +memory +pids")]


def test_controllers_already_enabled_are_not_written_again(fs: FakeCgroupfs) -> None:
    (fs.root / "cgroup.subtree_control").write_text("cpu io memory pids\n")
    make(fs)
    assert fs.writes[0] == ("cgroup.subtree_control", "+cpuset")


def test_every_limit_lands_in_its_v2_file(fs: FakeCgroupfs) -> None:
    limits = CgroupLimits(memory=64 << 20, memory_swap=192 << 20, memory_reservation=32 << 20,
                          nano_cpus=1_500_000_000, cpu_shares=512, cpuset_cpus="1",
                          cpuset_mems="0", pids_limit=50, blkio_weight=500)
    notes = traced(lambda: make(fs, limits))
    assert fs.writes[2:] == [
        (f"{G}/memory.max", "67108864"),
        (f"{G}/memory.swap.max", "134217728"),  # swap alone: 192m - 64m
        (f"{G}/memory.low", "33554432"),
        (f"{G}/cpu.weight", "20"),  # 1 + (512 - 2) * 9999 / 262142
        (f"{G}/cpu.max", "150000 100000"),
        (f"{G}/cpuset.cpus", "1"),
        (f"{G}/cpuset.mems", "0"),
        (f"{G}/pids.max", "50"),
        (f"{G}/io.weight", "4950"),  # 1 + (500 - 10) * 9999 / 990
    ]
    assert ("v1's memsw is memory + swap; v2's memory.swap.max is swap alone: "
            "201326592 - 67108864 = 134217728") in notes
    assert "cpu.shares 512 -> cpu.weight 1 + (512 - 2) * 9999 / 262142 = 20" in notes
    assert "blkio.weight 500 -> io.weight 1 + (500 - 10) * 9999 / 990 = 4950" in notes


def test_unlimited_swap_quota_and_pids(fs: FakeCgroupfs) -> None:
    cg = make(fs)
    fs.writes.clear()
    cg.set_limits(CgroupLimits(memory=64 << 20, memory_swap=-1, cpu_quota=-1, pids_limit=0))
    assert fs.writes == [(f"{G}/memory.max", "67108864"), (f"{G}/memory.swap.max", "max"),
                         (f"{G}/cpu.max", "max 100000"), (f"{G}/pids.max", "max")]


def test_a_period_alone_keeps_the_quota(fs: FakeCgroupfs) -> None:
    cg = make(fs, CgroupLimits(cpu_quota=20_000))
    fs.writes.clear()
    cg.set_limits(CgroupLimits(cpu_period=50_000))
    assert fs.writes == [(f"{G}/cpu.max", "20000 50000")]


def test_bfq_keeps_the_v1_scale(fs: FakeCgroupfs) -> None:
    cg = make(fs)
    (fs.root / G / "io.bfq.weight").write_text("default 100\n")
    fs.writes.clear()
    cg.set_limits(CgroupLimits(blkio_weight=300))
    assert fs.writes == [(f"{G}/io.bfq.weight", "300")]


def test_conversions_at_the_ends_of_the_ranges() -> None:
    assert [cgroups.cpu_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    assert [cgroups.io_weight(w) for w in (10, 1000)] == [1, 10000]
    assert cgroups.swap_only(64, 64) == 0 and cgroups.swap_only(64, -1) == -1


def test_join_freeze_kill(fs: FakeCgroupfs) -> None:
    cg = make(fs)
    fs.writes.clear()
    cg.join()
    (fs.root / G / "cgroup.events").write_text("populated 1\nfrozen 1\n")  # the kernel's reply
    cg.freeze()
    assert cg.frozen()
    cg.thaw()
    cg.driver().kill_all(cg.paths)
    assert fs.writes == [(f"{G}/cgroup.procs", "0"), (f"{G}/cgroup.freeze", "1"),
                         (f"{G}/cgroup.freeze", "0"), (f"{G}/cgroup.kill", "1")]


def test_destroy_leaves_the_default_parent(fs: FakeCgroupfs) -> None:
    make(fs).destroy()
    assert fs.dirs() == ["minidocker"]


def test_a_failed_limit_leaves_no_group(fs: FakeCgroupfs, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = fs.write_file

    def write_file(path: str, data: str) -> None:
        if path.endswith("pids.max"):
            raise OSError(22, "Invalid argument", path)
        real_write(path, data)

    monkeypatch.setattr("minidocker.syscalls.write_file", write_file)
    with pytest.raises(OSError, match="Invalid argument"):
        make(fs, CgroupLimits(pids_limit=10))
    assert fs.dirs() == ["minidocker"]


def test_oom_and_stats(fs: FakeCgroupfs) -> None:
    cg = make(fs, CgroupLimits(memory=64 << 20))
    (fs.root / G / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    (fs.root / G / "memory.current").write_text("5000000\n")
    (fs.root / G / "memory.stat").write_text("anon 1\ninactive_file 1000\n")
    (fs.root / G / "cpu.stat").write_text("usage_usec 1234\nuser_usec 1000\n")
    (fs.root / G / "pids.current").write_text("3\n")
    (fs.root / G / "io.stat").write_text("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n")
    assert cg.oom_killed()
    assert cg.stats() == {
        "cpu_usage_ns": 1234000, "memory_usage": 5000000, "memory_limit": 64 << 20,
        "memory_inactive_file": 1000, "oom_kills": 1, "pids_current": 3, "pids_limit": None,
        "io_read_bytes": 4096, "io_write_bytes": 8192,
    }


def test_a_group_left_by_an_earlier_start_is_replaced(fs: FakeCgroupfs) -> None:
    make(fs, CgroupLimits(pids_limit=5))
    make(fs, CgroupLimits(pids_limit=9))
    assert fs.read(f"{G}/pids.max") == "9"


def test_create_never_removes_a_group_it_did_not_make(fs: FakeCgroupfs,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from minidocker.cgroups import v2

    make(fs)
    with pytest.raises(FileExistsError):
        v2.create(str(fs.root), "minidocker", CID)
    assert G in fs.dirs()


def test_the_oom_count_of_a_group_already_removed_is_none(fs: FakeCgroupfs) -> None:
    cg = make(fs)
    cg.destroy()
    assert cg.oom_killed() is False
