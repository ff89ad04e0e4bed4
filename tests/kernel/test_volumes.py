"""-v, --mount, --tmpfs and --read-only through ``run``, checked from inside the container.

Each form is looked at where it matters: the container's own /proc/self/mountinfo, and a write
that ``ro`` must refuse (EROFS, "Read-only file system"). Then the lifetimes: a named volume
outlives ``rm``; an anonymous one goes with ``--rm`` and ``rm -v``, not with a plain ``rm``;
seeding from the image happens once; ``volume rm`` refuses a volume a container uses.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from minidocker import mountinfo
from tests.conftest import CLI, needs_root

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb08]

EROFS = "Read-only file system"


def run(cli: CLI, *args: str) -> str:
    result = cli("run", "--rm", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def mountinfo_line(out: str, target: str) -> list[str]:
    """The fields of the mountinfo line for ``target`` in ``out``."""
    lines = [line.split() for line in out.splitlines() if line.split()[4:5] == [target]]
    assert len(lines) == 1, out
    return lines[0]


def root_in_its_filesystem(path: Path) -> str:
    """What mountinfo's 4th field (the mount's root within its filesystem) says for a bind of
    ``path``: the path itself where / holds it, "/x" for /tmp/x where /tmp is a tmpfs (a VM)."""
    with open("/proc/self/mountinfo") as f:
        mounts = mountinfo.parse_mountinfo(f.read())
    entry = mountinfo.mount_containing(str(path), mounts)
    assert entry is not None
    inside = os.path.relpath(path, entry.mount_point)
    return os.path.normpath(os.path.join(entry.root, inside))


def volume_names(state_root: Path) -> list[str]:
    top = state_root / "volumes"
    return sorted(n for n in os.listdir(top) if not n.startswith(".")) if top.is_dir() else []


def test_a_named_volume_outlives_its_container(cli: CLI, state_root: Path) -> None:
    out = run(cli, "-v", "db:/data", "busybox", "sh", "-c",
              "echo kept > /data/x && cat /proc/self/mountinfo")
    fields = mountinfo_line(out, "/data")
    assert fields[3].endswith("/volumes/db/_data") and fields[5].startswith("rw")
    assert volume_names(state_root) == ["db"]
    assert run(cli, "-v", "db:/again", "busybox", "cat", "/again/x") == "kept\n"
    assert cli("volume", "rm", "db").returncode == 0  # no container holds it any more


def test_inspect_shows_the_mounts(cli: CLI, state_root: Path, tmp_path: Path) -> None:
    cid = cli("create", "-v", "db:/data", "-v", f"{tmp_path}:/h:ro", "--tmpfs", "/run",
              "--read-only", "busybox", "true", check=True).stdout.strip()
    shown = json.loads(cli("inspect", cid, check=True).stdout)[0]
    assert shown["HostConfig"]["ReadonlyRootfs"] is True
    mounts = {m["Destination"]: m for m in shown["Mounts"]}
    assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == "db"
    assert mounts["/data"]["Driver"] == "local" and mounts["/data"]["RW"] is True
    assert mounts["/data"]["Mode"] == "z"  # Docker's default mode of a -v volume on Linux
    assert mounts["/h"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/h",
                            "Mode": "ro", "RW": False, "Propagation": "rprivate"}
    assert mounts["/run"]["Type"] == "tmpfs"
    cli("rm", cid, check=True)


def test_anonymous_volumes_go_with_rm_v_and_run_rm_only(cli: CLI, state_root: Path) -> None:
    run(cli, "-v", "/anon", "busybox", "touch", "/anon/x")
    assert volume_names(state_root) == []  # --rm took it
    keep = cli("run", "-v", "/anon", "-v", "named:/n", "busybox", "touch", "/anon/x",
               check=True)
    assert keep.returncode == 0
    cid = cli("ps", "-aq", "--no-trunc", check=True).stdout.split()[0]
    anonymous = [n for n in volume_names(state_root) if n != "named"]
    assert len(anonymous) == 1
    cli("rm", cid, check=True)  # plain rm: the volume stays, unused
    assert anonymous[0] in volume_names(state_root)
    assert (state_root / "volumes" / anonymous[0] / "_data" / "x").exists()
    cid = cli("create", "-v", "/anon2", "-v", "named:/n", "busybox", "true",
              check=True).stdout.strip()
    cli("start", "-a", cid, check=True)
    before = set(volume_names(state_root))
    cli("rm", "-v", cid, check=True)  # its anonymous volume goes, the named one never
    after = set(volume_names(state_root))
    assert len(before - after) == 1 and "named" in after and anonymous[0] in after


def test_run_d_rm_removes_its_anonymous_volume(cli: CLI, state_root: Path) -> None:
    cid = cli("run", "-d", "--rm", "-v", "/anon", "busybox", "true", check=True).stdout.strip()
    deadline = time.monotonic() + 10
    while (state_root / "containers" / cid).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (state_root / "containers" / cid).exists()
    assert volume_names(state_root) == []


def test_a_bind_mount_rw_and_ro(cli: CLI, tmp_path: Path) -> None:
    out = run(cli, "-v", f"{tmp_path}:/rw", "--mount", f"type=bind,src={tmp_path},dst=/ro,ro",
              "busybox", "sh", "-c",
              "echo w > /rw/f; cat /proc/self/mountinfo; (echo x > /ro/g) 2>&1; true")
    assert (tmp_path / "f").read_text() == "w\n" and not (tmp_path / "g").exists()
    assert EROFS in out
    assert mountinfo_line(out, "/rw")[5].startswith("rw")
    assert mountinfo_line(out, "/ro")[5].startswith("ro")
    result = cli("run", "--rm", "-v", f"{tmp_path}:/ro:ro", "busybox", "touch", "/ro/g")
    assert result.returncode == 1 and EROFS in result.stderr


def test_tmpfs_with_a_size(cli: CLI) -> None:
    out = run(cli, "--tmpfs", "/run:size=1m", "--mount", "type=tmpfs,dst=/scratch",
              "busybox", "sh", "-c", "touch /run/x /scratch/y && cat /proc/self/mountinfo")
    fields = mountinfo_line(out, "/run")
    assert fields[-3] == "tmpfs" and "size=1024k" in fields[-1]
    assert {"nosuid", "nodev", "noexec"} <= set(fields[5].split(","))
    assert mountinfo_line(out, "/scratch")[-3] == "tmpfs"


def test_read_only_root_keeps_volumes_and_tmpfs_writable(cli: CLI) -> None:
    out = run(cli, "--read-only", "-v", "db:/data", "--tmpfs", "/run", "busybox", "sh", "-c",
              "touch /data/x && touch /run/y && echo ok; cat /proc/self/mountinfo; "
              "touch /tmp/z 2>&1; touch /dev/null && echo dev")
    assert "ok\n" in out and "dev\n" in out and EROFS in out
    assert mountinfo_line(out, "/")[5].startswith("ro")
    assert mountinfo_line(out, "/proc")[5].startswith("rw")


def test_a_new_volume_is_seeded_from_the_image_once(cli: CLI, state_root: Path) -> None:
    out = run(cli, "-v", "etc:/etc", "busybox", "cat", "/etc/passwd")
    assert out.startswith("root:")
    data = state_root / "volumes" / "etc" / "_data"
    assert (data / "passwd").exists() and (data / "group").exists()
    # Emptied by a container: the next one at /etc must not seed it again.
    run(cli, "-v", "etc:/v", "busybox", "sh", "-c", "rm -rf /v/* && echo mine > /v/note")
    out = run(cli, "-v", "etc:/etc", "busybox", "ls", "/etc")
    assert "note" in out.split() and "passwd" not in out.split()
    # nocopy, and a bind mount: never seeded
    run(cli, "-v", "fresh:/etc:nocopy", "busybox", "true")
    assert not (state_root / "volumes" / "fresh" / "_data" / "passwd").exists()


def test_volume_rm_refuses_a_volume_in_use(cli: CLI, state_root: Path) -> None:
    cid = cli("run", "-d", "-v", "busy:/data", "busybox", "sleep", "60",
              check=True).stdout.strip()
    out = cli("exec", cid, "cat", "/proc/self/mountinfo", check=True).stdout
    assert mountinfo_line(out, "/data")[3].endswith("/volumes/busy/_data")
    refused = cli("volume", "rm", "busy")
    assert refused.returncode == 1 and "volume is in use" in refused.stderr
    assert cid in refused.stderr
    cli("rm", "-f", cid, check=True)
    assert cli("volume", "rm", "busy").returncode == 0


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("args", [
    ["-v", "bad::x"], ["-v", "/data:ro"], ["-v", "a:relative"], ["--tmpfs", "/run:bogus"],
    ["--mount", "type=bind,src=/no/such/path,dst=/x"], ["-v", "x/y:/data"],
])
def test_a_bad_spec_is_one_line_and_changes_nothing(cli: CLI, state_root: Path,
                                                    args: list[str]) -> None:
    cli("run", "--rm", "busybox", "true", check=True)  # the image is in the store
    before = _tree(state_root)
    result = cli("run", *args, "busybox", "true")
    assert result.returncode == 125
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(r"invalid|includes invalid|does not exist", result.stderr)
    assert _tree(state_root) == before
