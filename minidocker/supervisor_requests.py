"""The supervisor's side of the protocol (``docs/supervisor-protocol.md``): accepting clients,
reading one JSON request per connection and answering it, and the requests themselves:
``ping``, ``create`` (plan with the engine, make, start), ``start``, ``attach``, ``resize``.
A client that attaches stays as a stream (:meth:`Requests.join`, :meth:`Requests.detach`).

Starting a container is here too (:meth:`Requests.start`): the supervisor starts it with the
same :func:`minidocker.container.start` as a foreground ``run``, so it is its parent.

Notebook: ``09_lifecycle``. Man pages: unix(7), poll(2) (POLLHUP).
"""

from __future__ import annotations

import os
import signal

from minidocker import container, engine, health, lifecycle, state
from minidocker.config import ContainerConfig
from minidocker.errors import MinidockerError
from minidocker.supervisor_loop import STDERR, STDOUT, Box, Conn, Loop, log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minidocker.spec import Spec


class Requests(Loop):
    """The protocol's handlers: a mixin of :class:`minidocker.supervisor.Supervisor`."""

    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = Conn(sock)
        self.conns[sock.fileno()] = conn
        self.watch(sock.fileno(), lambda: self.on_client(conn))

    def on_client(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if conn.box is not None:  # attached: what the client types goes to the container
            if data:
                if conn.stdin:
                    self.to_stdin(conn.box, data)
                return
            self.watch(conn.sock.fileno(), None)
            if _hung_up(conn.sock.fileno()):  # gone (detached, or killed): stdin stays open
                self.close_conn(conn)
                return
            if conn.stdin:  # shutdown(SHUT_WR): its input ended, so does the container's
                self.close_stdin(conn.box)
            if not conn.want:
                self.close_conn(conn)
            return
        if not data:
            self.close_conn(conn)
            return
        conn.inbuf += data
        if b"\n" not in conn.inbuf:
            if len(conn.inbuf) > 1 << 20:
                self.close_conn(conn)
            return
        line, _, rest = conn.inbuf.partition(b"\n")
        conn.inbuf = b""
        self.watch(conn.sock.fileno(), None)  # one request per connection
        try:
            reply = self.handle(state.loads(line.decode()), conn)
            reply["ok"] = True
        except MinidockerError as exc:
            reply = {"ok": False, "error": str(exc), "exit": exc.exit_code}
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "error": f"bad request: {exc!r}", "exit": 125}
        except OSError as exc:
            notes = "; ".join(getattr(exc, "__notes__", []))
            reply = {"ok": False, "error": f"{exc}" + (f" ({notes})" if notes else ""),
                     "exit": 125}
        except Exception as exc:  # a bug must fail one request, not every container's parent
            import traceback

            log("".join(traceback.format_exception(exc)).rstrip())
            reply = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc} "
                     f"(see {self.paths['log']})", "exit": 125}
        if not reply["ok"] and conn.box is not None:
            self.detach(conn)
        self.write(conn.sock.fileno(), state.dumps(reply).encode() + b"\n")
        if conn.box is not None:  # a stream from now on
            self.watch(conn.sock.fileno(), lambda: self.on_client(conn))
            if rest and conn.stdin:
                self.to_stdin(conn.box, rest)
        else:
            conn.closing = True
            self.flush(conn.sock.fileno())

    def close_conn(self, conn: Conn) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        self.readers.pop(fd, None)
        self.outq.pop(fd, None)
        self._update(fd)
        self.conns.pop(fd, None)
        self.detach(conn)
        conn.sock.close()

    def detach(self, conn: Conn) -> None:
        if conn.box is not None and conn in conn.box.attached:
            conn.box.attached.remove(conn)
        conn.box = None

    def handle(self, message: dict[str, Any], conn: Conn) -> dict[str, Any]:
        op = message.get("op")
        if op == "ping":
            return {"pid": os.getpid(), "containers": sorted(self.boxes)}
        if op == "create" and message.get("trace"):  # run -d --trace: into the client's file
            from minidocker import trace

            stop = trace.append_to(str(message["trace"]))
            try:
                return self.handle({**message, "trace": ""}, conn)
            finally:
                stop()
        if op == "create":
            config = ContainerConfig.from_dict(message["config"])
            said: list[str] = []  # a warning, for the client to print
            made = engine.plan(config, self.layout, said.append, str(message.get("id") or ""))
            output = "".join(line + "\n" for line in said)
            cid = self.create(made, made.hostconfig(config), bool(message.get("start")))
            if message.get("start"):
                try:
                    self.start(cid, (conn, message.get("attach")))
                except BaseException:
                    self._fresh.pop(cid, None)
                    self.detach(conn)
                    container.teardown(self.layout, cid)
                    raise
            if os.environ.get("MINIDOCKER_TEST_CRASH_BEFORE_REPLY") == "1":
                os.kill(os.getpid(), signal.SIGKILL)  # the tests' kill -9 at the worst moment
            return {"id": cid, **({"output": output} if output else {})}
        if op == "start":
            cid = self.resolve(message["id"])
            started = self.start(cid, (conn, message.get("attach")))
            return {"id": cid, "started": started, "tty": self.boxes[cid].tty
                    if cid in self.boxes else False}
        if op == "attach":
            cid = self.resolve(message["id"])
            box = self.boxes.get(cid)
            if box is None:
                record = lifecycle.read(self.layout.container(cid), "state", {})
                if lifecycle.status(record) == "running":
                    raise lifecycle.LifecycleError(
                        f"container {cid[:12]} runs in the foreground of another minidocker "
                        "run: attach to that terminal instead")
                raise lifecycle.LifecycleError(
                    "cannot attach to a stopped container, start it first")
            self.join(box, conn, message)
            return {"id": cid, "tty": box.tty}
        if op == "resize":
            box = self.boxes.get(self.resolve(message["id"]))
            if box is not None and box.master is not None:
                from minidocker import tty

                tty.set_winsize(box.master, int(message["rows"]), int(message["cols"]))
            return {}
        raise MinidockerError(f"unknown request {op!r}")

    def resolve(self, ref: str) -> str:
        try:
            return self.layout.resolve(ref)
        except MinidockerError as exc:
            raise lifecycle.LifecycleError(str(exc)) from None

    def join(self, box: Box, conn: Conn, attach: dict[str, Any] | None) -> None:
        """Make ``conn`` a stream of ``box``: its output to it, its input to the container."""
        if not attach:
            return
        conn.want = {n for n, key in ((STDOUT, "stdout"), (STDERR, "stderr")) if attach.get(key)}
        conn.stdin = bool(attach.get("stdin"))
        conn.box = box
        box.attached.append(conn)
        if box.master is not None and attach.get("rows"):
            from minidocker import tty

            tty.set_winsize(box.master, int(attach["rows"]), int(attach["cols"]))

    # -- containers -------------------------------------------------------------------------

    def create(self, made: engine.Plan, hostconfig: dict[str, Any],
               starting: bool = False) -> str:
        """Make a container's directory and records (:func:`minidocker.engine.make`), as
        ``create`` (and ``run -d``) do. ``starting``: it starts at once, and :meth:`start`
        writes the records while the container's process sets itself up."""
        cid = engine.make(made, hostconfig, self.layout, starting)
        if starting:
            self._fresh[cid] = (made.spec, made.lowers, {**hostconfig, "LowerDirs": made.lowers})
        log(f"created {cid[:12]} ({made.spec.name})")
        return cid

    def start(self, cid: str, attach: tuple[Conn, dict[str, Any] | None] | None = None) -> bool:
        """Start a created or stopped container as our child; False if it already runs.
        ``attach`` joins a client to its streams before it can write anything."""
        cdir = self.layout.container(cid)
        with lifecycle.locked(cdir):
            record = lifecycle.read(cdir, "state", {})
            if cid in self.boxes or lifecycle.is_running(record):
                if attach and cid in self.boxes:
                    self.join(self.boxes[cid], *attach)
                return False
            fresh = self._fresh.pop(cid, None)  # just created: its plan is still here
            spec, lowers = fresh[:2] if fresh else self._plan(cdir)
            base: dict[str, Any] = {key: record[key] for key in
                                    ("Created", "RestartCount", "FinishedAt") if key in record}
            if fresh:
                base.update(Created=lifecycle.now(), RestartCount=0)
            base.update(Supervised=True, ManuallyStopped=False, Error="", ExitCode=0,
                        OOMKilled=False, Paused=False)
            if spec.healthcheck is not None and health.probe_argv(spec.healthcheck):
                base["Health"] = health.initial(record.get("Health"))  # the log is kept

            def on_fork(pid: int) -> None:  # recorded at once: a crash now leaves no orphan
                lifecycle.write(cdir, "state", {**base, "Status": "starting", "Pid": pid,
                                                "StartTime": lifecycle.process_start_time(pid)})
                if fresh:  # written while the child sets up (config.json: by start())
                    lifecycle.write(cdir, "hostconfig", fresh[2])

            ours, theirs, stdio = self._pipes(spec)
            try:
                started = container.start(spec, lowers, cdir, stdio=stdio, tied=False,
                                          on_fork=on_fork)
            except BaseException as exc:
                for fd in ours:
                    os.close(fd)
                before = record.get("Status") or "created"
                lifecycle.write(cdir, "state", {
                    **record, "Status": "created" if before == "created" else "exited",
                    "Pid": 0, "ExitCode": getattr(exc, "exit_code", 125), "Error": str(exc)})
                raise
            finally:
                for fd in theirs:
                    os.close(fd)
            box = Box(cid, cdir)
            box.tty = spec.tty
            box.pid, box.pidfd, box.master = started.pid, started.pidfd, started.master
            box.cgroup = getattr(started, "cgroup", None)
            self.boxes[cid] = box
            self._watch_box(box, ours)
            self.health_start(box, spec.healthcheck, shell=spec.shell)
        if attach:
            self.join(box, *attach)
        self.keep(box)
        log(f"started {cid[:12]} as PID {box.pid}")
        return True

    def _plan(self, cdir: str) -> tuple[Spec, list[str]]:
        config = lifecycle.read(cdir, "config")
        try:
            spec = spec_from_record(config, cdir)
        except (TypeError, KeyError) as exc:
            raise MinidockerError(f"{cdir}/config.json was written by another version of "
                                  f"minidocker ({exc}): remove the container and create it "
                                  "again") from None
        lowers = lifecycle.read(cdir, "hostconfig", {}).get("LowerDirs")
        if not lowers:  # made by a foreground run: find its image's layers again
            from minidocker.store import ImageStore

            image = ImageStore(self.layout.root).resolve(spec.image_id)
            lowers = [str(p) for p in image.layer_dirs()]
        return spec, list(lowers)


def spec_from_record(fields: dict[str, Any], cdir: str) -> Spec:
    """The plan :meth:`Spec.as_dict` recorded (config.json, or a ``create`` request), as a
    :class:`Spec` again; the security plan is rebuilt from its record, never dropped."""
    from minidocker.spec import Spec

    fields = dict(fields)
    if isinstance(fields.get("security"), dict):
        from minidocker import security  # type: ignore[attr-defined,unused-ignore]

        fields["security"] = security.from_record(fields["security"],
                                                  security.cache_dir_for(cdir))
    return Spec(**fields)


def _hung_up(fd: int) -> bool:
    """Has the peer of this unix socket closed it, not just shut down its writing side?
    (unix(7): POLLHUP once both directions are shut down.)"""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(event & select.POLLHUP for _, event in poller.poll(0))
