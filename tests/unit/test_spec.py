"""The plan of a container: Docker's rules for command, env, workdir, user and hostname."""

from __future__ import annotations

import pytest

from minidocker import spec
from minidocker.errors import UsageError

IMAGE = {"Env": ["PATH=/bin", "A=image"], "Cmd": ["sh"], "WorkingDir": "/srv"}


def make(**kw):
    base = dict(cid="a" * 64, name="n", image_ref="busybox", image_id="sha256:x",
                image_config=IMAGE, host_env={"FROM_HOST": "h"})
    base.update(kw)
    return spec.make_spec(**base)


def test_defaults_come_from_the_image():
    s = make()
    assert s.argv == ["sh"]
    assert s.workdir == "/srv"
    assert s.user == "0"
    assert s.hostname == "a" * 12
    assert s.env == {"PATH": "/bin", "A": "image", "HOSTNAME": "a" * 12}


def test_arguments_replace_cmd_and_entrypoint_is_prepended():
    s = make(image_config={"Entrypoint": ["/entry"], "Cmd": ["default"]}, args=["x", "y"])
    assert s.argv == ["/entry", "x", "y"]
    s = make(image_config={"Entrypoint": ["/entry"], "Cmd": ["default"]})
    assert s.argv == ["/entry", "default"]


def test_entrypoint_flag_drops_the_image_cmd():
    s = make(entrypoint="echo")
    assert s.argv == ["echo"]
    s = make(image_config={"Entrypoint": ["/e"], "Cmd": ["c"]}, entrypoint="", args=["ls"])
    assert s.argv == ["ls"]


def test_nothing_to_run_is_an_error():
    with pytest.raises(UsageError, match="no command specified"):
        make(image_config={})


def test_env_order_files_then_flags_and_host_passthrough(tmp_path):
    f = tmp_path / "env"
    f.write_text("# c\n\n  B=file\nC=file\nFROM_HOST\nUNSET_ON_HOST\n")
    s = make(env=["C=flag", "FROM_HOST", "NOPE"], env_files=[str(f)])
    assert s.env["A"] == "image"
    assert s.env["B"] == "file"
    assert s.env["C"] == "flag"
    assert s.env["FROM_HOST"] == "h"
    assert "NOPE" not in s.env and "UNSET_ON_HOST" not in s.env


@pytest.mark.parametrize("bad", ["=x", "A B=1", ""])
def test_bad_env_is_one_line_error(bad):
    with pytest.raises(UsageError) as err:
        make(env=[bad])
    assert "\n" not in str(err.value)


def test_bad_env_file_names_the_line(tmp_path):
    f = tmp_path / "env"
    f.write_text("OK=1\n=broken\n")
    with pytest.raises(UsageError, match="line 2"):
        make(env_files=[str(f)])
    with pytest.raises(UsageError, match="no such file"):
        make(env_files=[str(tmp_path / "missing")])


def test_tty_sets_term_and_path_has_a_default():
    s = make(image_config={"Cmd": ["sh"]}, tty=True)
    assert s.env["TERM"] == "xterm"
    assert s.env["PATH"] == spec.DEFAULT_PATH


def test_relative_workdir_rejected():
    with pytest.raises(UsageError, match="absolute"):
        make(workdir="tmp")


@pytest.mark.parametrize("bad", ["", "a" * 65, "has space", "a/b"])
def test_bad_hostname_rejected(bad):
    with pytest.raises(UsageError, match="invalid hostname"):
        make(hostname=bad)


@pytest.mark.parametrize("bad", [":", "a:", ":g", "a:b:c", "99999999999"])
def test_bad_user_rejected_before_anything_is_created(bad):
    with pytest.raises(UsageError, match="invalid user"):
        make(user=bad)


def test_sharing_the_uts_namespace_keeps_the_hosts_name():
    import os

    s = make(namespaces=["pid", "mnt", "ipc", "net", "cgroup"])
    assert s.hostname == os.uname().nodename
    with pytest.raises(UsageError, match="conflicting options"):
        make(namespaces=["mnt"], hostname="x")
