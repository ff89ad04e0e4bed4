"""config.json -> the engine's typed config: a real `runc spec` bundle, every refusal, bad input.

Pure translation: nothing is mounted or started, so none of this needs root.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from typing import Any

import pytest

from minidocker import cgroups, ocibundle, runtimespec
from minidocker.config import Namespaces
from minidocker.runtimespec import BundleError, OciSpec
from minidocker.syscalls import MS


def runc_spec(directory: Any) -> dict[str, Any]:
    """The document the real runc writes, made fresh by `runc spec` in ``directory``."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (scripts/setup.sh installs it)")
    subprocess.run(["runc", "spec"], cwd=directory, check=True)
    return json.loads((directory / "config.json").read_text())


@pytest.fixture
def document() -> dict[str, Any]:
    return runtimespec.default_config()


def translate(doc: dict[str, Any], bundle: str = "/b") -> tuple[Any, OciSpec]:
    return ocibundle.translate(doc, bundle)


def refused(doc: dict[str, Any], bundle: str = "/b") -> str:
    with pytest.raises(BundleError) as caught:
        ocibundle.translate(doc, bundle)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("config.json: ")
    return message


def test_a_runc_spec_bundle_translates_whole(tmp_path) -> None:
    runc = runc_spec(tmp_path)
    (tmp_path / "rootfs").mkdir()
    config, spec = ocibundle.read_bundle(str(tmp_path))
    assert config.image == "" and spec.rootfs == str(tmp_path / "rootfs")
    assert config.process.args == ["sh"] and config.process.entrypoint == ""
    assert config.process.user == "0:0" and config.process.workdir == "/"
    assert config.process.tty and config.read_only and config.hostname == "runc"
    # runc spec asks for a cgroup namespace on a cgroup v2 host only
    assert config.namespaces == Namespaces(cgroup="private" if cgroups.version() == 2
                                           else "host")
    assert config.network.name == "none"  # a network namespace of its own, nothing in it
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    # runc 1.2 and later (Ubuntu 24.04's 1.3) write no ambient set; 1.1 (Debian 12's) writes caps
    ambient = caps if "ambient" in runc["process"]["capabilities"] else []
    assert spec.capabilities == {"bounding": caps, "effective": caps, "inheritable": [],
                                 "permitted": caps, "ambient": ambient}
    assert config.security.cap_drop == ["ALL"] and config.security.cap_add == caps
    assert config.security.ulimits == ["nofile=1024:1024"]
    assert config.security.security_opt == ["apparmor=unconfined", "no-new-privileges=true",
                                             "seccomp=unconfined"]  # the spec's defaults
    assert [m.destination for m in spec.mounts] == ["/proc", "/dev", "/dev/pts", "/dev/shm",
                                                    "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
    dev = spec.mounts[1]
    assert MS(dev.flags) == MS.NOSUID | MS.STRICTATIME and dev.data == "mode=755,size=65536k"
    assert MS(spec.mounts[5].flags) == MS.NOSUID | MS.NOEXEC | MS.NODEV | MS.RDONLY
    assert spec.device_rules == [{"allow": False, "type": "a", "major": -1, "minor": -1,
                                  "access": "rwm"}]
    assert "/proc/kcore" in spec.masked_paths and "/proc/sys" in spec.readonly_paths
    assert spec.ignored == [] and spec.seccomp is None


def test_spec_writes_runcs_document_but_for_the_hostname(tmp_path) -> None:
    runc = runc_spec(tmp_path)
    # minidocker writes runc 1.1's ambient set (the bounding set); runc 1.2 and later (Ubuntu
    # 24.04's 1.3) leave it out
    caps = runc["process"]["capabilities"]
    caps.setdefault("ambient", caps["bounding"])
    assert runtimespec.default_config() == {**runc, "ociVersion": runtimespec.SPEC_VERSION,
                                            "hostname": "minidocker"}


def test_the_records_survive_json(document) -> None:
    document["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    _, spec = translate(document)
    assert OciSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_namespaces_to_join_and_the_host_ones(document) -> None:
    document["linux"]["namespaces"] = [{"type": "mount"}, {"type": "ipc"},
                                       {"type": "network", "path": "/proc/1/ns/net"},
                                       {"type": "pid", "path": "/run/netns/x"}]
    config, spec = translate(document)
    assert spec.namespace_paths == {"net": "/proc/1/ns/net", "pid": "/run/netns/x"}
    # joined reads "private": the config alone would make a new one, never use the host's
    assert config.namespaces == Namespaces(pid="private", uts="host", ipc="private",
                                           cgroup="host")
    assert config.network.name == "none"
    document["linux"]["namespaces"] = [{"type": "mount"}]
    config, _ = translate(document)
    assert config.network.name == "host" and config.namespaces.pid == "host"


def test_a_user_namespace_with_its_maps(document) -> None:
    document["linux"]["namespaces"].append({"type": "user"})
    document["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    document["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config, spec = translate(document)
    assert config.security.userns == "private"
    assert spec.uid_mappings == [{"containerID": 0, "hostID": 100000, "size": 65536}]


def test_resources_in_dockers_units(document) -> None:
    document["linux"]["resources"].update({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 100}, "blockIO": {"weight": 300}})
    config, _ = translate(document)
    r = config.resources
    assert (r.memory, r.memory_reservation, r.memory_swap) == (64 << 20, 32 << 20, 128 << 20)
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period) == (512, 50000, 100000)
    assert (r.cpuset_cpus, r.cpuset_mems, r.pids_limit, r.blkio_weight) == ("0", "0", 100, 300)


def test_bind_mounts_sysctls_hooks_seccomp_devices(document) -> None:
    document["mounts"].append({"destination": "/data", "source": "data", "type": "none",
                               "options": ["rbind", "ro", "rslave", "rnosuid"]})
    document["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "65536"}
    document["hooks"] = {"poststop": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]}
    document["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                                    "architectures": ["SCMP_ARCH_X86_64"],
                                    "syscalls": [{"names": ["read"],
                                                  "action": "SCMP_ACT_ALLOW"}]}
    document["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10,
                                     "minor": 229, "fileMode": 0o666}]
    document["process"]["oomScoreAdj"] = 100
    document["annotations"] = {"io.kubernetes.cri.container-type": "container"}
    config, spec = translate(document, "/bundles/b1")
    bind = spec.mounts[-1]
    assert (bind.type, bind.source) == ("bind", "/bundles/b1/data")  # relative: the bundle's
    assert MS(bind.flags) == MS.BIND | MS.REC | MS.RDONLY
    assert MS(bind.propagation) == MS.SLAVE | MS.REC and bind.recursive == ["rnosuid"]
    assert spec.sysctl == document["linux"]["sysctl"]
    assert spec.hooks["poststop"] == [{"path": "/bin/true", "args": ["true"], "env": [],
                                       "timeout": 5}]
    assert spec.seccomp == document["linux"]["seccomp"]
    assert "seccomp=unconfined" not in config.security.security_opt
    assert spec.devices[0]["major"] == 10 and spec.oom_score_adj == 100
    assert spec.annotations == {"io.kubernetes.cri.container-type": "container"}


def test_properties_the_spec_does_not_define_are_listed_not_refused(document) -> None:
    document["org.example.extension"] = True
    document["linux"]["futureThing"] = {}
    _, spec = translate(document)
    assert spec.ignored == ["org.example.extension", "linux.futureThing"]


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        doc = doc.setdefault(key, {})
    doc[last] = value


REFUSED = [
    ("linux.intelRdt", {"closID": "x"}, "linux.intelRdt is not supported"),
    ("windows", {"layerFolders": []}, "windows is not supported"),
    ("process.selinuxLabel", "system_u:system_r:container_t", "process.selinuxLabel is not"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_RT"}, "process.ioPriority is not"),
    ("process.scheduler", {"policy": "SCHED_FIFO"}, "process.scheduler is not supported"),
    ("process.user.username", "root", "process.user.username is not supported"),
    ("process.commandLine", "cmd /c", "process.commandLine is not supported"),
    ("linux.mountLabel", "system_u:object_r:x", "linux.mountLabel is not supported"),
    ("linux.personality", {"domain": "LINUX32"}, "linux.personality is not supported"),
    ("linux.resources.hugepageLimits", [{"pageSize": "2MB", "limit": 1}],
     "linux.resources.hugepageLimits is not supported"),
    ("linux.resources.memory", {"swappiness": 101},
     "linux.resources.memory.swappiness 101 is outside 0..100"),
    ("linux.resources.memory", {"useHierarchy": True},
     "linux.resources.memory.useHierarchy is not supported"),
    ("linux.resources.cpu", {"realtimeRuntime": 10},
     "linux.resources.cpu.realtimeRuntime is not supported"),
    ("linux.resources.blockIO", {"throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                                             "rate": 1}]},
     "linux.resources.blockIO.throttleReadBpsDevice is not supported"),
    ("linux.resources.unified", {"memory.high": "1"}, "linux.resources.unified is not"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/s"},
     "linux.seccomp.listenerPath is not supported"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_NOTIFY"},
     "linux.seccomp: unknown action 'SCMP_ACT_NOTIFY'"),
    ("linux.sysctl", {"vm.swappiness": "10"}, 'linux.sysctl.vm.swappiness is not namespaced'),
    ("linux.sysctl", {"kernel.hostname": "x"}, "set the hostname and domainname fields"),
    ("linux.namespaces", [{"type": "pid"}], "without a mount namespace is not supported"),
    ("linux.namespaces", [{"type": "mount"}, {"type": "time"}],
     "linux.namespaces[1].type: the time namespace is not supported"),
    ("linux.namespaces", [{"type": "mount"}, {"type": "user"}],
     "linux.uidMappings and linux.gidMappings are needed"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}],
     "linux.uidMappings: mappings without a user namespace"),
    ("mounts", [{"destination": "/mnt", "type": "nfs", "source": "srv:/x"}],
     "mounts[0].type: 'nfs' is not supported"),
    ("mounts", [{"destination": "/tmp", "type": "tmpfs", "options": ["tmpcopyup"]}],
     "mounts[0].options: 'tmpcopyup' is not supported"),
    ("mounts", [{"destination": "/m", "type": "bind", "source": "/x",
                 "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}],
     "mounts[0].uidMappings: idmapped mounts are not supported"),
    ("ociVersion", "2.0.0", "ociVersion '2.0.0' is not supported"),
]


@pytest.mark.parametrize(("path", "value", "message"), REFUSED,
                         ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(REFUSED)])
def test_what_minidocker_cannot_do_is_refused_by_name(document, path, value, message) -> None:
    doc = copy.deepcopy(document)
    _set(doc, path, value)
    assert message in refused(doc)


def test_a_sysctl_needs_the_namespace_it_belongs_to(document) -> None:
    document["linux"]["namespaces"] = [{"type": "mount"}]
    document["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    assert "needs a network namespace of the container's own" in refused(document)
    document["linux"]["sysctl"] = {"fs.mqueue.msg_max": "10"}
    assert "needs an ipc namespace" in refused(document)


BAD_INPUT = [
    ("linux.namespaces", [{"type": "mount"}, {"type": "bogus"}],
     "linux.namespaces[1].type: unknown namespace 'bogus'"),
    ("linux.namespaces", [{"type": "mount"}, {"type": "mount"}], "given twice"),
    ("linux.namespaces", [{"type": "mount"}, {"type": "network", "path": "proc/1/ns/net"}],
     "linux.namespaces[1].path 'proc/1/ns/net' is not an absolute path"),
    ("root", {"readonly": True}, "root.path is missing"),
    ("mounts", [{"type": "tmpfs", "source": "tmpfs"}], "mounts[0].destination is missing"),
    ("mounts", [{"destination": "tmp", "type": "tmpfs"}],
     "mounts[0].destination 'tmp' is not an absolute path"),
    ("mounts", [{"destination": "/d", "type": "bind"}], "mounts[0].source is missing"),
    ("process.capabilities.bounding", ["CAP_FLY"],
     "process.capabilities.bounding: unknown capability 'CAP_FLY'"),
    ("process.capabilities.sideways", [], "process.capabilities.sideways: unknown capability"),
    ("process.rlimits", [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}],
     "process.rlimits[0].type: unknown rlimit 'RLIMIT_BOGUS'"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2,
     "process.rlimits[1].type: RLIMIT_NOFILE given twice"),
    ("process.args", [], "process.args is missing or empty"),
    ("process.args", "sh", "process.args must be a list"),
    ("process.cwd", "srv", "process.cwd 'srv' is not an absolute path"),
    ("process.user.uid", "0", "process.user.uid must be an integer"),
    ("process.oomScoreAdj", 2000, "process.oomScoreAdj 2000 is outside -1000..1000"),
    ("linux.resources.devices", [{"allow": True, "type": "x"}],
     "linux.resources.devices[0].type: unknown device type 'x'"),
    ("linux.resources.devices", [{"allow": True, "access": "rwx"}],
     "linux.resources.devices[0].access: 'rwx'"),
    ("linux.devices", [{"path": "/dev/x", "type": "c"}], "linux.devices[0].major is missing"),
    ("linux.rootfsPropagation", "sideways", "unknown propagation 'sideways'"),
    ("linux.maskedPaths", ["proc/kcore"], "linux.maskedPaths 'proc/kcore' is not an absolute"),
    ("hooks", {"preflight": []}, "hooks.preflight: unknown hook"),
    ("hooks", {"prestart": [{"path": "hook"}]}, "hooks.prestart[0].path 'hook' is not"),
    ("hooks", {"prestart": [{"path": "/h", "timeout": 0}]},
     "hooks.prestart[0].timeout must be more than 0"),
    ("annotations", {"a": 1}, "annotations must map strings to strings"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_INPUT,
                         ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(BAD_INPUT)])
def test_bad_input_gets_one_line_naming_the_field(document, path, value, message) -> None:
    doc = copy.deepcopy(document)
    _set(doc, path, value)
    assert message in refused(doc)


def test_not_json_not_an_object_and_no_rootfs(tmp_path) -> None:
    (tmp_path / "config.json").write_text('{"ociVersion": "1.0.2",')
    with pytest.raises(BundleError, match=r"^config.json: not JSON: "):
        ocibundle.read_bundle(str(tmp_path))
    (tmp_path / "config.json").write_text("[]")
    with pytest.raises(BundleError, match=r"^config.json: not a JSON object$"):
        ocibundle.read_bundle(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(runtimespec.default_config()))
    with pytest.raises(BundleError, match=r"root.path: .*/rootfs is not a directory"):
        ocibundle.read_bundle(str(tmp_path))
    with pytest.raises(BundleError, match=r"cannot open .*/nowhere/config.json: No such file"):
        ocibundle.read_bundle(str(tmp_path / "nowhere"))


def test_a_relative_root_path_is_the_bundles(document, tmp_path) -> None:
    """The spec: root.path is absolute or relative to the bundle (runc spec writes "rootfs")."""
    document["root"]["path"] = "../elsewhere/rootfs"
    _, spec = translate(document, "/bundles/b1")
    assert spec.rootfs == "/bundles/elsewhere/rootfs"
