"""Bad input gets a one-line error, Docker's exit code, and leaves nothing behind (issue 2, item 9).

Every case here first puts the busybox image in the store with one successful run, takes a
recursive listing of the state root, feeds ``minidocker`` something wrong, and checks:

- stderr is exactly one line, ``minidocker: ...``, naming the bad value or path;
- the exit code is Docker's: 125 for a runtime or usage error, 126 when the command cannot be
  invoked, 127 when it is not found;
- the state root is as it was: no container directory, no name link, no temporary file, no new
  blob or layer, the same ``index.json``.

Then the harder ways to leave something behind: ``kill -9`` of ``minidocker run`` while the
container runs, tarballs whose entries point outside the layer, and images whose ``/etc``,
``/proc``, ``/sys`` or ``/dev`` is a symlink to a host path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI, TEST_ROOT_MARK, default_groups, needs_root, stop_minidocker

pytestmark = [needs_root, pytest.mark.kernel]

# Files whose content, not just existence, must not change. Other files in the store may be
# rewritten in place (a cache), but never added or removed by a failed command.
_COMPARE_CONTENT = ("images/index.json", "images/oci-layout")


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root``: its kind, a symlink's target, and for a few files a digest."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "link -> " + os.readlink(path)
            elif os.path.isdir(path):
                found[rel] = "dir"
            elif rel in _COMPARE_CONTENT:
                found[rel] = "file " + hashlib.sha256(Path(path).read_bytes()).hexdigest()
            else:
                found[rel] = "file"
    return found


def assert_unchanged(before: dict[str, str], root: Path) -> None:
    after = snapshot(root)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or removed or changed), \
        f"state root changed: added {added[:10]}, removed {removed[:10]}, changed {changed}"


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int,
                          *words: str) -> None:
    err = result.stderr.strip()
    assert result.returncode == code, \
        f"exit {result.returncode}, expected {code}; stderr: {result.stderr!r}"
    assert err, "no error message"
    assert "\n" not in err, f"not one line: {result.stderr!r}"
    assert err.startswith("minidocker: "), err
    for word in words:
        assert word.lower() in err.lower(), f"{word!r} is not named in: {err}"
    assert "Traceback" not in result.stderr


def host_mount_lines(needle: str) -> list[str]:
    """Lines of any process's mountinfo that mention ``needle`` (ours and everyone else's)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                found += [f"{pid}: {line.strip()}" for line in f if needle in line]
        except OSError:  # exited while we looked, or a zombie
            continue
    return found


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CLI]:
    """A state root shared by this module's cases, with busybox in its store.

    Sharing it is safe because each case checks that it changed nothing.
    """
    cli = CLI(tmp_path_factory.mktemp(TEST_ROOT_MARK + "badinput"))
    cli("run", "--rm", "busybox", "true", check=True)
    yield cli
    stop_minidocker(cli.root)


@pytest.fixture
def populated(cli: CLI) -> CLI:
    """A private state root with busybox in its store (for cases that leave state on purpose)."""
    cli("run", "--rm", "busybox", "true", check=True)
    return cli


# -- run ----------------------------------------------------------------------------------------

RUN_CASES = [
    # id, arguments after `run --rm`, exit code, words the message must contain
    ("uppercase-reference", ["Busybox", "true"], 125, ["invalid reference format"]),
    ("reference-two-colons", ["a:b:c", "true"], 125, ["invalid reference format"]),
    ("missing-command", ["busybox", "no-such-command"], 127,
     ['"no-such-command"', "executable file not found"]),
    ("missing-command-by-path", ["busybox", "/no/such/program"], 127,
     ["/no/such/program", "no such file"]),
    ("non-executable-command", ["busybox", "/etc/passwd"], 126,
     ["/etc/passwd", "permission denied"]),
    ("directory-as-command", ["busybox", "/etc"], 126, ['"/etc"']),
    ("no-command-at-all", ["--entrypoint", "", "busybox"], 125, ["no command"]),
    ("user-syntax", ["-u", "a:b:c", "busybox", "true"], 125, ["invalid user", "a:b:c"]),
    ("user-empty-group", ["-u", "root:", "busybox", "true"], 125, ["invalid user"]),
    ("user-id-out-of-range", ["-u", "99999999999", "busybox", "true"], 125,
     ["invalid user", "99999999999"]),
    # These two are only found after pivot_root, in the image's /etc/passwd and /etc/group:
    # the container directory exists by then, and must be removed.
    ("unknown-user-name", ["-u", "no-such-user", "busybox", "true"], 125,
     ["user", "no-such-user"]),
    ("unknown-group-name", ["-u", "root:no-such-group", "busybox", "true"], 125,
     ["group", "no-such-group"]),
    ("env-empty-name", ["-e", "=x", "busybox", "true"], 125, ["environment variable", "=x"]),
    ("env-name-with-space", ["-e", "A B=1", "busybox", "true"], 125,
     ["environment variable", "A B"]),
    ("env-file-missing", ["--env-file", "/no/such/env-file", "busybox", "true"], 125,
     ["/no/such/env-file", "no such file"]),
    ("workdir-relative", ["-w", "relative/dir", "busybox", "true"], 125,
     ["working directory", "relative/dir", "absolute"]),
    # Found in the container: the working directory is a file there.
    ("workdir-is-a-file", ["-w", "/etc/passwd", "busybox", "true"], 125, ["/etc/passwd"]),
    ("name-with-space", ["--name", "bad name", "busybox", "true"], 125,
     ["invalid container name", "bad name"]),
    ("name-leading-dot", ["--name", ".hidden", "busybox", "true"], 125,
     ["invalid container name", ".hidden"]),
    ("hostname-with-space", ["--hostname", "a b", "busybox", "true"], 125,
     ["hostname", "a b"]),
]


@pytest.mark.parametrize(("args", "code", "words"), [c[1:] for c in RUN_CASES],
                         ids=[c[0] for c in RUN_CASES])
def test_run_rejects_bad_input_and_leaves_nothing(store: CLI, args: list[str], code: int,
                                                  words: list[str]) -> None:
    before = snapshot(store.root)
    result = store("run", "--rm", *args)
    assert_one_line_error(result, code, *words)
    assert result.stdout == ""
    assert_unchanged(before, store.root)


@pytest.mark.parametrize(("ref", "familiar", "path"), [
    ("no-such-image", "no-such-image:latest", "library/no-such-image/manifests/latest"),
    ("busybox:no-such-tag", "busybox:no-such-tag", "library/busybox/manifests/no-such-tag")])
def test_run_of_a_missing_image_tries_a_pull_and_leaves_nothing(store: CLI, ref: str,
                                                               familiar: str, path: str) -> None:
    """As Docker: "Unable to find image" first, then the pull's own one-line error (here the
    tests' closed proxy, see conftest: no test reaches Docker Hub)."""
    before = snapshot(store.root)
    result = store("run", "--rm", ref, "true")
    first, _, rest = result.stderr.partition("\n")
    assert first == f"Unable to find image '{familiar}' locally", result.stderr
    assert_one_line_error(subprocess.CompletedProcess(result.args, result.returncode,
                                                      result.stdout, rest), 125,
                          f"https://registry-1.docker.io/v2/{path}", "proxy")
    assert result.stdout == ""
    assert_unchanged(before, store.root)


def test_run_without_rm_also_leaves_nothing_on_a_failed_start(store: CLI) -> None:
    """Docker keeps a "Created" container here; minidocker keeps nothing (see README)."""
    before = snapshot(store.root)
    result = store("run", "--name", "never-started", "busybox", "no-such-command")
    assert_one_line_error(result, 127, "no-such-command")
    assert_unchanged(before, store.root)
    assert not os.path.lexists(store.root / "names" / "never-started")


def test_bad_env_file_line_names_file_and_line(store: CLI, tmp_path: Path) -> None:
    env_file = tmp_path / "vars"
    env_file.write_text("GOOD=1\n=oops\n")
    before = snapshot(store.root)
    result = store("run", "--rm", "--env-file", str(env_file), "busybox", "true")
    assert_one_line_error(result, 125, "environment variable", str(env_file), "line 2")
    assert_unchanged(before, store.root)


def test_name_conflict_leaves_the_first_container_intact(populated: CLI) -> None:
    root = populated.root
    populated("run", "--name", "taken", "busybox", "sh", "-c", "exit 3")
    [first] = os.listdir(root / "containers")
    state_file = root / "containers" / first / "state.json"
    first_state = state_file.read_text()
    before = snapshot(root)

    result = populated("run", "--rm", "--name", "taken", "busybox", "echo", "second")
    assert_one_line_error(result, 125, '"/taken"', "already in use", first)
    assert result.stdout == "", "the second container must not have run"
    assert_unchanged(before, root)
    assert os.readlink(root / "names" / "taken") == first
    assert state_file.read_text() == first_state

    # The same holds when the second run would also have failed for another reason later on.
    result = populated("run", "--name", "taken", "busybox", "no-such-command")
    assert result.returncode == 125 and "already in use" in result.stderr
    assert_unchanged(before, root)


def test_interactive_tty_needs_a_terminal(store: CLI) -> None:
    before = snapshot(store.root)
    result = store("run", "--rm", "-i", "-t", "busybox", "true", input="")
    assert_one_line_error(result, 125, "the input device is not a TTY")
    result = store("run", "--rm", "-it", "busybox", "true", input="")
    assert_one_line_error(result, 125, "the input device is not a TTY")
    assert_unchanged(before, store.root)


# -- import -------------------------------------------------------------------------------------

def _entry(name: str, data: bytes = b"x\n", **fields: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o644, 1_600_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    info.size = len(data) if info.type == tarfile.REGTYPE else 0
    return info, data


def _tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return out.getvalue()


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return _entry(name, type=tarfile.SYMTYPE, linkname=target, mode=0o777)


def _hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return _entry(name, type=tarfile.LNKTYPE, linkname=target)


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A host directory an escaping tarball would write into; it must stay as it is."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host file\n")
    return outside


def _import_rejected(store: CLI, tmp_path: Path, data: bytes, *words: str) -> None:
    tarball = tmp_path / "bad.tar"
    tarball.write_bytes(data)
    before = snapshot(store.root)
    result = store("import", str(tarball), "escape:latest")
    assert_one_line_error(result, 125, str(tarball), *words)
    assert result.stdout == "", "an image ID was printed for a refused import"
    assert_unchanged(before, store.root)
    assert "escape" not in store("images", check=True).stdout


def test_import_refuses_dot_dot(store: CLI, tmp_path: Path) -> None:
    # Unpacked naively in <root>/tmp/layer-*/, these land in <root>/tmp and <root>: the snapshot
    # would show them. The same entry deeper down climbs to the host's /tmp.
    name = f"{TEST_ROOT_MARK}canary-dotdot"
    for bad in (f"../{name}", f"ok/../../{name}", "../" * 12 + f"tmp/{name}"):
        _import_rejected(store, tmp_path, _tar(_entry("ok/", type=tarfile.DIRTYPE, mode=0o755),
                                               _entry(bad)), "unsafe", "..")
        assert not (Path("/tmp") / name).exists()


def test_import_refuses_absolute_paths(store: CLI, tmp_path: Path) -> None:
    target = Path("/etc") / f"{TEST_ROOT_MARK}canary-{os.getpid()}"
    try:
        _import_rejected(store, tmp_path, _tar(_entry(str(target))), "unsafe", "absolute")
        assert not target.exists(), f"the import wrote {target} on the host"
    finally:
        target.unlink(missing_ok=True)


def test_import_refuses_paths_through_a_symlink_to_the_host(store: CLI, tmp_path: Path) -> None:
    target = Path("/etc") / f"{TEST_ROOT_MARK}canary-{os.getpid()}"
    try:
        _import_rejected(store, tmp_path, _tar(_symlink("link", "/etc"),
                                               _entry(f"link/{target.name}")),
                         "unsafe", "symlink")
        assert not target.exists(), f"the import wrote {target} on the host"
    finally:
        target.unlink(missing_ok=True)


def test_import_refuses_a_directory_through_a_relative_symlink(store: CLI, tmp_path: Path,
                                                               canary: Path) -> None:
    # A relative "../../.." climbs out of the staging directory as surely as "/etc" does.
    _import_rejected(store, tmp_path, _tar(_symlink("up", "../" * 40 + str(canary).lstrip("/")),
                                           _entry("up/dropped")),
                     "unsafe", "symlink")
    assert sorted(os.listdir(canary)) == ["secret"]


def test_import_refuses_hard_links_that_climb_out(store: CLI, tmp_path: Path) -> None:
    # Unpacked in <root>/tmp/layer-*/, "../../x" would be <root>/x: plant a file there, so
    # that a naive unpacker would link it into the layer (and into every container).
    planted = store.root / f"{TEST_ROOT_MARK}hardlink-canary"
    planted.write_text("outside the layer\n")
    try:
        data = _tar(_entry("ok"), _hardlink("hl", f"../../{planted.name}"))
        _import_rejected(store, tmp_path, data, "unsafe", "hard link", "..")
        assert planted.stat().st_nlink == 1, "the host file was hard-linked into a layer"
    finally:
        planted.unlink()


def test_import_refuses_hard_links_through_a_symlink(store: CLI, tmp_path: Path,
                                                     canary: Path) -> None:
    secret = canary / "secret"
    _import_rejected(store, tmp_path, _tar(_symlink("link", str(canary)),
                                           _hardlink("stolen", "link/secret")),
                     "unsafe", "symlink")
    assert secret.stat().st_nlink == 1, "the host file was hard-linked into a layer"


def test_import_refuses_a_truncated_gzip(store: CLI, tmp_path: Path) -> None:
    tar = _tar(_entry("big", os.urandom(256 * 1024)), _entry("after"))
    data = gzip.compress(tar)
    _import_rejected(store, tmp_path, data[: len(data) // 2], "gzip")


def test_import_refuses_a_truncated_tar(store: CLI, tmp_path: Path) -> None:
    tar = _tar(_entry("big", os.urandom(64 * 1024)), _entry("after"))
    _import_rejected(store, tmp_path, tar[:20 * 1024], "invalid tar archive")


def test_import_refuses_garbage(store: CLI, tmp_path: Path) -> None:
    _import_rejected(store, tmp_path, b"this is not a tar archive\n" * 40, "invalid tar archive")


def test_import_of_a_missing_file_or_a_bad_name(store: CLI, tmp_path: Path) -> None:
    before = snapshot(store.root)
    result = store("import", str(tmp_path / "missing.tar"), "fine:latest")
    assert_one_line_error(result, 125, str(tmp_path / "missing.tar"))
    good = tmp_path / "good.tar"
    good.write_bytes(_tar(_entry("file")))
    for ref in ("Upper", "a:b:c"):
        result = store("import", str(good), ref)
        assert_one_line_error(result, 125, "invalid reference format")
    assert_unchanged(before, store.root)


# -- kill -9 of `minidocker run` ----------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            found += [int(p) for p in f.read().split()]
    return found


def _in_pid_namespace(ns: str) -> list[int]:
    """Host PIDs of every live process in the PID namespace ``ns`` (``pid:[...]``)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") == ns and not _is_zombie(int(pid)):
                found.append(int(pid))
        except OSError:
            continue
    return found


def _is_zombie(pid: int) -> bool:
    """True if ``pid`` is gone or a zombie (dead, waiting for whoever reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.parametrize("init", [False, True], ids=["plain", "init"])
def test_kill_9_of_run_kills_the_container_and_leaves_no_mount(populated: CLI,
                                                               init: bool) -> None:
    # Two processes in the container: the shell (PID 1, or PID 2 under --init) and a sleep.
    proc = populated.popen("run", *(["--init"] if init else []), "busybox", "sh", "-c",
                           "sleep 30 & echo ready; wait",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        [container] = _children(proc.pid)
        ns = os.readlink(f"/proc/{container}/ns/pid")
        assert ns != os.readlink("/proc/self/ns/pid")
        pids = _in_pid_namespace(ns)
        assert len(pids) == (3 if init else 2), pids
        assert host_mount_lines(str(populated.root)), "the container's overlay should show"

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(_is_zombie(p) for p in pids):
            time.sleep(0.05)
        alive = [p for p in pids if not _is_zombie(p)]
        assert not alive, f"container processes outlived minidocker run: {alive} " \
                          "(PR_SET_PDEATHSIG should have killed PID 1, and with it the rest)"
        assert not _in_pid_namespace(ns)
        # The mounts lived only in the container's mount namespace, which died with it.
        with open("/proc/self/mountinfo") as f:
            assert str(populated.root) not in f.read()
        assert host_mount_lines(str(populated.root)) == []
    finally:
        proc.kill()
        proc.wait()
        for pid in pids:
            if not _is_zombie(pid):
                os.kill(pid, signal.SIGKILL)
    # No process and no mount outlives `minidocker run`. Its record does (`ps -a` shows it
    # exited, as Docker shows a container whose daemon crashed), and so does its empty cgroup,
    # until `rm` cleans up after it.
    [cid] = os.listdir(populated.root / "containers")
    assert populated("ps", "-aq", check=True).stdout.split() == [cid[:12]]
    populated("rm", cid, check=True)
    assert default_groups(cid) == []


# -- images whose system directories point at the host ------------------------------------------

def _image_with_symlink(cli: CLI, tmp_path: Path, which: str, target: Path) -> str:
    """Import busybox's own layer with ``/<which>`` replaced by a symlink to ``target``."""
    [layer] = (cli.root / "layers").iterdir()
    tarball = tmp_path / f"{which}-link.tar"
    with tarfile.open(tarball, "w") as tar:
        for name in sorted(os.listdir(layer)):
            if name == which:
                info = tarfile.TarInfo(name)
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, str(target), 0o777
                tar.addfile(info)
            else:
                tar.add(layer / name, arcname=name)
    ref = f"{which}-points-out:latest"
    cli("import", str(tarball), ref, check=True)
    return ref


@pytest.mark.parametrize("which", ["dev", "etc", "proc", "sys"])
def test_image_symlink_to_host_path_gets_nothing_mounted_or_made_there(
        populated: CLI, tmp_path: Path, which: str) -> None:
    outside = tmp_path / f"{TEST_ROOT_MARK}host-{which}"
    outside.mkdir()
    ref = _image_with_symlink(populated, tmp_path, which, outside)
    try:
        result = populated("run", "--rm", ref, "sh", "-c", f"ls -a /{which}/ >/dev/null")
        # Whatever the outcome (the run may refuse such an image), it must be one line if it
        # fails, and the host path must be untouched: no file made there, nothing mounted there.
        if result.returncode != 0:
            assert_one_line_error(result, 125)
        assert host_mount_lines(str(outside)) == []
        assert os.listdir(outside) == [], f"files made on the host: {os.listdir(outside)}"
    finally:
        for name in os.listdir(outside):  # device nodes, if the bug is there
            os.unlink(outside / name)
