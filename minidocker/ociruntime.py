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

Notebook: ``10_oci_runtime`` (to come). See the OCI runtime-spec ``runtime.md`` (the state and
the operations) and runc's ``man/runc*.8.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from minidocker.errors import MinidockerError, UsageError
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
    from collections.abc import Sequence
    from typing import Any, NoReturn

PROG = "minidocker-runtime"
VERSION = "0.1.0"
DEFAULT_ROOT = "/run/minidocker-runtime"  # runc's is /run/runc: a tmpfs, gone at reboot
SECCOMP_ARCHS = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
                 "SCMP_ARCH_AARCH64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390X",
                 "SCMP_ARCH_RISCV64")


# -- the log -------------------------------------------------------------------------------------

def log_line(level: str, msg: str, fmt: str = "text", when: str | None = None) -> str:
    """One record as runc's logrus writes it: JSON (``--log-format json``) or logfmt text."""
    when = when or _now()
    if fmt == "json":
        return json.dumps({"level": level, "msg": msg, "time": when}, separators=(",", ":")) \
            + "\n"
    return f'time="{when}" level={level} msg={json.dumps(msg)}\n'


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

def cmd_spec(args: argparse.Namespace, log: Log) -> int:
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


def cmd_features(args: argparse.Namespace, log: Log) -> int:
    print(json.dumps(features(), indent=4))
    return 0


def cmd_state(args: argparse.Namespace, log: Log) -> int:
    record = read_state(args.root, args.id)
    shown = {k: record.get(k) for k in ("ociVersion", "id", "pid", "status", "bundle",
                                        "created")}
    if record.get("annotations"):
        shown["annotations"] = record["annotations"]
    print(json.dumps(shown, indent=2))
    return 0


def cmd_list(args: argparse.Namespace, log: Log) -> int:
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

class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ours (one line, into the log), not exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


COMMANDS = ("spec", "features", "state", "list", "ls", "create", "run", "start", "kill",
            "delete", "rm", "ps", "exec", "pause", "resume", "update")


def parser(only: str | None = None) -> Parser:
    """runc's command line. ``only``: the command given, whose subparser alone is built (each
    costs a millisecond or two of every start; ``--help`` builds them all)."""
    if only not in COMMANDS:
        only = None

    def want(*names: str) -> bool:
        return only is None or only in names

    top = Parser(prog=PROG, description="minidocker as an OCI runtime (runc's command line)")
    top.add_argument("--root", default=DEFAULT_ROOT, help="where container state is kept")
    top.add_argument("--log", default="", help="the log file (default: stderr)")
    top.add_argument("--log-format", default="text", choices=("text", "json"))
    top.add_argument("--debug", action="store_true", help="log debug records too")
    top.add_argument("--systemd-cgroup", action="store_true",
                     help="accepted; cgroupsPath in systemd's form is refused at create")
    top.add_argument("-v", "--version", action="store_true")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    if want("spec"):
        spec = sub.add_parser("spec", help="write a default config.json")
        spec.add_argument("-b", "--bundle", default=".")
        spec.add_argument("--rootless", action="store_true")
        spec.set_defaults(func=cmd_spec)
    if want("features"):
        sub.add_parser("features", help="what this runtime supports, as JSON").set_defaults(
            func=cmd_features)
    if want("state"):
        state = sub.add_parser("state", help="a container's state, as JSON")
        state.add_argument("id")
        state.set_defaults(func=cmd_state)
    if want("list", "ls"):
        listing = sub.add_parser("list", aliases=["ls"], help="the containers under --root")
        listing.add_argument("-q", "--quiet", action="store_true")
        listing.add_argument("-f", "--format", default="table", choices=("table", "json"))
        listing.set_defaults(func=cmd_list)
    from minidocker import ocicommands

    ocicommands.add_commands(sub, want)
    return top


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
    argv = list(sys.argv[1:] if argv is None else argv)
    log, command = _log_flags(argv)
    try:
        args = parser(command).parse_args(argv)
        if args.version:
            from minidocker.runtimespec import SPEC_VERSION

            print(f"{PROG} version {VERSION}\nspec: {SPEC_VERSION}")
            return 0
        if not args.command:
            parser().print_help()
            return 1
        args.root = os.path.abspath(args.root)
        from minidocker.ocicommands import check_flags

        check_flags(args)
        log.debug(f"{args.command}: {argv}")
        return int(args.func(args, log))
    except MinidockerError as exc:
        log.error(str(exc))
        return 1
    except OSError as exc:
        log.error(f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc))
        return 1
