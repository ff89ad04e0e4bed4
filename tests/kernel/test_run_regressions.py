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
