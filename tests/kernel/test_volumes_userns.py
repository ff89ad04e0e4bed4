"""``--userns private`` with volumes and binds: root inside is uid 200000 on the host, and a
volume's files must still look the way the container sees them.

Where the filesystem takes idmapped mounts, each volume and bind is an idmapped mount: a file
the container's root makes is stored as uid 0 (what a container without a user namespace
would store, so both can share the volume) and reads 0 inside. Where it does not (ramfs here;
tmpfs before Linux 6.3), a volume is chowned into the range the first time, as Docker's
userns-remap owns its volumes, and says so; a bind is left as it is on the host.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI, TEST_ROOT_MARK, idmap_supported, needs_root
from tests.kernel.test_volumes import EROFS, mountinfo_line

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb08]

RANGE = 200000


def _subids(cli: CLI, where: Path) -> CLI:
    for name in ("subuid", "subgid"):
        (where / name).write_text(f"minidocker:{RANGE}:65536\n")
    cli.env.pop("MINIDOCKER_USERNS_REMAP", None)
    cli.env.update(MINIDOCKER_SUBUID=str(where / "subuid"),
                   MINIDOCKER_SUBGID=str(where / "subgid"))
    return cli


def test_volumes_and_binds_are_idmapped(cli: CLI, state_root: Path, tmp_path: Path) -> None:
    if not idmap_supported(state_root):
        pytest.skip(f"the state root {state_root} takes no idmapped mounts here: "
                    "test_volumes_without_idmapped_mounts_are_chowned_to_the_range covers that")
    cli = _subids(cli, tmp_path)
    bind = tmp_path / "site"
    bind.mkdir()
    (bind / "index").write_text("host\n")
    result = cli("run", "--rm", "--userns", "private", "-v", "db:/data", "-v", "etc:/etc",
                 "-v", f"{bind}:/site", "-v", f"{bind}:/ro:ro", "busybox", "sh", "-c",
                 "cat /proc/self/uid_map; touch /data/made /site/made; "
                 "stat -c %u:%g /data/made /site/made /site/index /etc/passwd; "
                 "cat /proc/self/mountinfo; (touch /ro/x) 2>&1; true", check=True)
    out = result.stdout
    assert out.split("\n")[0].split() == ["0", str(RANGE), "65536"]
    assert out.split("\n")[1:5] == ["0:0"] * 4  # made, bound, and seeded: all root's inside
    assert EROFS in out
    for target in ("/data", "/etc", "/site", "/ro"):
        assert "idmapped" in mountinfo_line(out, target)[5].split(",")
    assert mountinfo_line(out, "/ro")[5].startswith("ro")
    volumes = state_root / "volumes"
    assert (volumes / "db" / "_data" / "made").stat().st_uid == 0  # stored unmapped
    assert (volumes / "etc" / "_data" / "passwd").stat().st_uid == 0  # seeded, unmapped
    assert (bind / "made").stat().st_uid == 0
    assert "chowned" not in result.stderr
    # The same volume without a user namespace: the same owners, nothing to convert
    plain = cli("run", "--rm", "-v", "db:/data", "busybox", "stat", "-c", "%u", "/data/made",
                check=True).stdout
    assert plain == "0\n"


def test_volumes_without_idmapped_mounts_are_chowned_to_the_range(tmp_path: Path) -> None:
    """ramfs under the volume store and the bind: no idmapped mounts. The layers stay on the
    test's filesystem, which must take them (the image's own case is test_security's)."""
    root = tmp_path / f"{TEST_ROOT_MARK}root"
    store, bind = root / "volumes", tmp_path / f"{TEST_ROOT_MARK}bind"
    store.mkdir(parents=True)
    bind.mkdir()
    if not idmap_supported(root):
        pytest.skip(f"{root} takes no idmapped mounts: the image's layers could not be either")
    cli = _subids(CLI(root), tmp_path)
    run = [sys.executable, "-m", "minidocker", "run", "--rm"]
    script = (f"mount -t ramfs ramfs {store}; mount -t ramfs ramfs {bind}\n"
              f"echo host > {bind}/index\n"
              f"{' '.join(run)} --userns private -v db:/data -v etc:/etc -v {bind}:/site "
              "busybox sh -c 'touch /data/made; stat -c %u:%g /data/made /etc/passwd "
              "/site/index; grep \" /data \" /proc/self/mountinfo' 2>&1\n"
              f"stat -c %u:%g {store}/db/_data/made {store}/etc/_data/passwd {store}/db/_data\n"
              f"{' '.join(run)} --userns private -v db:/data busybox stat -c %u /data/made 2>&1\n")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-euc",
                             script], capture_output=True, text=True, timeout=120,
                            env=cli.env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    notes = [line for line in lines if line.startswith("minidocker:")]
    assert len(notes) == 3, lines
    assert sum("chowned to the container's range" in n for n in notes) == 2
    assert any(str(bind) in n and "keep their host owners" in n for n in notes)
    inside = [line for line in lines if not line.startswith("minidocker:")]
    assert inside[0:3] == ["0:0", "0:0", "65534:65534"]  # the bind is the host's, unmapped
    assert "idmapped" not in inside[3] and " ramfs " in inside[3]
    assert inside[4:7] == [f"{RANGE}:{RANGE}"] * 3  # on the host: the range's root
    assert inside[7:] == ["0"]  # chowned once, said once; the next one sees root's files


def test_seeding_under_userns_with_the_vfs_driver(tmp_path: Path) -> None:
    """The vfs driver's root is a plain copy, which the host seeds from directly (the overlay
    driver's is read through a throwaway overlay, as the first test shows)."""
    root = tmp_path / f"{TEST_ROOT_MARK}vfs"
    root.mkdir()
    if not idmap_supported(root):
        pytest.skip(f"{root} takes no idmapped mounts: the image's copy could not be either")
    cli = _subids(CLI(root), tmp_path)
    cli.env["MINIDOCKER_STORAGE_DRIVER"] = "vfs"
    out = cli("run", "--rm", "--userns", "private", "-v", "etc:/etc", "busybox", "stat", "-c",
              "%u %n", "/etc/passwd", check=True).stdout
    assert out == "0 /etc/passwd\n"
    assert (root / "storage-driver").read_text().startswith("vfs")
    assert (root / "volumes" / "etc" / "_data" / "passwd").stat().st_uid == 0
