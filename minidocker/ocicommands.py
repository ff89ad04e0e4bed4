"""``minidocker-runtime``'s lifecycle commands: create, start, run, kill, delete, ps, pause,
resume, exec and update, each a thin translation into :mod:`minidocker.engine`.

The runtime-spec's lifecycle (``runtime.md``), as runc runs it:

=========== ==================================================================================
command     what happens
=========== ==================================================================================
``create``  the bundle is read and translated (:mod:`minidocker.ocibundle`), the engine starts
            the container up to just before execve (:func:`minidocker.engine.create_held`),
            ``--pid-file`` is written, the pty master goes to ``--console-socket``; the state
            is ``created``
``start``   the held process goes on to execve (:func:`minidocker.engine.release`): ``running``
``run``     create, then start; in the foreground it waits and exits with the container's code
``kill``    a signal to the container's first process (``--all``: to every process in its
            cgroup)
``delete``  everything the container holds goes (:func:`minidocker.engine.remove`); a running
            one only with ``--force``
=========== ==================================================================================

The engine keeps its own records of the container under ``<root>/.engine`` (a
:class:`~minidocker.state.Layout`), by an ID derived from the runtime's (sha256 of it), so that
every command finds it again without asking. The runtime's state, the spec's, is
``<root>/<id>/state.json`` (:mod:`minidocker.ociruntime`).
"""

from __future__ import annotations

import contextlib
import os

from minidocker import engine, lifecycle, procfs, state
from minidocker.ocistate import RuntimeError_, check_id, now, read_state, write_state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minidocker.container import Started
    from minidocker.flags import Parsed
    from minidocker.ociruntime import Log


def engine_layout(root: str) -> state.Layout:
    return state.Layout(os.path.join(root, ".engine"))


def engine_id(cid: str) -> str:
    """The engine's 64-hex ID for the runtime's ``cid``: the same every time."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # hashlib: OpenSSL, 15 ms
    except ImportError:
        from hashlib import sha256

    return sha256(cid.encode()).hexdigest()


def _target(root: str, cid: str) -> lifecycle.Container:
    return lifecycle.Container(engine_layout(root), engine_id(cid))


def _write_pid_file(path: str, pid: int) -> None:
    """Whole or not at all (a temporary file renamed over it), as runc writes it."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def create(args: Parsed, log: Log, foreground: bool = False, then_start: bool = False
           ) -> Started:
    """Make the container and leave it held (``then_start``: let it go on, as ``run`` does,
    with one record fewer); on any failure nothing is left behind."""
    from minidocker import ocibundle

    cid = check_id(args.id)
    cdir = os.path.join(args.root, cid)
    if os.path.lexists(cdir):
        raise RuntimeError_(f"container with id exists: {cid}")  # runc's words
    config, oci = ocibundle.read_bundle(args.bundle)
    for name in oci.ignored:
        log.debug(f"config.json: {name} is not in the spec: ignored")
    if config.process.tty and not args.console_socket and not foreground:
        raise RuntimeError_("cannot allocate tty if runc will detach without setting console "
                            "socket")  # runc's words
    if args.console_socket and not config.process.tty:
        raise RuntimeError_("cannot use console socket if runc will not detach or allocate tty")
    config.process.interactive = True  # stdin is the caller's: the engine's pipe, a terminal
    oci.container_id = cid
    os.makedirs(args.root, 0o711, exist_ok=True)
    try:
        os.mkdir(cdir, 0o700)  # the claim: of two creates of one ID, one fails here
    except FileExistsError:
        raise RuntimeError_(f"container with id exists: {cid}") from None
    record = {"ociVersion": oci_version(args.bundle), "id": cid, "status": "creating",
              "pid": 0, "bundle": oci.bundle, "created": now(), "annotations": oci.annotations,
              "engine": engine_id(cid), "hooks": {k: oci.hooks[k] for k in ("poststart",
                                                  "poststop") if oci.hooks.get(k)}}
    try:
        if not then_start:
            # run writes its record once, when the container runs (runc's create also has
            # none until it is created): on ext4, renaming a new record over an old one
            # waits for the new one's data to be written out (auto_da_alloc), up to several
            # ms on a busy disk.
            write_state(args.root, record)
        started = engine.create_held(config, oci, cid=engine_id(cid),
                                     layout=engine_layout(args.root))
        try:
            if started.master is not None:
                from minidocker import tty

                if oci.console_size:
                    tty.set_winsize(started.master, oci.console_size.get("height", 0),
                                    oci.console_size.get("width", 0))
                if args.console_socket:
                    tty.send_to_console_socket(args.console_socket, started.master)
            if args.pid_file:
                _write_pid_file(args.pid_file, started.pid)
            start_time = procfs.process_start_time(started.pid)
            if then_start:  # run: straight to running (the disk's metadata operations cost)
                engine.release(_target(args.root, cid), started.pidfd)
            write_state(args.root, {**record, "status": "running" if then_start else "created",
                                    "pid": started.pid, "start_time": start_time})
        except BaseException:
            engine.remove(_target(args.root, cid), force=True)
            if started.master is not None:
                os.close(started.master)
            os.close(started.pidfd)
            raise
    except BaseException:
        remove_state_dir(args.root, cid)
        _hooks("poststop", record, "stopped", log)  # the spec: a failed create, then these
        raise
    if then_start:  # run: start's own poststart hooks
        _hooks("poststart", {**record, "pid": started.pid}, "running", log)
    return started


def _hooks(name: str, record: dict[str, Any], status: str, log: Log) -> None:
    if record.get("hooks"):
        from minidocker import ocihooks

        ocihooks.run_recorded(name, record, status, log.warn)


def remove_state_dir(root: str, cid: str) -> None:
    """``<root>/<id>``: its state.json (and a temporary one a writer left), then itself."""
    cdir = os.path.join(root, check_id(cid))
    for name in ("state.json", "state.json.tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(cdir, name))
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(cdir)


def oci_version(bundle: str) -> str:
    from minidocker.runtimespec import SPEC_VERSION

    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            version = state.loads(f.read().decode()).get("ociVersion")
    except (OSError, ValueError, AttributeError):
        return SPEC_VERSION
    return version if isinstance(version, str) else SPEC_VERSION


def cmd_create(args: Parsed, log: Log) -> int:
    started = create(args, log)
    if started.master is not None:
        os.close(started.master)
    os.close(started.pidfd)
    return 0


def start(args: Parsed, log: Log) -> None:
    record = read_state(args.root, args.id)
    status = record.get("status")
    if status != "created":
        raise RuntimeError_("cannot start a container that has stopped" if status == "stopped"
                            else f"cannot start a container in the {status} state")
    engine.release(_target(args.root, args.id))
    write_state(args.root, {**record, "status": "running"})
    _hooks("poststart", record, "running", log)


def cmd_start(args: Parsed, log: Log) -> int:
    start(args, log)
    return 0


def cmd_run(args: Parsed, log: Log) -> int:
    """create + start; in the foreground, wait for it, delete it, exit with its code."""
    from minidocker import init

    started = create(args, log, foreground=not args.detach, then_start=True)
    try:
        if args.detach:
            return 0
        import gc

        gc.enable()  # the container may run for days: ociruntime.main turned it off
        init.proxy_signals(started.pid)
        if started.master is not None and not args.console_socket:
            from minidocker import tty

            interactive = os.isatty(0)
            tty.copy_winsize(0, started.master)
            with tty.raw_mode(0) if interactive else contextlib.nullcontext():
                tty.relay(started.master, started.pidfd, 0 if interactive else None)
        _, status = os.waitpid(started.pid, 0)
        _delete(args.root, args.id, log)
        return init.exit_code(status)
    finally:
        os.close(started.pidfd)
        if started.master is not None:
            os.close(started.master)


def cmd_kill(args: Parsed, log: Log) -> int:
    from minidocker.lifecycle import LifecycleError, parse_signal

    record = read_state(args.root, args.id)
    if record.get("status") == "stopped":
        raise RuntimeError_("container not running")  # runc's words
    try:
        sig = parse_signal(args.signal)
    except LifecycleError as exc:
        raise RuntimeError_(str(exc)) from None
    if args.all:
        c = lifecycle.Container(engine_layout(args.root), engine_id(args.id))
        cgroup = c.cgroup()
        for pid in cgroup.pids() if cgroup is not None else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return 0
    engine.kill(_target(args.root, args.id), sig, recorded=False)
    return 0


def _delete(root: str, cid: str, log: Log) -> None:
    """Everything the container holds goes, then its ``poststop`` hooks run."""
    try:
        record = read_state(root, cid)
    except RuntimeError_:
        record = {}
    # LifecycleError: the engine's part is gone already (a delete that died half-way).
    with contextlib.suppress(lifecycle.LifecycleError):
        engine.remove(_target(root, cid), force=True)
    remove_state_dir(root, cid)
    _hooks("poststop", {**record, "pid": 0}, "stopped", log)


def cmd_delete(args: Parsed, log: Log) -> int:
    try:
        record = read_state(args.root, args.id)
    except RuntimeError_:
        if args.force:  # runc: deleting what is not there is done, with --force
            return 0
        raise
    status = record.get("status")
    if status in ("running", "paused") and not args.force:
        raise RuntimeError_(f"cannot delete container {args.id} that is not stopped: {status}")
    _delete(args.root, args.id, log)
    return 0


def _cgroup(root: str, cid: str) -> object:
    read_state(root, cid)  # "container does not exist"
    c = lifecycle.Container(engine_layout(root), engine_id(cid))
    cgroup = c.cgroup()
    if cgroup is None:
        raise RuntimeError_("container not running")
    return cgroup


def cmd_ps(args: Parsed, log: Log) -> int:
    pids = sorted(_cgroup(args.root, args.id).pids())  # type: ignore[attr-defined]
    if args.format == "json":
        print(state.dumps(pids))
        return 0
    import subprocess

    out = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError_(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    column = lines[0].split().index("PID") if lines and "PID" in lines[0].split() else 1
    print(lines[0] if lines else "")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            print(line)
    return 0


def cmd_pause(args: Parsed, log: Log) -> int:
    record = read_state(args.root, args.id)
    if record.get("status") != "running":
        raise RuntimeError_(f"container not running: {record.get('status')}")
    _cgroup(args.root, args.id).freeze()  # type: ignore[attr-defined]
    write_state(args.root, {**record, "status": "paused"})
    return 0


def cmd_resume(args: Parsed, log: Log) -> int:
    record = read_state(args.root, args.id)
    if record.get("status") != "paused":
        raise RuntimeError_("container not paused")
    _cgroup(args.root, args.id).thaw()  # type: ignore[attr-defined]
    write_state(args.root, {**record, "status": "running"})
    return 0


def exec_document(args: Parsed, bundle: str) -> dict:
    """The bundle's config.json with ``process`` replaced: by ``--process P.json``, else the
    container's own process with runc exec's flags laid over it."""
    with open(os.path.join(bundle, "config.json"), "rb") as f:
        document = state.loads(f.read().decode())
    if args.process:
        with open(args.process, "rb") as f:
            document["process"] = state.loads(f.read().decode())
        return document
    if not args.process_args:
        raise RuntimeError_("exec: give the process as --process P.json or as arguments")
    process = dict(document.get("process") or {})
    process["args"] = list(args.process_args)
    process["terminal"] = bool(args.tty)
    process["env"] = list(process.get("env") or []) + list(args.env)
    if args.cwd:
        process["cwd"] = args.cwd
    if args.user:
        uid, _, gid = args.user.partition(":")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    document["process"] = process
    return document


def cmd_exec(args: Parsed, log: Log) -> int:
    from minidocker import ocibundle

    record = read_state(args.root, args.id)
    if record.get("status") != "running":
        raise RuntimeError_(f"cannot exec in a {record.get('status')} container")
    try:
        document = exec_document(args, record["bundle"])
    except OSError as exc:
        raise RuntimeError_(f"exec: {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise RuntimeError_(f"exec: the process is not JSON: {exc}") from None
    config, oci = ocibundle.translate(document, record["bundle"])
    if config.process.tty and not args.console_socket and args.detach:
        raise RuntimeError_("cannot allocate tty if runc will detach without setting console "
                            "socket")

    def started(pid: int) -> None:
        if args.pid_file:
            _write_pid_file(args.pid_file, pid)

    if not args.detach:
        import gc

        gc.enable()  # it waits for the process, maybe for hours: ociruntime.main turned it off

    return engine.exec_bundle_process(_target(args.root, args.id), config, oci,
                                      detach=args.detach, console_socket=args.console_socket,
                                      started=started)


def cmd_update(args: Parsed, log: Log) -> int:
    """New cgroup limits from a ``linux.resources`` document (``-r FILE``, ``-`` for stdin)."""
    import sys

    from minidocker import ocibundle

    if not args.resources:
        raise RuntimeError_("update: give the limits as --resources R.json (runc's other "
                            "flags are not supported)")
    read_state(args.root, args.id)
    try:
        if args.resources == "-":
            document = state.loads(sys.stdin.read())
        else:
            with open(args.resources, "rb") as f:
                document = state.loads(f.read().decode())
    except OSError as exc:
        raise RuntimeError_(f"update: {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise RuntimeError_(f"update: the resources are not JSON: {exc}") from None
    limits, rules = ocibundle.resources(document)
    if rules:
        raise RuntimeError_("update: linux.resources.devices: changing device rules is not "
                            "supported")
    engine.update(_target(args.root, args.id), limits)
    return 0
