"""The trace: every kernel-facing step minidocker takes, in order, as it happens.

``minidocker run --trace`` prints one line per event; notebooks get the same events as dicts
(``--trace-json FILE``, or :func:`collect`). An event is one of:

- ``step``: a named step of the start sequence (``pivot_into``, ``mount_defaults``...), so the
  syscalls below it read as the body of that step;
- ``syscall``: a call into the kernel, with its arguments and flags spelled the way the man page
  spells them (``MS_BIND|MS_REC``), its result, and how long it took;
- ``write``: a file written under ``/proc`` or ``/sys`` (the kernel's other interface);
- ``note``: a sentence worth showing a learner at that point (why a flag is there).

Recording costs nothing when no sink is set: the syscall layer checks :func:`enabled` first. The
container's own process cannot print to the user's terminal before ``exec`` (its stdout belongs
to the program), so a child sends its events to the parent over a pipe, as JSON lines, and the
parent prints them; see :func:`send_to_fd`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

TYPE_CHECKING = False  # typing costs ~6 ms at start-up; mypy still reads the hints
if TYPE_CHECKING:
    from typing import Any

    Event = dict[str, Any]

_sink: Callable[[Event], None] | None = None
_t0 = time.monotonic_ns()
_where = "host"


def enabled() -> bool:
    return _sink is not None


def set_sink(sink: Callable[[Event], None] | None) -> None:
    """Send every later event to ``sink`` (``None`` stops tracing)."""
    global _sink
    _sink = sink


def set_where(where: str) -> None:
    """Label later events with the side they happen on: ``host`` or ``container``."""
    global _where
    _where = where


def emit(kind: str, call: str, args: list[str] | None = None, result: str = "",
         dur_ns: int = 0) -> None:
    if _sink is None:
        return
    now = time.monotonic_ns()
    _sink({
        "t_ms": round((now - _t0) / 1e6, 3),
        "where": _where,
        "pid": os.getpid(),
        "kind": kind,
        "call": call,
        "args": args or [],
        "result": result,
        "ms": round(dur_ns / 1e6, 3),
    })


def step(name: str, detail: str = "") -> None:
    emit("step", name, [detail] if detail else [])


def note(text: str) -> None:
    emit("note", text)


def format_event(ev: Event) -> str:
    """One line, strace-like: ``+12.345ms [container] mount("overlay", ...) = 0 <0.301ms>``."""
    head = f"+{ev['t_ms']:9.3f}ms [{ev['where']:9}]"
    if ev["kind"] == "step":
        detail = f" ({ev['args'][0]})" if ev["args"] else ""
        return f"{head} == {ev['call']}{detail}"
    if ev["kind"] == "note":
        return f"{head}    # {ev['call']}"
    call = f"{ev['call']}({', '.join(ev['args'])})"
    return f"{head}    {call} = {ev['result']} <{ev['ms']:.3f}ms>"


def send_to_fd(fd: int) -> None:
    """Make this process send its events as JSON lines to ``fd`` (a pipe to the parent)."""
    import json

    def sink(ev: Event) -> None:
        os.write(fd, (json.dumps(ev) + "\n").encode())

    set_sink(sink)


def append_to(path: str) -> Callable[[], None]:
    """Append every later event to ``path`` as a JSON line, until the function it returns is
    called. The supervisor records a ``run -d --trace`` so, for the client that asked."""
    import json

    f = open(path, "a")  # noqa: SIM115 -- closed by the function returned

    def sink(ev: Event) -> None:
        f.write(json.dumps(ev) + "\n")
        f.flush()

    def stop() -> None:
        set_sink(None)
        f.close()

    set_sink(sink)
    return stop


def collect() -> list[Event]:
    """Record events into a list and return it (for notebooks and tests)."""
    events: list[Event] = []
    set_sink(events.append)
    return events
