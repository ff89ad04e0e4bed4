"""The capstone's start-time comparison on the real kernel: lesson 10's bundle runs under runc
and crun, and the mount namespace crun gets on a hybrid host (without the cgroup2 mount) leaves
the host's own mounts as they were."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minidocker import lab, labtime

from ..conftest import is_root

pytestmark = [pytest.mark.kernel, pytest.mark.nb10,
              pytest.mark.skipif(not is_root(), reason="runs containers: needs root")]


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f)


@pytest.mark.parametrize("tool", ["runc", "crun"])
def test_the_bundle_runs_under_each_runtime_and_the_host_keeps_its_mounts(
        tool: str, tmp_path: Path) -> None:
    missing = labtime.runtime_missing(tool)
    if missing:
        pytest.skip(missing)
    before = mount_points()
    state = tmp_path / "state"
    with lab.Lab() as bench:
        bundle = labtime.oci_bundle(bench, str(tmp_path / "bundle"))
        assert os.path.isfile(os.path.join(bundle, "rootfs", "bin", "busybox"))
        samples = labtime.start_times({tool: labtime.oci_run(tool, bundle, str(state))},
                                      bench.env, rounds=2, warmup=0)
    assert len(samples[tool]) == 2 and min(samples[tool]) > 0
    assert mount_points() == before  # crun's umount stayed in its own namespace
    assert not state.exists() or os.listdir(state) == []  # `run` deleted each container


def test_a_runtime_that_fails_says_so(tmp_path: Path) -> None:
    missing = labtime.runtime_missing("runc")
    if missing:
        pytest.skip(missing)
    with pytest.raises(RuntimeError, match="exit"):
        labtime.start_times({"runc": labtime.oci_run("runc", str(tmp_path / "no-bundle"),
                                                     str(tmp_path / "state"))},
                            dict(os.environ), rounds=1, warmup=0)


def test_a_traced_run_times_each_mechanisms_teardown(tmp_path: Path) -> None:
    """The capstone's chart: after the command, the cgroup's removal counts for cgroups and the
    container's directory for rootfs/overlay (neither was traced as a step of its own once)."""
    with lab.Lab() as bench:
        traced = bench.run("--rm", "busybox", "true").check()
    found = labtime.spans(traced.events)
    teardown = labtime.totals(found, "teardown")
    assert teardown["cgroups"] > 0, [(s.name, s.ms) for s in found if s.phase == "teardown"]
    assert teardown["rootfs/overlay"] > 0, [(s.name, s.ms) for s in found]
    assert found[-1].name == "delete" and found[-1].ms > 0
