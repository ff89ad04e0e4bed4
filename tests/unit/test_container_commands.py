"""The container commands' own rules, without root: ps rows and columns, filters, signals,
detach keys, sizes, and the inspect document built from records."""

from __future__ import annotations

import os
import signal

import pytest

from minidocker import engine, lifecycle, state
from minidocker.commands import containers
from minidocker.errors import UsageError
from minidocker.lifecycle import LifecycleError

pytestmark = pytest.mark.nb09

NOW = lifecycle.parse_time("2024-01-01T00:10:00Z")
CONFIG = {"name": "web", "image": "busybox", "argv": ["sh", "-c", "while true; do echo hi; done"],
          "env": {"PATH": "/bin", "HOSTNAME": "abc"}, "workdir": "/", "user": "0",
          "hostname": "abc", "tty": False, "interactive": False, "init": False, "remove": False,
          "namespaces": ["pid", "mnt", "uts", "ipc", "net", "cgroup"], "image_id": "sha256:x"}
RECORD = {"Status": "running", "Created": "2024-01-01T00:00:00Z",
          "StartedAt": "2024-01-01T00:00:01Z", "Pid": 0}


def test_a_ps_row_has_dockers_fields():
    cid = "0123456789ab" + "c" * 52
    row = containers.ps_row(cid, CONFIG, RECORD, "running", NOW)
    assert row["ID"] == "0123456789ab"
    assert row["Command"] == '"sh -c while true; d…"'  # quoted, 20 characters with the …
    assert row["RunningFor"] == "10 minutes ago"
    assert row["Status"] == "Up 9 minutes"
    assert row["Names"] == "web" and row["Image"] == "busybox" and row["State"] == "running"
    full = containers.ps_row(cid, CONFIG, RECORD, "running", NOW, trunc=False)
    assert full["ID"] == cid and full["Command"] == '"sh -c while true; do echo hi; done"'


def test_published_ports_and_networks_as_docker_shows_them():
    net = {"Interfaces": [{"network": "bridge", "address": "172.17.0.2", "prefixlen": 16,
                           "gateway": "172.17.0.1"}],
           "Ports": [{"container_port": 80, "proto": "tcp", "host_ip": ip, "host_port": 8080}
                     for ip in ("0.0.0.0", "::")] +
                    [{"container_port": 53, "proto": "udp", "host_ip": "::1", "host_port": 53}]}
    assert containers.ps_ports(net) == \
        "0.0.0.0:8080->80/tcp, :::8080->80/tcp, [::1]:53->53/udp"
    row = containers.ps_row("a" * 64, CONFIG, RECORD, "running", NOW, net=net)
    assert row["Networks"] == "bridge"
    settings = containers.network_settings(net, 42)
    assert settings["IPAddress"] == "172.17.0.2" and settings["SandboxKey"] == "/proc/42/ns/net"
    assert settings["Ports"]["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "8080"},
                                           {"HostIp": "::", "HostPort": "8080"}]
    assert settings["Networks"]["bridge"]["Gateway"] == "172.17.0.1"


def test_the_table_is_aligned_as_dockers_tabwriter():
    lines = containers.tabulate(["CONTAINER ID\tIMAGE\tNAMES", "0123456789ab\tbusybox\tweb"])
    assert lines == ["CONTAINER ID   IMAGE     NAMES", "0123456789ab   busybox   web"]


def test_filters_or_within_a_key_and_across_keys():
    f = containers.parse_filters(["status=running", "status=exited", "name=we"])
    assert f == {"status": ["running", "exited"], "name": ["we"]}
    assert containers.matches(f, "abc", "web", "exited")
    assert not containers.matches(f, "abc", "web", "created")
    assert not containers.matches(f, "abc", "db", "running")
    assert containers.matches({"id": ["ab"]}, "abc", "x", "running")
    assert not containers.matches({"id": ["bc"]}, "abc", "x", "running")


@pytest.mark.parametrize("bad", ["status=sleeping", "color=red"])
def test_bad_filters_are_refused(bad):
    with pytest.raises(LifecycleError, match="invalid filter"):
        containers.parse_filters([bad])


def test_a_filter_without_equals_is_a_usage_error():
    with pytest.raises(UsageError):
        containers.parse_filters(["status"])


@pytest.mark.parametrize(("text", "sig"), [("KILL", signal.SIGKILL), ("SIGTERM", signal.SIGTERM),
                                           ("usr1", signal.SIGUSR1), ("9", 9), ("hup", 1)])
def test_signals_are_named_as_docker_takes_them(text, sig):
    assert containers.parse_signal(text) == sig


@pytest.mark.parametrize("bad", ["SIGNOPE", "0", "99", "", "-1"])
def test_bad_signals_are_refused(bad):
    with pytest.raises(LifecycleError, match="invalid signal"):
        containers.parse_signal(bad)


def test_detach_keys():
    assert containers._detach_keys(None) == b"\x10\x11"
    assert containers._detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(UsageError, match="detach keys"):
        containers._detach_keys("meta-x")


@pytest.mark.parametrize(("n", "text"), [(0, "0B"), (999, "999B"), (1000, "1kB"),
                                         (1234567, "1.23MB")])
def test_sizes_are_dockers_units(n, text):
    assert containers.human_size(n) == text


def test_ellipsis():
    assert containers.ellipsis("short", 20) == "short"
    assert containers.ellipsis("x" * 25, 20) == "x" * 19 + "…"


def _container(tmp_path, config=CONFIG, record=RECORD, host=None):
    layout = state.Layout(str(tmp_path))
    cid = state.new_id()
    cdir = layout.container(cid)
    os.makedirs(cdir)
    lifecycle.write(cdir, "config", dict(config, id=cid))
    lifecycle.write(cdir, "state", record)
    lifecycle.write(cdir, "hostconfig", host or {"RestartPolicy": {"Name": "always",
                                                                    "MaximumRetryCount": 0}})
    layout.claim_name(config["name"], cid)
    return layout, cid


def test_resource_commands_refuse_a_reused_pid(tmp_path):
    """update, pause and stats act on the container's cgroup only while its own process runs:
    a live PID with another start time is someone else's process."""
    from minidocker.commands.resources import running
    from minidocker.errors import ContainerError

    me = {"Status": "running", "Pid": os.getpid(),
          "StartTime": lifecycle.process_start_time(os.getpid())}
    layout, cid = _container(tmp_path, record=me)
    assert running(layout, "web").state["Pid"] == os.getpid()
    lifecycle.write(layout.container(cid), "state", dict(me, StartTime=me["StartTime"] - 1))
    with pytest.raises(ContainerError, match="is not running"):
        running(layout, "web")


def test_inspect_uses_dockers_field_names(tmp_path):
    me = {"Status": "running", "Pid": os.getpid(),
          "StartTime": lifecycle.process_start_time(os.getpid()),
          "Created": "2024-01-01T00:00:00Z", "StartedAt": "2024-01-01T00:00:01Z"}
    layout, cid = _container(tmp_path, record=me)
    doc = containers.inspect_container(containers.Container(layout, "web"))
    assert doc["Id"] == cid and doc["Name"] == "/web"
    assert set(doc["State"]) == {"Status", "Running", "Paused", "Restarting", "OOMKilled",
                                 "Dead", "Pid", "ExitCode", "Error", "StartedAt", "FinishedAt"}
    assert doc["State"]["Status"] == "running" and doc["State"]["Pid"] == os.getpid()
    assert doc["State"]["FinishedAt"] == lifecycle.ZERO_TIME
    for key in ("Config", "HostConfig", "Mounts", "NetworkSettings", "Created"):
        assert key in doc
    assert doc["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert doc["Config"]["Cmd"] == CONFIG["argv"] and doc["Path"] == "sh"


def test_a_dead_running_record_inspects_as_exited_255(tmp_path):
    layout, _ = _container(tmp_path, record=dict(RECORD, Pid=2**22 + 1, StartTime=1))
    doc = containers.inspect_container(containers.Container(layout, "web"))
    assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 255
    assert doc["State"]["Pid"] == 0 and "unknown" in doc["State"]["Error"]


def test_unknown_and_ambiguous_references(tmp_path):
    layout, cid = _container(tmp_path)
    with pytest.raises(LifecycleError, match="no such container: nope"):
        containers.Container(layout, "nope")
    assert containers.Container(layout, cid[:5]).id == cid
    other = cid[:5] + "0" * 59
    os.makedirs(layout.container(other))
    with pytest.raises(LifecycleError, match="multiple containers match") as err:
        containers.Container(layout, cid[:5])
    assert err.value.exit_code == 1 and cid[:12] in str(err.value)


def test_reconcile_fixes_what_the_kernel_contradicts(tmp_path):
    layout, cid = _container(tmp_path, record=dict(RECORD, Pid=2**22 + 1, StartTime=1))
    os.symlink("f" * 64, os.path.join(layout.names, "ghost"))
    tomb = os.path.join(layout.containers, "." + "e" * 64 + ".removing")
    os.makedirs(os.path.join(tomb, "upper"))
    with open(layout.container(cid, "state.json.tmp999999999"), "w") as f:
        f.write("{")
    fixed = engine.reconcile(layout)
    assert len(fixed) == 4, fixed
    record = lifecycle.read(layout.container(cid), "state")
    assert record["Status"] == "exited" and record["ExitCode"] == 255
    assert sorted(os.listdir(layout.names)) == ["web"]
    assert sorted(os.listdir(layout.containers)) == [cid]
    assert engine.reconcile(layout) == []  # nothing left to fix


def test_stop_uses_the_images_stop_signal_or_sigterm(tmp_path):
    layout, _ = _container(tmp_path, host={"StopSignal": "SIGUSR1"})
    assert containers.Container(layout, "web").stop_signal() == signal.SIGUSR1
    other = tmp_path / "other"
    layout, _ = _container(other, host={"StopSignal": ""})  # no store there to ask either
    assert containers.Container(layout, "web").stop_signal() == signal.SIGTERM
    third = tmp_path / "foreground"  # no hostconfig.json: the plan's --stop-signal
    layout, _ = _container(third, config=dict(CONFIG, stop_signal="SIGHUP"), host={})
    assert containers.Container(layout, "web").stop_signal() == signal.SIGHUP
