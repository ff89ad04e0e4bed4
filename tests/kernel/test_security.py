"""Capabilities, seccomp, no_new_privs, rlimits, devices, user namespaces and LSMs, observed
from inside real containers (issue 5). Every value checked is what the kernel shows the
container's own process: /proc/self/status, errno of a refused call, /proc/self/uid_map."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from minidocker import capabilities, devices, lsm, userns
from tests.conftest import CLI, TEST_ROOT_MARK, idmap_supported, needs_root, stop_minidocker
from tests.escapes.image import probe_cli
from tests.kernel.test_bad_input import assert_one_line_error, assert_unchanged, snapshot

pytestmark = [needs_root, pytest.mark.kernel, pytest.mark.nb03]


def status(cli: CLI, *options: str, image: str = "busybox") -> dict[str, str]:
    out = cli("run", "--rm", *options, image, "cat", "/proc/self/status", check=True).stdout
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CLI]:
    cli = CLI(tmp_path_factory.mktemp(TEST_ROOT_MARK + "security"))
    cli("run", "--rm", "busybox", "true", check=True)
    yield cli
    stop_minidocker(cli.root)  # what a test's killed `run` left: its cgroup


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CLI]:
    cli = probe_cli(tmp_path_factory, "secprobe")
    yield cli
    stop_minidocker(cli.root)


# -- capabilities -------------------------------------------------------------------------------

def test_default_container_has_dockers_fourteen(store: CLI) -> None:
    st = status(store)
    for field in ("CapPrm", "CapEff", "CapBnd"):
        assert int(st[field], 16) == capabilities.default_mask() == 0xA80425FB, field
    assert int(st["CapInh"], 16) == int(st["CapAmb"], 16) == 0


def test_cap_add_and_drop_with_or_without_prefix(store: CLI) -> None:
    st = status(store, "--cap-add", "net_admin", "--cap-drop", "CAP_MKNOD", "--cap-drop", "chown")
    names = capabilities.decode(st["CapEff"])
    assert "CAP_NET_ADMIN" in names
    assert "CAP_MKNOD" not in names and "CAP_CHOWN" not in names
    assert capabilities.decode(status(store, "--cap-drop", "ALL")["CapBnd"]) == []
    assert capabilities.decode(status(store, "--cap-drop", "ALL", "--cap-add", "KILL")
                               ["CapEff"]) == ["CAP_KILL"]


def test_privileged_has_everything_minidocker_has(store: CLI) -> None:
    st = status(store, "--privileged")
    assert int(st["CapEff"], 16) == capabilities.own_available()
    assert st["Seccomp"].strip() == "0"


def test_a_user_gets_bounding_only_unless_ambient(store: CLI) -> None:
    st = status(store, "-u", "1000", "--cap-add", "NET_ADMIN")
    assert "CAP_NET_ADMIN" in capabilities.decode(st["CapBnd"])
    for field in ("CapPrm", "CapEff", "CapInh", "CapAmb"):
        assert int(st[field], 16) == 0, field
    st = status(store, "-u", "1000", "--cap-ambient", "NET_BIND_SERVICE")
    for field in ("CapPrm", "CapEff", "CapInh", "CapAmb"):
        assert capabilities.decode(st[field]) == ["CAP_NET_BIND_SERVICE"], field


def test_a_capability_aware_program_fails_then_works(store: CLI) -> None:
    """Binding port 80 as a user: not with --cap-add alone (Docker's behaviour), with ambient."""
    script = "nc -l -p 80 & sleep 0.3; kill $! 2>/dev/null && echo listening"
    refused = store("run", "--rm", "-u", "1000", "--cap-add", "NET_BIND_SERVICE", "busybox",
                    "sh", "-c", script)
    assert "listening" not in refused.stdout and "Permission denied" in refused.stderr
    works = store("run", "--rm", "-u", "1000", "--cap-ambient", "NET_BIND_SERVICE", "busybox",
                  "sh", "-c", script, check=True)
    assert "listening" in works.stdout


def test_chown_needs_cap_chown(store: CLI) -> None:
    script = "touch /f && chown 1:1 /f && echo changed"
    assert store("run", "--rm", "busybox", "sh", "-c", script, check=True).stdout == "changed\n"
    dropped = store("run", "--rm", "--cap-drop", "CHOWN", "busybox", "sh", "-c", script)
    assert dropped.returncode != 0 and "Operation not permitted" in dropped.stderr


# -- seccomp and no_new_privs --------------------------------------------------------------------

def test_seccomp_filter_is_on_and_denies_with_eperm(store: CLI) -> None:
    assert status(store)["Seccomp"].strip() == "2"
    denied = store("run", "--rm", "busybox", "unshare", "-U", "true")
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr
    allowed = store("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox",
                    "unshare", "-U", "true")
    assert allowed.returncode == 0, allowed.stderr  # unprivileged user namespaces: seccomp


def test_a_custom_profile_in_dockers_format(store: CLI, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    out = store("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "sh", "-c",
                "touch /ok && echo touched; mkdir /nope")
    assert "touched" in out.stdout
    assert "Operation not permitted" in out.stderr and out.returncode != 0


def test_no_new_privileges(probe: CLI) -> None:
    def ids(*options: str) -> str:
        return probe("run", "--rm", "-u", "1000", *options, "escape-probe", "/probe-suid",
                     "ids", check=True).stdout
    plain = ids()
    assert "euid=0" in plain and "NoNewPrivs:\t0" in plain  # setuid root works...
    assert int(plain.split("CapEff:\t")[1].split()[0], 16) == capabilities.default_mask()
    confined = ids("--security-opt", "no-new-privileges")
    assert "euid=1000" in confined and "NoNewPrivs:\t1" in confined  # ...not with nnp
    assert "CapEff:\t0000000000000000" in confined


def test_no_new_privileges_still_loads_seccomp(store: CLI) -> None:
    st = status(store, "--security-opt", "no-new-privileges", "-u", "1000")
    assert st["NoNewPrivs"].strip() == "1" and st["Seccomp"].strip() == "2"


def test_init_pid_1_is_confined_and_not_dumpable(store: CLI) -> None:
    out = store("run", "--rm", "--init", "busybox", "sh", "-c",
                "grep -E 'CapEff|Seccomp:' /proc/1/status; stat -c %u /proc/1/exe; "
                "readlink /proc/1/exe || echo unreadable", check=True).stdout
    assert "a80425fb" in out and "Seccomp:\t2" in out
    assert "unreadable" in out


def test_the_runtime_binary_is_never_the_command(probe: CLI) -> None:
    for command in ("/proc/self/exe", "/exe-script"):
        result = probe("run", "--rm", "escape-probe", command)
        assert_one_line_error(result, 126, "CVE-2019-5736", command)


# -- rlimits ------------------------------------------------------------------------------------

def test_ulimit(store: CLI) -> None:
    out = store("run", "--rm", "--ulimit", "nofile=512:1024", "busybox", "sh", "-c",
                "ulimit -n; ulimit -Hn", check=True).stdout.split()
    assert out == ["512", "1024"]


def test_ulimit_above_the_hard_limit_is_a_clear_error(store: CLI) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or capabilities.own_available() >> 24 & 1:
        pytest.skip("this host lets minidocker raise nofile (no hard limit, or "
                    "CAP_SYS_RESOURCE): nothing to refuse")
    before = snapshot(store.root)
    result = store("run", "--rm", "--ulimit", f"nofile={hard + 1}", "busybox", "true")
    assert_one_line_error(result, 125, "--ulimit nofile", str(hard), "CAP_SYS_RESOURCE")
    assert_unchanged(before, store.root)


# -- devices -----------------------------------------------------------------------------------

def test_dev_is_nodev_and_its_nodes_work(store: CLI) -> None:
    out = store("run", "--rm", "busybox", "sh", "-c",
                "grep ' /dev ' /proc/self/mountinfo; echo x > /dev/null && echo null-ok; "
                "mknod /dev/myzero c 1 5 && head -c1 /dev/myzero", check=False)
    assert "nodev" in out.stdout.splitlines()[0]
    assert "null-ok" in out.stdout
    assert "Permission denied" in out.stderr  # a node we made ourselves does not open


def test_device_flag_adds_a_node(store: CLI) -> None:
    out = store("run", "--rm", "--device", "/dev/zero:/dev/myzero", "busybox", "sh", "-c",
                "ls -l /dev/myzero; head -c 3 /dev/myzero | od -An -tx1", check=True).stdout
    assert out.startswith("crw") and "00 00 00" in out


def test_device_read_only_goes_through_the_devices_cgroup(store: CLI) -> None:
    """``:r`` is a rule only the devices cgroup can express (Docker's defaults allow c 1:5
    rwm, so it takes a device outside them: an unused loop device, refused at open)."""
    loop = "/dev/loop7"
    if not os.path.exists(loop) or os.path.realpath(loop) in _used_loops():
        pytest.skip(f"{loop} is missing or in use on this host")
    out = store("run", "--rm", "--device", f"{loop}:/dev/xloop:r", "busybox", "sh", "-c",
                "grep devices /proc/self/cgroup; exec 3</dev/xloop && echo read-open; "
                "exec 4>/dev/xloop && echo write-open", check=False)
    assert "read-open" in out.stdout and "write-open" not in out.stdout
    assert "Operation not permitted" in out.stderr


def _used_loops() -> set[str]:
    try:
        return {line.split(":")[0] for line in subprocess.run(
            ["losetup", "-a"], capture_output=True, text=True).stdout.splitlines()}
    except FileNotFoundError:
        return set()


def _device_nodes(names: list[str], where: str = "/dev") -> set[str]:
    """The character and block devices among ``names`` (not the directories and symlinks
    that udev, or a VM's devtmpfs, puts beside them: they differ from host to host)."""
    import stat

    def is_node(name: str) -> bool:
        mode = os.lstat(os.path.join(where, name)).st_mode
        return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)

    return {name for name in names if is_node(name)}


def test_privileged_gets_the_host_devices(store: CLI) -> None:
    """Every device node of the host, but those a container has its own of (runc leaves
    /dev/console out too); a device made or removed meanwhile (a loop device another test
    set up) may differ."""
    inside = set(store("run", "--rm", "--privileged", "busybox", "sh", "-c",
                       'for f in /dev/*; do [ -L "$f" ] || { [ -c "$f" ] || [ -b "$f" ]; } '
                       '&& echo "${f#/dev/}"; done; true', check=True).stdout.split())
    host = _device_nodes([n for n in os.listdir("/dev") if n not in devices._HOST_DEV_SKIP])
    missing = {name for name in host - inside if not name.startswith("loop")}
    assert not missing, sorted(missing)
    assert "console" not in inside and {"null", "zero", "full"} <= inside


def test_ebpf_device_filter_on_cgroup_v2(tmp_path: Path) -> None:
    """The v2 mechanism for real: on this v1 "hybrid" host, on the cgroup2 tree beside it."""
    unified = next((p for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                    if os.path.exists(os.path.join(p, "cgroup.controllers"))), None)
    if unified is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    group = os.path.join(unified, TEST_ROOT_MARK + "ebpf")
    os.mkdir(group)
    try:
        devices.attach_v2(group, [("c", 1, 3, "rwm"), ("c", 1, 5, "r")])
        code = ("import os,errno,sys\n"
                f"open('{group}/cgroup.procs','w').write('0')\n"
                "r=[]\n"
                "for p,f in (('/dev/null',os.O_RDWR),('/dev/zero',os.O_RDONLY),"
                "('/dev/zero',os.O_WRONLY),('/dev/full',os.O_RDONLY)):\n"
                "    try: os.close(os.open(p,f)); r.append('ok')\n"
                "    except OSError as e: r.append(errno.errorcode[e.errno])\n"
                "print(' '.join(r))\n")
        out = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()
        assert out == ["ok", "ok", "EPERM", "EPERM"]
    finally:
        os.rmdir(group)


# -- user namespaces ----------------------------------------------------------------------------

@pytest.fixture
def subids(tmp_path: Path, store: CLI) -> CLI:
    """The store, told to keep its subordinate ranges in files made for the test.

    They start as a fresh machine's do, with no line for minidocker (another user holds
    100000-199999), so the first ``--userns private`` adds 200000:65536 to them.
    """
    if not idmap_supported(store.root):
        fstype = userns.filesystem_type(str(store.root))
        pytest.skip(f"the test's state root is on {fstype}, which takes no idmapped mounts on "
                    f"Linux {os.uname().release}: test_userns_on_a_filesystem_without_"
                    "idmapped_mounts checks the error a user gets there instead")
    for name in ("subuid", "subgid"):
        (tmp_path / name).write_text("someone:100000:100000\n")
    cli = CLI(store.root)
    cli.env.pop("MINIDOCKER_USERNS_REMAP", None)
    cli.env.update(MINIDOCKER_SUBUID=str(tmp_path / "subuid"),
                   MINIDOCKER_SUBGID=str(tmp_path / "subgid"))
    return cli


def test_userns_maps_root_to_the_subordinate_range(subids: CLI, tmp_path: Path) -> None:
    result = subids("run", "--rm", "--userns", "private", "busybox", "sh", "-c",
                    "id -u; cat /proc/self/uid_map /proc/self/gid_map; stat -c %u:%g /bin /etc; "
                    "echo x > /etc/hosts && touch /made && stat -c %u /made; "
                    "grep CapEff /proc/self/status", check=True)
    assert result.stderr == (f"minidocker: added minidocker:200000:65536 to {tmp_path}/subuid "
                             f"and {tmp_path}/subgid for --userns private\n")
    assert (tmp_path / "subuid").read_text().splitlines()[-1] == "minidocker:200000:65536"
    out = result.stdout.split("\n")
    assert out[0] == "0"
    assert out[1].split() == ["0", "200000", "65536"] and out[2].split() == out[1].split()
    assert out[3:5] == ["0:0", "0:0"], "the image's files must look root-owned inside"
    assert out[5] == "0"
    assert "a80425fb" in out[6]


@pytest.mark.parametrize("force_attached", ["0", "1"])
def test_userns_overlay_on_detached_or_attached_layers(subids: CLI, force_attached: str) -> None:
    """Before Linux 6.15 overlayfs wants its layers attached in a mount namespace (Debian 12's
    6.1 failed with "failed to clone upperpath"): a throwaway process attaches them. Both ways
    give the container the same root; mountinfo shows which was taken."""
    from minidocker import userns

    subids.env["MINIDOCKER_USERNS_ATTACHED_LAYERS"] = force_attached
    out = subids("run", "--rm", "--userns", "private", "busybox", "sh", "-c",
                 "grep ' / / ' /proc/self/mountinfo; echo x > /made; stat -c %u /made; "
                 "stat -c %u:%g /bin", check=True).stdout.splitlines()
    attached = force_attached == "1" or userns.kernel_version() < userns.DETACHED_LAYERS
    root = out[0]
    assert " - overlay " in root
    if attached:
        assert "lowerdir=0," in root and "upperdir=c/upper" in root, root
    else:
        assert "lowerdir=/proc/self/fd/" in root, root
    assert out[1:] == ["0", "0:0"]


def test_userns_on_a_filesystem_without_idmapped_mounts(tmp_path: Path) -> None:
    """ramfs takes no idmapped mounts (nor does tmpfs before Linux 6.3, a /tmp on Debian 12):
    --userns private with a state root there fails in one line that names the filesystem
    and says what to do, and leaves nothing mounted."""
    root = tmp_path / f"{TEST_ROOT_MARK}ramfs"
    root.mkdir()
    for name in ("subuid", "subgid"):
        (tmp_path / name).write_text("minidocker:100000:65536\n")
    script = (f"mount -t ramfs ramfs {root}\n"
              f"export MINIDOCKER_ROOT={root} MINIDOCKER_SUBUID={tmp_path}/subuid "
              f"MINIDOCKER_SUBGID={tmp_path}/subgid\n"
              f"{sys.executable} -m minidocker run --rm busybox true\n"
              f"rc=0; {sys.executable} -m minidocker run --rm --userns private busybox true "
              f"2>{tmp_path}/err || rc=$?\necho $rc\n"
              f"ls {root}/containers | wc -l\n")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-euc",
                             script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rc, left = result.stdout.split()
    assert (rc, left) == ("125", "0")
    [line] = (tmp_path / "err").read_text().splitlines()
    assert line.startswith("minidocker: --userns private: the ramfs filesystem under "), line
    assert "does not support idmapped mounts on Linux" in line and "ext4, xfs or btrfs" in line


def test_userns_with_init_a_user_and_a_terminal_option(subids: CLI) -> None:
    out = subids("run", "--rm", "--userns", "private", "--init", "busybox", "sh", "-c",
                 "cat /proc/1/comm; id -u", check=True).stdout.split()
    assert out == ["init", "0"]
    out = subids("run", "--rm", "--userns", "private", "-u", "1000", "busybox", "sh", "-c",
                 "id -u; grep CapEff /proc/self/status", check=True).stdout
    assert out.split()[0] == "1000" and "CapEff:\t0000000000000000" in out


def test_userns_seen_from_the_host(subids: CLI) -> None:
    proc = subids.popen("run", "--rm", "--userns", "private", "busybox", "sh", "-c",
                        "echo ready; sleep 30", stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        [child] = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                   .read_text().split()]
        st = dict(line.split(":\t", 1) for line in Path(f"/proc/{child}/status")
                  .read_text().splitlines())
        assert st["Uid"].split() == ["200000"] * 4
        assert Path(f"/proc/{child}/uid_map").read_text().split() == ["0", "200000", "65536"]
        assert os.readlink(f"/proc/{child}/ns/user") != os.readlink("/proc/self/ns/user")
    finally:
        proc.kill()
        proc.wait()


def test_userns_without_a_range_and_with_privileged(store: CLI, tmp_path: Path) -> None:
    unwritable = tmp_path / "no-such-dir" / "subuid"  # no range, and none can be added
    cli = CLI(store.root)
    cli.env.pop("MINIDOCKER_USERNS_REMAP", None)
    cli.env.update(MINIDOCKER_SUBUID=str(unwritable), MINIDOCKER_SUBGID=str(unwritable))
    before = snapshot(store.root)
    assert_one_line_error(cli("run", "--rm", "--userns", "private", "busybox", "true"), 125,
                          "no subordinate id range", "adding one failed", str(unwritable))
    assert_one_line_error(cli("run", "--rm", "--userns", "private", "--privileged", "busybox",
                              "true"), 125, "incompatible with user namespaces")
    assert_unchanged(before, store.root)


# -- LSMs ----------------------------------------------------------------------------------------

def test_lsm_state_is_reported_by_doctor(store: CLI) -> None:
    out = store("doctor").stdout
    host = lsm.status()
    assert ("AppArmor" in out or "apparmor" in out) and ("SELinux" in out or "selinux" in out)
    if not host.apparmor_present:
        assert "not present" in out


def test_apparmor_profile_is_applied_where_enabled(store: CLI) -> None:
    if not lsm.status().apparmor_enabled:
        pytest.skip("AppArmor is not enabled on this host (no /sys/module/apparmor): nothing "
                    "to apply; the notebook says what would happen")
    out = store("run", "--rm", "busybox", "cat", "/proc/self/attr/current", check=True).stdout
    assert out.startswith(lsm.DEFAULT_PROFILE_NAME)


# -- bad input ----------------------------------------------------------------------------------

BAD = [
    ("unknown-capability", ["--cap-add", "FOO"], ["unknown capability", "FOO"]),
    ("unknown-capability-drop", ["--cap-drop", "CAP_NOPE"], ["unknown capability"]),
    ("withheld-capability", ["--cap-add", "SYS_RESOURCE"], ["CAP_SYS_RESOURCE"]),
    ("ambient-not-granted", ["-u", "1000", "--cap-ambient", "SYS_ADMIN"], ["not granted"]),
    ("missing-profile", ["--security-opt", "seccomp=/no/such/profile.json"],
     ["/no/such/profile.json"]),
    ("bad-security-opt", ["--security-opt", "bogus"], ["invalid --security-opt"]),
    ("missing-device", ["--device", "/dev/no-such-device"],
     ["/dev/no-such-device", "no such file"]),
    ("not-a-device", ["--device", "/etc/passwd"], ["not a device"]),
    ("bad-ulimit", ["--ulimit", "nofile=abc"], ["--ulimit"]),
    ("bad-userns", ["--userns", "maybe"], ["--userns"]),
]


@pytest.mark.parametrize(("args", "words"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_security_input(store: CLI, args: list[str], words: list[str]) -> None:
    if "SYS_RESOURCE" in args and capabilities.own_available() >> 24 & 1:
        pytest.skip("this host gives minidocker CAP_SYS_RESOURCE")
    before = snapshot(store.root)
    result = store("run", "--rm", *args, "busybox", "true")
    assert_one_line_error(result, 125, *words)
    assert_unchanged(before, store.root)


@pytest.mark.parametrize(("text", "words"), [
    ("{broken", ["not valid JSON"]),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["no_such_syscall"], '
     '"action": "SCMP_ACT_ERRNO"}]}', ["unknown syscall", "no_such_syscall"]),
])
def test_bad_seccomp_profiles(store: CLI, tmp_path: Path, text: str, words: list[str]) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(text)
    before = snapshot(store.root)
    result = store("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "true")
    assert_one_line_error(result, 125, str(profile), *words)
    assert_unchanged(before, store.root)
