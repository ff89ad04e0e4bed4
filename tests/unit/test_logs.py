"""Docker's json-file log format: lines, partial lines, both streams, and reading it back."""

from __future__ import annotations

import json

import pytest

from minidocker import logs
from minidocker.errors import UsageError

pytestmark = pytest.mark.nb09


def test_a_line_is_dockers_json():
    line = logs.encode("stdout", b"hello world\n", 1_700_000_000_123_456_789)
    assert line == (b'{"log":"hello world\\n","stream":"stdout",'
                    b'"time":"2023-11-14T22:13:20.123456789Z"}\n')
    assert json.loads(line) == {"log": "hello world\n", "stream": "stdout",
                                "time": "2023-11-14T22:13:20.123456789Z"}
    assert logs.decode(line) == (1_700_000_000_123_456_789, "stdout", b"hello world\n")


def test_bytes_that_are_not_utf8_become_replacement_characters():
    line = logs.encode("stderr", "é\n".encode() + b"\xff", 0)
    assert json.loads(line)["log"] == "é\n\ufffd"
    assert "é".encode() in line  # UTF-8 as Go writes it, not \u00e9


def test_the_splitter_keeps_partial_lines_until_the_newline():
    splitter = logs.LineSplitter()
    assert splitter.feed(b"hel") == []
    assert splitter.feed(b"lo\nwor") == [b"hello\n"]
    assert splitter.feed(b"ld\n\n") == [b"world\n", b"\n"]
    assert splitter.feed(b"tail") == []
    assert splitter.flush() == [b"tail"]
    assert splitter.flush() == []


def test_long_lines_become_16k_partial_messages():
    splitter = logs.LineSplitter()
    pieces = splitter.feed(b"x" * 40_000 + b"\n")
    assert [len(p) for p in pieces] == [16384, 16384, 7233]
    assert pieces[-1].endswith(b"\n") and not pieces[0].endswith(b"\n")


def _write(path, entries):
    with open(path, "wb") as f:
        for t, stream, data in entries:
            f.write(logs.encode(stream, data, t))


def test_read_filters_by_time_and_tails(tmp_path):
    path = tmp_path / "x-json.log"
    entries = [(i * 10**9, "stdout" if i % 2 else "stderr", f"{i}\n".encode())
               for i in range(1, 7)]
    _write(path, entries)
    got, offset = logs.read(str(path))
    assert got == entries and offset == path.stat().st_size
    assert logs.read(str(path), tail=2)[0] == entries[-2:]
    assert logs.read(str(path), tail=0)[0] == []
    assert logs.read(str(path), since_ns=3 * 10**9, until_ns=4 * 10**9)[0] == entries[2:4]


def test_read_skips_a_line_still_being_written_and_a_damaged_one(tmp_path):
    path = tmp_path / "y-json.log"
    _write(path, [(1, "stdout", b"a\n")])
    with open(path, "ab") as f:
        f.write(b"not json\n")
        f.write(b'{"log":"half')
    got, offset = logs.read(str(path))
    assert got == [(1, "stdout", b"a\n")]
    assert offset < path.stat().st_size  # the half line is read next time


def test_follow_reads_what_is_appended_until_the_container_stops(tmp_path):
    path = tmp_path / "z-json.log"
    _write(path, [(1, "stdout", b"old\n")])
    _, offset = logs.read(str(path))
    calls = []

    def running():
        calls.append(1)
        if len(calls) == 2:
            with open(path, "ab") as f:
                f.write(logs.encode("stdout", b"new\n", 2))
        return len(calls) < 4

    got = list(logs.follow(str(path), offset, running, interval=0))
    assert got == [(2, "stdout", b"new\n")]


def test_durations_are_gos():
    assert logs.parse_duration("1h30m") == 5400 * 10**9
    assert logs.parse_duration("300ms") == 300 * 10**6
    assert logs.parse_duration("1.5h") == 5400 * 10**9
    for bad in ("", "10", "1x", "h"):
        with pytest.raises(ValueError):
            logs.parse_duration(bad)


@pytest.mark.parametrize(("text", "ns"), [
    ("10m", 10**18 - 600 * 10**9),
    ("1700000000", 1_700_000_000 * 10**9),
    ("1700000000.5", 1_700_000_000_500_000_000),
    ("2023-11-14T22:13:20Z", 1_700_000_000 * 10**9),
    ("2023-11-14T23:13:20+01:00", 1_700_000_000 * 10**9),
])
def test_since_and_until_take_dockers_forms(text, ns):
    assert logs.parse_timestamp(text, now_ns=10**18) == ns


def test_a_local_date_is_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        assert logs.parse_timestamp("2023-11-14") == 1_699_920_000 * 10**9
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_bad_timestamp_is_a_usage_error():
    with pytest.raises(UsageError, match="yesterday"):
        logs.parse_timestamp("yesterday")
