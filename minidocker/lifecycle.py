"""The container lifecycle: states, transitions, and the record that remembers them.

A container is a process, so most of its life is the kernel's business: the kernel knows
whether it runs, and ``wait(2)`` tells its parent how it ended. What the kernel forgets, its
name, its configuration, how it last exited, minidocker writes down. The states are Docker's:

============ ====================================================================
created      the directory and record exist; no process yet (``create``)
running      its first process runs (``run``, ``start``, ``restart``)
restarting   it exited, and the supervisor will start it again (``--restart``)
exited       it ran and ended; the record keeps its exit code and finish time
============ ====================================================================

(``paused`` needs the cgroup freezer; ``removing`` and ``dead`` are Docker's states for a
removal in progress or failed, which minidocker's :func:`minidocker.container.teardown` makes
atomic.) :data:`TRANSITIONS` lists every edge with the command or event that takes it;
notebook ``09_lifecycle`` draws it from live containers.

**The record.** ``ROOT/containers/<id>/state.json`` holds what happened: ``Status``, ``Pid``,
``StartTime``, ``StartedAt``, ``FinishedAt``, ``ExitCode``, ``Error``, ``OOMKilled``,
``Created``, ``RestartCount``, ``ManuallyStopped``, ``Supervised``. Next to it,
``config.json`` holds the plan (:class:`minidocker.spec.Spec`) and ``hostconfig.json`` what
the host was asked for (``RestartPolicy``, ``AutoRemove``, the image's ``StopSignal``).
Every write replaces the whole file by rename(2), so a reader sees the old record or the new
one, never half; and every read-modify-write holds the container's own lock, an flock(2) on
its directory (:func:`locked`), so two writers (the supervisor recording an exit, ``rm``
deciding whether it may remove) never interleave.

**The kernel is the truth.** A record that says ``running`` is believed only if the process
it names is still there: ``/proc/<Pid>/stat`` must exist, not be a zombie, and show the same
start time (field 22, ``starttime``, in clock ticks since boot) as when it was started. A
PID reused by an unrelated process after the container died has another start time; after a
reboot nothing has the old one. So a crashed supervisor, a ``kill -9`` of ``minidocker run``
or a power cut never leaves a dead container shown as running (:func:`status`; the check
itself, :func:`process_alive`, lives in :mod:`minidocker.procfs`, for every layer).

**Restart policies** (``--restart``) are the supervisor's to carry out, by
:func:`should_restart` and :func:`restart_delay`: ``no``; ``on-failure[:N]`` (non-zero exit,
at most N times); ``always``; ``unless-stopped`` (as ``always``, but a container stopped by
hand stays stopped even when a new supervisor starts). ``stop`` and ``kill`` mark a container
``ManuallyStopped`` first, so its exit is not "restarted" by a policy, as in Docker.

Notebook: ``09_lifecycle``. Man pages: proc(5) (``/proc/<pid>/stat``), flock(2), rename(2),
wait(2), pidfd_open(2).
"""

from __future__ import annotations

import os
import time

from minidocker import procfs, state, timefmt
from minidocker.errors import ContainerError, ContainerNotFound, MinidockerError, UsageError
from minidocker.procfs import process_alive, process_start_time  # noqa: F401 -- for readers
from minidocker.state import loads  # noqa: F401 -- here for readers
from minidocker.timefmt import ZERO_TIME, format_time, now  # noqa: F401 -- for callers

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    Record = dict[str, Any]

STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")

# (from, to, what takes it). "*" is any state; "gone" is no container at all.
TRANSITIONS: tuple[tuple[str, str, str], ...] = (
    ("gone", "created", "create"),
    ("gone", "running", "run"),
    ("created", "running", "start"),
    ("running", "exited", "the process exits (wait(2) in its parent)"),
    ("running", "exited", "stop / kill"),
    ("running", "restarting", "the process exits; --restart says again"),
    ("restarting", "running", "the supervisor's restart timer"),
    ("restarting", "exited", "stop"),
    ("exited", "running", "start / restart"),
    ("running", "running", "restart (stop, then start)"),
    ("created", "gone", "rm"),
    ("exited", "gone", "rm / container prune / --rm"),
    ("running", "gone", "rm -f"),
)

RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
SIGTERM = 15  # signal.SIGTERM, without importing signal (enum: ~8 ms) on the run -d path
NO_EXIT_CODE = 255  # Docker's exit code for a container whose end nobody saw


class LifecycleError(ContainerError):
    """A command that does not fit the container's state (not running, running...).

    Exit code 1, as the docker CLI exits for any error the daemon reports."""

    exit_code = 1


def parse_signal(text: str) -> int:
    """``SIGTERM``, ``TERM``, ``term`` or ``15``, as Docker's ``--signal`` takes them."""
    import signal

    name = text.upper()
    if name.isdigit():
        number = int(name)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ \
            else None
        if sig is not None:
            return int(sig)
    raise LifecycleError(f"invalid signal: {text}")


# -- the kernel's view --------------------------------------------------------------------------

LIVE = ("running", "starting", "paused")  # recorded states that name a live process


def is_running(record: Record) -> bool:
    """Does the kernel still run the process this record names (paused counts)?"""
    return record.get("Status") in LIVE and process_alive(
        int(record.get("Pid") or 0), record.get("StartTime"))


def status(record: Record, supervisor_alive: bool = True) -> str:
    """The container's state as Docker names it, with the kernel's word over the record's."""
    recorded = record.get("Status") or "created"
    if recorded in LIVE:
        if not is_running(record):
            return "exited"
        return "paused" if recorded == "paused" or record.get("Paused") else "running"
    if recorded == "restarting" and not supervisor_alive:
        return "exited"  # its restart timer died with the supervisor
    return str(recorded)


def exit_code(record: Record) -> int:
    """The exit code to show: the recorded one, or 255 for an end nobody saw."""
    if record.get("Status") in LIVE and not is_running(record):
        return NO_EXIT_CODE  # a running record's ExitCode is the last run's, or a placeholder
    return int(record.get("ExitCode") or 0)


UNSEEN_END = ("the container ended while no minidocker process was its parent (a killed "
              "supervisor or run): how it ended is unknown")
READOPTED_END = ("the supervisor that started it was restarted while it ran, so the new one "
                 "was not its parent: how it ended is unknown (only a parent learns that)")


def unseen_end(record: Record, error: str = UNSEEN_END) -> Record:
    """The changes that record a death nobody reaped (a crashed supervisor or CLI)."""
    return {"Status": "exited", "Pid": 0, "ExitCode": NO_EXIT_CODE, "FinishedAt": now(),
            "Error": error}


# -- the record on disk -------------------------------------------------------------------------

class locked:
    """``with locked(cdir):`` hold the container's lock; ContainerNotFound if it is gone."""

    def __init__(self, cdir: str) -> None:
        self.cdir = cdir

    def __enter__(self) -> str:
        if not state.lock_container(self.cdir):
            raise ContainerNotFound(f"no such container: {os.path.basename(self.cdir)}")
        return self.cdir

    def __exit__(self, *exc: object) -> None:
        state.unlock_container(self.cdir)


def read(cdir: str, name: str, missing: Record | None = None) -> Record:
    """One JSON record of a container (``state``, ``config``, ``hostconfig``)."""
    try:
        with open(os.path.join(cdir, name + ".json"), "rb") as f:
            return loads(f.read().decode())
    except FileNotFoundError:
        if missing is not None:
            return dict(missing)
        raise ContainerNotFound(f"no such container: {os.path.basename(cdir)}") from None


def write(cdir: str, name: str, record: Record) -> None:
    state.write_json(os.path.join(cdir, name + ".json"), record)


def update_state(cdir: str, **changes: Any) -> Record:
    """Read, change and write ``state.json`` under the container's lock; the new record."""
    with locked(cdir):
        record = read(cdir, "state", {})
        record.update(changes)
        write(cdir, "state", record)
        return record


def list_ids(layout: state.Layout) -> list[str]:
    """Every container's ID (hidden ``.<id>.removing`` directories are being deleted)."""
    try:
        return [n for n in os.listdir(layout.containers) if not n.startswith(".")]
    except FileNotFoundError:
        return []


# -- time, as Docker writes it (the format itself: minidocker.timefmt) --------------------------

def parse_time(text: str) -> int:
    """A recorded time in nanoseconds since the epoch; 0 for one that never was (none
    recorded, or Go's zero time :data:`ZERO_TIME`), which sorts first and shows as such."""
    if not text or text == ZERO_TIME:
        return 0
    return timefmt.parse_time(text)


def human_duration(seconds: float) -> str:
    """Docker's ``units.HumanDuration``: "Less than a second", "5 minutes", "About an hour"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def status_text(record: Record, current: str, at_ns: int | None = None) -> str:
    """``ps``'s STATUS column: "Up 5 minutes", "Up 3 seconds (healthy)", "Exited (0) 2
    seconds ago", "Created"."""
    at_ns = time.time_ns() if at_ns is None else at_ns

    def since(field: str) -> str:
        return human_duration((at_ns - parse_time(record.get(field) or "")) / 1e9)

    if current == "running":
        if record.get("Health"):  # only then: the health module
            from minidocker import health

            return f"Up {since('StartedAt')}{health.ps_suffix(record['Health'])}"
        return f"Up {since('StartedAt')}"
    if current == "paused":
        return f"Up {since('StartedAt')} (Paused)"
    if current == "restarting":
        return f"Restarting ({exit_code(record)}) {since('FinishedAt')} ago"
    if not record.get("StartedAt") or record.get("StartedAt") == ZERO_TIME:
        return "Created"
    finished = record.get("FinishedAt")
    if not finished or finished == ZERO_TIME:  # died unseen: nobody wrote a finish time
        return f"Exited ({exit_code(record)})"
    return f"Exited ({exit_code(record)}) {since('FinishedAt')} ago"


# -- restart policies ---------------------------------------------------------------------------

def parse_restart_policy(text: str) -> dict[str, Any]:
    """``--restart`` as Docker's HostConfig.RestartPolicy: ``{"Name", "MaximumRetryCount"}``."""
    name, colon, count = text.partition(":")
    if colon and not name:
        raise UsageError(f"invalid restart policy format: no policy provided before colon: "
                         f"'{text}'")
    if name not in RESTART_POLICIES:
        raise UsageError(f"invalid restart policy '{text}': use one of 'no', 'always', "
                         "'on-failure[:max-retries]' or 'unless-stopped'")
    retries = 0
    if colon:
        if name != "on-failure":
            raise UsageError(f"invalid restart policy '{text}': maximum retry count can only "
                             "be used with 'on-failure'")
        if not count.isdigit():
            raise UsageError(f"invalid restart policy '{text}': maximum retry count must be "
                             "a non-negative integer")
        retries = int(count)
    return {"Name": name, "MaximumRetryCount": retries}


def should_restart(policy: dict[str, Any], code: int, restart_count: int,
                   manually_stopped: bool) -> bool:
    """Does ``policy`` start the container again after it exited with ``code``?"""
    name = policy.get("Name") or "no"
    if manually_stopped or name == "no":
        return False
    if name == "on-failure":
        limit = int(policy.get("MaximumRetryCount") or 0)
        return code != 0 and (limit == 0 or restart_count < limit)
    return name in ("always", "unless-stopped")


RESTART_DELAY_MIN = 0.1  # seconds: Docker's backoff starts at 100 ms...
RESTART_DELAY_MAX = 60.0  # ...doubles after each quick exit, up to a minute...
RESTART_RESET_AFTER = 10.0  # ...and starts over once a run lasted 10 s


def restart_delay(previous: float, ran_for: float) -> float:
    """The wait before the next restart, given the last one and how long the run lasted."""
    if ran_for >= RESTART_RESET_AFTER or previous <= 0:
        return RESTART_DELAY_MIN
    return min(previous * 2, RESTART_DELAY_MAX)


def start_on_boot(policy: dict[str, Any], record: Record) -> bool:
    """Does a new supervisor start this stopped container (Docker's daemon start-up rule)?"""
    name = policy.get("Name") or "no"
    return name == "always" or (name == "unless-stopped" and not record.get("ManuallyStopped"))


# -- the record type every reader uses ------------------------------------------------------------

class Container:
    """One container as every reader sees it (the commands, the engine's operations): its
    three records (``config``, ``hostconfig``, ``state``) and what the kernel says of it."""

    __slots__ = ("layout", "ref", "id", "dir", "config", "hostconfig", "state")

    def __init__(self, layout: state.Layout, ref: str) -> None:
        self.layout = layout
        self.ref = ref
        try:
            self.id = layout.resolve(ref)
        except ContainerNotFound:
            raise LifecycleError(f"no such container: {ref}") from None
        except UsageError as exc:  # an ambiguous prefix
            raise LifecycleError(str(exc)) from None
        self.dir = layout.container(self.id)
        self.config = read(self.dir, "config", {})
        if not self.config and not os.path.isdir(self.dir):
            raise LifecycleError(f"no such container: {ref}")
        self.hostconfig = read(self.dir, "hostconfig", {})
        self.state = read(self.dir, "state", {})

    def reload(self) -> None:
        self.state = read(self.dir, "state", {})

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.id[:12])

    def status(self, supervisor_alive: bool | None = None) -> str:
        if supervisor_alive is None:
            supervisor_alive = self.state.get("Status") != "restarting" or \
                _supervisor_alive(self.layout)
        return status(self.state, supervisor_alive)

    def running(self) -> bool:
        return is_running(self.state)

    def pidfd(self) -> int | None:
        """A pidfd for its first process if it still runs (pinned: no PID reuse after)."""
        if not self.running():
            return None
        fd = procfs.pidfd_open(int(self.state["Pid"]))
        if fd is None:
            return None
        if not process_alive(int(self.state["Pid"]), self.state.get("StartTime")):
            os.close(fd)
            return None
        return fd

    def stop_signal(self) -> int:
        name = str(self.hostconfig.get("StopSignal") or self.config.get("stop_signal") or "")
        if not name:
            name = _image_stop_signal(self.layout, str(self.config.get("image_id") or ""))
        try:
            return parse_signal(name) if name else SIGTERM
        except LifecycleError:
            return SIGTERM

    def cgroup(self) -> Any:
        """Its cgroup (a :class:`minidocker.cgroups.Cgroup`), or None if it has none."""
        from minidocker import cgroups

        record = self.state.get("Cgroup")
        if isinstance(record, dict):
            return cgroups.Cgroup.from_dict(record)
        return cgroups.find(self.id, str(self.config.get("cgroup_parent") or ""))


def _image_stop_signal(layout: state.Layout, image_id: str) -> str:
    """The image's STOPSIGNAL, for a container whose record predates keeping it."""
    if not image_id:
        return ""
    try:
        from minidocker.store import ImageStore

        config = ImageStore(layout.root).resolve(image_id).config.get("config") or {}
    except (MinidockerError, OSError, ValueError):
        return ""
    return str(config.get("StopSignal") or "")


def _supervisor_alive(layout: state.Layout) -> bool:
    return supervisor_pid(layout) is not None


def supervisor_pid(layout: state.Layout, which: str = "pid") -> int | None:
    """The live supervisor's PID (its pid file, checked against the kernel), or None;
    ``which="keeper.pid"``: its keeper's."""
    try:
        with open(os.path.join(layout.root, state.SUPERVISOR_DIR, which)) as f:
            pid, start = (int(x) for x in f.read().split())
    except (FileNotFoundError, ValueError):
        return None
    return pid if process_alive(pid, start) else None


def iter_records(layout: state.Layout) -> Iterator[tuple[str, Record]]:
    """``(id, state record)`` of every container; one removed meanwhile is skipped."""
    for cid in list_ids(layout):
        try:
            yield cid, read(layout.container(cid), "state", {})
        except (OSError, ValueError):
            continue
