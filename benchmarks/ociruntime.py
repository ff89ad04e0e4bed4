"""The OCI runtime face: ``minidocker-runtime run`` of ``/bin/true`` against ``runc run`` and
``crun run``, on the same ``runc spec`` bundle, side by side.

One sample is the wall time of one ``<runtime> --root STATE run --bundle B ID``, from the
request until the runtime has exited and deleted its container: the whole life of a container,
as an engine would see it through the runtime's command line. The bundle is ``runc spec``'s
document unchanged but for ``terminal: false`` and ``args: ["/bin/true"]``: its 3
capabilities, no seccomp filter, a read-only root, the pid/network/ipc/uts/mount namespaces,
its mount table and masked paths, on a static busybox root filesystem. Every runtime runs the
same bundle, so none is timed for doing less.

The loop is benchmarks/startup.py's (and so are its helpers): interleaved rounds after warm-ups,
medians and p10/p90, ratios to runc and crun in the same run; crun runs in a mount namespace
without ``/sys/fs/cgroup/unified`` on cgroup v1 "hybrid" hosts (startup.py says why).

``minidocker-runtime`` is started as scripts/setup.sh's launcher starts it (the venv's python
with ``-I -S``), from a copy of that launcher written for this checkout; ``--console-script``
times pip's console script instead (which pays for site-packages on every start).

    sudo .venv/bin/python benchmarks/ociruntime.py [-n 30] [--only runc,crun] [--json] [--check]

Target (issue 17): ``minidocker-runtime``'s median at most 1.0 times runc's.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import startup  # noqa: E402 -- the loop, the crun namespace, the summaries: shared

REPO = startup.REPO
PYTHON = REPO / ".venv" / "bin" / "python"


def write_launcher(path: Path, repo: Path = REPO) -> Path:
    """scripts/setup.sh's launcher, for this checkout (or another one's package)."""
    path.write_text(f"#!{PYTHON} -IS\nimport sys\nsys.path.insert(0, {str(repo)!r})\n"
                    "from minidocker.ociruntime import main\nsys.exit(main())\n")
    path.chmod(0o755)
    return path


def make_bundle(base: Path) -> Path:
    """``runc spec``, then only ``terminal`` and ``args`` changed; busybox as the root."""
    bundle = base / "bundle"
    bundle.mkdir()
    startup.build_rootfs(bundle / "rootfs", None)
    subprocess.run(["runc", "spec"], cwd=bundle, check=True, capture_output=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=30, help="timed runs per runtime (default 30)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--only", default="runc,crun", help="reference runtimes: runc,crun")
    p.add_argument("--console-script", action="store_true",
                   help="time .venv/bin/minidocker-runtime instead of the -IS launcher")
    p.add_argument("--compare", metavar="DIR", type=Path,
                   help="also time DIR's minidocker package (e.g. `git archive main minidocker "
                        "| tar -x -C DIR`), as 'before', in the same loop")
    p.add_argument("--json", action="store_true")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless minidocker-runtime's median <= runc's")
    args = p.parse_args(argv)
    out = sys.stderr if args.json else sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    if os.geteuid() != 0:
        say("run as root: sudo .venv/bin/python benchmarks/ociruntime.py")
        return 2
    if shutil.which("runc") is None:
        say("runc is not installed: nothing to compare with (apt-get install runc)")
        return 2
    prefix = f"mdbench-{os.getpid()}"
    base = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    runners: list[startup.Runner] = []
    crun_ns = None
    try:
        bundle = make_bundle(base)
        runtime = (REPO / ".venv" / "bin" / "minidocker-runtime" if args.console_script
                   else write_launcher(base / "minidocker-runtime"))
        runners.append(startup.Runner("minidocker", startup.oci_run_command(
            str(runtime), base / "state-minidocker", bundle), dict(os.environ)))
        if args.compare is not None:
            other = write_launcher(base / "minidocker-runtime-before", args.compare.resolve())
            runners.append(startup.Runner("before", startup.oci_run_command(
                str(other), base / "state-before", bundle), dict(os.environ)))
        for tool in ("runc", "crun"):
            if tool not in args.only.split(","):
                continue
            path = shutil.which(tool)
            if path is None:
                say(f"skipping {tool}: not installed")
                continue
            if tool == "crun" and startup.crun_needs_hidden_unified():
                crun_ns = startup.mount_ns_without_unified_cgroup()
            runners.append(startup.Runner(tool, startup.oci_run_command(
                path, base / f"state-{tool}", bundle), dict(os.environ),
                crun_ns if tool == "crun" else None))
        say(f"{'bundle:':19}runc spec, args [/bin/true], terminal false, {bundle}")
        say(f"{'minidocker:':19}{runtime}")
        for tool in ("runc", "crun"):
            if any(r.name == tool for r in runners):
                say(f"{tool + ':':19}{startup.tool_version([tool, '--version'])}")
        say(f"{'load average:':19}{' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
            f"{os.cpu_count()} cpus")
        for runner in runners:
            startup.warm_up(runner, prefix, args.warmup)
        for _ in range(args.n):
            for runner in runners:
                startup.run_timed(runner, prefix)
        results = startup.summarise(runners)
    except startup.BenchError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        for runner in runners:
            tool = runner.argv("x")[0]
            startup.delete_containers(tool, base / f"state-{runner.name}", runner.mount_ns)
        if crun_ns is not None:
            os.close(crun_ns)
        shutil.rmtree(base, ignore_errors=True)
    say(startup.format_table(results, False))
    if args.json:
        print(json.dumps(results, indent=2))
    if args.check:
        medians = {r.name: statistics.median(r.samples_ns) for r in runners}
        ok = medians["minidocker"] <= medians["runc"]
        say(f"--check: minidocker-runtime median {'<=' if ok else '>'} runc median")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
