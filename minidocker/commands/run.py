"""``run`` and ``create``: the flags become a :class:`~minidocker.config.ContainerConfig`, and
the config goes to the engine (a foreground ``run``) or the supervisor (``-d``, ``create``,
``--restart``).

This module is on ``minidocker run``'s start-up path, so it imports at its top only what every
run needs; each flag's parser is imported when that flag is given.
"""

from __future__ import annotations

import os
import sys

from minidocker.commands.table import COMMANDS
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from minidocker.config import ContainerConfig, Healthcheck
    from minidocker.flags import Flag, Parsed
    from minidocker.ports import PortMapping


def run_flags() -> tuple[Flag, ...]:
    from minidocker.flags import Flag

    host_or_private = ("host", "private")
    return (
        Flag("rm", help="remove the container when it exits"),
        Flag("detach", "d", help="run the container in the background and print its ID"),
        Flag("restart", kind="value", metavar="policy",
             help="no, on-failure[:max-retries], always or unless-stopped"),
        Flag("interactive", "i", help="keep STDIN open"),
        Flag("tty", "t", help="allocate a pseudo-TTY"),
        Flag("name", kind="value", help="assign a name to the container"),
        Flag("env", "e", "list", "set environment variables"),
        Flag("env-file", kind="list", help="read in a file of environment variables"),
        Flag("workdir", "w", "value", "working directory inside the container"),
        Flag("user", "u", "value", "username or UID (format: <name|uid>[:<group|gid>])"),
        Flag("hostname", "h", "value", "container host name"),
        Flag("entrypoint", kind="value", help="overwrite the default ENTRYPOINT of the image"),
        Flag("init", help="run an init inside the container that forwards signals and reaps "
                          "processes"),
        Flag("stop-signal", kind="value", metavar="signal",
             help="signal to stop the container (default: the image's STOPSIGNAL, or SIGTERM)"),
        Flag("pid", kind="value", choices=host_or_private, help="PID namespace to use"),
        Flag("uts", kind="value", choices=host_or_private, help="UTS namespace to use"),
        Flag("ipc", kind="value", choices=host_or_private, help="IPC namespace to use"),
        Flag("cgroupns", kind="value", choices=host_or_private, help="cgroup namespace to use"),
        *resource_flags(),
        *network_flags(),
        Flag("cgroup-parent", kind="value", help="optional parent cgroup for the container"),
        *security_flags(),
        *mount_flags(),
        *health_flags(),
        Flag("trace", help="print every kernel-facing step as it happens (to stderr)"),
        Flag("trace-json", kind="value", metavar="file",
             help="append every step as a JSON line to FILE (for notebooks)"),
    )


def resource_flags() -> tuple[Flag, ...]:
    """The cgroup limits ``run`` and ``update`` take (see :mod:`minidocker.cgroups`)."""
    from minidocker.flags import Flag

    return (
        Flag("memory", "m", "value", "memory limit (e.g. 64m, 1g)", metavar="bytes"),
        Flag("memory-swap", kind="value", metavar="bytes",
             help="memory plus swap limit: -1 for unlimited swap (default: twice --memory)"),
        Flag("memory-reservation", kind="value", metavar="bytes",
             help="memory soft limit"),
        Flag("cpus", kind="value", metavar="decimal", help="number of CPUs (e.g. 1.5)"),
        Flag("cpu-shares", "c", "value", "CPU shares (relative weight, default 1024)",
             metavar="int"),
        Flag("cpu-period", kind="value", metavar="int",
             help="limit CPU CFS (Completely Fair Scheduler) period, in microseconds"),
        Flag("cpu-quota", kind="value", metavar="int",
             help="limit CPU CFS (Completely Fair Scheduler) quota, in microseconds"),
        Flag("cpuset-cpus", kind="value", help="CPUs in which to allow execution (0-3, 0,1)"),
        Flag("cpuset-mems", kind="value", help="memory nodes in which to allow execution"),
        Flag("pids-limit", kind="value", metavar="int",
             help="tune container pids limit (-1 for unlimited)"),
        Flag("blkio-weight", kind="value", metavar="uint16",
             help="block IO (relative weight), between 10 and 1000, or 0 to disable"),
    )


def security_flags() -> tuple[Flag, ...]:
    """``run``'s confinement options (see :mod:`minidocker.security`)."""
    from minidocker.flags import Flag

    return (
        Flag("cap-add", kind="list", help="add Linux capabilities (NAME, CAP_NAME or ALL)"),
        Flag("cap-drop", kind="list", help="drop Linux capabilities (NAME, CAP_NAME or ALL)"),
        Flag("cap-ambient", kind="list", help="minidocker's own: give a non-root -u user this "
             "granted capability as ambient, so it is effective"),
        Flag("privileged", help="give extended privileges to this container"),
        Flag("security-opt", kind="list", help="security options: no-new-privileges, "
             "seccomp=unconfined|FILE, apparmor=PROFILE, label=disable"),
        Flag("ulimit", kind="list", help="ulimit options (name=soft[:hard])"),
        Flag("device", kind="list", help="add a host device to the container "
             "(/dev/host[:/dev/container][:rwm])"),
        Flag("userns", kind="value", choices=("host", "private"),
             help="user namespace to use (private: root maps to a /etc/subuid range)"),
    )


def mount_flags() -> tuple[Flag, ...]:
    """``run``'s volumes and mounts (see :mod:`minidocker.mounts`)."""
    from minidocker.flags import Flag

    return (
        Flag("volume", "v", "list", "bind mount a volume ([SRC:]DST[:OPTIONS]; SRC a host "
             "path or a volume name)"),
        Flag("mount", kind="list", metavar="mount",
             help="attach a filesystem mount to the container (type=bind|volume|tmpfs,...)"),
        Flag("tmpfs", kind="list", help="mount a tmpfs directory (DST[:OPTIONS])"),
        Flag("read-only", help="mount the container's root filesystem as read only"),
        Flag("volumes-from", kind="list",
             help="mount volumes from the specified container(s) (CONTAINER[:ro|:rw])"),
    )


def health_flags() -> tuple[Flag, ...]:
    """``run``'s health check options (see :mod:`minidocker.health`)."""
    from minidocker.flags import Flag

    return (
        Flag("health-cmd", kind="value", help="command to run to check health"),
        Flag("health-interval", kind="value", metavar="duration",
             help="time between running the check (ms|s|m|h) (default 0s)"),
        Flag("health-timeout", kind="value", metavar="duration",
             help="maximum time to allow one check to run (ms|s|m|h) (default 0s)"),
        Flag("health-start-period", kind="value", metavar="duration",
             help="start period for the container to initialize before starting "
                  "health-retries countdown (ms|s|m|h) (default 0s)"),
        Flag("health-start-interval", kind="value", metavar="duration",
             help="time between running the check during the start period (ms|s|m|h) "
                  "(default 0s)"),
        Flag("health-retries", kind="value", metavar="int",
             help="consecutive failures needed to report unhealthy"),
        Flag("no-healthcheck", help="disable any container-specified HEALTHCHECK"),
    )


def health_config(args: Parsed) -> Healthcheck | None:
    """The ``--health-*`` flags as a :class:`~minidocker.config.Healthcheck` (None: none)."""
    if not (args.health_cmd is not None or args.health_interval is not None
            or args.health_timeout is not None or args.health_start_period is not None
            or args.health_start_interval is not None or args.health_retries is not None
            or args.no_healthcheck):
        return None  # nothing typed: the health module stays unimported
    from minidocker import config, health

    asked = health.from_flags(args.health_cmd, args.health_interval, args.health_timeout,
                              args.health_start_period, args.health_start_interval,
                              args.health_retries, args.no_healthcheck)
    return config.Healthcheck.from_docker(asked) if asked is not None else None


def network_flags() -> tuple[Flag, ...]:
    """``run``'s network options (see :mod:`minidocker.networking`)."""
    from minidocker.flags import Flag

    return (
        Flag("network", kind="value", help="connect the container to a network: bridge (the "
             "default), none, host, container:<name|id>, or a user-defined network"),
        Flag("net", kind="value", help="alias of --network"),
        Flag("publish", "p", "list", "publish a container's port(s) to the host"),
        Flag("publish-all", "P", help="publish all exposed ports to random ports"),
        Flag("expose", kind="list", help="expose a port or a range of ports"),
        Flag("ip", kind="value", help="IPv4 address (e.g., 172.30.100.104)"),
        Flag("network-alias", kind="list", help="add network-scoped alias for the container"),
        Flag("dns", kind="list", help="set custom DNS servers"),
        Flag("dns-search", kind="list", help="set custom DNS search domains"),
        Flag("dns-option", kind="list", help="set DNS options"),
        Flag("add-host", kind="list", help="add a custom host-to-IP mapping (host:ip)"),
    )


def setup_trace(args: Parsed) -> None:
    if not (args.trace or args.trace_json):
        return
    import json

    from minidocker import trace

    out = open(args.trace_json, "a") if args.trace_json else None  # noqa: SIM115 -- until exit

    def sink(ev: trace.Event) -> None:
        if args.trace:
            print(trace.format_event(ev), file=sys.stderr, flush=True)
        if out is not None:
            out.write(json.dumps(ev) + "\n")
            out.flush()

    trace.set_sink(sink)


def detached_traced(args: Parsed, config: ContainerConfig, create: bool) -> int:
    """``run -d`` (or ``create``) with ``--trace``/``--trace-json``: the supervisor plans and
    starts the container, so it records the steps, as JSON lines appended to a file we name
    (``--trace-json``'s, or a temporary one); ``--trace`` prints them once it has answered."""
    import json

    from minidocker import client, trace

    if args.trace_json:
        path = os.path.abspath(args.trace_json)
        with open(path, "a"):  # a path we cannot write fails here, in one line
            offset = os.path.getsize(path)
    else:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="minidocker-trace-", suffix=".jsonl")
        os.close(fd)
        offset = 0
    try:
        return client.run_detached(config, start=not create, trace=path)
    finally:
        try:
            if args.trace:
                with open(path) as f:
                    f.seek(offset)
                    for line in f:
                        print(trace.format_event(json.loads(line)), file=sys.stderr)
        finally:  # a closed stderr (| head) must not leave the file
            if not args.trace_json:
                os.unlink(path)


def config_from_flags(args: Parsed, environ: Mapping[str, str], cwd: str) -> ContainerConfig:
    """``run``'s flags as the engine's input: what was typed, checked, nothing decided.

    The caller's environment and working directory come in as arguments (``-e NAME`` copies
    NAME from ``environ``; ``--env-file`` and ``seccomp=FILE`` are relative to ``cwd``), so the
    config means the same in the supervisor, which has neither. Creates nothing; reads only
    the ``--env-file`` files. Bad input raises UsageError (exit 125).
    """
    from minidocker import cgroups, config

    restart = config.RestartPolicy()
    if args.restart:
        from minidocker import lifecycle

        policy = lifecycle.parse_restart_policy(args.restart)
        restart = config.RestartPolicy(policy["Name"], policy["MaximumRetryCount"])
        if restart.name != "no" and args.rm:
            raise UsageError("conflicting options: --restart and --rm")
    env: list[str] = []
    if args.env or args.env_file:  # only then: spec imports the syscall layer (ctypes, ~14 ms)
        from minidocker import spec

        env = [f"{k}={v}" for path in args.env_file
               for k, v in spec.read_env_file(path, environ, os.path.join(cwd, path))]
        env += [f"{pair[0]}={pair[1]}" for item in args.env
                if (pair := spec.parse_env_line(item, environ, ""))]
    ports: list[PortMapping] = []
    expose: list[str] = []
    if args.publish or args.expose:
        from minidocker import ports as ports_mod

        ports = ports_mod.parse_publish(args.publish)
        expose = ports_mod.parse_expose(args.expose)  # checked even without -P, as Docker does
    mount_list: list[config.Mount] = []
    if args.volume or args.mount or args.tmpfs:  # only then: mounts imports the syscall layer
        from minidocker import mounts

        mount_list = mounts.parse_flags(args.volume, args.mount, args.tmpfs, cwd)
    return config.ContainerConfig(
        image=args.positional[0],
        process=config.Process(args=args.positional[1:], entrypoint=args.entrypoint, env=env,
                               user=args.user, workdir=args.workdir, tty=args.tty,
                               interactive=args.interactive, init=args.init),
        name=args.name or "", hostname=args.hostname,
        namespaces=config.Namespaces(pid=args.pid or "private", uts=args.uts or "private",
                                     ipc=args.ipc or "private",
                                     cgroup=args.cgroupns or "private"),
        resources=cgroups.parse_flags(args), cgroup_parent=args.cgroup_parent or "",
        network=config.NetworkConfig(
            name=args.network or args.net or environ.get("MINIDOCKER_DEFAULT_NETWORK"),
            ports=ports, publish_all=args.publish_all, expose=expose, ip=args.ip,
            aliases=args.network_alias, dns=args.dns, dns_search=args.dns_search,
            dns_options=args.dns_option, add_hosts=args.add_host),
        security=config.Security(
            cap_add=args.cap_add, cap_drop=args.cap_drop, cap_ambient=args.cap_ambient,
            privileged=args.privileged,
            security_opt=[_absolute_seccomp(opt, cwd) for opt in args.security_opt],
            ulimits=args.ulimit, devices=args.device, userns=args.userns,
            subids={k: environ[k] for k in SUBID_ENV if k in environ}
            if args.userns == "private" else {}),
        mounts=mount_list, read_only=args.read_only, volumes_from=args.volumes_from,
        restart=restart, auto_remove=args.rm, stop_signal=args.stop_signal or "",
        healthcheck=health_config(args))


# The variables naming --userns private's /etc/subuid, /etc/subgid and user (for tests, labs)
SUBID_ENV = ("MINIDOCKER_SUBUID", "MINIDOCKER_SUBGID", "MINIDOCKER_USERNS_REMAP")


def _absolute_seccomp(opt: str, cwd: str) -> str:
    """``seccomp=./profile.json`` relative to where it was typed, not where it is read."""
    key, sep, value = opt.partition("=")
    if key == "seccomp" and sep and value not in ("", "unconfined") and \
            not value.startswith("/"):
        return f"seccomp={os.path.normpath(os.path.join(cwd, value))}"
    return opt


def cmd_run(argv: list[str], create: bool = False) -> int:
    """``run`` (and ``create``): the flags become a :class:`~minidocker.config.ContainerConfig`
    for the engine: here (a foreground ``run``), or in the supervisor (``-d``, ``create``,
    ``--restart``), which has the engine's modules loaded already."""
    from minidocker import flags

    table = run_flags()
    command = "create" if create else "run"
    args = flags.parse_command(table, argv, command, COMMANDS[command][1], ("IMAGE",),
                               "IMAGE [COMMAND] [ARG...]")
    if args is None:
        return 0
    config = config_from_flags(args, os.environ, os.getcwd())
    if config.mounts:
        from minidocker import mounts

        for note in mounts.notes(config.mounts):
            print(f"WARNING: {note}", file=sys.stderr)
    if args.interactive and args.tty and not (args.detach or create) and not os.isatty(0):
        raise UsageError("the input device is not a TTY")
    if create or args.detach:  # see minidocker.supervisor
        if args.trace or args.trace_json:
            return detached_traced(args, config, create)
        from minidocker import client  # light: run -d is a start-up path too

        return client.run_detached(config, start=not create)
    setup_trace(args)
    if config.restart.name != "no":  # the supervisor starts it; we attach
        from minidocker.commands import attaching

        return attaching.run_supervised(config)
    from minidocker import engine  # the start sequence: only a foreground run needs it here

    made = engine.plan(config)
    if made.spec.healthcheck is not None:  # a health check needs a parent that stays: the
        from minidocker import health  # supervisor starts it (it plans it again); we attach

        if health.probe_argv(made.spec.healthcheck) is not None:
            from minidocker.commands import attaching

            return attaching.run_supervised(config)
    return engine.run(config, made=made)


def cmd_create(argv: list[str]) -> int:
    return cmd_run(argv, create=True)
