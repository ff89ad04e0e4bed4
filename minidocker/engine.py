"""The engine: a :class:`~minidocker.config.ContainerConfig` in, a container out.

Every face (the command line, the supervisor, a notebook) hands the engine a config and
nothing else. The engine decides what the config means on this host, once, in
:func:`plan`:

1. ``check``     what no flag parser caught: the limits against each other and the host's CPUs,
                 the cgroup parent, the name, ``--restart`` with ``--rm``
2. ``image``     resolve the reference to an image ID, its config and its layers
3. ``network``   the network plan (which network, addresses, ports, DNS)
4. ``security``  the confinement: capabilities, seccomp, AppArmor, devices, user namespace
5. ``spec``      an ID, a name, the image's config merged with the process asked for

The result, a :class:`~minidocker.spec.Spec`, is what is recorded (``config.json``) and what
the start sequence (:mod:`minidocker.container`) runs. Nothing is created before the plan is
complete, so bad input never changes stored state.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from minidocker import cgroups, container, lifecycle, state
from minidocker.errors import ImageNotFound, MinidockerError, UsageError
from minidocker.lifecycle import LifecycleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from minidocker.config import ContainerConfig, Process
    from minidocker.enter import ExecPlan
    from minidocker.runtimespec import OciSpec
    from minidocker.security import SecurityPlan
    from minidocker.spec import Spec
    from minidocker.userns import UsernsPlan

    Target = str | lifecycle.Container  # a name, an ID or a unique prefix; or the record

DEFAULT_STOP_TIMEOUT = 10  # seconds, as Docker's
RECORD_WAIT = 5.0  # seconds to wait for a container's parent to record its exit


class Plan:
    """What :func:`plan` decided: the spec, the image's layers (lowest last) and its config."""

    __slots__ = ("spec", "lowers", "image_config")

    def __init__(self, spec: Spec, lowers: list[str], image_config: dict[str, Any]) -> None:
        self.spec = spec
        self.lowers = lowers
        self.image_config = image_config

    def hostconfig(self, config: ContainerConfig) -> dict[str, Any]:
        """What hostconfig.json records for a supervised container."""
        image = self.image_config
        return {"RestartPolicy": config.restart.as_docker(), "AutoRemove": config.auto_remove,
                "StopSignal": self.spec.stop_signal,
                "Cmd": image.get("Cmd"), "Entrypoint": image.get("Entrypoint")}


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def plan(config: ContainerConfig, layout: state.Layout | None = None,
         say: Callable[[str], None] = _say, cid: str = "", oci: OciSpec | None = None) -> Plan:
    """Decide everything about the container ``config`` asks for; create nothing.
    ``say`` gets each line meant for the user's terminal (a warning); ``cid``: the ID the
    caller chose (a client that must find the container again), else a new one. ``oci``: what
    a bundle says beyond the config (``minidocker-runtime``): its root filesystem replaces the
    image (see :mod:`minidocker.ocicontainer`)."""
    from minidocker import namespaces, spec

    layout = layout or state.Layout()
    limits = _check(config)
    if oci is not None:
        from minidocker import ocicontainer

        ocicontainer.check(oci)
        image_config: dict[str, Any] = {}
        lowers: list[str] = []
        image_id = ""
    else:
        image_id, image_config, lowers = resolve_image(config.image, layout, say)
    network, implied_hostname = _network_plan(config, layout.root, image_config, say)
    confinement = _security_plan(config, layout.root, say, oci)
    cgroup_parent, cgroup_name = config.cgroup_parent, ""
    if oci is not None and oci.cgroups_path:
        cgroup_parent, cgroup_name = ocicontainer.cgroup_place(oci)
    parent = cgroups.check_parent(cgroup_parent) if cgroup_parent not in ("", "/") \
        else cgroup_parent  # "/": a bundle's group right under the hierarchy's root
    for warning in cgroups.discard_unsupported(limits, parent):  # once the rest is valid
        say(f"WARNING: {warning}")  # inspect then shows what runs: a discarded weight is 0
    ns = config.namespaces
    private = {"pid": ns.pid, "uts": ns.uts, "ipc": ns.ipc, "cgroup": ns.cgroup}
    kinds = [k for k in namespaces.DEFAULT_KINDS if private.get(k, "private") == "private"
             and not (k == "net" and network["mode"] in ("host", "container"))]
    if config.security.userns == "private":
        kinds.append("user")
    process = config.process
    if cid and (len(cid) != 64 or not all(c in "0123456789abcdef" for c in cid)):
        raise UsageError(f"invalid container ID {cid!r}: 64 lowercase hex digits")
    if cid and os.path.lexists(layout.container(cid)):
        raise UsageError(f"container ID {cid[:12]} is already in use")
    cid = cid or state.new_id()
    mounted = _plan_mounts(config, layout, image_config, confinement.userns, say)
    made = spec.make_spec(
        cid=cid,
        name=state.validate_name(config.name) if config.name
        else state.random_name(layout.names),
        image_ref=config.image, image_id=image_id, image_config=image_config,
        args=process.args, entrypoint=process.entrypoint, env=process.env, host_env={},
        workdir=process.workdir, user=process.user,
        hostname=config.hostname if config.hostname is not None else implied_hostname,
        tty=process.tty, interactive=process.interactive, init=process.init,
        remove=config.auto_remove, namespaces=kinds, resources=limits.as_dict(),
        cgroup_parent=parent, network=network, security=confinement,
        stop_signal=config.stop_signal, mounts=mounted, read_only=config.read_only)
    if oci is not None:  # the bundle's environment and hostname exactly: nothing added
        made.env = dict(item.partition("=")[::2] for item in process.env)
        made.hostname = config.hostname or ""
        made.oci, made.cgroup_name = oci, cgroup_name
    if config.healthcheck is not None or image_config.get("Healthcheck"):
        from minidocker import health

        asked = config.healthcheck.as_docker() if config.healthcheck is not None else None
        made.healthcheck = health.merge(asked, image_config.get("Healthcheck"))
        made.shell = list(image_config.get("Shell") or []) or None  # CMD-SHELL's
    return Plan(made, lowers, image_config)


def _plan_mounts(config: ContainerConfig, layout: state.Layout, image_config: dict[str, Any],
                 mapping: UsernsPlan | None, say: Callable[[str], None]
                 ) -> list[dict[str, Any]]:
    """The mounts recorded in the spec: ``--volumes-from``'s, then the container's own (which
    win at a destination both name), then an anonymous volume for each image ``VOLUME`` left."""
    image_volumes = list(image_config.get("Volumes") or {})
    if not (config.mounts or config.volumes_from or image_volumes):
        return []  # nothing to decide: no import of the mount code
    from minidocker import container_mounts

    def recorded_mounts(ref: str) -> list[dict[str, Any]]:
        try:
            return list(lifecycle.Container(layout, ref).config.get("mounts") or [])
        except LifecycleError as exc:
            raise UsageError(f"--volumes-from: {exc}") from None

    inherited = container_mounts.volumes_from(config.volumes_from, recorded_mounts)
    planned = container_mounts.plan_mounts(layout.root, config.mounts, image_volumes,
                                           inherited)
    if mapping is not None:
        for note in container_mounts.plan_userns(layout.root, planned, mapping.uid_map.outside,
                                                 mapping.gid_map.outside):
            say(f"minidocker: {note}")
    return planned


def resolve_image(ref: str, layout: state.Layout,
                  say: Callable[[str], None] = _say) -> tuple[str, dict[str, Any], list[str]]:
    """``(image ID, its config's config object, its layer dirs)``; a missing image is pulled
    first, as Docker does (``run``, ``create``, and the builder's FROM all come here)."""
    from minidocker import imagecache

    try:
        return imagecache.resolve(layout.root, ref)
    except ImageNotFound as missing:  # as Docker: pull it, then resolve again
        from minidocker.registry.pull import pull_missing  # the HTTP library only now

        pull_missing(layout.root, ref, missing, say)
        return imagecache.resolve(layout.root, ref)


def _check(config: ContainerConfig) -> cgroups.CgroupLimits:
    """The rules that hold whoever made the config; returns the limits, completed with
    Docker's defaults (a copy: the config stays as asked)."""
    if config.restart.name != "no" and config.auto_remove:
        raise UsageError("conflicting options: --restart and --rm")
    if config.healthcheck is not None:
        from minidocker import health

        health.validate(config.healthcheck.as_docker())
    if config.stop_signal:
        try:
            lifecycle.parse_signal(config.stop_signal)
        except lifecycle.LifecycleError as exc:
            raise UsageError(str(exc)) from None
    return cgroups.validate(cgroups.CgroupLimits.from_dict(config.resources.as_dict()))


def _network_plan(config: ContainerConfig, root: str, image_config: dict[str, Any],
                  say: Callable[[str], None]) -> tuple[dict[str, Any], str | None]:
    """The network plan, and the hostname its mode implies (the host's, or the joined
    container's) when none is given."""
    net = config.network
    if net.name == "none" and net.is_plain():
        return {"mode": "none"}, None  # nothing to decide: no import of the networking code
    from minidocker import networking

    made = networking.make_plan(
        root, network_name=net.name, publish=net.ports, publish_all=net.publish_all,
        expose=net.expose, ip=net.ip, aliases=net.aliases, dns=net.dns,
        dns_search=net.dns_search, dns_options=net.dns_options, add_hosts=net.add_hosts,
        hostname_given=config.hostname is not None, image_config=image_config, say=say)
    implied = networking.hostname_for(made, root) if config.namespaces.uts != "host" else None
    return made, implied


def _security_plan(config: ContainerConfig, root: str, say: Callable[[str], None],
                   oci: OciSpec | None = None) -> SecurityPlan:
    from minidocker import security

    sec = config.security
    opts = list(sec.security_opt)
    if oci is not None:  # the bundle's profile is compiled below, never Docker's default
        opts = [o for o in opts if not o.startswith("seccomp")] + ["seccomp=unconfined"]
    made = security.plan(cap_add=sec.cap_add, cap_drop=sec.cap_drop,
                         cap_ambient=sec.cap_ambient, privileged=sec.privileged,
                         security_opt=opts, ulimits=sec.ulimits,  # a bundle maps its own:
                         device=sec.devices, userns=sec.userns if oci is None else None,
                         cache_dir=os.path.join(root, "cache", "seccomp"),
                         warn=lambda text: say(f"minidocker: warning: {text}"),
                         subids=sec.subids, say=lambda text: say(f"minidocker: {text}"))
    if oci is not None:
        from minidocker import capabilities, ocicontainer

        if oci.uid_mappings:
            made.userns = ocicontainer.userns_plan(oci)
        sets = {name: capabilities.to_mask(oci.capabilities.get(name, []))
                for name in ("bounding", "permitted", "effective", "inheritable", "ambient")}
        # The kernel raises an ambient capability only if it is permitted and inheritable;
        # runc drops the others (with a warning), and so do we.
        sets["ambient"] &= sets["permitted"] & sets["inheritable"]
        made.exact = capabilities.CapSets(**sets)
        if oci.seccomp is not None:
            from minidocker import seccomp

            made.seccomp = seccomp.compile_profile(
                oci.seccomp, set(capabilities.to_names(sets["bounding"])),
                where="linux.seccomp").program
    return made


def run(config: ContainerConfig, layout: state.Layout | None = None, *, cid: str = "",
        stdio: tuple[int, int, int] | None = None, say: Callable[[str], None] = _say,
        made: Plan | None = None) -> int:
    """Run ``config``'s container in the foreground of this process; its exit code
    (``minidocker run`` without ``-d``). This process is the container's parent, so it must
    not be a threaded one (a Jupyter kernel): it unshares a PID namespace for its child.
    ``cid``: the ID to give it (the builder finds its files by it afterwards); ``stdio``: the
    fds that become its 0, 1 and 2 (None: ours); ``made``: :func:`plan`'s, if made already."""
    layout = layout or state.Layout()
    made = made or plan(config, layout, say, cid)
    return container.run(made.spec, made.lowers, layout, stdio=stdio)


def create(config: ContainerConfig, layout: state.Layout | None = None,
           say: Callable[[str], None] = _say, cid: str = "") -> str:
    """``create``: plan the container, then make its directory, name and records; start
    nothing (the supervisor starts it: :meth:`minidocker.supervisor.Supervisor.start`)."""
    layout = layout or state.Layout()
    made = plan(config, layout, say, cid)
    return make(made, made.hostconfig(config), layout)


def create_held(config: ContainerConfig, oci: OciSpec, *, cid: str,
                layout: state.Layout, stdio: tuple[int, int, int] | None = None
                ) -> container.Started:
    """``minidocker-runtime create``: plan a bundle's container, make it, and start it up to
    just before execve, where it waits for :func:`release` (see :mod:`minidocker.ocicontainer`).
    Its process outlives this one (a runtime's ``create`` returns), so it is not tied to it.
    On failure nothing is left: the start undoes itself, then the directory goes."""
    made = plan(config, layout, _say, cid, oci)
    spec = made.spec
    cid = make(made, {}, layout, starting=True)
    steps = []
    if any(oci.hooks.get(name) for name in ("prestart", "createRuntime")):
        from minidocker.ocihooks import RuntimeHooks  # run when the child asks: ?hooks

        steps.append(RuntimeHooks(oci))
    try:
        return container.start(spec, [], layout.container(cid), stdio=stdio, tied=False,
                               host_steps=steps)
    except BaseException:
        container.teardown(layout, cid, spec.name)
        raise


def release(target: Target, pidfd: int | None = None) -> None:
    """``minidocker-runtime start``: let the held process go on to its execve. ``pidfd``: the
    caller's own for it (``run`` holds one from the start), else one is opened from its state.
    """
    from minidocker import ocicontainer

    c = _container(target)
    if pidfd is not None:
        ocicontainer.release(c.dir, pidfd)
        return
    pidfd = c.pidfd()
    if pidfd is None:
        raise LifecycleError(f"container {c.id[:12]} is not running")
    try:
        ocicontainer.release(c.dir, pidfd)
    finally:
        os.close(pidfd)


def make(made: Plan, hostconfig: dict[str, Any], layout: state.Layout,
         starting: bool = False) -> str:
    """What :func:`create` creates for a plan: the directory (:func:`container.prepare`), the
    name, and the records, which ``starting`` leaves to the start (it writes them while the
    container's process sets itself up: they are not needed before). Undone if it fails."""
    spec = made.spec
    if spec.oci is not None:
        from minidocker import ocicontainer

        cdir = ocicontainer.prepare(spec, layout)
    else:
        cdir = container.prepare(spec, layout, made.lowers)
    claimed = False
    try:
        layout.claim_name(spec.name, spec.id)
        claimed = True
        if not starting:
            lifecycle.write(cdir, "config", spec.as_dict())
            lifecycle.write(cdir, "hostconfig", {**hostconfig, "LowerDirs": made.lowers})
            lifecycle.write(cdir, "state", {"Status": "created", "Supervised": True,
                                            "Created": lifecycle.now(), "RestartCount": 0})
            if spec.mounts:  # a created container holds its volumes, as in Docker
                from minidocker import container_mounts

                container_mounts.hold_volumes(layout.root, spec.id, spec.mounts)
    except BaseException:
        container.teardown(layout, spec.id, spec.name if claimed else "")
        raise
    return spec.id


# -- the operations on a container that exists ------------------------------------------------

def _container(target: Target, layout: state.Layout | None = None) -> lifecycle.Container:
    if isinstance(target, lifecycle.Container):
        return target
    return lifecycle.Container(layout or state.Layout(), target)


def _wait_pidfd(pidfd: int, timeout: float | None) -> bool:
    """True once the process behind ``pidfd`` has exited (within ``timeout`` seconds)."""
    import select

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def wait_recorded(c: lifecycle.Container, pid: int, timeout: float = RECORD_WAIT) -> None:
    """After ``pid`` ended: wait until its parent (the supervisor, or the foreground ``run``)
    has written how, so the next command shows it. Gives up after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c.reload()
        except MinidockerError:
            return
        if c.state.get("Pid") != pid or c.state.get("Status") not in lifecycle.LIVE:
            return
        time.sleep(0.01)


def mark_stopped(c: lifecycle.Container) -> None:
    """Record that a person stopped it, so no restart policy starts it again (Docker)."""
    lifecycle.update_state(c.dir, ManuallyStopped=True)
    c.reload()


def stop(target: Target, timeout: float | None = None, sig: int | None = None) -> None:
    """``stop``: the stop signal, ``timeout`` seconds, then SIGKILL. A stopped container is
    left alone (as Docker does: not an error, and nothing is written)."""
    c = _container(target)
    status = c.status()
    if status == "restarting":
        mark_stopped(c)  # the supervisor's restart timer sees it and gives up
        return
    if status not in ("running", "paused"):
        return
    pidfd = c.pidfd()
    if pidfd is None:
        return
    pid = int(c.state["Pid"])
    mark_stopped(c)
    try:
        if status == "paused":
            _thaw(c)
        sig = c.stop_signal() if sig is None else sig
        timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, sig)
        if timeout < 0:  # -t -1: wait as long as it takes
            _wait_pidfd(pidfd, None)
        elif not _wait_pidfd(pidfd, timeout):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            _wait_pidfd(pidfd, None)
    finally:
        os.close(pidfd)
    wait_recorded(c, pid)


def _thaw(c: lifecycle.Container) -> None:
    """A frozen container cannot act on a signal: thaw it first (its cgroup's freezer)."""
    record = c.state.get("Cgroup")
    if isinstance(record, dict):
        cgroups.Cgroup.from_dict(record).thaw()


def kill(target: Target, sig: int, recorded: bool = True) -> None:
    """``kill``: send ``sig``; with SIGKILL, return once it is gone and (``recorded``: when its
    parent records exits, which a bundle's container has not) its exit recorded."""
    c = _container(target)
    if c.status() not in ("running", "paused"):
        raise LifecycleError(f"cannot kill container: {c.ref}: container {c.id[:12]} is not "
                             "running")
    pidfd = c.pidfd()
    if pidfd is None:
        raise LifecycleError(f"cannot kill container: {c.ref}: container {c.id[:12]} is not "
                             "running")
    pid = int(c.state["Pid"])
    try:
        if sig in (signal.SIGKILL, c.stop_signal()):
            mark_stopped(c)
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, sig)
        if sig == signal.SIGKILL:  # Docker's kill returns once a SIGKILLed container is gone
            _wait_pidfd(pidfd, RECORD_WAIT)
            if recorded:
                wait_recorded(c, pid)
    finally:
        os.close(pidfd)


def wait(target: Target) -> int:
    """``wait``: block until it stops; its exit code."""
    c = _container(target)
    while True:
        status = c.status()
        if status not in ("running", "paused"):
            return lifecycle.exit_code(c.state)
        pidfd = c.pidfd()
        if pidfd is None:
            c.reload()
            continue
        pid = int(c.state["Pid"])
        try:
            _wait_pidfd(pidfd, None)
        finally:
            os.close(pidfd)
        wait_recorded(c, pid)
        return lifecycle.exit_code(c.state)


def remove(target: Target, force: bool = False, volumes: bool = False) -> None:
    """``rm``: refuse a running container without ``force``; with it, kill it first. The
    check and the removal happen under the container's lock, so no start slips between.
    ``volumes`` (``rm -v``): its anonymous volumes go too."""
    c = _container(target)
    with lifecycle.locked(c.dir):
        c.reload()
        status = c.status()
        if status in ("running", "paused", "restarting") and not force:
            what = {"running": "container is running", "paused": "container is paused",
                    "restarting": "container is restarting"}[status]
            raise LifecycleError(f'cannot remove container "/{c.name}": {what}: stop the '
                                 "container before removing or force remove")
        pid = int(c.state.get("Pid") or 0) if status in ("running", "paused") else 0
        if status in ("running", "paused", "restarting"):
            lifecycle.update_state(c.dir, ManuallyStopped=True)
        container.teardown(c.layout, c.id, c.name, pid=pid,
                           start_time=c.state.get("StartTime"), volumes=volumes)


def update(target: Target, limits: cgroups.CgroupLimits) -> None:
    """``update``: new limits on the running container's cgroup (only the ones given)."""
    c = _container(target)
    cgroup = c.cgroup() if c.status() in ("running", "paused") else None
    if cgroup is None:
        raise LifecycleError(f"container {c.id[:12]} is not running")
    cgroup.set_limits(cgroups.validate(limits, defaults=False))


def check_exec(target: Target) -> lifecycle.Container:
    """The container ``exec`` may enter: running, not paused."""
    c = _container(target)
    if c.status() == "paused":
        raise LifecycleError(f"container {c.id} is paused, unpause the container before exec")
    if c.status() != "running":
        raise LifecycleError(f"container {c.id} is not running")
    return c


def exec(target: Target, process: Process, env_files: Sequence[str] = (),
         detach: bool = False, started: Callable[[int], None] | None = None) -> int:
    """``exec``: run ``process`` in the running container's namespaces, cgroup and
    confinement (:mod:`minidocker.enter`); its exit code (0 once started, with ``detach``).
    ``started`` is told its PID once it runs (the supervisor's health checks time it)."""
    from minidocker import enter

    c = check_exec(target)
    plan = enter.make_plan(c.config, process.args, env=process.env, env_files=list(env_files),
                           user=process.user, workdir=process.workdir, tty=process.tty,
                           interactive=process.interactive, detach=detach, cdir=c.dir)
    return _enter(c, plan, started)


def exec_bundle_process(target: Target, config: ContainerConfig, oci: OciSpec, *,
                        detach: bool = False, console_socket: str = "",
                        started: Callable[[int], None] | None = None) -> int:
    """``minidocker-runtime exec``: a bundle's ``process`` (in ``config`` and ``oci``) in the
    running container, its args, env, user, cwd, capabilities, rlimits and seccomp and nothing
    of the container's; with ``detach`` it keeps the caller's stdio and returns once it runs."""
    from minidocker import enter

    c = check_exec(target)
    process = config.process
    plan = enter.ExecPlan(list(process.args), dict(e.partition("=")[::2] for e in process.env),
                          process.user or "0", process.workdir or "/", process.tty, True,
                          detach, _security_plan(config, c.layout.root, _say, oci))
    plan.keep_stdio, plan.console_socket = True, console_socket
    return _enter(c, plan, started)


def _enter(c: lifecycle.Container, plan: ExecPlan, started: Callable[[int], None] | None) -> int:
    """Run ``plan`` in the running container ``c``, pinned by its pidfd while we enter it."""
    from minidocker import enter

    pidfd = c.pidfd()
    if pidfd is None:
        raise LifecycleError(f"container {c.id} is not running")
    try:
        return enter.exec_in(int(c.state["Pid"]), plan, c.cgroup(), started)
    finally:
        os.close(pidfd)


def reconcile(layout: state.Layout) -> list[str]:
    """Make the records agree with the kernel; what was fixed, one line each.

    - a record that says running, but whose process is gone (a killed ``run``, a crashed
      supervisor, a reboot), is marked exited with exit code 255;
    - removals that died half-way (``.<id>.removing``) are finished;
    - a name that points at no container is released;
    - temporary files of writers that died mid-write are deleted.
    """
    fixed = []
    for cid, record in lifecycle.iter_records(layout):
        cdir = layout.container(cid)
        if record.get("Status") in lifecycle.LIVE and not lifecycle.is_running(record):
            try:
                with lifecycle.locked(cdir):
                    now = lifecycle.read(cdir, "state", {})
                    if now.get("Status") in lifecycle.LIVE and not lifecycle.is_running(now):
                        lifecycle.write(cdir, "state", {**now, **lifecycle.unseen_end(now)})
                        fixed.append(f"{cid[:12]}: recorded as running, but PID "
                                     f"{now.get('Pid')} is gone: now exited (255)")
            except MinidockerError:
                continue
        try:
            leftovers = [n for n in os.listdir(cdir) if ".tmp" in n]
        except FileNotFoundError:
            continue
        for name in leftovers:
            pid = name.rsplit(".tmp", 1)[1]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                os.unlink(os.path.join(cdir, name))
                fixed.append(f"{cid[:12]}: removed {name}, left by a writer that died")
    try:
        entries = os.listdir(layout.containers)
    except FileNotFoundError:
        entries = []
    for name in entries:
        if name.startswith(".") and name.endswith(".removing"):
            container.teardown(layout, name[1:-len(".removing")])
            fixed.append(f"{name[1:13]}: finished a removal that had died half-way")
    try:
        links = os.listdir(layout.names)
    except FileNotFoundError:
        links = []
    for link in links:
        try:
            owner = os.readlink(os.path.join(layout.names, link))
        except OSError:
            continue
        if not os.path.isdir(layout.container(owner)):
            layout.release_name(link, owner)
            fixed.append(f"name {link}: its container {owner[:12]} is gone: released")
    return fixed
