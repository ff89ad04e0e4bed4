"""cgroups on the real kernel (v1 here): limits that hold, priorities, accounting, the
freezer, and nothing left behind. Runs as root; a v2 host runs ``test_cgroups_v2.py``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from minidocker import cgroups
from minidocker.cgroups import v1
from tests.conftest import CLI, needs_root

pytestmark = [
    needs_root,
    pytest.mark.skipif(cgroups.version() != 1 or not os.path.isdir("/sys/fs/cgroup/memory"),
                       reason="needs cgroup v1 controllers (the v2 lane runs test_cgroups_v2)"),
]

ROOT = Path("/sys/fs/cgroup")
_n = count()
DOCKERS_WARNING = ("WARNING: Your kernel does not support Block I/O weight or the cgroup is not "
                   "mounted. Weight discarded.")
WEIGHT_FILES = ("blkio.weight", "blkio.bfq.weight")  # CFQ's, BFQ's; many disks have neither
# Swap accounting (memory.memsw.*) is a kernel option (swapaccount=0 turns it off), and it
# shows in the hierarchy's root too; without it --memory-swap is ignored.
MEMSW = (ROOT / "memory" / "memory.memsw.limit_in_bytes").exists()
CPUS = len(os.sched_getaffinity(0))  # what this process may use, as --cpus checks it


@pytest.fixture
def parent() -> Iterator[str]:
    """A cgroup parent of this test's own (``--cgroup-parent``), checked empty and removed."""
    name = f"minidocker-t{os.getpid()}-{next(_n)}"
    yield name
    left = [str(p) for p in ROOT.glob(f"*/{name}/*") if p.is_dir()]
    for hierarchy in v1.hierarchies(str(ROOT)).values():
        path = Path(hierarchy, name)
        if path.is_dir() and not any(p.is_dir() for p in path.iterdir()):
            path.rmdir()
    assert not left, f"cgroups left behind: {left}"


def groups_of(cid: str, parent: str) -> list[str]:
    return [str(p) for p in ROOT.glob(f"*/{parent}/{cid}")]


def by_hierarchy(proc_cgroup: str, controllers: set[str]) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` ("4:memory:/path") -> {controller: path}, for ``controllers``."""
    out = {}
    for line in proc_cgroup.splitlines():
        _, names, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        for name in names.split(","):
            if name in controllers:
                out[name] = path
    return out


def state_of(cli: CLI, name: str) -> dict[str, object]:
    cid = os.readlink(cli.root / "names" / name)
    return json.loads((cli.root / "containers" / cid / "state.json").read_text())


def resources_of(cli: CLI, name: str) -> dict[str, object]:
    """What ``inspect`` shows as HostConfig's limits: config.json's resources."""
    cid = os.readlink(cli.root / "names" / name)
    return json.loads((cli.root / "containers" / cid / "config.json").read_text())["resources"]


def weight_files(group: Path) -> list[str]:
    """The I/O weight files the kernel made in ``group`` (none on disks without BFQ/CFQ)."""
    return [name for name in WEIGHT_FILES if (group / name).exists()]


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
            if state.get("Status") == "running":
                break
            assert time.monotonic() < deadline, "container did not start"
            time.sleep(0.02)
        self.pid = int(str(state["Pid"]))
        self.id = os.readlink(cli.root / "names" / name)
        self.state = state

    def group(self, controller: str) -> Path:
        paths = self.state["Cgroup"]["Paths"]  # type: ignore[index]
        return Path(paths[controller])

    def stop(self) -> tuple[int, str]:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            if self.state.get("Cgroup"):  # a frozen task dies only once thawed
                freezer = self.group("freezer") / "freezer.state"
                if freezer.exists():
                    freezer.write_text("THAWED")
        out, _ = self.popen.communicate(timeout=30)
        return self.popen.returncode, out


@pytest.fixture
def background(cli: CLI, parent: str) -> Iterator[object]:
    """Containers left running by a test; stopped before its cgroup parent is checked."""
    started: list[Background] = []

    def start(name: str, *args: str) -> Background:
        started.append(Background(cli, name, *args))
        return started[-1]

    yield start
    for bg in started:
        bg.stop()


def test_limits_are_written_and_the_container_sees_itself_at_root(background, parent: str) -> None:
    bg = background("lim", "--cgroup-parent", parent, "-m", "64m", "--cpus", "0.5",
                    "--cpu-shares", "512", "--pids-limit", "50", "--blkio-weight", "300",
                    "--cpuset-cpus", "0", "busybox", "sh", "-c", "cat /proc/self/cgroup; sleep 60")
    assert bg.group("memory") == ROOT / "memory" / parent / bg.id
    assert (bg.group("memory") / "memory.limit_in_bytes").read_text() == f"{64 << 20}\n"
    if MEMSW:
        assert (bg.group("memory") / "memory.memsw.limit_in_bytes").read_text() \
            == f"{128 << 20}\n"
    assert (bg.group("cpu") / "cpu.cfs_quota_us").read_text() == "50000\n"
    assert (bg.group("cpu") / "cpu.shares").read_text() == "512\n"
    assert (bg.group("pids") / "pids.max").read_text() == "50\n"
    assert (bg.group("cpuset") / "cpuset.cpus").read_text() == "0\n"  # CPU 0 always exists
    # The weight needs BFQ (or CFQ): the kernel's answer is the file in the parent group.
    offered = weight_files(ROOT / "blkio" / parent)
    if offered:
        assert (bg.group("blkio") / offered[0]).read_text().split()[-1] == "300"
        assert resources_of(bg.cli, "lim")["BlkioWeight"] == 300
    else:  # disks on none/mq-deadline: Docker's warning, 0 recorded, and it runs (above)
        assert weight_files(bg.group("blkio")) == []
        assert resources_of(bg.cli, "lim")["BlkioWeight"] == 0
    # From the host, the container's process is in the group in every hierarchy (joined
    # through `tasks`, one thread at a time: the whole process must have moved)...
    controllers = set(bg.state["Cgroup"]["Paths"])  # type: ignore[index]
    assert by_hierarchy(Path(f"/proc/{bg.pid}/cgroup").read_text(), controllers) \
        == {c: f"/{parent}/{bg.id}" for c in controllers}
    # ...so is a process `exec` starts in it...
    r = bg.cli("exec", "lim", "cat", "/proc/self/cgroup")
    assert by_hierarchy(r.stdout, controllers) == {c: "/" for c in controllers}, r.stderr
    code, out = bg.stop()
    # ...and from inside, its cgroup namespace makes that group its root.
    assert by_hierarchy(out, controllers) == {c: "/" for c in controllers}, out
    assert out.count(DOCKERS_WARNING) == (0 if offered else 1), out
    assert groups_of(bg.id, parent) == []


def test_the_trace_shows_the_weight_written_or_dropped(cli: CLI, parent: str) -> None:
    r = cli("run", "--rm", "--trace", "--cgroup-parent", parent, "--blkio-weight", "300",
            "--pids-limit", "9", "busybox", "true", check=True)
    assert '/pids.max", "9") = 1' in r.stderr  # the other limits hold either way
    offered = weight_files(ROOT / "blkio" / parent)
    if offered:
        assert f'/{offered[0]}", "300") = 3' in r.stderr
        assert DOCKERS_WARNING not in r.stderr
    else:
        assert "--blkio-weight 300 is discarded" in r.stderr
        assert r.stderr.count(DOCKERS_WARNING) == 1
        assert not any(f'/{name}", ' in r.stderr for name in WEIGHT_FILES)


def test_update_writes_the_weight_or_keeps_the_old_one_with_dockers_warning(
        cli: CLI, background, parent: str) -> None:
    bg = background("updw", "--cgroup-parent", parent, "busybox", "sleep", "60")
    r = cli("update", "--blkio-weight", "400", "--pids-limit", "9", "updw", check=True)
    assert r.stdout == "updw\n"
    assert (bg.group("pids") / "pids.max").read_text() == "9\n"
    offered = weight_files(bg.group("blkio"))
    if offered:
        assert (bg.group("blkio") / offered[0]).read_text().split()[-1] == "400"
        assert r.stderr == ""
    else:
        assert r.stderr == DOCKERS_WARNING + "\n"
    assert resources_of(cli, "updw")["BlkioWeight"] == (400 if offered else 0)
    assert resources_of(cli, "updw")["PidsLimit"] == 9


def test_cgroupns_host_shows_the_whole_path(cli: CLI, parent: str) -> None:
    r = cli("run", "--rm", "--cgroupns", "host", "--cgroup-parent", parent, "--pids-limit", "9",
            "busybox", "cat", "/proc/self/cgroup", check=True)
    assert f"pids:/{parent}/" in r.stdout


def test_every_container_gets_a_cgroup_and_joins_it_without_the_global_lock(cli: CLI) -> None:
    r = cli("run", "--rm", "--trace", "busybox", "cat", "/proc/self/cgroup", check=True)
    assert "== cgroup (made and limited before fork)" in r.stderr
    # v1: the child's one thread moves itself through `tasks` in every hierarchy, never
    # through cgroup.procs (which would wait for an RCU grace period).
    joins = [line for line in r.stderr.splitlines() if "[container]    write(" in line
             and "/minidocker/" in line]
    assert len(joins) == len(set(v1.hierarchies(str(ROOT)).values()))
    assert all('/tasks", "0") = 1' in line for line in joins), joins
    assert all(line.endswith(":/") for line in r.stdout.splitlines() if "devices" not in line
               and "name=" not in line and not line.startswith("0::")), r.stdout


def test_the_default_layout_and_the_trace(cli: CLI) -> None:
    r = cli("run", "--rm", "--trace", "-m", "64m", "busybox", "true", check=True)
    assert 'mkdir("/sys/fs/cgroup/memory/minidocker/' in r.stderr
    assert 'memory.limit_in_bytes", "67108864") = 8' in r.stderr
    assert '[container]    write("/sys/fs/cgroup/memory/minidocker/' in r.stderr
    assert 'rmdir("/sys/fs/cgroup/memory/minidocker/' in r.stderr
    cid = r.stderr.split("/sys/fs/cgroup/memory/minidocker/")[1].split('"')[0]
    assert groups_of(cid, "minidocker") == []


def test_a_memory_hog_is_oom_killed_at_the_limit(cli: CLI, parent: str) -> None:
    hog = 'BEGIN{for(i=0;;i++){a[i]=sprintf("%1048576s","")}}'
    r = cli("run", "--name", "hog", "--cgroup-parent", parent, "-m", "32m", "--memory-swap",
            "32m", "busybox", "awk", hog, timeout=60)
    assert r.returncode == 137, r.stderr
    state = state_of(cli, "hog")
    assert state["OOMKilled"] is True and state["ExitCode"] == 137


def test_a_clean_exit_is_not_an_oom(cli: CLI, parent: str) -> None:
    r = cli("run", "--name", "ok", "--cgroup-parent", parent, "-m", "32m", "busybox", "sh", "-c",
            "exit 137")  # 137, but not from the OOM killer
    assert r.returncode == 137
    assert state_of(cli, "ok")["OOMKilled"] is False


def test_pids_max_stops_a_fork_bomb(background, parent: str) -> None:
    bg = background("bomb", "--cgroup-parent", parent, "--pids-limit", "30", "busybox", "sh",
                    "-c", "(while :; do sleep 10 & done) 2>/dev/null & sleep 3")  # forks forever
    group = bg.group("pids")
    peak = 0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        peak = max(peak, int((group / "pids.current").read_text()))
        time.sleep(0.05)
    refused = int((group / "pids.events").read_text().split()[1])
    assert peak == 30, peak  # flattened at the limit
    assert refused > 0  # forks the limit refused
    code, _ = bg.stop()
    assert groups_of(bg.id, parent) == []


def test_a_cpu_quota_holds_usage_near_its_share(background, parent: str) -> None:
    bg = background("quota", "--cgroup-parent", parent, "--cpus", "0.5", "busybox", "sh", "-c",
                    "while :; do :; done")
    usage = bg.group("cpuacct") / "cpuacct.usage"
    time.sleep(0.3)
    u0, t0 = int(usage.read_text()), time.monotonic_ns()
    time.sleep(2)
    share = (int(usage.read_text()) - u0) / (time.monotonic_ns() - t0)
    # At most half a CPU; rarely much less, unless the two shared cores are very busy.
    assert 0.2 < share < 0.6, share


def test_pause_freezes_and_unpause_resumes(cli: CLI, background, parent: str) -> None:
    bg = background("frz", "--cgroup-parent", parent, "--pids-limit", "10", "busybox", "sh",
                    "-c", "while :; do :; done")
    usage = bg.group("cpuacct") / "cpuacct.usage"
    cli("pause", "frz", check=True)
    assert (bg.group("freezer") / "freezer.state").read_text() == "FROZEN\n"
    assert state_of(cli, "frz")["Status"] == "paused"
    u0 = int(usage.read_text())
    time.sleep(0.5)
    assert int(usage.read_text()) == u0  # frozen: not one nanosecond of CPU
    assert cli("pause", "frz").returncode == 125
    cli("unpause", "frz", check=True)
    time.sleep(0.5)
    assert int(usage.read_text()) > u0 + 100_000_000
    assert state_of(cli, "frz")["Status"] == "running"
    assert cli("unpause", "frz").returncode == 125


def test_a_paused_container_can_still_be_killed(cli: CLI, background, parent: str) -> None:
    bg = background("frzk", "--cgroup-parent", parent, "--pids-limit", "10", "busybox",
                    "sleep", "60")
    cli("pause", "frzk", check=True)
    os.kill(bg.pid, signal.SIGKILL)
    time.sleep(0.3)
    assert bg.popen.poll() is None  # frozen: the SIGKILL waits...
    cli("unpause", "frzk", check=True)  # ...until the group thaws
    assert bg.popen.wait(10) == 137
    assert groups_of(bg.id, parent) == []


def test_stats_agrees_with_the_cgroup_files(cli: CLI, background, parent: str) -> None:
    bg = background("st", "--cgroup-parent", parent, "-m", "64m", "--pids-limit", "20",
                    "busybox", "sh", "-c", "sleep 60 & sleep 60 & while :; do :; done")
    time.sleep(0.3)
    r = cli("stats", "--no-stream", "--format", "json", "--interval", "1", "st", check=True)
    row = json.loads(r.stdout)
    raw = row["Raw"]
    assert raw["memory_limit"] == 64 << 20 == int((bg.group("memory") /
                                                   "memory.limit_in_bytes").read_text())
    assert raw["pids"] == int((bg.group("pids") / "pids.current").read_text()) == 3
    assert row["PIDs"] == "3" and row["MemUsage"].endswith(" / 64MiB")
    assert raw["cpu_usage_ns"] <= int((bg.group("cpuacct") / "cpuacct.usage").read_text())
    assert 30 < raw["cpu_percent"] <= 101  # one busy loop: about one CPU
    table = cli("stats", "--no-stream", "--interval", "0.2", "st", check=True).stdout
    assert table.splitlines()[0].split()[:3] == ["CONTAINER", "ID", "NAME"]


def test_stats_counts_a_container_without_limits(cli: CLI, background) -> None:
    bg = background("plain", "busybox", "sh", "-c", "sleep 60 & sleep 60")
    group = ROOT / "pids" / "minidocker" / bg.id
    assert group.is_dir()  # from the start, as in Docker
    r = cli("stats", "--no-stream", "--format", "json", "--interval", "0.2", "plain", check=True)
    inside = sorted(map(int, (group / "cgroup.procs").read_text().split()))
    assert json.loads(r.stdout)["PIDs"] == str(len(inside)) == "2"  # sh execs the last sleep
    assert inside == sorted([bg.pid, *[int(p) for p in Path(
        f"/proc/{bg.pid}/task/{bg.pid}/children").read_text().split()]])
    bg.stop()
    assert not group.exists()


def test_update_changes_the_limits_of_a_running_container(cli: CLI, background,
                                                          parent: str) -> None:
    bg = background("upd", "--cgroup-parent", parent, "-m", "64m", "busybox", "sleep", "60")
    cli("update", "-m", "128m", "--memory-swap", "256m", "--pids-limit", "7", "--cpus", "1",
        "upd", check=True)
    assert (bg.group("memory") / "memory.limit_in_bytes").read_text() == f"{128 << 20}\n"
    if MEMSW:
        assert (bg.group("memory") / "memory.memsw.limit_in_bytes").read_text() \
            == f"{256 << 20}\n"
    assert (bg.group("pids") / "pids.max").read_text() == "7\n"
    assert (bg.group("cpu") / "cpu.cfs_quota_us").read_text() == "100000\n"
    config = json.loads((cli.root / "containers" / bg.id / "config.json").read_text())
    assert config["resources"]["Memory"] == 128 << 20
    r = cli("update", "-m", "512m", "upd")
    assert r.returncode == 125 and "memoryswap" in r.stderr


def test_leftover_processes_are_killed_when_the_container_exits(cli: CLI, parent: str) -> None:
    # With --pid host, PID 1's exit does not end the others: only the cgroup knows them.
    r = cli("run", "--rm", "--pid", "host", "--cgroup-parent", parent, "--pids-limit", "10",
            "busybox", "sh", "-c", "sleep 100 >/dev/null 2>&1 & echo $!", check=True)
    orphan = int(r.stdout)
    time.sleep(0.1)
    assert not Path(f"/proc/{orphan}").exists() or "Z" in Path(
        f"/proc/{orphan}/stat").read_text().split()[2]


@pytest.mark.parametrize("flags", [
    ["-m", "10x"], ["-m", "-5"], ["-m", "4m"], ["--cpus", str(CPUS + 1)],
    ["--cpuset-cpus", "0-x"],
    ["--cpu-shares", "-1"], ["--memory-swap", "10m"], ["--blkio-weight", "5"],
    ["--cgroup-parent", "../x"],
])
def test_bad_input_creates_nothing(cli: CLI, flags: list[str]) -> None:
    before = sorted(str(p) for p in ROOT.glob("*/minidocker/*") if p.is_dir())
    r = cli("run", "--rm", *flags, "busybox", "true")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("minidocker: ")
    assert not (cli.root / "containers").exists() or not os.listdir(cli.root / "containers")
    after = sorted(str(p) for p in ROOT.glob("*/minidocker/*") if p.is_dir())
    assert set(after) <= set(before)


def test_a_failed_start_leaves_no_cgroup(cli: CLI, parent: str) -> None:
    r = cli("run", "--rm", "--cgroup-parent", parent, "-m", "64m", "--pids-limit", "5",
            "busybox", "no-such-command")
    assert r.returncode == 127
    assert list(ROOT.glob(f"*/{parent}/*/")) == []


def test_a_cpuset_parent_another_run_has_not_filled_in_yet_is_filled(cli: CLI,
                                                                      parent: str) -> None:
    # Two containers started together: the first makes the parent and has not yet copied
    # cpuset.cpus/mems into it when the second finds it. Joining a group under it would fail
    # with ENOSPC unless the second fills the parent in too.
    made = ROOT / "cpuset" / parent
    made.mkdir()
    assert (made / "cpuset.mems").read_text().strip() == ""
    r = cli("run", "--rm", "--cgroup-parent", parent, "--cpuset-cpus", "0", "busybox", "cat",
            "/proc/self/status")
    assert r.returncode == 0, r.stderr
    assert "Cpus_allowed_list:\t0\n" in r.stdout
    assert (made / "cpuset.mems").read_text().strip() != ""
