"""The CLI <-> supervisor protocol and the keeper's, without root: JSON lines, attach frames,
detach keys, fd hand-over, and a real supervisor answering (and refusing) requests."""

from __future__ import annotations

import os
import select
import socket

import pytest

from minidocker import attach, client, keeper, state, supervisor
from minidocker.client import SupervisorError
from tests.conftest import TEST_ROOT_MARK, stop_minidocker

pytestmark = pytest.mark.nb09


def test_frames_round_trip():
    data = supervisor.frame(1, b"out") + supervisor.frame(2, b"err") + \
        supervisor.frame(3, b'{"exit": 3}')
    reader = attach.FrameReader()
    got = []
    for i in range(0, len(data), 5):  # in awkward pieces, as a socket delivers them
        got += list(reader.feed(data[i:i + 5]))
    assert got == [(1, b"out"), (2, b"err"), (3, b'{"exit": 3}')]
    assert data[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x03"  # Docker's stdcopy header


def test_detach_keys_are_held_back_until_we_know():
    scanner = attach.DetachScanner(b"\x10\x11")
    assert scanner.feed(b"ab\x10") == (b"ab", False)  # ctrl-p: might be the start
    assert scanner.feed(b"x") == (b"\x10x", False)  # it was not: both go through
    assert scanner.feed(b"\x10") == (b"", False)
    assert scanner.feed(b"\x11rest") == (b"", True)


def test_a_long_socket_path_still_works(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = str(deep / "sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(client._address(path))
    server.listen(1)
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    peer.connect(client._address(path))
    assert os.path.exists(path)
    peer.close()
    server.close()


def test_the_keeper_keeps_hands_back_and_drops(tmp_path):
    held: dict[str, dict[str, int]] = {}
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    try:
        assert keeper._request(theirs, ["put", "c1", "stdout"], [os.dup(r)], held)
        assert set(held) == {"c1"}
        assert keeper._request(theirs, ["take"], [], held)
        msg, fds, _, _ = socket.recv_fds(ours, 4096, 16)
        assert msg == b"c1 stdout" and len(fds) == 1
        os.write(w, b"x")
        assert os.read(fds[0], 1) == b"x"  # a copy of the same pipe
        os.close(fds[0])
        assert socket.recv_fds(ours, 100, 4)[0] == b"end"
        assert keeper._request(theirs, ["drop", "c1", "stdout"], [], held)
        assert held == {}
        assert not keeper._request(theirs, ["exit"], [], held)
    finally:
        for fd in (r, w):
            os.close(fd)
        ours.close()
        theirs.close()


@pytest.fixture
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp(TEST_ROOT_MARK + "proto")
    yield path
    stop_minidocker(path)


def test_a_supervisor_answers_and_refuses_in_json_lines(root):
    layout = state.Layout(str(root))
    reply = client.request(layout, {"op": "ping"})  # starts one on demand
    pid = reply["pid"]
    assert reply["ok"] is True and reply["containers"] == []
    assert client.supervisor_pid(layout) == pid
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert str(root).encode() in f.read()  # so a leak check can find it
    with open(f"/proc/{pid}/comm") as f:
        assert f.read().strip() == "md-supervisor"
    with pytest.raises(SupervisorError, match="unknown request 'dance'"):
        client.request(layout, {"op": "dance"})
    with pytest.raises(SupervisorError, match="no such container: nope") as err:
        client.request(layout, {"op": "start", "id": "nope"})
    assert err.value.exit_code == 1
    sock = client.connect(layout)
    sock.sendall(b"this is not json\n")
    line = sock.recv(4096)
    sock.close()
    assert b'"ok": false' in line and b"bad request" in line
    assert client.request(layout, {"op": "ping"})["pid"] == pid  # still the same one
    assert client.stop_supervisor(layout)
    assert client.supervisor_pid(layout) is None
    assert not os.path.exists(client.paths(layout)["sock"])


def test_two_supervisors_for_one_root_cannot_both_serve(root):
    layout = state.Layout(str(root))
    first = client.request(layout, {"op": "ping"})["pid"]
    second = client.start_supervisor(layout)  # it finds the lock taken and leaves
    assert second > 0 and second != first
    # Wait for it to leave: a fixed sleep let a slow machine's second supervisor start after
    # the first was stopped at teardown, find the lock free, and stay (a leak the check saw).
    pidfd = os.pidfd_open(second)
    try:
        assert select.select([pidfd], [], [], 30)[0], "the second supervisor did not leave"
    finally:
        os.close(pidfd)
    assert client.request(layout, {"op": "ping"})["pid"] == first
    with open(client.paths(layout)["pid"]) as f:
        assert int(f.read().split()[0]) == first


def test_a_bug_in_one_handler_is_logged_and_the_supervisor_serves_on(capsys):
    # A handler that raised used to end the supervisor, and with it the service of every
    # container (lesson 09 met one: an OOM count read from a group `rm -f` had just removed).
    unwatched = []

    class Fake:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

        def watch(self, fd, reader):
            unwatched.append((fd, reader))

    def broken():
        raise FileNotFoundError(2, "No such file or directory", "/sys/fs/cgroup/x")

    fake = Fake()
    try:
        supervisor.Supervisor.guarded(fake, broken, fd=42)  # type: ignore[arg-type]
        supervisor.Supervisor.guarded(fake, broken)  # a timer: no fd to drop
    finally:
        fake.listener.close()
    assert unwatched == [(42, None)]
    out = capsys.readouterr().out
    assert out.count("internal error, serving on:") == 2 and "FileNotFoundError" in out
