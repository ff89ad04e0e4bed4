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


def test_rshared_on_a_shared_source_is_shared_inside(cli: CLI, shared_source: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        host = [e for e in mountinfo.parse_mountinfo(f.read())
                if e.mount_point == str(shared_source)]
    assert len(host) == 1 and _peer_group(host[0].optional)  # the source is shared
    out = run(cli, "-v", f"{shared_source}:/x:rshared", "-v", f"{shared_source}:/p",
              "busybox", "cat", "/proc/self/mountinfo")
    fields = mountinfo_line(out, "/x")
    assert _peer_group(fields[6:fields.index("-")])  # the shared: tag, as asked
    # (Its peer group is a new one, not the host's: the child made every mount private
    # before binding, where Docker would make the root rshared first. Not asserted here.)
    private = mountinfo_line(out, "/p")  # the default, rprivate: no tag at all
    assert private[6] == "-"


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
