"""The learner's VM: the Vagrantfile validates, its port is fixed, and the provisioning installs
a service that runs ``minidocker lab`` (the unit's own command line is started here for real)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import TEST_ROOT_MARK, needs_root
from tests.course.conftest import REPO, free_port, lab_env, on_ubuntu

PROVISION = REPO / "scripts" / "vagrant-provision.sh"
INSTALL = "SETUP_TEST_TOOLS=1 bash scripts/setup.sh installs it, as scripts/test.sh does"
NO_VAGRANT = ("needs vagrant, and Ubuntu 24.04 has no vagrant deb (it left the archive with "
              "HashiCorp's licence change; setup.sh leaves it out): install it from HashiCorp's "
              "apt repository, or run this test on Debian 12" if on_ubuntu()
              else f"needs vagrant (Debian `vagrant`): {INSTALL}")
needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None, reason=NO_VAGRANT)


def validate(directory) -> subprocess.CompletedProcess[str]:
    # --ignore-provider: no VirtualBox or libvirt daemon here; the config is still checked.
    return subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=directory,
                          text=True, capture_output=True, timeout=120,
                          env={**os.environ, "VAGRANT_HOME": str(directory / ".vagrant.d"),
                               "VAGRANT_CHECKPOINT_DISABLE": "1"})


@needs_vagrant
def test_vagrant_validate(tmp_path):
    shutil.copy(REPO / "Vagrantfile", tmp_path / "Vagrantfile")
    done = validate(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout


@needs_vagrant
def test_vagrant_validate_catches_a_bad_setting(tmp_path):
    text = (REPO / "Vagrantfile").read_text()
    (tmp_path / "Vagrantfile").write_text(text.replace(
        'config.vm.hostname = "minidocker"', 'config.vm.hostname = "minidocker"\n'
        '  config.vm.no_such_setting = 1'))
    done = validate(tmp_path)
    assert done.returncode != 0 and "no_such_setting" in done.stdout + done.stderr


def test_the_port_is_fixed_and_only_on_loopback():
    text = (REPO / "Vagrantfile").read_text()
    forwards = re.findall(r'config\.vm\.network "forwarded_port",([^\n]*\n[^\n]*)', text)
    assert len(forwards) == 1
    options = dict(re.findall(r'(\w+): ("[^"]*"|\w+)', forwards[0]))
    assert options == {"guest": "8888", "host": "8888", "host_ip": '"127.0.0.1"',
                       "auto_correct": "false"}


def test_provisioning_is_the_bare_hosts_setup_then_the_service():
    text = (REPO / "Vagrantfile").read_text()
    assert 'inline: "bash /home/vagrant/minidocker/scripts/vagrant-provision.sh"' in text
    script = PROVISION.read_text()
    assert 'bash "$REPO/scripts/setup.sh"' in script
    assert 'systemctl enable --quiet "$UNIT"' in script


def unit() -> str:
    done = subprocess.run(["bash", str(PROVISION), "--print-unit"], text=True,
                          capture_output=True, check=True)
    return done.stdout


def unit_setting(text: str, name: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(name + "=")]


def test_the_unit_runs_minidocker_lab_for_the_forwarded_port():
    text = unit()
    [exec_start] = unit_setting(text, "ExecStart")
    assert shlex.split(exec_start) == [
        "/usr/local/bin/minidocker", "lab", "--ip", "0.0.0.0", "--port", "8888",
        "--notebook-dir", f"{REPO}/notebooks"]
    assert unit_setting(text, "WorkingDirectory") == [str(REPO)]
    assert unit_setting(text, "WantedBy") == ["multi-user.target"]  # starts at every boot
    assert unit_setting(text, "Restart") == ["on-failure"]
    assert not unit_setting(text, "PrivateTmp")  # `lab reset` must see the lessons' roots


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="needs systemd-analyze (Debian `systemd`) to verify the unit")
def test_systemd_accepts_the_unit(tmp_path):
    path = tmp_path / "minidocker-lab.service"
    path.write_text(unit())
    done = subprocess.run(["systemd-analyze", "verify", str(path)], text=True,
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert "minidocker-lab.service" not in done.stderr, done.stderr  # no warnings about it


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason=f"needs shellcheck (Debian `shellcheck`): {INSTALL}")
def test_the_scripts_pass_shellcheck():
    done = subprocess.run(["shellcheck", str(PROVISION), str(REPO / "scripts/setup.sh"),
                           str(REPO / "scripts/vm-test.sh")],
                          text=True, capture_output=True)
    assert done.returncode == 0, done.stdout


def test_provision_refuses_unknown_arguments():
    done = subprocess.run(["bash", str(PROVISION), "--bogus"], text=True, capture_output=True)
    assert done.returncode == 1 and "unknown argument --bogus" in done.stderr


@needs_root
@pytest.mark.kernel
def test_the_units_command_serves_jupyterlab(tmp_path_factory, lesson_copy):
    """The unit's ExecStart as systemd would run it, in a network namespace of the test's own:
    it listens on 0.0.0.0, and nothing beyond this machine may reach it. Changed: the port, the
    lessons' directory, and the launcher, which is this checkout's interpreter (the machine's
    /usr/local/bin/minidocker belongs to whichever checkout ran setup.sh last)."""
    home = tmp_path_factory.mktemp(TEST_ROOT_MARK + "unit")
    port = free_port()
    [exec_start] = unit_setting(unit(), "ExecStart")
    argv = shlex.split(exec_start.replace("--port 8888", f"--port {port}")
                       .replace(f"{REPO}/notebooks", str(lesson_copy)))
    assert argv[0] == "/usr/local/bin/minidocker"
    argv[:1] = [sys.executable, "-m", "minidocker"]
    env = {**lab_env(home), "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    script = 'ip link set lo up && exec "$@"'
    popen = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", script, "sh", *argv],
                             env=env, cwd=REPO, stdin=subprocess.DEVNULL, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    probe = ("import sys, urllib.request\n"
             "r = urllib.request.urlopen(sys.argv[1], timeout=5)\nprint(r.status)")
    try:
        token_file = home / ".config/minidocker/lab-token"
        deadline = time.monotonic() + 90
        status = ""
        while time.monotonic() < deadline and status != "200":
            assert popen.poll() is None, popen.stdout.read()
            time.sleep(0.5)
            if not token_file.exists():
                continue
            url = f"http://127.0.0.1:{port}/api/status?token={token_file.read_text()}"
            status = subprocess.run(["nsenter", f"--net=/proc/{popen.pid}/ns/net",
                                     sys.executable, "-c", probe, url], text=True,
                                    capture_output=True).stdout.strip()
        assert status == "200"
        # Not reachable from the test's own network namespace: it is in its own.
        with pytest.raises(OSError):
            import urllib.request
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
    finally:
        popen.terminate()
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
        popen.stdout.close()
