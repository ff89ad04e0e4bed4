"""``minidocker run`` against the real kernel, checked from inside the container.

Every assertion reads what the kernel shows the container's own process: /proc/self/ns,
/proc/self/mountinfo, /proc/self/status, /dev, /sys. Nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import needs_root
from tests.ptyrun import PtyProcess

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb01]


def test_echo_hello(cli):
    result = cli("run", "--rm", "busybox", "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"


def test_rm_leaves_no_container_directory(cli, state_root):
    cli("run", "--rm", "busybox", "true", check=True)
    assert os.listdir(state_root / "containers") == []
    assert os.listdir(state_root / "names") == []


def test_without_rm_the_container_is_recorded_as_exited(cli, state_root):
    cli("run", "--name", "keep", "busybox", "sh", "-c", "exit 3")
    [cid] = os.listdir(state_root / "containers")
    assert os.readlink(state_root / "names" / "keep") == cid
    state = (state_root / "containers" / cid / "state.json").read_text()
    assert '"ExitCode": 3' in state and '"exited"' in state


def test_command_is_pid_1_in_its_own_pid_namespace(cli):
    out = cli("run", "--rm", "busybox", "sh", "-c",
              "echo $$; grep -E '^(NSpid|PPid)' /proc/1/status; ps -o pid,comm; true",
              check=True).stdout.splitlines()
    assert out[0] == "1"
    # NSpid has one column per PID namespace level *visible from here*: just one.
    assert "NSpid:\t1" in out
    assert "PPid:\t0" in out  # its parent, minidocker, lives outside the namespace
    processes = [line.split() for line in out[4:]]
    assert processes == [["1", "sh"], [processes[1][0], "ps"]], \
        "the host's processes must be invisible"


def test_every_namespace_differs_from_the_hosts(cli):
    kinds = ["pid", "mnt", "uts", "ipc", "net", "cgroup", "user"]
    script = "; ".join(f"readlink /proc/self/ns/{k}" for k in kinds)
    inside = cli("run", "--rm", "busybox", "sh", "-c", script, check=True).stdout.split()
    host = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    for kind, mine, theirs in zip(kinds, inside, host, strict=True):
        if kind == "user":
            assert mine == theirs, "no user namespace by default, as in Docker"
        else:
            assert mine != theirs, f"{kind} namespace is shared with the host"


def test_hostname_defaults_to_short_id_and_can_be_set(cli, state_root):
    name = cli("run", "--name", "hh", "busybox", "hostname", check=True).stdout.strip()
    [cid] = os.listdir(state_root / "containers")
    assert name == cid[:12]
    out = cli("run", "--rm", "--hostname", "box1", "busybox", "sh", "-c",
              "hostname; cat /etc/hostname; echo $HOSTNAME", check=True).stdout.split()
    assert out == ["box1", "box1", "box1"]
    assert os.uname().nodename != "box1"


def test_mountinfo_shows_overlay_root_and_no_host_mounts(cli):
    lines = cli("run", "--rm", "busybox", "cat", "/proc/self/mountinfo",
                check=True).stdout.splitlines()
    mounts = {}
    for line in lines:
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        mounts[fields[4]] = fstype
    assert mounts["/"] == "overlay"
    assert mounts["/proc"] == "proc" and mounts["/sys"] == "sysfs"
    assert mounts["/dev"] == "tmpfs" and mounts["/dev/pts"] == "devpts"
    allowed = {"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
               "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}
    from minidocker.rootfs import DEFAULT_DEVICES, MASKED_PATHS, READONLY_PATHS

    allowed |= set(MASKED_PATHS) | set(READONLY_PATHS)
    allowed |= {path for path, _, _ in DEFAULT_DEVICES}  # bind-mounted into a nodev /dev
    from minidocker import cgroups

    if cgroups.version() == 2:  # the container's own cgroup2 tree, as runc mounts it
        assert mounts["/sys/fs/cgroup"] == "cgroup2"
        allowed.add("/sys/fs/cgroup")
    else:
        assert "/sys/fs/cgroup" not in mounts  # v1: none (Docker's per-controller mounts: not done)
    assert set(mounts) <= allowed, f"unexpected mounts: {set(mounts) - allowed}"
    with open("/proc/self/mountinfo") as f:
        host_points = {line.split()[4] for line in f}
    assert not (set(mounts) - allowed) & host_points


def test_sys_is_read_only_and_proc_sys_too(cli):
    out = cli("run", "--rm", "busybox", "sh", "-c",
              "grep -E ' /sys | /proc/sys ' /proc/self/mountinfo; "
              "echo 1 > /proc/sys/kernel/panic 2>/dev/null; echo panic=$?; "
              "touch /sys/x 2>/dev/null; echo sys=$?", check=True).stdout
    for line in out.splitlines()[:2]:
        assert line.split()[5].startswith("ro"), line
    assert "panic=1" in out and "sys=1" in out


def test_dev_holds_only_the_default_devices(cli):
    out = cli("run", "--rm", "busybox", "ls", "-1", "/dev", check=True).stdout.split()
    assert sorted(out) == sorted(["core", "fd", "full", "mqueue", "null", "ptmx", "pts",
                                  "random", "shm", "stderr", "stdin", "stdout", "tty",
                                  "urandom", "zero"])
    nodes = cli("run", "--rm", "busybox", "sh", "-c",
                "stat -c '%n %t:%T %a' /dev/null /dev/zero /dev/full /dev/random "
                "/dev/urandom /dev/tty", check=True).stdout.splitlines()
    assert nodes == ["/dev/null 1:3 666", "/dev/zero 1:5 666", "/dev/full 1:7 666",
                     "/dev/random 1:8 666", "/dev/urandom 1:9 666", "/dev/tty 5:0 666"]


def test_masked_paths_are_unreadable(cli):
    from minidocker.rootfs import MASKED_PATHS

    present = [p for p in MASKED_PATHS if os.path.exists(p)]
    assert "/proc/keys" in present, "this host should have /proc/keys to mask"
    # a masked file reads as empty; a masked directory lists as empty
    script = "; ".join(f"echo {p}=$(cat {p} 2>/dev/null | wc -c)$(ls -A {p}/ 2>/dev/null | wc -l)"
                       for p in present)
    out = cli("run", "--rm", "busybox", "sh", "-c", script, check=True).stdout.split()
    for line in out:
        path, value = line.split("=")
        assert value == "00", f"{path} is readable in the container: {value}"


def test_only_loopback_and_it_is_up(cli):
    out = cli("run", "--rm", "busybox", "sh", "-c",
              "ls /sys/class/net; cat /sys/class/net/lo/flags; ping -c1 -W1 127.0.0.1 "
              ">/dev/null && echo ping-ok", check=True).stdout.split()
    assert out[0] == "lo" and out[1] == "0x9"  # IFF_UP | IFF_LOOPBACK
    assert out[2] == "ping-ok"


def test_etc_files(cli):
    out = cli("run", "--rm", "--hostname", "web", "busybox", "sh", "-c",
              "cat /etc/hosts; cat /etc/resolv.conf", check=True).stdout
    assert "127.0.0.1\tlocalhost" in out
    assert "nameserver" in out and "nameserver 127." not in out


def test_exit_codes_are_dockers(cli):
    assert cli("run", "--rm", "busybox", "sh", "-c", "exit 42").returncode == 42
    missing = cli("run", "--rm", "busybox", "no-such-command")
    assert missing.returncode == 127
    assert missing.stderr.strip().count("\n") == 0
    assert 'exec: "no-such-command": executable file not found in $PATH' in missing.stderr
    not_exe = cli("run", "--rm", "busybox", "/etc/passwd")
    assert not_exe.returncode == 126 and "permission denied" in not_exe.stderr
    unknown = cli("run", "--rm", "no-such-image")
    assert unknown.returncode == 125 and "no-such-image" in unknown.stderr


def test_env_workdir_and_entrypoint(cli, tmp_path):
    env_file = tmp_path / "vars"
    env_file.write_text("# comment\n\nFROM_FILE=1\nBOTH=file\n")
    out = cli("run", "--rm", "-e", "A=1", "-e", "BOTH=flag", "--env-file", str(env_file),
              "-w", "/tmp/work", "busybox", "sh", "-c",
              "echo $A $FROM_FILE $BOTH $HOME; pwd; echo $PATH", check=True).stdout.split()
    assert out[:4] == ["1", "1", "flag", "/root"]
    assert out[4] == "/tmp/work"
    assert out[5] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    out = cli("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint",
              check=True).stdout
    assert out == "from entrypoint\n"


def test_user_by_name_and_by_number(cli):
    out = cli("run", "--rm", "-u", "nobody", "busybox", "id", check=True).stdout
    assert out.startswith("uid=65534(nobody) gid=65534(nogroup)")
    out = cli("run", "--rm", "-u", "1234:5678", "busybox", "sh", "-c",
              "id -u; id -g; grep -E '^(Uid|Gid)' /proc/self/status", check=True).stdout
    lines = out.splitlines()
    assert lines[:2] == ["1234", "5678"]
    assert lines[2].split()[1:] == ["1234"] * 4 and lines[3].split()[1:] == ["5678"] * 4


def test_signals_reach_pid_1_through_the_cli(cli):
    proc = cli.popen("run", "--rm", "busybox", "sh", "-c",
                     'trap "echo got-term; exit 3" TERM; echo ready; '
                     "while :; do sleep 0.05; done",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert "got-term" in out
    assert proc.returncode == 3


def test_init_forwards_signals_and_reaps_zombies(cli):
    # Without a handler, PID 1 ignores SIGTERM; under --init, `sleep` is PID 2 and dies of it.
    proc = cli.popen("run", "--rm", "--init", "busybox", "sh", "-c",
                     "cat /proc/1/comm; (sleep 0.2 &); sleep 0.5; "
                     "ps -o stat,comm | grep -c '^Z' ; exec sleep 30",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "init\n"
        assert proc.stdout.readline() == "0\n", "an orphaned zombie was not reaped"
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM


def test_killed_container_exits_128_plus_signal(cli):
    proc = cli.popen("run", "--rm", "busybox", "sh", "-c", "echo ready; sleep 30",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            container_pid = int(f.read().split()[0])
        os.kill(container_pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 137


def test_interactive_tty_shell(cli):
    session = PtyProcess(cli.argv("run", "-it", "--rm", "busybox", "sh"), cli.env)
    try:
        session.send(b"echo $((6*7)); tty; stty size; echo $TERM; exit 5\n")
        out, code = session.finish()
    finally:
        session.close()
    assert code == 5
    lines = [line.strip() for line in out.splitlines()]
    assert "42" in lines
    assert "/dev/pts/0" in lines, "the pty lives in the container's own devpts"
    assert "33 101" in lines, "the window size followed the user's terminal"
    assert "xterm" in lines


def test_ctrl_c_in_tty(cli):
    session = PtyProcess(cli.argv("run", "-it", "--rm", "busybox", "sh", "-c",
                                  "trap 'echo got-int; exit 9' INT; echo ready; "
                                  "while :; do sleep 0.05; done"), cli.env)
    try:
        assert b"ready" in session.read_until(b"ready")
        session.send(b"\x03")
        out, code = session.finish()
    finally:
        session.close()
    assert "got-int" in out
    assert code == 9
