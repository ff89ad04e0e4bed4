"""The decisions a bundle's start makes before anything exists (minidocker.ocicontainer), and
the engine's plan of a bundle: no root needed."""

from __future__ import annotations

import pytest

from minidocker import capabilities, engine, ocicontainer, state
from minidocker.errors import UsageError
from minidocker.ocibundle import translate
from minidocker.runtimespec import OciSpec, default_config


def bundle(tmp_path, **changes):
    document = default_config()
    document["process"]["terminal"] = False
    document["process"]["args"] = ["true"]
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = document
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    return translate(document, str(tmp_path))


@pytest.mark.parametrize("path, place", [
    ("", ("", "")),
    ("/cgrouptest", ("/", "cgrouptest")),
    ("/libpod_parent/libpod-abc", ("libpod_parent", "libpod-abc")),
    ("testdir/cgrouptest/container", ("testdir/cgrouptest", "container")),
])
def test_cgroups_path_is_a_parent_and_a_name(path, place) -> None:
    assert ocicontainer.cgroup_place(OciSpec(cgroups_path=path)) == place


@pytest.mark.parametrize("spec, message", [
    (OciSpec(namespace_paths={"user": "/proc/1/ns/user"}),
     "config.json: linux.namespaces: joining a user namespace by path is not supported yet"),
    (OciSpec(namespace_paths={"mnt": "/proc/1/ns/mnt"}),
     "config.json: linux.namespaces: joining a mnt namespace by path is not supported yet"),
    (OciSpec(uid_mappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
             gid_mappings=[{"containerID": 0, "hostID": 1000, "size": 1}] * 2),
     "config.json: linux.gidMappings: 2 mappings; minidocker-runtime maps one range"),
    (OciSpec(uid_mappings=[{"containerID": 5, "hostID": 1000, "size": 1}],
             gid_mappings=[{"containerID": 0, "hostID": 1000, "size": 1}]),
     "config.json: linux.uidMappings: the container's root (0) is not mapped"),
    (OciSpec(uid_mappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
             gid_mappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
             namespace_paths={"net": "/run/netns/x"}),
     "config.json: linux.namespaces: joining a net namespace by path together with a new "
     "user namespace is not supported"),
    (OciSpec(cgroups_path="system.slice:libpod:abc"),
     "config.json: linux.cgroupsPath 'system.slice:libpod:abc': a systemd slice:prefix:name "
     "is not supported"),
    (OciSpec(cgroups_path="/a/../b"),
     "config.json: linux.cgroupsPath '/a/../b': want a path like /parent/name"),
])
def test_what_the_start_cannot_apply_is_refused_by_name(spec, message) -> None:
    with pytest.raises(UsageError) as refused:
        ocicontainer.check(spec)
    assert str(refused.value) == message


def test_joining_net_and_pid_by_path_and_empty_hooks_are_fine() -> None:
    ocicontainer.check(OciSpec(namespace_paths={"net": "/run/netns/x", "pid": "/proc/1/ns/pid"},
                               hooks={"prestart": []}))


def test_every_recursive_option_has_mount_attributes() -> None:
    from minidocker.runtimespec import RECURSIVE_OPTIONS

    assert set(ocicontainer.RECURSIVE_ATTRS) == set(RECURSIVE_OPTIONS)


def test_the_plan_of_a_bundle_is_the_bundle_exactly(tmp_path) -> None:
    config, oci = bundle(tmp_path, hostname="", **{"process.env": ["A=1"],
                                                    "linux.cgroupsPath": "/p/c1"})
    layout = state.Layout(str(tmp_path / "root"))
    made = engine.plan(config, layout, cid="a" * 64, oci=oci)
    spec = made.spec
    assert made.lowers == [] and spec.image_id == ""
    assert spec.env == {"A": "1"}  # no PATH, HOSTNAME or HOME added
    assert spec.hostname == "" and spec.argv == ["true"]
    assert (spec.cgroup_parent, spec.cgroup_name) == ("p", "c1")
    assert "pid" in spec.namespaces and "net" in spec.namespaces and "cgroup" not in \
        spec.namespaces
    caps = capabilities.to_mask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    exact = spec.security.exact
    # runc spec asks for ambient without inheritable: the kernel could not raise them
    assert (exact.bounding, exact.permitted, exact.effective, exact.inheritable,
            exact.ambient) == (caps, caps, caps, 0, 0)
    assert spec.security.seccomp is None and spec.security.no_new_privs
    assert spec.as_dict()["oci"]["rootfs"] == str(tmp_path / "rootfs")  # records as JSON
    assert not (tmp_path / "root").exists()  # a plan makes nothing
