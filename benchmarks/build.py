"""Builds: ``minidocker build`` side by side with ``buildah bud --layers`` on one Dockerfile.

Issue 14's two targets, measured in one run, interleaved round by round:

1. **cached rebuild** -- the same 10-step Dockerfile built again, every step a cache hit
   (``minidocker build`` and ``buildah bud --layers``); target: minidocker's median at most
   0.5 times buildah's;
2. **cold per-RUN overhead** -- the Dockerfile built with ``--no-cache``, minus the same
   Dockerfile with its RUN lines left out (also ``--no-cache``), divided by the number of RUN
   lines: what one RUN step costs; target: at most 1.2 times buildah's.

buildah runs as issue 14 says it works here: ``--isolation chroot --storage-driver vfs
--ulimit nofile=1024:1024``, with a private ``--root`` and ``--runroot`` in a temporary
directory, from the busybox image minidocker has built in (``buildah pull oci:...``: no
network). Each sample starts after sync(2): buildah's vfs driver copies whole root
filesystems, and their writeback would otherwise land in whichever build comes next.
minidocker runs with a fresh ``MINIDOCKER_ROOT`` and ``--network none`` for its RUN steps
(buildah's chroot isolation makes no network either; ``--network`` changes it).

Each round builds the RUN-less Dockerfile, then the full one (both ``--no-cache``), then the full
one again (the cached sample, right after the build whose images it finds).

    sudo .venv/bin/python benchmarks/build.py [-n 5] [--network none] [--json] [--check]

Without buildah (``apt-get install buildah``) it says so and measures minidocker alone.
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
MINIDOCKER = REPO / ".venv" / "bin" / "minidocker"
RUNS = 4

DOCKERFILE = """\
FROM {base}
ENV APP=/srv/app
RUN echo one > /one
COPY data.txt /data.txt
RUN echo two > /two
WORKDIR /srv/app
RUN cp /data.txt ./data && echo three > three
LABEL bench=build
RUN echo four > /four
CMD ["cat", "/one"]
"""


def no_runs(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("RUN "))


class Tool:
    """One builder: how it builds a context, and its state kept under ``work``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], base: str) -> None:
        self.name, self.argv, self.env, self.base = name, argv, env, base

    def build(self, ctx: Path, dockerfile: str, no_cache: bool) -> float:
        path = ctx / f"Dockerfile.{self.name}"
        path.write_text(dockerfile.format(base=self.base))
        argv = [*self.argv, *(["--no-cache"] if no_cache else []), "-f", str(path), str(ctx)]
        os.sync()  # the previous build's writeback (buildah's vfs copies) is not ours to wait for
        t0 = time.perf_counter()
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if result.returncode != 0:
            raise SystemExit(f"{self.name} failed: {' '.join(argv)}\n{result.stderr}")
        return elapsed


def minidocker(work: Path, network: str) -> Tool:
    env = {**os.environ, "MINIDOCKER_ROOT": str(work / "minidocker-root")}
    return Tool("minidocker", [str(MINIDOCKER), "build", "-q", "--network", network], env,
                "busybox")


def buildah(work: Path, md_root: Path) -> Tool | None:
    if shutil.which("buildah") is None:
        print("buildah: not installed (apt-get install buildah): measuring minidocker alone",
              file=sys.stderr)
        return None
    store = ["buildah", "--root", str(work / "buildah-root"), "--runroot",
             str(work / "buildah-run"), "--storage-driver", "vfs"]
    image_id = subprocess.run([*store, "pull", "-q", f"oci:{md_root}/images:busybox:latest"],
                              capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([*store, "tag", image_id, "localhost/busybox"], capture_output=True,
                   check=True)
    return Tool("buildah", [*store, "bud", "--layers", "--isolation", "chroot",
                            "--ulimit", "nofile=1024:1024", "--pull=false", "-q"],
                dict(os.environ), "localhost/busybox")


def summary(samples: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(samples, n=10, method="inclusive") if len(samples) > 1 \
        else samples * 9
    return {"median": statistics.median(samples), "p10": qs[0], "p90": qs[-1]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=5, help="rounds (default 5)")
    p.add_argument("--network", default="none", help="minidocker's RUN network (none)")
    p.add_argument("--json", action="store_true", help="all samples as JSON")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        ctx = work / "ctx"
        ctx.mkdir()
        (ctx / "data.txt").write_text("data\n" * 100)
        md = minidocker(work, args.network)
        subprocess.run([str(MINIDOCKER), "run", "--rm", "--network", "none", "busybox",
                        "true"], env=md.env, check=True)  # the built-in busybox, made once
        tools = [t for t in (md, buildah(work, work / "minidocker-root")) if t is not None]
        samples: dict[str, dict[str, list[float]]] = {
            t.name: {"cold": [], "cold-no-run": [], "cached": []} for t in tools}
        for tool in tools:  # warm up: every cache filled, binaries in the page cache
            tool.build(ctx, DOCKERFILE, False)
            tool.build(ctx, no_runs(DOCKERFILE), False)
        for i in range(args.n):
            order = tools if i % 2 == 0 else tools[::-1]
            for tool in order:
                s = samples[tool.name]
                # The RUN-less build first: its --no-cache images would otherwise be the ones
                # the full Dockerfile's first steps find in the cache, and its RUNs would miss.
                s["cold-no-run"].append(tool.build(ctx, no_runs(DOCKERFILE), True))
                s["cold"].append(tool.build(ctx, DOCKERFILE, True))
                s["cached"].append(tool.build(ctx, DOCKERFILE, False))
        results = {}
        for name, s in samples.items():
            per_run = [(a - b) / RUNS for a, b in zip(s["cold"], s["cold-no-run"], strict=True)]
            results[name] = {"cached": summary(s["cached"]), "cold": summary(s["cold"]),
                             "per_run": summary(per_run)}
        if args.json:
            print(json.dumps({"samples": samples, "results": results}, indent=1))
        print(f"{'':<12} {'cached rebuild (p10-p90)':>28} {'cold build':>12} "
              f"{'per RUN (p10-p90)':>26}")
        for name, r in results.items():
            c, k, pr = r["cached"], r["cold"], r["per_run"]
            print(f"{name:<12} {c['median']:>9.3f} s ({c['p10']:.3f}-{c['p90']:.3f}) "
                  f"{k['median']:>10.3f} s {pr['median']:>9.3f} s ({pr['p10']:.3f}-"
                  f"{pr['p90']:.3f})")
        if "buildah" not in results:
            return 2 if args.check else 0
        cached = results["minidocker"]["cached"]["median"] / results["buildah"]["cached"]["median"]
        per_run = results["minidocker"]["per_run"]["median"] / \
            results["buildah"]["per_run"]["median"]
        print(f"minidocker / buildah: cached rebuild {cached:.2f}x (target <= 0.5), "
              f"per RUN {per_run:.2f}x (target <= 1.2)")
        return 1 if args.check and (cached > 0.5 or per_run > 1.2) else 0


if __name__ == "__main__":
    sys.exit(main())
