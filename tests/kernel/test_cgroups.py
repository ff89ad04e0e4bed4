"""cgroups on the real kernel, whichever version it has: limits that hold, priorities,
accounting, the freezer, and nothing left behind.

Each case is written once. :mod:`tests.kernel.cgroupfacts` maps what a case reads ("memory
limit", "cpu quota") to v1's file or v2's, so these run on v1 on the development hosts and on
v2 in the learners' VM (``scripts/vm-test.sh``). Values are read on the host, in the
container's group, and from inside the container: ``/proc/self/cgroup`` on both, and on v2 the
container's own cgroup2 tree at ``/sys/fs/cgroup``. Where the kernel lacks a file (swap
accounting, an I/O weight), the case checks the documented fallback instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import pytest

from minidocker import cgroups
from tests.conftest import CLI, default_groups, needs_root
from tests.kernel.cgroupfacts import (
    FACTS,
    ROOT,
    VERSION,
    Group,
    driver,
    file_name,
    groups_under,
    parent_dir,
    parent_dirs,
    parse,
    want,
    want_io_weight,
    weight_file_for_parent,
)

pytestmark = [needs_root, pytest.mark.nb02]

_n = count()
DOCKERS_WARNING = ("WARNING: Your kernel does not support Block I/O weight or the cgroup is not "
                   "mounted. Weight discarded.")
CPUS = len(os.sched_getaffinity(0))  # what this process may use, as --cpus checks it
MiB = 1 << 20

# One plan, as flags and as the typed plan the files should show (in Docker's units).
FLAGS = ("-m", "64m", "--memory-swap", "96m", "--cpus", "0.5", "--cpu-shares", "512",
         "--pids-limit", "50", "--cpuset-cpus", "0")  # CPU 0 always exists
PLAN = cgroups.CgroupLimits(memory=64 * MiB, memory_swap=96 * MiB, nano_cpus=500_000_000,
                            cpu_shares=512, pids_limit=50, cpuset_cpus="0")
LIMITED = ("memory limit", "swap limit", "cpu quota", "cpu period", "cpu weight", "cpuset cpus",
           "pids limit")


@pytest.fixture
def parent() -> Iterator[str]:
    """A cgroup parent of this test's own (``--cgroup-parent``), checked empty and removed."""
    name = f"minidocker-t{os.getpid()}-{next(_n)}"
    yield name
    left = groups_under(name)
    for path in parent_dirs(name):
        if not any(p.is_dir() for p in path.iterdir()):
            path.rmdir()
    assert not left, f"cgroups left behind: {left}"


def state_of(cli: CLI, name: str) -> dict[str, object]:
    cid = os.readlink(cli.root / "names" / name)
    return json.loads((cli.root / "containers" / cid / "state.json").read_text())


def resources_of(cli: CLI, name: str) -> dict[str, object]:
    """What ``inspect`` shows as HostConfig's limits: config.json's resources."""
    cid = os.readlink(cli.root / "names" / name)
    return json.loads((cli.root / "containers" / cid / "config.json").read_text())["resources"]


def swap_accounted(parent: str) -> bool:
    """Swap accounting is a kernel option (v1's memsw files, v2's memory.swap.max): without it
    ``--memory-swap`` is ignored. The kernel's answer is the file in the parent group."""
    return (parent_dir(parent, "memory") / file_name("swap limit")).exists()


def trace_writes(trace: str) -> dict[str, str]:
    """``write("/sys/fs/cgroup/.../memory.max", "67108864") = 8`` lines -> {file: value}."""
    return dict(re.findall(r'write\("/sys/fs/cgroup/[^"]*/([^"/]+)", "([^"]*)"\)', trace))


class Background:
    def __init__(self, cli: CLI, name: str, *args: str) -> None:
        self.cli, self.name = cli, name
        self.popen = cli.popen("run", "--name", name, *args, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            assert self.popen.poll() is None, self.popen.communicate()[0]
            try:
                state = state_of(cli, name)
            except (OSError, ValueError):
                state = {}
            if state.get("Status") == "running" and state.get("Cgroup"):
                break
            assert time.monotonic() < deadline, "container did not start"
            time.sleep(0.02)
        self.pid = int(str(state["Pid"]))
        self.id = os.readlink(cli.root / "names" / name)
        self.group = Group(state["Cgroup"])  # type: ignore[arg-type]

    def stop(self) -> tuple[int, str]:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):  # a frozen task dies only once thawed
                self.group.thaw()
        out, _ = self.popen.communicate(timeout=30)
        return self.popen.returncode, out


Start = Callable[..., Background]


@pytest.fixture
def background(cli: CLI, parent: str) -> Iterator[Start]:
    """Containers left running by a test; stopped before its cgroup parent is checked."""
    started: list[Background] = []

    def start(name: str, *args: str) -> Background:
        started.append(Background(cli, name, *args))
        return started[-1]

    yield start
    for bg in started:
        bg.stop()


def read_inside(cli: CLI, name: str, facts: tuple[str, ...]) -> dict[str, str]:
    """The facts' files as the container reads them in its own cgroup2 tree (v2): {fact:
    text}."""
    files = " ".join(file_name(f) for f in facts)
    r = cli("exec", name, "sh", "-c", f"cd /sys/fs/cgroup && for f in {files}; do "
            "echo \"$(cat $f)\"; done", check=True)
    lines = r.stdout.splitlines()
    assert len(lines) == len(facts), r.stdout + r.stderr
    return dict(zip(facts, lines, strict=True))


# -- limits ---------------------------------------------------------------------------------------

def test_limits_are_written_and_the_container_sees_itself_at_root(background: Start,
                                                                  parent: str) -> None:
    bg = background("lim", "--cgroup-parent", parent, *FLAGS, "--blkio-weight", "300",
                    "busybox", "sh", "-c", "cat /proc/self/cgroup; sleep 60")
    g = bg.group
    assert g.directory() == (ROOT / parent / bg.id if VERSION == 2
                             else ROOT / "memory" / parent / bg.id)
    for fact in LIMITED:
        if fact == "swap limit" and not swap_accounted(parent):
            assert not g.has(fact)  # no swap accounting: --memory-swap is ignored (the trace
            continue                # says so: test_the_trace_shows_...)
        assert g.read(fact) == g.want(fact, PLAN), (fact, g.file(fact))
    # The weight needs BFQ (or CFQ; v2: or blk-iocost): the kernel's answer is the file in
    # the parent group.
    offered = weight_file_for_parent(parent)
    if offered:
        assert g.weight_file() == offered
        assert g.read_weight() == want_io_weight(offered, 300)
        assert resources_of(bg.cli, "lim")["BlkioWeight"] == 300
    else:  # disks on none/mq-deadline: Docker's warning, 0 recorded, and it runs (above)
        assert g.weight_file() is None
        assert resources_of(bg.cli, "lim")["BlkioWeight"] == 0
    # From the host, the container's process is in its group (v1: in every hierarchy, joined
    # through `tasks`, one thread at a time: the whole process must have moved)...
    assert g.own(Path(f"/proc/{bg.pid}/cgroup").read_text()) == \
        {key: f"/{parent}/{bg.id}" for key in g.paths}
    # ...so is a process `exec` starts in it, which its cgroup namespace shows at the root...
    r = bg.cli("exec", "lim", "cat", "/proc/self/cgroup")
    assert g.own(r.stdout) == {key: "/" for key in g.paths}, r.stderr
    if VERSION == 2:
        # ...and it reads its own limits in its own tree, the same as the host's files.
        inside = read_inside(bg.cli, "lim", LIMITED if swap_accounted(parent) else
                             tuple(f for f in LIMITED if f != "swap limit"))
        for fact, text in inside.items():
            assert parse(fact, text) == g.read(fact) is not None, (fact, text)
    code, out = bg.stop()
    # ...and from inside, PID 1 saw the same.
    assert g.own(out) == {key: "/" for key in g.paths}, out
    assert out.count(DOCKERS_WARNING) == (0 if offered else 1), out
    assert groups_under(parent, bg.id) == []


def test_the_trace_shows_each_limit_in_this_versions_file(cli: CLI, parent: str) -> None:
    offered = weight_file_for_parent(parent)  # made as the run would make it
    r = cli("run", "--rm", "--trace", "--cgroup-parent", parent, *FLAGS,
            "--blkio-weight", "300", "busybox", "true", check=True)
    writes = trace_writes(r.stderr)
    for fact in LIMITED:
        if fact == "swap limit" and not swap_accounted(parent):
            assert file_name(fact) not in writes
            if VERSION == 1:
                assert "this kernel does not account swap; --memory-swap is ignored" in r.stderr
            continue
        assert parse(fact, writes[file_name(fact)]) == want(fact, PLAN), fact
    if VERSION == 2:  # what changed units says how
        assert "cpu.shares 512 -> cpu.weight 1 + (512 - 2) * 9999 / 262142 = 20" in r.stderr
        assert 'cpu.cfs_quota_us and cpu.cfs_period_us -> cpu.max "50000 100000"' in r.stderr
    if offered:
        assert writes[offered] == str(want_io_weight(offered, 300))
        assert DOCKERS_WARNING not in r.stderr
    else:
        assert "--blkio-weight 300 is discarded" in r.stderr
        assert r.stderr.count(DOCKERS_WARNING) == 1
        assert not any(name in writes for name in driver().WEIGHT_FILES)


def test_update_writes_the_weight_or_keeps_the_old_one_with_dockers_warning(
        cli: CLI, background: Start, parent: str) -> None:
    bg = background("updw", "--cgroup-parent", parent, "busybox", "sleep", "60")
    r = cli("update", "--blkio-weight", "400", "--pids-limit", "9", "updw", check=True)
    assert r.stdout == "updw\n"
    assert bg.group.read("pids limit") == 9
    offered = bg.group.weight_file()
    if offered:
        assert bg.group.read_weight() == want_io_weight(offered, 400)
        assert r.stderr == ""
    else:
        assert r.stderr == DOCKERS_WARNING + "\n"
    assert resources_of(cli, "updw")["BlkioWeight"] == (400 if offered else 0)
    assert resources_of(cli, "updw")["PidsLimit"] == 9


def test_update_changes_the_limits_of_a_running_container(cli: CLI, background: Start,
                                                          parent: str) -> None:
    bg = background("upd", "--cgroup-parent", parent, "-m", "64m", "busybox", "sleep", "60")
    cli("update", "-m", "128m", "--memory-swap", "256m", "--pids-limit", "7", "--cpus", "1",
        "upd", check=True)
    plan = cgroups.CgroupLimits(memory=128 * MiB, memory_swap=256 * MiB, pids_limit=7,
                                nano_cpus=1_000_000_000)
    g = bg.group
    for fact in ("memory limit", "swap limit", "pids limit", "cpu quota", "cpu period"):
        if fact == "swap limit" and not g.has(fact):
            continue  # no swap accounting: nothing to hold it (test_limits_... checks that)
        assert g.read(fact) == g.want(fact, plan), fact
    config = json.loads((cli.root / "containers" / bg.id / "config.json").read_text())
    assert config["resources"]["Memory"] == 128 * MiB
    r = cli("update", "-m", "512m", "upd")
    assert r.returncode == 125 and "memoryswap" in r.stderr
    assert g.read("memory limit") == 128 * MiB  # refused: nothing written


def test_the_container_reads_its_own_limits_at_sys_fs_cgroup(cli: CLI) -> None:
    """v2: as runc mounts it, the container's own cgroup2 tree, read-only (read-write under
    --privileged), and none with --cgroupns host. v1: nothing is mounted there (Docker's
    per-controller mounts are not done); the limits are the host's to read."""
    mounted = "grep ' /sys/fs/cgroup ' /proc/self/mountinfo || echo none"
    if VERSION == 1:
        out = cli("run", "--rm", "-m", "64m", "busybox", "sh", "-c", mounted, check=True)
        assert out.stdout == "none\n"
        return
    script = mounted + ("; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max "
                        "/sys/fs/cgroup/cpu.max; "
                        "echo 1 > /sys/fs/cgroup/pids.max 2>/dev/null || echo refused")
    lines = cli("run", "--rm", "-m", "64m", "--pids-limit", "20", "--cpus", "0.5", "busybox",
                "sh", "-c", script, check=True).stdout.splitlines()
    fields = lines[0].split()
    assert fields[3:5] == ["/", "/sys/fs/cgroup"] and fields[5].startswith("ro,"), lines[0]
    assert fields[fields.index("-") + 1] == "cgroup2"
    assert lines[1:] == ["67108864", "20", "50000 100000", "refused"]
    privileged = cli("run", "--rm", "--privileged", "busybox", "sh", "-c", mounted,
                     check=True).stdout
    assert privileged.split()[5].startswith("rw,"), privileged
    host_ns = cli("run", "--rm", "--cgroupns", "host", "busybox", "sh", "-c", mounted,
                  check=True)
    assert host_ns.stdout == "none\n"  # the host's tree is not shown to a container


def test_cgroupns_host_shows_the_whole_path(cli: CLI, parent: str) -> None:
    r = cli("run", "--rm", "--cgroupns", "host", "--cgroup-parent", parent, "--pids-limit", "9",
            "busybox", "cat", "/proc/self/cgroup", check=True)
    assert (f"0::/{parent}/" if VERSION == 2 else f"pids:/{parent}/") in r.stdout


# -- the start, the layout --------------------------------------------------------------------

def test_every_container_gets_a_cgroup_and_joins_it_without_the_global_lock(cli: CLI) -> None:
    r = cli("run", "--rm", "--trace", "busybox", "cat", "/proc/self/cgroup", check=True)
    assert "== cgroup (made and limited before fork)" in r.stderr
    joins = [line for line in r.stderr.splitlines() if "[container]    write(" in line
             and "/minidocker/" in line]
    if VERSION == 2:
        # Born in it: clone3(CLONE_INTO_CGROUP), so nothing is moved, nothing waits.
        assert "CLONE_INTO_CGROUP" in r.stderr
        assert joins == [], joins
        assert r.stdout == "0::/\n"
        return
    # v1: the child's one thread moves itself through `tasks` in every hierarchy, never
    # through cgroup.procs (which would wait for an RCU grace period).
    assert len(joins) == len(set(driver().hierarchies(str(ROOT)).values()))
    assert all('/tasks", "0") = 1' in line for line in joins), joins
    assert all(line.endswith(":/") for line in r.stdout.splitlines() if "devices" not in line
               and "name=" not in line and not line.startswith("0::")), r.stdout


def test_the_default_layout_and_the_trace(cli: CLI) -> None:
    base = f"{ROOT}/minidocker/" if VERSION == 2 else f"{ROOT}/memory/minidocker/"
    r = cli("run", "--rm", "--trace", "-m", "64m", "busybox", "true", check=True)
    assert f'mkdir("{base}' in r.stderr
    assert f'/{file_name("memory limit")}", "67108864") = 8' in r.stderr
    assert f'rmdir("{base}' in r.stderr
    cid = r.stderr.split(base)[1].split('"')[0]
    assert default_groups(cid) == []


def test_a_cpuset_parent_another_run_has_not_filled_in_yet_is_filled(cli: CLI,
                                                                      parent: str) -> None:
    # Two containers started together: the first makes the parent and has not yet prepared
    # it when the second finds it. v1: a new cpuset group has no CPUs or memory nodes, and
    # joining a group under it would fail with ENOSPC unless the second copies them in too.
    # v2: a new group hands no controller down, so a child would have no cpuset.cpus at all
    # unless the second enables it in the parent's cgroup.subtree_control.
    made = parent_dir(parent, "cpuset")
    made.mkdir()

    def prepared() -> bool:
        if VERSION == 2:
            return "cpuset" in (made / "cgroup.subtree_control").read_text().split()
        return (made / "cpuset.mems").read_text().strip() != ""

    assert not prepared()
    r = cli("run", "--rm", "--cgroup-parent", parent, "--cpuset-cpus", "0", "busybox", "cat",
            "/proc/self/status")
    assert r.returncode == 0, r.stderr
    assert "Cpus_allowed_list:\t0\n" in r.stdout
    assert prepared()


# -- OOM, pids, CPU, the freezer ---------------------------------------------------------------

def test_a_memory_hog_is_oom_killed_at_the_limit(cli: CLI, parent: str) -> None:
    hog = 'BEGIN{for(i=0;;i++){a[i]=sprintf("%1048576s","")}}'
    r = cli("run", "--name", "hog", "--cgroup-parent", parent, "-m", "32m", "--memory-swap",
            "32m", "busybox", "awk", hog, timeout=120)
    assert r.returncode == 137, r.stderr
    state = state_of(cli, "hog")
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    assert groups_under(parent) == []


def test_a_clean_exit_is_not_an_oom(cli: CLI, parent: str) -> None:
    r = cli("run", "--name", "ok", "--cgroup-parent", parent, "-m", "32m", "busybox", "sh", "-c",
            "exit 137")  # 137, but not from the OOM killer
    assert r.returncode == 137
    assert state_of(cli, "ok")["OOMKilled"] is False


def test_pids_max_stops_a_fork_bomb(background: Start, parent: str) -> None:
    bg = background("bomb", "--cgroup-parent", parent, "--pids-limit", "30", "busybox", "sh",
                    "-c", "(while :; do sleep 10 & done) 2>/dev/null & exec sleep 60")  # bomb
    g = bg.group
    # Watch until the limit has refused forks (the bomb's speed is the machine's), then a
    # little longer: the count never passes the limit.
    deadline = time.monotonic() + 60
    while g.read("pids refused") == 0:
        assert g.read("pids current") <= 30  # type: ignore[operator]
        assert time.monotonic() < deadline, "the fork bomb never reached its limit"
        time.sleep(0.05)
    peak = 0
    for _ in range(20):
        peak = max(peak, int(g.read("pids current")))  # type: ignore[arg-type]
        time.sleep(0.05)
    assert peak == 30, peak  # flattened at the limit
    assert g.read("pids limit") == 30
    bg.stop()
    assert groups_under(parent, bg.id) == []


def test_a_cpu_quota_holds_usage_near_its_share(background: Start, parent: str) -> None:
    bg = background("quota", "--cgroup-parent", parent, "--cpus", "0.5", "busybox", "sh", "-c",
                    "while :; do :; done")
    time.sleep(0.3)
    u0, t0 = bg.group.cpu_usage_ns(), time.monotonic_ns()
    time.sleep(2)
    share = (bg.group.cpu_usage_ns() - u0) / (time.monotonic_ns() - t0)
    # At most half a CPU (the quota is per period, so a little over within one window);
    # rarely much less, unless the two shared cores are very busy.
    assert 0.2 < share < 0.6, share


def test_pause_freezes_and_unpause_resumes(cli: CLI, background: Start, parent: str) -> None:
    bg = background("frz", "--cgroup-parent", parent, "--pids-limit", "10", "busybox", "sh",
                    "-c", "while :; do :; done")
    g = bg.group
    cli("pause", "frz", check=True)
    assert g.frozen()
    assert g.read("freezer") == ("1" if VERSION == 2 else "FROZEN")
    assert state_of(cli, "frz")["Status"] == "paused"
    u0 = g.cpu_usage_ns()
    time.sleep(0.5)
    assert g.cpu_usage_ns() == u0  # frozen: not one nanosecond of CPU (v2: not one µs)
    assert cli("pause", "frz").returncode == 125
    cli("unpause", "frz", check=True)
    assert not g.frozen()
    assert g.read("freezer") == ("0" if VERSION == 2 else "THAWED")
    deadline = time.monotonic() + 30
    while g.cpu_usage_ns() < u0 + 100_000_000:  # a tenth of a second of CPU, however slowly
        assert time.monotonic() < deadline, "unpaused, yet it does not run"
        time.sleep(0.1)
    assert state_of(cli, "frz")["Status"] == "running"
    assert cli("unpause", "frz").returncode == 125


def test_a_paused_container_can_still_be_killed(cli: CLI, background: Start,
                                                parent: str) -> None:
    bg = background("frzk", "--cgroup-parent", parent, "--pids-limit", "10", "busybox",
                    "sleep", "60")
    cli("pause", "frzk", check=True)
    os.kill(bg.pid, signal.SIGKILL)
    if VERSION == 2:
        # v2's freezer lets a fatal signal through: the task leaves the frozen group to die
        # (cgroup-v2.rst, "Processes in the frozen cgroup can be killed by a fatal signal").
        assert bg.popen.wait(30) == 137
    else:
        time.sleep(0.3)
        assert bg.popen.poll() is None  # v1: frozen, the SIGKILL waits...
        assert Path(f"/proc/{bg.pid}").exists()
        cli("unpause", "frzk", check=True)  # ...until the group thaws
        assert bg.popen.wait(30) == 137
    assert state_of(cli, "frzk")["Status"] == "exited"
    assert groups_under(parent, bg.id) == []


# -- accounting -------------------------------------------------------------------------------

def test_stats_agrees_with_the_cgroup_files(cli: CLI, background: Start, parent: str) -> None:
    bg = background("st", "--cgroup-parent", parent, "-m", "64m", "--pids-limit", "20",
                    "busybox", "sh", "-c", "sleep 60 & sleep 60 & while :; do :; done")
    g = bg.group
    time.sleep(0.3)
    u0 = g.cpu_usage_ns()
    r = cli("stats", "--no-stream", "--format", "json", "--interval", "1", "st", check=True)
    u1 = g.cpu_usage_ns()
    row = json.loads(r.stdout)
    raw = row["Raw"]
    assert raw["memory_limit"] == 64 * MiB == g.read("memory limit")
    assert raw["pids"] == g.read("pids current") == 3
    assert row["PIDs"] == "3" and row["MemUsage"].endswith(" / 64MiB")
    assert 0 < raw["memory_usage"] <= 64 * MiB
    assert u0 <= raw["cpu_usage_ns"] <= u1
    # Its two samples lie between ours, at least its 1 s interval apart: it cannot show more
    # CPU than the group used meanwhile, nor (one busy loop) more than one CPU. How much the
    # loop got is the machine's business (two shared cores, an emulated VM).
    assert 0 < raw["cpu_percent"] <= min(101, 100 * (u1 - u0) / 1e9 + 1), (raw, u1 - u0)
    table = cli("stats", "--no-stream", "--interval", "0.2", "st", check=True).stdout
    assert table.splitlines()[0].split()[:3] == ["CONTAINER", "ID", "NAME"]


def test_stats_counts_a_container_without_limits(cli: CLI, background: Start) -> None:
    bg = background("plain", "busybox", "sh", "-c", "sleep 60 & exec sleep 60")
    g = bg.group
    assert g.directory("pids").parent == parent_dir("minidocker", "pids")  # from the start,
    r = cli("stats", "--no-stream", "--format", "json", "--interval", "0.2", "plain",  # as in
            check=True)                                                                 # Docker
    inside = sorted(g.cgroup.pids())
    assert json.loads(r.stdout)["PIDs"] == str(len(inside)) == "2"  # sh is now the last sleep
    assert inside == sorted([bg.pid, *[int(p) for p in Path(
        f"/proc/{bg.pid}/task/{bg.pid}/children").read_text().split()]])
    assert g.read("pids limit") is None  # no limit: "max"
    bg.stop()
    assert not g.directory("pids").exists()


# -- nothing left behind ------------------------------------------------------------------------

def test_leftover_processes_are_killed_when_the_container_exits(cli: CLI, parent: str) -> None:
    # With --pid host, PID 1's exit does not end the others: only the cgroup knows them.
    r = cli("run", "--rm", "--pid", "host", "--cgroup-parent", parent, "--pids-limit", "10",
            "busybox", "sh", "-c", "sleep 100 >/dev/null 2>&1 & echo $!", check=True)
    orphan = int(r.stdout)
    time.sleep(0.1)
    assert not Path(f"/proc/{orphan}").exists() or "Z" in Path(
        f"/proc/{orphan}/stat").read_text().split()[2]
    assert groups_under(parent) == []


@pytest.mark.parametrize("flags", [
    ["-m", "10x"], ["-m", "-5"], ["-m", "4m"], ["--cpus", str(CPUS + 1)],
    ["--cpuset-cpus", "0-x"],
    ["--cpu-shares", "-1"], ["--memory-swap", "10m"], ["--blkio-weight", "5"],
    ["--cgroup-parent", "../x"],
])
def test_bad_input_creates_nothing(cli: CLI, parent: str, flags: list[str]) -> None:
    # Under a parent of its own (other sessions start containers under the default one);
    # a second --cgroup-parent replaces the first.
    r = cli("run", "--rm", "--cgroup-parent", parent, *flags, "busybox", "true")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("minidocker: ")
    assert not (cli.root / "containers").exists() or not os.listdir(cli.root / "containers")
    assert not [*ROOT.glob(f"{parent}"), *ROOT.glob(f"*/{parent}")]  # not even the parent


def test_a_failed_start_leaves_no_cgroup(cli: CLI, parent: str) -> None:
    r = cli("run", "--rm", "--cgroup-parent", parent, "-m", "64m", "--pids-limit", "5",
            "busybox", "no-such-command")
    assert r.returncode == 127
    assert parent_dir(parent, "memory").is_dir()  # it was made, and its child removed
    assert groups_under(parent) == []


def test_every_fact_names_a_file_of_this_version(cli: CLI, background: Start,
                                                 parent: str) -> None:
    """The map the cases read through: each fact's file exists in a container's group (swap
    accounting aside, which is the kernel's option)."""
    g = background("facts", "--cgroup-parent", parent, "busybox", "sleep", "60").group
    missing = [fact for fact in FACTS if not g.has(fact)]
    assert missing in ([], ["swap limit"]), missing
    assert ("swap limit" in missing) != swap_accounted(parent)
