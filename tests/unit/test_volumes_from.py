"""The image's VOLUME entries and ``--volumes-from``, decided without root: which mount wins
at a destination, what is inherited and in which mode, and that nothing is created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minidocker import container_mounts, mounts
from minidocker.errors import UsageError

pytestmark = pytest.mark.nb08


@pytest.mark.parametrize("spec, expected", [
    ("data", ("data", False)), ("data:ro", ("data", True)), ("data:rw", ("data", False)),
    ("abc123:ro,z", ("abc123", True)),
])
def test_volumes_from_forms(spec: str, expected: tuple[str, bool]) -> None:
    assert mounts.parse_volumes_from(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("", "volumes-from specification cannot be an empty string"),
    ("data:rshared", "invalid mode for volumes-from: rshared"),
    ("data:nocopy", "invalid mode for volumes-from: nocopy"),
    ("data:ro,rw", "invalid mode for volumes-from: ro,rw"),
    ("data:bogus", "invalid mode for volumes-from: bogus"),
    (":ro", "invalid mode for volumes-from: ro"),
])
def test_volumes_from_refusals(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=f"^{message}$"):
        mounts.parse_volumes_from(spec)


def test_image_volumes_fill_only_what_nothing_covers() -> None:
    asked = mounts.parse_flags(["mine:/data/"], [], [], "/")
    got = mounts.with_image_volumes(asked, ["/from"], ["/logs", "/data", "/from/", "/", "rel"])
    assert [(m.type, m.source, m.target) for m in got] == [
        ("volume", "mine", "/data"), ("volume", "", "/logs")]


def _records_of_c1(root: str) -> list[dict[str, object]]:
    asked = mounts.parse_flags(["/anon", "db:/db", "/srv:/srv:ro"], [], ["/run"], "/")
    return container_mounts.plan_mounts(root, asked)


def test_inherit_keeps_volumes_and_binds_not_tmpfs(tmp_path: Path) -> None:
    c1 = _records_of_c1(str(tmp_path))
    got = {r["target"]: r for r in container_mounts.inherit(c1, readonly=False)}
    assert sorted(got) == ["/anon", "/db", "/srv"]
    assert got["/anon"]["name"] == c1[0]["name"] and got["/anon"]["anonymous"]
    assert not got["/db"]["readonly"] and got["/srv"]["readonly"]  # each keeps its own mode
    assert all(r["nocopy"] for r in got.values())  # the volume is C's as it is: never seeded
    forced = container_mounts.inherit(c1, readonly=True)
    assert all(r["readonly"] for r in forced)


def test_own_mounts_win_then_inherited_then_image_volumes(tmp_path: Path) -> None:
    root = str(tmp_path)
    inherited = container_mounts.inherit(_records_of_c1(root), readonly=True)
    own = mounts.parse_flags(["other:/db"], [], [], "/")
    records = container_mounts.plan_mounts(root, own, ["/db", "/anon", "/img"], inherited)
    by_target = {r["target"]: r for r in records}
    assert sorted(by_target) == ["/anon", "/db", "/img", "/srv"]
    assert by_target["/db"]["name"] == "other" and not by_target["/db"]["readonly"]
    assert by_target["/anon"]["name"] == inherited[0]["name"]  # C1's, not a new one
    image = by_target["/img"]
    assert image["anonymous"] and not image["nocopy"] and len(image["name"]) == 64
    assert os.listdir(tmp_path) == []  # decided, not done


def test_run_flags_carry_volumes_from() -> None:
    from minidocker import cli, flags

    argv = ["--volumes-from", "c1:ro", "--volumes-from=c2", "busybox"]
    cfg = cli.config_from_flags(flags.parse(cli._run_flags(), argv, "run"), {}, "/")
    assert cfg.volumes_from == ["c1:ro", "c2"]
    from minidocker.config import ContainerConfig

    assert ContainerConfig.from_dict(cfg.to_dict()).volumes_from == ["c1:ro", "c2"]


def test_volumes_from_looks_each_container_up_and_the_later_wins(tmp_path: Path) -> None:
    c1 = _records_of_c1(str(tmp_path))
    c2 = container_mounts.plan_mounts(str(tmp_path), mounts.parse_flags(["xx:/db"], [], [], "/"))
    looked_up: list[str] = []

    def recorded(ref: str) -> list[dict[str, object]]:
        looked_up.append(ref)
        return {"c1": c1, "c2": c2}[ref]

    got = {r["target"]: r for r in container_mounts.volumes_from(["c1:ro", "c2"], recorded)}
    assert looked_up == ["c1", "c2"] and sorted(got) == ["/anon", "/db", "/srv"]
    assert got["/db"]["name"] == "xx" and not got["/db"]["readonly"]
    assert got["/anon"]["readonly"]
    with pytest.raises(UsageError, match="invalid mode"):
        container_mounts.volumes_from(["c1:shared"], recorded)
    assert looked_up == ["c1", "c2"]  # a bad mode is refused before any lookup


def test_userns_refuses_bind_propagation_before_probing(tmp_path: Path) -> None:
    records = container_mounts.plan_mounts(
        str(tmp_path), mounts.parse_flags([f"{tmp_path}:/x:rshared"], [], [], "/"))
    with pytest.raises(UsageError, match="^--userns private: /x: bind propagation rshared"):
        container_mounts.plan_userns(str(tmp_path), records, 100000, 100000)
