"""``minidocker-runtime`` driven as an engine drives it, on a busybox bundle, on the real kernel.

Each test writes a bundle the way ``runc spec`` does (``minidocker-runtime spec``, then the
process changed), runs the runtime's commands as podman or containerd would, and checks what
the kernel says: the process held before execve after ``create``, running after ``start``, the
pid file, exit codes, signals by name and number, the refusals, the console socket's pty, and
that a refused or failed create leaves nothing (the session's leak check in tests/conftest.py
sees processes, mounts and cgroups).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from minidocker import procfs
from tests.conftest import TEST_ROOT_MARK, needs_root
from tests.kernel.test_lifecycle import wait_for

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb11]

RUNTIME = Path(sys.executable).parent / "minidocker-runtime"


def runtime_argv(root: Path, *args: str) -> list[str]:
    if RUNTIME.exists():
        return [str(RUNTIME), "--root", str(root), *args]
    return [sys.executable, "-c", "import sys; from minidocker.ociruntime import main; "
            "sys.exit(main())", "--root", str(root), *args]


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from minidocker import busybox
    from minidocker.errors import HostError

    try:
        data = busybox.check_static()
    except HostError as exc:
        pytest.skip(f"no static busybox to make a bundle from: {exc}")
    rootfs = tmp_path_factory.mktemp(TEST_ROOT_MARK + "rootfs") / "rootfs"
    tar = busybox.build_rootfs(data, busybox.applets(), 0)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(rootfs)  # our own tar: busybox and its applets
    return rootfs


class Runtime:
    """``minidocker-runtime --root ROOT`` and a bundle to run it on."""

    def __init__(self, root: Path, bundle: Path, rootfs: Path) -> None:
        self.root, self.bundle, self.rootfs = root, bundle, rootfs

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run it; its output through files, not pipes: a created container keeps the
        runtime's stdout and stderr (they become its own), and a pipe would stay open."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            code = subprocess.run(runtime_argv(self.root, *args), stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, timeout=timeout,
                                  cwd=self.bundle).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, code, out.read().decode(),
                                               err.read().decode())

    def config(self, args: list[str], **changes: object) -> dict:
        """Write ``runc spec``'s config.json with ``args`` as the process; ``changes`` are set
        by dotted path (``process.terminal=True``)."""
        path = self.bundle / "config.json"
        if path.exists():
            path.unlink()
        result = self("spec", "-b", str(self.bundle))
        assert result.returncode == 0, result.stderr
        document = json.loads(path.read_text())
        document["root"]["path"] = str(self.rootfs)
        document["process"]["terminal"] = False
        document["process"]["args"] = args
        for dotted, value in changes.items():
            *parents, last = dotted.split(".")
            node = document
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        path.write_text(json.dumps(document))
        return document

    def state(self, cid: str) -> dict:
        result = self("state", cid)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def left(self) -> list[str]:
        """What the runtime keeps under its root: containers' state, the engine's records."""
        found = [n for n in os.listdir(self.root) if n != ".engine"] if self.root.exists() \
            else []
        engine = self.root / ".engine" / "containers"
        return found + (os.listdir(engine) if engine.exists() else [])


@pytest.fixture
def rt(tmp_path_factory: pytest.TempPathFactory, busybox_rootfs: Path):
    root = tmp_path_factory.mktemp(TEST_ROOT_MARK + "oci") / "root"
    bundle = tmp_path_factory.mktemp(TEST_ROOT_MARK + "bundle")
    runtime = Runtime(root, bundle, busybox_rootfs)
    yield runtime
    for cid in [n for n in os.listdir(root) if n != ".engine"] if root.exists() else []:
        runtime("delete", "--force", cid)


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


# -- the lifecycle ------------------------------------------------------------------------------

def test_run_in_the_foreground_returns_the_exit_code_and_leaves_nothing(rt: Runtime) -> None:
    rt.config(["sh", "-c", "echo hello from $(hostname); exit 3"], hostname="bundled")
    result = rt("run", "c1")
    assert (result.returncode, result.stdout, result.stderr) == (3, "hello from bundled\n", "")
    assert rt.left() == []


def test_create_holds_the_process_until_start(rt: Runtime, tmp_path: Path) -> None:
    rt.config(["sleep", "1000"])
    pid_file = tmp_path / "pid"
    result = rt("create", "--pid-file", str(pid_file), "c1")
    assert result.returncode == 0, result.stderr
    pid = int(pid_file.read_text())  # written before create returned
    state = rt.state("c1")
    assert (state["status"], state["pid"], state["id"]) == ("created", pid, "c1")
    assert state["bundle"] == str(rt.bundle)
    assert "minidocker-runtime" in cmdline(pid) and "sleep" not in cmdline(pid)  # not exec'd
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert rt("start", "c1").returncode == 0
    assert rt.state("c1")["status"] == "running"
    assert cmdline(pid) == "sleep 1000"
    again = rt("start", "c1")
    assert again.returncode == 1 and "cannot start a container in the running state" in \
        again.stderr
    assert rt("kill", "c1", "KILL").returncode == 0
    wait_for(lambda: rt.state("c1")["status"] == "stopped", what="stopped")
    assert rt("delete", "c1").returncode == 0
    assert rt.left() == []
    assert rt("state", "c1").stderr == "minidocker-runtime: container does not exist\n"


def test_run_detached_then_state_and_list(rt: Runtime) -> None:
    rt.config(["sleep", "1000"])
    assert rt("run", "--detach", "c1").returncode == 0
    assert rt.state("c1")["status"] == "running"
    assert rt("list", "-q").stdout.split() == ["c1"]
    ps = rt("ps", "--format", "json", "c1")
    assert json.loads(ps.stdout) == [rt.state("c1")["pid"]]
    assert rt("delete", "--force", "c1").returncode == 0
    assert rt.left() == []


@pytest.mark.parametrize("sig, code", [("TERM", 143), ("SIGUSR1", 138), ("15", 143),
                                       ("9", 137)])
def test_kill_by_name_and_number(rt: Runtime, sig: str, code: int) -> None:
    # PID 1 of a PID namespace gets only the signals it handles (and SIGKILL from outside),
    # so the shell traps them, and exits as the signal would have ended it.
    rt.config(["sh", "-c", "trap 'exit 143' TERM; trap 'exit 138' USR1; echo ready; "
                           "while :; do sleep 0.05; done"])
    run = subprocess.Popen(runtime_argv(rt.root, "run", "c1"), cwd=rt.bundle, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert run.stdout is not None and run.stdout.readline() == "ready\n"
        result = rt("kill", "c1", sig)
        assert result.returncode == 0, result.stderr
        assert run.wait(timeout=30) == code
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert rt.left() == []


def test_kill_refuses_a_bad_signal_and_a_stopped_container(rt: Runtime) -> None:
    rt.config(["true"])
    assert rt("create", "c1").returncode == 0
    bad = rt("kill", "c1", "SIGNOPE")
    assert (bad.returncode, bad.stderr) == (1, "minidocker-runtime: invalid signal: SIGNOPE\n")
    assert rt("start", "c1").returncode == 0
    wait_for(lambda: rt.state("c1")["status"] == "stopped", what="true to exit")
    stopped = rt("kill", "c1", "KILL")
    assert (stopped.returncode, stopped.stderr) == (1, "minidocker-runtime: container not "
                                                       "running\n")
    assert rt("delete", "c1").returncode == 0


def test_delete_refuses_a_running_container_without_force(rt: Runtime) -> None:
    rt.config(["sleep", "1000"])
    assert rt("run", "-d", "c1").returncode == 0
    pid = rt.state("c1")["pid"]
    refused = rt("delete", "c1")
    assert (refused.returncode, refused.stderr) == (
        1, "minidocker-runtime: cannot delete container c1 that is not stopped: running\n")
    assert cmdline(pid) == "sleep 1000"
    assert rt("delete", "--force", "c1").returncode == 0
    assert not procfs.process_alive(pid, None)  # gone, or a zombie its new parent will reap
    assert rt.left() == []
    assert rt("delete", "--force", "c1").returncode == 0  # runc: gone is gone
    assert rt("delete", "c1").stderr == "minidocker-runtime: container does not exist\n"


def test_delete_of_a_created_container_needs_no_force(rt: Runtime) -> None:
    rt.config(["true"])
    assert rt("create", "c1").returncode == 0
    pid = rt.state("c1")["pid"]
    assert rt("delete", "c1").returncode == 0
    assert not procfs.process_alive(pid, None)  # gone, or a zombie its new parent will reap
    assert rt.left() == []


def test_create_of_an_id_in_use_is_refused(rt: Runtime) -> None:
    rt.config(["sleep", "1000"])
    assert rt("create", "c1").returncode == 0
    before = rt.state("c1")
    again = rt("create", "c1")
    assert (again.returncode, again.stderr) == (
        1, "minidocker-runtime: container with id exists: c1\n")
    assert rt.state("c1") == before
    assert rt("delete", "c1").returncode == 0


def test_pause_and_resume_freeze_the_container(rt: Runtime) -> None:
    rt.config(["sleep", "1000"])
    assert rt("run", "-d", "c1").returncode == 0
    pid = rt.state("c1")["pid"]
    assert rt("pause", "c1").returncode == 0
    assert rt.state("c1")["status"] == "paused"
    wait_for(lambda: Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "DS",
             what="frozen")
    assert rt("resume", "c1").returncode == 0
    assert rt.state("c1")["status"] == "running"
    assert rt("delete", "--force", "c1").returncode == 0


# -- what config.json asks, applied -------------------------------------------------------------

def test_the_bundle_confines_as_it_says(rt: Runtime) -> None:
    """runc spec's defaults: its three capabilities exactly, a read-only root, masked and
    read-only /proc paths, the rlimit, no_new_privs, the bundle's hostname."""
    script = ("grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; ulimit -n; "
              "touch /x 2>/dev/null && echo root-writable; "
              "wc -c < /proc/timer_list; "
              "echo 1 > /proc/sys/kernel/ostype 2>/dev/null && echo sys-writable; "
              "mount | grep -c ' /dev/mqueue '; hostname")
    rt.config(["sh", "-c", script], hostname="c1host")
    result = rt("run", "c1")
    assert result.returncode == 0, result.stderr
    caps = hex((1 << 29) | (1 << 5) | (1 << 10))  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert result.stdout.split("\n") == [
        f"CapEff:\t{int(caps, 16):016x}", f"CapBnd:\t{int(caps, 16):016x}",
        "NoNewPrivs:\t1", "1024", "0", "1", "c1host", ""]


def test_sysctl_user_groups_and_env_are_exact(rt: Runtime) -> None:
    rt.config(["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward; id; env | sort"],
              **{"linux.sysctl": {"net.ipv4.ip_forward": "1"},
                 "process.user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]},
                 "process.env": ["A=1", "PATH=/bin"]})
    result = rt("run", "c1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1"
    assert lines[1].startswith("uid=1000 gid=1000 groups=")
    assert "10(wheel)" in lines[1] and "20" in lines[1]
    assert [e for e in lines[2:] if e.split("=")[0] not in ("PWD", "SHLVL", "HOME")] == \
        ["A=1", "PATH=/bin"]


def read_until(fd: int, marker: bytes) -> bytes:
    out = b""
    while marker not in out:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the last slave fd closed
            break
        if not chunk:
            break
        out += chunk
    return out


def test_the_console_socket_receives_a_working_pty(rt: Runtime, tmp_path: Path) -> None:
    rt.config(["sh", "-c", "tty; stty size; read line; echo got $line"],
              **{"process.terminal": True, "process.consoleSize": {"height": 30, "width": 100}})
    path = str(tmp_path / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        creating = subprocess.Popen(runtime_argv(rt.root, "create", "--console-socket", path,
                                                 "c1"), cwd=rt.bundle, text=True,
                                    stderr=subprocess.PIPE)
        server.settimeout(30)
        conn, _ = server.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        assert creating.wait(timeout=30) == 0, creating.stderr
    [master] = fds
    try:
        assert os.isatty(master)
        assert rt("start", "c1").returncode == 0
        out = read_until(master, b"30 100")
        os.write(master, b"hello\n")  # typed only now: the terminal echoes it
        out += read_until(master, b"got hello")
    finally:
        os.close(master)
    text = out.decode().replace("\r", "")
    assert text.startswith("/dev/pts/0\n30 100\n"), text
    assert "got hello" in text
    wait_for(lambda: rt.state("c1")["status"] == "stopped", what="the shell to exit")
    assert rt("delete", "c1").returncode == 0


def test_a_terminal_without_a_console_socket_is_refused_on_create(rt: Runtime) -> None:
    rt.config(["true"], **{"process.terminal": True})
    result = rt("create", "c1")
    assert (result.returncode, result.stderr) == (
        1, "minidocker-runtime: cannot allocate tty if runc will detach without setting "
           "console socket\n")
    assert rt.left() == []


# -- bad input: one line naming the field, nothing left -----------------------------------------

BAD = [
    ("not json", "{nope", "config.json: not JSON: "),
    ("unknown namespace", {"linux.namespaces": [{"type": "mount"}, {"type": "bogus"}]},
     "config.json: linux.namespaces[1].type: unknown namespace 'bogus'"),
    ("no such root", {"root.path": "/nonexistent-root"},
     "config.json: root.path: /nonexistent-root is not a directory"),
    ("mount without destination", {"mounts": [{"type": "tmpfs", "source": "tmpfs"}]},
     "config.json: mounts[0].destination is missing"),
    ("unknown capability", {"process.capabilities": {"bounding": ["CAP_NOPE"]}},
     "config.json: process.capabilities.bounding: unknown capability 'CAP_NOPE'"),
    ("a relative hook", {"hooks": {"prestart": [{"path": "true"}]}},
     "config.json: hooks.prestart[0].path 'true' is not an absolute path"),
]


@pytest.mark.parametrize("what, change, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_naming_the_field(rt: Runtime, what: str, change: object,
                                                message: str) -> None:
    rt.config(["true"])
    if isinstance(change, str):
        (rt.bundle / "config.json").write_text(change)
    else:
        document = json.loads((rt.bundle / "config.json").read_text())
        for dotted, value in change.items():  # type: ignore[attr-defined]
            *parents, last = dotted.split(".")
            node = document
            for key in parents:
                node = node[key]
            node[last] = value
        (rt.bundle / "config.json").write_text(json.dumps(document))
    result = rt("create", "c1")
    assert result.returncode == 1
    assert result.stderr.startswith(f"minidocker-runtime: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert rt.left() == []


def test_a_create_that_fails_in_the_start_leaves_nothing(rt: Runtime, tmp_path: Path) -> None:
    rt.config(["true"], mounts=[{"destination": "/data", "type": "bind",
                                 "source": str(tmp_path / "missing"), "options": ["rbind"]}])
    result = rt("create", "--pid-file", str(tmp_path / "pid"), "c1")
    assert result.returncode == 1
    assert "missing" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "pid").exists()
    assert rt.left() == []


def test_namespaces_are_joined_by_path(rt: Runtime, tmp_path: Path) -> None:
    """linux.namespaces[].path: the second container is born in the first's PID namespace
    (setns before the fork) and joins its network namespace (setns in the child)."""
    rt.config(["sleep", "1000"])
    assert rt("run", "-d", "first").returncode == 0
    pid = rt.state("first")["pid"]
    document = rt.config(["sh", "-c", "echo $$; readlink /proc/self/ns/net"])
    document["linux"]["namespaces"] = [
        {"type": n["type"], "path": f"/proc/{pid}/ns/{'net' if n['type'] == 'network' else 'pid'}"}
        if n["type"] in ("pid", "network") else n for n in document["linux"]["namespaces"]]
    (rt.bundle / "config.json").write_text(json.dumps(document))
    result = rt("run", "second")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", os.readlink(f"/proc/{pid}/ns/net")]
    assert rt("delete", "--force", "first").returncode == 0
    assert rt.left() == []


def test_update_sets_new_limits_on_the_cgroup(rt: Runtime, tmp_path: Path) -> None:
    from minidocker import cgroups

    rt.config(["sleep", "1000"], **{"linux.resources": {"pids": {"limit": 100}}})
    assert rt("run", "-d", "c1").returncode == 0
    pid = rt.state("c1")["pid"]
    resources = tmp_path / "r.json"
    resources.write_text(json.dumps({"pids": {"limit": 42}}))
    result = rt("update", "--resources", str(resources), "c1")
    assert result.returncode == 0, result.stderr
    if cgroups.version() == 2:
        path = Path(f"/proc/{pid}/cgroup").read_text().split("::")[1].strip()  # "/a/b\n"
        group = Path("/sys/fs/cgroup") / path.lstrip("/")
    else:
        line = next(line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                    if ":pids:" in line)
        group = Path("/sys/fs/cgroup/pids") / line.split(":", 2)[2].lstrip("/")
    assert (group / "pids.max").read_text().strip() == "42"
    bad = rt("update", "--resources", str(tmp_path / "missing.json"), "c1")
    assert bad.returncode == 1 and "missing.json" in bad.stderr
    assert rt("delete", "--force", "c1").returncode == 0


MEMORY_V1 = {"kernelTCP": 50593792, "swappiness": 10, "disableOOMKiller": True}


def test_the_v1_memory_knobs_are_written_or_refused_on_v2(rt: Runtime) -> None:
    """kernel, kernelTCP, swappiness, disableOOMKiller: v1 files of their own; none on v2."""
    from minidocker import cgroups

    rt.config(["sleep", "1000"], **{"linux.resources": {"memory": {"limit": 64 << 20,
                                                                   **MEMORY_V1}}})
    if cgroups.version() == 2:
        result = rt("create", "c1")
        assert (result.returncode, result.stderr) == (
            1, "minidocker-runtime: config.json: linux.resources.memory: kernel, kernelTCP, "
               "swappiness and disableOOMKiller have no cgroup v2 file\n")
        assert rt.left() == []
        return
    assert rt("run", "-d", "c1").returncode == 0
    pid = rt.state("c1")["pid"]
    line = next(line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                if ":memory:" in line)
    group = Path("/sys/fs/cgroup/memory") / line.split(":", 2)[2].lstrip("/")
    assert (group / "memory.kmem.tcp.limit_in_bytes").read_text().strip() == "50593792"
    assert (group / "memory.swappiness").read_text().strip() == "10"
    assert "oom_kill_disable 1" in (group / "memory.oom_control").read_text()
    resources = rt.bundle / "r.json"
    resources.write_text(json.dumps({"memory": {"swappiness": 20}}))
    refused = rt("update", "--resources", str(resources), "c1")
    assert refused.stderr == ("minidocker-runtime: config.json: linux.resources.memory."
                              "swappiness: not supported by update\n")
    assert rt("delete", "--force", "c1").returncode == 0
    assert rt.left() == []
