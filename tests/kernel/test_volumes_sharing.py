"""Volumes that come from elsewhere, checked from inside the container: the image's VOLUME
entries, ``--volumes-from`` another container (running or stopped), what ``rm -v`` and
``volume rm`` may then remove, and two containers writing one volume at the same time."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import CLI, needs_root
from tests.kernel.test_volumes import EROFS, mountinfo_line, root_in_its_filesystem, volume_names

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb08]


def _mounts(cli: CLI, cid: str) -> dict[str, dict[str, object]]:
    shown = json.loads(cli("inspect", cid, check=True).stdout)[0]["Mounts"]
    return {m["Destination"]: m for m in shown}


def _image_with_volumes(cli: CLI) -> str:
    """An image whose /data holds a file and whose config says VOLUME /data and /logs."""
    cli("run", "--name", "maker", "busybox", "sh", "-c",
        "mkdir -p /data && echo seed > /data/s && chown 1:2 /data/s", check=True)
    cli("commit", "-c", "VOLUME /data", "-c", "VOLUME /logs", "maker", "withvol", check=True)
    cli("rm", "maker", check=True)
    return "withvol"


def test_image_volumes_are_anonymous_volumes_seeded_from_the_image(
        cli: CLI, state_root: Path) -> None:
    image = _image_with_volumes(cli)
    config = json.loads(cli("image", "inspect", image, check=True).stdout)[0]["Config"]
    assert sorted(config["Volumes"]) == ["/data", "/logs"]
    cid = cli("create", image, "sh", "-c", "stat -c '%u:%g %n' /data/s; cat /data/s; "
              "cat /proc/self/mountinfo", check=True).stdout.strip()
    mounts = _mounts(cli, cid)
    assert sorted(mounts) == ["/data", "/logs"]
    assert all(m["Type"] == "volume" and len(str(m["Name"])) == 64 and m["RW"]
               for m in mounts.values())
    out = cli("start", "-a", cid, check=True).stdout
    assert out.startswith("1:2 /data/s\nseed\n")  # seeded, owner kept
    assert mountinfo_line(out, "/data")[3].endswith(f"/volumes/{mounts['/data']['Name']}/_data")
    assert sorted(volume_names(state_root)) == sorted(str(m["Name"]) for m in mounts.values())
    cli("rm", "-v", cid, check=True)  # anonymous: they go with rm -v
    assert volume_names(state_root) == []


def test_a_mount_of_your_own_wins_over_the_images_volume(cli: CLI, state_root: Path,
                                                         tmp_path: Path) -> None:
    image = _image_with_volumes(cli)
    out = cli("run", "--rm", "-v", "mine:/data", "-v", f"{tmp_path}:/logs", image, "sh", "-c",
              "cat /data/s; cat /proc/self/mountinfo", check=True).stdout
    assert out.startswith("seed\n")  # a named volume is seeded from the image too
    assert mountinfo_line(out, "/data")[3].endswith("/volumes/mine/_data")
    assert mountinfo_line(out, "/logs")[3] == root_in_its_filesystem(tmp_path)
    assert volume_names(state_root) == ["mine"]  # no anonymous volume was made, nor left


def test_volumes_from_a_stopped_container(cli: CLI, state_root: Path, tmp_path: Path) -> None:
    cli("run", "--name", "c1", "-v", "/anon", "-v", "db:/db", "-v", f"{tmp_path}:/bind:ro",
        "--tmpfs", "/scratch", "busybox", "sh", "-c", "echo a > /anon/f; echo b > /db/g",
        check=True)
    anonymous = [n for n in volume_names(state_root) if n != "db"]
    out = cli("run", "--name", "c2", "--volumes-from", "c1", "busybox", "sh", "-c",
              "cat /anon/f /db/g; echo c > /anon/h; cat /proc/self/mountinfo; "
              "(touch /bind/x) 2>&1; true", check=True).stdout
    assert out.startswith("a\nb\n") and EROFS in out  # the bind kept its :ro
    assert mountinfo_line(out, "/anon")[3].endswith(f"/volumes/{anonymous[0]}/_data")
    assert mountinfo_line(out, "/bind")[3] == root_in_its_filesystem(tmp_path)
    assert not re.search(r" /scratch ", out)  # not C1's tmpfs
    assert (state_root / "volumes" / anonymous[0] / "_data" / "h").read_text() == "c\n"
    # :ro forces every inherited mount read-only; a mount of its own wins at /db
    out = cli("run", "--rm", "--volumes-from", "c1:ro", "-v", "other:/db", "busybox", "sh",
              "-c", "cat /proc/self/mountinfo; (touch /anon/y) 2>&1; touch /db/z && echo ok",
              check=True).stdout
    assert EROFS in out and "ok\n" in out
    assert mountinfo_line(out, "/anon")[5].startswith("ro")
    assert mountinfo_line(out, "/db")[3].endswith("/volumes/other/_data")
    # rm -v of C2 must not take the anonymous volume C1 still holds; volume rm refuses both
    cli("rm", "-v", "c2", check=True)
    assert anonymous[0] in volume_names(state_root)
    for name in ("db", anonymous[0]):
        refused = cli("volume", "rm", name)
        assert refused.returncode == 1 and "volume is in use" in refused.stderr
    cli("rm", "-v", "c1", check=True)  # the last user: now it goes
    assert volume_names(state_root) == ["db", "other"]


def test_volumes_from_a_running_container(cli: CLI, state_root: Path) -> None:
    c1 = cli("run", "-d", "-v", "/shared", "busybox", "sleep", "60", check=True).stdout.strip()
    cli("run", "--rm", "--volumes-from", c1[:12], "busybox", "sh", "-c",
        "echo from-c2 > /shared/note", check=True)
    assert cli("exec", c1, "cat", "/shared/note", check=True).stdout == "from-c2\n"
    assert len(volume_names(state_root)) == 1  # C2's --rm left C1's anonymous volume alone
    cli("rm", "-f", "-v", c1, check=True)
    assert volume_names(state_root) == []


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("flag, message", [
    ("nope", "no such container: nope"), ("c1:rshared", "invalid mode for volumes-from"),
])
def test_volumes_from_refusals(cli: CLI, state_root: Path, flag: str, message: str) -> None:
    cli("create", "--name", "c1", "-v", "/anon", "busybox", "true", check=True)
    before = _tree(state_root)
    result = cli("run", "--rm", "--volumes-from", flag, "busybox", "true")
    assert result.returncode == 125 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _tree(state_root) == before


def test_two_writers_append_to_one_volume_at_once(cli: CLI, state_root: Path) -> None:
    """Each appends 1000 lines with O_APPEND (sh's ``>>``), both released by one file so they
    overlap: every line lands, whole. O_APPEND makes each write(2) land at the end; it is no
    lock: a read-modify-write (a counter) from two containers would lose updates."""
    writer = ("while [ ! -e /v/go ]; do sleep 0.01; done; exec 3>>/v/log; i=0; "
              "while [ $i -lt 1000 ]; do echo \"$W $i\" >&3; i=$((i+1)); done")
    ids = [cli("run", "-d", "-e", f"W={w}", "-v", "shared:/v", "busybox", "sh", "-c", writer,
               check=True).stdout.strip() for w in ("a", "b")]
    (state_root / "volumes" / "shared" / "_data" / "go").touch()
    for cid in ids:
        assert cli("wait", cid, check=True, timeout=120).stdout.strip() == "0"
    lines = (state_root / "volumes" / "shared" / "_data" / "log").read_text().splitlines()
    assert len(lines) == 2000
    for w in ("a", "b"):
        assert [line for line in lines if line.startswith(f"{w} ")] == \
            [f"{w} {i}" for i in range(1000)]  # each writer's lines whole and in its order
    for cid in ids:
        cli("rm", cid, check=True)
    assert os.listdir(state_root / "volumes") == ["shared"]


def test_a_created_or_failed_container_holds_its_volumes(cli: CLI, state_root: Path) -> None:
    cid = cli("create", "-v", "early:/data", "busybox", "true", check=True).stdout.strip()
    refused = cli("volume", "rm", "early")  # made and held at create, before any start
    assert refused.returncode == 1 and cid in refused.stderr
    failed = cli("create", "-v", "early:/data", "busybox", "/no/such/program",
                 check=True).stdout.strip()
    started = cli("start", failed)  # the start fails after the volume step: exec(2) fails
    assert started.returncode == 1 and "no such file or directory" in started.stderr
    cli("rm", cid, check=True)
    refused = cli("volume", "rm", "early")  # the failed one still exists, and still holds it
    assert refused.returncode == 1 and failed in refused.stderr
    cli("rm", failed, check=True)
    assert cli("volume", "rm", "early").returncode == 0
