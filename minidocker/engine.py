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

import os
import sys

from minidocker import cgroups, state
from minidocker.errors import ImageNotFound, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from minidocker.config import ContainerConfig
    from minidocker.security import SecurityPlan
    from minidocker.spec import Spec


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
         say: Callable[[str], None] = _say, cid: str = "") -> Plan:
    """Decide everything about the container ``config`` asks for; create nothing.
    ``say`` gets each line meant for the user's terminal (a warning); ``cid``: the ID the
    caller chose (a client that must find the container again), else a new one."""
    from minidocker import imagecache, namespaces, spec

    layout = layout or state.Layout()
    limits = _check(config)
    try:
        image_id, image_config, lowers = imagecache.resolve(layout.root, config.image)
    except ImageNotFound as missing:  # as Docker: pull it, then resolve again
        from minidocker.registry.pull import pull_missing  # the HTTP library only now

        pull_missing(layout.root, config.image, missing, say)
        image_id, image_config, lowers = imagecache.resolve(layout.root, config.image)
    network, implied_hostname = _network_plan(config, layout.root, image_config, say)
    confinement = _security_plan(config, layout.root, say)
    parent = cgroups.check_parent(config.cgroup_parent) if config.cgroup_parent else ""
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
        stop_signal=config.stop_signal)
    return Plan(made, lowers, image_config)


def _check(config: ContainerConfig) -> cgroups.CgroupLimits:
    """The rules that hold whoever made the config; returns the limits, completed with
    Docker's defaults (a copy: the config stays as asked)."""
    if config.mounts:
        raise UsageError("mounts are not supported yet")
    if config.restart.name != "no" and config.auto_remove:
        raise UsageError("conflicting options: --restart and --rm")
    if config.stop_signal:
        from minidocker import lifecycle

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


def _security_plan(config: ContainerConfig, root: str,
                   say: Callable[[str], None]) -> SecurityPlan:
    from minidocker import security

    sec = config.security
    return security.plan(cap_add=sec.cap_add, cap_drop=sec.cap_drop,
                         cap_ambient=sec.cap_ambient, privileged=sec.privileged,
                         security_opt=sec.security_opt, ulimits=sec.ulimits,
                         device=sec.devices, userns=sec.userns,
                         cache_dir=os.path.join(root, "cache", "seccomp"),
                         warn=lambda text: say(f"minidocker: warning: {text}"),
                         subids=sec.subids, say=lambda text: say(f"minidocker: {text}"))


def run(config: ContainerConfig, layout: state.Layout | None = None) -> int:
    """Run ``config``'s container in the foreground of this process; its exit code
    (``minidocker run`` without ``-d``). This process is the container's parent, so it must
    not be a threaded one (a Jupyter kernel): it unshares a PID namespace for its child."""
    from minidocker import container

    layout = layout or state.Layout()
    made = plan(config, layout)
    return container.run(made.spec, made.lowers, layout)
