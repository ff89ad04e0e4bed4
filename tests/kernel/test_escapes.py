"""The escape suite (issue 5): each known breakout, tried from inside a container.

In a default container every attack must fail; under ``--privileged`` most of them succeed,
which is what the default protects. The attacks and their probe are in
:mod:`minidocker.escapes` and ``tests/escapes/probe.c``; each stops at the proof and changes
nothing, and the host's fingerprint (core_pattern, sysrq, every release_agent, the host's
mounts and /dev, minidocker's own interpreter) is compared before and after the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker import escapes, mountinfo
from tests.conftest import CLI, needs_root, stop_minidocker
from tests.escapes.image import probe_cli

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb03]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CLI]:
    cli = probe_cli(tmp_path_factory, "escapes")
    yield cli
    stop_minidocker(cli.root)


@pytest.fixture(scope="module", autouse=True)
def host_untouched():
    """The host must look the same after every attack as before any."""
    before = escapes.host_fingerprint()
    yield
    after = escapes.host_fingerprint()
    changed = {k: (before.get(k), after.get(k)) for k in set(before) | set(after)
               if before.get(k) != after.get(k)}
    assert not changed, f"the escape suite changed the host: {changed}"


@pytest.fixture(scope="module")
def host_process():
    """A host process the ptrace attack may aim at: our own sleep, nobody else's."""
    sleeper = subprocess.Popen(["sleep", "600"])
    yield sleeper.pid
    sleeper.kill()
    sleeper.wait()


def runner(cli: CLI) -> escapes.Runner:
    def run(*args: str) -> tuple[int, str, str]:
        done = cli(*args)
        return done.returncode, done.stdout, done.stderr
    return run


def attack(key: str, host_pid: int = 0, cli: CLI | None = None) -> escapes.Attack:
    state_root = str(cli.root) if cli is not None else None
    [found] = [a for a in escapes.attacks(host_pid, state_root=state_root) if a.key == key]
    return found


KEYS = [a.key for a in escapes.attacks()]


@pytest.mark.parametrize("key", KEYS)
def test_fails_in_a_default_container(probe: CLI, host_process: int, key: str) -> None:
    outcome = escapes.run_attack(runner(probe), attack(key, host_process), "default")
    assert outcome.failed, f"{key} got through a default container: {outcome.line}"
    if outcome.word == "N/A":  # only where this kernel lacks the target altogether
        assert key == "sysrq" and not os.path.exists("/proc/sysrq-trigger"), outcome.line


@pytest.mark.parametrize("key", KEYS)
def test_privileged_shows_what_the_default_protects(probe: CLI, host_process: int,
                                                    key: str) -> None:
    a = attack(key, host_process, probe)
    outcome = escapes.run_attack(runner(probe), a, "privileged")
    if a.privileged == "N/A" or outcome.word == "N/A":
        assert outcome.word in ("N/A", "BLOCKED"), outcome.line
        pytest.skip(f"not demonstrable on this host: {outcome.line}")
    assert outcome.word == a.privileged, outcome.line


def test_the_default_refusals_come_from_the_right_defence(probe: CLI,
                                                          host_process: int) -> None:
    run = runner(probe)

    def line(key: str) -> str:
        return escapes.run_attack(run, attack(key, host_process), "default").line
    assert "open of the new node: EACCES" in line("mknod-disk")  # nodev, not a missing mknod
    assert "EROFS" in line("core-pattern")  # a read-only /proc/sys
    for key in ("keyctl", "module", "shocker", "userns", "release-agent"):
        assert "EPERM" in line(key), key  # seccomp's answer
    assert "ptrace: EPERM" in line("ptrace")  # visible with --pid host, but no CAP_SYS_PTRACE
    assert "container's own root" in line("chroot")


def test_ptrace_cannot_even_see_host_processes_without_pid_host(probe: CLI,
                                                                host_process: int) -> None:
    out = probe("run", "--rm", "escape-probe", "/probe", "ptrace", str(host_process),
                check=True).stdout
    assert "ESRCH" in out


def test_the_pivoted_root_holds_even_when_privileged(probe: CLI) -> None:
    out = probe("run", "--rm", "--privileged", "escape-probe", "/probe", "chroot",
                check=True).stdout
    assert out.startswith("BLOCKED") and "container's own root" in out


def test_shocker_under_privileged_lists_the_hosts_root(probe: CLI) -> None:
    """The root of the filesystem the state root is on (the host's / here); on a filesystem
    whose handles the probe cannot guess (a tmpfs /tmp, as in the VM lane) it is refused."""
    out = probe("run", "--rm", "--privileged", "escape-probe", "/probe", "shocker",
                check=True).stdout
    if not escapes.shocker_reaches(str(probe.root)):
        assert out.startswith("BLOCKED open_by_handle_at: ESTALE"), out
        return
    # The root of that filesystem, wherever it is mounted whole.
    mounts = mountinfo.parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    here = mountinfo.mount_containing(os.path.realpath(probe.root), mounts)
    assert here is not None
    whole = [m for m in mounts if m.source == here.source and m.root == "/"]
    assert whole, f"{here.source} is not mounted whole anywhere"
    listed = set(out.split(":", 1)[1].split())
    assert listed and listed <= set(os.listdir(whole[0].mount_point)), out


def test_release_agent_under_privileged_needs_a_v1_hierarchy(probe: CLI) -> None:
    """CVE-2022-0492 needs a cgroup v1 hierarchy with a release_agent. A v2-only host has
    none, and a new one may be made only from the initial cgroup namespace: refused even to a
    privileged container (which is the point of cgroup namespaces and v2 here)."""
    out = probe("run", "--rm", "--privileged", "escape-probe", "/probe", "release-agent",
                check=True).stdout
    if escapes.v1_release_agents():
        assert out.startswith("ESCAPED mounted the cgroup v1 hierarchy"), out
    else:
        assert out.startswith("BLOCKED mount cgroup v1 (also from a new user namespace): "
                              "EPERM"), out


def test_proc_exe_under_privileged_reaches_the_hosts_python(probe: CLI) -> None:
    """What CVE-2019-5736 needs: /proc/1/exe (--init's PID 1) is the host's interpreter."""
    out = probe("run", "--rm", "--init", "--privileged", "escape-probe", "/probe", "proc-exe",
                check=True).stdout
    host = os.stat(os.path.realpath(sys.executable))
    assert f"inode {host.st_ino} " in out, out


def test_seccomp_alone_stops_the_user_namespace_route(probe: CLI) -> None:
    """With the default capabilities but no filter, unshare(CLONE_NEWUSER) works: it is the
    seccomp profile, not the capability set, that keeps this door shut."""
    out = probe("run", "--rm", "--security-opt", "seccomp=unconfined", "escape-probe",
                "/probe", "userns", check=True).stdout
    assert out.startswith("ALLOWED")


def test_the_table(probe: CLI, host_process: int) -> None:
    results = escapes.run_suite(runner(probe), host_process, state_root=str(probe.root))
    table = escapes.format_table(results)
    assert len(table.splitlines()) == len(KEYS) + 1
    assert all(default.failed for default, _ in results), table
