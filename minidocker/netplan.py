"""A container's network plan: what ``--network``, ``-p``, ``--dns`` and friends ask for, decided
before anything is made (:func:`make_plan`), and the /etc files that follow from it.

Pure but for reading the state root (a network's record, a joined container's PID): a bad
request fails here, before the start touches the kernel. :mod:`minidocker.networking` then
carries the plan out.

Notebook: ``06_networking``.
"""

from __future__ import annotations

import os

from minidocker import ipam, network
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from minidocker.ports import PortMapping
    from minidocker.spec import Spec

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "minidocker0"
PREDEFINED = ("bridge", "host", "none")
# What --network means when it is not given (dockerd's --bridge=none is the same knob).
DEFAULT_ENV = "MINIDOCKER_DEFAULT_NETWORK"


def default_network() -> str:
    return os.environ.get(DEFAULT_ENV) or DEFAULT_NETWORK


# -- the plan ---------------------------------------------------------------------------------

def make_plan(root: str, *, network_name: str | None = None,
              publish: Iterable[str | PortMapping] = (),
              publish_all: bool = False, expose: Iterable[str] = (), ip: str | None = None,
              aliases: Iterable[str] = (), dns: Iterable[str] = (),
              dns_search: Iterable[str] = (), dns_options: Iterable[str] = (),
              add_hosts: Iterable[str] = (), hostname_given: bool = False,
              image_config: Mapping[str, object] | None = None,
              say: Callable[[str], None] | None = None) -> dict[str, object]:
    """``run``'s network options -> the plan recorded in config.json, with Docker's rules for
    which options go together. Raises UsageError (or ipam.NetworkError) before anything is
    created."""
    name = network_name or default_network()
    name = DEFAULT_NETWORK if name == "default" else name
    publish, expose, aliases = list(publish), list(expose), list(aliases)
    dns, add_hosts = list(dns), list(add_hosts)
    plan: dict[str, object] = {}
    if name.startswith("container:"):
        plan = {"mode": "container", "container": _container_target(root, name[10:])}
        for given, what in ((hostname_given, "hostname"), (dns, "dns"),
                            (add_hosts, "custom host-to-IP mapping")):
            if given:
                raise UsageError(f"conflicting options: {what} and the network mode")
        if publish or publish_all:
            raise UsageError("conflicting options: port publishing and the container type "
                             "network mode")
        if expose:
            raise UsageError("conflicting options: port exposing and the container type "
                             "network mode")
    elif name in ("none", "host"):
        plan = {"mode": name}
    else:
        if name != DEFAULT_NETWORK:
            record = ipam.Store(root).find(name)
            if record is None:
                raise ipam.NetworkError(f"network {name} not found")
            name = str(record["Name"])
        plan = {"mode": "bridge", "networks": [{"name": name}]}
    if ip is not None or aliases:
        if plan["mode"] != "bridge" or name == DEFAULT_NETWORK:
            raise UsageError("user specified IP address is supported on user defined networks "
                             "only" if ip is not None else "network-scoped alias is supported "
                             "only for containers in user defined networks")
        entry = plan["networks"][0]  # type: ignore[index]
        if ip is not None:
            entry["ip"] = ipam.int_ip(ipam.ip_int(ip))
        if aliases:
            entry["aliases"] = [valid_name(a, "network alias") for a in aliases]
    mappings = _mappings(publish, publish_all, expose, image_config or {})
    if mappings:
        if plan["mode"] in ("host", "none"):
            (say or _say)(f"WARNING: Published ports are discarded when using {plan['mode']} "
                          "network mode")
        else:
            plan["ports"] = [m.as_dict() for m in mappings]
    if dns:
        plan["dns"] = [_valid_ip(d, "dns") for d in dns]
    if list(dns_search):
        plan["dns_search"] = list(dns_search)
    if list(dns_options):
        plan["dns_options"] = list(dns_options)
    if add_hosts:
        entries = [_parse_add_host(h) for h in add_hosts]
        if any(address == "host-gateway" for _, address in entries):
            gateway = _default_gateway(root)
            entries = [[n, gateway if a == "host-gateway" else a] for n, a in entries]
        plan["add_hosts"] = entries
    return plan


def _say(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def hostname_for(plan: Mapping[str, object], root: str) -> str | None:
    """Docker's hostname for the network mode, when ``-h`` is not given: the host's with
    ``--network host``, the joined container's with ``container:X``, else None (its ID)."""
    if plan["mode"] == "host":
        return os.uname().nodename
    if plan["mode"] == "container":
        from minidocker.state import Layout

        path = Layout(root).container(str(plan["container"]), "hostname")
        with open(path) as f:
            return f.read().strip()
    return None


def _mappings(publish: list[str | PortMapping], publish_all: bool, expose: list[str],
              image_config: Mapping[str, object]) -> list[PortMapping]:
    if not (publish or publish_all or expose):
        return []
    from minidocker import ports

    explicit = ports.parse_publish(publish)
    exposed = ports.parse_expose(expose)  # validated even without -P, as Docker does
    if not publish_all:
        return explicit
    image_exposed = image_config.get("ExposedPorts") or {}
    keys = list(image_exposed) + exposed  # type: ignore[call-overload]
    return ports.merge(explicit, ports.publish_all(dict.fromkeys(keys)))


def _valid_ip(text: str, what: str) -> str:
    from minidocker.ports import valid_ip

    if not valid_ip(text):
        raise UsageError(f"{text} is not an ip address" if what == "dns"
                         else f"invalid IP address in {what}: {text!r}")
    return text


def valid_name(text: str, what: str) -> str:
    if not text or any(c.isspace() or c in ",/" for c in text):
        raise UsageError(f"invalid {what}: {text!r}")
    return text


def _parse_add_host(text: str) -> list[str]:
    """``--add-host name:ip`` (or ``name=ip``); ``host-gateway`` means the bridge's address."""
    sep = "=" if "=" in text else ":"
    name, found, address = text.partition(sep)
    if not found or not name or not address:
        raise UsageError(f"bad format for add-host: {text!r}")
    address = address.strip("[]")
    if address != "host-gateway":
        _valid_ip(address, "add-host")
    return [valid_name(name, "add-host name"), address]


def _container_target(root: str, target: str) -> str:
    """``container:NAME`` -> the ID of a running container (Docker's check, at plan time)."""
    if not target:
        raise UsageError("invalid container format container:<name|id>")
    from minidocker.state import Layout

    cid = Layout(root).resolve(target)
    if container_pid(root, cid) == 0:
        raise UsageError(f"cannot join network of a non running container: {target}")
    return cid


def container_pid(root: str, cid: str) -> int:
    """The host PID of a running container's PID 1, or 0 if it is not running."""
    from minidocker import lifecycle
    from minidocker.state import Layout

    try:
        record = lifecycle.read(Layout(root).container(cid), "state")
    except (OSError, ValueError):
        return 0
    return int(record.get("Pid") or 0) if lifecycle.is_running(record) else 0


def join_pid(spec: Spec, root: str) -> int:
    """For ``--network container:X``: the PID whose network namespace the child joins."""
    plan = spec.network
    if plan.get("mode") != "container":
        return 0
    pid = container_pid(root, str(plan["container"]))
    if pid == 0:
        raise UsageError(f"cannot join network of a non running container: "
                         f"{str(plan['container'])[:12]}")
    return pid


# -- /etc files -------------------------------------------------------------------------------

def etc_files(spec: Spec, root: str, files: dict[str, str]) -> dict[str, str]:
    """The container's hostname, hosts and resolv.conf for its network mode (``prepare``)."""
    plan = spec.network
    mode = plan.get("mode")
    if mode == "container":  # Docker shares the other container's files
        from minidocker.state import Layout

        other = Layout(root).container(str(plan["container"]))
        for name in files:
            with open(os.path.join(other, name)) as f:
                files[name] = f.read()
        return files
    extra = [(address, name) for name, address in plan.get("add_hosts", [])]
    if mode == "host":
        with open("/etc/hosts") as f:
            files["hosts"] = f.read() + "".join(f"{ip}\t{n}\n" for ip, n in extra)
        with open("/etc/resolv.conf") as f:
            host_resolv = f.read()
    else:
        files["hosts"] = network.hosts_text(extra)
        host_resolv = files["resolv.conf"]
    if mode == "host" or any(k in plan for k in ("dns", "dns_search", "dns_options")):
        files["resolv.conf"] = network.resolv_conf_text(
            host_resolv, plan.get("dns", []), plan.get("dns_search", []),
            plan.get("dns_options", []))
    return files


def _default_gateway(root: str) -> str:
    record = ipam.Store(root).get(DEFAULT_NETWORK)
    if record is None:
        raise UsageError("host-gateway: the default bridge has no address yet (run a "
                         "container on it first)")
    return str(record["Gateway"])
