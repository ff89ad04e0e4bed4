"""The notebooks' helper without a kernel: grouping, tables and pictures from synthetic events."""

from __future__ import annotations

import os
import subprocess

import pytest

from minidocker import lab, namespaces

pytestmark = [pytest.mark.nb00, pytest.mark.nb01]


def ev(t_ms: float, where: str, kind: str, call: str, args: list[str] | None = None,
       result: str = "", ms: float = 0.0) -> dict[str, object]:
    return {"t_ms": t_ms, "where": where, "pid": 1 if where == "container" else 4242,
            "kind": kind, "call": call, "args": args or [], "result": result, "ms": ms}


# A start sequence as minidocker traces it, in the order the parent writes the JSON lines.
EVENTS = [
    ev(10.0, "host", "step", "prepare", ["/tmp/mdlab-x/containers/" + "a" * 64]),
    ev(12.0, "host", "step", "unshare", ["a new PID namespace"]),
    ev(12.2, "host", "syscall", "unshare", ["CLONE_NEWPID"], "0", 0.1),
    ev(12.3, "host", "step", "fork"),
    ev(14.0, "container", "step", "namespaces"),
    ev(15.0, "container", "syscall", "unshare", ["CLONE_NEWNS|CLONE_NEWUTS"], "0", 0.7),
    ev(15.1, "container", "step", "rootfs"),
    ev(15.3, "container", "syscall", "mount", ["NULL", '"/"', "NULL", "MS_REC|MS_PRIVATE"],
       "0", 0.1),
    ev(16.0, "container", "syscall", "pivot_root", ['"."', '"."'], "0", 0.05),
    ev(16.1, "container", "note", "masked 12 paths"),
    ev(16.2, "container", "step", "exec", ["echo hi"]),
    ev(16.3, "container", "syscall", "execve", ['"/bin/echo"'], "...", 0.0),
    ev(30.0, "host", "step", "exited", ["status 0"]),
]


def test_steps_group_calls_under_the_last_step_on_their_side():
    groups = lab.steps(EVENTS)
    assert [(g.where, g.name) for g in groups] == [
        ("host", "prepare"), ("host", "unshare"), ("host", "fork"),
        ("container", "namespaces"), ("container", "rootfs"), ("container", "exec"),
        ("host", "exited")]
    by_name = {g.name: g for g in groups}
    assert [c["call"] for c in by_name["rootfs"].calls] == ["mount", "pivot_root",
                                                            "masked 12 paths"]
    assert [c["call"] for c in by_name["rootfs"].syscalls] == ["mount", "pivot_root"]
    assert by_name["unshare"].syscalls[0]["args"] == ["CLONE_NEWPID"]
    assert by_name["prepare"].detail.startswith("/tmp/mdlab-x/")


def test_a_step_ends_where_the_next_one_on_its_side_starts():
    by_name = {g.name: g for g in lab.steps(EVENTS)}
    assert (by_name["namespaces"].start_ms, by_name["namespaces"].end_ms) == (14.0, 15.1)
    # the host waits in "fork" while the container starts and runs: its next step is "exited"
    assert by_name["fork"].end_ms == 30.0
    assert by_name["exec"].end_ms == 16.3  # the last step on a side ends with its last call
    assert by_name["exited"].end_ms == 30.0


def test_steps_sort_events_by_time_and_catch_calls_before_any_step():
    shuffled = [EVENTS[2], ev(1.0, "host", "syscall", "mkdir", [], "0", 0.5), *EVENTS[:2]]
    groups = lab.steps(shuffled)
    assert [g.name for g in groups] == ["(start)", "prepare", "unshare"]
    assert groups[0].start_ms == 0.5  # the call began ``ms`` before it was recorded
    assert lab.steps([]) == []


def test_trace_lines_use_the_trace_format_and_can_shorten_the_root():
    lines = lab.trace_lines(EVENTS)
    assert len(lines) == len(EVENTS)
    assert "== rootfs" in lines[6]
    assert 'pivot_root(".", ".") = 0' in lines[8]
    assert "# masked 12 paths" in lines[9]
    short = lab.trace_lines(EVENTS[:1], root="/tmp/mdlab-x")
    assert short[0].endswith("== prepare ($ROOT/containers/aaaaaaaaaaaa)")


def test_parse_events_reads_json_lines_in_time_order():
    text = '{"t_ms": 2.0, "kind": "step"}\n\n{"t_ms": 1.0, "kind": "note"}\n'
    assert [e["t_ms"] for e in lab.parse_events(text)] == [1.0, 2.0]


def test_ns_table_compares_every_kind_in_the_namespaces_table():
    host = {k: f"{k}:[40265318{i:02}]" for i, (k, _, _) in enumerate(namespaces.NAMESPACES)}
    inside = {**{k: f"{k}:[40265322{i:02}]" for i, k in enumerate(host)}, "user": host["user"]}
    rows = lab.ns_table(host, inside)
    assert [r.kind for r in rows] == [k for k, _, _ in namespaces.NAMESPACES]
    assert {r.kind for r in rows if r.shared} == {"user"}
    assert rows[0].isolates == "process IDs"
    text = lab.format_ns_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == ["kind", "isolates", "host", "container"]
    assert lines[1].startswith("pid ") and lines[1].endswith("NEW")
    assert lines[-1].startswith("user ") and lines[-1].endswith("shared")


def test_ns_table_marks_a_kind_missing_on_one_side():
    rows = lab.ns_table({"pid": "pid:[1]"}, {})
    assert rows[0].container == "-" and not rows[0].shared


def test_parse_ns_lines_keys_readlink_output_by_kind():
    assert lab.parse_ns_lines("pid:[4026532263]\nmnt:[4026532262]\n\n") == {
        "pid": "pid:[4026532263]", "mnt": "mnt:[4026532262]"}


def test_parse_status_and_rss_of_this_process():
    status = lab.parse_status("Name:\tsleep\nVmRSS:\t  1760 kB\nThreads:\t1\n")
    assert status == {"Name": "sleep", "VmRSS": "1760 kB", "Threads": "1"}
    assert lab.rss_kib(os.getpid()) > 1000  # a Python interpreter is several MiB resident


def test_pids_in_namespace_finds_this_process():
    assert os.getpid() in lab.pids_in_namespace("pid", namespaces.ns_id("pid"))
    assert lab.pids_in_namespace("pid", "pid:[1]") == []


def test_plot_timeline_draws_one_row_per_step():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = lab.plot_timeline(EVENTS)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["prepare (0)", "unshare (1)", "fork (0)", "namespaces (1)",
                      "rootfs (2)", "exec (1)", "exited (0)"]
    lo, hi = ax.get_xlim()
    assert lo <= 10.0 and hi >= 30.0
    plt.close(ax.figure)

    fig, given = plt.subplots()
    assert lab.plot_timeline([], ax=given) is given
    plt.close(fig)


def test_can_run_live_answers_with_a_reason():
    ok, why = lab.can_run_live()
    assert isinstance(ok, bool) and why
    if os.geteuid() != 0:
        assert not ok and "root" in why


def test_run_result_check_raises_with_stderr():
    good = lab.RunResult(["x"], 0, "hi\n", "", 1.0)
    assert good.check() is good and good.ok
    bad = lab.RunResult(["x"], 125, "", "minidocker: no such image", 1.0)
    with pytest.raises(subprocess.CalledProcessError) as err:
        bad.check()
    assert err.value.stderr == "minidocker: no such image"
    assert "exit_code=125" in repr(bad)


def test_a_lab_owns_a_private_root_and_close_removes_it():
    with lab.Lab() as bench:
        root = bench.root
        assert os.path.basename(root).startswith("mdlab-")
        assert bench.env["MINIDOCKER_ROOT"] == root
        version = bench.cli("version")  # needs no privilege: nothing is unshared
        assert version.ok and version.stdout.startswith("minidocker ")
        assert version.events == []
    assert not os.path.exists(root)
    bench.close()  # twice is fine
