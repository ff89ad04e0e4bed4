"""``volume create --opt``: a tmpfs or a host directory mounted on the volume's ``_data``.

Checked where it shows: the container's /proc/self/mountinfo (the tmpfs and its size), the
host directory a bind-backed volume writes into, and the host's own mountinfo (the device is
mounted once, at the first start, however many containers share it, and unmounted at the last
release). A bad option is refused at ``volume create``; a bad ``o`` string fails the start in
one line, and nothing stays mounted or referenced.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker import mountinfo
from tests.conftest import CLI, needs_root
from tests.kernel.test_volumes import mountinfo_line, volume_names
from tests.kernel.test_volumes_userns import _subids

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb08]

TMPFS = ["--opt", "type=tmpfs", "--opt", "device=tmpfs"]


def host_mounts(path: Path) -> list[mountinfo.MountEntry]:
    """The host's mounts on ``path`` (this test's mount namespace is the host's)."""
    with open("/proc/self/mountinfo") as f:
        return [e for e in mountinfo.parse_mountinfo(f.read())
                if e.mount_point == os.path.realpath(path)]


def data(state_root: Path, name: str) -> Path:
    return state_root / "volumes" / name / "_data"


@pytest.fixture(autouse=True)
def nothing_stays_mounted(state_root: Path) -> Iterator[None]:
    """After each test, no volume of its state root is mounted on the host; if one is (the
    test failed half-way), it is unmounted here so the session's leak check reports the
    failure once, not twice."""
    yield
    left = [e.mount_point for e in _mounts_under(state_root / "volumes")]
    for point in left:
        subprocess.run(["umount", "-l", point], check=False)
    assert left == []


def _mounts_under(top: Path) -> list[mountinfo.MountEntry]:
    with open("/proc/self/mountinfo") as f:
        return [e for e in mountinfo.parse_mountinfo(f.read())
                if e.mount_point.startswith(str(top) + "/")]


def test_a_tmpfs_volume_with_a_size_lives_while_used(cli: CLI, state_root: Path) -> None:
    cli("volume", "create", *TMPFS, "--opt", "o=size=1m,uid=1000", "mem", check=True)
    shown = json.loads(cli("volume", "inspect", "mem", check=True).stdout)[0]
    assert shown["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000"}
    assert host_mounts(data(state_root, "mem")) == []  # not before a container uses it
    out = cli("run", "--rm", "-v", "mem:/m", "busybox", "sh", "-c",
              "echo kept > /m/f && stat -c %u /m && cat /proc/self/mountinfo",
              check=True).stdout
    fields = mountinfo_line(out, "/m")
    assert fields[-3] == "tmpfs" and {"size=1024k", "uid=1000"} <= set(fields[-1].split(","))
    assert out.startswith("1000\n")  # uid= owns the tmpfs's root
    # The last user is gone: unmounted on the host, and the data with it.
    assert host_mounts(data(state_root, "mem")) == []
    again = cli("run", "--rm", "-v", "mem:/m", "busybox", "sh", "-c",
                "ls /m; cat /m/f 2>&1; true", check=True).stdout
    assert "kept" not in again and "No such file" in again
    assert cli("volume", "rm", "mem", check=True).stdout == "mem\n"


def test_an_opts_volume_is_seeded_on_each_fresh_mount(cli: CLI, state_root: Path) -> None:
    """Docker copies the image's files into any volume it finds empty; a tmpfs volume is
    empty again after its last release, so its next first use seeds it again."""
    cli("volume", "create", *TMPFS, "etc", check=True)
    for _ in range(2):
        out = cli("run", "--rm", "-v", "etc:/etc", "busybox", "sh", "-c",
                  "head -1 /etc/passwd; cat /proc/self/mountinfo", check=True).stdout
        assert out.startswith("root:") and mountinfo_line(out, "/etc")[-3] == "tmpfs"
    out = cli("run", "--rm", "-v", "etc:/etc:nocopy", "busybox", "ls", "/etc",
              check=True).stdout
    assert "passwd" not in out.split()  # nocopy: not seeded (hosts etc. are minidocker's)


def test_a_bind_backed_volume_writes_into_the_host_dir(cli: CLI, state_root: Path,
                                                       tmp_path: Path) -> None:
    host = tmp_path / "site"
    host.mkdir()
    (host / "index").write_text("host\n")
    cli("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt",
        f"device={host}", "site", check=True)
    out = cli("run", "--rm", "-v", "site:/site", "busybox", "sh", "-c",
              "cat /site/index; echo from-container > /site/new", check=True).stdout
    assert out == "host\n"  # not empty: not seeded over
    assert (host / "new").read_text() == "from-container\n"
    assert host_mounts(data(state_root, "site")) == []
    assert os.listdir(data(state_root, "site")) == []  # the host's files were never in _data
    cli("volume", "rm", "site", check=True)
    assert sorted(os.listdir(host)) == ["index", "new"]  # removing the volume kept them


def test_a_read_only_bind_volume(cli: CLI, tmp_path: Path) -> None:
    cli("volume", "create", "--opt", "type=none", "--opt", "o=bind,ro", "--opt",
        f"device={tmp_path}", "ro", check=True)
    result = cli("run", "--rm", "-v", "ro:/r", "busybox", "touch", "/r/x")
    assert result.returncode == 1 and "Read-only file system" in result.stderr
    assert not (tmp_path / "x").exists()


def test_two_containers_share_one_mount(cli: CLI, state_root: Path) -> None:
    cli("volume", "create", *TMPFS, "shared", check=True)
    first = cli("run", "-d", "-v", "shared:/s", "busybox", "sleep", "60",
                check=True).stdout.strip()
    second = cli("run", "-d", "-v", "shared:/s", "busybox", "sleep", "60",
                 check=True).stdout.strip()
    assert len(host_mounts(data(state_root, "shared"))) == 1  # mounted once, for both
    cli("exec", first, "sh", "-c", "echo one > /s/f", check=True)
    assert cli("exec", second, "cat", "/s/f", check=True).stdout == "one\n"
    cli("rm", "-f", first, check=True)
    assert len(host_mounts(data(state_root, "shared"))) == 1  # the second still uses it
    assert cli("exec", second, "cat", "/s/f", check=True).stdout == "one\n"
    refused = cli("volume", "rm", "shared")
    assert refused.returncode == 1 and "volume is in use" in refused.stderr
    cli("rm", "-f", second, check=True)
    assert host_mounts(data(state_root, "shared")) == []
    cli("volume", "rm", "shared", check=True)


def test_volume_rm_unmounts_what_a_crash_left_mounted(cli: CLI, state_root: Path) -> None:
    cli("volume", "create", *TMPFS, "left", check=True)
    where = data(state_root, "left")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(where)], check=True)
    (where / "f").write_text("x")
    assert len(host_mounts(where)) == 1
    cli("volume", "rm", "left", check=True)
    assert host_mounts(where) == [] and volume_names(state_root) == []


def test_bad_options_are_refused_at_create(cli: CLI, state_root: Path) -> None:
    for args, said in [(["--opt", "colour=red"], 'invalid option: "colour"'),
                       (["--opt", "type=tmpfs"], 'missing required option: "device"'),
                       (["-o", "o=bind", "-o", "device=/srv"], 'missing required option: "type"'),
                       (["--opt", "size=1g"], "quota size requested but no quota support")]:
        result = cli("volume", "create", *args, "bad")
        assert (result.returncode, result.stderr) == (125, f"minidocker: {said}\n")
    assert volume_names(state_root) == []


@pytest.mark.parametrize("options", [
    [*TMPFS, "--opt", "o=size=bogus"],
    ["--opt", "type=none", "--opt", "o=bind", "--opt", "device=/no/such/dir"],
])
def test_a_mount_that_fails_fails_the_start_and_leaves_nothing(
        cli: CLI, state_root: Path, options: list[str]) -> None:
    cli("volume", "create", *options, "bad", check=True)  # Docker takes it too, until used
    result = cli("run", "--rm", "-v", "bad:/b", "busybox", "true")
    assert result.returncode == 125
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "failed to mount local volume" in result.stderr
    assert host_mounts(data(state_root, "bad")) == []
    assert os.listdir(state_root / "volumes" / "bad" / "refs") == []
    assert cli("ps", "-aq", check=True).stdout == ""
    cli("volume", "rm", "bad", check=True)  # unused: nothing holds it


def test_userns_private_is_refused_in_one_line(cli: CLI, state_root: Path,
                                               tmp_path: Path) -> None:
    cli = _subids(cli, tmp_path)
    cli("volume", "create", *TMPFS, "mem", check=True)
    result = cli("run", "--rm", "--userns", "private", "-v", "mem:/m", "busybox", "true")
    assert result.returncode == 125
    assert result.stderr == ("minidocker: --userns private: volume mem: volumes with driver "
                             "options (device=tmpfs,type=tmpfs) are not supported with a user "
                             "namespace\n")
    assert host_mounts(data(state_root, "mem")) == [] and cli("ps", "-aq").stdout == ""
