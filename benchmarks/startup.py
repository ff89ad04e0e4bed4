"""Start-up latency: `minidocker run --rm busybox true` side by side with `runc run` and `crun run`.

What one sample is: the wall time, taken with ``time.perf_counter_ns`` around ``subprocess.run``,
from asking a runtime to start a container running ``/bin/true`` until that runtime has exited
and cleaned up after it. Every runtime runs the same static busybox filesystem.

Why the loop is shaped this way (see benchmarks/README.md):

- **interleaved**: round-robin A, B, C, A, B, C... in one process, after a few warm-ups each, so
  a noisy neighbour, a cold page cache or CPU frequency changes hit every runtime alike;
- **medians and p10/p90**, not means: a start-up time has a long right tail;
- **ratios** to runc's and crun's median in the same run: an absolute time says more about the
  machine than about the runtime, so a lone absolute figure is never printed.

crun on cgroup v1 "hybrid" hosts refuses to start any container ("cgroups in hybrid mode not
supported, drop all controllers from cgroupv2") whatever ``--cgroup-manager`` says: the check
runs before the manager is consulted. So crun, and crun only, runs in a mount namespace private
to this benchmark where ``/sys/fs/cgroup/unified`` is unmounted; there crun sees plain v1 and
creates its v1 cgroups with the cgroupfs manager, as runc does. The benchmark enters that
namespace with setns(2) before starting the clock and leaves it after stopping it.

Run as root, with the venv's interpreter (a pyenv shim costs ~150 ms per start):

    sudo .venv/bin/python benchmarks/startup.py [-n 50] [--only runc,crun] [--json] [--check]
        [--extra mem='run --rm --memory 64m busybox true']

Man pages: runc(8), crun(1), setns(2), unshare(2), umount(2), cgroups(7).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
# The launcher scripts/setup.sh installs: the venv's python with -I -S (what users run).
# Fall back to the venv's console script, which pays for site-packages at every start.
LAUNCHER = Path("/usr/local/bin/minidocker")
DEFAULT_MINIDOCKER = (LAUNCHER if LAUNCHER.is_file() and REPO.as_posix() in LAUNCHER.read_text()
                      else REPO / ".venv" / "bin" / "minidocker")
# --network none: the same isolation as the runc/crun bundles (a private netns with only lo).
MINIDOCKER_ARGS = ("run", "--rm", "--network", "none", "busybox", "true")
# --networking (issue 7): minidocker on its default bridge against podman on its own.
BRIDGE_ARGS = ("run", "--rm", "busybox", "true")
DETACHED = 50  # containers per round of the detached comparison
DETACHED_ROUNDS = 3
BUILTINS = ("minidocker", "runc", "crun")
REFERENCES = ("runc", "crun")
BUSYBOX = Path("/bin/busybox")
# The namespaces `minidocker run` creates, spelled as config.json spells them.
BUNDLE_NAMESPACES = ("pid", "mount", "uts", "ipc", "network", "cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
UNIFIED = CGROUP_ROOT / "unified"
RUN_TIMEOUT_S = 60

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


class BenchError(Exception):
    """A reason to stop the benchmark, printed without a traceback."""


# --- the kernel calls we need (Python 3.11 has no os.unshare/os.setns) -----------------------


def _check(ret: int, call: str, path: str = "") -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}", path or None)


def mount_ns_without_unified_cgroup() -> int:
    """Return an fd for a new mount namespace in which /sys/fs/cgroup/unified is unmounted.

    The namespace is a slave of ours (host mounts still propagate in, nothing propagates out)
    and is held alive only by the returned fd: no helper process, nothing to clean up but the
    fd. This process is back in its own namespace when the function returns.
    """
    ours = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    cwd = os.getcwd()
    try:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        try:
            ret = _libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None)
            _check(ret, "mount(MS_REC|MS_SLAVE)", "/")
            _check(_libc.umount2(bytes(UNIFIED), MNT_DETACH), "umount2(MNT_DETACH)", str(UNIFIED))
            return os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            _check(_libc.setns(ours, CLONE_NEWNS), "setns(CLONE_NEWNS)")
            os.chdir(cwd)
    finally:
        os.close(ours)


@contextlib.contextmanager
def in_mount_ns(fd: int | None) -> Iterator[None]:
    """Run the body inside the mount namespace `fd` (None: stay where we are)."""
    if fd is None:
        yield
        return
    ours = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    cwd = os.getcwd()
    try:
        _check(_libc.setns(fd, CLONE_NEWNS), "setns(CLONE_NEWNS)")
        try:
            yield
        finally:
            _check(_libc.setns(ours, CLONE_NEWNS), "setns(CLONE_NEWNS)")
            os.chdir(cwd)
    finally:
        os.close(ours)


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below `base` in our mount namespace, deepest first."""
    prefix = str(base)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])  # \040
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def cgroup_mode() -> str:
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return "v2 (unified)"
    controllers = UNIFIED / "cgroup.controllers"
    if controllers.exists():
        held = controllers.read_text().split()
        return f"v1 hybrid (cgroup2 at {UNIFIED} holds: {' '.join(held) or 'no controllers'})"
    return "v1 (legacy)"


def crun_needs_hidden_unified() -> bool:
    """crun rejects hybrid hosts whose cgroup2 mount holds any controller (see module doc)."""
    controllers = UNIFIED / "cgroup.controllers"
    return controllers.exists() and controllers.read_text().strip() != ""


# --- the runtimes ----------------------------------------------------------------------------


@dataclass
class Runner:
    """One column of the results: a command line to start a container, and its samples."""

    name: str
    argv: Callable[[str], list[str]]  # container id -> command line
    env: dict[str, str]
    mount_ns: int | None = None
    samples_ns: list[int] = field(default_factory=list)
    runs: int = 0

    def next_id(self, prefix: str) -> str:
        self.runs += 1
        return f"{prefix}-{self.name}-{self.runs}"


def minidocker_command(minidocker: Path, words: list[str]) -> Callable[[str], list[str]]:
    return lambda _cid: [str(minidocker), *words]  # minidocker names its containers itself


def oci_run_command(tool: str, state: Path, bundle: Path) -> Callable[[str], list[str]]:
    """`runc run`/`crun run` with a private --root: they delete their state when /bin/true exits."""
    return lambda cid: [tool, "--root", str(state), "run", "--bundle", str(bundle), cid]


class RunTimeout(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise RunTimeout


@contextlib.contextmanager
def watchdog(argv: list[str]) -> Iterator[None]:
    """Give up on a run after RUN_TIMEOUT_S (subprocess.run then kills the child).

    Not subprocess.run(timeout=...): with a timeout, Popen.wait polls with sleeps that double
    from 0.5 ms (0.5+1+2+4+8 = 15.5 ms, then 31.5 ms...), so every sample would be rounded up
    to the next step. Without one it blocks in waitpid(2) and wakes when the child exits.
    """
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(RUN_TIMEOUT_S)
    try:
        yield
    except RunTimeout:
        raise BenchError(f"`{shlex.join(argv)}` still running after {RUN_TIMEOUT_S} s") from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_untimed(runner: Runner, prefix: str) -> subprocess.CompletedProcess[str]:
    argv = runner.argv(runner.next_id(prefix))
    with watchdog(argv), in_mount_ns(runner.mount_ns):
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=runner.env, check=False)


def run_timed(runner: Runner, prefix: str) -> None:
    argv = runner.argv(runner.next_id(prefix))
    with watchdog(argv), in_mount_ns(runner.mount_ns):
        start = time.perf_counter_ns()
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=runner.env, check=False,
        )
        elapsed = time.perf_counter_ns() - start
    if proc.returncode != 0:
        again = run_untimed(runner, prefix)  # the timed run threw its output away
        raise BenchError(
            f"{runner.name}: `{shlex.join(argv)}` exited with {proc.returncode}; "
            f"rerun untimed: exit {again.returncode}, stderr: {again.stderr.strip()[-800:]!r}"
        )
    runner.samples_ns.append(elapsed)


def warm_up(runner: Runner, prefix: str, count: int) -> None:
    for _ in range(count):
        proc = run_untimed(runner, prefix)
        if proc.returncode != 0:
            raise BenchError(
                f"{runner.name}: warm-up `{shlex.join(proc.args)}` exited with {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}"
            )


def tool_version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unknown ({exc.strerror})"
    out = (proc.stdout or proc.stderr).strip()
    if proc.returncode != 0 or not out:
        return f"unknown (`{shlex.join(argv)}` exited with {proc.returncode})"
    return "; ".join(line.strip() for line in out.splitlines())


def script_interpreter(script: Path) -> str:
    """The interpreter in a console script's #! line (the venv's python, not a pyenv shim)."""
    with script.open("rb") as f:
        first = f.readline().decode(errors="replace").strip()
    return first[2:].strip() if first.startswith("#!") else "unknown (no #! line)"


# --- the bundle runc and crun run ------------------------------------------------------------


def find_minidocker_layer(root: Path) -> Path | None:
    """The unpacked busybox layer in minidocker's store (`<root>/layers/<id>/`), if any."""
    layers = root / "layers"
    if not layers.is_dir():
        return None
    candidates = [d for d in sorted(layers.glob("*")) + sorted(layers.glob("*/*"))
                  if (d / "bin" / "busybox").is_file()]
    with_true = [d for d in candidates if (d / "bin" / "true").exists()]
    best = with_true or candidates
    return best[0] if best else None


def build_rootfs(rootfs: Path, layer: Path | None) -> str:
    """Fill `rootfs` (a copy: runc and crun create mount points in it) and say where from."""
    if layer is not None:
        shutil.copytree(layer, rootfs, symlinks=True)
        return f"copy of minidocker's unpacked busybox layer {layer}"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("true", "sh"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    return f"{BUSYBOX} with bin/true and bin/sh symlinks (minidocker's layer not available)"


def bundle_config(spec_tool: str, workdir: Path) -> dict[str, object]:
    """`runc spec` (or `crun spec`) made comparable with `minidocker run --rm busybox true`."""
    subprocess.run([spec_tool, "spec"], cwd=workdir, check=True, capture_output=True)
    config: dict[str, object] = json.loads((workdir / "config.json").read_text())
    (workdir / "config.json").unlink()
    process = config["process"]
    linux = config["linux"]
    root = config["root"]
    assert isinstance(process, dict) and isinstance(linux, dict) and isinstance(root, dict)
    process["terminal"] = False
    process["args"] = ["/bin/true"]
    root["path"] = "rootfs"
    root["readonly"] = False  # minidocker gives a writable (overlay) root, as docker does
    linux["namespaces"] = [{"type": t} for t in BUNDLE_NAMESPACES]
    confine_like_minidocker(process, linux)
    return config


def confine_like_minidocker(process: dict[str, object], linux: dict[str, object]) -> None:
    """Give the bundle a default minidocker container's confinement: Docker's 14 capabilities
    and Docker's seccomp profile (resolved for those capabilities and this machine), no
    no_new_privs. `runc spec` alone has 3 capabilities and no seccomp filter, which would make
    runc's start cheaper for doing less."""
    sys.path.insert(0, str(REPO))
    from minidocker import capabilities, seccomp
    from minidocker.seccomp_default import DEFAULT_PROFILE

    caps = [name for name, _ in capabilities.DEFAULT_CAPABILITIES]
    process["capabilities"] = {key: caps for key in ("bounding", "effective", "permitted")}
    process["noNewPrivileges"] = False
    machine, kernel = os.uname().machine, os.uname().release
    arch = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
            "riscv64": "SCMP_ARCH_RISCV64"}[machine]
    arches = [arch]
    for entry in DEFAULT_PROFILE["archMap"]:
        if entry["architecture"] == arch:
            arches += entry["subArchitectures"] or []
    rules = []
    for rule in DEFAULT_PROFILE["syscalls"]:
        if seccomp.applies(rule, set(caps), seccomp.GO_ARCH.get(machine, machine), kernel):
            rules.append({key: rule[key] for key in ("names", "action", "args", "errnoRet")
                          if rule.get(key) is not None})
    linux["seccomp"] = {"defaultAction": DEFAULT_PROFILE["defaultAction"],
                        "defaultErrnoRet": DEFAULT_PROFILE["defaultErrnoRet"],
                        "architectures": arches, "syscalls": rules}


def make_bundle(bundle: Path, config: dict[str, object], layer: Path | None) -> str:
    bundle.mkdir()
    source = build_rootfs(bundle / "rootfs", layer)
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return source


# --- clean-up ----------------------------------------------------------------------------------


def delete_containers(tool: str, state: Path, mount_ns: int | None) -> None:
    """Remove what an interrupted `run` left in our private --root (normally nothing)."""
    if not state.is_dir():
        return
    with in_mount_ns(mount_ns):
        listed = subprocess.run([tool, "--root", str(state), "list", "-q"],
                                capture_output=True, text=True, check=False)
        for cid in listed.stdout.split():
            subprocess.run([tool, "--root", str(state), "delete", "--force", cid],
                           capture_output=True, check=False)


def stop_supervisor(root: Path) -> None:
    """End the supervisor `run -d` started for our private state root (and its keeper): the
    processes whose environment names that root, found by PID and signalled by PID."""
    wanted = f"MINIDOCKER_ROOT={root}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if comm in ("md-supervisor", "md-keeper") and wanted in environ:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)


def remove_cgroups(prefix: str) -> list[str]:
    """rmdir the cgroups runc/crun name after our container ids, should a killed run leave one."""
    tops = [CGROUP_ROOT, *(d for d in CGROUP_ROOT.iterdir() if d.is_dir())]
    ours = {line.split(":", 2)[2].lstrip("/")  # runc nests under our own cgroup in some trees
            for line in Path("/proc/self/cgroup").read_text().splitlines()}
    parents = {top / own for top in tops for own in ours}
    left = []
    for parent in parents:
        for cg in parent.glob(f"{prefix}-*"):
            try:
                cg.rmdir()
            except OSError as exc:
                left.append(f"{cg}: {exc.strerror}")
    return left


def clean_up(base: Path, prefix: str, runners: list[Runner], say: Callable[[str], None]) -> None:
    crun_ns = next((r.mount_ns for r in runners if r.name == "crun"), None)
    for tool in REFERENCES:
        delete_containers(tool, base / f"state-{tool}", crun_ns if tool == "crun" else None)
    delete_containers("runc", base / "state-runc-detached", None)
    minidocker = next((r for r in runners if r.name == "minidocker"), None)
    if minidocker is not None and (base / "minidocker-root" / "containers").is_dir():
        md = minidocker.argv("")[0]  # detached containers a crash left: remove them, then
        left = subprocess.run([md, "ps", "-aq"], env=minidocker.env, capture_output=True,
                              text=True, check=False).stdout.split()
        if left:
            subprocess.run([md, "rm", "-f", *left], env=minidocker.env, capture_output=True,
                           check=False)
        stop_supervisor(base / "minidocker-root")
    problems = remove_cgroups(prefix)
    for point in mounts_under(base):  # a failed `minidocker run --rm` may leave its overlay
        if _libc.umount2(point.encode(), MNT_DETACH) != 0:
            problems.append(f"umount2 {point}: {os.strerror(ctypes.get_errno())}")
    if crun_ns is not None:
        os.close(crun_ns)
    if mounts_under(base):
        # rmtree across a mount point would delete whatever the mount shows, maybe host files.
        problems.append(f"still mounted under {base}; not removing it")
    else:
        shutil.rmtree(base, ignore_errors=True)
    for problem in problems:
        say(f"clean-up: {problem}")


# --- issue 7: networking ----------------------------------------------------------------------


def enter_sandbox_netns() -> None:
    """Move this process (and so every runtime it starts) into a new network namespace.

    minidocker's default bridge, podman's ``podman0``, their veths, nft/iptables rules and
    ``ip_forward`` are then made in a namespace that vanishes with this process: the host's own
    interfaces and firewall are never touched, whatever a run leaves behind.
    """
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def podman_base(base: Path) -> list[str]:
    """podman with a private store and runroot under the benchmark's directory.

    ``--cgroup-manager cgroupfs``: no systemd needed; ``--events-backend none``: no journal.
    """
    return ["podman", "--root", str(base / "podman-root"), "--runroot", str(base / "podman-run"),
            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none"]


# podman's defaults that this host refuses: crun rejects hybrid cgroups (see the README), and
# podman asks for RLIMIT_NOFILE/NPROC above the hard limits root has here (HOST.md).
PODMAN_RUN = ("run", "--rm", "--runtime", "runc", "--ulimit", "nofile=1024:1024",
              "--ulimit", "nproc=1024:1024")


def podman_image(base: Path, layer: Path | None) -> str:
    """Import the same busybox filesystem into podman's private store; its reference."""
    rootfs = base / "podman-rootfs"
    build_rootfs(rootfs, layer)
    tarball = base / "busybox.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    shutil.rmtree(rootfs)
    ref = "localhost/mdbench-busybox:latest"
    proc = subprocess.run([*podman_base(base), "import", str(tarball), ref],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"podman import: {proc.stderr.strip()[-400:]}")
    return ref


def podman_command(base: Path, image: str) -> Callable[[str], list[str]]:
    return lambda _cid: [*podman_base(base), *PODMAN_RUN, image, "/bin/true"]


def podman_clean_up(base: Path) -> None:
    if (base / "podman-root").exists():
        subprocess.run([*podman_base(base), "rm", "-af"], capture_output=True, check=False)


@dataclass
class Detached:
    """One side of the detached comparison: start N containers that keep running, in a row."""

    name: str
    start: Callable[[int], list[str]]  # i -> the command that starts container i, detached
    stop: Callable[[list[str]], None]  # the IDs started -> remove them all (not timed)
    env: dict[str, str]
    # runc -d hands its own stdio to the container: a pipe would never reach end of file.
    prints_id: bool = True
    totals_ns: list[int] = field(default_factory=list)

    def round(self, count: int) -> None:
        ids = []
        out = subprocess.PIPE if self.prints_id else subprocess.DEVNULL
        try:
            t0 = time.perf_counter_ns()
            for i in range(count):
                argv = self.start(i)
                with watchdog(argv):
                    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=out, text=True, env=self.env, check=False)
                if proc.returncode != 0:
                    raise BenchError(f"{self.name}: `{shlex.join(argv)}` exited with "
                                     f"{proc.returncode}: {(proc.stderr or '').strip()[-400:]}")
                ids.append(proc.stdout.strip() if self.prints_id else argv[-1])
            self.totals_ns.append(time.perf_counter_ns() - t0)
        finally:
            self.stop(ids)
            settle()


def settle(timeout: float = 30, pause: float = 1) -> None:
    """Wait until the kernel has dismantled the namespaces of the containers just removed.

    That happens after `rm`/`delete` return, in a kernel worker holding the lock every
    network change needs (rtnl): the next round would otherwise pay for the last one's
    clean-up (a veth pair goes with its namespace). Then a moment for the supervisor.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and subprocess.run(  # netlink: /sys shows the host's
            ["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True,
            check=False).stdout.strip():
        time.sleep(0.05)
    time.sleep(pause)


def minidocker_detached(minidocker: Path, env: dict[str, str]) -> Detached:
    def stop(ids: list[str]) -> None:
        if ids:
            subprocess.run([str(minidocker), "rm", "-f", *ids], env=env, capture_output=True,
                           check=False)

    counter = [0]

    def start(i: int) -> list[str]:
        counter[0] += 1  # named: 50 random names from 2560 would clash now and then
        return [str(minidocker), "run", "-d", "--name", f"mdbench-{counter[0]}", "busybox",
                "sleep", "600"]

    return Detached("minidocker -d (bridge)", start, stop, env)


def runc_detached(runc: str, state: Path, bundle: Path, prefix: str,
                  env: dict[str, str]) -> Detached:
    counter = [0]

    def start(i: int) -> list[str]:
        counter[0] += 1
        return [runc, "--root", str(state), "run", "-d", "--bundle", str(bundle),
                f"{prefix}-runcd-{counter[0]}"]

    def stop(ids: list[str]) -> None:
        for cid in ids:
            subprocess.run([runc, "--root", str(state), "delete", "-f", cid],
                           capture_output=True, check=False)

    return Detached("runc run -d (private netns, lo only)", start, stop, env, prints_id=False)


def detached_bundle(base: Path, config: dict[str, object], layer: Path | None) -> Path:
    sleeping = json.loads(json.dumps(config))
    sleeping["process"]["args"] = ["/bin/sleep", "600"]
    bundle = base / "bundle-runc-detached"
    make_bundle(bundle, sleeping, layer)
    return bundle


def detached_results(sides: list[Detached], count: int) -> dict[str, dict[str, object]]:
    medians = {d.name: statistics.median(d.totals_ns) / 1e6 for d in sides}
    ref = next((name for name in medians if name.startswith("runc")), None)
    return {d.name: {"containers": count, "rounds": len(d.totals_ns),
                     "median_total_ms": medians[d.name],
                     "per_container_ms": medians[d.name] / count,
                     "totals_ms": [t / 1e6 for t in d.totals_ns],
                     **({"ratio_to_runc": medians[d.name] / medians[ref]} if ref else {})}
            for d in sides}


def format_detached(results: dict[str, dict[str, object]]) -> str:
    lines = [f"{'detached, in a row':40}{'rounds':>7} {'median total':>13} {'per container':>14}"
             f" {'x runc':>7}"]
    for name, row in results.items():
        ratio = row.get("ratio_to_runc")
        shown = "-" if ratio is None else f"{ratio:.2f}"
        lines.append(f"{name:40}{row['rounds']:>7} {row['median_total_ms']:>10.0f} ms "
                     f"{row['per_container_ms']:>11.1f} ms {shown:>7}")
    return "\n".join(lines)


# --- statistics and output ---------------------------------------------------------------------


def summarise(runners: list[Runner]) -> dict[str, dict[str, object]]:
    medians = {r.name: statistics.median(r.samples_ns) / 1e6 for r in runners}
    results: dict[str, dict[str, object]] = {}
    for r in runners:
        ms = [s / 1e6 for s in r.samples_ns]
        deciles = statistics.quantiles(ms, n=10, method="inclusive")
        row: dict[str, object] = {
            "argv": r.argv("<id>"),
            "n": len(ms), "median_ms": medians[r.name], "p10_ms": deciles[0],
            "p90_ms": deciles[-1], "samples_ms": ms,
        }
        for ref in (*REFERENCES, "minidocker", "podman"):
            if ref in medians:
                row[f"ratio_to_{ref}"] = medians[r.name] / medians[ref]
        results[r.name] = row
    return results


def format_table(results: dict[str, dict[str, object]], extras: bool) -> str:
    refs = [ref for ref in (*REFERENCES, "podman") if ref in results]
    if extras and "minidocker" in results:
        refs.append("minidocker")
    width = max(len(name) for name in results) + 2
    head = f"{'':{width}}{'n':>4} {'median':>9} {'p10':>9} {'p90':>9}"
    head += "".join(f" {'x ' + ref:>13}" for ref in refs)
    lines = [head]
    for name, row in results.items():
        line = f"{name:{width}}{row['n']:>4} "
        line += " ".join(f"{row[k]:>6.1f} ms" for k in ("median_ms", "p10_ms", "p90_ms"))
        line += "".join(f" {row['ratio_to_' + ref]:>13.2f}" for ref in refs)
        lines.append(line)
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=50, help="timed runs per runtime (default 50)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs each first (default 2)")
    p.add_argument("--minidocker", type=Path, default=DEFAULT_MINIDOCKER,
                   help=f"minidocker console script (default {DEFAULT_MINIDOCKER})")
    p.add_argument("--only", default=",".join(BUILTINS),
                   help="comma-separated subset of minidocker,runc,crun (default: all)")
    p.add_argument("--extra", "--variant", action="append", default=[], metavar="NAME='ARGS'",
                   help="add a minidocker variant to the loop, e.g. "
                        "mem='run --rm --memory 64m busybox true' (repeatable); "
                        "NAME='@PATH run ...' runs another minidocker (an older checkout)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (text on stderr)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless minidocker's median <= runc's median")
    p.add_argument("--networking", action="store_true",
                   help="issue 7: also minidocker on its default bridge against podman on its "
                        "default network (same loop), then 50 detached networked containers "
                        "against runc's (all in a private network namespace)")
    p.add_argument("--detached", type=int, default=DETACHED, metavar="N",
                   help=f"containers per round of the detached comparison (default {DETACHED})")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := set(args.only) - set(BUILTINS):
        p.error(f"--only: unknown runtime(s) {', '.join(sorted(unknown))}")
    if args.n < 2 or args.warmup < 0:
        p.error("-n must be >= 2 and --warmup >= 0")
    variants: dict[str, list[str]] = {}
    for spec in args.extra:
        name, sep, words = spec.partition("=")
        try:
            split = shlex.split(words)
        except ValueError as exc:
            p.error(f"--extra {spec!r}: {exc}")
        if split[:1] == ["minidocker"]:
            split = split[1:]
        if split[:1] and split[0].startswith("@") and not os.access(split[0][1:], os.X_OK):
            p.error(f"--extra {spec!r}: {split[0][1:]} is not an executable")
        if not sep or not name or not split or name in (*BUILTINS, *variants):
            p.error(f"--extra {spec!r}: want a new NAME='minidocker args...'")
        variants[name] = split
    args.variants = variants
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    detached: dict[str, dict[str, object]] = {}

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    if os.geteuid() != 0:
        say("run as root: sudo .venv/bin/python benchmarks/startup.py")
        return 2

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)

    prefix = f"mdbench-{os.getpid()}"
    base = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    runners: list[Runner] = []
    try:
        if args.networking:
            enter_sandbox_netns()
        info, results = benchmark(args, base, prefix, runners, say)
        if args.networking:
            detached = benchmark_detached(args, base, prefix, runners, say)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BenchError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not skip clean-up
        if args.networking:
            podman_clean_up(base)
        clean_up(base, prefix, runners, say)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    say(format_table(results, bool(args.variants)))
    if detached:
        say(format_detached(detached))
    if args.json:
        print(json.dumps({**info, "results": results, "detached": detached}, indent=2))
    if args.check:
        if "minidocker" not in results or "runc" not in results:
            say("--check: needs both minidocker and runc measured")
            return 2
        medians = {r.name: statistics.median(r.samples_ns) for r in runners}
        ok = medians["minidocker"] <= medians["runc"]
        say(f"--check: minidocker median {'<=' if ok else '>'} runc median: "
            f"{'pass' if ok else 'FAIL'}")
        return 0 if ok else 1
    return 0


def benchmark_detached(args: argparse.Namespace, base: Path, prefix: str, runners: list[Runner],
                       say: Callable[[str], None]) -> dict[str, dict[str, object]]:
    """N detached containers in a row, minidocker (default bridge) against runc (a private
    netns with lo only), rounds interleaved; clean-up between rounds is not timed."""
    env = next(r.env for r in runners)
    runc = shutil.which("runc")
    if runc is None:
        raise BenchError("the detached comparison needs runc")
    layer = find_minidocker_layer(base / "minidocker-root")
    config = bundle_config(runc, base)
    state = base / "state-runc-detached"
    state.mkdir()
    sides = [minidocker_detached(args.minidocker.absolute(), env),
             runc_detached(runc, state, detached_bundle(base, config, layer), prefix, env)]
    say(f"timing {DETACHED_ROUNDS} rounds of {args.detached} detached containers each: "
        f"{', '.join(d.name for d in sides)}...")
    settle(pause=5)  # the loop above destroyed ~200 namespaces: the kernel may still be at it
    for i in range(DETACHED_ROUNDS):
        for side in sides if i % 2 == 0 else reversed(sides):
            side.round(args.detached)
    return detached_results(sides, args.detached)


def benchmark(args: argparse.Namespace, base: Path, prefix: str, runners: list[Runner],
              say: Callable[[str], None]
              ) -> tuple[dict[str, object], dict[str, dict[str, object]]]:
    """Set up, warm up, run the interleaved loop. Fills `runners` as it goes, for clean-up."""
    env = {**os.environ, "MINIDOCKER_ROOT": str(base / "minidocker-root")}
    info: dict[str, object] = {
        "kernel": f"{platform.release()} {platform.version()}",
        "python": f"{sys.executable} {platform.python_version()}",
        "cgroups": cgroup_mode(), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
        "n": args.n, "warmup": args.warmup,
    }
    skipped: dict[str, str] = {}
    wanted = [name for name in BUILTINS if name in args.only]
    if args.variants and "minidocker" not in wanted:
        wanted.insert(0, "minidocker")  # variants are measured next to plain minidocker

    minidocker = args.minidocker.absolute()
    if "minidocker" in wanted:
        if not os.access(minidocker, os.X_OK):
            skipped["minidocker"] = f"{minidocker} not found (pip install -e . in the venv)"
        else:
            interp = script_interpreter(minidocker)
            info["minidocker"] = tool_version([str(minidocker), "--version"])
            info["minidocker_python"] = f"{interp} ({tool_version([interp.split()[0], '-V'])})"
            if "pyenv" in interp:
                say(f"warning: {minidocker} starts through a pyenv shim ({interp}): ~150 ms each")
            named = {"minidocker": list(MINIDOCKER_ARGS), **args.variants}
            if args.networking:
                named["md-bridge"] = list(BRIDGE_ARGS)
            for name, words in named.items():
                binary = minidocker
                if words[0].startswith("@"):  # another minidocker: an older commit, say
                    binary, words = Path(words[0][1:]).absolute(), words[1:]
                    say(f"{name + ':':19}{binary}")
                runners.append(Runner(name, minidocker_command(binary, words), env))
    for tool in REFERENCES:
        if tool in wanted:
            if path := shutil.which(tool):
                info[tool] = tool_version([path, "--version"])
            else:
                skipped[tool] = "not installed (apt-get install runc crun)"
    for name, reason in skipped.items():
        say(f"skipping {name}: {reason}")
    if not any(tool in info for tool in REFERENCES):
        raise BenchError("need runc or crun as a reference: absolute times alone mean little")
    for key in ("kernel", "python", "cgroups", "minidocker", "minidocker_python", *REFERENCES):
        if key in info:
            say(f"{key + ':':19}{info[key]}")
    say(f"{'load average:':19}{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        f" on {os.cpu_count()} cpus")

    # minidocker first: its warm-ups import busybox into its store, whose layer the bundles copy.
    for runner in runners:
        warm_up(runner, prefix, args.warmup)
    layer = find_minidocker_layer(base / "minidocker-root") if runners else None

    refs = [tool for tool in REFERENCES if tool in info]
    spec_tool = shutil.which(refs[0]) or refs[0]
    config = bundle_config(spec_tool, base)
    for tool in refs:
        path = shutil.which(tool) or tool
        bundle, state = base / f"bundle-{tool}", base / f"state-{tool}"
        info["rootfs"] = make_bundle(bundle, config, layer)
        state.mkdir()
        runner = Runner(tool, oci_run_command(path, state, bundle), env)
        runners.append(runner)  # before the namespace exists, so clean-up always finds it
        if tool == "crun" and crun_needs_hidden_unified():
            runner.mount_ns = mount_ns_without_unified_cgroup()
            info["crun_note"] = f"run in a private mount namespace without {UNIFIED}"
        warm_up(runner, prefix, args.warmup)
    say(f"{'rootfs:':19}{info['rootfs']}")
    if "crun_note" in info:
        say(f"{'crun:':19}{info['crun_note']} (hybrid cgroups, see README)")

    if args.networking:
        if not shutil.which("podman"):
            raise BenchError("--networking needs podman (apt-get install podman)")
        info["podman"] = tool_version(["podman", "--version"])
        image = podman_image(base, layer)
        runner = Runner("podman", podman_command(base, image), env)
        runners.append(runner)
        warm_up(runner, prefix, args.warmup)
        say(f"{'podman:':19}{info['podman']}, its default network, `{shlex.join(PODMAN_RUN)}`")

    order = [r.name for r in runners]
    info["order"] = order
    say(f"timing {args.n} rounds of {', '.join(order)} (round-robin)...")
    for _ in range(args.n):
        for runner in runners:
            run_timed(runner, prefix)
    return info, summarise(runners)


if __name__ == "__main__":
    sys.exit(main())
