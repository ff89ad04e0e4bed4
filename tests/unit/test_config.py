"""The container config: flags -> config as a pure function, and a lossless JSON round trip."""

from __future__ import annotations

import json
import os

import pytest

from minidocker import cli, config, flags
from minidocker.errors import UsageError
from minidocker.ports import PortMapping


def from_argv(*argv: str, environ: dict[str, str] | None = None,
              cwd: str = "/work") -> config.ContainerConfig:
    args = flags.parse(cli._run_flags(), list(argv), "run")
    return cli.config_from_flags(args, environ or {}, cwd)


def test_flags_become_a_typed_config() -> None:
    c = from_argv("--rm", "-it", "--name", "web", "-e", "A=1", "-e", "FROM_HOST",
                  "-e", "UNSET", "-u", "1000", "-w", "/srv", "--init", "-m", "64m",
                  "--pid", "host", "--cap-drop", "NET_RAW", "--restart", "no",
                  "busybox", "sh", "-c", "true", environ={"FROM_HOST": "h"})
    assert c.image == "busybox" and c.name == "web" and c.auto_remove
    assert c.process == config.Process(args=["sh", "-c", "true"], env=["A=1", "FROM_HOST=h"],
                                       user="1000", workdir="/srv", tty=True,
                                       interactive=True, init=True)
    assert c.resources.memory == 64 << 20 and c.resources.memory_swap == 0  # not defaulted
    assert c.namespaces == config.Namespaces(pid="host")
    assert c.security.cap_drop == ["NET_RAW"]
    assert c.restart == config.RestartPolicy()


def test_the_callers_environment_and_directory_are_arguments(tmp_path) -> None:
    (tmp_path / "env").write_text("# comment\nB=file\nA=file\n")
    c = from_argv("--env-file", "env", "-e", "A=flag", "--security-opt", "seccomp=p.json",
                  "--network", "none", "busybox", cwd=str(tmp_path),
                  environ={"MINIDOCKER_DEFAULT_NETWORK": "bridge"})
    assert c.process.env == ["B=file", "A=file", "A=flag"]  # later ones win when merged
    assert c.security.security_opt == [f"seccomp={tmp_path}/p.json"]
    assert c.network.name == "none"
    assert from_argv("busybox", environ={"MINIDOCKER_DEFAULT_NETWORK": "none"}) \
        .network.name == "none"


def test_subordinate_id_files_travel_in_the_config_only_for_a_private_userns() -> None:
    env = {"MINIDOCKER_SUBUID": "/tmp/subuid", "PATH": "/bin"}
    assert from_argv("--userns", "private", "busybox", environ=env).security.subids == \
        {"MINIDOCKER_SUBUID": "/tmp/subuid"}
    assert from_argv("busybox", environ=env).security.subids == {}


def test_bad_flags_fail_before_anything_is_decided() -> None:
    with pytest.raises(UsageError, match="conflicting options: --restart and --rm"):
        from_argv("--rm", "--restart", "always", "busybox")
    with pytest.raises(UsageError, match="invalid restart policy"):
        from_argv("--restart", "sometimes", "busybox")
    with pytest.raises(UsageError, match="invalid environment variable"):
        from_argv("-e", "=x", "busybox")
    with pytest.raises(UsageError, match="--memory"):
        from_argv("-m", "lots", "busybox")


def test_config_from_flags_has_no_side_effects(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / "root"))
    before = dict(os.environ)
    from_argv("--name", "x", "-p", "8080:80", "--expose", "90", "busybox")
    assert dict(os.environ) == before
    assert not (tmp_path / "root").exists()


def test_ports_are_parsed_into_mappings() -> None:
    c = from_argv("-p", "127.0.0.1:8080:80/udp", "--expose", "90", "-P", "busybox")
    assert c.network.ports == [PortMapping(80, "udp", "127.0.0.1", "8080")]
    assert c.network.expose == ["90/tcp"] and c.network.publish_all


def test_json_round_trip_is_lossless() -> None:
    c = from_argv("-e", "A=1", "-m", "64m", "--cpus", "1.5", "-p", "8080:80",
                  "--network", "net1", "--dns", "1.1.1.1", "--cap-add", "SYS_ADMIN",
                  "--restart", "on-failure:3", "--userns", "private", "--stop-signal", "QUIT",
                  "busybox", "true",
                  environ={"MINIDOCKER_SUBUID": "/x"})
    c.labels = {"a": "b"}
    c.mounts = [config.Mount("/host", "/in", readonly=True)]
    wire = json.loads(json.dumps(c.to_dict()))
    assert wire["resources"]["Memory"] == 64 << 20  # Docker's HostConfig names
    assert wire["stop_signal"] == "QUIT"
    assert config.ContainerConfig.from_dict(wire) == c


def test_a_config_written_by_hand_gets_the_defaults() -> None:
    c = config.ContainerConfig(image="busybox", process=config.Process(args=["true"]))
    assert c.namespaces.pid == "private" and c.network.name is None
    assert c.restart.as_docker() == {"Name": "no", "MaximumRetryCount": 0}
    assert config.ContainerConfig.from_dict({"image": "busybox"}) == \
        config.ContainerConfig(image="busybox")
    assert "Process(args=['true']" in repr(c)


def test_stop_signal_wins_over_the_images_and_a_bad_one_is_refused() -> None:
    from minidocker import engine, spec

    image = {"StopSignal": "SIGQUIT", "Cmd": ["true"]}
    made = spec.make_spec(cid="c" * 64, name="n", image_ref="x", image_id="i",
                          image_config=image, stop_signal="SIGUSR1")
    assert made.stop_signal == "SIGUSR1"
    made = spec.make_spec(cid="c" * 64, name="n", image_ref="x", image_id="i", image_config=image)
    assert made.stop_signal == "SIGQUIT"  # the image's STOPSIGNAL when none is asked for
    old = made.as_dict()
    del old["stop_signal"]  # a record from before --stop-signal
    assert spec.Spec(**old).stop_signal == ""
    with pytest.raises(UsageError, match="^invalid signal: NOPE$"):
        engine._check(config.ContainerConfig(image="busybox", stop_signal="NOPE"))


def test_reading_a_config_loads_no_syscall_layer() -> None:
    """The run -d client builds a config and sends it; the supervisor does the kernel work.
    ctypes and the traced syscall layer cost ~10 ms of that client's start, so importing the
    config (and the mount parsers it holds) must not load them."""
    import subprocess
    import sys
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[2])
    watched = ("ctypes", "minidocker.syscalls", "minidocker.trace", "minidocker.rootfs")
    code = (f"import sys; sys.path.insert(0, {repo!r}); import minidocker.config, "
            f"minidocker.mounts; print(sorted(m for m in {watched!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"
