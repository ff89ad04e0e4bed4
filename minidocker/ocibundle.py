"""OCI bundles: a ``config.json`` read and translated into the engine's typed config.

An engine (podman, containerd, CRI-O) does not call minidocker's engine: it writes a *bundle*,
a directory holding ``config.json`` (the OCI runtime-spec's one document describing the
container: process, root filesystem, mounts, namespaces, cgroups, security) and the root
filesystem, then runs a runtime's ``create``/``start`` on it. That document is the contract
between an engine and a runtime; :mod:`minidocker.ociruntime` is the runtime's command line.

Decide, then do. :func:`translate` turns the document into what the engine already takes, a
:class:`~minidocker.config.ContainerConfig` (the process, hostname, namespaces, limits, rlimits,
no_new_privs, AppArmor...), plus an :class:`OciSpec` holding what a config made from flags
cannot say: a root filesystem path instead of an image, namespaces to *join*, the five
capability sets exactly, the whole mount table, uid/gid maps, masked and read-only paths,
sysctls, oomScoreAdj, devices, the seccomp profile inline, hooks, annotations. It mounts and
creates nothing, so every rule is a unit test.

**Refuse, never ignore.** Every property of the spec that minidocker cannot honour is refused
with one line naming it (``config.json: linux.intelRdt is not supported``): a container that
silently lacked a limit or a mask it asked for would be less isolated than its engine believes.
Properties the spec does not define are the one exception: the spec requires a runtime to
ignore them (for extensions), so they are listed in :attr:`OciSpec.ignored` instead.

Where the spec and ``minidocker run`` differ, the spec wins: no ``linux.seccomp`` means no
filter, no ``apparmorProfile`` means unconfined, and the mounts and masked paths listed are all
there is (minidocker's defaults are not added).

See the OCI runtime-spec ``config.md`` and ``config-linux.md``; runc's ``libcontainer/specconv``
does the same translation for runc. Notebook: ``11_runtime_spec``.
"""

from __future__ import annotations

import os

from minidocker import capabilities, rlimits
from minidocker.cgroups import CgroupLimits
from minidocker.config import ContainerConfig, Namespaces, NetworkConfig, Process, Security
from minidocker.runtimespec import (
    CAPABILITY_SETS,
    HOOKS,
    IPC_SYSCTLS,
    KNOWN,
    KNOWN_UNSUPPORTED_NAMESPACES,
    MEMORY_V1_FILES,
    MOUNT_FLAGS,
    MOUNT_TYPES,
    NAMESPACE_KINDS,
    PROPAGATION_FLAGS,
    RECURSIVE_OPTIONS,
    ROOTFS_PROPAGATIONS,
    UNSUPPORTED,
    UNSUPPORTED_MOUNT_OPTIONS,
    BundleError,
    OciMount,
    OciSpec,
)
from minidocker.syscalls import MS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


# -- reading ----------------------------------------------------------------------------------

def read_bundle(bundle: str) -> tuple[ContainerConfig, OciSpec]:
    """``<bundle>/config.json``, translated; its root filesystem must be a directory."""
    from minidocker.state import loads  # json's C scanner, without json (and re): ~6 ms

    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            document = loads(f.read().decode())
    except OSError as exc:
        raise BundleError(f"cannot open {path}: {exc.strerror}") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise BundleError(f"not JSON: {str(exc).removeprefix('not JSON: ')}") from None
    config, spec = translate(document, bundle)
    if not os.path.isdir(spec.rootfs):
        raise BundleError(f"root.path: {spec.rootfs} is not a directory")
    return config, spec


# -- small checked getters ---------------------------------------------------------------------

def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BundleError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BundleError(f"{where} must be a list")
    return value


def _strings(value: Any, where: str) -> list[str]:
    items = _list(value, where)
    if not all(isinstance(s, str) for s in items):
        raise BundleError(f"{where} must be a list of strings")
    return items


def _int(value: Any, where: str, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BundleError(f"{where} must be an integer")
    return value


def _str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BundleError(f"{where} must be a string")
    return value


def _absolute(path: str, where: str) -> str:
    if not path.startswith("/"):
        raise BundleError(f"{where} {path!r} is not an absolute path")
    return path


def _absolute_field(entry: Mapping[str, Any], key: str, where: str) -> str:
    """``entry[key]``: a string that must be there and be an absolute path."""
    value = _str(entry.get(key), f"{where}.{key}")
    if not value:
        raise BundleError(f"{where}.{key} is missing")
    return _absolute(value, f"{where}.{key}")


def _check_keys(obj: Mapping[str, Any], where: str, ignored: list[str]) -> None:
    """Refuse the spec's properties minidocker cannot honour; note the ones it doesn't define."""
    for key, value in obj.items():
        name = f"{where}.{key}" if where else key
        if key in UNSUPPORTED.get(where, ()):
            if value not in (None, False, "", [], {}):
                raise BundleError(f"{name} is not supported")
        elif key not in KNOWN[where]:
            ignored.append(name)


# -- translating --------------------------------------------------------------------------------

def translate(document: Any, bundle: str) -> tuple[ContainerConfig, OciSpec]:
    """The whole document: a config for the engine, and what only a bundle says."""
    if not isinstance(document, dict):
        raise BundleError("not a JSON object")
    doc: dict[str, Any] = document
    spec = OciSpec(bundle=bundle)
    _check_keys(doc, "", spec.ignored)
    version = _str(doc.get("ociVersion"), "ociVersion")
    if not version.startswith("1."):
        raise BundleError(f"ociVersion {version!r} is not supported (want 1.x)")
    root = _object(doc.get("root"), "root")
    root_path = _str(root.get("path"), "root.path")
    if not root_path:
        raise BundleError("root.path is missing")
    spec.rootfs = os.path.normpath(os.path.join(bundle, root_path))  # relative: to the bundle
    config = ContainerConfig(image="", hostname=_str(doc.get("hostname"), "hostname") or None,
                             read_only=root.get("readonly") is True)
    spec.domainname = _str(doc.get("domainname"), "domainname")
    _process(_object(doc.get("process"), "process"), config, spec)
    linux = _object(doc.get("linux"), "linux")
    _check_keys(linux, "linux", spec.ignored)
    _namespaces(linux, config, spec)
    config.resources, spec.device_rules = _resources(linux.get("resources"), spec.ignored)
    spec.memory_v1 = _memory_v1(_object(_object(linux.get("resources"), "linux.resources")
                                        .get("memory"), "linux.resources.memory"))
    spec.cgroups_path = _str(linux.get("cgroupsPath"), "linux.cgroupsPath")
    spec.mounts = [_mount(m, f"mounts[{i}]", bundle)
                   for i, m in enumerate(_list(doc.get("mounts"), "mounts"))]
    spec.masked_paths = [_absolute(p, "linux.maskedPaths")
                         for p in _strings(linux.get("maskedPaths"), "linux.maskedPaths")]
    spec.readonly_paths = [_absolute(p, "linux.readonlyPaths")
                           for p in _strings(linux.get("readonlyPaths"), "linux.readonlyPaths")]
    spec.devices = [_device(d, f"linux.devices[{i}]")
                    for i, d in enumerate(_list(linux.get("devices"), "linux.devices"))]
    propagation = _str(linux.get("rootfsPropagation"), "linux.rootfsPropagation")
    if propagation and propagation not in ROOTFS_PROPAGATIONS:
        raise BundleError(f"linux.rootfsPropagation: unknown propagation {propagation!r}")
    spec.rootfs_propagation = propagation
    spec.sysctl = _sysctl(_object(linux.get("sysctl"), "linux.sysctl"), config)
    spec.seccomp = _seccomp(linux.get("seccomp"), config, spec.ignored)
    spec.hooks = _hooks(_object(doc.get("hooks"), "hooks"))
    annotations = _object(doc.get("annotations"), "annotations")
    if not all(isinstance(v, str) for v in annotations.values()):
        raise BundleError("annotations must map strings to strings")
    spec.annotations = annotations
    return config, spec


def _process(process: Mapping[str, Any], config: ContainerConfig, spec: OciSpec) -> None:
    _check_keys(process, "process", spec.ignored)
    if process.get("commandLine") is not None:
        raise BundleError("process.commandLine is not supported (it is Windows')")
    args = _strings(process.get("args"), "process.args")
    if not args:
        raise BundleError("process.args is missing or empty")
    cwd = _absolute(_str(process.get("cwd"), "process.cwd") or "/", "process.cwd")
    user = _object(process.get("user"), "process.user")
    _check_keys(user, "process.user", spec.ignored)
    uid = _int(user.get("uid"), "process.user.uid", 0)
    gid = _int(user.get("gid"), "process.user.gid", 0)
    spec.additional_gids = [_int(g, "process.user.additionalGids", 0) or 0
                            for g in _list(user.get("additionalGids"),
                                           "process.user.additionalGids")]
    spec.umask = _int(user.get("umask"), "process.user.umask")
    size = process.get("consoleSize")
    spec.console_size = _object(size, "process.consoleSize") if size is not None else None
    config.process = Process(args=args, entrypoint="", env=_strings(process.get("env"),
                                                                      "process.env"),
                             user=f"{uid}:{gid}", workdir=cwd,
                             tty=process.get("terminal") is True)
    spec.oom_score_adj = _int(process.get("oomScoreAdj"), "process.oomScoreAdj")
    if spec.oom_score_adj is not None and not -1000 <= spec.oom_score_adj <= 1000:
        raise BundleError(f"process.oomScoreAdj {spec.oom_score_adj} is outside -1000..1000")
    sets = _capabilities(_object(process.get("capabilities"), "process.capabilities"))
    spec.capabilities = sets
    # The nearest the flags' words come: root gets the bounding set (capabilities.py explains).
    opts = [f"apparmor={_str(process.get('apparmorProfile'), 'process.apparmorProfile')}"
            if process.get("apparmorProfile") else "apparmor=unconfined"]
    if process.get("noNewPrivileges") is True:
        opts.append("no-new-privileges=true")
    config.security = Security(cap_drop=["ALL"], cap_add=sets["bounding"],
                               cap_ambient=sets["ambient"], security_opt=opts,
                               ulimits=_rlimits(_list(process.get("rlimits"),
                                                      "process.rlimits")))


def _capabilities(caps: Mapping[str, Any]) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {}
    for name in caps:
        if name not in CAPABILITY_SETS:
            raise BundleError(f"process.capabilities.{name}: unknown capability set")
    for name in CAPABILITY_SETS:
        where = f"process.capabilities.{name}"
        sets[name] = _strings(caps.get(name), where)
        for cap in sets[name]:
            if cap not in capabilities.NUMBERS:
                raise BundleError(f"{where}: unknown capability {cap!r}")
    return sets


def _rlimits(entries: list[Any]) -> list[str]:
    """``{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}`` -> ``nofile=1024:1024``."""
    flags, seen = [], set()
    for i, entry in enumerate(entries):
        where = f"process.rlimits[{i}]"
        entry = _object(entry, where)
        kind = _str(entry.get("type"), f"{where}.type")
        name = kind.removeprefix("RLIMIT_").lower()
        if not kind.startswith("RLIMIT_") or name not in rlimits.RLIMITS:
            raise BundleError(f"{where}.type: unknown rlimit {kind!r}")
        if kind in seen:
            raise BundleError(f"{where}.type: {kind} given twice")
        seen.add(kind)
        soft = _int(entry.get("soft"), f"{where}.soft", 0)
        hard = _int(entry.get("hard"), f"{where}.hard", 0)
        flags.append(f"{name}={soft}:{hard}")
    return flags


def _namespaces(linux: Mapping[str, Any], config: ContainerConfig, spec: OciSpec) -> None:
    kinds: dict[str, str] = {}  # kind -> path ("" for a new one)
    for i, entry in enumerate(_list(linux.get("namespaces"), "linux.namespaces")):
        where = f"linux.namespaces[{i}]"
        entry = _object(entry, where)
        kind = _str(entry.get("type"), f"{where}.type")
        if kind in KNOWN_UNSUPPORTED_NAMESPACES:
            raise BundleError(f"{where}.type: the {kind} namespace is not supported")
        if kind not in NAMESPACE_KINDS:
            raise BundleError(f"{where}.type: unknown namespace {kind!r}")
        if NAMESPACE_KINDS[kind] in kinds:
            raise BundleError(f"{where}.type: namespace {kind!r} given twice")
        path = _str(entry.get("path"), f"{where}.path")
        kinds[NAMESPACE_KINDS[kind]] = _absolute(path, f"{where}.path") if path else ""
    if "mnt" not in kinds:
        raise BundleError("linux.namespaces: a container without a mount namespace is not "
                          "supported")
    spec.namespace_paths = {k: p for k, p in kinds.items() if p}
    # A namespace to join reads "private" here: the config alone then makes a new one, which
    # isolates more, never less; the engine joins spec.namespace_paths instead.
    config.namespaces = Namespaces(**{k: "private" if k in kinds else "host"
                                      for k in ("pid", "uts", "ipc", "cgroup")})
    config.network = NetworkConfig("none" if "net" in kinds else "host")
    maps = {}
    for key in ("uidMappings", "gidMappings"):
        maps[key] = [_idmap(m, f"linux.{key}[{i}]")
                     for i, m in enumerate(_list(linux.get(key), f"linux.{key}"))]
    if "user" in kinds:
        config.security.userns = "private"
        if not kinds["user"] and not (maps["uidMappings"] and maps["gidMappings"]):
            raise BundleError("linux.uidMappings and linux.gidMappings are needed with a new "
                              "user namespace")
    elif maps["uidMappings"] or maps["gidMappings"]:
        raise BundleError("linux.uidMappings: mappings without a user namespace")
    spec.uid_mappings, spec.gid_mappings = maps["uidMappings"], maps["gidMappings"]


def _idmap(entry: Any, where: str) -> dict[str, int]:
    entry = _object(entry, where)
    mapping = {k: _int(entry.get(k), f"{where}.{k}") for k in ("containerID", "hostID", "size")}
    missing = [k for k, v in mapping.items() if v is None]
    if missing:
        raise BundleError(f"{where}.{missing[0]} is missing")
    return {k: v or 0 for k, v in mapping.items()}


def resources(value: Any) -> tuple[CgroupLimits, list[dict[str, Any]]]:
    """``linux.resources`` alone (``minidocker-runtime update --resources R.json``)."""
    memory = _object(_object(value, "linux.resources").get("memory"), "linux.resources.memory")
    if _memory_v1(memory):
        raise BundleError(f"linux.resources.memory.{sorted(set(memory) & set(MEMORY_V1_FILES))[0]}"
                          ": not supported by update")
    return _resources(value, [])


def _memory_v1(memory: Mapping[str, Any]) -> dict[str, str]:
    """``kernel``, ``kernelTCP`` (bytes, -1 unlimited), ``swappiness`` (0-100) and
    ``disableOOMKiller``: values for the v1 memory files that hold them (runc's)."""
    found = {}
    for key, file in MEMORY_V1_FILES.items():
        where = f"linux.resources.memory.{key}"
        value = memory.get(key)
        if key == "disableOOMKiller":
            if value is not None and not isinstance(value, bool):
                raise BundleError(f"{where} must be true or false")
            if value:
                found[file] = "1"
            continue
        number = _int(value, where)
        if number is None:
            continue
        if key == "swappiness" and not 0 <= number <= 100:
            raise BundleError(f"{where} {number} is outside 0..100")
        found[file] = str(number)
    return found


def _resources(value: Any, ignored: list[str]) -> tuple[CgroupLimits, list[dict[str, Any]]]:
    """The spec's cgroup resources in Docker's units (:class:`CgroupLimits`), and the device
    rules. The spec's ``memory.swap`` is memory plus swap, as Docker's ``--memory-swap``."""
    res = _object(value, "linux.resources")
    _check_keys(res, "linux.resources", ignored)
    limits: dict[str, Any] = {}
    parts = {k: _object(res.get(k), f"linux.resources.{k}")
             for k in ("memory", "cpu", "pids", "blockIO")}
    for where in ("memory", "cpu", "blockIO"):
        _check_keys(parts[where], f"linux.resources.{where}", ignored)
    table = (("memory", "limit", "memory"), ("memory", "reservation", "memory_reservation"),
             ("memory", "swap", "memory_swap"), ("cpu", "shares", "cpu_shares"),
             ("cpu", "quota", "cpu_quota"), ("cpu", "period", "cpu_period"),
             ("blockIO", "weight", "blkio_weight"), ("pids", "limit", "pids_limit"))
    for part, key, field in table:
        number = _int(parts[part].get(key), f"linux.resources.{part}.{key}")
        if number is not None:
            limits[field] = number
    for key, field in (("cpus", "cpuset_cpus"), ("mems", "cpuset_mems")):
        text = _str(parts["cpu"].get(key), f"linux.resources.cpu.{key}")
        if text:
            limits[field] = text
    rules = []
    for i, rule in enumerate(_list(res.get("devices"), "linux.resources.devices")):
        where = f"linux.resources.devices[{i}]"
        rule = _object(rule, where)
        kind = _str(rule.get("type"), f"{where}.type") or "a"
        access = _str(rule.get("access"), f"{where}.access") or "rwm"
        if kind not in ("a", "b", "c"):
            raise BundleError(f"{where}.type: unknown device type {kind!r} (want a, b or c)")
        if not set(access) <= set("rwm"):
            raise BundleError(f"{where}.access: {access!r} (want letters of rwm)")
        if not isinstance(rule.get("allow"), bool):
            raise BundleError(f"{where}.allow must be true or false")
        rules.append({"allow": rule["allow"], "type": kind,
                      "major": _int(rule.get("major"), f"{where}.major", -1),
                      "minor": _int(rule.get("minor"), f"{where}.minor", -1), "access": access})
    return CgroupLimits(**limits), rules


def _mount(entry: Any, where: str, bundle: str) -> OciMount:
    entry = _object(entry, where)
    destination = _absolute_field(entry, "destination", where)
    options = _strings(entry.get("options"), f"{where}.options")
    kind = _str(entry.get("type"), f"{where}.type")
    is_bind = kind in ("bind", "none", "") and bool({"bind", "rbind"} & set(options)) \
        or kind == "bind"
    if not is_bind and kind not in MOUNT_TYPES:
        raise BundleError(f"{where}.type: {kind or 'no type'!r} is not supported (want one of "
                          f"{', '.join(MOUNT_TYPES)})")
    for key in ("uidMappings", "gidMappings"):
        if entry.get(key):
            raise BundleError(f"{where}.{key}: idmapped mounts are not supported")
    flags, propagation, recursive, data = MS(0), MS(0), [], []
    for option in options:
        if option in UNSUPPORTED_MOUNT_OPTIONS:
            raise BundleError(f"{where}.options: {option!r} is not supported")
        if option in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in PROPAGATION_FLAGS:
            propagation |= PROPAGATION_FLAGS[option]
        elif option in RECURSIVE_OPTIONS:
            recursive.append(option)
        else:
            data.append(option)  # the filesystem's own: mode=755, size=65536k, newinstance
    source = _str(entry.get("source"), f"{where}.source")
    if is_bind:
        if not source:
            raise BundleError(f"{where}.source is missing for a bind mount")
        kind, flags = "bind", flags | MS.BIND
        source = os.path.normpath(os.path.join(bundle, source))  # relative: to the bundle
    return OciMount(destination, kind, source, flags, propagation, recursive, ",".join(data))


def _device(entry: Any, where: str) -> dict[str, Any]:
    entry = _object(entry, where)
    path = _absolute_field(entry, "path", where)
    kind = _str(entry.get("type"), f"{where}.type")
    if kind not in ("c", "b", "u", "p"):
        raise BundleError(f"{where}.type: unknown device type {kind!r} (want c, b, u or p)")
    device: dict[str, Any] = {"path": path, "type": kind}
    for key in ("major", "minor"):
        number = _int(entry.get(key), f"{where}.{key}")
        if number is None and kind != "p":
            raise BundleError(f"{where}.{key} is missing")
        device[key] = number or 0
    for key in ("fileMode", "uid", "gid"):
        device[key] = _int(entry.get(key), f"{where}.{key}")
    return device


def _sysctl(sysctl: Mapping[str, Any], config: ContainerConfig) -> dict[str, str]:
    """Only namespaced sysctls, and only with their namespace: a ``net.*`` one without a
    network namespace of the container's own would reconfigure the host (runc's rule)."""
    for key, value in sysctl.items():
        where = f"linux.sysctl.{key}"
        if not isinstance(value, str):
            raise BundleError(f"{where} must be a string")
        if key in ("kernel.hostname", "kernel.domainname"):
            raise BundleError(f"{where}: set the hostname and domainname fields instead")
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if config.namespaces.ipc == "host":
                raise BundleError(f"{where} needs an ipc namespace of the container's own")
        elif key.startswith("net."):
            if config.network.name == "host":
                raise BundleError(f"{where} needs a network namespace of the container's own")
        else:
            raise BundleError(f"{where} is not namespaced: not supported")
    return dict(sysctl)


def _seccomp(value: Any, config: ContainerConfig, ignored: list[str]) -> dict[str, Any] | None:
    """The spec's profile is a subset of Docker's, which :mod:`minidocker.seccomp` compiles."""
    if value is None:
        config.security.security_opt.append("seccomp=unconfined")  # the spec's default
        return None
    profile = _object(value, "linux.seccomp")
    _check_keys(profile, "linux.seccomp", ignored)
    from minidocker.seccomp import SeccompError, check_profile

    try:
        check_profile(profile, "linux.seccomp")
    except SeccompError as exc:
        raise BundleError(str(exc).removeprefix("seccomp profile ")) from None
    return profile


def _hooks(hooks: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for name, entries in hooks.items():
        if name not in HOOKS:
            raise BundleError(f"hooks.{name}: unknown hook (want one of {', '.join(HOOKS)})")
        found[name] = []
        for i, hook in enumerate(_list(entries, f"hooks.{name}")):
            where = f"hooks.{name}[{i}]"
            hook = _object(hook, where)
            path = _absolute(_str(hook.get("path"), f"{where}.path"), f"{where}.path")
            timeout = _int(hook.get("timeout"), f"{where}.timeout")
            if timeout is not None and timeout <= 0:
                raise BundleError(f"{where}.timeout must be more than 0")
            found[name].append({"path": path, "args": _strings(hook.get("args"),
                                                                f"{where}.args"),
                                "env": _strings(hook.get("env"), f"{where}.env"),
                                "timeout": timeout})
    return found
