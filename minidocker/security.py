"""What root in a container may still do: the security steps of a start, composed.

Like :mod:`minidocker.container`, this module holds no mechanism of its own: it decides a
:class:`SecurityPlan` from ``run``'s options (no root needed: a notebook can print one), and
applies it by calling the mechanism modules in an order that is itself the lesson:

======================= =========================================================================
step                    why here
======================= =========================================================================
``devices``             /dev holds only the allowed nodes, and is ``nodev`` (:mod:`.devices`)
``masks``               after pivot_root, when paths are final: Docker's masked and read-only
                        /proc paths, ``/`` remounted nodev (skipped under ``--privileged``)
``refuse runtime exe``  the command must not be minidocker's own interpreter (CVE-2019-5736)
``rlimits``             ``--ulimit``, inherited by everything the command starts
``apparmor``            ``exec <profile>``: the kernel switches profile at execve
``bounding``            needs CAP_SETPCAP, which the next steps take away
``keepcaps``            a non-root user keeps its permitted set across setresuid...
``user``                setgroups, setresgid, setresuid (:mod:`.users`)
``seccomp``             without no_new_privs a filter can only be installed with CAP_SYS_ADMIN:
                        so here, while we still have it (the profile allows what follows)
``capabilities``        capset: permitted, effective, inheritable; then the ambient set
``no_new_privs``        execve can never again grant privileges (setuid bits, file caps)
``seccomp``             with no_new_privs it needs no privilege, so it goes last of all
``execve``              (container.py) the command, confined
======================= =========================================================================

``minidocker exec`` must confine the process it starts the same way: join the namespaces,
then call :func:`apply` with the container's plan (``config.json`` records it; rebuild it with
:func:`from_record`).

``--privileged`` turns nearly all of it off, as in Docker: every capability, no seccomp, no
AppArmor, no masked paths, every host device. ``--userns private`` adds a user namespace
(:mod:`.userns`), which changes the first steps of the start itself.

Notebook: ``03_capabilities``; the escape suite (:mod:`minidocker.escapes`) attacks every step.
"""

from __future__ import annotations

import os

from minidocker import capabilities, devices, seccomp, syscalls, trace, users
from minidocker.errors import EXIT_CANNOT_INVOKE, ExecError, MinidockerError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from minidocker.rlimits import Ulimit
    from minidocker.spec import Spec
    from minidocker.userns import UsernsPlan

BINPRM_MAX_RECURSION = 4  # how many #! interpreters deep the kernel follows (fs/exec.c)


class SecurityPlan:
    """Everything decided about a container's confinement, before anything is created."""

    __slots__ = ("privileged", "granted", "ambient", "seccomp", "no_new_privs", "ulimits",
                 "devices", "apparmor", "userns", "options", "exact")

    def __init__(self, *, privileged: bool = False, granted: int = 0, ambient: int = 0,
                 seccomp: bytes | None = None, no_new_privs: bool = False,
                 ulimits: list[Ulimit] | None = None,
                 devices: list[devices.Device] | None = None, apparmor: str = "",
                 userns: UsernsPlan | None = None,
                 options: dict[str, Any] | None = None) -> None:
        self.privileged, self.granted, self.ambient = privileged, granted, ambient
        self.seccomp, self.no_new_privs = seccomp, no_new_privs
        self.ulimits, self.devices = ulimits or [], devices or []
        self.apparmor, self.userns, self.options = apparmor, userns, options or {}
        # The five sets given exactly (a bundle's process.capabilities), instead of the ones
        # sets_for derives from the grant and the user.
        self.exact: capabilities.CapSets | None = None

    def capabilities(self) -> list[str]:
        return capabilities.to_names(self.granted)

    def as_dict(self) -> dict[str, Any]:
        """What config.json records (Docker's HostConfig names), and ``inspect`` shows."""
        return {**self.options, "Capabilities": self.capabilities(),
                "AppArmorProfile": self.apparmor, "NoNewPrivileges": self.no_new_privs,
                "Seccomp": "unconfined" if self.seccomp is None else
                (self.options.get("SeccompProfile") or "default"),
                **({"UsernsMaps": self.userns.as_dict()} if self.userns else {})}

    def __repr__(self) -> str:
        return (f"SecurityPlan(privileged={self.privileged}, caps={self.capabilities()}, "
                f"ambient={capabilities.to_names(self.ambient)}, seccomp="
                f"{'off' if self.seccomp is None else f'{len(self.seccomp) // 8} insns'}, "
                f"no_new_privs={self.no_new_privs}, ulimits={self.ulimits}, "
                f"devices={self.devices}, apparmor={self.apparmor!r}, userns={self.userns})")


def parse_security_opts(opts: Sequence[str]) -> dict[str, Any]:
    """Docker's ``--security-opt`` values: ``no-new-privileges[=true|false]``,
    ``seccomp=unconfined|FILE``, ``apparmor=unconfined|PROFILE``, ``label=disable``
    (the older ``key:value`` spelling too)."""
    found: dict[str, Any] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep and ":" in opt:
            key, _, value = opt.partition(":")
        if key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise UsageError(f"invalid --security-opt {opt!r}: want true or false")
            found["no_new_privs"] = value != "false"
        elif key == "seccomp" and value:
            found["seccomp"] = value if value == "unconfined" else os.path.abspath(value)
        elif key == "apparmor" and value:
            found["apparmor"] = value
        elif key == "label" and value:
            from minidocker import lsm

            lsm.check_label(value)
        else:
            raise UsageError(f"invalid --security-opt: {opt!r} (want no-new-privileges, "
                             "seccomp=unconfined|FILE, apparmor=unconfined|PROFILE or "
                             "label=disable)")
    return found


def plan(*, cap_add: Sequence[str] = (), cap_drop: Sequence[str] = (),
         cap_ambient: Sequence[str] = (), privileged: bool = False,
         security_opt: Sequence[str] = (), ulimits: Sequence[str] = (),
         device: Sequence[str] = (), userns: str | None = None, cache_dir: str | None = None,
         warn: Callable[[str], None] | None = None,
         subids: Mapping[str, str] | None = None,
         say: Callable[[str], None] | None = None) -> SecurityPlan:
    """Decide the confinement from ``run``'s flags; every bad value fails here, exit 125.
    ``subids``: the caller's ``MINIDOCKER_SUBUID``/``_SUBGID``/``_USERNS_REMAP``, if set;
    ``say``: told what was set up on the way (a subordinate id range added)."""
    opts = parse_security_opts(security_opt)
    available = capabilities.own_available()
    granted = capabilities.grant(list(cap_add), list(cap_drop), privileged, available)
    ambient_names = [capabilities.normalize(n) for n in cap_ambient]
    if "ALL" in ambient_names:
        raise UsageError("--cap-ambient ALL: name each capability a non-root user should keep")
    ambient = capabilities.to_mask(ambient_names)
    capabilities.sets_for(granted, 1, ambient)  # an ambient cap outside the grant fails now
    limits: list[Ulimit] = []
    if ulimits:
        from minidocker import rlimits  # imported now, before fork: apply() runs after pivot

        limits = rlimits.plan(list(ulimits), available)
    extra = [devices.parse(d) for d in device]
    if userns not in (None, "", "host", "private"):
        raise UsageError(f"invalid --userns {userns!r}: want host or private")
    mapping = None
    if userns == "private":
        if privileged:
            raise UsageError("privileged mode is incompatible with user namespaces: run the "
                             "container with --userns host")
        from minidocker import userns as userns_mod

        userns_mod.check_kernel()
        subids = subids or {}
        mapping = userns_mod.plan(subids.get("MINIDOCKER_USERNS_REMAP"),
                                  subids.get("MINIDOCKER_SUBUID"),
                                  subids.get("MINIDOCKER_SUBGID"), say=say)
    option = opts.get("seccomp", "unconfined" if privileged else "")
    program = seccomp.program_for(option, set(capabilities.to_names(granted)), cache_dir, warn)
    profile = ""
    if "apparmor" in opts or os.path.exists("/sys/module/apparmor"):  # else: no AppArmor here
        from minidocker import lsm

        profile = lsm.profile_for(opts.get("apparmor"), privileged, lsm.status())
        if profile:
            lsm.ensure_loaded(profile)
    record = {"CapAdd": list(cap_add), "CapDrop": list(cap_drop),
              "CapAmbient": list(cap_ambient), "Privileged": privileged,
              "SecurityOpt": list(security_opt), "SeccompProfile": option,
              "Ulimits": [u.as_dict() for u in limits], "Devices": [d.as_dict() for d in extra],
              "UsernsMode": userns or ""}
    return SecurityPlan(privileged=privileged, granted=granted, ambient=ambient,
                        seccomp=program, no_new_privs=bool(opts.get("no_new_privs")),
                        ulimits=limits, devices=extra, apparmor=profile, userns=mapping,
                        options=record)


def from_record(record: Mapping[str, Any] | None, cache_dir: str | None = None) -> SecurityPlan:
    """Rebuild the plan from what config.json recorded (``start`` of a stopped container)."""
    record = record or {}
    return plan(cap_add=record.get("CapAdd") or (), cap_drop=record.get("CapDrop") or (),
                cap_ambient=record.get("CapAmbient") or (),
                privileged=bool(record.get("Privileged")),
                security_opt=record.get("SecurityOpt") or (),
                ulimits=[f"{u['Name']}={u['Soft']}:{u['Hard']}"
                         for u in record.get("Ulimits") or []],
                device=[f"{d['PathOnHost']}:{d['PathInContainer']}:{d['CgroupPermissions']}"
                        for d in record.get("Devices") or []],
                userns=record.get("UsernsMode") or None, cache_dir=cache_dir)


def cache_dir_for(cdir: str) -> str:
    """``<root>/containers/<id>`` -> ``<root>/cache/seccomp``."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(cdir))), "cache",
                        "seccomp")


def of(spec: Spec, cdir: str) -> SecurityPlan:
    """The spec's plan; Docker's defaults when the caller made the spec without one."""
    current = getattr(spec, "security", None)
    if current is None:
        current = plan(cache_dir=cache_dir_for(cdir))
        spec.security = current
    return current


# -- user namespaces: what changes in the start itself ----------------------------------------

def fork(spec: Spec, cgroup: Any) -> tuple[int, bool]:
    """fork(2), or with --userns private a clone into new user and PID namespaces at once;
    born in ``cgroup`` where the kernel can (see :meth:`minidocker.cgroups.Cgroup.fork_into`).
    Returns (pid, born in the cgroup)."""
    flags = 0
    if spec.security is not None and spec.security.userns is not None:
        flags = syscalls.CLONE.NEWUSER
        if "pid" in spec.namespaces:
            flags |= syscalls.CLONE.NEWPID
    return cgroup.fork_into(flags)


def userns_link(spec: Spec, cdir: str, lowers: list[str]
                ) -> tuple[list[Callable[[int], None]], socket.socket | None]:
    """The parent's part of a user-namespaced start: map the child's ids, build its idmapped
    root filesystem and send it over. Returns the host-side step, and the child's end of the
    socket the root filesystem travels on (the caller hands it to the child, and closes it
    after fork). Nothing without --userns private."""
    mapping = spec.security.userns if spec.security is not None else None
    if mapping is None:
        return [], None
    if spec.oci is not None:  # a bundle's: the child binds its own root; only the maps
        return [lambda pid: _map_bundle(pid, cdir, mapping)], None
    import socket

    from minidocker import graphdriver, userns

    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    driver = graphdriver.recorded(cdir)[0]

    def userns_step(pid: int) -> None:
        try:
            trace.step("userns", f"map the child's ids: uid {mapping.uid_map.line()}")
            userns.write_maps(pid, mapping)
            userns.chown_to_root([os.path.join(cdir, f) for f in ("hostname", "hosts",
                                                                  "resolv.conf")], mapping)
            trace.step("idmapped rootfs", "layers owned through the container's mapping")
            if driver == "vfs":
                fd = userns.rootfs_fd(os.path.join(cdir, "merged"), pid)
            else:
                fd = userns.overlay_fd(lowers, cdir, pid, mapping)
            # Docker's root:<remapped gid> 0710: the container's root may enter its directory
            # (for merged/ and the /etc files), no one else. After the overlay: through the
            # idmapped cdir that gid is unmapped, and would lock the mounter out.
            os.chown(cdir, -1, mapping.gid_map.outside)
            try:
                socket.send_fds(parent_end, [b"m"], [fd])
            finally:
                os.close(fd)
            if _binds(spec):  # -v, --mount: the child cannot reach them; made here, sent over
                from minidocker import container_mounts

                fds = container_mounts.detached_mounts(spec.mounts, pid)
                try:
                    socket.send_fds(parent_end, [b"v"], fds)
                finally:
                    for fd in fds:
                        os.close(fd)
        finally:
            parent_end.close()

    return [userns_step], child_end


def _map_bundle(pid: int, cdir: str, mapping: UsernsPlan) -> None:
    from minidocker import userns

    trace.step("userns", f"map the child's ids: uid {mapping.uid_map.line()}")
    userns.write_maps(pid, mapping)
    os.chown(cdir, -1, mapping.gid_map.outside)  # its root may enter it (0710), no one else


def enter_userns(spec: Spec, cdir: str) -> str:
    """In the child after the parent mapped it: become the namespace's root; returns the
    container directory to use from now on ("." : the host path to it may be closed to us)."""
    if spec.security is None or spec.security.userns is None:
        return cdir
    from minidocker import userns

    syscalls.chdir(cdir)  # while still host uid 0 (unmapped): we may cross 0700 directories
    userns.become_root()
    # Changing credentials made us non-dumpable, and a non-dumpable process's /proc files belong
    # to the host's root: we could no longer write our own /proc/self/comm (--init) or
    # attr/apparmor/current. No other process is in the container yet, and uid 100000 cannot write
    # the host's Python anyway, so being dumpable again gives nothing away.
    syscalls.prctl(syscalls.PR.SET_DUMPABLE, 1)
    return "."


def attach_userns_rootfs(spec: Spec, merged: str, link: socket.socket | None) -> bool:
    """Attach the root filesystem the parent built and sent over ``link`` (True), or leave it
    to the driver (False)."""
    if spec.security is None or spec.security.userns is None or link is None:
        return False
    import socket

    from minidocker import userns

    _, fds, _, _ = socket.recv_fds(link, 1, 1)
    if not _binds(spec):
        link.close()  # else kept for the mounts: see receive_userns_mounts
    if not fds:
        raise UsageError("the parent sent no root filesystem")
    userns.attach(fds[0], merged)
    return True


def _binds(spec: Spec) -> int:
    return sum(m["type"] == "bind" for m in spec.mounts)


def receive_userns_mounts(spec: Spec, link: socket.socket | None) -> list[int] | None:
    """The detached volumes and binds the parent made for a ``--userns private`` child (see
    :func:`minidocker.container_mounts.detached_mounts`), in mounting order; None without."""
    if spec.security is None or spec.security.userns is None or link is None:
        return None
    import socket

    count = _binds(spec)
    if not count:
        return []  # the link was closed after the root filesystem
    try:
        _, fds, _, _ = socket.recv_fds(link, 1, count)
    finally:
        link.close()
    if len(fds) != count:
        for fd in fds:
            os.close(fd)
        raise UsageError(f"the parent sent {len(fds)} of {count} mounts")
    return fds


# -- /dev and the masks -----------------------------------------------------------------------

def is_privileged(spec: Spec) -> bool:
    return spec.security is not None and spec.security.privileged


def make_devices(spec: Spec) -> bool:
    """Should rootfs mknod its default nodes? Not in a user namespace (it may not)."""
    return spec.security is None or spec.security.userns is None


def populate_dev(spec: Spec, merged: str, default_table: tuple[tuple[str, int, int], ...]) -> None:
    """/dev: the allowed nodes as bind mounts and the rest ``nodev``; or, privileged, all."""
    sec = spec.security
    assert sec is not None
    from minidocker.rootfs import secure_join

    dev = secure_join(merged, "/dev")
    trace.step("devices", "privileged: every host device" if sec.privileged else
               "the allowed nodes, bind-mounted; /dev nodev")
    if sec.privileged:
        devices.make_host_devices(dev, devices.host_devices() + sec.devices)
    else:
        devices.populate_dev(dev, devices.default_devices(default_table) + sec.devices,
                             from_host=sec.userns is not None)
    trace.step("rootfs", "continued: /etc files, pivot_root")


def after_pivot(spec: Spec) -> None:
    """Paths are final: mask what Docker masks, and make / nodev (none of it if privileged)."""
    sec = spec.security
    assert sec is not None
    if sec.privileged:
        trace.note("--privileged: no masked or read-only paths")
        return
    from minidocker import rootfs

    trace.step("masks", "Docker's masked and read-only paths; / nodev")
    rootfs.mask_paths()
    devices.seal_root()


def device_cgroup(spec: Spec, cgroup: Any) -> Any:
    """Device rules in a cgroup, for a ``--device`` narrowed to r or w (the mount table can
    only say all or nothing): a v1 ``devices`` group beside the container's others, or an eBPF
    program on its v2 group. Every other container is protected by the ``nodev`` mounts alone,
    so it needs no devices group (and none is left for teardown to find)."""
    sec = spec.security
    if spec.oci is not None and spec.oci.memory_v1:  # a bundle's v1-only memory knobs too
        from minidocker import ocicontainer

        ocicontainer.set_memory_v1(spec.oci, cgroup)
    oci_rules = spec.oci.device_rules if spec.oci is not None else []
    if oci_rules:
        rules = devices.rules_for([])  # runc's way too: its defaults, then the bundle's
        return _oci_device_rules(spec, cgroup, rules, oci_rules)
    if sec is None or sec.privileged or all(d.access == "rwm" for d in sec.devices):
        return cgroup
    rules = devices.rules_for(sec.devices)  # on failure the caller destroys the cgroup
    if cgroup.version == 2:
        trace.step("device filter", "an eBPF program on the container's cgroup")
        devices.attach_v2(cgroup.paths["unified"], rules)
    else:
        trace.step("devices cgroup", "deny all, then Docker's allow list and --device")
        if "devices" not in cgroup.paths:
            _add_v1_devices_group(cgroup, spec)
        devices.set_rules_v1(cgroup.paths["devices"], rules)
    return cgroup


def _oci_device_rules(spec: Spec, cgroup: Any, defaults: list[tuple[str, int, int, str]],
                      oci_rules: list[dict[str, Any]]) -> Any:
    """A bundle's ``linux.resources.devices`` in order, then the default allow list (as runc
    appends it): on v1 each rule is written to devices.allow or devices.deny as it comes;
    v2's eBPF program is an allow list, so there a deny rule may only be the first,
    deny-all one."""
    allowed = []
    for i, rule in enumerate(oci_rules):
        entry = (rule["type"], rule["major"], rule["minor"], rule["access"])
        if rule["allow"]:
            allowed.append(entry)
        elif cgroup.version == 2 and not (i == 0 and entry == ("a", -1, -1, "rwm")):
            raise UsageError(f"config.json: linux.resources.devices[{i}]: a deny rule other "
                             "than the first deny-all is not supported on cgroup v2")
    if cgroup.version == 2:
        trace.step("device filter", "an eBPF program: the bundle's rules and the defaults")
        devices.attach_v2(cgroup.paths["unified"], allowed + defaults)
        return cgroup
    if "devices" not in cgroup.paths:
        _add_v1_devices_group(cgroup, spec)
    trace.step("devices cgroup", "the bundle's rules in order, then the default allow list")
    group = cgroup.paths["devices"]
    for rule in oci_rules:
        syscalls.write_file(os.path.join(group, "devices.allow" if rule["allow"] else
                                         "devices.deny"), devices.rule_text(
            rule["type"], rule["major"], rule["minor"], rule["access"]))
    for entry in defaults:
        syscalls.write_file(os.path.join(group, "devices.allow"), devices.rule_text(*entry))
    return cgroup


def _add_v1_devices_group(cgroup: Any, spec: Spec) -> None:
    """cgroups.v1 makes no devices group: make one at the same place in that hierarchy."""
    from minidocker import cgroups

    hierarchy = os.path.join(cgroups.ROOT, "devices")
    if not os.path.isdir(hierarchy):
        raise UsageError("--device with r/w-only access needs the devices cgroup, and this "
                         "host has none mounted")
    parent = "" if spec.cgroup_parent == "/" else cgroups.check_parent(spec.cgroup_parent) \
        if spec.cgroup_parent else cgroups.DEFAULT_PARENT
    group = os.path.join(hierarchy, parent, spec.cgroup_name or spec.id)
    cgroups.make_parents(hierarchy, parent)
    syscalls.mkdir(group)
    cgroup.paths["devices"] = group


# -- the last steps before execve --------------------------------------------------------------

def refuse_runtime_binary(exe: str, argv0: str) -> None:
    """Refuse to exec minidocker's own interpreter as the command (CVE-2019-5736).

    Before execve, ``/proc/self/exe`` (and ``/proc/1/exe``) in the container is the *host's*
    Python. A command ``/proc/self/exe``, or a script whose ``#!`` names it, would have the
    kernel run the host's binary inside the container, where a process that outlives it can
    reopen it for writing and replace the host's Python. runc copies itself to a sealed memfd
    to close this; a Python runtime cannot re-exec itself that cheaply, so we compare device
    and inode with our own executable, following the ``#!`` chain as the kernel would.
    """
    own = os.stat("/proc/self/exe")
    path = exe
    for _ in range(BINPRM_MAX_RECURSION + 1):
        try:
            st = os.stat(path)
            with open(path, "rb") as f:
                head = f.read(256)
        except OSError:
            return  # execve will report it, with Docker's message
        if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):
            raise ExecError(f'exec: "{argv0}": refusing to run the container runtime\'s own '
                            "binary inside the container (CVE-2019-5736)", EXIT_CANNOT_INVOKE)
        if not head.startswith(b"#!"):
            return
        interpreter = head[2:].split(b"\n", 1)[0].strip().split(b" ", 1)[0]
        if not interpreter:
            return
        path = os.fsdecode(interpreter)


def apply(plan: SecurityPlan | None, user: users.ExecUser, exe: str, argv0: str = "") -> None:
    """Confine this process and switch to ``user``: the steps just before execve, in order
    (see the module's table). ``exec`` calls this too, in the process it starts."""
    if plan is None:  # never "no plan, so no confinement"
        raise MinidockerError("no security plan: refusing to start an unconfined process")
    refuse_runtime_binary(exe, argv0 or exe)
    trace.step("security", "rlimits, capabilities, seccomp" +
               (", no_new_privs" if plan.no_new_privs else ""))
    if plan.ulimits:
        from minidocker import rlimits  # already imported by plan(), before pivot_root

        rlimits.apply(plan.ulimits)
    if plan.apparmor:
        from minidocker import lsm

        lsm.change_profile(plan.apparmor)  # now, so that exec keeps the parent-death signal
    sets = plan.exact or capabilities.sets_for(plan.granted, user.uid, plan.ambient)
    capabilities.drop_bounding(sets.bounding)
    if user.uid != 0:
        capabilities.keep_caps(True)
    users.become(user)
    if plan.seccomp is not None and not plan.no_new_privs:
        if user.uid != 0:
            capabilities.raise_effective()  # setresuid cleared it; seccomp needs CAP_SYS_ADMIN
        seccomp.load(plan.seccomp)
    capabilities.apply(sets)
    if user.uid != 0:
        capabilities.keep_caps(False)
    if plan.no_new_privs:
        syscalls.prctl(syscalls.PR.SET_NO_NEW_PRIVS, 1)
        if plan.seccomp is not None:
            seccomp.load(plan.seccomp)


def confine_init(plan: SecurityPlan | None) -> None:
    """``--init``'s PID 1 (a copy of minidocker that never execs) is confined as root would be,
    and made non-dumpable: its /proc/1/exe is the host's Python, and only a process with
    CAP_SYS_PTRACE may open a non-dumpable process's /proc files. (In a user namespace it stays
    dumpable: its /proc files would then belong to the host's root, and the host's Python is
    out of the container root's reach anyway.)"""
    if plan is None:
        raise MinidockerError("no security plan: refusing to start an unconfined process")
    if plan.userns is None:
        syscalls.prctl(syscalls.PR.SET_DUMPABLE, 0)
    if plan.seccomp is not None and not plan.no_new_privs:
        seccomp.load(plan.seccomp)
    sets = capabilities.sets_for(plan.granted, 0, 0)
    capabilities.drop_bounding(sets.bounding)
    capabilities.apply(sets)
    if plan.no_new_privs:
        syscalls.prctl(syscalls.PR.SET_NO_NEW_PRIVS, 1)
        if plan.seccomp is not None:
            seccomp.load(plan.seccomp)
