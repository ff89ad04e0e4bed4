"""The capstone's timing helpers without a kernel: a synthetic trace on one line of time, by
mechanism, and the OCI runtimes' command lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from minidocker import labtime

pytestmark = pytest.mark.nb10


def ev(t_ms: float, where: str, kind: str, call: str, ms: float = 0.0) -> dict[str, object]:
    return {"t_ms": t_ms, "where": where, "pid": 1 if where == "container" else 4242,
            "kind": kind, "call": call, "args": [], "result": "0", "ms": ms}


# Both sides taking turns, written in the order the parent writes the JSON lines (the host's
# network steps come after the child's first events in the file, but earlier in time).
EVENTS = [
    ev(5.0, "host", "step", "prepare"),
    ev(6.0, "host", "step", "cgroup"),
    ev(6.5, "host", "syscall", "mkdir", 0.1),
    ev(7.0, "host", "step", "fork"),
    ev(8.0, "container", "step", "namespaces"),
    ev(8.5, "container", "syscall", "unshare", 0.4),
    ev(20.0, "container", "step", "rootfs"),
    ev(23.0, "container", "step", "security"),
    ev(24.0, "container", "step", "exec"),
    ev(24.1, "container", "syscall", "execve"),
    ev(9.0, "host", "step", "veth"),
    ev(11.0, "host", "step", "publish"),
    ev(60.0, "host", "syscall", "rmdir", 0.1),
    ev(61.0, "host", "step", "release"),
    ev(70.0, "host", "step", "exited"),
    ev(70.5, "host", "note", "status 0"),
]


def test_spans_tile_both_sides_in_time_order_until_the_next_step() -> None:
    found = labtime.spans(EVENTS)
    assert [(s.name, s.start_ms, s.end_ms) for s in found] == [
        ("minidocker", 0.0, 5.0), ("prepare", 5.0, 6.0), ("cgroup", 6.0, 7.0),
        ("fork", 7.0, 8.0), ("namespaces", 8.0, 9.0),  # the child waits from here...
        ("veth", 9.0, 11.0), ("publish", 11.0, 20.0),  # ...while the host wires its network
        ("rootfs", 20.0, 23.0), ("security", 23.0, 24.0),
        ("exec", 24.0, 24.1),  # up to its execve: the command's run is not the start
        ("release", 61.0, 70.0), ("exited", 70.0, 70.5)]
    assert [s.phase for s in found].count("teardown") == 2
    assert found[-1].phase == "teardown" and found[-3].phase == "start"


def test_totals_by_mechanism_and_phase() -> None:
    found = labtime.spans(EVENTS)
    start = labtime.totals(found)
    assert list(start) == list(labtime.MECHANISMS)
    assert start == pytest.approx({"minidocker": 5.0, "namespaces": 2.0, "cgroups": 1.0,
                                   "rootfs/overlay": 4.0, "network": 11.0, "security": 1.0,
                                   "exec": 0.1})
    teardown = labtime.totals(found, "teardown")
    assert teardown["network"] == pytest.approx(9.0) and teardown["exec"] == pytest.approx(0.5)
    assert labtime.spans([]) == []


def test_every_step_the_start_traces_has_a_mechanism() -> None:
    """Each ``trace.step("NAME", ...)`` in the package is in MECHANISM: a new step must be
    placed, or the capstone's chart would file it under exec without saying so."""
    package = Path(labtime.__file__).parent
    named = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "step" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "trace" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                named.add(node.args[0].value)
    assert named, "found no trace.step calls: the scan is broken"
    assert sorted(named - set(labtime.MECHANISM)) == []


def test_plot_shows_a_lane_per_mechanism() -> None:
    pytest.importorskip("matplotlib", reason="comes with the notebooks extra")
    import matplotlib

    matplotlib.use("Agg")
    fig = labtime.plot_spans(labtime.spans(EVENTS))
    lanes, bars = fig.axes
    assert [t.get_text() for t in lanes.get_yticklabels()] == list(labtime.MECHANISMS)
    assert len(bars.patches) == 2 * len(labtime.MECHANISMS)


def test_oci_run_puts_the_container_id_last_and_runtime_missing_says_why() -> None:
    argv = labtime.oci_run("no-such-runtime-here", "/b", "/s")
    assert argv == ["no-such-runtime-here", "--root", "/s", "run", "--bundle", "/b", "{id}"]
    assert "not installed" in labtime.runtime_missing("no-such-runtime-here")
    assert labtime.runtime_missing("sh") == ""


def test_start_times_runs_each_command_interleaved_with_a_fresh_id(tmp_path: Path) -> None:
    log = tmp_path / "ids"
    commands = {"a": ["sh", "-c", f'echo "a $0" >> {log}', "{id}"],
                "b": ["sh", "-c", f'echo "b $0" >> {log}', "{id}"]}
    samples = labtime.start_times(commands, {"PATH": "/usr/bin:/bin"}, rounds=2, warmup=1)
    assert {k: len(v) for k, v in samples.items()} == {"a": 2, "b": 2}
    assert all(ms > 0 for v in samples.values() for ms in v)
    lines = log.read_text().split("\n")[:-1]
    assert [line.split()[0] for line in lines] == ["a", "b"] * 3  # warm-up, then 2 rounds
    assert len({line.split()[1] for line in lines}) == 6  # each run its own id
    assert labtime.medians({"x": [3.0, 1.0, 2.0]}) == {"x": 2.0}


def test_a_failing_command_fails_the_measurement_with_its_message() -> None:
    with pytest.raises(RuntimeError, match="exit 3: boom"):
        labtime.start_times({"bad": ["sh", "-c", "echo boom >&2; exit 3"]},
                            {"PATH": "/usr/bin:/bin"}, rounds=1, warmup=0)
