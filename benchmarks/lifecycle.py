"""Detached containers: 50 ``run -d busybox sleep 600`` side by side with runc (and crun).

Three questions, answered in one run (see benchmarks/README.md for how to read the figures):

1. **Start**: how long do N detached containers take to start, one after the other, as a
   user's script would start them? One sample is the wall time of one command, from asking
   until it has returned with the container running: ``minidocker run -d --network none
   busybox sleep 600`` against ``runc run -d`` (and ``crun run -d``) of the same busybox
   filesystem in a bundle with the same namespaces (pid, mount, uts, ipc, network with lo
   only, cgroup). The runtimes are **interleaved container by container** (minidocker #1,
   runc #1, crun #1, minidocker #2...), so a noisy neighbour hits all alike; the figure is the
   sum over the N containers, median over the rounds, and its ratio to runc's.
2. **Memory**: what does a running container cost the host beyond its own processes? For
   minidocker, the growth of the supervisor's (and its keeper's) memory from zero to N
   containers, divided by N: RSS, and PSS (proportional set size, which splits pages shared
   between processes fairly). runc and crun leave no process of their own behind (whoever
   started them must be the parent: for Docker a containerd-shim, for podman a ``conmon``
   each); podman's conmon is measured here if podman is installed.
3. **Teardown**: how long does removing all N take? minidocker as a user types it (``rm -f``
   with all N IDs) and as runc must do it (one ``rm -f`` per container); runc and crun
   ``delete -f`` per container. Not interleaved: each tears down its own batch in turn.

Everything lives in one ``mkdtemp`` directory (state roots, bundles, runc/crun ``--root``);
it is removed at the end, after every container is gone and minidocker's supervisor stopped.
This process makes itself a child subreaper (prctl), so the containers runc and crun leave
behind are re-parented to it, as they would be to a shim, and reaped.

    sudo .venv/bin/python benchmarks/lifecycle.py [-n 50] [--rounds 3] [--only runc,crun]
        [--json]

Man pages: runc(8), crun(1), proc(5) (``VmRSS``, ``smaps_rollup``), prctl(2).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import startup  # noqa: E402 -- the bundle, rootfs and crun helpers, shared

REPO = startup.REPO
PR_SET_CHILD_SUBREAPER = 36
MINIDOCKER_RUN = ("run", "-d", "--network", "none", "busybox", "sleep", "600")
PODMAN_SAMPLE = 5  # conmon processes to average over


@dataclass
class Side:
    """One runtime: how to start container i, how to remove a batch, what it measured."""

    name: str
    start: list[str]  # argv prefix; the container's name or ID goes last (see argv())
    by_name: bool  # runc/crun: the id is ours to choose; minidocker prints its own
    env: dict[str, str]
    mount_ns: int | None = None  # crun on hybrid cgroup hosts (see startup.py)
    ids: list[str] = field(default_factory=list)
    start_ns: list[int] = field(default_factory=list)  # per container, this round
    totals_ns: list[int] = field(default_factory=list)  # per round
    teardown: dict[str, list[int]] = field(default_factory=dict)

    def argv(self, name: str) -> list[str]:
        return [*self.start, name] if self.by_name else \
            [*self.start[:2], "--name", name, *self.start[2:]]


def _run(side: Side, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    with startup.in_mount_ns(side.mount_ns):
        return subprocess.run(argv, env=side.env, text=True, check=False,  # type: ignore[call-overload]
                              **kw)


def start_one(side: Side, name: str) -> None:
    argv = side.argv(name)
    t0 = time.perf_counter_ns()
    with startup.in_mount_ns(side.mount_ns):
        proc = subprocess.run(argv, env=side.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE if not side.by_name else subprocess.DEVNULL,
                              stderr=subprocess.PIPE if not side.by_name else subprocess.DEVNULL,
                              text=True, check=False)
    side.start_ns.append(time.perf_counter_ns() - t0)
    if proc.returncode != 0:
        raise startup.BenchError(f"{side.name}: {' '.join(argv)} exited {proc.returncode}: "
                                 f"{(proc.stderr or '').strip()[-300:]}")
    side.ids.append(proc.stdout.strip() if not side.by_name else name)


def tear_down(side: Side, minidocker: str, batch: bool) -> int:
    """Remove every container of ``side``; the wall time in ns."""
    t0 = time.perf_counter_ns()
    if side.by_name:
        tool = side.start[0]
        for cid in side.ids:
            _run(side, [tool, side.start[1], side.start[2], "delete", "-f", cid],
                 capture_output=True)
    elif batch:
        _run(side, [minidocker, "rm", "-f", *side.ids], capture_output=True)
    else:
        for cid in side.ids:
            _run(side, [minidocker, "rm", "-f", cid], capture_output=True)
    elapsed = time.perf_counter_ns() - t0
    side.ids.clear()
    reap()
    return elapsed


def reap() -> None:
    """Containers that runc/crun left to us (we are their subreaper) are waited for here."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# -- memory -------------------------------------------------------------------------------------

def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and Pss of one process, in KiB (proc(5))."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                found["rss"] = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                found["pss"] = int(line.split()[1])
    return found


def host_side(root: Path) -> dict[str, dict[str, int]]:
    """The supervisor's and keeper's memory (their PIDs from their pid files)."""
    out = {}
    for name, file in (("supervisor", "pid"), ("keeper", "keeper.pid")):
        path = root / "supervisor" / file
        if path.exists():
            pid = int(path.read_text().split()[0])
            with contextlib.suppress(FileNotFoundError):
                out[name] = memory_kib(pid)
    return out


def conmon_kib(base: Path, layer: Path | None) -> dict[str, object]:
    """podman's per-container monitor, conmon: RSS and PSS, averaged over a few containers."""
    podman = shutil.which("podman")
    if podman is None:
        return {"skipped": "podman is not installed"}
    store = [podman, "--root", str(base / "podman-root"), "--runroot", str(base / "podman-run"),
             "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend",
             "none"]
    rootfs = base / "podman-rootfs"
    startup.build_rootfs(rootfs, layer)
    tarball = base / "busybox.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    imported = subprocess.run([*store, "import", str(tarball), "localhost/mdlife:latest"],
                              capture_output=True, text=True, check=False)
    if imported.returncode != 0:
        return {"skipped": f"podman import failed: {imported.stderr.strip()[-200:]}"}
    try:
        for i in range(PODMAN_SAMPLE):
            run = subprocess.run([*store, "run", "-d", "--runtime", "runc", "--network", "none",
                                  "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                                  "--name", f"mdlife-{i}", "localhost/mdlife:latest",
                                  "sleep", "600"], capture_output=True, text=True, check=False)
            if run.returncode != 0:
                return {"skipped": f"podman run failed: {run.stderr.strip()[-200:]}"}
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()
                and _comm(p) == "conmon" and str(base) in _cmdline(p)]
        sizes = [memory_kib(pid) for pid in pids]
        if not sizes:
            return {"skipped": "no conmon process found"}
        return {"processes": len(sizes),
                "rss_kib": statistics.mean(s["rss"] for s in sizes),
                "pss_kib": statistics.mean(s["pss"] for s in sizes)}
    finally:
        subprocess.run([*store, "rm", "-af", "-t", "0"], capture_output=True, check=False)
        reap()


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# -- the run ------------------------------------------------------------------------------------

def make_sides(base: Path, only: set[str], minidocker: str, env: dict[str, str],
               say: object) -> list[Side]:
    layer = startup.find_minidocker_layer(base / "minidocker-root")
    sides = [Side("minidocker", [minidocker, *MINIDOCKER_RUN], False, env)]
    for tool in ("runc", "crun"):
        if tool not in only:
            continue
        path = shutil.which(tool)
        if path is None:
            print(f"{tool}: not installed, skipped", file=sys.stderr)
            continue
        workdir = base / f"spec-{tool}"
        workdir.mkdir()
        config = startup.bundle_config(path, workdir)
        config["process"]["args"] = ["/bin/sleep", "600"]  # type: ignore[index]
        bundle = base / f"bundle-{tool}"
        startup.make_bundle(bundle, config, layer)
        state = base / f"state-{tool}"
        mount_ns = startup.mount_ns_without_unified_cgroup() \
            if tool == "crun" and startup.crun_needs_hidden_unified() else None
        sides.append(Side(tool, [path, "--root", str(state), "run", "-d", "--bundle",
                                 str(bundle)], True, env, mount_ns))
    return sides


def measure(args: argparse.Namespace, base: Path) -> dict[str, object]:
    minidocker = str(startup.DEFAULT_MINIDOCKER)
    root = base / "minidocker-root"
    env = {**os.environ, "MINIDOCKER_ROOT": str(root)}
    subprocess.run([minidocker, "run", "--rm", "--network", "none", "busybox", "true"],
                   env=env, check=True)  # the image, unpacked
    created = subprocess.run([minidocker, "create", "--network", "none", "busybox", "true"],
                             env=env, check=True, capture_output=True, text=True)
    subprocess.run([minidocker, "rm", created.stdout.strip()], env=env, check=True,
                   capture_output=True)  # the supervisor runs now, with no container
    idle = host_side(root)
    sides = make_sides(base, set(args.only.split(",")), minidocker, env, None)
    loaded: dict[str, dict[str, int]] = {}
    for r in range(args.rounds):
        for side in sides:
            side.start_ns.clear()
        for i in range(args.n):
            order = sides[i % len(sides):] + sides[:i % len(sides)]
            for side in order:
                start_one(side, f"mdlife-{os.getpid()}-{side.name}-{r}-{i}")
        for side in sides:
            side.totals_ns.append(sum(side.start_ns))
        if r == 0:
            time.sleep(1)  # let the supervisor settle (its first log lines, the keeper)
            loaded = host_side(root)
        for side in sides:
            if side.name == "minidocker":
                how = "one rm -f" if r % 2 == 0 else "rm -f each"
            else:
                how = "delete -f each"
            side.teardown.setdefault(how, []).append(tear_down(side, minidocker,
                                                               batch=how == "one rm -f"))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{s.name} {s.totals_ns[-1] / 1e6:.0f} ms" for s in sides), file=sys.stderr)
    return report(args, sides, idle, loaded, conmon_kib(base, startup.find_minidocker_layer(
        root)) if "podman" in args.only.split(",") or args.podman else {"skipped": "not asked"})


def report(args: argparse.Namespace, sides: list[Side], idle: dict[str, dict[str, int]],
           loaded: dict[str, dict[str, int]], conmon: dict[str, object]) -> dict[str, object]:
    runc = next((s for s in sides if s.name == "runc"), None)
    ref = statistics.median(runc.totals_ns) if runc else None
    starts = {s.name: {"median_total_ms": statistics.median(s.totals_ns) / 1e6,
                       "per_container_ms": statistics.median(s.totals_ns) / 1e6 / args.n,
                       "totals_ms": [t / 1e6 for t in s.totals_ns],
                       **({"x_runc": statistics.median(s.totals_ns) / ref} if ref else {})}
              for s in sides}
    teardowns = {f"{s.name} ({how})": statistics.median(v) / 1e6
                 for s in sides for how, v in s.teardown.items()}
    growth = {}
    for proc in ("supervisor", "keeper"):
        if proc in idle and proc in loaded:
            growth[proc] = {k: (loaded[proc][k] - idle[proc][k]) / args.n for k in ("rss", "pss")}
    return {"n": args.n, "rounds": args.rounds, "start": starts, "teardown_ms": teardowns,
            "memory_kib": {"idle": idle, f"with {args.n}": loaded, "per_container": growth},
            "conmon_kib": conmon,
            "versions": {name: startup.tool_version([name, "--version"])
                         for name in ("runc", "crun") if shutil.which(name)}}


def format_report(r: dict[str, object]) -> str:
    lines = [f"{r['n']} detached containers, {r['rounds']} rounds, interleaved per container",
             f"{'start':14} {'median total':>13} {'per container':>14} {'x runc':>7}"]
    for name, row in r["start"].items():  # type: ignore[attr-defined]
        ratio = row.get("x_runc")
        lines.append(f"{name:14} {row['median_total_ms']:>10.0f} ms "
                     f"{row['per_container_ms']:>11.1f} ms "
                     f"{'-' if ratio is None else f'{ratio:.2f}':>7}")
    lines.append("teardown of all of them (median)")
    for name, ms in r["teardown_ms"].items():  # type: ignore[attr-defined]
        lines.append(f"  {name:32} {ms:>8.0f} ms")
    memory = r["memory_kib"]
    lines.append("host-side memory (KiB)")
    for label, procs in memory.items():  # type: ignore[attr-defined]
        for proc, sizes in procs.items():
            shown = ", ".join(f"{k} {v:.0f}" for k, v in sizes.items())
            lines.append(f"  {label:14} {proc:10} {shown}")
    lines.append(f"podman conmon per container: {r['conmon_kib']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=50, help="containers per runtime (default 50)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--only", default="runc,crun", help="reference runtimes: runc,crun")
    p.add_argument("--podman", action="store_true", help="also measure podman's conmon")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("lifecycle.py: run as root (it starts containers)", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    base = Path(tempfile.mkdtemp(prefix=f"mdlife-{os.getpid()}-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = measure(args, base)
    finally:
        clean_up(base)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


def clean_up(base: Path) -> None:
    """Whatever a failed run left: containers in the private roots, the supervisor."""
    sys.path.insert(0, str(REPO))
    from minidocker import client, state

    root = base / "minidocker-root"
    if root.exists():
        client.stop_everything(state.Layout(str(root)))
    for tool in ("runc", "crun"):
        ns = startup.mount_ns_without_unified_cgroup() \
            if tool == "crun" and shutil.which("crun") and startup.crun_needs_hidden_unified() \
            else None
        if shutil.which(tool):
            startup.delete_containers(tool, base / f"state-{tool}", ns)
    reap()
    left = startup.mounts_under(base)
    if left:
        print(f"not deleting {base}: still mounted: {left}", file=sys.stderr)
        return
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
