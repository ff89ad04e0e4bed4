"""The notebooks' helper against the real kernel: what the notebooks rely on, checked."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from minidocker import lab, namespaces
from tests.conftest import default_groups, needs_root

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb00, pytest.mark.nb01]


@pytest.fixture
def bench():
    with lab.Lab() as b:
        yield b


def test_run_returns_output_and_the_trace_of_both_sides(bench):
    result = bench.run("--rm", "busybox", "echo", "hi")
    assert result.check().stdout == "hi\n"
    assert result.wall_ms > 0
    calls = [e["call"] for e in result.events if e["kind"] == "syscall"
             and e["where"] == "container"]
    assert "pivot_root" in calls
    assert calls[-1] == "execve"
    container_steps = [g.name for g in lab.steps(result.events) if g.where == "container"]
    # v1: the child moves itself into its cgroup first; v2: it was born there (no step).
    assert [s for s in container_steps if s != "cgroup"][:3] == \
        ["die-with-parent", "namespaces", "rootfs"]
    assert container_steps[-1] == "exec"
    assert {e["where"] for e in result.events} == {"host", "container"}
    assert not os.listdir(bench.root + "/lab")  # the trace file is gone once read


def test_close_removes_the_state_root():
    bench = lab.Lab()
    bench.run("--rm", "busybox", "true").check()
    assert os.listdir(bench.root)
    bench.close()
    assert not os.path.exists(bench.root)


def test_container_namespaces_differ_from_the_hosts_except_user(bench):
    rows = lab.ns_table(lab.host_namespaces(), bench.container_namespaces())
    assert {r.kind for r in rows if r.shared} == {"user"}
    shared = lab.ns_table(lab.host_namespaces(),
                          bench.container_namespaces("--pid", "host", "--uts", "host"))
    assert {r.kind for r in shared if r.shared} == {"user", "pid", "uts"}


def test_a_background_container_is_a_process_the_host_can_see(bench):
    bg = bench.start("--rm", "busybox", "sleep", "60")
    pid = bg.pid()
    assert lab.proc_status(pid)["Name"] == "sleep"
    assert lab.rss_kib(pid) > 0
    ns = namespaces.ns_id("pid", pid)
    assert ns != namespaces.ns_id("pid")
    assert lab.pids_in_namespace("pid", ns) == [pid]
    assert bg.stop() == 137  # 128 + SIGKILL
    assert not os.path.exists(f"/proc/{pid}")


def test_close_stops_background_containers():
    bench = lab.Lab()
    bg = bench.start("busybox", "sleep", "60")
    pid = bg.pid()
    bench.close()
    assert bg.popen.poll() is not None
    assert not os.path.exists(f"/proc/{pid}")
    assert not os.path.exists(bench.root)


def test_a_lab_never_closed_cleans_up_when_the_interpreter_exits():
    script = ("from minidocker import lab\n"
              "b = lab.Lab()\n"
              "print(b.start('busybox', 'sleep', '60').pid(), b.root)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    pid, root = int(out[0]), out[1]
    assert not os.path.exists(root)
    assert not os.path.exists(f"/proc/{pid}")


def test_join_latency_times_both_ways_into_fresh_groups_and_leaves_none() -> None:
    # Lesson 02's experiment. Only its shape is checked here: how long each way takes is the
    # kernel's business (a timed test would be flaky); benchmarks/README.md records figures.
    from minidocker import cgroups

    result = lab.join_latency(rounds=2)
    fast = "clone3" if cgroups.version() == 2 else "tasks"
    assert sorted(result) == sorted(["cgroup.procs", fast])
    assert all(len(ms) == 2 and all(m > 0 for m in ms) for ms in result.values())
    assert default_groups("joinbench-*") == []
