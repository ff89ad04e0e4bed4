"""The container config: what a caller asks of the engine, as one typed value.

Every face of minidocker translates into this and nothing else: the command line turns
``run``'s flags into a :class:`ContainerConfig`
(:func:`minidocker.commands.run.config_from_flags`, a pure function), the supervisor receives
one over its socket (``to_dict``/``from_dict``: plain JSON), a notebook writes one by hand::

    from minidocker import config, engine
    cfg = config.ContainerConfig(image="busybox",
                                 process=config.Process(args=["echo", "hi"]),
                                 auto_remove=True)
    engine.run(cfg)

It holds what the caller *asked*, not what was decided: the image is a reference, not yet
resolved; ``env`` is the caller's ``NAME=value`` list, not yet merged with the image's. The
engine decides (:func:`minidocker.engine.plan`: the image's config merged in, an ID, a name,
the network and security plans) and records the decision, a :class:`minidocker.spec.Spec`.
Docker draws the same line between the ``container.Config``/``HostConfig`` a client posts and
what the daemon makes of them.

Why not :mod:`dataclasses`: importing it costs ``run`` ~7 ms and 18 modules (``inspect``,
``ast``, ``dis``...), a sixth of a start. These are small classes of the same shape instead:
keyword fields with defaults, ``==``, a readable ``repr``, ``to_dict``/``from_dict``.
"""

from __future__ import annotations

from minidocker.cgroups import CgroupLimits as Resources  # the limits: one class, not two
from minidocker.mounts import Mount  # what -v, --mount and --tmpfs ask for: the mechanism's type
from minidocker.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from minidocker.ports import PortMapping

__all__ = ["ContainerConfig", "Process", "Namespaces", "Resources", "NetworkConfig", "Mount",
           "Security", "RestartPolicy", "Healthcheck"]


class Process(Record):
    """What runs: ``args`` after the image (they replace its Cmd), ``entrypoint`` (None: the
    image's; "": none), ``env`` as ``NAME=value`` lines laid over the image's Env, ``user``
    and ``workdir`` (None: the image's)."""

    __slots__ = ("args", "entrypoint", "env", "user", "workdir", "tty", "interactive", "init")

    def __init__(self, args: Sequence[str] = (), entrypoint: str | None = None,
                 env: Sequence[str] = (), user: str | None = None, workdir: str | None = None,
                 tty: bool = False, interactive: bool = False, init: bool = False) -> None:
        self.args = list(args)
        self.entrypoint = entrypoint
        self.env = list(env)
        self.user = user
        self.workdir = workdir
        self.tty = tty
        self.interactive = interactive
        self.init = init  # a small PID 1 that forwards signals and reaps (--init)


class Namespaces(Record):
    """``private`` (a namespace of its own, the default) or ``host`` (share the host's), per
    kind; the network's is chosen by :class:`NetworkConfig`, the user's by :class:`Security`."""

    __slots__ = ("pid", "uts", "ipc", "cgroup")

    def __init__(self, pid: str = "private", uts: str = "private", ipc: str = "private",
                 cgroup: str = "private") -> None:
        self.pid = pid
        self.uts = uts
        self.ipc = ipc
        self.cgroup = cgroup


class NetworkConfig(Record):
    """Which network (None: the default, ``$MINIDOCKER_DEFAULT_NETWORK`` or bridge), and what
    to publish and resolve on it. ``expose`` holds ``port/proto`` keys."""

    __slots__ = ("name", "ports", "publish_all", "expose", "ip", "aliases", "dns",
                 "dns_search", "dns_options", "add_hosts")

    def __init__(self, name: str | None = None, ports: Sequence[PortMapping] = (),
                 publish_all: bool = False, expose: Sequence[str] = (), ip: str | None = None,
                 aliases: Sequence[str] = (), dns: Sequence[str] = (),
                 dns_search: Sequence[str] = (), dns_options: Sequence[str] = (),
                 add_hosts: Sequence[str] = ()) -> None:
        self.name = name
        self.ports = list(ports)
        self.publish_all = publish_all
        self.expose = list(expose)
        self.ip = ip
        self.aliases = list(aliases)
        self.dns = list(dns)
        self.dns_search = list(dns_search)
        self.dns_options = list(dns_options)
        self.add_hosts = list(add_hosts)  # "host:ip" as --add-host takes it

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> NetworkConfig:
        from minidocker.ports import PortMapping  # only now: most containers publish nothing

        config = super().from_dict({k: v for k, v in record.items() if k != "ports"})
        config.ports = [PortMapping.from_dict(p) for p in record.get("ports") or ()]
        return config

    def is_plain(self) -> bool:
        """Nothing asked but the network's name: no networking code needed for ``none``."""
        return self == NetworkConfig(self.name)


class Security(Record):
    """The confinement asked for, in ``run``'s words (see :func:`minidocker.security.plan`)."""

    __slots__ = ("cap_add", "cap_drop", "cap_ambient", "privileged", "security_opt",
                 "ulimits", "devices", "userns", "subids")

    def __init__(self, cap_add: Sequence[str] = (), cap_drop: Sequence[str] = (),
                 cap_ambient: Sequence[str] = (), privileged: bool = False,
                 security_opt: Sequence[str] = (), ulimits: Sequence[str] = (),
                 devices: Sequence[str] = (), userns: str | None = None,
                 subids: Mapping[str, str] | None = None) -> None:
        self.cap_add = list(cap_add)
        self.cap_drop = list(cap_drop)
        self.cap_ambient = list(cap_ambient)
        self.privileged = privileged
        self.security_opt = list(security_opt)  # seccomp=FILE: an absolute path by now
        self.ulimits = list(ulimits)
        self.devices = list(devices)
        self.userns = userns  # "private": a user namespace of its own
        # The caller's MINIDOCKER_SUBUID/_SUBGID/_USERNS_REMAP (files and user for --userns
        # private in place of /etc/subuid...): carried here, the engine reads no environment.
        self.subids = dict(subids or {})


class RestartPolicy(Record):
    """Docker's HostConfig.RestartPolicy: ``no``, ``always``, ``unless-stopped`` or
    ``on-failure`` (with at most ``maximum_retry_count`` restarts, 0: no limit)."""

    __slots__ = ("name", "maximum_retry_count")

    def __init__(self, name: str = "no", maximum_retry_count: int = 0) -> None:
        self.name = name
        self.maximum_retry_count = maximum_retry_count

    def as_docker(self) -> dict[str, Any]:
        """As recorded in hostconfig.json."""
        return {"Name": self.name, "MaximumRetryCount": self.maximum_retry_count}


class Healthcheck(Record):
    """Docker's ``HealthConfig`` as the caller asked it (``run``'s ``--health-*``): ``test``
    (``[]``: the image's; ``["NONE"]``: none), durations in nanoseconds and ``retries``, each
    0 to take the image's (see :func:`minidocker.health.merge`)."""

    __slots__ = ("test", "interval", "timeout", "start_period", "start_interval", "retries")

    def __init__(self, test: Sequence[str] = (), interval: int = 0, timeout: int = 0,
                 start_period: int = 0, start_interval: int = 0, retries: int = 0) -> None:
        self.test = list(test)
        self.interval = interval
        self.timeout = timeout
        self.start_period = start_period
        self.start_interval = start_interval
        self.retries = retries

    def as_docker(self) -> dict[str, Any]:
        """Under Docker's field names, as the image config and ``inspect`` have them."""
        return {"Test": list(self.test), "Interval": self.interval, "Timeout": self.timeout,
                "StartPeriod": self.start_period, "StartInterval": self.start_interval,
                "Retries": self.retries}

    @classmethod
    def from_docker(cls, fields: Mapping[str, Any]) -> Healthcheck:
        return cls(test=fields.get("Test") or (), interval=int(fields.get("Interval") or 0),
                   timeout=int(fields.get("Timeout") or 0),
                   start_period=int(fields.get("StartPeriod") or 0),
                   start_interval=int(fields.get("StartInterval") or 0),
                   retries=int(fields.get("Retries") or 0))


class ContainerConfig(Record):
    """The engine's one input: everything about a container a caller may ask for."""

    __slots__ = ("image", "process", "name", "hostname", "namespaces", "resources",
                 "cgroup_parent", "network", "mounts", "security", "restart", "labels",
                 "auto_remove", "stop_signal", "read_only", "volumes_from", "healthcheck")
    NESTED = {"process": Process, "namespaces": Namespaces, "network": NetworkConfig,
              "mounts": Mount, "security": Security, "restart": RestartPolicy,
              "healthcheck": Healthcheck}

    def __init__(self, image: str, process: Process | None = None, name: str = "",
                 hostname: str | None = None, namespaces: Namespaces | None = None,
                 resources: Resources | None = None, cgroup_parent: str = "",
                 network: NetworkConfig | None = None, mounts: Sequence[Mount] = (),
                 security: Security | None = None, restart: RestartPolicy | None = None,
                 labels: Mapping[str, str] | None = None, auto_remove: bool = False,
                 stop_signal: str = "", read_only: bool = False,
                 volumes_from: Sequence[str] = (),
                 healthcheck: Healthcheck | None = None) -> None:
        self.image = image
        self.process = process or Process()
        self.name = name  # "": a random one, as Docker picks
        self.hostname = hostname  # None: the network mode's, else the ID's first 12 digits
        self.namespaces = namespaces or Namespaces()
        self.resources = resources or Resources()
        self.cgroup_parent = cgroup_parent  # "": minidocker's own parent group
        self.network = network or NetworkConfig()
        self.mounts = list(mounts)
        self.security = security or Security()
        self.restart = restart or RestartPolicy()
        self.labels = dict(labels or {})
        self.auto_remove = auto_remove  # --rm
        self.stop_signal = stop_signal  # --stop-signal; "": the image's STOPSIGNAL, or SIGTERM
        self.read_only = read_only  # --read-only: the root filesystem mounted read-only
        self.volumes_from = list(volumes_from)  # --volumes-from C[:ro|:rw], as typed
        self.healthcheck = healthcheck  # --health-*; None: the image's HEALTHCHECK, if any

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ContainerConfig:
        config = super().from_dict({k: v for k, v in record.items() if k != "resources"})
        config.resources = Resources.from_dict(record.get("resources"))
        return config
