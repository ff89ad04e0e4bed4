"""Where a container's start goes: a run's trace by mechanism, and start times against runc/crun.

Two measurements for the capstone lesson, each from what minidocker and the kernel leave behind:

- **the trace, by mechanism.** ``run --trace-json`` records each step of the start on two sides,
  the ``minidocker`` process (``host``) and the container's first process (``container``). The
  two take turns: the host forks and waits; the child makes its namespaces and waits while the
  host wires its network; the child builds its root and execs. So the steps of both sides, put
  on one line in time order, each lasting until the next one starts, tile the start without
  overlap. :func:`spans` does that, and names each step's mechanism (:data:`MECHANISM`). The
  ``exec`` step ends with its ``execve``: what follows, until the host's next step, is the
  command running, and the steps after it are the teardown.
- **start times side by side.** ``minidocker run --rm`` against ``runc run`` and ``crun run``
  of an OCI bundle holding the same busybox files (:func:`oci_bundle`), in rounds, interleaved,
  so a busy machine slows all of them alike; only the ratios of medians mean something. The
  timing runs in a process of its own (``python -m minidocker.labtime``, JSON in and out): the
  Jupyter kernel is threaded, and crun on a cgroup v1 "hybrid" host needs a mount namespace
  without ``/sys/fs/cgroup/unified`` (crun refuses hybrid hosts whose cgroup2 mount holds a
  controller), which only a single-threaded process can enter with setns(2).
  ``benchmarks/startup.py`` is the careful version (the same confinement on every side, p10/p90).

Notebook: ``10_capstone``. Man pages: runc(8), crun(1), setns(2), cgroups(7).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from minidocker.lab import Lab
    from minidocker.trace import Event

# The start's steps (``trace.step`` names in container.py, inside.py, networking.py...), by the
# mechanism they belong to; lesson numbers in the comments.
MECHANISM = {
    **dict.fromkeys(("unshare", "fork", "namespaces", "die-with-parent", "hostname", "setns",
                     "userns"), "namespaces"),                                    # 01
    **dict.fromkeys(("cgroup", "reclaim", "devices cgroup", "device filter"), "cgroups"),  # 02
    **dict.fromkeys(("prepare", "rootfs", "mounts", "devices", "masks", "read-only", "seed",
                     "volumes", "detached mounts", "idmapped rootfs", "unlist", "delete"),
                    "rootfs/overlay"),                                            # 04, 08
    **dict.fromkeys(("ports", "host", "bridge", "address", "veth", "inside", "publish",
                     "network", "release"), "network"),                           # 06
    **dict.fromkeys(("security", "user"), "security"),                            # 03
    **dict.fromkeys(("exec", "exited", "created", "kill"), "exec"),               # 09
}
# Before the first step: the interpreter is up, and minidocker imports the engine, reads the
# flags, finds the image and makes its plan.
BEFORE = "minidocker"
MECHANISMS = (BEFORE, "namespaces", "cgroups", "rootfs/overlay", "network", "security", "exec")
COLOURS = dict(zip(MECHANISMS, ("#999999", "#4c72b0", "#55a868", "#dd8452", "#8172b3",
                                "#c44e52", "#937860"), strict=True))


@dataclass
class Span:
    """One step on the run's single line of time."""

    name: str
    where: str  # host or container
    mechanism: str
    start_ms: float
    end_ms: float
    phase: str  # "start" (up to execve) or "teardown" (after the command)

    @property
    def ms(self) -> float:
        return self.end_ms - self.start_ms


def spans(events: list[Event]) -> list[Span]:
    """The steps of both sides in time order, each until the next starts (see the module)."""
    ordered = sorted(events, key=lambda ev: ev["t_ms"])
    marks = [i for i, ev in enumerate(ordered) if ev["kind"] == "step"]
    if not marks:
        return []
    first = ordered[marks[0]]["t_ms"]
    out = [Span(BEFORE, "host", BEFORE, 0.0, first, "start")]
    phase = "start"
    for n, i in enumerate(marks):
        ev = ordered[i]
        nxt = marks[n + 1] if n + 1 < len(marks) else len(ordered)
        end = ordered[nxt]["t_ms"] if nxt < len(ordered) else ordered[-1]["t_ms"]
        if ev["call"] == "exec" and phase == "start":
            # up to its execve; the command's own run is no part of the start
            end = max([ev["t_ms"]] + [e["t_ms"] for e in ordered[i + 1:nxt]
                                      if e["where"] == ev["where"]])
        out.append(Span(ev["call"], ev["where"], MECHANISM.get(ev["call"], "exec"),
                        ev["t_ms"], end, phase))
        if ev["call"] == "exec":
            phase = "teardown"
    return out


def totals(found: list[Span], phase: str = "start") -> dict[str, float]:
    """Milliseconds per mechanism in one phase, in :data:`MECHANISMS` order."""
    return {m: sum(s.ms for s in found if s.mechanism == m and s.phase == phase)
            for m in MECHANISMS}


def plot_spans(found: list[Span], title: str = "") -> Figure:
    """Left: when each mechanism worked, one lane each (teardown pale). Right: the totals."""
    import matplotlib.pyplot as plt

    fig, (lanes, bars) = plt.subplots(1, 2, figsize=(10, 3.4), width_ratios=(3, 1.2),
                                      sharey=True, layout="constrained")
    for s in found:
        y = MECHANISMS.index(s.mechanism)
        alpha = 1.0 if s.phase == "start" else 0.35
        lanes.broken_barh([(s.start_ms, max(s.ms, 0.05))], (y - 0.35, 0.7),
                          facecolors=COLOURS[s.mechanism], alpha=alpha)
        if s.ms > 8 and s.mechanism != BEFORE:
            lanes.text(s.start_ms + s.ms / 2, y + 0.5, s.name, ha="center", va="center",
                       fontsize=6)
    execs = [s for s in found if s.name == "exec"]
    if execs:
        lanes.axvline(execs[0].end_ms, color="black", lw=0.8, ls="--")
        lanes.text(execs[0].end_ms, len(MECHANISMS) - 0.6, " execve", fontsize=7)
    lanes.set_yticks(range(len(MECHANISMS)), MECHANISMS, fontsize=8)
    lanes.invert_yaxis()
    lanes.set_xlabel("ms since minidocker began tracing (pale: after the command)")
    lanes.set_title(title or "one run, step by step, by mechanism", fontsize=9)
    start, teardown = totals(found), totals(found, "teardown")
    ys = range(len(MECHANISMS))
    bars.barh(ys, list(start.values()), color=[COLOURS[m] for m in MECHANISMS])
    bars.barh(ys, list(teardown.values()), left=list(start.values()),
              color=[COLOURS[m] for m in MECHANISMS], alpha=0.35)
    for y, m in enumerate(MECHANISMS):
        bars.text(start[m] + teardown[m], y, f" {start[m]:.0f}", va="center", fontsize=7)
    bars.set_xlabel("ms (dark: start, pale: teardown)")
    bars.set_title("time per mechanism", fontsize=9)
    return fig


# -- start times side by side with runc and crun ------------------------------------------------

CGROUP_UNIFIED = "/sys/fs/cgroup/unified"


def runtime_missing(tool: str) -> str:
    """Why ``tool`` cannot be measured here ("" when it can)."""
    if shutil.which(tool) is None:
        return f"{tool} is not installed (apt-get install {tool})"
    return ""


def oci_bundle(bench: Lab, bundle: str, args: tuple[str, ...] = ("/bin/true",)) -> str:
    """An OCI bundle at ``bundle`` of the lab's busybox image: ``rootfs/`` from ``export`` of a
    container made from it, ``config.json`` from ``minidocker-runtime spec`` with ``args``, no
    terminal, a writable root and a cgroup namespace too (as ``run`` gives). Returns
    ``bundle``."""
    os.makedirs(os.path.join(bundle, "rootfs"))
    cid = bench.cli("create", "busybox").check().stdout.strip()
    try:
        exported = subprocess.run([*bench.argv("export", cid)], env=bench.env,
                                  capture_output=True, check=True).stdout
    finally:
        bench.cli("rm", cid).check()
    subprocess.run(["tar", "-x", "-C", os.path.join(bundle, "rootfs")], input=exported,
                   check=True)
    beside = os.path.join(os.path.dirname(sys.executable), "minidocker-runtime")
    runtime = beside if os.path.exists(beside) else shutil.which("minidocker-runtime")
    subprocess.run([runtime or "minidocker-runtime", "spec"], cwd=bundle, check=True,
                   capture_output=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"].update(args=list(args), terminal=False)
    config["root"]["readonly"] = False
    kinds = [n["type"] for n in config["linux"]["namespaces"]]
    config["linux"]["namespaces"] += [{"type": "cgroup"}] if "cgroup" not in kinds else []
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return bundle


def oci_run(tool: str, bundle: str, state: str) -> list[str]:
    """``runc run``/``crun run`` with a private ``--root``; ``{id}`` is the container's id."""
    return [shutil.which(tool) or tool, "--root", state, "run", "--bundle", bundle, "{id}"]


def start_times(commands: dict[str, list[str]], env: dict[str, str], rounds: int = 10,
                warmup: int = 2) -> dict[str, list[float]]:
    """Milliseconds each command takes to run to its end, ``rounds`` times, interleaved, after
    ``warmup`` untimed runs each, measured by ``python -m minidocker.labtime`` (a process of
    its own). ``{id}`` in a command becomes a fresh container id. A command named ``crun``
    runs in a mount namespace without the cgroup2 mount where crun would refuse the host."""
    request = {"commands": commands, "rounds": rounds, "warmup": warmup}
    done = subprocess.run([sys.executable, "-m", "minidocker.labtime"], env=env,
                          input=json.dumps(request), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the timing process failed: {done.stderr.strip()[-800:]}")
    return dict(json.loads(done.stdout))


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(ms) for name, ms in samples.items()}


def _crun_namespace() -> int | None:
    """A mount namespace without /sys/fs/cgroup/unified, when crun needs one (an fd to it)."""
    try:
        with open(os.path.join(CGROUP_UNIFIED, "cgroup.controllers")) as f:
            if not f.read().strip():
                return None
    except FileNotFoundError:  # pure v1 or pure v2: crun is content
        return None
    from minidocker import syscalls
    from minidocker.syscalls import CLONE, MNT, MS

    ours = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.unshare(CLONE.NEWNS)
        try:
            # a slave first: the umount must not propagate back to the host
            syscalls.mount(None, "/", None, MS.REC | MS.SLAVE)
            syscalls.umount2(CGROUP_UNIFIED, MNT.DETACH)
            return os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            syscalls.setns(ours, CLONE.NEWNS)
    finally:
        os.close(ours)


def _time_one(argv: list[str], ns: int | None, ours: int) -> float:
    from minidocker import syscalls
    from minidocker.syscalls import CLONE

    if ns is not None:
        syscalls.setns(ns, CLONE.NEWNS)
    try:
        t0 = time.perf_counter()
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        ms = (time.perf_counter() - t0) * 1000
    finally:
        if ns is not None:
            syscalls.setns(ours, CLONE.NEWNS)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return ms


def main() -> int:
    """The timing process: a request as JSON on stdin, ``{name: [ms, ...]}`` on stdout."""
    request = json.load(sys.stdin)
    commands: dict[str, list[str]] = request["commands"]
    spaces = {name: _crun_namespace() if name == "crun" else None for name in commands}
    ours = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    count = 0
    for n in range(request["warmup"] + request["rounds"]):
        for name, argv in commands.items():
            count += 1
            ids = [a.replace("{id}", f"labtime-{os.getpid()}-{count}") for a in argv]
            ms = _time_one(ids, spaces[name], ours)
            if n >= request["warmup"]:
                samples[name].append(round(ms, 3))
    json.dump(samples, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
