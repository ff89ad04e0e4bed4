"""Shared fixtures: a private state root per test, a CLI runner, and the session leak check.

The leak check is the safety net behind every test: whatever a test did, when the session ends
no process may still be running in, and no mount, network namespace or cgroup may remain from,
any state root the tests created. It fails the run otherwise.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TEST_ROOT_MARK = f"mdtest{os.getpid()}-"  # this session's state roots; others may run beside us
# Labs the tests start (lesson runs, the lab command) carry the mark too, so the leak check
# counts their netns, and never the netns of a lesson someone else runs beside us.
os.environ["MINIDOCKER_LAB_TAG"] = TEST_ROOT_MARK
# This machine's network is never touched: `minidocker run` without --network gets `none` in
# tests (dockerd's --bridge=none); tests/kernel/test_network.py gives its sandbox hosts bridge.
os.environ["MINIDOCKER_DEFAULT_NETWORK"] = "none"
# Nor is the Internet: `run` of a missing image pulls it, and a docker.io name would reach
# Docker Hub. An HTTPS proxy on a closed loopback port makes such a pull fail at once, without
# even a DNS lookup; the tests' own registries are on loopback, which no proxy applies to.
for _name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
    os.environ[_name] = "http://127.0.0.1:9"
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost,::1"


def is_root() -> bool:
    return os.geteuid() == 0


needs_root = pytest.mark.skipif(not is_root(), reason="needs root: namespaces and mounts")


def _our_processes() -> list[str]:
    """Processes whose mounts or command line mention a test state root."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        cmdline = _ours(pid)
        if cmdline is not None:
            found.append(f"{pid}: {cmdline.strip()[:120]}")
    return found


def _ours(pid: str) -> str | None:
    """``pid``'s command line if it is this session's (its mounts or command line mention a
    test state root); None if it is not, or has exited while we looked."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        with open(f"/proc/{pid}/mountinfo") as f:
            mounts = f.read()
    except OSError:  # the process exited while we looked (ESRCH, EINVAL, ENOENT)
        return None
    return cmdline if TEST_ROOT_MARK in mounts or TEST_ROOT_MARK in cmdline else None


def _our_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if TEST_ROOT_MARK in line]


def _cgroups() -> set[str]:
    """minidocker's cgroups: the default parent (``minidocker``) in each hierarchy and the
    containers' groups in it, and the test-made parents (tests/kernel/test_cgroups.py)."""
    found = set()
    base = Path("/sys/fs/cgroup")
    for pattern in ("*minidocker*", "*/*minidocker*", "minidocker/*", "*/minidocker/*"):
        found.update(str(p) for p in base.glob(pattern) if p.is_dir())
    return found


def default_groups(name: str) -> list[Path]:
    """The groups called ``name`` (a glob) under minidocker's default parent: one per v1
    hierarchy, or the one on v2."""
    root = Path("/sys/fs/cgroup")
    return [*root.glob(f"minidocker/{name}"), *root.glob(f"*/minidocker/{name}")]


def _held_by_others(cgroup_dir: str) -> bool:
    """A group some other session's process is in (another test run, a CI run beside us)."""
    try:
        with open(os.path.join(cgroup_dir, "cgroup.procs")) as f:
            pids = f.read().split()
    except OSError:
        return False
    return any(_ours(pid) is None for pid in pids)


def _leaked_cgroups(before: set[str], grace: float = 5) -> list[str]:
    """New cgroups that are this session's: another session's groups hold its processes, or
    go away within ``grace`` seconds as its containers exit; a leak of ours stays."""
    import time

    deadline = time.monotonic() + grace
    while True:
        new = sorted(p for p in _cgroups() - before if not _held_by_others(p)
                     and os.path.basename(p) != "minidocker")  # the parent stays, by design
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.2)


def _supervisors() -> list[str]:
    """Supervisors and keepers (see minidocker.supervisor) still serving a test state root."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm not in ("md-supervisor", "md-keeper"):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if TEST_ROOT_MARK in cmdline:
            found.append(f"{pid} {comm}: {cmdline.split('--root')[-1].strip()}")
    return found


def stop_minidocker(root: Path) -> list[str]:
    """Stop what a test left running under ``root``: its containers, then its supervisor and
    keeper, each by PID (minidocker.client.stop_everything). What it had to stop."""
    if not (root / "containers").is_dir() and not (root / "supervisor").is_dir():
        return []
    from minidocker import client, state

    return client.stop_everything(state.Layout(str(root)))


def _netns() -> set[str]:
    """Named network namespaces, but those of other sessions (``mdtest<their pid>-``) and of
    lessons run outside this session (``mdlab-*`` without our mark)."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return set()
    return {n for n in names
            if TEST_ROOT_MARK in n or not ("mdtest" in n or n.startswith("mdlab-"))}


@pytest.fixture(scope="session", autouse=True)
def leak_check():
    """Fail the session if any test left a process, mount, cgroup or netns behind (host links:
    see the sandbox of tests/kernel/test_network.py)."""
    cgroups_before, netns_before = _cgroups(), _netns()
    yield
    leaks = {
        "processes": _our_processes(),
        "supervisors": _supervisors(),
        "mounts": _our_mounts(),
        "cgroups": _leaked_cgroups(cgroups_before),
        "netns": sorted(_netns() - netns_before),
    }
    leaks = {k: v for k, v in leaks.items() if v}
    if leaks:
        pytest.fail(f"resources leaked by the test session: {leaks}", pytrace=False)


@pytest.fixture
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private, empty minidocker state root for one test; afterwards, whatever still runs
    there (containers, the supervisor a command started) is stopped by PID."""
    root = tmp_path_factory.mktemp(TEST_ROOT_MARK + "root")
    yield root
    stop_minidocker(root)


class CLI:
    """Runs ``minidocker`` as a user would, against one state root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "MINIDOCKER_ROOT": str(root)}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "minidocker", *args]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60,
                 check: bool = False) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.argv(*args), env=self.env, input=input, text=True,
                                capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"minidocker {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr}")
        return result

    def popen(self, *args: str, **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), env=self.env, text=True,  # type: ignore[call-overload]
                                **kw)


@pytest.fixture
def cli(state_root: Path) -> CLI:
    return CLI(state_root)



@pytest.fixture
def own_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No registry test reads or writes the credentials of the user running the tests (the
    registry modules use it for every test; not autouse for all: podman, for one, refuses a
    ``$DOCKER_CONFIG`` that has no config.json)."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockercfg"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Debian's docker-registry on 127.0.0.1, no auth, one per test module, stopped by pid."""
    from tests.registry_server import RegistryServer

    server = RegistryServer(tmp_path_factory.mktemp(TEST_ROOT_MARK + "registry"))
    yield server
    server.stop()


@pytest.fixture
def other_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CLI]:
    """A second, empty state root: where an image pushed from ``cli``'s is pulled."""
    root = tmp_path_factory.mktemp(TEST_ROOT_MARK + "root")
    yield CLI(root)
    stop_minidocker(root)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler for :func:`serve_http` that logs nothing to the test's output."""

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server on a free port of 127.0.0.1 with ``handler``; yields its URL."""
    from tests.registry_server import LoopbackHTTP

    server = LoopbackHTTP(handler)
    try:
        yield f"http://{server.address}"
    finally:
        server.close()

# The probe lives with the mechanism, where the lessons find it too.
from minidocker.userns import idmap_supported  # noqa: E402,F401
