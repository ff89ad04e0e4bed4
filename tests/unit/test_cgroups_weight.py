"""``--blkio-weight`` on hosts with and without a weight file (issue 10), v1 and v2, against the
fake cgroupfs: where the kernel offers a weight it is written to the right file; where it
offers none (no BFQ, no CFQ, no blk-iocost, no io controller) it is dropped with Docker's
warning, nothing is written for it, and the container's other limits still apply. No root."""

from __future__ import annotations

from pathlib import Path

import pytest

from minidocker import cgroups, trace
from minidocker.cgroups import CgroupLimits
from minidocker.commands.resources import apply_update
from tests.unit.fake_cgroupfs import FakeCgroupfs, install

pytestmark = pytest.mark.nb02

CID = "c0ffee"
G = "minidocker/" + CID
DOCKERS_WARNING = ("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                   "Weight discarded.")
NO_WEIGHT = {1: ("blkio.weight", "blkio.bfq.weight"), 2: ("io.weight", "io.bfq.weight")}
GROUP = {1: "{c}/" + G, 2: G}  # where a controller's files are, per version


def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: int,
         weights: tuple[str, ...]) -> FakeCgroupfs:
    return install(monkeypatch, tmp_path, version, weights)


def noted(fn):  # type: ignore[no-untyped-def]
    events = trace.collect()
    try:
        result = fn()
    finally:
        trace.set_sink(None)
    return result, [ev["call"] for ev in events if ev["kind"] == "note"]


def weight_writes(fs: FakeCgroupfs) -> list[tuple[str, str]]:
    return [w for w in fs.writes if w[0].rsplit("/", 1)[-1] in
            ("blkio.weight", "blkio.bfq.weight", "io.weight", "io.bfq.weight")]


def other_limits_written(fs: FakeCgroupfs, version: int) -> None:
    memory = "memory.limit_in_bytes" if version == 1 else "memory.max"
    assert fs.read(GROUP[version].format(c="memory") + "/" + memory) == str(64 << 20)
    assert fs.read(GROUP[version].format(c="pids") + "/pids.max") == "50"
    assert fs.read(GROUP[version].format(c="cpu") + "/" +
                   ("cpu.shares" if version == 1 else "cpu.weight")) \
        == ("512" if version == 1 else "20")


# -- without a weight file: discarded, with Docker's words ---------------------------------

@pytest.mark.parametrize("version", [1, 2])
def test_without_bfq_the_weight_is_discarded_and_the_rest_applies(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: int) -> None:
    fs = fake(monkeypatch, tmp_path, version, ())  # disks on none / mq-deadline
    limits = CgroupLimits(memory=64 << 20, cpu_shares=512, pids_limit=50, blkio_weight=300)
    warnings, notes = noted(lambda: cgroups.discard_unsupported(limits, root=str(fs.root)))
    assert warnings == [DOCKERS_WARNING]
    assert limits.blkio_weight == 0  # what inspect shows, as Docker's daemon records it
    assert any("--blkio-weight 300 is discarded" in n for n in notes), notes
    cgroups.create(CID, limits, root=str(fs.root))
    assert weight_writes(fs) == []
    other_limits_written(fs, version)


def test_v2_without_the_io_controller_discards_even_with_iocost(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # io.weight exists only in groups whose parent hands io down; a root that has no io to
    # give (a delegated subtree, a nested container) makes none, whatever the scheduler.
    fs = fake(monkeypatch, tmp_path, 2, ("io.weight", "io.bfq.weight"))
    (fs.root / "cgroup.controllers").write_text("cpuset cpu memory pids\n")
    limits = CgroupLimits(pids_limit=50, blkio_weight=300)
    assert cgroups.discard_unsupported(limits, root=str(fs.root)) == [DOCKERS_WARNING]
    cgroups.create(CID, limits, root=str(fs.root))
    assert weight_writes(fs) == [] and fs.read(f"{G}/pids.max") == "50"


def test_v1_without_a_blkio_hierarchy_discards(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    fs = fake(monkeypatch, tmp_path, 1, ("blkio.bfq.weight",))
    for child in (fs.root / "blkio").iterdir():
        child.unlink()
    (fs.root / "blkio").rmdir()  # "or the cgroup is not mounted"
    limits = CgroupLimits(blkio_weight=300)
    assert cgroups.discard_unsupported(limits, root=str(fs.root)) == [DOCKERS_WARNING]
    assert limits.blkio_weight == 0


@pytest.mark.parametrize("version", [1, 2])
def test_update_without_bfq_warns_writes_the_rest_and_keeps_the_old_weight(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: int) -> None:
    fs = fake(monkeypatch, tmp_path, version, ())
    cg = cgroups.create(CID, CgroupLimits(), root=str(fs.root))
    fs.writes.clear()
    stored = CgroupLimits(memory=32 << 20, memory_swap=64 << 20)
    merged, warnings = apply_update(cg, stored, CgroupLimits(pids_limit=50, blkio_weight=300))
    assert warnings == [DOCKERS_WARNING]
    assert merged.blkio_weight == 0 and merged.pids_limit == 50
    assert weight_writes(fs) == []
    assert fs.read(GROUP[version].format(c="pids") + "/pids.max") == "50"


def test_nothing_is_looked_at_without_a_weight(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    # `run`'s start is benchmarked: a run without --blkio-weight must not pay for the probe.
    fs = fake(monkeypatch, tmp_path, 1, ())
    monkeypatch.setattr(cgroups, "version", lambda *a: pytest.fail("probed without a weight"))
    assert cgroups.discard_unsupported(CgroupLimits(pids_limit=5), root=str(fs.root)) == []
    assert fs.writes == [] and fs.dirs() == sorted(c for c in fs.dirs() if "/" not in c)


# -- with a weight file: written where the kernel offers it ---------------------------------

@pytest.mark.parametrize(("version", "weights", "file", "value"), [
    (1, ("blkio.bfq.weight",), "blkio.bfq.weight", "300"),  # BFQ (current kernels)
    (1, ("blkio.weight",), "blkio.weight", "300"),  # CFQ (before 5.0)
    (2, ("io.bfq.weight",), "io.bfq.weight", "300"),  # BFQ keeps v1's scale
    (2, ("io.weight",), "io.weight", "2930"),  # blk-iocost: 1 + (300 - 10) * 9999 / 990
    (2, ("io.weight", "io.bfq.weight"), "io.bfq.weight", "300"),  # runc's preference
])
def test_with_a_weight_file_the_weight_is_written_there(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: int,
        weights: tuple[str, ...], file: str, value: str) -> None:
    fs = fake(monkeypatch, tmp_path, version, weights)
    limits = CgroupLimits(memory=64 << 20, cpu_shares=512, pids_limit=50, blkio_weight=300)
    assert cgroups.discard_unsupported(limits, root=str(fs.root)) == []
    assert limits.blkio_weight == 300
    cgroups.create(CID, limits, root=str(fs.root))
    assert weight_writes(fs) == [(GROUP[version].format(c="blkio") + "/" + file, value)]
    other_limits_written(fs, version)


@pytest.mark.parametrize(("version", "weights"), [(1, ("blkio.bfq.weight",)),
                                                  (2, ("io.weight",))])
def test_update_with_a_weight_file_writes_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             version: int, weights: tuple[str, ...]) -> None:
    fs = fake(monkeypatch, tmp_path, version, weights)
    cg = cgroups.create(CID, CgroupLimits(), root=str(fs.root))
    fs.writes.clear()
    merged, warnings = apply_update(cg, CgroupLimits(), CgroupLimits(blkio_weight=500))
    assert warnings == [] and merged.blkio_weight == 500
    assert [w[1] for w in weight_writes(fs)] == ["500" if version == 1 else "4950"]


def test_the_parent_is_made_to_ask_the_kernel(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    # The root group never has a weight file; the answer is in a group below it, so the
    # parent a start would make is made first (and left, like Docker's /docker).
    fs = fake(monkeypatch, tmp_path, 2, ("io.weight",))
    limits = CgroupLimits(blkio_weight=300)
    assert cgroups.discard_unsupported(limits, "/ci/web", root=str(fs.root)) == []
    assert fs.dirs() == ["ci", "ci/web"]
    assert "io" in fs.read("ci/web/cgroup.subtree_control").split()


@pytest.mark.parametrize("version", [1, 2])
def test_a_weight_file_gone_since_the_plan_fails_the_start_cleanly(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: int) -> None:
    # Decided at `create`, started later after BFQ was unloaded: say so and leave no group.
    fs = fake(monkeypatch, tmp_path, version, ())
    with pytest.raises(FileNotFoundError, match="weight"):
        cgroups.create(CID, CgroupLimits(blkio_weight=300), root=str(fs.root))
    assert not [d for d in fs.dirs() if d.endswith(CID)]
