"""Container logs, in Docker's ``json-file`` format.

A detached container's stdout and stderr are pipes whose other ends the supervisor holds (with
``-t``, one pseudo-terminal master). Whatever the container writes, the supervisor cuts into
lines and appends each one to ``ROOT/containers/<id>/<id>-json.log`` as one JSON object::

    {"log":"hello world\\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}

exactly as Docker's default logging driver does, so the two streams stay apart (``stream``),
every line keeps the moment it was read (``time``, RFC 3339 in UTC with nanoseconds), and
``logs --since/--until/--tail`` need nothing but this file. A line longer than 16 KiB is cut
into pieces of 16 KiB without a trailing newline (Docker's partial messages); a last line
without a newline is written when the stream ends. With ``-t`` the container has one terminal,
so there is one stream, ``stdout``, and lines end in ``\\r\\n`` as the terminal sent them.

``minidocker logs`` reads the file back (:func:`read`), and ``-f`` keeps reading what the
supervisor appends until the container stops (:func:`follow`).

Notebook: ``09_lifecycle``. Docker's documentation: "JSON File logging driver".
"""

from __future__ import annotations

import os
import time

from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    Entry = tuple[int, str, bytes]  # (time in ns, "stdout" | "stderr", the bytes written)

MAX_LINE = 16 * 1024  # Docker's bufio scanner size: longer lines become partial messages


def log_path(cdir: str) -> str:
    cid = os.path.basename(cdir)
    return os.path.join(cdir, f"{cid}-json.log")


class LineSplitter:
    """Cuts one stream's chunks into lines (each ending in ``\\n``) and 16 KiB pieces."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        data = self.pending + data
        lines = data.split(b"\n")
        self.pending = lines.pop()
        out = [line + b"\n" for line in lines]
        while len(self.pending) >= MAX_LINE:
            out.append(self.pending[:MAX_LINE])
            self.pending = self.pending[MAX_LINE:]
        return [piece for line in out for piece in _pieces(line)]

    def flush(self) -> list[bytes]:
        rest, self.pending = self.pending, b""
        return [rest] if rest else []


def _pieces(line: bytes) -> list[bytes]:
    if len(line) <= MAX_LINE:
        return [line]
    return [line[i:i + MAX_LINE] for i in range(0, len(line), MAX_LINE)]


def _quote(text: str) -> str:
    from _json import encode_basestring  # the json package's C escaper, without json

    return str(encode_basestring(text))  # non-ASCII stays UTF-8, as Go writes it


def encode(stream: str, data: bytes, t_ns: int) -> bytes:
    """One json-file line. Bytes that are not UTF-8 become U+FFFD, as Go's encoder does."""
    from minidocker.timefmt import format_time

    text = data.decode("utf-8", "replace")
    return (f'{{"log":{_quote(text)},"stream":"{stream}","time":"{format_time(t_ns)}"}}\n'
            .encode())


def decode(line: bytes) -> Entry:
    from minidocker.state import loads

    record = loads(line.decode("utf-8", "replace"))
    return _parse_time(record["time"]), record["stream"], str(record["log"]).encode()


def _parse_time(text: str) -> int:
    """:func:`minidocker.lifecycle.parse_time`, from below it: Go's zero time is 0."""
    from minidocker.timefmt import ZERO_TIME, parse_time

    return 0 if not text or text == ZERO_TIME else parse_time(text)


def read(path: str, since_ns: int = 0, until_ns: int = 0, tail: int = -1) -> tuple[list[Entry],
                                                                                    int]:
    """The entries of a log file within ``[since, until]``, the last ``tail`` of them (-1: all),
    and the offset where reading stopped (to :func:`follow` from)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    complete = data.rfind(b"\n") + 1  # a line being appended right now is read next time
    entries = [e for e in _decode_lines(data[:complete]) if _within(e[0], since_ns, until_ns)]
    if tail >= 0:
        entries = entries[len(entries) - tail:] if tail else []
    return entries, complete


def _decode_lines(data: bytes) -> Iterator[Entry]:
    for line in data.splitlines():
        if line.strip():
            try:
                yield decode(line)
            except (ValueError, KeyError):
                continue  # a damaged line is skipped, as Docker's reader does


def _within(t: int, since_ns: int, until_ns: int) -> bool:
    return t >= since_ns and (not until_ns or t <= until_ns)


def follow(path: str, offset: int, still_running: Callable[[], bool], since_ns: int = 0,
           until_ns: int = 0, interval: float = 0.1) -> Iterator[Entry]:
    """Entries appended after ``offset`` as they come, until the container stops (and what it
    wrote last is read) or ``until`` has passed."""
    try:
        f = open(path, "rb")  # noqa: SIM115 -- held across yields
    except FileNotFoundError:
        return
    with f:
        f.seek(offset)
        buf = b""
        while True:
            running = still_running()  # asked before reading, so nothing written is missed
            chunk = f.read()
            if chunk:
                buf += chunk
                complete = buf.rfind(b"\n") + 1
                for entry in _decode_lines(buf[:complete]):
                    if _within(entry[0], since_ns, until_ns):
                        yield entry
                buf = buf[complete:]
            if until_ns and time.time_ns() > until_ns:
                return
            if not running and not chunk:
                return
            if not chunk:
                time.sleep(interval)


# -- --since / --until ---------------------------------------------------------------------------

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration``: ``1h30m``, ``10s``, ``1.5h``, ``300ms`` -> nanoseconds."""
    import re

    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text.lstrip("+"):
        raise ValueError(f"time: invalid duration {text!r}")
    return int(sum(float(n) * _UNITS[u] for n, u in parts))


def parse_timestamp(text: str, now_ns: int | None = None) -> int:
    """A ``--since``/``--until`` value as nanoseconds since the epoch, Docker's way: a Go
    duration before now (``10m``), an RFC 3339 date-time or date (local time without a zone),
    or Unix seconds (``1700000000.5``)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    if text != "0":
        try:
            return now_ns - parse_duration(text)
        except ValueError:
            pass
    if "-" in text[1:] or ":" in text:
        if text.endswith("Z") or (len(text) > 6 and text[-6] in "+-" and text[-3] == ":"):
            try:
                return _parse_time(text)
            except ValueError:
                pass
        main, _, frac = text.partition(".")
        for form in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d"):
            try:
                local = time.mktime(time.strptime(main, form))
            except ValueError:
                continue
            return int(local) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
        raise UsageError(f"invalid value for timestamp: {text!r}")
    seconds, _, frac = text.partition(".")
    if not seconds.lstrip("-").isdigit() or (frac and not frac.isdigit()):
        raise UsageError(f"invalid value for timestamp: {text!r}: use a duration (10m), an "
                         "RFC 3339 time or Unix seconds")
    return int(seconds) * 1_000_000_000 + int((frac + "000000000")[:9])
