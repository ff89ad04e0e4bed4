"""The notebooks' lab bench: run real containers in a child process, then look at what happened.

The notebooks never re-implement a mechanism: they start ``python -m minidocker run`` exactly as
a user would, and read what it did from three places the kernel and minidocker leave behind:

- the command's **output** (what the process inside the container saw);
- the **trace** (``run --trace-json FILE``): every step of the start sequence and every syscall
  under it, as the dicts described in :mod:`minidocker.trace`;
- **/proc on the host** (``/proc/<pid>/ns``, ``/proc/<pid>/status``): what the container looks
  like from outside, which is the point of lesson 00 -- a container is a process.

Why a child process, always: the Jupyter kernel runs threads (the heartbeat, the IOPub thread).
Namespaces belong to threads, not processes: unshare(2) would move only the calling thread,
setns(2) into a mount namespace and unshare(2) of a user namespace fail with ``EINVAL`` in a
threaded process, and a mount or pivot_root made by the kernel itself would change the view of
every cell that follows. So nothing here calls unshare, setns, mount or pivot_root: those
happen in ``minidocker run``, in a process made for the purpose, whose mount namespace dies
with it. The lab's only host state is one temporary directory, the state root
(``$MINIDOCKER_ROOT``), named ``mdlab-*``; :meth:`Lab.close` deletes it (nothing is ever mounted
on it on the host's side).

Typical use, in a notebook::

    from minidocker import lab
    LIVE, why = lab.can_run_live()      # False on mybinder.org: no root there
    bench = lab.Lab()
    r = bench.run("--rm", "busybox", "echo", "hello")
    r.stdout, r.exit_code, r.wall_ms
    print("\\n".join(lab.trace_lines(r.events)))
    lab.plot_timeline(r.events)
    bench.close()

Notebooks: ``00_why_containers``, ``01_namespaces``. Man pages: proc(5) (``/proc/<pid>/ns``,
``/proc/<pid>/status``), namespaces(7).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field

from minidocker import namespaces, trace
from minidocker.procfs import (  # noqa: F401 -- the lessons read /proc through the lab
    parse_status,
    pids_in_namespace,
    proc_status,
    rss_kib,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

    from matplotlib.axes import Axes

    from minidocker.trace import Event

STATE_ROOT_PREFIX = "mdlab-"
_LONG_ID = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{52}\b")

# The two sides of a trace (``where``), and their colours in the timeline.
_LANE_COLOURS = {"host": "#4c72b0", "container": "#dd8452"}


def can_run_live() -> tuple[bool, str]:
    """Can this machine run containers right now? ``(ok, why)``.

    Notebooks run their live cells only when ``ok``; otherwise they print ``why`` and explain
    (on mybinder.org the notebook server is not root, and namespaces and mounts need root).
    """
    try:
        from minidocker.doctor import can_run_containers
    except ImportError:  # an older tree without the doctor: the two checks that matter most
        if os.geteuid() != 0:
            return False, f"not root (uid {os.geteuid()}): namespaces and mounts need root"
        if not os.path.isdir("/proc/self/ns"):
            return False, "/proc/self/ns is missing: this kernel has no namespaces"
        return True, "root, and the kernel has namespaces"
    return can_run_containers()


def host_namespaces(pid: int | str = "self") -> dict[str, str]:
    """The namespaces a host process is in (default: this notebook's kernel), by kind."""
    return namespaces.ns_ids(pid)


# -- running minidocker -----------------------------------------------------------------------

@dataclass
class RunResult:
    """What one ``minidocker`` command did, seen from outside."""

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    wall_ms: float  # from starting the interpreter to its exit, as a user waits for it
    events: list[Event] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> RunResult:
        """Return self, or raise ``CalledProcessError`` (with stderr) if the command failed."""
        if self.exit_code != 0:
            error = subprocess.CalledProcessError(self.exit_code, self.argv, self.stdout,
                                                  self.stderr)
            error.add_note(f"stderr: {self.stderr.strip()}")  # what the learner needs to see
            raise error
        return self

    def __repr__(self) -> str:
        return (f"RunResult(exit_code={self.exit_code}, wall_ms={self.wall_ms:.1f}, "
                f"stdout={self.stdout!r}, stderr={self.stderr!r}, events=[{len(self.events)}])")


class Lab:
    """A private minidocker state root, and ways to run ``minidocker`` against it.

    Use it as a context manager, or call :meth:`close` at the end: both stop any container
    still running in the background and delete the state root.
    """

    def __init__(self, network_sandbox: bool = False) -> None:
        """``network_sandbox``: run every command in a network namespace of the lab's own, a
        *sandbox host* whose bridge, veths and nft rules vanish with it (lesson 06); without
        it, containers get ``--network none`` unless told otherwise, so a lesson never changes
        the host's interfaces or firewall."""
        # $MINIDOCKER_LAB_TAG: a test session marks its labs (and so their netns) as its own
        self.root = tempfile.mkdtemp(
            prefix=STATE_ROOT_PREFIX + os.environ.get("MINIDOCKER_LAB_TAG", ""))
        self._scratch = os.path.join(self.root, "lab")  # trace files and background output
        os.mkdir(self._scratch)
        self.netns = ""
        if network_sandbox:
            self.netns = os.path.basename(self.root) + "-net"
            subprocess.run(["ip", "netns", "add", self.netns], check=True)
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        self.env = {**os.environ, "MINIDOCKER_ROOT": self.root,
                    "MINIDOCKER_DEFAULT_NETWORK": "bridge" if network_sandbox else "none"}
        self._background: list[Background] = []
        self._count = 0
        # Also at interpreter exit: a notebook closed without running its clean-up cell must
        # leave no sleeping container and no mdlab-* directory behind.
        self._finalizer = weakref.finalize(self, _clean_up, self.root, self._background,
                                           self.netns)

    def argv(self, *args: str) -> list[str]:
        """The command line: this interpreter (the venv's, never a shim), ``-m minidocker``."""
        return [*self.enter(), sys.executable, "-m", "minidocker", *args]

    def enter(self) -> list[str]:
        """The prefix that runs a command on the sandbox host (nothing without one)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}"] if self.netns else []

    def host(self, *argv: str, check: bool = True) -> str:
        """Run a command (``ip``, ``nft``...) on the lab's host, the sandbox if it has one;
        its stdout."""
        return subprocess.run([*self.enter(), *argv], text=True, capture_output=True,
                              check=check).stdout

    def cli(self, *args: str, timeout: float = 60, input: str | None = None) -> RunResult:
        """Run any ``minidocker`` subcommand (``images``, ``doctor``, ``version``...)."""
        return self._call(self.argv(*args), timeout, input)

    def run(self, *args: str, timeout: float = 60, input: str | None = None,
            traced: bool = True) -> RunResult:
        """``minidocker run --trace-json FILE ARGS...``; the result carries the parsed events.

        ``traced=False`` leaves tracing off, for timing runs exactly as a user makes them.
        """
        if not traced:
            return self._call(self.argv("run", *args), timeout, input)
        fd, path = tempfile.mkstemp(prefix="trace-", suffix=".jsonl", dir=self._scratch)
        os.close(fd)
        try:
            result = self._call(self.argv("run", "--trace-json", path, *args), timeout, input)
            with open(path) as f:
                result.events = parse_events(f.read())
        finally:
            os.unlink(path)
        return result

    def _call(self, argv: list[str], timeout: float, input: str | None) -> RunResult:
        t0 = time.perf_counter()
        # On timeout, subprocess kills minidocker; the container dies with it (PR_SET_PDEATHSIG).
        done = subprocess.run(argv, env=self.env, input=input, text=True, capture_output=True,
                              timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
        wall_ms = (time.perf_counter() - t0) * 1000
        return RunResult(argv, done.returncode, done.stdout, done.stderr, wall_ms)

    def start(self, *args: str, name: str | None = None) -> Background:
        """``minidocker run --name NAME ARGS...`` left running, as ``docker run -d`` would.

        Returns at once; :meth:`Background.pid` waits until the command is running.
        """
        self._count += 1
        name = name or f"lab{self._count}"
        log = os.path.join(self._scratch, f"{name}.log")
        with open(log, "w") as out:  # the child keeps its own copy of the descriptor
            popen = subprocess.Popen(self.argv("run", "--name", name, *args), env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, text=True)
        bg = Background(self, name, popen, log)
        self._background.append(bg)
        return bg

    def container_namespaces(self, *options: str) -> dict[str, str]:
        """The namespaces of a container's process, read by that process itself.

        ``options`` go before the image (``"--pid", "host"``). Each line the container prints is
        ``readlink /proc/self/ns/<kind>`` for every kind in :data:`namespaces.NAMESPACES`.
        """
        script = "; ".join(f"readlink /proc/self/ns/{kind}" for kind, _, _ in
                           namespaces.NAMESPACES)
        result = self.run("--rm", *options, "busybox", "sh", "-c", script,
                          traced=False).check()
        return parse_ns_lines(result.stdout)

    def close(self) -> None:
        """Stop background containers and delete the state root. Safe to call twice."""
        self._finalizer()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _clean_up(root: str, background: list[Background], netns: str = "") -> None:
    for bg in background:
        bg.stop()
    background.clear()
    if os.path.isdir(os.path.join(root, "supervisor")):  # run -d started one: stop it, by PID
        from minidocker import client, state

        client.stop_everything(state.Layout(root))
    if netns:  # its bridge, veths and rules go with it
        subprocess.run(["ip", "netns", "del", netns], check=False)
    shutil.rmtree(root, ignore_errors=True)


class Background:
    """A container left running by :meth:`Lab.start`."""

    def __init__(self, lab: Lab, name: str, popen: subprocess.Popen[str], log: str) -> None:
        self.lab = lab
        self.name = name
        self.popen = popen
        self.log = log  # the container's stdout and stderr, and minidocker's
        self._pid: int | None = None

    def pid(self, timeout: float = 60) -> int:
        """The host's PID of the container's first process (``docker inspect -f .State.Pid``).

        minidocker records it in the container's ``state.json`` once the command has exec'd.
        A ``run`` that exits raises at once; ``timeout`` only bounds one that hangs, and is as
        long as :meth:`Lab.run`'s: the first start in a lab unpacks the image, which takes
        over 10 s on the learners' VM under emulation while other work runs.
        """
        if self._pid is not None:
            return self._pid
        from minidocker.errors import ContainerNotFound
        from minidocker.state import Layout, read_json

        layout = Layout(self.lab.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"container {self.name} exited {self.popen.returncode}: "
                                   f"{self.output()}")
            try:
                state = read_json(layout.container(layout.resolve(self.name), "state.json"))
            except (ContainerNotFound, OSError, ValueError):  # not there yet, or mid-rename
                state = {}
            if state.get("Status") == "running":
                self._pid = int(str(state["Pid"]))
                return self._pid
            time.sleep(0.01)
        raise TimeoutError(f"container {self.name} did not start within {timeout}s")

    def output(self) -> str:
        """What the container (and minidocker) printed so far."""
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:  # the lab was closed
            return ""

    def stop(self, timeout: float = 10) -> int:
        """``docker kill``: SIGKILL the container's first process; return the exit code.

        SIGKILL because PID 1 ignores signals it has no handler for (see :mod:`minidocker.init`):
        a ``sleep`` would shrug off SIGTERM. The kernel then kills the rest of its PID namespace.
        """
        if self.popen.poll() is None:
            with contextlib.suppress(RuntimeError, TimeoutError):  # exited, or never started
                self.pid(timeout)
            if self._pid is not None:
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.kill(self._pid, signal.SIGKILL)
            else:  # never ran: kill minidocker itself
                self.popen.kill()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def __enter__(self) -> Background:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def wall_ms(argv: list[str]) -> float:
    """How long running ``argv`` to completion takes, in ms (a baseline for start-up times)."""
    t0 = time.perf_counter()
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t0) * 1000


def join_latency(rounds: int = 15) -> dict[str, list[float]]:
    """Milliseconds from fork until a child is in a new cgroup, through ``cgroup.procs`` and
    minidocker's way (:mod:`minidocker.cgroups.joinbench`, run in a process of its own)."""
    r = subprocess.run([sys.executable, "-m", "minidocker.cgroups.joinbench", "--rounds",
                        str(rounds)], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


# -- the trace, as tables and pictures -------------------------------------------------------

def parse_events(text: str) -> list[Event]:
    """The JSON lines of ``--trace-json`` as a list of event dicts, in time order."""
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    return sorted(events, key=lambda ev: ev["t_ms"])


def trace_lines(events: list[Event], root: str | None = None) -> list[str]:
    """One strace-like line per event (:func:`minidocker.trace.format_event`).

    With ``root`` (a :attr:`Lab.root`), paths under it print as ``$ROOT/...`` and 64-digit
    container and layer IDs as their first 12 digits, so the lines fit on a screen.
    """
    lines = [trace.format_event(ev) for ev in events]
    if root is not None:
        lines = [_LONG_ID.sub(r"\1", line.replace(root, "$ROOT")) for line in lines]
    return lines


@dataclass
class Step:
    """A step of the start sequence and the kernel calls made during it, on one side."""

    name: str
    detail: str
    where: str
    start_ms: float
    end_ms: float
    calls: list[Event] = field(default_factory=list)  # syscalls, writes and notes

    @property
    def syscalls(self) -> list[Event]:
        return [ev for ev in self.calls if ev["kind"] != "note"]


def steps(events: list[Event]) -> list[Step]:
    """Group each syscall, write and note under the last step announced on its side.

    The host's side (the ``minidocker`` process) and the container's side (its first process)
    run one after the other but are traced separately, so grouping follows ``where``. A step
    ends where the next one on its side starts; the last one on a side ends with its last call.
    Calls on a side before any step there go under a step named ``(start)``.
    """
    ordered = sorted(events, key=lambda ev: ev["t_ms"])
    out: list[Step] = []
    current: dict[str, Step] = {}
    for ev in ordered:
        where = ev["where"]
        if ev["kind"] == "step":
            if where in current:
                current[where].end_ms = ev["t_ms"]
            current[where] = Step(ev["call"], ev["args"][0] if ev["args"] else "", where,
                                  ev["t_ms"], ev["t_ms"])
            out.append(current[where])
            continue
        if where not in current:
            start = ev["t_ms"] - ev["ms"]
            current[where] = Step("(start)", "", where, start, start)
            out.append(current[where])
        current[where].calls.append(ev)
    for step in current.values():  # the last step of each side
        step.end_ms = max([step.start_ms] + [ev["t_ms"] for ev in step.calls])
    return out


def _start_of(ev: Event) -> float:
    """A call's start: events are recorded when the call returns, ``ms`` after it began."""
    return float(ev["t_ms"]) - float(ev["ms"])


def plot_timeline(events: list[Event], ax: Axes | None = None, title: str | None = None) -> Axes:
    """A Gantt chart of the start sequence: one row per step, in time order, coloured by side.

    A pale bar spans each step; the dark ticks inside it are its syscalls, as wide as they took;
    the number after a step's name counts them. On the host, ``fork`` lasts until the container
    has run and exited: the ``minidocker`` process waits for it. (Steps and calls shorter than
    a pixel are drawn a pixel wide so none disappears.)
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    groups = steps(events)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, max(2.0, 0.28 * len(groups) + 1)),
                             layout="constrained")
    if not groups:
        ax.set_title(title or "no trace events")
        return ax
    t_min = min(min(g.start_ms for g in groups),
                min((_start_of(ev) for g in groups for ev in g.calls), default=float("inf")))
    t_max = max(g.end_ms for g in groups)
    min_w = max(t_max - t_min, 1e-3) / 400
    rows = sorted(groups, key=lambda g: g.start_ms)
    for y, g in enumerate(rows):
        colour = _LANE_COLOURS.get(g.where, "grey")
        ax.broken_barh([(g.start_ms, max(g.end_ms - g.start_ms, min_w))], (y - 0.4, 0.8),
                       facecolors=colour, alpha=0.3)
        bars = [(_start_of(ev), max(float(ev["ms"]), min_w)) for ev in g.calls
                if ev["kind"] != "note"]
        ax.broken_barh(bars, (y - 0.3, 0.6), facecolors=colour)
    ax.set_yticks(range(len(rows)), [f"{g.name} ({len(g.syscalls)})" for g in rows],
                  fontsize=8)
    for label, g in zip(ax.get_yticklabels(), rows, strict=True):
        label.set_color(_LANE_COLOURS.get(g.where, "grey"))
    ax.invert_yaxis()
    ax.set_xlabel("ms since minidocker started tracing")
    ax.legend(handles=[Patch(color=c, label=lane) for lane, c in _LANE_COLOURS.items()],
              fontsize=8, loc="lower right")
    ax.set_title(title or "start sequence: steps (pale) and their syscalls (dark)", fontsize=9)
    return ax


# -- namespaces side by side -----------------------------------------------------------------

@dataclass(frozen=True)
class NsRow:
    kind: str
    isolates: str
    host: str
    container: str

    @property
    def shared(self) -> bool:
        """Same inode, same namespace: the container shares this one with the host."""
        return self.host == self.container


def parse_ns_lines(text: str) -> dict[str, str]:
    """``"pid:[4026532263]\\nmnt:[...]"`` (readlink output) -> ``{"pid": "pid:[4026532263]"}``."""
    ids = {}
    for line in text.split():
        kind, sep, _ = line.partition(":[")
        if sep:
            ids[kind] = line
    return ids


def ns_table(host: dict[str, str], container: dict[str, str]) -> list[NsRow]:
    """One row per kind in :data:`minidocker.namespaces.NAMESPACES`, host and container ids."""
    return [NsRow(kind, isolates, host.get(kind, "-"), container.get(kind, "-"))
            for kind, _, isolates in namespaces.NAMESPACES]


def format_ns_table(rows: list[NsRow]) -> str:
    """The rows as a fixed-width text table, with a last column saying shared or new."""
    header = ("kind", "isolates", "host", "container", "")
    body = [(r.kind, r.isolates, r.host, r.container, "shared" if r.shared else "NEW")
            for r in rows]
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *body])


# -- the lifecycle: process trees and state diagrams (lesson 09) ------------------------------

def process_tree(pid: int, depth: int = 0) -> list[str]:
    """``pid`` and its descendants as seen from the host, one indented line each:
    ``PID  comm  [pid namespace]  command line`` (what ``ps --forest`` shows)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        ns = os.readlink(f"/proc/{pid}/ns/pid")
        children: list[int] = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(c) for c in f.read().split()]
    except OSError:  # it exited while we looked
        return []
    if len(cmdline) > 60:
        cmdline = cmdline[:57] + "..."
    lines = [f"{'    ' * depth}{pid:<7} {comm:<14} {ns:<18} {cmdline}"]
    for child in sorted(children):
        lines += process_tree(child, depth + 1)
    return lines


# Where each state sits in the diagram (x, y).
_STATE_XY = {"gone": (0.0, 1.0), "created": (1.5, 2.0), "running": (3.0, 1.0),
             "restarting": (3.0, -0.4), "exited": (5.0, 1.0)}


def plot_lifecycle(transitions: tuple[tuple[str, str, str], ...],
                   path: list[tuple[str, str, str]], ax: Axes | None = None) -> Axes:
    """Docker's container states and the edges between them (``lifecycle.TRANSITIONS``), with
    the edges one container actually took (``path``: ``(from, to, command)``, observed live)
    drawn thick and numbered in the order it took them."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Arc

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3), layout="constrained")
    ax.set_aspect("equal", adjustable="box")  # so an arc bends the same way in data units
    taken: dict[tuple[str, str], list[int]] = {}
    for i, (a, b, _) in enumerate(path, 1):
        taken.setdefault((a, b), []).append(i)
    edges = {(a, b) for a, b, _ in transitions} | set(taken)
    edges = {(a, b) for a, b in edges if a in _STATE_XY and b in _STATE_XY}
    orange, grey = "#dd8452", "#999999"
    for a, b in sorted(edges):
        used = (a, b) in taken
        colour, width = (orange, 2.2) if used else (grey, 0.8)
        x0, y0 = _STATE_XY[a]
        if a == b:  # a loop above the state (restart: running -> running)
            ax.add_patch(Arc((x0, y0 + 0.45), 0.6, 0.6, theta1=-40, theta2=220, color=colour,
                             lw=width))
            label_xy = (x0, y0 + 0.9)
        else:
            x1, y1 = _STATE_XY[b]
            rad = 0.25 if (b, a) in edges else 0.12
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "-|>", "lw": width, "color": colour,
                                    "connectionstyle": f"arc3,rad={rad}", "shrinkA": 16,
                                    "shrinkB": 16})
            # arc3's control point is the midpoint moved rad * (dy, -dx); the curve's own
            # midpoint is half way there.
            dx, dy = x1 - x0, y1 - y0
            label_xy = ((x0 + x1) / 2 + 0.5 * rad * dy, (y0 + y1) / 2 - 0.5 * rad * dx)
        if used:
            ax.text(*label_xy, ",".join(map(str, taken[(a, b)])), fontsize=8, color=orange,
                    ha="center", va="center", fontweight="bold",
                    bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": "none"})
    visited = {s for a, b, _ in path for s in (a, b)}
    for state, (x, y) in _STATE_XY.items():
        ax.text(x, y, state, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "fc": "#4c72b0" if state in visited else "white",
                      "ec": "#4c72b0"},
                color="white" if state in visited else "#4c72b0")
    ax.set_xlim(-0.6, 5.6)
    ax.set_ylim(-0.8, 2.5)
    ax.axis("off")
    ax.set_title("container states (Docker's), and the edges one container took", fontsize=9)
    return ax
