"""Health checks on a real kernel: the supervisor runs each check in the container (through
the engine's exec), records State.Health, and kills a check past its timeout; ps and inspect
show the result. Intervals are sub-second (Docker's minimum is 1 ms), so these run fast."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from minidocker import procfs
from tests.conftest import CLI, needs_root
from tests.kernel.test_lifecycle import alive, inspect, run_d, supervisor_pid, wait_for

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb09]

FAST = ("--health-interval", "50ms")


def state_of(cli: CLI, ref: str) -> dict:
    result = cli("inspect", ref)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def health(cli: CLI, ref: str) -> dict:
    return state_of(cli, ref)["State"].get("Health") or {}


def ps_status(cli: CLI, ref: str) -> str:
    return cli("ps", "-a", "--filter", f"name={ref}", "--format", "{{.Status}}").stdout.strip()


def checks_of(root: Path) -> list[int]:
    """The health checks (the supervisor's forks) serving this state root, by process group:
    each check is a group of its own, and its fork into the container carries the same name
    and command line until it execs the command, so one check may be two processes."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        fields = procfs.stat_fields(int(pid))
        if comm == "md-healthcheck" and str(root) in cmdline and fields:
            found.add(int(fields[2]))  # proc(5) field 5, pgrp
    return sorted(found)


def in_container(cid_pid: int, argv: str) -> list[int]:
    """Live processes with command line ``argv`` in the PID namespace of ``cid_pid``."""
    ns = os.readlink(f"/proc/{cid_pid}/ns/pid")
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != ns:
                continue
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] not in "ZX" and cmdline.strip() == argv:
            found.append(int(pid))
    return found


def test_a_passing_check_makes_it_healthy(cli):
    cid = run_d(cli, "--name", "ok", "--health-cmd", "echo fine", *FAST, "busybox", "sleep", "60")
    wait_for(lambda: health(cli, cid).get("Status") == "healthy", what="healthy")
    found = health(cli, cid)
    assert found["FailingStreak"] == 0
    assert found["Log"][-1]["ExitCode"] == 0 and found["Log"][-1]["Output"] == "fine\n"
    assert ps_status(cli, "ok").endswith("(healthy)")
    assert cli("ps", "-q", "-f", "health=healthy").stdout.split() == [cid[:12]]
    assert cli("ps", "-q", "-f", "health=none").stdout.split() == []
    wait_for(lambda: len(health(cli, cid)["Log"]) == 5, what="five results")
    config = state_of(cli, cid)["Config"]["Healthcheck"]
    assert config == {"Test": ["CMD-SHELL", "echo fine"], "Interval": 50_000_000}


def test_before_the_first_check_it_is_starting(cli):
    cid = run_d(cli, "--name", "slow", "--health-cmd", "true", "--health-interval", "1h",
                "busybox", "sleep", "60")
    assert health(cli, cid) == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert ps_status(cli, "slow").endswith("(health: starting)")
    assert cli("ps", "-q", "-f", "health=starting").stdout.split() == [cid[:12]]


def test_a_failing_check_makes_it_unhealthy_after_the_retries(cli):
    cid = run_d(cli, "--name", "bad", "--health-cmd", "echo sick; exit 3", *FAST,
                "--health-retries", "3", "busybox", "sleep", "60")
    wait_for(lambda: health(cli, cid).get("FailingStreak", 0) >= 1, what="a failure")
    first = health(cli, cid)
    assert first["Status"] == ("starting" if first["FailingStreak"] < 3 else "unhealthy")
    wait_for(lambda: health(cli, cid).get("Status") == "unhealthy", what="unhealthy")
    found = health(cli, cid)
    assert found["FailingStreak"] >= 3
    assert {(r["ExitCode"], r["Output"]) for r in found["Log"]} == {(3, "sick\n")}
    assert ps_status(cli, "bad").endswith("(unhealthy)")
    assert cli("ps", "-q", "-f", "health=unhealthy").stdout.split() == [cid[:12]]


def test_a_check_past_its_timeout_is_killed_and_counts_as_failed(cli):
    cid = run_d(cli, "--health-cmd", "sleep 30", *FAST, "--health-timeout", "200ms",
                "--health-retries", "2", "busybox", "sleep", "60")
    wait_for(lambda: health(cli, cid).get("Status") == "unhealthy", what="unhealthy",
             timeout=20)
    found = health(cli, cid)
    assert found["Log"][0] == {**found["Log"][0], "ExitCode": -1,
                               "Output": "Health check exceeded timeout (200ms)"}
    pid = state_of(cli, cid)["State"]["Pid"]
    # Each killed check took its sleep along: at most the one in flight is left.
    assert len(in_container(pid, "sleep 30")) <= 1
    assert len(checks_of(cli.root)) <= 1
    assert cli("rm", "-f", cid).returncode == 0  # with a check in flight, maybe
    wait_for(lambda: not checks_of(cli.root), what="no check process left")


def test_a_command_that_cannot_run_is_a_failure_with_the_execs_error(cli, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nHEALTHCHECK --interval=50ms --retries=1 CMD [\"/no/such\"]\n")
    assert cli("build", "-q", "-t", "broken", str(tmp_path)).returncode == 0
    cid = run_d(cli, "broken", "sleep", "60")
    wait_for(lambda: health(cli, cid).get("Status") == "unhealthy", what="unhealthy")
    last = health(cli, cid)["Log"][-1]
    assert last["ExitCode"] == -1
    assert last["Output"] == 'exec: "/no/such": no such file or directory'
    plain = run_d(cli, "busybox", "sleep", "60")
    assert "Health" not in state_of(cli, plain)["State"]  # none asked, none in the image
    assert "Healthcheck" not in state_of(cli, plain)["Config"]


def test_an_image_built_with_healthcheck_and_no_healthcheck(cli, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nHEALTHCHECK --interval=50ms --retries=2 CMD [\"cat\", \"/ready\"]\n")
    built = cli("build", "-q", "-t", "checked", str(tmp_path))
    assert built.returncode == 0, built.stderr
    cid = run_d(cli, "checked", "sleep", "60")
    assert state_of(cli, cid)["Config"]["Healthcheck"] == {
        "Test": ["CMD", "cat", "/ready"], "Interval": 50_000_000, "Retries": 2}
    wait_for(lambda: health(cli, cid).get("Status") == "unhealthy", what="unhealthy")
    assert "No such file or directory" in health(cli, cid)["Log"][-1]["Output"]
    assert cli("exec", cid, "touch", "/ready").returncode == 0
    wait_for(lambda: health(cli, cid).get("Status") == "healthy", what="healthy again")
    # --health-* override one field at a time; --no-healthcheck turns the image's off
    over = run_d(cli, "--health-retries", "7", "checked", "sleep", "60")
    assert state_of(cli, over)["Config"]["Healthcheck"]["Retries"] == 7
    assert state_of(cli, over)["Config"]["Healthcheck"]["Test"] == ["CMD", "cat", "/ready"]
    off = run_d(cli, "--no-healthcheck", "checked", "sleep", "60")
    assert "Health" not in state_of(cli, off)["State"]
    assert state_of(cli, off)["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert cli("ps", "-q", "-f", "health=none").stdout.split() == [off[:12]]


def test_checks_stop_with_the_container_and_leave_nothing(cli):
    cid = run_d(cli, "--name", "short", "--health-cmd", "sleep 0.2", "--health-interval",
                "10ms", "busybox", "sleep", "60")
    wait_for(lambda: health(cli, cid).get("Status") == "healthy", what="healthy")
    assert cli("stop", "-t", "0", cid).returncode == 0
    wait_for(lambda: not checks_of(cli.root), what="no check process left")
    before = health(cli, cid)
    assert inspect(cli, cid, "{{.State.Status}}") == "exited"
    assert ps_status(cli, "short").startswith("Exited")
    time.sleep(0.3)
    assert health(cli, cid)["Log"] == before["Log"]  # nothing checked a stopped container
    assert cli("start", cid).returncode == 0
    after = health(cli, cid)  # a start starts over (a check may have passed since), the log kept
    assert after["Status"] in ("starting", "healthy") and after["FailingStreak"] == 0
    assert before["Log"][-1] in after["Log"]
    assert cli("rm", "-f", cid).returncode == 0
    wait_for(lambda: not checks_of(cli.root), what="no check process left")


def test_a_foreground_run_with_a_check_is_supervised(cli, tmp_path):
    result = cli("run", "--rm", "--health-cmd", "true", *FAST, "busybox",
                 "sh", "-c", "sleep 0.3; echo done; exit 4")
    assert (result.returncode, result.stdout) == (4, "done\n"), result.stderr
    assert "created" in (cli.root / "supervisor" / "log").read_text()
    # the image's HEALTHCHECK too; CMD-SHELL runs through the image's SHELL, as in Docker
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox\nSHELL ["/bin/echo", "said"]\nHEALTHCHECK --interval=50ms CMD hello\n')
    assert cli("build", "-q", "-t", "echoing", str(tmp_path)).returncode == 0
    fg = cli.popen("run", "--name", "fg", "echoing", "sleep", "60")
    try:
        wait_for(lambda: cli("ps", "-q", "-f", "name=fg", "-f", "health=healthy").stdout,
                 what="the foreground container checked")
        assert health(cli, "fg")["Log"][-1]["Output"] == "said hello\n"
    finally:
        cli("rm", "-f", "fg")
        assert fg.wait(timeout=10) == 137
    assert cli("run", "--rm", "--no-healthcheck", "echoing", "true").returncode == 0


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--health-interval", "100us", "Interval in Healthcheck cannot be less than 1ms"),
    ("--health-timeout", "-1s", "--health-timeout cannot be negative"),
    ("--health-start-period", "soon", "invalid duration"),
])
def test_bad_health_options_store_nothing(cli, flag, value, words):
    result = cli("run", "-d", "--health-cmd", "true", flag, value, "busybox", "true")
    assert result.returncode == 125, result.stderr
    assert len(result.stderr.splitlines()) == 1 and words in result.stderr, result.stderr
    assert cli("ps", "-aq").stdout == ""


def test_a_new_supervisor_resumes_the_checks_of_what_it_re_adopts(cli):
    cid = run_d(cli, "--health-cmd", "cat /ready", *FAST, "--health-retries", "1",
                "busybox", "sleep", "60")
    wait_for(lambda: health(cli, cid).get("Status") == "unhealthy", what="unhealthy")
    old = supervisor_pid(cli.root)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not alive(old), what="the supervisor's death")
    assert cli("exec", cid, "touch", "/ready").returncode == 0
    time.sleep(0.3)
    assert health(cli, cid)["Status"] == "unhealthy"  # nobody checks while none runs
    cli("start", cid, check=True)  # any command that needs a supervisor starts one
    wait_for(lambda: health(cli, cid).get("Status") == "healthy", what="checked again")
    assert health(cli, cid)["Log"][-1]["Output"] == ""


def test_a_paused_container_is_not_checked(cli):
    cid = run_d(cli, "--health-cmd", "true", *FAST, "busybox", "sleep", "60")
    wait_for(lambda: health(cli, cid).get("Status") == "healthy", what="healthy")
    assert cli("pause", cid).returncode == 0
    time.sleep(0.2)  # a check in flight ends (or times out) meanwhile
    before = health(cli, cid)["Log"]
    time.sleep(0.5)
    assert health(cli, cid)["Log"] == before
    assert cli("unpause", cid).returncode == 0
    wait_for(lambda: health(cli, cid)["Log"] != before, what="checked again")
    assert health(cli, cid)["Status"] == "healthy"
