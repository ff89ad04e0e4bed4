"""How long a new process takes to get into a new cgroup, the slow way and minidocker's way.

Each round makes a fresh group (as ``run`` makes one per container), forks, and times from
just before fork(2) until the child reports that it is inside:

- ``cgroup.procs``: the child writes ``0`` to ``cgroup.procs`` (what runc does), so the kernel
  takes the writer side of its global ``cgroup_threadgroup_rwsem`` and waits for an RCU grace
  period first;
- minidocker's way (:meth:`minidocker.cgroups.Cgroup.fork_into` and ``join``): on v1 the
  child's one thread moves itself through ``tasks``, on v2 it is born in the group by
  ``clone3(CLONE_INTO_CGROUP)``; neither waits.

Rounds are spaced (``gap``): the kernel keeps the lock in its "writer was here" state for a
grace period after a writer leaves, so a second slow-way write right after the first would
look fast. That is also why one slow join can hide behind another on a busy host.

Run it as a program, in a process of its own (forking a threaded Jupyter kernel is unsafe)::

    python -m minidocker.cgroups.joinbench --rounds 15      # JSON on stdout

:func:`minidocker.lab.join_latency` does that for lesson 02. Needs root.
"""

from __future__ import annotations

import json
import os
import sys
import time

from minidocker import cgroups


def _one(cgroup: cgroups.Cgroup, slow: bool) -> float:
    """Milliseconds from fork until the child is in ``cgroup``."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    if slow:
        pid, born = os.fork(), False
    else:
        pid, born = cgroup.fork_into()
    if pid == 0:
        code = 0
        try:
            if slow:
                cgroup.driver().move(cgroup.paths, 0)
            elif not born:
                cgroup.join()
            os.write(w, b"x")
        except BaseException:
            code = 1
        os._exit(code)
    os.close(w)
    got = os.read(r, 1)
    elapsed = (time.perf_counter() - t0) * 1000
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if got != b"x" or status != 0:
        raise OSError(f"the child could not join {cgroup}")
    return elapsed


def measure(rounds: int = 15, gap: float = 0.1) -> dict[str, list[float]]:
    """``{"cgroup.procs": [ms...], "tasks" (v1) or "clone3" (v2): [ms...]}``, interleaved."""
    fast = "clone3" if cgroups.version() == 2 else "tasks"
    out: dict[str, list[float]] = {"cgroup.procs": [], fast: []}
    for i in range(rounds):
        for way in out:
            time.sleep(gap)
            cgroup = cgroups.create(f"joinbench-{os.getpid()}-{i}-{way}", cgroups.CgroupLimits())
            try:
                out[way].append(_one(cgroup, slow=way == "cgroup.procs"))
            finally:
                cgroup.destroy()
    return out


def main(argv: list[str]) -> int:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 15
    print(json.dumps(measure(rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
