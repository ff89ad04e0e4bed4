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

Notebook: ``09_lifecycle``. Man pages: proc(5) (``/proc/<pid>/stat``), pidfd_open(2).
"""

from __future__ import annotations

import errno
import os


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


def pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid``, or None if that process is gone.

    Gone has two answers: ESRCH, and, before Linux 6.16, EINVAL when the PID is still in use
    as another process's session or process group ID (a container's PID 1 is the session
    leader of everything it started) while its own process has been reaped. crun and systemd
    read that EINVAL as ESRCH too; a PID that is not positive is still the caller's error."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    except OSError as exc:
        if exc.errno == errno.EINVAL and pid > 0:
            return None
        raise


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


def proc_status(pid: int | str) -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict (``"VmRSS": "1234 kB"``)."""
    with open(f"/proc/{pid}/status") as f:
        return parse_status(f.read())


def parse_status(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def rss_kib(pid: int | str) -> int:
    """Resident memory of a process in KiB: the pages it really uses (``VmRSS``).

    Kernel threads have no ``VmRSS`` line: 0.
    """
    value = proc_status(pid).get("VmRSS", "0 kB")
    return int(value.split()[0])


def pids_in_namespace(kind: str, ns: str) -> list[int]:
    """Every host PID whose ``/proc/<pid>/ns/<kind>`` is ``ns`` (e.g. a container's PID ns)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/{kind}") == ns:
                pids.append(int(entry))
        except OSError:  # exited while we looked, or a kernel thread we may not read
            continue
    return sorted(pids)


def kernel_version(release: str | None = None) -> tuple[int, int, int] | None:
    """The kernel's version from its release (``/proc/sys/kernel/osrelease``, ``uname -r``;
    this kernel's if not given): ``"6.1.0-13-amd64"`` -> ``(6, 1, 0)``; None if it does not
    start with one. A check compares it with a 2-tuple: ``(6, 1, 0) < (6, 15)``."""
    import re

    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", os.uname().release if release is None
                 else release.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
