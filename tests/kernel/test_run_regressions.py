"""Bugs found auditing issue 2 outside its bad-input item, each pinned by a test so that a
fixed bug stays fixed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, needs_root

pytestmark = [needs_root, pytest.mark.kernel]


def test_caller_fds_do_not_reach_the_container(cli: CLI, tmp_path: Path) -> None:
    (tmp_path / "host-only-file").write_text("secret\n")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = subprocess.run(
            cli.argv("run", "--rm", "busybox", "sh", "-c",
                     f"ls /proc/self/fd/{fd}/ 2>/dev/null; ls /proc/self/fd"),
            env=cli.env, pass_fds=(fd,), capture_output=True, text=True, timeout=60)
    finally:
        os.close(fd)
    assert result.returncode == 0, result.stderr
    assert "host-only-file" not in result.stdout, "the container listed a host directory"
    # 0, 1, 2, and the directory `ls` itself opened to list /proc/self/fd.
    assert len(result.stdout.split()) <= 4, result.stdout


@pytest.mark.parametrize("flag", ["--trace", "--trace-json"])
def test_init_can_be_traced(cli: CLI, tmp_path: Path, flag: str) -> None:
    trace = [flag] if flag == "--trace" else [flag, str(tmp_path / "trace.jsonl")]
    result = cli("run", "--rm", "--init", *trace, "busybox", "echo", "hello")
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout == "hello\n"


def test_init_without_trace_runs(cli: CLI) -> None:
    """The control for the test above."""
    result = cli("run", "--rm", "--init", "busybox", "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"


def test_run_d_traces_the_supervisors_start(cli: CLI, tmp_path: Path) -> None:
    """``run -d`` is started by the supervisor; --trace-json still records every step, the
    child's too, into the caller's file, and --trace prints them. A later untraced run adds
    nothing to the file (the supervisor's sink is gone), and no temporary file is left."""
    import json

    out = tmp_path / "trace.jsonl"
    result = cli("run", "-d", "--rm", "--name", "traced", "--trace-json", str(out),
                 "busybox", "sleep", "30")
    assert result.returncode == 0, result.stderr[-500:]
    events = [json.loads(line) for line in out.read_text().splitlines()]
    steps = [e["call"] for e in events if e["kind"] == "step"]
    assert {"cgroup", "fork", "rootfs", "exec"} <= set(steps), steps
    assert {e["where"] for e in events} == {"host", "container"}
    size = out.stat().st_size
    assert cli("run", "-d", "--rm", "busybox", "true").returncode == 0
    assert out.stat().st_size == size, "an untraced run -d wrote into the last traced run's file"

    before = set(os.listdir("/tmp"))
    printed = cli("run", "-d", "--rm", "--trace", "busybox", "true")
    assert printed.returncode == 0, printed.stderr[-500:]
    assert "== rootfs" in printed.stderr and "pivot_root(" in printed.stderr, printed.stderr[-500:]
    assert not {n for n in set(os.listdir("/tmp")) - before if n.startswith("minidocker-trace")}
    assert cli("rm", "-f", "traced").returncode == 0


def test_run_d_trace_json_to_a_path_it_cannot_write(cli: CLI, tmp_path: Path) -> None:
    result = cli("run", "-d", "--trace-json", str(tmp_path / "no" / "such" / "dir"),
                 "busybox", "true")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "No such file" in result.stderr
    assert cli("ps", "-aq").stdout == "", "nothing was created"
