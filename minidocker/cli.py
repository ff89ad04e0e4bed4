"""The ``minidocker`` command: Docker's command line, over minidocker's mechanisms.

Only the parser of the command being run is built, and each command imports what it needs
when it runs: ``minidocker run --rm busybox true`` has a start-up budget measured in
milliseconds (see ``benchmarks/``).

Errors print one line, ``minidocker: <what went wrong>``, and exit with Docker's codes: 125 for
a runtime error or bad flag, 126/127 when the command can't be invoked or found, otherwise the
container's own status.
"""

from __future__ import annotations

import os
import sys

from minidocker.errors import EXIT_RUNTIME, MinidockerError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from minidocker.flags import Flag, Parsed
    from minidocker.security import SecurityPlan

# Each command: the module of minidocker.commands that holds its ``cmd_<name>`` function
# (None: this file), and its one-line help. Modules are imported only for their command.
COMMANDS: dict[str, tuple[str | None, str]] = {
    "run": (None, "Create and run a new container from an image"),
    "import": ("images", "Import the contents from a tarball to create a filesystem image"),
    "images": ("images", "List images"),
    "image": ("images", "Manage images (inspect, prune, ls, rm, tag, history, save, load)"),
    "tag": ("images", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("images", "Remove one or more images"),
    "history": ("images", "Show the history of an image"),
    "save": ("images", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "load": ("images", "Load an image from a tar archive or STDIN"),
    "commit": ("images", "Create a new image from a container's changes"),
    "diff": ("images", "Inspect changes to files or directories on a container's filesystem"),
    "export": ("images", "Export a container's filesystem as a tar archive"),
    "pull": ("registry", "Download an image from a registry"),
    "push": ("registry", "Upload an image to a registry"),
    "login": ("registry", "Log in to a registry"),
    "logout": ("registry", "Log out from a registry"),
    "update": ("resources", "Update configuration of one or more containers"),
    "pause": ("resources", "Pause all processes within one or more containers"),
    "unpause": ("resources", "Unpause all processes within one or more containers"),
    "stats": ("resources", "Display a live stream of container(s) resource usage statistics"),
    "network": ("network", "Manage networks (create, ls, inspect, rm, connect, disconnect, "
                           "prune)"),
    "port": ("network", "List port mappings or a specific mapping for the container"),
    "create": ("containers", "Create a new container"),
    "ps": ("containers", "List containers"),
    "logs": ("containers", "Fetch the logs of a container"),
    "start": ("containers", "Start one or more stopped containers"),
    "stop": ("containers", "Stop one or more running containers"),
    "kill": ("containers", "Kill one or more running containers"),
    "restart": ("containers", "Restart one or more containers"),
    "rm": ("containers", "Remove one or more containers"),
    "wait": ("containers", "Block until one or more containers stop, then print their exit "
                           "codes"),
    "attach": ("containers", "Attach local standard input, output, and error streams to a "
                             "running container"),
    "exec": ("containers", "Execute a command in a running container"),
    "inspect": ("containers", "Return low-level information on containers"),
    "top": ("containers", "Display the running processes of a container"),
    "rename": ("containers", "Rename a container"),
    "container": ("containers", "Manage containers (ls, prune, and the commands above)"),
    "system": ("containers", "Manage minidocker (prune: reconcile records with the kernel)"),
    "doctor": (None, "Check that this host can run containers, with a fix for each problem"),
    "version": (None, "Show the minidocker version"),
}


def _run_flags() -> tuple[Flag, ...]:
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
        Flag("pid", kind="value", choices=host_or_private, help="PID namespace to use"),
        Flag("uts", kind="value", choices=host_or_private, help="UTS namespace to use"),
        Flag("ipc", kind="value", choices=host_or_private, help="IPC namespace to use"),
        Flag("cgroupns", kind="value", choices=host_or_private, help="cgroup namespace to use"),
        *_resource_flags(),
        *_network_flags(),
        Flag("cgroup-parent", kind="value", help="optional parent cgroup for the container"),
        *_security_flags(),
        Flag("trace", help="print every kernel-facing step as it happens (to stderr)"),
        Flag("trace-json", kind="value", metavar="file",
             help="append every step as a JSON line to FILE (for notebooks)"),
    )


def _resource_flags() -> tuple[Flag, ...]:
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


def _security_flags() -> tuple[Flag, ...]:
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


def _security_plan(args: Parsed, root: str) -> SecurityPlan:
    from minidocker import security

    def warn(text: str) -> None:
        print(f"minidocker: warning: {text}", file=sys.stderr)

    return security.plan(cap_add=args.cap_add, cap_drop=args.cap_drop,
                         cap_ambient=args.cap_ambient, privileged=args.privileged,
                         security_opt=args.security_opt, ulimits=args.ulimit,
                         device=args.device, userns=args.userns,
                         cache_dir=os.path.join(root, "cache", "seccomp"), warn=warn)


def _network_flags() -> tuple[Flag, ...]:
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


def _setup_trace(args: Parsed) -> None:
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


def _restart_policy(args: Parsed) -> dict[str, object] | None:
    """``--restart`` as Docker's RestartPolicy; None for ``no`` (or none given)."""
    if not args.restart:
        return None
    from minidocker import lifecycle

    policy = lifecycle.parse_restart_policy(args.restart)
    if policy["Name"] == "no":
        return None
    if args.rm:
        raise UsageError("conflicting options: --restart and --rm")
    return policy


def cmd_run(argv: list[str], create: bool = False, here: bool = False) -> int:
    """``run`` (and ``create``). Detached, the plan is made by the supervisor, which has the
    modules it needs loaded already (see :func:`minidocker.client.forward_run`); ``here``:
    make it in this process, as the supervisor itself does."""
    from minidocker import flags

    table = _run_flags()
    command = "create" if create else "run"
    args = flags.parse_command(table, argv, command, COMMANDS[command][1], ("IMAGE",),
                               "IMAGE [COMMAND] [ARG...]")
    if args is None:
        return 0
    restart = _restart_policy(args)  # a bad --restart fails before anything is made
    if (args.detach or create) and not (here or args.trace or args.trace_json):
        from minidocker import client

        return client.forward_run(argv, create)
    if args.interactive and args.tty and not (args.detach or create) and not os.isatty(0):
        raise UsageError("the input device is not a TTY")
    _setup_trace(args)
    from minidocker import cgroups, imagecache, namespaces, spec, state

    limits = cgroups.from_flags(args)  # bad limits fail before anything is made
    parent = cgroups.check_parent(args.cgroup_parent) if args.cgroup_parent else ""
    layout = state.Layout()
    image_id, config, lowers = imagecache.resolve(layout.root, args.positional[0])
    net, net_hostname = _network_plan(args, layout.root, config)
    confinement = _security_plan(args, layout.root)
    for warning in cgroups.discard_unsupported(limits, parent):  # once the rest is valid
        print(f"WARNING: {warning}", file=sys.stderr)
    resources = limits.as_dict()  # what inspect shows: a discarded weight is 0, as in Docker
    cid = state.new_id()
    plan = spec.make_spec(
        cid=cid,
        name=state.validate_name(args.name) if args.name else state.random_name(layout.names),
        image_ref=args.positional[0], image_id=image_id, image_config=config,
        args=args.positional[1:], entrypoint=args.entrypoint, env=args.env,
        env_files=args.env_file, workdir=args.workdir, user=args.user,
        hostname=args.hostname if args.hostname is not None else net_hostname,
        tty=args.tty, interactive=args.interactive, init=args.init, remove=args.rm,
        namespaces=[k for k in namespaces.DEFAULT_KINDS if _private(args, k)
                    and not (k == "net" and net["mode"] in ("host", "container"))]
        + (["user"] if args.userns == "private" else []),
        resources=resources, cgroup_parent=parent, network=net,
        security=confinement)
    if create or args.detach or restart:  # the supervisor's: see minidocker.supervisor
        from minidocker.commands import containers

        return containers.run_supervised(plan, lowers, config, restart, start=not create,
                                         detach=args.detach)
    from minidocker import container  # the start sequence: only a foreground run needs it here

    return container.run(plan, lowers, layout)


def _network_plan(args: Parsed, root: str,
                  image_config: dict[str, object]) -> tuple[dict[str, object], str | None]:
    """The network plan, and the hostname its mode implies (the host's, or the joined
    container's) when ``-h`` is not given."""
    name = args.network or args.net or os.environ.get("MINIDOCKER_DEFAULT_NETWORK")
    if name == "none" and not (args.publish or args.publish_all or args.expose or args.ip
                               or args.network_alias or args.dns or args.dns_search
                               or args.dns_option or args.add_host):
        return {"mode": "none"}, None  # nothing to decide: no import of the networking code
    from minidocker import networking

    plan = networking.make_plan(
        root, network_name=args.network or args.net, publish=args.publish,
        publish_all=args.publish_all, expose=args.expose, ip=args.ip,
        aliases=args.network_alias, dns=args.dns, dns_search=args.dns_search,
        dns_options=args.dns_option, add_hosts=args.add_host,
        hostname_given=args.hostname is not None, image_config=image_config)
    implied = networking.hostname_for(plan, root) if args.uts != "host" else None
    return plan, implied


def _private(args: Parsed, kind: str) -> bool:
    option = {"pid": args.pid, "uts": args.uts, "ipc": args.ipc, "cgroup": args.cgroupns}
    return option.get(kind) in (None, "private")


def parser(prog: str, description: str, usage: str | None = None) -> argparse.ArgumentParser:
    """argparse for the commands off the start-up path; errors become one-line UsageErrors."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise UsageError(f"{self.prog.removeprefix('minidocker ')}: {message}")

    return Parser(prog=prog, description=description, usage=usage)


def cmd_doctor(argv: list[str]) -> int:
    from minidocker import doctor

    return doctor.main(argv)


def cmd_version(argv: list[str]) -> int:
    from minidocker import __version__

    print(f"minidocker {__version__}")
    return 0


def handler(name: str) -> Callable[[list[str]], int] | None:
    """The function behind command ``name``, importing its module only now."""
    if name not in COMMANDS:
        return None
    module, _ = COMMANDS[name]
    function = "cmd_" + name.replace("-", "_")
    if module is None:
        return globals()[function]  # type: ignore[no-any-return,unused-ignore]
    mod = __import__(f"minidocker.commands.{module}", fromlist=[function])
    return getattr(mod, function)  # type: ignore[no-any-return,unused-ignore]


def usage() -> str:
    lines = ["usage: minidocker [--root DIR] COMMAND [OPTIONS]", "", "Commands:"]
    lines += [f"  {name:<9} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "Run 'minidocker COMMAND --help' for more on a command.",
              "State lives under --root, $MINIDOCKER_ROOT, or /var/lib/minidocker."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--root"] and len(argv) > 1:
        os.environ["MINIDOCKER_ROOT"] = os.path.abspath(argv[1])
        argv = argv[2:]
    elif argv[:1] and argv[0].startswith("--root="):
        os.environ["MINIDOCKER_ROOT"] = os.path.abspath(argv[0].split("=", 1)[1])
        argv = argv[1:]
    if argv[:1] in (["-v"], ["--version"]):
        argv = ["version"]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 1
    command = handler(argv[0])
    if command is None:
        print(f"minidocker: '{argv[0]}' is not a minidocker command.\n\n{usage()}",
              file=sys.stderr)
        return EXIT_RUNTIME
    try:
        code = command(argv[1:])
        if argv[0] == "run" and as_program:
            # Skip the interpreter's clean-up (~2 ms of every run); nothing is left to flush
            # but the standard streams, and the container is already gone.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except MinidockerError as exc:
        print(f"minidocker: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        notes = "; ".join(getattr(exc, "__notes__", []))
        print(f"minidocker: {exc}" + (f" ({notes})" if notes else ""), file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return 130
