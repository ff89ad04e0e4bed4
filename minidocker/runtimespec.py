"""The OCI runtime-spec's words: its tables, and the records a bundle is translated into.

The runtime-spec (``config.md``, ``config-linux.md``) names what a ``config.json`` may hold.
This module keeps those names as tables a notebook can print: which namespace types map to
which kinds (``network`` is ``net``), which mount options are mount(2) flags
(:data:`MOUNT_FLAGS`, as runc's table) and which are the filesystem's own data, which
properties minidocker refuses (:data:`UNSUPPORTED`). It also holds the two records
:mod:`minidocker.ocibundle` fills, :class:`OciSpec` and :class:`OciMount`, and the
document ``minidocker-runtime spec`` writes (:func:`default_config`, runc's own default with
minidocker's hostname).

Notebook: ``10_oci_runtime`` (to come). See the OCI runtime-spec.
"""

from __future__ import annotations

from minidocker.errors import UsageError
from minidocker.record import Record
from minidocker.syscalls import MS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SPEC_VERSION = "1.0.2"  # what `spec` writes
# The spec's namespace types -> minidocker's kinds (the /proc/<pid>/ns/ names).
NAMESPACE_KINDS = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
                   "user": "user", "cgroup": "cgroup"}
KNOWN_UNSUPPORTED_NAMESPACES = ("time",)
MOUNT_TYPES = ("bind", "tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup")
HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
ROOTFS_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave",
                       "unbindable", "runbindable")
# mount(8) option -> (clears the flag?, the flag), as runc's mountFlags table.
MOUNT_FLAGS: dict[str, tuple[bool, MS]] = {
    "ro": (False, MS.RDONLY), "rw": (True, MS.RDONLY),
    "nosuid": (False, MS.NOSUID), "suid": (True, MS.NOSUID),
    "nodev": (False, MS.NODEV), "dev": (True, MS.NODEV),
    "noexec": (False, MS.NOEXEC), "exec": (True, MS.NOEXEC),
    "sync": (False, MS.SYNCHRONOUS), "async": (True, MS.SYNCHRONOUS),
    "dirsync": (False, MS.DIRSYNC), "mand": (False, MS.MANDLOCK), "nomand": (True, MS.MANDLOCK),
    "noatime": (False, MS.NOATIME), "atime": (True, MS.NOATIME),
    "nodiratime": (False, MS.NODIRATIME), "diratime": (True, MS.NODIRATIME),
    "relatime": (False, MS.RELATIME), "norelatime": (True, MS.RELATIME),
    "strictatime": (False, MS.STRICTATIME), "nostrictatime": (True, MS.STRICTATIME),
    "nosymfollow": (False, MS.NOSYMFOLLOW), "symfollow": (True, MS.NOSYMFOLLOW),
    "silent": (False, MS.SILENT), "loud": (True, MS.SILENT),
    "bind": (False, MS.BIND), "rbind": (False, MS.BIND | MS.REC),
    "remount": (False, MS.REMOUNT), "defaults": (False, MS(0)),
}
PROPAGATION_FLAGS: dict[str, MS] = {
    "private": MS.PRIVATE, "rprivate": MS.PRIVATE | MS.REC, "shared": MS.SHARED,
    "rshared": MS.SHARED | MS.REC, "slave": MS.SLAVE, "rslave": MS.SLAVE | MS.REC,
    "unbindable": MS.UNBINDABLE, "runbindable": MS.UNBINDABLE | MS.REC,
}
# Recursive attributes (runtime-spec 1.1): applied with mount_setattr(2) and AT_RECURSIVE.
RECURSIVE_OPTIONS = ("rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
                     "rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rnoatime",
                     "ratime", "rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow")
UNSUPPORTED_MOUNT_OPTIONS = ("tmpcopyup", "idmap", "ridmap")
# linux.resources.memory's fields that only cgroup v1 has a file for (OciSpec.memory_v1).
MEMORY_V1_FILES = {"kernel": "memory.kmem.limit_in_bytes",
                   "kernelTCP": "memory.kmem.tcp.limit_in_bytes",
                   "swappiness": "memory.swappiness", "disableOOMKiller": "memory.oom_control"}
# Sysctls a container may set: each belongs to a namespace it must have (runc's rule).
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
# Properties the spec defines that minidocker has no mechanism for; refused when set.
UNSUPPORTED = {
    "": ("solaris", "windows", "vm", "zos"),
    "process": ("selinuxLabel", "ioPriority", "scheduler", "execCPUAffinity"),
    "process.user": ("username",),
    "linux": ("intelRdt", "mountLabel", "personality", "timeOffsets", "memoryPolicy",
              "netDevices"),
    "linux.resources": ("hugepageLimits", "network", "rdma", "unified"),
    "linux.resources.memory": ("useHierarchy", "checkBeforeUpdate"),
    "linux.resources.cpu": ("realtimeRuntime", "realtimePeriod", "idle", "burst"),
    "linux.resources.blockIO": ("leafWeight", "weightDevice", "throttleReadBpsDevice",
                                "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                                "throttleWriteIOPSDevice"),
    "linux.seccomp": ("flags", "listenerPath", "listenerMetadata"),
}
# The properties each object may hold (the spec's, minus the refused ones above).
KNOWN = {
    "": ("ociVersion", "process", "root", "hostname", "domainname", "mounts", "linux", "hooks",
         "annotations"),
    "process": ("terminal", "consoleSize", "user", "args", "commandLine", "env", "cwd",
                "capabilities", "rlimits", "noNewPrivileges", "apparmorProfile",
                "oomScoreAdj"),
    "process.user": ("uid", "gid", "umask", "additionalGids"),
    "linux": ("namespaces", "uidMappings", "gidMappings", "devices", "cgroupsPath",
              "resources", "sysctl", "seccomp", "rootfsPropagation", "maskedPaths",
              "readonlyPaths"),
    "linux.resources": ("devices", "memory", "cpu", "pids", "blockIO"),
    "linux.resources.memory": ("limit", "reservation", "swap", "kernel", "kernelTCP",
                               "swappiness", "disableOOMKiller"),
    "linux.resources.cpu": ("shares", "quota", "period", "cpus", "mems"),
    "linux.resources.blockIO": ("weight",),
    "linux.seccomp": ("defaultAction", "defaultErrnoRet", "architectures", "syscalls"),
}


class BundleError(UsageError):
    """A config.json that cannot be used, in one line naming the field."""

    def __init__(self, message: str) -> None:
        super().__init__(f"config.json: {message}")


class OciMount(Record):
    """One entry of ``mounts``, decided: mount(2)'s arguments. ``flags`` and ``propagation``
    are :class:`~minidocker.syscalls.MS` values (``MS(m.flags)`` prints them by name);
    ``recursive`` the ``r*`` attributes for mount_setattr(2); ``data`` the rest (``mode=755``)."""

    __slots__ = ("destination", "type", "source", "flags", "propagation", "recursive", "data")

    def __init__(self, destination: str, type: str, source: str = "", flags: int = 0,
                 propagation: int = 0, recursive: list[str] | None = None,
                 data: str = "") -> None:
        self.destination, self.type, self.source = destination, type, source
        self.flags, self.propagation = int(flags), int(propagation)
        self.recursive = list(recursive or [])
        self.data = data


class OciSpec(Record):
    """What a bundle asks that :class:`~minidocker.config.ContainerConfig` cannot say; the
    engine takes it alongside the config (see docs/oci-runtime.md)."""

    __slots__ = ("bundle", "rootfs", "rootfs_propagation", "namespace_paths", "uid_mappings",
                 "gid_mappings", "capabilities", "additional_gids", "umask", "console_size",
                 "oom_score_adj", "domainname", "mounts", "masked_paths", "readonly_paths",
                 "sysctl", "devices", "device_rules", "cgroups_path", "seccomp", "hooks",
                 "annotations", "ignored", "container_id", "memory_v1")
    NESTED = {"mounts": OciMount}

    def __init__(self, bundle: str = "", rootfs: str = "", rootfs_propagation: str = "",
                 namespace_paths: Mapping[str, str] | None = None,
                 uid_mappings: list[dict[str, int]] | None = None,
                 gid_mappings: list[dict[str, int]] | None = None,
                 capabilities: Mapping[str, list[str]] | None = None,
                 additional_gids: list[int] | None = None, umask: int | None = None,
                 console_size: dict[str, int] | None = None, oom_score_adj: int | None = None,
                 domainname: str = "", mounts: list[OciMount] | None = None,
                 masked_paths: list[str] | None = None, readonly_paths: list[str] | None = None,
                 sysctl: Mapping[str, str] | None = None,
                 devices: list[dict[str, Any]] | None = None,
                 device_rules: list[dict[str, Any]] | None = None, cgroups_path: str = "",
                 seccomp: dict[str, Any] | None = None,
                 hooks: Mapping[str, list[dict[str, Any]]] | None = None,
                 annotations: Mapping[str, str] | None = None,
                 ignored: list[str] | None = None, container_id: str = "",
                 memory_v1: Mapping[str, str] | None = None) -> None:
        self.bundle, self.rootfs, self.rootfs_propagation = bundle, rootfs, rootfs_propagation
        self.namespace_paths = dict(namespace_paths or {})  # kind ("net") -> path to join
        self.uid_mappings = list(uid_mappings or [])  # {containerID, hostID, size}
        self.gid_mappings = list(gid_mappings or [])
        self.capabilities = dict(capabilities or {})  # set -> CAP_ names, all five
        self.additional_gids = list(additional_gids or [])
        self.umask = umask
        self.console_size = console_size
        self.oom_score_adj = oom_score_adj  # None: leave the runtime's own
        self.domainname = domainname
        self.mounts = list(mounts or [])  # the whole table, in order: no defaults added
        self.masked_paths = list(masked_paths or [])
        self.readonly_paths = list(readonly_paths or [])
        self.sysctl = dict(sysctl or {})
        self.devices = list(devices or [])  # {path, type, major, minor, fileMode, uid, gid}
        self.device_rules = list(device_rules or [])  # {allow, type, major, minor, access}
        self.cgroups_path = cgroups_path
        self.seccomp = seccomp  # the spec's profile (minidocker.seccomp compiles it); None: off
        self.hooks = dict(hooks or {})  # name -> [{path, args, env, timeout}]
        self.annotations = dict(annotations or {})
        self.ignored = list(ignored or [])  # properties the spec does not define
        self.container_id = container_id  # the runtime's ID, for the hooks' state
        self.memory_v1 = dict(memory_v1 or {})  # v1 file -> value: kmem, swappiness, oom


# -- the default document ---------------------------------------------------------------------

DEFAULT_CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")  # runc spec's three
NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]
# (destination, type, source, options): runc spec's mount table, which is minidocker's own
# DEFAULT_MOUNTS (minidocker.rootfs) plus a read-only cgroup filesystem.
DEFAULT_MOUNTS: tuple[tuple[str, str, str, list[str]], ...] = (
    ("/proc", "proc", "proc", []),
    ("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
    ("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666",
                                      "mode=0620", "gid=5"]),
    ("/dev/shm", "tmpfs", "shm", [*NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"]),
    ("/dev/mqueue", "mqueue", "mqueue", NOSUID_NOEXEC_NODEV),
    ("/sys", "sysfs", "sysfs", [*NOSUID_NOEXEC_NODEV, "ro"]),
    ("/sys/fs/cgroup", "cgroup", "cgroup", [*NOSUID_NOEXEC_NODEV, "relatime", "ro"]),
)
DEFAULT_MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/sys/firmware", "/proc/scsi")
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger")


def default_config() -> dict[str, Any]:
    """What ``minidocker-runtime spec`` writes: runc's ``spec`` (not rootless), field for
    field, but for the hostname: ``sh`` on a terminal, in a read-only ``rootfs``. As runc's,
    it asks for a cgroup namespace only on a cgroup v2 host."""
    from minidocker import cgroups

    caps = list(DEFAULT_CAPS)
    kinds = ("pid", "network", "ipc", "uts", "mount") + (("cgroup",) if cgroups.version() == 2
                                                         else ())
    return {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps,
                             "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "minidocker",
        "mounts": [{"destination": d, "type": t, "source": s, **({"options": o} if o else {})}
                   for d, t, s, o in DEFAULT_MOUNTS],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in kinds],
            "maskedPaths": list(DEFAULT_MASKED_PATHS),
            "readonlyPaths": list(DEFAULT_READONLY_PATHS),
        },
    }
