"""The cgroup v1 driver against a directory standing in for /sys/fs/cgroup: the exact files
and values it writes, in order. No root needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from minidocker import cgroups, trace
from minidocker.cgroups import CgroupLimits, v1
from tests.unit.fake_cgroupfs import FakeCgroupfs, install

pytestmark = pytest.mark.nb02

CID = "c0ffee"
G = "minidocker/" + CID  # the container's group under each hierarchy
PARENTS_ONLY = sorted([*v1.CONTROLLERS, *(f"{c}/minidocker" for c in v1.CONTROLLERS)])


@pytest.fixture
def fs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeCgroupfs:
    return install(monkeypatch, tmp_path, 1)


def make(fs: FakeCgroupfs, limits: CgroupLimits | None = None,
         parent: str = "") -> cgroups.Cgroup:
    cg = cgroups.create(CID, limits or CgroupLimits(), parent, root=str(fs.root))
    return cg


def test_detects_v1(fs: FakeCgroupfs) -> None:
    assert cgroups.version(str(fs.root)) == 1


def test_create_makes_a_group_per_hierarchy_and_fills_its_cpuset(fs: FakeCgroupfs) -> None:
    cg = make(fs)
    assert cg.version == 1
    assert cg.paths == {c: str(fs.root / c / G) for c in v1.CONTROLLERS}
    # No limits: only the empty v1 cpusets are filled in, from the level above.
    assert fs.writes == [
        ("cpuset/minidocker/cpuset.cpus", "0-1"), ("cpuset/minidocker/cpuset.mems", "0"),
        (f"cpuset/{G}/cpuset.cpus", "0-1"), (f"cpuset/{G}/cpuset.mems", "0"),
    ]


def test_every_limit_lands_in_its_file(fs: FakeCgroupfs) -> None:
    limits = CgroupLimits(memory=64 << 20, memory_swap=128 << 20, memory_reservation=32 << 20,
                          nano_cpus=1_500_000_000, cpu_shares=512, cpuset_cpus="1",
                          cpuset_mems="0", pids_limit=50, blkio_weight=300)
    make(fs, limits)
    assert [w for w in fs.writes if "cpuset" not in w[0]] == [
        (f"cpu/{G}/cpu.shares", "512"),
        (f"cpu/{G}/cpu.cfs_period_us", "100000"),
        (f"cpu/{G}/cpu.cfs_quota_us", "150000"),
        (f"memory/{G}/memory.limit_in_bytes", "67108864"),
        (f"memory/{G}/memory.memsw.limit_in_bytes", "134217728"),
        (f"memory/{G}/memory.soft_limit_in_bytes", "33554432"),
        (f"pids/{G}/pids.max", "50"),
        (f"blkio/{G}/blkio.bfq.weight", "300"),  # no blkio.weight: BFQ's file
    ]
    # The new group's cpuset is filled in from its parent, then the limit replaces it.
    assert [w for w in fs.writes if w[0].startswith(f"cpuset/{G}/")] == [
        (f"cpuset/{G}/cpuset.cpus", "0-1"), (f"cpuset/{G}/cpuset.mems", "0"),
        (f"cpuset/{G}/cpuset.cpus", "1"), (f"cpuset/{G}/cpuset.mems", "0")]
    assert fs.read(f"cpuset/{G}/cpuset.cpus") == "1"
    assert fs.read(f"memory/{G}/memory.limit_in_bytes") == "67108864"


def test_memsw_is_raised_before_a_growing_limit(fs: FakeCgroupfs) -> None:
    cg = make(fs, CgroupLimits(memory=64 << 20, memory_swap=128 << 20))
    fs.writes.clear()
    cg.set_limits(CgroupLimits(memory=256 << 20, memory_swap=512 << 20))
    assert fs.writes == [(f"memory/{G}/memory.memsw.limit_in_bytes", str(512 << 20)),
                         (f"memory/{G}/memory.limit_in_bytes", str(256 << 20))]
    fs.writes.clear()
    cg.set_limits(CgroupLimits(memory=32 << 20, memory_swap=-1))
    assert fs.writes == [(f"memory/{G}/memory.limit_in_bytes", str(32 << 20)),
                         (f"memory/{G}/memory.memsw.limit_in_bytes", "-1")]


def test_cpu_period_and_quota_and_unlimited_pids(fs: FakeCgroupfs) -> None:
    cg = make(fs)
    fs.writes.clear()
    cg.set_limits(CgroupLimits(cpu_period=50_000, cpu_quota=25_000, pids_limit=-1))
    assert fs.writes == [(f"cpu/{G}/cpu.cfs_period_us", "50000"),
                         (f"cpu/{G}/cpu.cfs_quota_us", "25000"),
                         (f"pids/{G}/pids.max", "max")]


def test_move_writes_the_pid_to_every_cgroup_procs(fs: FakeCgroupfs) -> None:
    cg = make(fs)
    fs.writes.clear()
    cg.driver().move(cg.paths, 4242)
    assert fs.writes == [(f"{c}/{G}/cgroup.procs", "4242") for c in v1.CONTROLLERS]


@pytest.mark.parametrize(("one_thread", "file"), [(True, "tasks"), (False, "cgroup.procs")])
def test_join_moves_a_lone_thread_through_tasks(fs: FakeCgroupfs, monkeypatch: pytest.MonkeyPatch,
                                                one_thread: bool, file: str) -> None:
    # tasks skips the kernel's threadgroup lock (and its grace period); only right for a
    # process with one thread, so one with more moves through cgroup.procs.
    cg = make(fs)
    fs.writes.clear()
    monkeypatch.setattr(v1, "single_threaded", lambda: one_thread)
    cg.join()
    assert fs.writes == [(f"{c}/{G}/{file}", "0") for c in v1.CONTROLLERS]


def test_freeze_and_thaw(fs: FakeCgroupfs, monkeypatch: pytest.MonkeyPatch) -> None:
    cg = make(fs)
    fs.writes.clear()
    cg.freeze()  # a plain file reads back what was written: FROZEN at once
    assert cg.frozen()
    cg.thaw()
    assert fs.writes == [(f"freezer/{G}/freezer.state", "FROZEN"),
                         (f"freezer/{G}/freezer.state", "THAWED")]
    assert not cg.frozen()


def test_destroy_removes_the_group_and_leaves_the_default_parent(fs: FakeCgroupfs) -> None:
    cg = make(fs)
    cg.destroy()
    assert fs.dirs() == PARENTS_ONLY  # as Docker leaves its own parent, /docker
    cg.destroy()  # idempotent


def test_destroy_leaves_another_containers_group(fs: FakeCgroupfs) -> None:
    other = cgroups.create("other", CgroupLimits(), root=str(fs.root))
    make(fs).destroy()
    assert "memory/minidocker/other" in fs.dirs()
    other.destroy()
    assert fs.dirs() == PARENTS_ONLY


def test_a_named_parent_is_created_and_left(fs: FakeCgroupfs) -> None:
    cg = make(fs, parent="/ci/web")
    assert cg.paths["pids"] == str(fs.root / "pids/ci/web" / CID)
    cg.destroy()
    assert "pids/ci/web" in fs.dirs() and f"pids/ci/web/{CID}" not in fs.dirs()


def test_a_failed_create_leaves_no_group(fs: FakeCgroupfs, monkeypatch: pytest.MonkeyPatch) -> None:
    real_mkdir = fs.mkdir

    def mkdir(path: str, mode: int = 0o755) -> None:
        if path.endswith(f"pids/{G}"):
            raise PermissionError(13, "Permission denied", path)
        real_mkdir(path, mode)

    monkeypatch.setattr("minidocker.syscalls.mkdir", mkdir)
    with pytest.raises(PermissionError):
        make(fs)
    assert not [d for d in fs.dirs() if d.endswith(CID)]  # the parents made so far stay


def test_a_failed_limit_leaves_no_group(fs: FakeCgroupfs, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = fs.write_file

    def write_file(path: str, data: str) -> None:
        if path.endswith("pids.max"):
            raise OSError(22, "Invalid argument", path)
        real_write(path, data)

    monkeypatch.setattr("minidocker.syscalls.write_file", write_file)
    with pytest.raises(OSError, match="Invalid argument"):
        make(fs, CgroupLimits(memory=64 << 20, pids_limit=10))
    assert fs.dirs() == PARENTS_ONLY


def test_oom_and_stats_are_read_from_the_files(fs: FakeCgroupfs) -> None:
    cg = make(fs, CgroupLimits(memory=64 << 20))
    (fs.root / "memory" / G / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (fs.root / "memory" / G / "memory.usage_in_bytes").write_text("5000000\n")
    (fs.root / "memory" / G / "memory.stat").write_text("cache 9\ntotal_inactive_file 1000\n")
    (fs.root / "cpuacct" / G / "cpuacct.usage").write_text("123456789\n")
    (fs.root / "pids" / G / "pids.current").write_text("3\n")
    (fs.root / "blkio" / G / "blkio.throttle.io_service_bytes_recursive").write_text(
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n")
    assert cg.oom_killed()
    assert cg.stats() == {
        "cpu_usage_ns": 123456789, "memory_usage": 5000000, "memory_limit": 64 << 20,
        "memory_max_usage": 0, "memory_inactive_file": 1000, "oom_kills": 2,
        "pids_current": 3, "pids_limit": None, "io_read_bytes": 4096, "io_write_bytes": 8192,
    }


def test_the_trace_shows_the_v1_notes(fs: FakeCgroupfs) -> None:
    events = trace.collect()
    try:
        make(fs, CgroupLimits(memory=64 << 20, memory_swap=128 << 20, nano_cpus=500_000_000))
    finally:
        trace.set_sink(None)
    notes = [ev["call"] for ev in events if ev["kind"] == "note"]
    assert "--cpus 0.5: 50000us of CPU time every 100000us" in notes
    assert "memory.memsw.limit_in_bytes is memory + swap: 134217728" in notes
    assert fs.writes[-2:] == [(f"memory/{G}/memory.limit_in_bytes", str(64 << 20)),
                             (f"memory/{G}/memory.memsw.limit_in_bytes", str(128 << 20))]


def test_a_group_left_by_an_earlier_start_is_replaced(fs: FakeCgroupfs) -> None:
    # A `run` killed with -9 leaves its (empty) groups; starting the container again must
    # not fail with EEXIST, and must not keep the old values.
    old = make(fs, CgroupLimits(pids_limit=5))
    assert fs.read(f"pids/{G}/pids.max") == "5"
    new = make(fs, CgroupLimits(pids_limit=9))
    assert new.paths == old.paths
    assert fs.read(f"pids/{G}/pids.max") == "9"
    assert ("pids/" + G) in fs.dirs()



def test_co_mounted_controllers_share_one_directory(tmp_path: Path) -> None:
    # Debian and Ubuntu mount cpu and cpuacct together and link both names to the pair.
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "cpu").symlink_to("cpu,cpuacct")
    (tmp_path / "cpuacct").symlink_to("cpu,cpuacct")
    (tmp_path / "memory").mkdir()
    (tmp_path / "pids").write_text("")  # not a directory: not a hierarchy
    assert v1.hierarchies(str(tmp_path)) == {"cpu": str(tmp_path / "cpu,cpuacct"),
                                             "cpuacct": str(tmp_path / "cpu,cpuacct"),
                                             "memory": str(tmp_path / "memory")}


def test_the_oom_count_of_a_group_already_removed_is_none(fs: FakeCgroupfs) -> None:
    # The supervisor reads it when a container exits; `rm -f` may have removed the group
    # first. An exception here used to end the supervisor.
    cg = make(fs)
    cg.destroy()
    assert cg.oom_killed() is False
