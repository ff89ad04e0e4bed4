"""A bundle's hooks, run by ``minidocker-runtime`` on the real kernel.

Every hook appends one line to a log: its name, the mount and PID namespaces it runs in, its
``$0`` and ``$HOOKENV``, and the state it read on stdin. The log is a host file, bind-mounted
into the container at /hooklog for the hooks that run after pivot_root. The tests check the
order, the namespaces (the runtime's for prestart, createRuntime, poststart and poststop; the
container's for createContainer and startContainer), the state, and what a failure does: a
failing prestart/createRuntime/createContainer fails ``create``, a startContainer one fails
``start``, both leaving nothing behind; poststart and poststop only warn.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import needs_root
from tests.kernel import test_ociruntime as oci
from tests.kernel.test_ociruntime import Runtime

busybox_rootfs, rt = oci.busybox_rootfs, oci.rt  # its fixtures, shared

pytestmark = [needs_root, pytest.mark.kernel]

IN_RUNTIME = ("prestart", "createRuntime", "poststart", "poststop")
ANNOTATIONS = {"org.minidocker.test": "hooks"}


def hook(name: str, log: str, sh: str = "/bin/sh", then: str = "", **extra: object) -> dict:
    """A hook that logs itself: name, namespaces, $0, $HOOKENV, its stdin."""
    script = (f'echo "{name} $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/pid) '
              f'$0 $HOOKENV $(cat)" >> {log}{then}')
    return {"path": sh, "args": ["sh", "-c", script, f"{name}-arg"],  # $0 is the 4th
            "env": ["HOOKENV=env-of-" + name, "PATH=/bin:/usr/bin"], **extra}


def bundle_with_hooks(rt: Runtime, tmp_path: Path, args: list[str], **hooks: list[dict]
                      ) -> Path:
    logdir = tmp_path / "hooklog"
    logdir.mkdir(exist_ok=True)
    rt.config(args, hooks=hooks, annotations=ANNOTATIONS)
    document = json.loads((rt.bundle / "config.json").read_text())
    document["mounts"].append({"destination": "/hooklog", "type": "bind",
                               "source": str(logdir), "options": ["rbind", "rw"]})
    (rt.bundle / "config.json").write_text(json.dumps(document))
    return logdir / "log"


def all_hooks(log: Path) -> dict[str, list[dict]]:
    here = str(log)
    return {name: [hook(name, here)] for name in IN_RUNTIME} | {
        "createContainer": [hook("createContainer", here)],  # before pivot_root: host paths
        "startContainer": [hook("startContainer", "/hooklog/log")],  # the container's /bin/sh
    }


def entries(log: Path) -> list[list[str]]:
    return [line.split(" ", 5) for line in log.read_text().splitlines()] if log.exists() else []


def test_every_hook_runs_in_order_in_its_namespaces_with_the_state(rt: Runtime,
                                                                   tmp_path: Path) -> None:
    log = tmp_path / "hooklog" / "log"
    hooks = all_hooks(log)
    log = bundle_with_hooks(rt, tmp_path, ["sleep", "1000"], **hooks)
    assert rt("create", "c1").returncode == 0
    pid = rt.state("c1")["pid"]
    assert [e[0] for e in entries(log)] == ["prestart", "createRuntime", "createContainer"]
    result = rt("start", "c1")
    assert result.returncode == 0, result.stderr
    assert [e[0] for e in entries(log)][3:] == ["startContainer", "poststart"]
    assert rt("kill", "c1", "KILL").returncode == 0
    assert rt("delete", "c1").returncode == 0
    found = entries(log)
    assert [e[0] for e in found] == ["prestart", "createRuntime", "createContainer",
                                     "startContainer", "poststart", "poststop"]
    ours = os.readlink("/proc/self/ns/mnt"), os.readlink("/proc/self/ns/pid")
    statuses = {"prestart": "created", "createRuntime": "created", "createContainer": "created",
                "startContainer": "created", "poststart": "running", "poststop": "stopped"}
    for name, mnt, pidns, argv0, env, stdin in found:
        if name in IN_RUNTIME:
            assert (mnt, pidns) == ours, name
        else:  # the container's own namespaces, not the runtime's
            assert mnt != ours[0] and pidns != ours[1], name
        assert (argv0, env) == (f"{name}-arg", f"env-of-{name}")
        state = json.loads(stdin)
        assert state["id"] == "c1" and state["bundle"] == str(rt.bundle), name
        assert state["annotations"] == ANNOTATIONS
        assert state["status"] == statuses[name], name
        assert state["pid"] == (0 if name == "poststop" else pid), name
    create_container, start_container = found[2], found[3]
    assert create_container[1:3] == start_container[1:3]  # one container: the same namespaces
    assert rt.left() == []


def test_the_container_namespaces_are_the_process_own(rt: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "hooklog" / "log"
    log = bundle_with_hooks(rt, tmp_path, ["sleep", "1000"],
                            createContainer=[hook("createContainer", str(log))])
    assert rt("run", "-d", "c1").returncode == 0
    pid = rt.state("c1")["pid"]
    [(_, mnt, pidns, *_)] = entries(log)
    assert (mnt, pidns) == (os.readlink(f"/proc/{pid}/ns/mnt"),
                            os.readlink(f"/proc/{pid}/ns/pid"))
    assert rt("delete", "--force", "c1").returncode == 0
    assert rt.left() == []


@pytest.mark.parametrize("name", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_leaves_nothing(rt: Runtime, tmp_path: Path,
                                                               name: str) -> None:
    log = tmp_path / "hooklog" / "log"
    hooks = all_hooks(log)
    hooks[name] = [hook(name, str(log), then="; echo hook said no >&2; exit 3")]
    log = bundle_with_hooks(rt, tmp_path, ["true"], **hooks)
    result = rt("create", "--pid-file", str(tmp_path / "pid"), "c1")
    assert result.returncode == 1
    assert f"hooks.{name}[0]: /bin/sh exited with status 3: hook said no" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    ran = [e[0] for e in entries(log)]
    assert ran[-2:] == [name, "poststop"]  # then, as the spec says, the poststop hooks
    assert "startContainer" not in ran and "poststart" not in ran
    assert not (tmp_path / "pid").exists()
    assert rt.left() == []


def test_a_hook_past_its_timeout_is_killed_and_fails_create(rt: Runtime,
                                                            tmp_path: Path) -> None:
    marker = tmp_path / "after-sleep"
    slow = {"path": "/bin/sh", "args": ["sh", "-c", f"sleep 30; touch {marker}"], "timeout": 1}
    rt.config(["true"], hooks={"createRuntime": [slow]})
    result = rt("create", "c1")
    assert result.returncode == 1
    assert "hooks.createRuntime[0]: /bin/sh timed out after 1s" in result.stderr
    assert not marker.exists()
    assert rt.left() == []


def test_a_failing_start_container_hook_fails_start(rt: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "hooklog" / "log"
    hooks = all_hooks(log)
    hooks["startContainer"] = [hook("startContainer", "/hooklog/log", then="; exit 4")]
    log = bundle_with_hooks(rt, tmp_path, ["sh", "-c", "echo ran >> /hooklog/log"], **hooks)
    assert rt("create", "c1").returncode == 0
    result = rt("start", "c1")
    assert result.returncode == 1
    assert "hooks.startContainer[0]: /bin/sh exited with status 4" in result.stderr
    assert rt.state("c1")["status"] == "stopped"
    assert rt("delete", "c1").returncode == 0
    assert [e[0] for e in entries(log)] == ["prestart", "createRuntime", "createContainer",
                                            "startContainer", "poststop"]  # never "ran"
    assert rt.left() == []


@pytest.mark.parametrize("name", ["poststart", "poststop"])
def test_a_failing_poststart_or_poststop_hook_only_warns(rt: Runtime, tmp_path: Path,
                                                         name: str) -> None:
    log = tmp_path / "hooklog" / "log"
    failing = {"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]}
    hooks = {name: [failing, hook(name, str(log))]}  # the next hook still runs
    log = bundle_with_hooks(rt, tmp_path, ["sleep", "1000"], **hooks)
    assert rt("create", "c1").returncode == 0
    started = rt("start", "c1")
    assert started.returncode == 0
    assert rt.state("c1")["status"] == "running"
    deleted = rt("delete", "--force", "c1")
    assert deleted.returncode == 0
    warned = started if name == "poststart" else deleted
    assert "level=warning" in warned.stderr
    assert f"hooks.{name}[0]: /bin/sh exited with status 5" in warned.stderr
    assert [e[0] for e in entries(log)] == [name]
    assert rt.left() == []
