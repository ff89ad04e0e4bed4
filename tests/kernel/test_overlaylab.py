"""The overlay bench notebook 04 uses: a child mounts, the notebook's process never does."""

from __future__ import annotations

import os

import pytest

from minidocker import overlaylab
from tests.conftest import needs_root

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb04]


def test_overlay_bench_mounts_only_in_its_child_and_cleans_up() -> None:
    with open("/proc/self/mountinfo") as f:
        before = f.read()
    with overlaylab.OverlayLab() as bench:
        bench.add_lower("base", {"etc/motd": b"hi\n", "dir/x": b"x", "a": b"a",
                                 "b": ("hardlink", "a"), "l": ("symlink", "a")})
        bench.add_lower("top", {"etc/extra": b"e"})
        out = bench.run("result['etc'] = sorted(os.listdir(merged + '/etc'))\n"
                        "os.unlink(merged + '/etc/motd')\n"
                        "import shutil; shutil.rmtree(merged + '/dir'); os.mkdir(merged + '/dir')")
        assert out["result"] == {"etc": ["extra", "motd"]}
        assert [e["call"] for e in out["trace"]][-1] == "mount"
        entries = dict(bench.upper_entries())
        assert entries["etc/motd"].startswith("whiteout")
        assert entries["dir"].startswith("directory, opaque")
        assert bench.run("result['ro'] = os.listdir(merged + '/etc')",
                         writable=False)["result"]["ro"] != []
        root = bench.root
    assert not os.path.exists(root)
    with open("/proc/self/mountinfo") as f:
        assert f.read() == before  # the notebook's (here: pytest's) view never changed


def test_a_failing_snippet_is_reported() -> None:
    with overlaylab.OverlayLab() as bench:
        bench.add_lower("base", {"f": b"f"})
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            bench.run("1 / 0")
