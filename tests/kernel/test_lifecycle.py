"""Detached containers, the supervisor, and Docker's everyday commands, on the real kernel.

The issue's workflow first (run -d, ps, logs -f, stop, start -a, exec -it, rm -f), then each
command's options, restart policies, and the faults: ``kill -9`` of the supervisor while
containers run, ``kill -9`` of the CLI in the middle of a ``run``, and two CLIs racing for one
name. Every test uses its own state root; whatever it leaves running (containers, the
supervisor it started) is stopped by PID when it ends (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, default_groups, needs_root
from tests.ptyrun import PtyProcess

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb09]

LOOP = "while true; do echo hello world; sleep 0.2; done"


def run_d(cli: CLI, *args: str) -> str:
    """``run -d ARGS``; the full ID it prints."""
    result = cli("run", "-d", *args)
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), result.stdout
    return cid


def wait_for(check, timeout: float = 10, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def inspect(cli: CLI, ref: str, fmt: str) -> str:
    result = cli("inspect", "-f", fmt, ref)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def status(cli: CLI, ref: str) -> str:
    return inspect(cli, ref, "{{.State.Status}}")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def supervisor_pid(root: Path) -> int:
    return int((root / "supervisor" / "pid").read_text().split()[0])


# The calls the supervisor's loop waits in (selectors' epoll, or poll/select), by machine.
WAITS = {"x86_64": {7, 23, 232, 270, 271, 281, 441}, "aarch64": {22, 72, 73, 441}}


def kill_9_while_idle(pid: int, timeout: float = 30) -> None:
    """SIGKILL ``pid``, a supervisor, while it waits in its loop's epoll_wait.

    A kill -9 in the instant between reading a container's output and writing it to the log
    loses what it had read: no process can make that pair atomic. What the supervisor
    promises is that everything else survives it: the pipes are held by the keeper, and the
    next supervisor reads what was written meanwhile. So the process is stopped first, and
    killed only if it stopped inside its wait (``/proc/PID/syscall``), where it holds nothing
    unlogged; else it goes on and is tried again. The wider window of a slow (emulated)
    machine cannot make the test lose a line, and no sleep decides it."""
    import platform

    waits = WAITS[platform.machine()]
    deadline = time.monotonic() + timeout
    while True:
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                 in ("T", "t"), what="the supervisor to stop")
        call = Path(f"/proc/{pid}/syscall").read_text().split()[0]
        if call.isdigit() and int(call) in waits:
            os.kill(pid, signal.SIGKILL)
            return
        os.kill(pid, signal.SIGCONT)
        assert time.monotonic() < deadline, "the supervisor never stopped in its wait"
        time.sleep(0.01)


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("minidocker: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


# -- the workflow ---------------------------------------------------------------------

def test_the_everyday_workflow(cli):
    t0 = time.monotonic()
    cid = run_d(cli, "--name", "web", "busybox", "sh", "-c", LOOP)
    assert time.monotonic() - t0 < 10, "run -d must return at once"
    pid = int(inspect(cli, "web", "{{.State.Pid}}"))
    assert alive(pid), "the container keeps running after the CLI exited"

    ps = cli("ps", check=True).stdout.splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                             "PORTS", "NAMES"]
    assert ps[1].startswith(cid[:12]) and ps[1].endswith("web") and " Up " in ps[1]

    wait_for(lambda: "hello world" in cli("logs", "web").stdout, what="a logged line")
    follow = cli.popen("logs", "-f", "web", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == "hello world\n"
        stopped = cli("stop", "-t", "1", "web")  # sh as PID 1 ignores SIGTERM: SIGKILL at 1 s
        assert stopped.returncode == 0 and stopped.stdout == "web\n", stopped.stderr
        follow.wait(timeout=10)  # logs -f ends once the container stops
    finally:
        follow.kill()
        follow.wait()
    assert not alive(pid)
    assert cli("ps", "-a", "--format", "{{.Names}} {{.Status}}", check=True).stdout \
        .startswith("web Exited (137) ")
    assert inspect(cli, "web", "{{.State.ExitCode}} {{.State.Running}}") == "137 false"

    attached = cli.popen("start", "-a", "web", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert attached.stdout is not None
        assert attached.stdout.readline() == "hello world\n"
        session = PtyProcess(cli.argv("exec", "-it", "web", "sh"), cli.env)
        try:
            session.send(b"echo $((6*7)) $(cat /proc/1/cmdline | tr '\\0' ' '); exit 3\n")
            out, code = session.finish()
        finally:
            session.close()
        assert code == 3
        assert "42 sh -c " + LOOP in out
        cli("stop", "-t", "1", "web", check=True)
        assert attached.wait(timeout=10) == 137  # start -a exits with the container's code
    finally:
        attached.kill()
        attached.wait()

    run_d(cli, "--name", "other", "busybox", "sleep", "60")
    cli("start", "web", check=True)
    pids = [int(inspect(cli, name, "{{.State.Pid}}")) for name in ("web", "other")]
    assert cli("rm", "-f", "web", "other", check=True).stdout.split() == ["web", "other"]
    assert not any(alive(pid) for pid in pids)
    assert cli("ps", "-aq", check=True).stdout == ""
    assert os.listdir(cli.root / "containers") == [] and os.listdir(cli.root / "names") == []


# -- logs -------------------------------------------------------------------------------------

def test_logs_keep_the_streams_apart_and_filter_by_time(cli):
    run_d(cli, "--name", "lbox", "busybox", "sh", "-c",
          "echo out; echo err >&2; sleep 1.5; echo late")
    assert cli("wait", "lbox", check=True).stdout == "0\n"
    logs = cli("logs", "lbox", check=True)
    assert logs.stdout == "out\nlate\n" and logs.stderr == "err\n"
    assert cli("logs", "--tail", "1", "lbox", check=True).stdout == "late\n"
    assert cli("logs", "--tail", "0", "lbox", check=True).stdout == ""
    stamped = cli("logs", "-t", "lbox", check=True).stdout.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z out", stamped[0]), stamped
    from minidocker.lifecycle import format_time, parse_time

    times = [parse_time(line.split()[0]) for line in stamped]  # "out", "late": 1.5 s apart
    middle = format_time((times[0] + times[1]) // 2)
    since = cli("logs", "--since", middle, "lbox", check=True)
    assert since.stdout == "late\n" and since.stderr == ""
    until = cli("logs", "--until", middle, "lbox", check=True)
    assert until.stdout == "out\n" and until.stderr == "err\n"
    path = Path(inspect(cli, "lbox", "{{.LogPath}}"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["stream"], r["log"]) for r in records] == \
        [("stdout", "out\n"), ("stderr", "err\n"), ("stdout", "late\n")]
    assert all(re.fullmatch(r".*T.*Z", r["time"]) for r in records)


def test_a_tty_container_logs_its_terminal_output(cli):
    run_d(cli, "-t", "--name", "tbox", "busybox", "sh", "-c", "echo hi; tty; sleep 0.3")
    assert cli("wait", "tbox", check=True).stdout == "0\n"
    logs = subprocess.run(cli.argv("logs", "tbox"), env=cli.env, capture_output=True,
                          check=True)  # bytes: the terminal's \r\n must be seen as it is
    assert logs.stdout == b"hi\r\n/dev/pts/0\r\n" and logs.stderr == b""
    assert inspect(cli, "tbox", "{{.Config.Tty}}") == "true"


# -- ps, inspect, names, IDs ------------------------------------------------------------------

def test_ps_options(cli):
    created = cli("create", "--name", "c1", "busybox", "true", check=True).stdout.strip()
    exited = run_d(cli, "--name", "e1", "busybox", "true")
    cli("wait", "e1", check=True)
    running = run_d(cli, "--name", "r1", "busybox", "sleep", "60")
    assert cli("ps", "-q", check=True).stdout.split() == [running[:12]]
    assert cli("ps", "-aq", check=True).stdout.split() == \
        [running[:12], exited[:12], created[:12]]  # newest first
    assert cli("ps", "-aq", "--no-trunc", check=True).stdout.split() == \
        [running, exited, created]
    assert cli("ps", "-q", "-n", "2", check=True).stdout.split() == [running[:12], exited[:12]]
    assert cli("ps", "-q", "-l", check=True).stdout.split() == [running[:12]]
    assert cli("ps", "-aq", "-f", "status=exited", check=True).stdout.split() == [exited[:12]]
    assert cli("ps", "-aq", "-f", "status=created", "-f", "status=running",
               check=True).stdout.split() == [running[:12], created[:12]]
    assert cli("ps", "-aq", "-f", "name=1", "-f", "status=created",
               check=True).stdout.split() == [created[:12]]
    assert cli("ps", "-aq", "-f", f"id={exited[:6]}", check=True).stdout.split() == \
        [exited[:12]]
    assert cli("ps", "-a", "--format", "{{.Names}}:{{.State}}", check=True).stdout.split() == \
        ["r1:running", "e1:exited", "c1:created"]
    table = cli("ps", "--format", "table {{.ID}}\t{{.Names}}", check=True).stdout.splitlines()
    assert table == ["CONTAINER ID   NAMES", f"{running[:12]}   r1"]
    statuses = cli("ps", "-a", "--format", "{{.Status}}", check=True).stdout.splitlines()
    assert statuses[0].startswith("Up ") and statuses[1].startswith("Exited (0) ") and \
        statuses[2] == "Created"


def test_inspect_shows_dockers_fields(cli):
    cid = run_d(cli, "--name", "ibox", "--restart", "on-failure:3", "busybox", "sleep", "60")
    [doc] = json.loads(cli("inspect", "ibox", check=True).stdout)
    assert doc["Id"] == cid and doc["Name"] == "/ibox"
    state = doc["State"]
    assert state["Status"] == "running" and state["Running"] is True
    assert alive(state["Pid"]) and state["ExitCode"] == 0 and state["Error"] == ""
    assert state["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert doc["Config"]["Cmd"] == ["sleep", "60"] and doc["Config"]["Image"] == "busybox"
    for key in ("Created", "Mounts", "NetworkSettings", "GraphDriver", "LogPath"):
        assert key in doc
    ns = os.readlink(f"/proc/{state['Pid']}/ns/pid")
    assert ns != os.readlink("/proc/self/ns/pid")
    assert inspect(cli, cid[:12], "{{json .State.Running}}") == "true"


def test_ids_resolve_by_any_unambiguous_prefix(cli):
    ids = [cli("create", "busybox", "true", check=True).stdout.strip() for _ in range(20)]
    first = {}
    for cid in ids:
        first.setdefault(cid[0], []).append(cid)
    shared = next(group for group in first.values() if len(group) > 1)  # 20 IDs, 16 digits
    result = cli("inspect", "-f", "{{.Id}}", shared[0][0])
    one_line_error(result, 1, "multiple containers match")
    for cid in shared:
        assert cid[:12] in result.stderr
    unique = next(cid for cid in ids
                  if sum(other.startswith(cid[:3]) for other in ids) == 1)
    assert inspect(cli, unique[:3], "{{.Id}}") == unique


def test_names_are_unique_and_rename_moves_one(cli):
    run_d(cli, "--name", "abox", "busybox", "sleep", "60")
    one_line_error(cli("run", "-d", "--name", "abox", "busybox", "true"), 125,
                   '"/abox" is already in use')
    cli("rename", "abox", "bbox", check=True)
    assert cli("ps", "--format", "{{.Names}}", check=True).stdout == "bbox\n"
    run_d(cli, "--name", "abox", "busybox", "true")  # the old name is free again
    one_line_error(cli("rename", "bbox", "abox"), 1, '"/abox" is already in use')
    one_line_error(cli("rename", "bbox", "bbox"), 1, "same name")
    one_line_error(cli("rename", "bbox", "bad name"), 125, "invalid container name")


# -- stop, kill, restart, wait, top ---------------------------------------------------------------

def test_stop_sends_sigterm_first_then_sigkill(cli):
    run_d(cli, "--name", "polite", "busybox", "sh", "-c",
          "trap 'echo got TERM; exit 3' TERM; while true; do sleep 0.1; done")
    run_d(cli, "--name", "deaf", "busybox", "sleep", "60")  # PID 1 without a handler
    t0 = time.monotonic()
    assert cli("stop", "polite", check=True).stdout == "polite\n"
    assert time.monotonic() - t0 < 5
    assert inspect(cli, "polite", "{{.State.ExitCode}}") == "3"
    assert "got TERM" in cli("logs", "polite").stdout
    t0 = time.monotonic()
    cli("stop", "-t", "1", "deaf", check=True)
    assert 1 <= time.monotonic() - t0 < 8
    assert inspect(cli, "deaf", "{{.State.ExitCode}}") == "137"


def test_stop_signal_is_recorded_and_sent_first(cli):
    """--stop-signal wins over the image's STOPSIGNAL (busybox's is unset: SIGTERM), for a
    detached container and for one in the foreground of another `run`."""
    trap = "trap 'echo got USR1; exit 3' USR1; echo ready; while true; do sleep 0.1; done"
    run_d(cli, "--name", "usr1", "--stop-signal", "SIGUSR1", "busybox", "sh", "-c", trap)
    assert inspect(cli, "usr1", "{{.Config.StopSignal}}") == "SIGUSR1"
    wait_for(lambda: "ready" in cli("logs", "usr1").stdout, what="the trap")
    cli("stop", "usr1", check=True)
    assert inspect(cli, "usr1", "{{.State.ExitCode}}") == "3"
    assert "got USR1" in cli("logs", "usr1").stdout
    fg = cli.popen("run", "--name", "fgusr1", "--stop-signal", "10", "busybox", "sh", "-c", trap,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert fg.stdout is not None and fg.stdout.readline() == "ready\n"
        assert inspect(cli, "fgusr1", "{{.Config.StopSignal}}") == "10"
        cli("stop", "fgusr1", check=True)
        assert fg.wait(timeout=10) == 3
        assert fg.stdout.read() == "got USR1\n"
    finally:
        fg.kill()
        fg.wait()
    one_line_error(cli("run", "--rm", "--stop-signal", "NOPE", "busybox", "true"), 125,
                   "invalid signal: NOPE")


def test_kill_delivers_the_signal_it_is_given(cli):
    run_d(cli, "--name", "kbox", "busybox", "sh", "-c",
          "trap 'echo got USR1' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)  # let the shell install its trap
    assert cli("kill", "-s", "USR1", "kbox", check=True).stdout == "kbox\n"
    wait_for(lambda: "got USR1" in cli("logs", "kbox").stdout, what="the trap")
    assert status(cli, "kbox") == "running"
    cli("kill", "kbox", check=True)
    assert status(cli, "kbox") == "exited"
    assert inspect(cli, "kbox", "{{.State.ExitCode}}") == "137"
    one_line_error(cli("kill", "kbox"), 1, "is not running")
    one_line_error(cli("kill", "-s", "NOPE", "kbox"), 1, "invalid signal")


def test_restart_and_wait(cli):
    # The container ends when the test says so (a file it waits for, made by `exec`), not
    # after a fixed sleep: under emulation `restart` alone took longer than a 0.3 s sleep.
    script = "rm -f /go; while [ ! -e /go ]; do sleep 0.05; done; exit 5"
    run_d(cli, "--name", "wbox", "busybox", "sh", "-c", script)
    cli("exec", "wbox", "touch", "/go", check=True)
    assert cli("wait", "wbox", check=True).stdout == "5\n"
    pid = int(inspect(cli, "wbox", "{{.State.Pid}}") or 0)
    assert pid == 0
    cli("restart", "wbox", check=True)
    assert status(cli, "wbox") == "running"
    cli("exec", "wbox", "touch", "/go", check=True)
    assert cli("wait", "wbox", check=True).stdout == "5\n"


def test_top_lists_the_containers_processes(cli):
    # Both in the background: a busybox built with FEATURE_SH_NOFORK (Ubuntu's) runs a
    # foreground sleep inside the shell, where `top` would not see it.
    run_d(cli, "--name", "tp", "busybox", "sh", "-c", "sleep 60 & sleep 61 & wait")
    def processes():
        return [line.split(None, 7)[-1] for line in cli("top", "tp").stdout.splitlines()[1:]]

    wait_for(lambda: len(processes()) == 3, what="sh and two sleeps")
    assert sorted(processes()) == ["sh -c sleep 60 & sleep 61 & wait", "sleep 60", "sleep 61"]
    assert cli("top", "tp", check=True).stdout.split()[:3] == ["UID", "PID", "PPID"]


# -- restart policies -----------------------------------------------------------------------------

def test_on_failure_restarts_up_to_its_limit(cli):
    run_d(cli, "--name", "fbox", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 4")
    wait_for(lambda: inspect(cli, "fbox", "{{.RestartCount}} {{.State.Status}}") == "2 exited",
             what="two restarts then exited")
    assert inspect(cli, "fbox", "{{.State.ExitCode}}") == "4"


def test_always_restarts_until_stopped_by_hand(cli):
    run_d(cli, "--name", "abox", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2")
    wait_for(lambda: int(inspect(cli, "abox", "{{.RestartCount}}")) >= 2, what="restarts")
    cli("stop", "-t", "1", "abox", check=True)
    count = inspect(cli, "abox", "{{.RestartCount}}")
    time.sleep(1.5)
    assert status(cli, "abox") == "exited" and inspect(cli, "abox", "{{.RestartCount}}") == count


def test_a_foreground_run_with_a_restart_policy_attaches(cli):
    result = cli("run", "--name", "fg", "--restart", "on-failure:1", "busybox", "sh", "-c",
                 "echo once; exit 2")
    assert result.returncode == 2 and result.stdout == "once\n", result.stderr
    wait_for(lambda: inspect(cli, "fg", "{{.RestartCount}} {{.State.Status}}") == "1 exited",
             what="its one restart")


# -- attach ----------------------------------------------------------------------------------------

def test_attach_with_a_terminal_and_the_detach_keys(cli):
    run_d(cli, "-it", "--name", "sh", "busybox", "sh")
    session = PtyProcess(cli.argv("attach", "sh"), cli.env)
    try:
        session.send(b"echo $((6*7))\n")
        assert b"42" in session.read_until(b"42")
        session.send(b"\x10\x11")  # ctrl-p ctrl-q
        _, code = session.finish()
    finally:
        session.close()
    assert code == 0
    assert status(cli, "sh") == "running"


def test_attach_relays_stdin_and_returns_the_exit_code(cli):
    run_d(cli, "-i", "--name", "cat", "busybox", "cat")
    attached = cli.popen("attach", "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out, err = attached.communicate("hello\n", timeout=20)  # our EOF ends cat's stdin
    assert out == "hello\n" and attached.returncode == 0, err
    assert status(cli, "cat") == "exited"


@pytest.mark.parametrize("proxy", [True, False], ids=["sig-proxy", "no-sig-proxy"])
def test_attach_proxies_signals(cli, proxy):
    run_d(cli, "--name", "pbox", "busybox", "sh", "-c",
          "trap 'echo got USR1; exit 4' USR1; echo ready; while true; do echo tick; sleep 0.1; "
          "done")
    wait_for(lambda: "ready" in cli("logs", "pbox").stdout, what="the trap")
    attached = cli.popen("attach", f"--sig-proxy={str(proxy).lower()}", "pbox",
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Attached once the container's output comes through it (the client installs its
        # forwarding handlers before it relays anything): not after a guessed second, which
        # under emulation was too short for the client even to start.
        assert select.select([attached.stdout], [], [], 30)[0], "attach relayed nothing"
        assert attached.stdout is not None and attached.stdout.readline() == "tick\n"
        attached.send_signal(signal.SIGUSR1)
        code = attached.wait(timeout=10)
    finally:
        attached.kill()
        attached.wait()
    if proxy:
        assert code == 4 and status(cli, "pbox") == "exited"
    else:
        assert code == -signal.SIGUSR1 and status(cli, "pbox") == "running"


def test_attach_to_a_stopped_container_is_refused(cli):
    cli("create", "--name", "sbox", "busybox", "true", check=True)
    one_line_error(cli("attach", "sbox"), 1, "cannot attach to a stopped container")


# -- exec ------------------------------------------------------------------------------------------

def test_exec_joins_every_namespace_of_the_container(cli):
    run_d(cli, "--name", "xbox", "busybox", "sleep", "60")
    pid = int(inspect(cli, "xbox", "{{.State.Pid}}"))
    kinds = ["pid", "mnt", "uts", "ipc", "net", "cgroup", "user"]
    inside = cli("exec", "xbox", "sh", "-c", "; ".join(f"readlink /proc/self/ns/{k}"
                                                    for k in kinds), check=True).stdout.split()
    assert inside == [os.readlink(f"/proc/{pid}/ns/{k}") for k in kinds]
    # The same cgroup as its PID 1, seen through the same cgroup namespace.
    assert cli("exec", "xbox", "cat", "/proc/self/cgroup", check=True).stdout == \
        cli("exec", "xbox", "cat", "/proc/1/cgroup", check=True).stdout
    assert cli("exec", "xbox", "sh", "-c", "echo $$", check=True).stdout.strip() != "1"
    # ...and is confined as the container is: the same capabilities and seccomp filter.
    confinement = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|Seccomp|NoNewPrivs):' /proc/{}/status"
    assert cli("exec", "xbox", "sh", "-c", confinement.format("self"), check=True).stdout == \
        cli("exec", "xbox", "sh", "-c", confinement.format(1), check=True).stdout


def test_exec_joins_the_containers_cgroup(cli):
    run_d(cli, "--name", "limited", "-m", "64m", "busybox", "sleep", "60")
    pid = int(inspect(cli, "limited", "{{.State.Pid}}"))
    host_view = cli("exec", "-d", "limited", "sleep", "30")
    assert host_view.returncode == 0, host_view.stderr
    sleeper = wait_for(lambda: [p for p in os.listdir("/proc") if p.isdigit()
                                and _cmdline(p) == "sleep 30"
                                and _in_root_namespace(p, cli.root)], what="the exec'd sleep")
    with open(f"/proc/{pid}/cgroup") as f, open(f"/proc/{sleeper[0]}/cgroup") as g:
        assert g.read() == f.read(), "the exec'd process must be in the container's cgroup"
    assert "memory" in inspect(cli, "limited", "{{json .HostConfig}}").lower()
    cid = inspect(cli, "limited", "{{.Id}}")
    record = json.loads((cli.root / "containers" / cid / "state.json").read_text())
    groups = list(record["Cgroup"]["Paths"].values())
    assert groups and all(os.path.isdir(g) for g in groups)
    cli("rm", "-f", "limited", check=True)
    assert not any(os.path.exists(g) for g in groups), "rm -f must remove its cgroup"


def test_a_supervisor_stopping_still_records_and_releases_what_ended(cli):
    from minidocker import client, state

    run_d(cli, "--name", "ending", "-m", "32m", "busybox", "sleep", "60")
    cid = inspect(cli, "ending", "{{.Id}}")
    record = json.loads((cli.root / "containers" / cid / "state.json").read_text())
    groups = list(record["Cgroup"]["Paths"].values())
    os.kill(record["Pid"], signal.SIGKILL)
    wait_for(lambda: not alive(record["Pid"]), what="its death")
    assert client.stop_supervisor(state.Layout(str(cli.root)))
    assert inspect(cli, "ending", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    assert not any(os.path.exists(g) for g in groups)


def test_exec_options(cli):
    run_d(cli, "--name", "xbox", "-e", "FROM_RUN=1", "busybox", "sleep", "60")
    out = cli("exec", "-e", "A=2", "-u", "nobody", "-w", "/tmp", "xbox", "sh", "-c",
              "echo $A $FROM_RUN $(id -un) $(pwd) $HOME", check=True).stdout
    assert out.split()[:4] == ["2", "1", "nobody", "/tmp"]
    assert cli("exec", "-i", "xbox", "cat", input="piped\n", check=True).stdout == "piped\n"
    assert cli("exec", "xbox", "cat", input="ignored\n", check=True).stdout == ""  # no -i
    detached = cli("exec", "-d", "xbox", "sh", "-c", "sleep 0.2; echo done > /tmp/d")
    assert detached.returncode == 0 and detached.stdout == ""
    wait_for(lambda: cli("exec", "xbox", "cat", "/tmp/d").stdout == "done\n", what="exec -d")
    assert cli("exec", "xbox", "sh", "-c", "exit 9").returncode == 9
    one_line_error(cli("exec", "xbox", "no-such-command"), 127, "executable file not found")
    one_line_error(cli("exec", "-w", "/no/such/dir", "xbox", "true"), 126, "/no/such/dir")
    one_line_error(cli("exec", "-u", "nobody:nogroupatall", "xbox", "true"), 125, "nogroupatall")


def test_exec_works_on_a_foreground_run_from_another_terminal(cli):
    fg = cli.popen("run", "--name", "fg", "busybox", "sh", "-c", "echo up; sleep 60",
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert fg.stdout is not None and fg.stdout.readline() == "up\n"
        assert "fg" in cli("ps", "--format", "{{.Names}}", check=True).stdout
        assert cli("exec", "fg", "hostname", check=True).stdout.strip() == \
            inspect(cli, "fg", "{{.Config.Hostname}}")
        cli("stop", "-t", "1", "fg", check=True)
        assert fg.wait(timeout=10) == 137
    finally:
        fg.kill()
        fg.wait()
    assert inspect(cli, "fg", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"


# -- prune -----------------------------------------------------------------------------------------

def test_container_prune_removes_only_stopped_containers(cli):
    keep = run_d(cli, "--name", "keep", "busybox", "sleep", "60")
    gone = [run_d(cli, "busybox", "true"), cli("create", "busybox", "true",
                                                check=True).stdout.strip()]
    cli("wait", gone[0], check=True)
    out = cli("container", "prune", "-f", check=True).stdout
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space:" in out
    assert sorted(out.split()[2:4]) == sorted(gone)
    assert cli("ps", "-aq", "--no-trunc", check=True).stdout.split() == [keep]


# -- faults ----------------------------------------------------------------------------------------

def test_kill_9_of_the_supervisor_while_containers_run(cli):
    """They keep running; a new supervisor re-adopts them: logs carry on, none lost."""
    run_d(cli, "--name", "talk", "busybox", "sh", "-c",
          "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.05; done")
    run_d(cli, "-t", "--name", "tty", "busybox", "sh", "-c", "while true; do echo t; "
                                                             "sleep 0.1; done")
    run_d(cli, "--name", "quiet", "busybox", "sleep", "60")
    pids = {name: int(inspect(cli, name, "{{.State.Pid}}")) for name in ("talk", "tty", "quiet")}
    old = supervisor_pid(cli.root)
    time.sleep(0.5)
    kill_9_while_idle(old)
    wait_for(lambda: not alive(old), what="the supervisor's death")
    time.sleep(1)  # they write into their pipes meanwhile, with no reader
    assert all(alive(pid) for pid in pids.values()), "containers must outlive the supervisor"
    assert cli("ps", "--format", "{{.Names}} {{.State}}", check=True).stdout.split() == \
        ["quiet", "running", "tty", "running", "talk", "running"]
    cli("start", "quiet", check=True)  # any command that needs a supervisor starts one
    new = supervisor_pid(cli.root)
    assert new != old and alive(new)
    log = (cli.root / "supervisor" / "log").read_text()
    assert all(f"re-adopted {inspect(cli, n, '{{.Id}}')[:12]}" in log for n in pids)
    time.sleep(1)
    numbers = [int(line.split()[1]) for line in cli("logs", "talk").stdout.splitlines()]
    assert numbers == list(range(1, len(numbers) + 1)), "a line was lost or repeated"
    assert len(numbers) > 40, "logging must have carried on across the crash"
    assert cli("logs", "--tail", "1", "tty").stdout == "t\n"  # \r\n, read as text
    cli("stop", "-t", "1", "talk", check=True)
    # Not its parent any more: the exit code is unknown, and says why.
    assert inspect(cli, "talk", "{{.State.Status}} {{.State.ExitCode}}") == "exited 255"
    assert "restarted" in inspect(cli, "talk", "{{.State.Error}}")
    cli("rm", "-f", "tty", "quiet", "talk", check=True)
    assert not any(alive(pid) for pid in pids.values())


def test_a_container_that_dies_while_no_supervisor_runs_is_reported(cli):
    run_d(cli, "--name", "short", "--restart", "no", "busybox", "sleep", "1")
    os.kill(supervisor_pid(cli.root), signal.SIGKILL)
    time.sleep(2)
    assert inspect(cli, "short", "{{.State.Status}} {{.State.ExitCode}}") == "exited 255"
    assert cli("ps", "-q", check=True).stdout == ""
    # Nobody was there to remove its cgroup: `rm` (or the next supervisor) does.
    cid = inspect(cli, "short", "{{.Id}}")
    cli("rm", "short", check=True)
    assert default_groups(cid) == []


def test_a_supervisor_killed_before_it_answers_run_d_is_reported(cli):
    """The supervisor dies after it started the container and before its answer (a kill -9
    at the worst moment): the client asks a new one, which re-adopted the container, and
    prints the ID as `run -d` does, with a warning saying what happened."""
    cli.env["MINIDOCKER_TEST_CRASH_BEFORE_REPLY"] = "1"
    result = cli("run", "-d", "--name", "orphan", "busybox", "sleep", "60")
    del cli.env["MINIDOCKER_TEST_CRASH_BEFORE_REPLY"]
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    assert re.fullmatch("[0-9a-f]{64}", cid), result.stdout
    assert result.stderr == (f"minidocker: warning: the supervisor ended before it answered; "
                             f"container {cid[:12]} is running, and a new supervisor looks "
                             "after it\n")
    assert inspect(cli, "orphan", "{{.Id}} {{.State.Status}}") == f"{cid} running"
    os.kill(supervisor_pid(cli.root), signal.SIGKILL)  # the new one inherited the crash flag
    cli("rm", "-f", "orphan", check=True)


def test_a_supervisor_killed_before_it_read_run_d_is_reported(cli):
    """The supervisor is stopped (SIGSTOP) and then killed while `run -d`'s request waits
    in its socket: nothing was made, and the client says so in one line."""
    run_d(cli, "--name", "first", "busybox", "sleep", "60")  # a supervisor to stop
    pid = supervisor_pid(cli.root)
    sock = str(cli.root / "supervisor" / "sock")
    os.kill(pid, signal.SIGSTOP)
    try:
        client = cli.popen("run", "-d", "--name", "never", "busybox", "sleep", "60",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def waiting() -> bool:  # the request sits in the stopped listener's backlog
            listing = subprocess.run(["ss", "-xlH"], capture_output=True, text=True).stdout
            return any(line.split()[2] != "0" for line in listing.splitlines()
                       if sock in line.split())

        wait_for(waiting, what="the request in the listener's queue")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.kill(pid, signal.SIGCONT)
    out, err = client.communicate(timeout=30)
    assert client.returncode == 125, err
    assert out == "" and err.startswith("minidocker: the supervisor ended before it answered: "
                                        "container ") and err.count("\n") == 1, err
    assert err.endswith("was not made, and nothing was created\n")
    assert cli("ps", "-a", "--format", "{{.Names}}", check=True).stdout == "first\n"
    cli("rm", "-f", "first", check=True)


def test_a_new_supervisor_restarts_what_died_while_none_ran(cli):
    """--restart always: a container that died while no supervisor ran (a crash, a reboot)
    is started again by the next one; unless-stopped, stopped by hand, is not."""
    run_d(cli, "--name", "always", "--restart", "always", "busybox", "sleep", "60")
    run_d(cli, "--name", "stopped", "--restart", "unless-stopped", "busybox", "sleep", "60")
    cli("stop", "-t", "1", "stopped", check=True)
    pid = int(inspect(cli, "always", "{{.State.Pid}}"))
    os.kill(supervisor_pid(cli.root), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the container's death")
    assert status(cli, "always") == "exited"
    cli("start", "stopped", check=True)  # starts a supervisor (and this one, by hand)
    wait_for(lambda: status(cli, "always") == "running", what="its restart")
    assert int(inspect(cli, "always", "{{.State.Pid}}")) != pid
    cli("stop", "-t", "1", "stopped", check=True)
    os.kill(supervisor_pid(cli.root), signal.SIGKILL)
    cli("ps", check=True)
    cli("start", "always", check=True)  # a new supervisor again
    time.sleep(0.5)
    assert status(cli, "stopped") == "exited"  # stopped by hand: stays stopped


def test_kill_9_of_run_leaves_a_record_that_is_not_running(cli):
    """The foreground container dies with its CLI (by design); nothing leaks, and the record
    never claims it runs; system prune reconciles and removes it."""
    fg = cli.popen("run", "--rm", "--name", "fg", "busybox", "sh", "-c", "echo up; sleep 60",
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert fg.stdout is not None and fg.stdout.readline() == "up\n"
    pid = int(inspect(cli, "fg", "{{.State.Pid}}"))
    fg.send_signal(signal.SIGKILL)
    fg.wait(timeout=10)
    wait_for(lambda: not alive(pid), what="the container's death (PR_SET_PDEATHSIG)")
    assert cli("ps", "-q", check=True).stdout == ""
    assert inspect(cli, "fg", "{{.State.Status}} {{.State.ExitCode}}") == "exited 255"
    pruned = cli("system", "prune", "-f", check=True).stdout
    assert "recorded as running" in pruned and "Deleted Containers:" in pruned
    assert os.listdir(cli.root / "containers") == [] and os.listdir(cli.root / "names") == []


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.04, 0.06, 0.08, 0.12])
def test_kill_9_of_run_d_at_any_moment_leaks_nothing(cli, delay):
    """Either there is no container, or there is one the records know in full."""
    cli("run", "--rm", "busybox", "true", check=True)  # the image, unpacked beforehand
    cli("ps", check=True)
    started = cli.popen("run", "-d", "--name", "victim", "busybox", "sleep", "60",
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(delay)
    started.send_signal(signal.SIGKILL)
    started.wait(timeout=10)
    time.sleep(0.3)  # the supervisor finishes what it was asked, if it was asked
    rows = cli("ps", "-a", "--format", "{{.Names}} {{.State}}", check=True).stdout.split()
    assert rows in ([], ["victim", "running"]), rows
    sleeps = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == "sleep 60"
              and _in_root_namespace(p, cli.root)]
    if rows:
        assert sleeps == [inspect(cli, "victim", "{{.State.Pid}}")]
        cli("rm", "-f", "victim", check=True)
    else:
        assert sleeps == []
        assert not (cli.root / "names" / "victim").exists()


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _in_root_namespace(pid: str, root: Path) -> bool:
    """Is ``pid`` a container process of this test's root (its mounts mention the root)?"""
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return str(root) in f.read()
    except OSError:
        return False


@pytest.mark.parametrize("detach", [True, False], ids=["run-d", "foreground"])
def test_two_clis_racing_for_one_name(cli, detach):
    cli("run", "--rm", "busybox", "true", check=True)
    for attempt in range(3):
        name = f"race{attempt}"
        args = ["run", *(["-d"] if detach else []), "--name", name, "busybox", "sleep", "0.5"]
        racers = [cli.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                  for _ in range(2)]
        results = [(r.wait(timeout=30), r.stderr.read() if r.stderr else "") for r in racers]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 125], results
        [loser] = [err for code, err in results if code == 125]
        assert loser.startswith("minidocker: conflict: the container name") and \
            f'"/{name}" is already in use' in loser and loser.count("\n") == 1
    assert len(os.listdir(cli.root / "names")) == 3


# -- bad input: a one-line error, the right exit code, and nothing stored changes -----------------

@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A state root with a running container ``up`` and an exited one ``down``."""
    from tests.conftest import TEST_ROOT_MARK, stop_minidocker

    root = tmp_path_factory.mktemp(TEST_ROOT_MARK + "lifecycle-bad")
    cli = CLI(root)
    run_d(cli, "--name", "up", "busybox", "sleep", "600")
    run_d(cli, "--name", "down", "busybox", "true")
    cli("wait", "down", check=True)
    yield cli
    stop_minidocker(root)


def _records(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text()
            for p in sorted((root / "containers").glob("*/*.json"))}


BAD = [
    # id, arguments, exit code, words of the message
    *[(f"unknown-{c}", [c, *pre, "nope", *post], 1, ["nope"]) for c, pre, post in [
        ("logs", [], []), ("start", [], []), ("stop", [], []), ("kill", [], []),
        ("restart", [], []), ("rm", [], []), ("rm", ["-f"], []), ("wait", [], []),
        ("attach", [], []), ("exec", [], ["true"]), ("inspect", [], []), ("top", [], []),
        ("rename", [], ["newname"])]],
    ("rm-running", ["rm", "up"], 1, ["container is running", "force"]),
    ("exec-stopped", ["exec", "down", "true"], 1, ["is not running"]),
    ("kill-stopped", ["kill", "down"], 1, ["is not running"]),
    ("attach-stopped", ["attach", "down"], 1, ["stopped container"]),
    ("restart-policy-run-d", ["run", "-d", "--restart", "sometimes", "busybox", "true"], 125,
     ["invalid restart policy", "sometimes"]),
    ("restart-policy-run", ["run", "--restart", "always:3", "busybox", "true"], 125,
     ["always:3", "on-failure"]),
    ("restart-policy-create", ["create", "--restart", "on-failure:x", "busybox", "true"], 125,
     ["on-failure:x"]),
    ("restart-and-rm", ["run", "-d", "--rm", "--restart", "always", "busybox", "true"], 125,
     ["--restart and --rm"]),
    ("format-ps", ["ps", "--format", "{{.ID"], 1, ["template", "unclosed action"]),
    ("format-ps-field", ["ps", "--format", "{{.Nope}}"], 1, ["can't evaluate field Nope"]),
    ("format-inspect", ["inspect", "--format", "{{if .Id}}", "up"], 1, ["template",
                                                                         "unexpected EOF"]),
    ("filter-key", ["ps", "-f", "color=red"], 1, ["invalid filter 'color'"]),
    ("filter-status", ["ps", "-f", "status=sleeping"], 1, ["status=sleeping"]),
    ("kill-signal", ["kill", "-s", "SIGNOPE", "up"], 1, ["invalid signal: SIGNOPE"]),
    ("logs-since", ["logs", "--since", "yesterday", "up"], 125, ["yesterday"]),
    ("start-attach-many", ["start", "-a", "up", "down"], 125, ["multiple containers"]),
    ("bad-flag", ["ps", "--bogus"], 125, ["--bogus"]),
]


@pytest.mark.parametrize(("args", "code", "words"), [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_input_changes_nothing(two, args, code, words):
    from tests.kernel.test_bad_input import assert_unchanged, snapshot

    before, records = snapshot(two.root), _records(two.root)
    result = two(*args)
    one_line_error(result, code, *words)
    assert_unchanged(before, two.root)
    assert _records(two.root) == records
    assert status(two, "up") == "running"


def test_stopping_a_stopped_container_is_a_no_op(two):
    from tests.kernel.test_bad_input import assert_unchanged, snapshot

    before, records = snapshot(two.root), _records(two.root)
    result = two("stop", "down")
    assert result.returncode == 0 and result.stdout == "down\n" and result.stderr == ""
    assert_unchanged(before, two.root)
    assert _records(two.root) == records
