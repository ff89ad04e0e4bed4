"""apply_mounts and --read-only for real, in a child with a private mount namespace.

Not through ``run`` (the start step that calls them comes later): a forked child unshares
its mount namespace, makes a root filesystem of a tmpfs, applies a plan, and reports what
/proc/self/mountinfo and a few writes show. Everything it mounted dies with its namespace.
"""

from __future__ import annotations

import errno
import json
import os
import traceback
from pathlib import Path
from typing import Any

import pytest

from minidocker import mounting, mounts, rootfs, syscalls
from minidocker.syscalls import CLONE, MS
from tests.conftest import needs_root

pytestmark = [pytest.mark.kernel, needs_root, pytest.mark.nb08]


def _in_child(body: Any) -> dict[str, Any]:
    """Run ``body()`` in a forked child in a new private mount namespace; its JSON result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            syscalls.unshare(CLONE.NEWNS)
            rootfs.make_mounts_private()
            result = body()
        except BaseException:
            result, code = {"error": traceback.format_exc()}, 1
        os.write(write_end, json.dumps(result).encode())
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    result = json.loads(data)
    assert os.waitstatus_to_exitcode(status) == 0, result.get("error")
    return result  # type: ignore[no-any-return]


def _mountinfo() -> dict[str, tuple[str, str, str, str]]:
    """mount point -> (per-mount options, propagation, fstype, super options); the top one
    wins."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        text = f.read()
    for line in text.splitlines():
        fields = line.split()
        sep = fields.index("-")
        out[fields[4]] = (fields[5], rootfs.propagation_of(fields[4], text), fields[sep + 1],
                          fields[sep + 3])
    return out


def _write_errno(path: str) -> int:
    try:
        Path(path).write_text("x")
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_apply_mounts_binds_propagation_readonly_and_tmpfs(state_root: Path) -> None:
    base = state_root / "mounts"
    root, src, shared_src, sub = (str(base / n) for n in ("rootfs", "src", "shared", "sub"))
    for d in (root, src, shared_src, sub):
        os.makedirs(d)
    Path(src, "hello").write_text("hi")

    def body() -> dict[str, Any]:
        syscalls.mount("tmpfs", root, "tmpfs", MS(0), "mode=755")  # the root filesystem
        os.symlink("/etc", os.path.join(root, "evil"))  # an image's trap: /evil -> /etc
        # a source with a mount inside it (for :ro's recursion) and one that is shared
        syscalls.mount("tmpfs", sub, "tmpfs", MS(0), None)
        os.makedirs(os.path.join(src, "inner"), exist_ok=True)
        syscalls.mount(sub, os.path.join(src, "inner"), None, MS.BIND)
        syscalls.mount("tmpfs", shared_src, "tmpfs", MS(0), None)
        syscalls.mount(None, shared_src, None, MS.SHARED)
        planned = mounts.plan(mounts.parse_flags(
            [f"{src}:/data/ro:ro", f"{shared_src}:/shared:shared",
             f"{shared_src}:/slave:rslave", f"{src}:/evil/x"], [],
            ["/run:size=1m,mode=1777"], "/"), {})
        mounting.apply_mounts(root, planned)
        mounting.remount_root_readonly(root)
        info = _mountinfo()
        return {
            "info": {k[len(root):] or "/": v for k, v in info.items() if k.startswith(root)},
            "read": Path(root, "data/ro/hello").read_text(),
            "ro_write": _write_errno(os.path.join(root, "data/ro/new")),
            "ro_inner_write": _write_errno(os.path.join(root, "data/ro/inner/new")),
            "source_still_rw": _write_errno(os.path.join(src, "inner", "ok")),
            "root_write": _write_errno(os.path.join(root, "new")),
            "run_write": _write_errno(os.path.join(root, "run/new")),
            "run_mode": oct(os.stat(os.path.join(root, "run")).st_mode & 0o7777),
            "host_etc_x": os.path.exists("/etc/x"),
        }

    seen = _in_child(body)
    info = seen["info"]
    assert seen["read"] == "hi"
    assert info["/data/ro"][0].startswith("ro,") and seen["ro_write"] == errno.EROFS
    assert info["/data/ro/inner"][0].startswith("ro,")  # recursively read-only
    assert seen["ro_inner_write"] == errno.EROFS and seen["source_still_rw"] == 0
    assert info["/data/ro"][1] == "private"  # rprivate, the default
    assert info["/shared"][1] == "shared" and info["/slave"][1] == "slave"
    assert info["/run"][2] == "tmpfs" and seen["run_mode"] == "0o1777"
    assert "size=1024k" in info["/run"][3].split(",")
    assert "noexec" in info["/run"][0] and "nosuid" in info["/run"][0]
    # --read-only: the root is read-only, the mounts on it are not
    assert info["/"][0].startswith("ro,") and seen["root_write"] == errno.EROFS
    assert seen["run_write"] == 0
    # the symlink was followed inside the root, never out to the host's /etc
    assert "/etc/x" in info and not seen["host_etc_x"]
    assert not os.path.exists(base / "rootfs" / "run")  # all of it died with the namespace


def test_readonly_remount_keeps_nodev_and_nosuid(state_root: Path) -> None:
    root = str(state_root / "rootfs")
    os.makedirs(root)

    def body() -> dict[str, Any]:
        syscalls.mount("tmpfs", root, "tmpfs", MS.NODEV | MS.NOSUID, None)
        mounting.remount_root_readonly(root)
        return {"options": _mountinfo()[root][0]}

    options = _in_child(body)["options"].split(",")
    assert {"ro", "nodev", "nosuid"} <= set(options)
