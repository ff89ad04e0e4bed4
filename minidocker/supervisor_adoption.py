"""Re-adoption: what a supervisor does first, when it starts. The one before it may have died
(``kill -9``, a crash) while containers ran; they were re-parented to the host's init, and the
keeper (:mod:`minidocker.keeper`) held their pipes. For every record under the state root the
new supervisor watches again what still runs (by a pidfd: it is no longer their parent, so how
they end is recorded as 255), records the end of what died unseen, and starts what a restart
policy says must run. ``docs/supervisor-protocol.md`` has the keeper's protocol.

Notebook: ``09_lifecycle`` ("kill -9 the supervisor"). Man pages: pidfd_open(2), flock(2).
"""

from __future__ import annotations

import os

from minidocker import container, lifecycle, procfs, state
from minidocker.errors import MinidockerError
from minidocker.supervisor_loop import Box, Loop, log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Adoption(Loop):
    """Re-adoption at start: a mixin of :class:`minidocker.supervisor.Supervisor`."""

    def adopt(self) -> None:
        """Make sense of every record when we start: re-adopt what still runs, record the end
        of what died unseen, start what a restart policy says must run."""
        kept = self.keeper.take_all() if self.keeper is not None else {}
        for cid in lifecycle.list_ids(self.layout):
            try:
                self._adopt_one(cid, kept.pop(cid, {}))
            except MinidockerError as exc:
                log(f"{cid[:12]}: {exc}")
        for cid, fds in kept.items():  # removed while no supervisor ran
            for fd in fds.values():
                os.close(fd)
            self.keeper.drop(cid)
        _finish_removals(self.layout)

    def _adopt_one(self, cid: str, kept: dict[str, int]) -> None:
        cdir = self.layout.container(cid)
        try:
            with lifecycle.locked(cdir):
                self._reconcile(cid, cdir, kept)
        finally:
            for fd in kept.values():
                os.close(fd)
            if cid not in self.boxes and self.keeper is not None:
                self.keeper.drop(cid)

    def _reconcile(self, cid: str, cdir: str, kept: dict[str, int]) -> None:
        record = lifecycle.read(cdir, "state", {})
        hostconfig = lifecycle.read(cdir, "hostconfig", {})
        status = record.get("Status")
        alive = lifecycle.is_running(record)
        if not record.get("Supervised"):  # a foreground run's: its CLI is its parent
            if status in lifecycle.LIVE and not alive:  # ... and that was killed
                lifecycle.write(cdir, "state", {**record, **lifecycle.unseen_end(record)})
                container.release_cgroup(cdir, cid)
                if _config_says_remove(cdir):
                    container.teardown(self.layout, cid)
            return
        if status == "starting" and alive:  # we died half-way through starting it
            container.kill_container(int(record["Pid"]), record.get("StartTime"))
            alive = False
        pidfd = procfs.pidfd_open(int(record["Pid"])) if status in lifecycle.LIVE and alive \
            else None
        if pidfd is not None:  # still there now that it is pinned
            self._readopt(cid, cdir, record, kept, pidfd)
            return
        if status in lifecycle.LIVE:
            record.update(lifecycle.unseen_end(record))
            lifecycle.write(cdir, "state", record)
            log(f"{cid[:12]} ended while no supervisor ran")
            container.release_cgroup(cdir, cid)
        if hostconfig.get("AutoRemove") and status != "created":
            container.teardown(self.layout, cid)
            return
        policy = hostconfig.get("RestartPolicy") or {}
        if status in (*lifecycle.LIVE, "restarting") and lifecycle.should_restart(
                policy, int(record.get("ExitCode") or 0), int(record.get("RestartCount") or 0),
                bool(record.get("ManuallyStopped"))):
            record["Status"] = "restarting"
            lifecycle.write(cdir, "state", record)
            self.later(0, lambda: self.restart(cid))
        elif status == "restarting":
            record["Status"] = "exited"
            lifecycle.write(cdir, "state", record)
        elif status in ("exited", *lifecycle.LIVE) and \
                lifecycle.start_on_boot(policy, record):
            self.later(0, lambda: self._start_logged(cid))

    def _start_logged(self, cid: str) -> None:
        try:
            self.start(cid)
        except MinidockerError as exc:
            log(f"starting {cid[:12]} failed: {exc}")

    def _readopt(self, cid: str, cdir: str, record: dict[str, Any],
                 kept: dict[str, int], pidfd: int) -> None:
        """Watch a container that a dead supervisor started: by a pidfd (it is not our child:
        how it ends will be unknown) and its streams, as the keeper kept them."""
        box = Box(cid, cdir)
        box.child = False
        box.pid = int(record["Pid"])
        box.pidfd = pidfd
        master = kept.pop("master", None)
        box.master, box.tty = master, master is not None
        ours: list[int] = []
        if box.master is None and "stdout" in kept and "stderr" in kept:
            ours = [kept.pop("stdout"), kept.pop("stderr")]
            if "stdin" in kept:
                ours.append(kept.pop("stdin"))
        elif box.master is None:
            log(f"{cid[:12]}: the keeper had no pipes for it: its output is not logged")
        self.boxes[cid] = box
        self._watch_box(box, ours)
        self.keep(box)
        checked = record.get("Health") or {}  # its health checks go on where they were
        config = lifecycle.read(cdir, "config", {})
        self.health_start(box, config.get("healthcheck"),
                          lifecycle.parse_time(str(record.get("StartedAt") or "")) or None,
                          str(checked.get("Status") or "starting"), config.get("shell"))
        log(f"re-adopted {cid[:12]} (PID {box.pid})")


def _config_says_remove(cdir: str) -> bool:
    try:
        return bool(lifecycle.read(cdir, "config").get("remove"))
    except (MinidockerError, ValueError):
        return False


def _finish_removals(layout: state.Layout) -> None:
    """Finish removals that died half-way (``containers/.<id>.removing``)."""
    try:
        names = os.listdir(layout.containers)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(".") and name.endswith(".removing"):
            container.teardown(layout, name[1:-len(".removing")])
