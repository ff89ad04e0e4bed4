"""The spec forms the parser tests read but no container had run: each one through ``run``,
checked from inside (mountinfo, EROFS) or on the host (a made bind source, the z/Z warning),
and a volume that outlives the image it was seeded from."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker import lsm, mountinfo
from tests.conftest import CLI, needs_root
from tests.kernel.test_volumes import EROFS, mountinfo_line, run, volume_names

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb08]


@pytest.fixture
def shared_source(tmp_path: Path) -> Iterator[Path]:
    """A directory that is a shared mount on the host: a tmpfs made shared, unmounted after."""
    where = tmp_path / "shared"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(where)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(where)], check=True)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _peer_group(entry_optional: tuple[str, ...] | list[str]) -> str:
    tags = [t for t in entry_optional if t.startswith("shared:")]
    assert len(tags) == 1, entry_optional
    return tags[0]


def _host_mounts_under(where: Path) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {e.mount_point for e in mountinfo.parse_mountinfo(f.read())
                if e.mount_point.startswith(f"{where}/")}


@pytest.mark.parametrize("mode", ["rshared", "rslave", "rprivate"])
def test_bind_propagation_crosses_as_asked(cli: CLI, shared_source: Path, state_root: Path,
                                           mode: str, request: pytest.FixtureRequest) -> None:
    """The kernel's propagation, both ways, for a bind of a shared host mount: a mount the
    host makes under the source shows in the container unless rprivate; one the container
    makes shows on the host only with rshared (and the bind is in the host's peer group).
    The container's own mounts (overlay, /proc...) never reach the host."""
    with open("/proc/self/mountinfo") as f:
        host = [e for e in mountinfo.parse_mountinfo(f.read())
                if e.mount_point == str(shared_source)]
    group = _peer_group(host[0].optional)
    # The state root on a shared mount too (systemd makes / shared; this host's / may not be):
    # the container's overlay and /proc would show on the host if the child let them.
    subprocess.run(["mount", "--bind", str(state_root), str(state_root)], check=True)
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(state_root)], check=True))
    subprocess.run(["mount", "--make-shared", str(state_root)], check=True)
    (shared_source / "from-host").mkdir()
    (shared_source / "from-container").mkdir()
    started = cli("run", "-d", "--privileged", "--name", f"prop-{mode}",
                  "-v", f"{shared_source}:/x:{mode}", "busybox", "sleep", "60")
    assert started.returncode == 0, started.stderr
    try:
        subprocess.run(["mount", "-t", "tmpfs", "host-made", str(shared_source / "from-host")],
                       check=True)
        inside = cli("exec", f"prop-{mode}", "cat", "/proc/self/mountinfo").stdout
        made = cli("exec", f"prop-{mode}", "mount", "-t", "tmpfs", "ctr-made",
                   "/x/from-container")
        assert made.returncode == 0, made.stderr
        on_host = _host_mounts_under(shared_source)
        assert _host_mounts_under(state_root) == set(), "the container's mounts reached the host"
    finally:
        assert cli("rm", "-f", f"prop-{mode}").returncode == 0
    bind = mountinfo_line(inside, "/x")
    tags = bind[6:bind.index("-")]
    if mode == "rshared":
        assert f"{group}" in tags, (group, tags)  # the host's own peer group
    elif mode == "rslave":
        assert f"master:{group.split(':')[1]}" in tags, (group, tags)
    else:
        assert tags == [], tags
    seen_inside = any(line.split()[4:5] == ["/x/from-host"] for line in inside.splitlines())
    assert seen_inside == (mode != "rprivate"), inside
    assert (str(shared_source / "from-container") in on_host) == (mode == "rshared"), on_host


def test_shared_propagation_needs_a_shared_source(cli: CLI, tmp_path: Path) -> None:
    """Docker's rule: nothing to share with a private source; one line, nothing made."""
    with open("/proc/self/mountinfo") as f:
        entry = mountinfo.mount_containing(str(tmp_path),
                                           mountinfo.parse_mountinfo(f.read()))
    if entry is not None and mountinfo.propagation(entry) != "private":
        pytest.skip(f"{tmp_path} is on a {mountinfo.propagation(entry)} mount here: "
                    "no private source to refuse")
    for mode, wanted in (("rshared", "a shared mount"), ("slave", "a shared or slave mount")):
        result = cli("run", "--rm", "-v", f"{tmp_path}:/x:{mode}", "busybox", "true")
        assert result.returncode == 125, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"minidocker: path {tmp_path} is mounted on {entry.mount_point if entry else '/'} "
            f"but it is not {wanted}"], result.stderr
    assert cli("ps", "-aq").stdout == ""


def test_mount_volume_readonly_nocopy(cli: CLI, state_root: Path) -> None:
    out = run(cli, "--mount", "type=volume,src=vol,dst=/usr,readonly,volume-nocopy", "busybox",
              "sh", "-c", "ls /usr; cat /proc/self/mountinfo; touch /usr/x 2>&1; true")
    assert "bin" not in out.split()  # nocopy: the image's /usr was not copied in
    assert mountinfo_line(out, "/usr")[5].startswith("ro") and EROFS in out
    assert volume_names(state_root) == ["vol"]
    assert list((state_root / "volumes" / "vol" / "_data").iterdir()) == []


def test_mount_tmpfs_with_a_size(cli: CLI) -> None:
    out = run(cli, "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m", "busybox", "sh", "-c",
              "touch /t/x && cat /proc/self/mountinfo")
    fields = mountinfo_line(out, "/t")
    assert fields[-3] == "tmpfs" and "size=1024k" in fields[-1].split(",")


@pytest.mark.parametrize("spec", [["-v", "named:/d:ro"], ["--tmpfs", "/d:ro"]])
def test_ro_is_enforced_with_erofs(cli: CLI, spec: list[str]) -> None:
    result = cli("run", "--rm", *spec, "busybox", "sh", "-c",
                 "grep ' /d ' /proc/self/mountinfo; touch /d/x")
    assert result.returncode == 1 and EROFS in result.stderr
    assert mountinfo_line(result.stdout, "/d")[5].startswith("ro")


def test_v_makes_a_missing_bind_source_on_the_host(cli: CLI, tmp_path: Path) -> None:
    missing = tmp_path / "not" / "yet"
    out = run(cli, "-v", f"{missing}:/x", "busybox", "sh", "-c", "echo made > /x/f; echo ok")
    assert out == "ok\n"
    assert missing.is_dir() and (missing / "f").read_text() == "made\n"


def test_z_prints_its_warning(cli: CLI, tmp_path: Path) -> None:
    result = cli("run", "--rm", "-v", f"{tmp_path}:/x:z", "busybox", "true")
    assert result.returncode == 0
    if lsm.status().selinux_present:
        said = f"WARNING: {tmp_path}: z: minidocker does not relabel for SELinux"
    else:
        said = f"WARNING: {tmp_path}: z ignored: no SELinux on this host\n"
    assert said in result.stderr


def test_a_volume_outlives_the_image_it_was_seeded_from(cli: CLI, state_root: Path) -> None:
    cli("run", "--name", "maker", "busybox", "sh", "-c",
        "mkdir /data && echo from-the-image > /data/f", check=True)
    cli("commit", "maker", "seeder", check=True)
    cli("rm", "maker", check=True)
    cli("run", "--name", "user", "-v", "kept:/data", "seeder", "true", check=True)
    assert (state_root / "volumes" / "kept" / "_data" / "f").exists()  # seeded
    cli("rm", "user", check=True)
    cli("rmi", "seeder", check=True)
    assert "seeder" not in cli("images", "--format", "{{.Repository}}", check=True).stdout
    assert run(cli, "-v", "kept:/d", "busybox", "cat", "/d/f") == "from-the-image\n"
