"""A process's identity from /proc/<pid>/stat: its start time, and whether it still runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from minidocker import procfs

pytestmark = pytest.mark.nb09


def test_a_process_is_its_pid_and_its_start_time() -> None:
    me, start = os.getpid(), procfs.process_start_time(os.getpid())
    assert start is not None and start > 0
    assert procfs.process_alive(me, start)
    assert procfs.process_alive(me, None)  # no recorded start time: the PID alone
    assert not procfs.process_alive(me, start - 1)  # the same PID reused by another process
    assert not procfs.process_alive(0, None)


def test_a_zombie_has_a_start_time_but_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = procfs.process_start_time(child.pid)
    for _ in range(250):  # until it has exited, unreaped
        if procfs.stat_fields(child.pid)[0] == "Z":  # type: ignore[index]
            break
        time.sleep(0.02)
    assert procfs.process_start_time(child.pid) == start  # its parent still knows it by it
    assert not procfs.process_alive(child.pid, start)
    child.wait()
    assert procfs.process_start_time(child.pid) is None
    assert not procfs.process_alive(child.pid, start)


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                              "open('/proc/self/comm', 'w').write('a) b (c')\n"
                              "print(flush=True); time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"\n"
        with open(f"/proc/{child.pid}/comm") as f:
            assert f.read() == "a) b (c\n"
        start = procfs.process_start_time(child.pid)
        assert procfs.stat_fields(child.pid)[0] in ("S", "R")  # type: ignore[index]
        assert procfs.process_alive(child.pid, start)
    finally:
        child.kill()
        child.wait()


def test_a_reaped_session_leader_has_no_pidfd_while_its_session_lives() -> None:
    """A container's PID 1 leads the session of everything it started. Once it is reaped its
    PID still names that session, and pidfd_open(2) answers EINVAL for it before Linux 6.16
    (ESRCH after): either way the process is gone, which is what ``rm -f`` must hear."""
    r, w = os.pipe()
    leader = os.fork()
    if leader == 0:  # pragma: no cover -- the child
        try:
            os.setsid()
            os.write(w, str(subprocess.Popen(["sleep", "30"]).pid).encode())
        finally:
            os._exit(0)
    os.close(w)
    member = int(os.read(r, 32))
    os.close(r)
    try:
        os.waitpid(leader, 0)
        assert os.getsid(member) == leader  # the PID still names a live session
        assert procfs.pidfd_open(leader) is None
    finally:
        os.kill(member, 9)
    with pytest.raises(OSError):  # not a PID at all: still the caller's mistake
        procfs.pidfd_open(0)


def test_einval_from_pidfd_open_reads_as_gone_only_for_a_real_pid(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The branch an older kernel takes (this host may answer ESRCH, so the answer is fed)."""
    import errno

    def einval(pid: int) -> int:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(os, "pidfd_open", einval)
    assert procfs.pidfd_open(12345) is None
    with pytest.raises(OSError):
        procfs.pidfd_open(-1)
