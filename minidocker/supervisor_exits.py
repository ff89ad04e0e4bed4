"""How a supervised container ends, and what follows: when its pidfd becomes readable the
supervisor reads what is left of its output, wait(2)s for it (it is the parent), records the
exit code, gives back its cgroup and network, tells attached clients (a last system frame,
``docs/supervisor-protocol.md``), and then restarts it after a back-off (``--restart``:
:func:`minidocker.lifecycle.should_restart`, :func:`minidocker.lifecycle.restart_delay`),
removes it (``--rm``) or forgets it. As a subreaper it also reaps orphans re-parented to it.

Notebook: ``09_lifecycle`` (it prints :meth:`Exits.exited`). Man pages: wait(2), waitid(2),
pidfd_open(2), prctl(2) (PR_SET_CHILD_SUBREAPER).
"""

from __future__ import annotations

import os
import time

from minidocker import container, lifecycle, state
from minidocker.errors import MinidockerError
from minidocker.supervisor_loop import SYSTEM, Box, Loop, _readable, frame, log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Exits(Loop):
    """Ends and restarts: a mixin of :class:`minidocker.supervisor.Supervisor`."""

    def exited(self, box: Box) -> None:
        """Its first process ended: read what is left, wait(2), record, then restart,
        remove or forget it."""
        if self.boxes.get(box.id) is not box or not _readable(box.pidfd):
            return  # a stale event for a reused descriptor number
        self.health_stop(box.id)  # a check in flight is killed: its result would be stale
        for fd in list(box.streams):
            while fd in box.streams and _readable(fd):
                self.on_output(box, fd)
        code, error = lifecycle.NO_EXIT_CODE, ""
        if box.child:
            try:
                _, status = os.waitpid(box.pid, 0)
                from minidocker import init

                code = init.exit_code(status)
            except ChildProcessError:
                box.child = False
        if not box.child:
            error = lifecycle.READOPTED_END
        oom = self._release(box)
        self.forget(box)
        hostconfig: dict[str, Any] = {}
        restart = False
        try:
            with lifecycle.locked(box.cdir):
                record = lifecycle.read(box.cdir, "state", {})
                hostconfig = lifecycle.read(box.cdir, "hostconfig", {})
                restart = not hostconfig.get("AutoRemove") and lifecycle.should_restart(
                    hostconfig.get("RestartPolicy") or {}, code,
                    int(record.get("RestartCount") or 0), bool(record.get("ManuallyStopped")))
                record.update(Status="restarting" if restart else "exited", Pid=0,
                              ExitCode=code, Error=error, OOMKilled=oom,
                              FinishedAt=lifecycle.now())
                lifecycle.write(box.cdir, "state", record)
        except MinidockerError:  # removed meanwhile (rm -f): nothing left to record
            pass
        log(f"{box.id[:12]} exited with {code}" + (": restarting" if restart else ""))
        for conn in list(box.attached):
            conn.closing = True
            self.send_client(conn, frame(SYSTEM, state.dumps({"exit": code}).encode()))
        box.attached.clear()
        if restart:
            delay = lifecycle.restart_delay(self.delays.get(box.id, 0.0),
                                            time.monotonic() - box.started)
            self.delays[box.id] = delay
            self.later(delay, lambda: self.restart(box.id))
        else:
            self.delays.pop(box.id, None)
            if hostconfig.get("AutoRemove"):  # --rm: its anonymous volumes go with it
                container.teardown(self.layout, box.id, volumes=True)

    def _release(self, box: Box) -> bool:
        """Give back what the container held on the host while it ran, as a foreground run
        does when its container exits: its cgroup (the kernel's OOM count is read first) and
        its network.
        Returns whether the kernel killed it for memory."""
        from minidocker import cgroups

        cgroup = box.cgroup
        if cgroup is None:
            parent = str(lifecycle.read(box.cdir, "config", {}).get("cgroup_parent") or "") \
                if os.path.isdir(box.cdir) else ""
            cgroup = cgroups.find(box.id, parent)
        oom = False
        if cgroup is not None:
            oom = cgroup.oom_killed()
            cgroup.destroy()
        container.release_network(box.cdir, box.id)
        return oom

    def restart(self, cid: str) -> None:
        """The restart timer: start it again, unless it was stopped or removed meanwhile."""
        cdir = self.layout.container(cid)
        try:
            with lifecycle.locked(cdir):
                record = lifecycle.read(cdir, "state", {})
                if record.get("Status") != "restarting":
                    return
                if record.get("ManuallyStopped"):
                    record["Status"] = "exited"
                    lifecycle.write(cdir, "state", record)
                    return
                record["RestartCount"] = int(record.get("RestartCount") or 0) + 1
                lifecycle.write(cdir, "state", record)
                self.start(cid)
        except MinidockerError as exc:
            log(f"restarting {cid[:12]} failed: {exc}")

    def reap_strays(self) -> None:
        """wait(2) for every exited child that is not a container we watch: as a subreaper
        we inherit orphans from below (under ``--pid host``, say, or the command of a killed
        health check), and our keeper is ours."""
        ours = {box.pid: box for box in self.boxes.values() if box.child}
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            box = ours.pop(info.si_pid, None)
            if box is not None:
                self.exited(box)  # its pidfd event has not come round yet
            elif info.si_pid in self.checks:
                self.checks[info.si_pid]()  # a health check's process: its end, recorded
            else:
                os.waitpid(info.si_pid, 0)
