"""The lifecycle's record and rules, without root: status from the kernel, the lock, restart
policies, Docker's words for times and states, and teardown of a record."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from minidocker import container, lifecycle, state
from minidocker.errors import ContainerNotFound, NameConflict, UsageError

pytestmark = pytest.mark.nb09


def test_status_believes_the_kernel_not_the_record():
    me = {"Status": "running", "Pid": os.getpid(),
          "StartTime": lifecycle.process_start_time(os.getpid())}
    assert lifecycle.status(me) == "running"
    reused = dict(me, StartTime=me["StartTime"] - 1)  # same PID, another process
    assert lifecycle.status(reused) == "exited"
    assert lifecycle.exit_code(reused) == lifecycle.NO_EXIT_CODE


def test_a_dead_pid_is_exited_and_a_zombie_too():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = lifecycle.process_start_time(child.pid)
    deadline = 50
    while lifecycle.process_alive(child.pid, start) and deadline:
        time.sleep(0.02)
        deadline -= 1
    record = {"Status": "running", "Pid": child.pid, "StartTime": start}
    assert lifecycle.status(record) == "exited"  # a zombie until we reap it
    child.wait()
    assert lifecycle.status(record) == "exited"


def test_restarting_without_a_supervisor_is_exited():
    record = {"Status": "restarting", "ExitCode": 1}
    assert lifecycle.status(record, supervisor_alive=True) == "restarting"
    assert lifecycle.status(record, supervisor_alive=False) == "exited"


def test_created_and_exited_records_are_taken_as_written():
    assert lifecycle.status({}) == "created"
    assert lifecycle.status({"Status": "exited", "ExitCode": 3}) == "exited"
    assert lifecycle.exit_code({"Status": "exited", "ExitCode": 3}) == 3


@pytest.mark.parametrize(("text", "policy"), [
    ("no", {"Name": "no", "MaximumRetryCount": 0}),
    ("always", {"Name": "always", "MaximumRetryCount": 0}),
    ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
    ("on-failure", {"Name": "on-failure", "MaximumRetryCount": 0}),
    ("on-failure:3", {"Name": "on-failure", "MaximumRetryCount": 3}),
])
def test_restart_policies_parse(text, policy):
    assert lifecycle.parse_restart_policy(text) == policy


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x", "on-failure:-1",
                                  ":3", "", "ALWAYS"])
def test_bad_restart_policies_are_refused(text):
    with pytest.raises(UsageError, match="restart policy"):
        lifecycle.parse_restart_policy(text)


def test_should_restart():
    always = {"Name": "always"}
    on_failure = {"Name": "on-failure", "MaximumRetryCount": 2}
    assert lifecycle.should_restart(always, 0, 10, False)
    assert not lifecycle.should_restart(always, 0, 0, True)  # stopped by hand
    assert not lifecycle.should_restart({"Name": "no"}, 1, 0, False)
    assert lifecycle.should_restart(on_failure, 1, 1, False)
    assert not lifecycle.should_restart(on_failure, 1, 2, False)  # retries used up
    assert not lifecycle.should_restart(on_failure, 0, 0, False)  # success: done
    assert lifecycle.should_restart({"Name": "on-failure"}, 1, 99, False)  # no limit


def test_restart_delay_doubles_then_resets():
    delay = lifecycle.restart_delay(0, 0)
    assert delay == 0.1
    for _ in range(20):
        delay = lifecycle.restart_delay(delay, 0.5)
    assert delay == lifecycle.RESTART_DELAY_MAX
    assert lifecycle.restart_delay(delay, 11) == 0.1


def test_start_on_boot():
    assert lifecycle.start_on_boot({"Name": "always"}, {"ManuallyStopped": True})
    assert lifecycle.start_on_boot({"Name": "unless-stopped"}, {})
    assert not lifecycle.start_on_boot({"Name": "unless-stopped"}, {"ManuallyStopped": True})
    assert not lifecycle.start_on_boot({"Name": "on-failure"}, {})


@pytest.mark.parametrize(("seconds", "words"), [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (150, "2 minutes"), (3600, "About an hour"), (3 * 3600, "3 hours"),
    (3 * 86400, "3 days"), (20 * 86400, "2 weeks"), (90 * 86400, "3 months"),
    (800 * 86400, "2 years"),
])
def test_human_duration_is_dockers(seconds, words):
    assert lifecycle.human_duration(seconds) == words


def test_status_text():
    t0 = lifecycle.parse_time("2024-01-01T00:00:00Z")
    at = t0 + 5 * 60 * 10**9
    running = {"Status": "running", "StartedAt": "2024-01-01T00:00:00Z"}
    assert lifecycle.status_text(running, "running", at) == "Up 5 minutes"
    exited = {"Status": "exited", "ExitCode": 3, "StartedAt": "2024-01-01T00:00:00Z",
              "FinishedAt": "2024-01-01T00:04:58Z"}
    assert lifecycle.status_text(exited, "exited", at) == "Exited (3) 2 seconds ago"
    assert lifecycle.status_text({}, "created", at) == "Created"
    restarting = dict(exited, Status="restarting")
    assert lifecycle.status_text(restarting, "restarting", at) == "Restarting (3) 2 seconds ago"


def test_times_round_trip_with_nanoseconds():
    ns = 1_700_000_000_123_456_789
    assert lifecycle.format_time(ns) == "2023-11-14T22:13:20.123456789Z"
    assert lifecycle.parse_time(lifecycle.format_time(ns)) == ns
    assert lifecycle.format_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert lifecycle.format_time(1_700_000_000_000_000_000, fixed=True) == \
        "2023-11-14T22:13:20.000000000Z"
    assert lifecycle.parse_time("2023-11-14T23:13:20.5+01:00") == 1_700_000_000_500_000_000
    assert lifecycle.parse_time(lifecycle.ZERO_TIME) == 0


def test_loads_reads_what_state_dumps_writes():
    record = {"a": [1, 2, None, True, False], "b": "quote \" and é", "c": {"d": -3}}
    assert lifecycle.loads(state.dumps(record)) == record
    with pytest.raises(ValueError):
        lifecycle.loads('{"a": 1} trailing')
    with pytest.raises(ValueError):
        lifecycle.loads("")


def test_loads_of_broken_json_says_where_even_without_the_json_package():
    """The C scanner raises json's JSONDecodeError only once json.decoder is loaded; in a
    process that never imported json (minidocker-runtime reading a bad config.json) it used
    to fail with a SystemError instead."""
    code = ("import sys; from minidocker import state\n"
            "try:\n    state.loads('{nope')\n"
            "except ValueError as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out == ("JSONDecodeError Expecting property name enclosed in double quotes: line 1 "
                   "column 2 (char 1)\n")


# -- the record on disk ---------------------------------------------------------------------------

def _record(layout: state.Layout, name: str) -> str:
    cid = state.new_id()
    os.makedirs(layout.container(cid, "upper", "etc"))
    lifecycle.write(layout.container(cid), "config", {"id": cid, "name": name})
    layout.claim_name(name, cid)
    return cid


def test_update_state_merges_under_the_lock(tmp_path):
    layout = state.Layout(str(tmp_path))
    cdir = layout.container(_record(layout, "a"))
    lifecycle.update_state(cdir, Status="created", Created="x")
    record = lifecycle.update_state(cdir, Status="exited", ExitCode=2)
    assert record == {"Status": "exited", "Created": "x", "ExitCode": 2}
    assert lifecycle.read(cdir, "state") == record
    assert not [n for n in os.listdir(cdir) if ".tmp" in n]


def test_the_lock_is_reentrant_and_refuses_a_removed_container(tmp_path):
    layout = state.Layout(str(tmp_path))
    cid = _record(layout, "b")
    cdir = layout.container(cid)
    with lifecycle.locked(cdir), lifecycle.locked(cdir):
        pass
    container.teardown(layout, cid)
    with pytest.raises(ContainerNotFound), lifecycle.locked(cdir):
        pass


def test_the_lock_excludes_another_process(tmp_path):
    layout = state.Layout(str(tmp_path))
    cdir = layout.container(_record(layout, "c"))
    probe = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
             "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)")
    with lifecycle.locked(cdir):
        held = subprocess.run([sys.executable, "-c", probe, cdir], capture_output=True)
        assert held.returncode != 0 and b"BlockingIOError" in held.stderr
    assert subprocess.run([sys.executable, "-c", probe, cdir]).returncode == 0


def test_teardown_removes_record_and_name_and_is_idempotent(tmp_path):
    layout = state.Layout(str(tmp_path))
    cid = _record(layout, "web")
    keep = _record(layout, "other")
    container.teardown(layout, cid)
    assert lifecycle.list_ids(layout) == [keep]
    assert os.listdir(layout.names) == ["other"]
    assert os.listdir(layout.containers) == [keep]  # no .removing left either
    container.teardown(layout, cid)  # again: nothing to do, no error


def test_teardown_finishes_a_removal_that_died_half_way(tmp_path):
    layout = state.Layout(str(tmp_path))
    cid = _record(layout, "half")
    os.rename(layout.container(cid), os.path.join(layout.containers, f".{cid}.removing"))
    assert lifecycle.list_ids(layout) == []
    container.teardown(layout, cid)
    assert os.listdir(layout.containers) == [] and os.listdir(layout.names) == []


def test_a_name_left_by_a_removed_container_can_be_claimed(tmp_path):
    layout = state.Layout(str(tmp_path))
    os.makedirs(layout.names)
    os.symlink("0" * 64, os.path.join(layout.names, "web"))  # its container is gone
    cid = _record(layout, "web")
    assert os.readlink(os.path.join(layout.names, "web")) == cid
    with pytest.raises(NameConflict, match='"/web" is already in use'):
        layout.claim_name("web", state.new_id())
