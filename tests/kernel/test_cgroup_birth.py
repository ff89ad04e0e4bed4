"""A child born in its cgroup: clone3(CLONE_INTO_CGROUP), the v2 way to start a container in
its group without moving it there (no cgroup.procs write, no grace period).

It needs a cgroup2 mount, not a v2 host: a v1 "hybrid" host (like the development machines)
has one at /sys/fs/cgroup/unified, so this runs there too, on the real kernel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker import cgroups
from tests.conftest import needs_root


def _cgroup2_mount() -> str | None:
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if cgroups.version(root) == 2:
            return root
    return None


ROOT = _cgroup2_mount()
pytestmark = [needs_root, pytest.mark.nb02,
              pytest.mark.skipif(ROOT is None, reason="no cgroup2 mount on this host")]


@pytest.fixture
def group() -> Iterator[cgroups.Cgroup]:
    assert ROOT is not None
    cg = cgroups.create(f"birth{os.getpid()}", cgroups.CgroupLimits(),
                        f"minidocker-t{os.getpid()}-birth", root=ROOT)
    yield cg
    cg.destroy()
    Path(ROOT, f"minidocker-t{os.getpid()}-birth").rmdir()


def _child_reports(pid: int, r: int) -> str:
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with os.fdopen(r) as f:
        return f.read()


def test_the_child_is_born_in_its_v2_group(group: cgroups.Cgroup) -> None:
    r, w = os.pipe()
    pid, born = group.fork_into()
    if pid == 0:  # the child: say where it is and go
        os.write(w, Path("/proc/self/cgroup").read_bytes())
        os._exit(0)
    os.close(w)
    own = [line for line in _child_reports(pid, r).splitlines() if line.startswith("0::")]
    assert born
    assert own == [f"0::/minidocker-t{os.getpid()}-birth/birth{os.getpid()}"]


def test_born_with_namespaces_too(group: cgroups.Cgroup) -> None:
    # clone3's flags carry the namespaces as clone(2)'s did: a new UTS namespace here.
    from minidocker import syscalls

    r, w = os.pipe()
    pid, born = group.fork_into(syscalls.CLONE.NEWUTS)
    if pid == 0:
        os.write(w, os.readlink("/proc/self/ns/uts").encode())
        os._exit(0)
    os.close(w)
    assert born
    assert _child_reports(pid, r) != os.readlink("/proc/self/ns/uts")
