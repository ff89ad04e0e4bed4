"""OCI hooks: the programs a bundle's ``hooks`` asks the runtime to run around its lifecycle.

Each hook is ``{"path", "args", "env", "timeout"}``: ``path`` is executed with exactly ``args``
(``args[0]`` is its argv[0]) and exactly ``env``, the container's state JSON (the one ``state``
prints) on its stdin, and is killed after ``timeout`` seconds. Where and when each kind runs is
the runtime-spec's (``config.md`` "POSIX-platform Hooks", ``runtime.md`` "Lifecycle"):

=================== ============================================ ============== ============
hook                when, and in which namespaces                state.status   a failure
=================== ============================================ ============== ============
``prestart``        ``create``, the container's namespaces and   ``created``    fails
                    mounts made, before pivot_root; run by the                  ``create``:
                    runtime (its namespaces), asked by the                      all undone
                    container's process (``?hooks``)
``createRuntime``   right after ``prestart``, the same way       ``created``    the same
``createContainer`` then, run by the container's process: its    ``created``    the same
                    namespaces, the runtime's paths still there
``startContainer``  ``start``: in the container, confined,       ``created``    fails
                    after pivot_root, just before execve                        ``start``
``poststart``       ``start``, once the process runs, before     ``running``    a warning
                    ``start`` returns; the runtime's namespaces
``poststop``        ``delete`` (or a failed ``create``), once    ``stopped``    a warning
                    the container is gone
=================== ============================================ ============== ============

The container's side runs its hooks with nothing but ``os``, ``select`` and ``signal`` (after
pivot_root the host's Python library is out of reach); its state is rendered before.
See runc's ``libcontainer/configs/config.go`` (``Hook.Run``), which does the same.
"""

from __future__ import annotations

import os
import select
import signal
import time

from minidocker.errors import MinidockerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from minidocker.runtimespec import OciSpec

HOST_PHASE = "hooks"  # what the container's process asks the runtime for (?hooks)
IN_RUNTIME = ("prestart", "createRuntime")  # at create, by the runtime, before pivot_root
RECORDED = ("poststart", "poststop")  # kept in the runtime's state.json for start and delete
KEPT_OUTPUT = 2048  # bytes of a hook's stdout/stderr quoted when it fails


class HookError(MinidockerError):
    """A hook that failed: its name, index and path, and why (one line)."""


def state(oci_id: str, bundle: str, annotations: Mapping[str, str], pid: int,
          status: str) -> bytes:
    """The state JSON a hook reads on stdin: the spec's ``state``."""
    import json

    from minidocker.runtimespec import SPEC_VERSION

    return json.dumps({"ociVersion": SPEC_VERSION, "id": oci_id, "status": status, "pid": pid,
                       "bundle": bundle, "annotations": dict(annotations)}).encode()


def state_of(oci: OciSpec, pid: int, status: str) -> bytes:
    return state(oci.container_id, oci.bundle, oci.annotations, pid, status)


def run(name: str, hooks: list[dict[str, Any]], stdin: bytes) -> None:
    """Run the hooks of kind ``name`` in order; the first failure raises :class:`HookError`."""
    for i, hook in enumerate(hooks):
        run_one(f"hooks.{name}[{i}]", hook, stdin)


def run_one(where: str, hook: Mapping[str, Any], stdin: bytes) -> None:
    path = hook["path"]
    argv = list(hook.get("args") or []) or [path]
    env = dict(item.partition("=")[::2] for item in hook.get("env") or [])
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    saved = signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a hook that ignores its stdin
    try:
        pid = os.fork()
        if pid == 0:
            _exec_hook(path, argv, env, in_r, out_w)
        os.close(in_r)
        os.close(out_w)
        output, code = _follow(pid, in_w, out_r, stdin, hook.get("timeout"))
    finally:
        signal.signal(signal.SIGPIPE, saved)
    if code is None:
        raise HookError(f"{where}: {path} timed out after {hook.get('timeout')}s")
    if code != 0:
        said = " ".join(output.decode(errors="replace").split())[-300:]
        raise HookError(f"{where}: {path} exited with status {code}" +
                        (f": {said}" if said else ""))


def _exec_hook(path: str, argv: list[str], env: dict[str, str], stdin: int,
               output: int) -> None:
    """In the forked child: stdin the state, stdout and stderr the runtime's pipe; never
    returns."""
    try:
        os.dup2(stdin, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.closerange(3, 1 << 20)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        os.execve(path, argv, env)
    except OSError as exc:
        os.write(2, f"exec: {exc.strerror}".encode())
    finally:
        os._exit(127)


def _follow(pid: int, stdin_w: int, out_r: int, data: bytes,
            timeout: int | None) -> tuple[bytes, int | None]:
    """Feed ``data`` to the hook's stdin and keep the tail of its output until it exits;
    (output, exit code), the code None if ``timeout`` passed (the hook is then killed)."""
    pidfd = os.pidfd_open(pid)
    deadline = None if timeout is None else time.monotonic() + timeout
    output = b""
    os.set_blocking(stdin_w, False)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(out_r, select.POLLIN)
    poller.register(stdin_w, select.POLLOUT)
    writing, reading = True, True
    try:
        while True:
            wait = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            ready = dict(poller.poll(wait))
            if not ready and deadline is not None and time.monotonic() >= deadline:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.waitpid(pid, 0)
                return output, None
            if writing and stdin_w in ready:
                try:
                    data = data[os.write(stdin_w, data):]
                except BrokenPipeError:  # it closed its stdin: what it read is its business
                    data = b""
                if not data:
                    poller.unregister(stdin_w)
                    os.close(stdin_w)
                    writing = False
            if reading and out_r in ready:
                chunk = os.read(out_r, 65536)
                output = (output + chunk)[-KEPT_OUTPUT:]
                if not chunk:
                    poller.unregister(out_r)
                    reading = False
            if pidfd in ready:
                break
        os.set_blocking(out_r, False)
        while reading:  # what it wrote last; a child it left holding the pipe is not waited for
            try:
                chunk = os.read(out_r, 65536)
            except BlockingIOError:
                break
            output = (output + chunk)[-KEPT_OUTPUT:]
            reading = bool(chunk)
        _, status = os.waitpid(pid, 0)
        return output, os.waitstatus_to_exitcode(status)
    finally:
        os.close(pidfd)
        os.close(out_r)
        if writing:
            os.close(stdin_w)


class RuntimeHooks:
    """The host's step (``container.start``'s ``host_steps``) that runs ``prestart`` and
    ``createRuntime`` when the container's process asks for :data:`HOST_PHASE`: after its
    namespaces and mounts, before its pivot_root."""

    phase = HOST_PHASE

    def __init__(self, oci: OciSpec) -> None:
        self.oci = oci

    def __call__(self, pid: int) -> None:
        stdin = state_of(self.oci, pid, "created")
        for name in IN_RUNTIME:
            run(name, self.oci.hooks.get(name) or [], stdin)


def run_recorded(name: str, record: Mapping[str, Any], status: str,
                 warn: Callable[[str], None]) -> None:
    """``poststart`` or ``poststop``, from the runtime's state record: every hook runs, and a
    failure is only a warning (the spec: "the remaining hooks and lifecycle continue")."""
    hooks = (record.get("hooks") or {}).get(name) or []
    if not hooks:
        return
    stdin = state(record["id"], record.get("bundle") or "", record.get("annotations") or {},
                  int(record.get("pid") or 0), status)
    for i, hook in enumerate(hooks):
        try:
            run_one(f"hooks.{name}[{i}]", hook, stdin)
        except (HookError, OSError) as exc:
            warn(f"{exc}")
