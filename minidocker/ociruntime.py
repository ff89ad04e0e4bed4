"""``minidocker-runtime``: minidocker as an OCI runtime, with runc's command line.

podman, containerd and CRI-O start containers by running a *runtime* on a bundle (see
:mod:`minidocker.ocibundle`): ``create ID`` makes the container and stops before the user's
program, ``start ID`` runs it, ``state ID`` answers with the spec's state JSON, ``kill`` and
``delete`` end it. They find the runtime by path (``podman --runtime``, a containerd runtime
handler, a CRI-O ``[crio.runtime.runtimes]`` entry) and speak to it only through this command
line, its exit code and its log, so any program with runc's command line can be theirs.

The global flags are runc's: ``--root`` (where the runtime keeps its state, default
:data:`DEFAULT_ROOT`), ``--log FILE``, ``--log-format text|json``, ``--debug`` and
``--systemd-cgroup``. An engine that knows a runtime by name (podman) adds ``--log-format json
--log FILE`` and, when the runtime fails, reads the error from that file: one JSON object a
line, ``{"level": "error", "msg": "...", "time": "..."}``, as runc's logrus writes them. So every
error goes there, as well as one line on stderr.

**State.** ``<root>/<id>/state.json`` holds the spec's state (``ociVersion``, ``id``,
``status``, ``pid``, ``bundle``, ``annotations``) and ``created``. ``state`` and ``list``
read it; a ``created`` or ``running`` container whose process is gone reads ``stopped``, as in
runc.

This module has ``spec``, ``features``, ``state`` and ``list`` (:mod:`minidocker.ocistate`
keeps the state). The commands that start, signal or change a container (``create``,
``start``, ``run``, ``kill``, ``delete``, ``exec``, ``ps``, ``pause``, ``resume``,
``update``) are :mod:`minidocker.ocicommands`, each a translation into the engine.

Notebook: ``11_runtime_spec``. See the OCI runtime-spec ``runtime.md`` (the state and
the operations) and runc's ``man/runc*.8.md``.
"""

from __future__ import annotations

import os
import sys

from minidocker import flags
from minidocker.errors import MinidockerError, UsageError
from minidocker.flags import Flag
from minidocker.ocistate import (  # noqa: F401 -- the state's names, where tests find them
    ID_CHARS,
    STATUSES,
    RuntimeError_,
    check_id,
    list_states,
    read_state,
    state_path,
    write_state,
)
from minidocker.ocistate import now as _now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

PROG = "minidocker-runtime"
VERSION = "0.1.0"
DEFAULT_ROOT = "/run/minidocker-runtime"  # runc's is /run/runc: a tmpfs, gone at reboot
SECCOMP_ARCHS = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
                 "SCMP_ARCH_AARCH64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390X",
                 "SCMP_ARCH_RISCV64")


# -- the log -------------------------------------------------------------------------------------

def log_line(level: str, msg: str, fmt: str = "text", when: str | None = None) -> str:
    """One record as runc's logrus writes it: JSON (``--log-format json``) or logfmt text."""
    from _json import encode_basestring_ascii as quote  # json's own escaper, without json

    when = when or _now()
    if fmt == "json":
        return f'{{"level":{quote(level)},"msg":{quote(msg)},"time":{quote(when)}}}\n'
    return f'time="{when}" level={level} msg={quote(msg)}\n'


class Log:
    """Where records go: the ``--log`` file, else stderr. Errors also get one line on stderr."""

    def __init__(self, path: str = "", fmt: str = "text", debug: bool = False) -> None:
        self.path, self.fmt, self.debugging = path, fmt, debug

    def _write(self, level: str, msg: str) -> None:
        if not self.path:
            sys.stderr.write(log_line(level, msg, self.fmt))
            return
        # O_APPEND: the engine may keep the file for several commands, and read it after each.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, log_line(level, msg, self.fmt).encode())
        finally:
            os.close(fd)

    def error(self, msg: str) -> None:
        if self.path:
            try:
                self._write("error", msg)
            except OSError as exc:  # the message must still reach someone
                print(f"{PROG}: writing the log {self.path}: {exc.strerror}", file=sys.stderr)
        print(f"{PROG}: {msg}", file=sys.stderr)

    def warn(self, msg: str) -> None:
        """A failure the operation goes on after (a poststart or poststop hook's)."""
        try:
            self._write("warning", msg)
        except OSError:
            print(f"{PROG}: warning: {msg}", file=sys.stderr)

    def debug(self, msg: str) -> None:
        if self.debugging:
            self._write("debug", msg)


def _owner(root: str, cid: str) -> str:
    import pwd

    try:
        uid = os.stat(state_path(root, cid)).st_uid
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return "#?"


# -- the commands --------------------------------------------------------------------------------

def cmd_spec(args: flags.Parsed, log: Log) -> int:
    import json

    from minidocker.runtimespec import default_config

    if args.rootless:
        raise UsageError("spec --rootless: rootless containers are not supported")
    path = os.path.join(args.bundle, "config.json")
    if os.path.lexists(path):
        raise RuntimeError_("File config.json exists. Remove it first")  # runc's words
    with open(path, "x", encoding="utf-8") as f:
        json.dump(default_config(), f, indent="\t")
    log.debug(f"wrote {path}")
    return 0


def features() -> dict[str, Any]:
    """runc's ``features`` document, for what minidocker's config.json translation accepts."""
    from minidocker import capabilities, lsm, runtimespec, seccomp

    try:
        seccomp.libseccomp()
        has_seccomp = True
    except (OSError, MinidockerError):
        has_seccomp = False
    options = {*runtimespec.MOUNT_FLAGS, *runtimespec.PROPAGATION_FLAGS,
               *runtimespec.RECURSIVE_OPTIONS}
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": list(runtimespec.HOOKS),
        "mountOptions": sorted(options),
        "linux": {
            "namespaces": sorted(runtimespec.NAMESPACE_KINDS),
            "capabilities": list(capabilities.CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": has_seccomp, "actions": sorted(seccomp.ACTIONS),
                        "operators": sorted(seccomp.COMPARISONS),
                        "archs": list(SECCOMP_ARCHS)},
            "apparmor": {"enabled": lsm.status().apparmor_enabled},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {
            "org.minidocker.runtime.version": VERSION,
            "org.minidocker.runtime.stage": "issue 17 part 3: the lifecycle, exec, ps, "
                                            "pause/resume, update, hooks and user "
                                            "namespaces",
        },
    }


def cmd_features(args: flags.Parsed, log: Log) -> int:
    import json

    print(json.dumps(features(), indent=4))
    return 0


def cmd_state(args: flags.Parsed, log: Log) -> int:
    import json

    record = read_state(args.root, args.id)
    shown = {k: record.get(k) for k in ("ociVersion", "id", "pid", "status", "bundle",
                                        "created")}
    if record.get("annotations"):
        shown["annotations"] = record["annotations"]
    print(json.dumps(shown, indent=2))
    return 0


def cmd_list(args: flags.Parsed, log: Log) -> int:
    import json

    states = list_states(args.root)
    if args.quiet:
        for record in states:
            print(record["id"])
    elif args.format == "json":
        print(json.dumps([{**{k: record.get(k) for k in ("ociVersion", "id", "pid", "status",
                                                          "bundle", "created")},
                           "owner": _owner(args.root, record["id"]),
                           "annotations": record.get("annotations") or {}}
                          for record in states]))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(r["id"], str(r.get("pid") or 0), str(r.get("status")), str(r.get("bundle")),
                  str(r.get("created") or ""), _owner(args.root, r["id"])) for r in states]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                  .rstrip())
    return 0


# -- the command line ----------------------------------------------------------------------------
#
# Parsed by hand with minidocker.flags, as `minidocker run` is: argparse (with the re, gettext
# and shutil modules it loads, and the parser it builds) cost about a third of a `run` of
# /bin/true. The rules are runc's (urfave/cli v1): global flags before the command; a
# command's flags before or after its arguments, except for `exec` and `ps`, whose arguments
# after the ID are the process's (or ps's) own.

GLOBAL_FLAGS = (
    Flag("root", kind="value", help=f"where container state is kept (default {DEFAULT_ROOT})"),
    Flag("log", kind="value", help="the log file (default: stderr)"),
    Flag("log-format", kind="value", choices=("text", "json"), help="text or json"),
    Flag("debug", help="log debug records too"),
    Flag("systemd-cgroup", help="accepted; cgroupsPath in systemd's form is refused at create"),
    Flag("version", "v", help="print the version"),
)
_CREATE = (
    Flag("bundle", "b", "value", "the bundle directory (default .)"),
    Flag("pid-file", kind="value", help="write the container's PID there"),
    Flag("console-socket", kind="value", help="send the pty master to this unix socket"),
    Flag("no-pivot", help="refused"),
    Flag("no-new-keyring", help="accepted: no keyring is made"),
    Flag("preserve-fds", kind="value", help="only 0"),
)
_FORMAT = Flag("format", "f", "value", "table or json", ("table", "json"))


class Command:
    """One of runc's commands: its flags, its arguments and the function that does it."""

    __slots__ = ("name", "help", "flags", "operands", "rest", "handler")

    def __init__(self, name: str, help: str, flags: tuple[Flag, ...] = (),
                 operands: tuple[str, ...] = (), rest: str = "", handler: str = "") -> None:
        self.name, self.help, self.flags = name, help, flags
        self.operands = operands  # required, then "[optional]" ones
        self.rest = rest  # the attribute that takes every argument after the operands
        self.handler = handler or f"ocicommands.cmd_{name}"


COMMANDS = {c.name: c for c in (
    Command("spec", "write a default config.json",
            (Flag("bundle", "b", "value", "where to write it (default .)"),
             Flag("rootless", help="refused")), handler="cmd_spec"),
    Command("features", "what this runtime supports, as JSON", handler="cmd_features"),
    Command("state", "a container's state, as JSON", operands=("id",), handler="cmd_state"),
    Command("list", "the containers under --root",
            (Flag("quiet", "q", help="only the IDs"), _FORMAT), handler="cmd_list"),
    Command("create", "create a container from a bundle", _CREATE, ("id",)),
    Command("run", "create and start a container from a bundle",
            (*_CREATE, Flag("detach", "d", help="return once it runs")), ("id",)),
    Command("start", "run the created container's process", operands=("id",)),
    Command("kill", "send a signal to the container's process",
            (Flag("all", "a", help="to every process in its cgroup"),),
            ("id", "[signal]")),
    Command("delete", "remove a container", (Flag("force", "f", help="even a running one"),),
            ("id",)),
    Command("ps", "the processes in the container", (_FORMAT,), ("id",), rest="ps_args"),
    Command("exec", "run a process in the running container",
            (Flag("process", "p", "value", "the process object, a JSON file"),
             Flag("detach", "d", help="return once it runs"),
             Flag("pid-file", kind="value", help="write the process's PID there"),
             Flag("console-socket", kind="value", help="send the pty master there"),
             Flag("tty", "t", help="allocate a pseudo-TTY"),
             Flag("cwd", kind="value", help="the working directory"),
             Flag("env", "e", "list", "set an environment variable (K=V)"),
             Flag("user", "u", "value", "UID[:GID]")),
            ("id",), rest="process_args"),
    Command("pause", "freeze every process in the container", operands=("id",)),
    Command("resume", "thaw every process in the container", operands=("id",)),
    Command("update", "new cgroup limits for the running container",
            (Flag("resources", "r", "value", "a linux.resources JSON file (- for stdin)"),),
            ("id",)),
)}
ALIASES = {"ls": "list", "rm": "delete"}
DEFAULTS = {"root": DEFAULT_ROOT, "log_format": "text", "bundle": ".", "signal": "SIGTERM",
            "format": "table", "preserve_fds": "0"}  # any other value flag: ""


def usage(command: Command | None = None) -> str:
    if command is not None:
        synopsis = " ".join(o.upper() for o in command.operands)
        if command.rest:
            synopsis += f" [{command.rest.upper()}...]"
        return flags.usage(command.flags, f"{PROG} [GLOBAL OPTIONS] {command.name} [OPTIONS] "
                           f"{synopsis}".rstrip(), command.help)
    lines = [flags.usage(GLOBAL_FLAGS, f"{PROG} [OPTIONS] COMMAND [ARGS...]",
                         "minidocker as an OCI runtime (runc's command line)"), "", "Commands:"]
    lines += [f"  {c.name:<10} {c.help}" for c in COMMANDS.values()]
    return "\n".join(lines)


def parse(argv: Sequence[str]) -> flags.Parsed:
    """runc's command line: the global flags, the command, its flags and arguments. The result
    has an attribute per flag (``pid_file``), per operand (``id``, ``signal``), ``command``
    and ``handler``; ``help`` when ``--help`` asked for the usage."""
    top = flags.parse(GLOBAL_FLAGS, list(argv), "", prog=PROG)
    if top.help or top.version or not top.positional:
        _defaults(top, GLOBAL_FLAGS)
        top.command = None
        return top
    name, *words = top.positional
    command = COMMANDS.get(ALIASES.get(name, name))
    if command is None:
        raise UsageError(f"invalid choice: {name!r} (choose from "
                         f"{', '.join(COMMANDS)}, {', '.join(ALIASES)})")
    args = flags.parse(command.flags, words, command.name, interspersed=not command.rest,
                       prog=PROG)
    for flag in GLOBAL_FLAGS:  # the command's own flags never shadow these
        setattr(args, flag.dest, getattr(top, flag.dest))
    _defaults(args, (*GLOBAL_FLAGS, *command.flags))
    args.command, args.handler = command.name, command.handler
    if args.help:
        return args
    required = [o for o in command.operands if not o.startswith("[")]
    given = args.positional
    if len(given) < len(required) or (not command.rest and len(given) > len(command.operands)):
        raise UsageError(_count_error(command, len(required)))
    for operand in command.operands[len(required):]:  # the optional ones
        setattr(args, operand.strip("[]"), DEFAULTS[operand.strip("[]")])
    for operand, value in zip(command.operands, given, strict=False):
        setattr(args, operand.strip("[]"), value)
    if command.rest:
        rest = given[len(command.operands):]
        setattr(args, command.rest, rest[1:] if rest[:1] == ["--"] else rest)
    if "preserve_fds" in vars(args):
        try:
            args.preserve_fds = int(args.preserve_fds)
        except ValueError:
            raise UsageError(f"invalid value {args.preserve_fds!r} for --preserve-fds: want "
                             "a number") from None
    return args


def _defaults(args: flags.Parsed, table: tuple[Flag, ...]) -> None:
    for flag in table:
        if flag.kind == "value" and getattr(args, flag.dest) is None:
            setattr(args, flag.dest, DEFAULTS.get(flag.dest, ""))


def _count_error(command: Command, required: int) -> str:
    """runc's words (urfave/cli's checks in runc's utils.go)."""
    if command.operands == ("id",) and not command.rest:
        return f'"{command.name}" requires exactly 1 argument(s)'
    if len(command.operands) > required:
        return (f'"{command.name}" requires a minimum of {required} and a maximum of '
                f"{len(command.operands)} argument(s)")
    return f'"{command.name}" requires a minimum of {required} argument(s)'


def _log_flags(argv: Sequence[str]) -> tuple[Log, str | None]:
    """``--log``, ``--log-format`` and ``--debug`` read before the rest, so that a command line
    that does not parse is still reported in the log the engine reads; and the command."""
    found = {"--root": "", "--log": "", "--log-format": "text"}  # the flags with a value
    debug = False
    command = None
    it = iter(argv)
    for word in it:
        if not word.startswith("-"):
            command = word
            break  # the command: global flags come before it
        key, sep, value = word.partition("=")
        if key in found:
            found[key] = value if sep else next(it, "")
        debug = debug or word == "--debug"
    fmt = found["--log-format"] if found["--log-format"] in ("text", "json") else "text"
    return Log(found["--log"], fmt, debug), command


def main(argv: Sequence[str] | None = None) -> int:
    if argv is not None:
        return run_command(list(argv))
    # A command lives for milliseconds (run's foreground wait turns it back on): the cyclic
    # garbage collector would only walk the objects the imports make, ~1.5 ms of each start.
    import gc

    gc.disable()
    code = run_command(sys.argv[1:])
    # As a program: skip the interpreter's clean-up (~3 ms of every command an engine
    # issues, as `minidocker run` skips it). Every file is closed; only stdio may hold text.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            code = code or 1
    os._exit(code)


def run_command(argv: list[str]) -> int:
    log, _ = _log_flags(argv)
    try:
        args = parse(argv)
        if args.version:
            from minidocker.runtimespec import SPEC_VERSION

            print(f"{PROG} version {VERSION}\nspec: {SPEC_VERSION}")
            return 0
        if args.help:
            print(usage(COMMANDS.get(args.command or "")))
            return 0
        if not args.command:
            print(usage())
            return 1
        args.root = os.path.abspath(args.root)
        check_flags(args)
        log.debug(f"{args.command}: {argv}")
        return int(_handler(args.handler)(args, log))
    except MinidockerError as exc:
        log.error(str(exc))
        return 1
    except OSError as exc:
        log.error(f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc))
        return 1


def _handler(name: str) -> Callable[[flags.Parsed, Log], int]:
    """``cmd_state`` here, ``ocicommands.cmd_run`` there: the engine is imported only by the
    commands that use it."""
    module, _, function = name.rpartition(".")
    if not module:
        return globals()[function]
    from minidocker import ocicommands

    return getattr(ocicommands, function)


def check_flags(args: flags.Parsed) -> None:
    """runc's flags this runtime takes but cannot honour: refused, never ignored."""
    if getattr(args, "no_pivot", False):
        raise RuntimeError_("--no-pivot is not supported")
    if getattr(args, "preserve_fds", 0):
        raise RuntimeError_("--preserve-fds is not supported yet")
