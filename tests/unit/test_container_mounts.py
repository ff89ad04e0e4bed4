"""container_mounts without root: what the plan records, what teardown gives back, inspect."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from minidocker import container_mounts, mounts, volumes

pytestmark = pytest.mark.nb08


def _asked() -> list[mounts.Mount]:
    return mounts.parse_flags(["db:/data", "/data/cache", "/srv:/srv:ro"], [],
                              ["/run:size=1m"], "/")


def test_the_plan_names_anonymous_volumes_and_creates_nothing(tmp_path: Path) -> None:
    records = container_mounts.plan_mounts(str(tmp_path), _asked())
    assert [r["target"] for r in records] == ["/data", "/srv", "/run", "/data/cache"]
    named, bind, tmpfs, anonymous = records
    assert named["name"] == "db" and not named["anonymous"]
    assert named["source"] == str(tmp_path / "volumes" / "db" / "_data")
    assert anonymous["anonymous"] and len(anonymous["name"]) == 64
    assert bind["name"] == "" and bind["readonly"] and bind["propagation"] == "rprivate"
    assert tmpfs["type"] == "tmpfs" and tmpfs["data"] == "size=1m"
    assert os.listdir(tmp_path) == []  # decided, not done
    point = mounts.MountPoint.from_dict(named)  # the child reads it back as the mechanism's
    assert point.source == named["source"] and point.type == "bind"


def test_teardown_releases_and_removes_only_anonymous_volumes(tmp_path: Path) -> None:
    root, cid = str(tmp_path), "c" * 64
    records = container_mounts.plan_mounts(root, _asked())
    cdir = tmp_path / "containers" / cid
    cdir.mkdir(parents=True)
    (cdir / "config.json").write_text(json.dumps({"mounts": records}))
    anonymous = records[3]["name"]
    volumes.use(root, "db", cid)
    volumes.use(root, anonymous, cid, {volumes.ANONYMOUS_LABEL: ""})
    assert volumes.users(root, "db") == [cid]
    container_mounts.release_volumes(root, str(cdir), cid, remove_anonymous=False)
    assert volumes.users(root, "db") == [] and volumes.users(root, anonymous) == []
    assert {v.name for v in volumes.list_volumes(root)} == {"db", anonymous}  # plain rm
    container_mounts.release_volumes(root, str(cdir), cid, remove_anonymous=True)
    assert [v.name for v in volumes.list_volumes(root)] == ["db"]  # rm -v: never a named one
    container_mounts.release_volumes(root, str(cdir), cid, remove_anonymous=True)  # idempotent


def test_inspect_shows_mounts_as_docker_does(tmp_path: Path) -> None:
    shown = container_mounts.docker_mounts(container_mounts.plan_mounts(str(tmp_path),
                                                                        _asked()))
    assert shown[0] == {"Type": "volume", "Name": "db",
                        "Source": str(tmp_path / "volumes" / "db" / "_data"),
                        "Destination": "/data", "Driver": "local", "Mode": "z", "RW": True,
                        "Propagation": ""}  # -v's mode as typed; "z" for a volume without one
    assert shown[1] == {"Type": "bind", "Source": "/srv", "Destination": "/srv", "Mode": "ro",
                        "RW": False, "Propagation": "rprivate"}
    assert shown[2]["Type"] == "tmpfs" and shown[2]["Propagation"] == ""
