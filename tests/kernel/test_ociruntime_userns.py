"""A bundle's ``linux.uidMappings``/``gidMappings``: a user namespace, checked from inside.

The container's process reads its own ``/proc/self/uid_map`` and ``gid_map`` and its ids; the
host sees the same process as the mapped host ids. The bundle's root filesystem sits in
pytest's 0700 directories, which the container's root (host uid 200000) could not cross: the
runtime opens it while still the host's root, as runc does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import minidocker
from tests.conftest import needs_root
from tests.kernel import test_ociruntime as oci
from tests.kernel.test_ociruntime import Runtime

busybox_rootfs, rt = oci.busybox_rootfs, oci.rt  # its fixtures, shared

pytestmark = [needs_root, pytest.mark.kernel]

HOST_UID, HOST_GID, SIZE = 200000, 300000, 65536


def userns_config(rt: Runtime, args: list[str], **changes: object) -> None:
    document = rt.config(args, **changes)
    document["linux"]["namespaces"].append({"type": "user"})
    document["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_UID, "size": SIZE}]
    document["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_GID, "size": SIZE}]
    (rt.bundle / "config.json").write_text(json.dumps(document))


def host_ids(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def test_the_maps_seen_from_inside(rt: Runtime) -> None:
    userns_config(rt, ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "
                                   "ls -ln /dev/null | awk '{print $3}'"])
    result = rt("run", "c1")
    assert result.returncode == 0, result.stderr
    uid_map, gid_map, uid, gid, null_owner = result.stdout.splitlines()
    assert uid_map.split() == ["0", str(HOST_UID), str(SIZE)]
    assert gid_map.split() == ["0", str(HOST_GID), str(SIZE)]
    assert (uid, gid) == ("0", "0")
    assert null_owner == "65534"  # the host's /dev/null, bound: its owner is not mapped here
    assert rt.left() == []


def test_the_host_sees_the_mapped_ids(rt: Runtime) -> None:
    userns_config(rt, ["sleep", "1000"], **{"process.user": {"uid": 1000, "gid": 1000}})
    assert rt("run", "-d", "c1").returncode == 0
    pid = rt.state("c1")["pid"]
    assert host_ids(pid) == (HOST_UID + 1000, HOST_GID + 1000)
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", str(HOST_UID), str(SIZE)]
    assert rt("delete", "--force", "c1").returncode == 0
    assert rt.left() == []


@pytest.mark.parametrize("change, message", [
    ({"linux.uidMappings": [{"containerID": 1, "hostID": HOST_UID, "size": 10}]},
     "config.json: linux.uidMappings: the container's root (0) is not mapped"),
    ({"linux.gidMappings": [{"containerID": 0, "hostID": HOST_GID, "size": 1},
                            {"containerID": 1, "hostID": 1, "size": 1}]},
     "config.json: linux.gidMappings: 2 mappings; minidocker-runtime maps one range"),
])
def test_what_the_engine_cannot_map_is_refused(rt: Runtime, change: dict,
                                               message: str) -> None:
    userns_config(rt, ["true"])
    document = json.loads((rt.bundle / "config.json").read_text())
    for dotted, value in change.items():
        document["linux"][dotted.split(".")[1]] = value
    (rt.bundle / "config.json").write_text(json.dumps(document))
    result = rt("create", "c1")
    assert (result.returncode, result.stderr) == (1, f"minidocker-runtime: {message}\n")
    assert rt.left() == []


def test_a_package_the_mapped_root_cannot_read(rt: Runtime, tmp_path: Path) -> None:
    """minidocker cloned into /root (0700): the child reads files as host uid 200000 once it
    is its namespace's root, so everything its later steps import is loaded before that."""
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    shutil.copytree(Path(minidocker.__file__).parent, closed / "minidocker",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # -I -S as scripts/setup.sh's launcher: no site, so no editable-install finder to fetch a
    # module from the readable checkout instead
    argv = [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(closed)!r}); "
            "from minidocker.ociruntime import main; sys.exit(main())", "--root", str(rt.root)]
    userns_config(rt, ["sh", "-c", "cat /proc/self/uid_map"], **{"root.readonly": True})
    result = subprocess.run([*argv, "run", "c1"], cwd=rt.bundle, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == ["0", str(HOST_UID), str(SIZE)]
    assert rt.left() == []
