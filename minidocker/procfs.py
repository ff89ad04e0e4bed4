"""What ``/proc/<pid>/stat`` says about a process: when it started, and whether it still runs.

A PID alone does not name a process: the kernel hands a freed PID to the next process that
forks. The pair (PID, start time) does, because the start time (field 22, ``starttime``,
clock ticks after boot) of a process never changes and two processes holding the same PID one
after the other cannot share it; after a reboot no process has the old one. So whoever
records a PID to act on it later (a container's PID 1, a supervisor, a port proxy, an
address lease) records the start time beside it, and asks :func:`process_alive` before
trusting the PID again.

Every layer reads these facts here: this module imports nothing of minidocker's, so a
mechanism (``ipam``, ``proxy``) may use it as well as the orchestration.

Notebook: ``09_lifecycle``. Man page: proc(5) (``/proc/<pid>/stat``).
"""

from __future__ import annotations


def stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 (state) on, or None if there is no such process.

    The command name in field 2 may hold spaces and parentheses, so split after its last
    ``)``; field N of proc(5) is then ``[N - 3]``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(b")") + 2:].decode().split()


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot (proc(5), field 22), or None.

    A zombie still has its start time: its parent, which must reap it, still knows it by it."""
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None


def process_alive(pid: int, start_time: int | None) -> bool:
    """Is ``pid`` still the process that started at ``start_time``, and not a zombie?

    ``start_time=None`` skips the PID-reuse check: only for a PID whose start time was never
    recorded, since another process may hold it now."""
    if not pid:
        return False
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time
