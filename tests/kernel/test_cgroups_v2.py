"""cgroups on a real cgroup v2 (unified) kernel: the learner's VM. Skipped on the v1 hybrid
development hosts, where ``test_cgroups.py`` runs instead; the VM lane runs these for real."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from minidocker import cgroups
from tests.conftest import CLI, needs_root

pytestmark = [
    needs_root,
    pytest.mark.skipif(cgroups.version() != 2,
                       reason="needs a cgroup v2 (unified) host; this one is v1 or hybrid, "
                              "where tests/kernel/test_cgroups.py runs (the VM lane runs these)"),
]

ROOT = Path("/sys/fs/cgroup")


def test_limits_land_in_v2_files(cli: CLI) -> None:
    script = ("cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max 2>/dev/null; "
              "cat /proc/1/cgroup")
    r = cli("run", "--rm", "--trace", "-m", "64m", "--memory-swap", "96m", "--cpu-shares",
            "512", "--cpus", "0.5", "--pids-limit", "20", "busybox", "sh", "-c", script,
            check=True)
    assert r.stdout.startswith("0::/\n")  # the container sees its own group as the root
    assert 'memory.max", "67108864")' in r.stderr
    assert 'memory.swap.max", "33554432")' in r.stderr  # swap alone: 96m - 64m
    assert 'cpu.weight", "20")' in r.stderr and 'cpu.max", "50000 100000")' in r.stderr
    assert "cpu.shares 512 -> cpu.weight" in r.stderr
    cid = r.stderr.split(f"{ROOT}/minidocker/")[1].split("/")[0]
    assert not (ROOT / "minidocker" / cid).exists()


def test_oom_kill_is_read_from_memory_events(cli: CLI) -> None:
    hog = 'BEGIN{for(i=0;;i++){a[i]=sprintf("%1048576s","")}}'
    r = cli("run", "--name", "hog", "-m", "32m", "--memory-swap", "32m", "busybox", "awk", hog)
    assert r.returncode == 137
    cid = os.readlink(cli.root / "names" / "hog")
    state = json.loads((cli.root / "containers" / cid / "state.json").read_text())
    assert state["OOMKilled"] is True


def test_pids_max(cli: CLI) -> None:
    r = cli("run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c",
            "(while :; do sleep 5 & done) 2>/dev/null & sleep 1; "
            "ls /proc | grep -c '^[0-9]'", check=True)
    assert int(r.stdout) <= 10


def test_the_container_reads_its_own_limits_at_sys_fs_cgroup(cli: CLI) -> None:
    """As runc mounts it: the container's own cgroup2 tree, read-only, at /sys/fs/cgroup."""
    script = ("grep ' /sys/fs/cgroup ' /proc/self/mountinfo; cat /sys/fs/cgroup/memory.max "
              "/sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; "
              "echo 1 > /sys/fs/cgroup/pids.max 2>/dev/null || echo refused")
    out = cli("run", "--rm", "-m", "64m", "--pids-limit", "20", "--cpus", "0.5", "busybox",
              "sh", "-c", script, check=True).stdout.splitlines()
    fields = out[0].split()
    assert fields[3:5] == ["/", "/sys/fs/cgroup"] and fields[5].startswith("ro,"), out[0]
    assert fields[fields.index("-") + 1] == "cgroup2"
    assert out[1:] == ["67108864", "20", "50000 100000", "refused"]
    privileged = cli("run", "--rm", "--privileged", "busybox", "sh", "-c",
                     "grep ' /sys/fs/cgroup ' /proc/self/mountinfo", check=True).stdout
    assert privileged.split()[5].startswith("rw,"), privileged
    host_ns = cli("run", "--rm", "--cgroupns", "host", "busybox", "sh", "-c",
                  "grep -c ' /sys/fs/cgroup ' /proc/self/mountinfo || true", check=True)
    assert host_ns.stdout.strip() == "0"  # the host's tree is not shown to a container
