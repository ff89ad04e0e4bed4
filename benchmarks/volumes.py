"""Writing 200 MB with fsync: into a named volume, a bind mount, and the container's own layer.

Why volumes exist, measured (see benchmarks/README.md for the figures): a volume is a plain
directory of the host's filesystem bind-mounted into the container, so a write to it runs at
that filesystem's speed, the same as a bind mount of a host directory on the same filesystem.
A write into the container's layer goes through overlayfs instead: a new file is written in
the upper directory (on the same filesystem, so nearly as fast), but *changing* a file the
image holds first copies all of it up (copy-up), however little is changed.

Four sides, one sample each per round, **interleaved and rotated** (round 1: volume, bind,
fresh, copy-up; round 2: bind, fresh, copy-up, volume...), so a noisy neighbour hits all alike:

- ``volume``:  ``run --rm -v benchvol:/w`` writes ``/w/f``;
- ``bind``:    ``run --rm -v <dir>:/w`` writes ``/w/f``, ``<dir>`` beside the state root;
- ``fresh``:   ``run --rm`` writes ``/f`` into the container layer (a new file);
- ``copy-up``: ``run --rm`` rewrites ``/big``, a 200 MB file the image holds, in place
  (``conv=notrunc``): overlayfs copies the whole file up at open(2), then it is rewritten.

Each sample is ``dd if=/dev/zero bs=1M count=200 conv=fsync`` in the container, after a
``sync`` (so the previous sample's dirty pages are not on its bill), timed by this process
between two lines the container writes to its stdout, ``go`` before and ``done`` after: the
container's start and removal are not counted. One untimed warm-up of each side first.
Everything lives in one ``mkdtemp`` directory under ``$TMPDIR`` (default /var/tmp), removed
at the end.

    sudo .venv/bin/python benchmarks/volumes.py [-n 7] [--mb 200] [--json] [--check]

``--check``: exit 1 if the named volume is slower than 1.10x the bind mount (issue 12's target).

Man pages: fsync(2), mount(2) (``MS_BIND``); Documentation/filesystems/overlayfs.rst (copy up).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET = 1.10  # the named volume against the bind mount
IMAGE = "bench-volumes-big"
VOLUME = "benchvol"
SIDES = ("volume", "bind", "fresh", "copy-up")


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "MINIDOCKER_ROOT": str(root)}


def _cli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minidocker", *args], env=_env(root),
                          text=True, capture_output=True, check=check, cwd=REPO)


def _script(path: str, megabytes: int, in_place: bool) -> str:
    """Say ``go`` once the disk is quiet, write, say ``done``: the host times the two lines."""
    conv = "notrunc,fsync" if in_place else "fsync"
    return (f"sync; echo go; dd if=/dev/zero of={path} bs=1M count={megabytes} conv={conv} "
            "2>/dev/null; echo done; " + ("" if in_place else f"rm -f {path}"))


def _argv(side: str, bind: Path, megabytes: int) -> list[str]:
    mounts = {"volume": ["-v", f"{VOLUME}:/w"], "bind": ["-v", f"{bind}:/w"]}.get(side, [])
    path = {"fresh": "/f", "copy-up": "/big"}.get(side, "/w/f")
    return ["run", "--rm", "--network", "none", *mounts, IMAGE, "sh", "-c",
            _script(path, megabytes, side == "copy-up")]


def _sample(root: Path, argv: list[str]) -> float:
    """Seconds from the container's ``go`` to its ``done``, read on its stdout (a pipe: the
    lines arrive within microseconds of being written)."""
    with subprocess.Popen([sys.executable, "-m", "minidocker", *argv], env=_env(root),
                          cwd=REPO, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        if proc.stdout.readline() != "go\n":
            raise SystemExit(f"no 'go' from {argv}")
        t0 = time.monotonic_ns()
        if proc.stdout.readline() != "done\n":
            raise SystemExit(f"no 'done' from {argv}")
        t1 = time.monotonic_ns()
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}")
    return (t1 - t0) / 1e9


def measure(rounds: int, megabytes: int) -> dict[str, list[float]]:
    base = Path(tempfile.mkdtemp(prefix="minidocker-bench-volumes-",
                                 dir=os.environ.get("TMPDIR", "/var/tmp")))
    root, bind = base / "root", base / "bind"
    bind.mkdir()
    root.mkdir()
    try:
        if os.stat(root).st_dev != os.stat(bind).st_dev:
            raise SystemExit("the bind directory and the state root are on different filesystems")
        _cli(root, "run", "--name", "maker", "--network", "none", "busybox", "dd",
             "if=/dev/zero", "of=/big", "bs=1M", f"count={megabytes}")
        _cli(root, "commit", "maker", IMAGE)
        _cli(root, "rm", "maker")
        _cli(root, "volume", "create", VOLUME)
        for side in SIDES:  # warm-up: caches, the volume's first use, the image's pages
            _sample(root, _argv(side, bind, megabytes))
        samples: dict[str, list[float]] = {side: [] for side in SIDES}
        for r in range(rounds):
            for side in SIDES[r % len(SIDES):] + SIDES[:r % len(SIDES)]:
                samples[side].append(_sample(root, _argv(side, bind, megabytes)))
        return samples
    finally:
        _cli(root, "volume", "rm", "-f", VOLUME, check=False)
        shutil.rmtree(base)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(samples: dict[str, list[float]], megabytes: int) -> dict[str, dict[str, float]]:
    bind = statistics.median(samples["bind"])
    return {side: {"median_s": statistics.median(v), "p10_s": _quantile(v, 0.1),
                   "p90_s": _quantile(v, 0.9),
                   "mb_per_s": megabytes * 1.048576 / statistics.median(v),
                   "ratio_to_bind": statistics.median(v) / bind}
            for side, v in samples.items()}


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("run as root: containers are started")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--rounds", type=int, default=7)
    ap.add_argument("--mb", type=int, default=200, help="megabytes (MiB) written per sample")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true", help=f"exit 1 if volume/bind > {TARGET}")
    args = ap.parse_args()
    samples = measure(args.rounds, args.mb)
    figures = report(samples, args.mb)
    if args.json:
        print(json.dumps({"rounds": args.rounds, "mb": args.mb, "figures": figures,
                          "samples": samples}, indent=2))
    else:
        print(f"{args.mb} MiB with fsync, {args.rounds} rounds, interleaved")
        print(f"{'':10} {'median':>9} {'p10':>9} {'p90':>9} {'MB/s':>7} {'x bind':>7}")
        for side, f in figures.items():
            print(f"{side:10} {f['median_s'] * 1000:6.0f} ms {f['p10_s'] * 1000:6.0f} ms "
                  f"{f['p90_s'] * 1000:6.0f} ms {f['mb_per_s']:7.0f} {f['ratio_to_bind']:6.2f}x")
        met = "met" if figures["volume"]["ratio_to_bind"] <= TARGET else "NOT met"
        print(f"named volume / bind mount: {figures['volume']['ratio_to_bind']:.2f}x "
              f"(target <= {TARGET}x: {met})")
    return 1 if args.check and figures["volume"]["ratio_to_bind"] > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
