"""The other security plans: rlimits, devices (and the eBPF program), user namespace ranges,
LSM status, --security-opt, and the whole SecurityPlan. No root needed."""

from __future__ import annotations

import os
import resource

import pytest

from minidocker import devices, lsm, rlimits, security, userns
from minidocker.errors import UsageError

pytestmark = pytest.mark.nb03


# -- rlimits ------------------------------------------------------------------------------------

def test_ulimit_forms():
    assert rlimits.parse("nofile=1024").as_dict() == {"Name": "nofile", "Soft": 1024,
                                                     "Hard": 1024}
    assert rlimits.parse("nofile=100:200").as_dict()["Hard"] == 200
    assert rlimits.parse("core=-1").as_dict() == {"Name": "core", "Soft": -1, "Hard": -1}


@pytest.mark.parametrize(("flag", "message"), [
    ("nofile", "want name=soft"), ("nofiles=1", "unknown limit 'nofiles'"),
    ("nofile=abc", "not a number"), ("nofile=10:5", "soft limit 10 is above the hard"),
    ("nofile=-5", "negative"),
])
def test_bad_ulimits(flag, message):
    with pytest.raises(UsageError, match=message):
        rlimits.parse(flag)


def test_a_hard_limit_above_ours_is_refused_without_cap_sys_resource():
    ours = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if ours == resource.RLIM_INFINITY:
        pytest.skip("this process has no hard nofile limit to exceed")
    with pytest.raises(UsageError, match="above minidocker's own .*CAP_SYS_RESOURCE"):
        rlimits.plan([f"nofile={ours + 1}"], available_caps=0)
    assert rlimits.plan([f"nofile={ours + 1}"], available_caps=1 << 24)  # with it: allowed
    assert rlimits.plan([f"nofile=10:{ours}"], available_caps=0)[0].hard == ours


def test_last_ulimit_for_a_name_wins():
    [only] = rlimits.plan(["nofile=10", "nofile=20"], available_caps=1 << 24)
    assert only.soft == 20


# -- devices ------------------------------------------------------------------------------------

def test_device_flag_forms():
    d = devices.parse("/dev/null")
    assert (d.path, d.kind, d.major, d.minor, d.access) == ("/dev/null", "c", 1, 3, "rwm")
    d = devices.parse("/dev/null:/dev/mynull:r")
    assert (d.path, d.access, d.host_path) == ("/dev/mynull", "r", "/dev/null")
    assert devices.parse("/dev/zero:rw").access == "rw"
    assert d.as_dict() == {"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull",
                           "CgroupPermissions": "r"}


@pytest.mark.parametrize(("flag", "message"), [
    ("/dev/no-such-device", "error gathering device information.*no such file"),
    ("/etc/passwd", "not a device node"),
    ("dev/null", "want /dev/host"),
    ("/dev/null:relative", "want /dev/host"),
])
def test_bad_devices(flag, message):
    with pytest.raises(UsageError, match=message):
        devices.parse(flag)


def test_rule_text_is_the_devices_allow_syntax():
    assert devices.rule_text("c", 136, -1, "rwm") == "c 136:* rwm"
    assert devices.rule_text("b", -1, -1, "m") == "b *:* m"


def test_v1_rules_deny_all_first(tmp_path):
    for name in ("devices.deny", "devices.allow"):
        (tmp_path / name).write_text("")
    devices.set_rules_v1(str(tmp_path), devices.rules_for([]))
    assert (tmp_path / "devices.deny").read_text() == "a"
    assert (tmp_path / "devices.allow").read_text() == "c 10:200 rwm"  # each write replaces


def run_bpf(program: bytes, kind: int, major: int, minor: int, access: int) -> int:
    """A tiny interpreter for the instructions bpf_program emits: r0 at exit."""
    regs = [0] * 11
    ctx = [access << 16 | kind, major, minor]
    pc = 0
    while True:
        code, regs_byte = program[pc * 8], program[pc * 8 + 1]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        off = int.from_bytes(program[pc * 8 + 2:pc * 8 + 4], "little", signed=True)
        imm = int.from_bytes(program[pc * 8 + 4:pc * 8 + 8], "little")
        pc += 1
        if code == 0x61:
            regs[dst] = ctx[off // 4]
        elif code == 0x54:
            regs[dst] &= imm
        elif code == 0x74:
            regs[dst] >>= imm
        elif code == 0xBC:
            regs[dst] = regs[src]
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0x55:
            pc += off if regs[dst] != imm else 0
        elif code == 0x5D:
            pc += off if regs[dst] != regs[src] else 0
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize(("kind", "major", "minor", "access", "allowed"), [
    (2, 1, 3, 2 | 4, 1),     # read+write /dev/null
    (2, 1, 5, 2, 1),         # read /dev/zero
    (2, 136, 7, 2, 1),       # a pty: c 136:*
    (1, 254, 0, 2, 0),       # read the host's disk: no
    (1, 254, 0, 1, 1),       # mknod it: yes, as in Docker (b *:* m)
    (2, 10, 200, 4, 1),      # /dev/net/tun
    (2, 4, 1, 2, 0),         # /dev/tty1: no
])
def test_the_ebpf_program_says_what_the_rules_say(kind, major, minor, access, allowed):
    program = devices.bpf_program(devices.rules_for([]))
    assert run_bpf(program, kind, major, minor, access) == allowed


def test_a_read_only_device_rule_refuses_writes():
    rules = [("c", 1, 5, "r")]
    program = devices.bpf_program(rules)
    assert run_bpf(program, 2, 1, 5, 2) == 1
    assert run_bpf(program, 2, 1, 5, 4) == 0


# -- user namespaces ----------------------------------------------------------------------------

def test_subid_lines():
    text = "# comment\nalice:200000:65536\nminidocker:100000:65536\n0:300000:10\n"
    assert userns.parse_subid(text, "minidocker") == (100000, 65536)
    assert userns.parse_subid(text, "root", uid=0) == (300000, 10)
    assert userns.parse_subid(text, "bob") is None


def test_plan_reads_both_files(tmp_path):
    (tmp_path / "subuid").write_text("minidocker:100000:65536\n")
    (tmp_path / "subgid").write_text("minidocker:200000:1000\n")
    plan = userns.plan(subuid=str(tmp_path / "subuid"), subgid=str(tmp_path / "subgid"))
    assert plan.uid_map.line() == "0 100000 65536"
    assert plan.gid_map.line() == "0 200000 1000"
    assert plan.uid_map.to_host(1000) == 101000


def test_another_users_missing_range_is_a_clear_error(tmp_path):
    # Only the default user's ranges are made; a user someone named is theirs to set up.
    (tmp_path / "subuid").write_text("someone:100000:65536\n")
    with pytest.raises(UsageError, match="no subordinate uid range for user 'alice'"):
        userns.plan("alice", subuid=str(tmp_path / "subuid"), subgid=str(tmp_path / "subuid"))
    assert (tmp_path / "subuid").read_text() == "someone:100000:65536\n"


@pytest.mark.parametrize(("taken", "start"), [
    ([], 100000),
    ([(100000, 65536)], 165536),                       # dockerd's and useradd's first range
    ([(50000, 60000)], 110000),                        # overlaps the start from below
    ([(0, 1_000_000)], 1_000_000),                     # covers the candidate entirely
    ([(300000, 10), (100000, 65536)], 165536),         # unsorted; the gap before 300000 fits
    ([(100000, 65536), (200000, 10)], 200010),         # a gap too small is skipped
    ([(165536, 65536), (100000, 65536)], 231072),      # back to back
    ([(10, 5), (2_000_000, 1)], 100000),               # below and far above: no overlap
])
def test_free_start_overlaps_no_range(taken, start):
    assert userns.free_start(taken) == start
    for begin, length in taken:
        assert start + userns.MAP_SIZE <= begin or begin + length <= start


def test_free_start_when_the_ids_run_out():
    with pytest.raises(UsageError, match="no 65536 free subordinate ids are left above 100000"):
        userns.free_start([(100000, 2**32 - 100000 - 10)])


def test_subid_ranges_counts_every_user_and_skips_junk():
    text = "# c\nalice:200000:65536\n0:300000:10\nbad line\nbob:x:1\n"
    assert userns.subid_ranges(text) == [(200000, 65536), (300000, 10)]


def subid_files(tmp_path, uid_text, gid_text):
    uid, gid = tmp_path / "subuid", tmp_path / "subgid"
    uid.write_text(uid_text)
    gid.write_text(gid_text)
    return uid, gid


def test_missing_ranges_are_added_to_the_named_files(tmp_path, monkeypatch, capsys):
    def no_useradd(user):
        raise AssertionError("no user is created for files named by $MINIDOCKER_SUBUID")

    monkeypatch.setattr(userns, "_create_user", no_useradd)
    monkeypatch.setenv("MINIDOCKER_SUBUID", str(tmp_path / "subuid"))
    monkeypatch.setenv("MINIDOCKER_SUBGID", str(tmp_path / "subgid"))
    monkeypatch.delenv("MINIDOCKER_USERNS_REMAP", raising=False)
    uid, gid = subid_files(tmp_path, "alice:100000:65536\n", "bob:165536:65536")  # no newline
    os.chmod(uid, 0o640)
    plan = userns.plan()
    # one start free in both files: the maps match, as Docker's do
    assert plan.uid_map.line() == plan.gid_map.line() == "0 231072 65536"
    assert uid.read_text() == "alice:100000:65536\nminidocker:231072:65536\n"
    assert gid.read_text() == "bob:165536:65536\nminidocker:231072:65536\n"
    assert os.stat(uid).st_mode & 0o777 == 0o640  # the file's mode is kept
    assert capsys.readouterr().err == (f"minidocker: added minidocker:231072:65536 to {uid} and "
                                       f"{gid} for --userns private\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subgid", "subuid"]  # no lock left
    userns.plan()  # once made, nothing more is added or said
    assert capsys.readouterr().err == ""
    assert uid.read_text().count("minidocker") == 1


def test_a_range_missing_from_one_file_only(tmp_path, capsys):
    uid, gid = subid_files(tmp_path, "minidocker:100000:65536\n", "")
    plan = userns.plan(subuid=str(uid), subgid=str(gid))
    assert plan.uid_map.line() == plan.gid_map.line() == "0 100000 65536"
    assert uid.read_text() == "minidocker:100000:65536\n"
    assert gid.read_text() == "minidocker:100000:65536\n"
    assert capsys.readouterr().err == (f"minidocker: added minidocker:100000:65536 to {gid} for "
                                       "--userns private\n")


def test_the_hosts_files_get_the_user_too(tmp_path, monkeypatch):
    # plan() with no override means /etc: stand temp files in for them, record useradd.
    uid, gid = subid_files(tmp_path, "", "")
    monkeypatch.setattr(userns, "SUBUID", str(uid))
    monkeypatch.setattr(userns, "SUBGID", str(gid))
    for name in ("MINIDOCKER_SUBUID", "MINIDOCKER_SUBGID", "MINIDOCKER_USERNS_REMAP"):
        monkeypatch.delenv(name, raising=False)
    made = []
    monkeypatch.setattr(userns, "_create_user", lambda user: made.append(user) or True)
    said = []
    userns.add_ranges("minidocker", str(uid), str(gid), create_user=True, say=said.append)
    assert made == ["minidocker"]
    assert said == [f"created the system user minidocker and added minidocker:100000:65536 to "
                    f"{uid} and {gid} for --userns private"]
    made.clear()
    (uid.write_text(""), gid.write_text(""))
    userns.plan(say=said.append)
    assert made == ["minidocker"]


def test_a_stale_lock_is_broken_and_a_live_one_waited_for(tmp_path, monkeypatch):
    import subprocess

    uid, gid = subid_files(tmp_path, "", "")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "subuid.lock").write_text(f"{dead.pid}\0")  # left by a crashed usermod
    userns.plan(subuid=str(uid), subgid=str(gid), say=lambda text: None)
    assert not (tmp_path / "subuid.lock").exists()
    assert "minidocker:100000:65536" in uid.read_text()
    monkeypatch.setattr(userns, "LOCK_WAIT", 0.1)
    uid2, gid2 = tmp_path / "u2", tmp_path / "g2"
    (tmp_path / "g2.lock").write_text(f"{os.getpid()}\0")  # a live holder
    with pytest.raises(UsageError, match=f"{gid2} is locked by process {os.getpid()}"):
        userns.plan(subuid=str(uid2), subgid=str(gid2))
    assert not uid2.exists() and not (tmp_path / "u2.lock").exists()


def test_a_file_that_cannot_be_written_is_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-dir" / "subuid"
    with pytest.raises(UsageError, match=f"no subordinate id range for user 'minidocker', and "
                                         f"adding one failed: No such file or directory: "
                                         f"{missing}"):
        userns.plan(subuid=str(missing), subgid=str(missing))


# -- LSM ----------------------------------------------------------------------------------------

def test_doctor_says_which_profile_containers_get(tmp_path):
    from pathlib import Path

    from minidocker import doctor

    (tmp_path / "module/apparmor/parameters").mkdir(parents=True)
    (tmp_path / "module/apparmor/parameters/enabled").write_text("Y\n")
    assert "minidocker-default" in doctor.check_security_modules(Path(tmp_path)).detail


def test_lsm_status_from_a_fake_sysfs(tmp_path):
    assert lsm.status(str(tmp_path)).summary() == "AppArmor not present; SELinux not present"
    (tmp_path / "module/apparmor/parameters").mkdir(parents=True)
    (tmp_path / "module/apparmor/parameters/enabled").write_text("Y\n")
    (tmp_path / "kernel/security").mkdir(parents=True)
    (tmp_path / "kernel/security/lsm").write_text("lockdown,capability,apparmor\n")
    host = lsm.status(str(tmp_path))
    assert host.apparmor_enabled and not host.selinux_present
    assert lsm.profile_for(None, False, host) == "minidocker-default"
    assert lsm.profile_for(None, True, host) == ""  # privileged: unconfined
    assert lsm.profile_for("unconfined", False, host) == ""
    assert lsm.profile_for(None, False, lsm.status(str(tmp_path / "none"))) == ""


# -- --security-opt and the whole plan ----------------------------------------------------------

def test_security_opts():
    assert security.parse_security_opts(["no-new-privileges"]) == {"no_new_privs": True}
    assert security.parse_security_opts(["no-new-privileges:false"]) == {"no_new_privs": False}
    assert security.parse_security_opts(["seccomp=unconfined"]) == {"seccomp": "unconfined"}
    assert security.parse_security_opts(["seccomp=p.json"])["seccomp"] == os.path.abspath(
        "p.json")
    security.parse_security_opts(["label=disable"])
    for bad in ("nonsense", "seccomp=", "label=type:foo_t", "no-new-privileges=maybe"):
        with pytest.raises(UsageError):
            security.parse_security_opts([bad])


def test_privileged_and_userns_do_not_mix():
    with pytest.raises(UsageError, match="incompatible with user namespaces"):
        security.plan(privileged=True, userns="private")


def test_a_plan_is_printable_and_records_dockers_names():
    plan = security.plan(cap_drop=["NET_RAW"], security_opt=["seccomp=unconfined"])
    assert plan.seccomp is None
    assert "CAP_NET_RAW" not in plan.capabilities()
    record = plan.as_dict()
    assert record["CapDrop"] == ["NET_RAW"] and record["Seccomp"] == "unconfined"
    assert "SecurityPlan(" in repr(plan)
    again = security.from_record(record)
    assert again.granted == plan.granted and again.seccomp is None


@pytest.mark.parametrize("release, attached", [
    ("6.1.0-50-amd64", True),   # Debian 12: overlayfs wants attached layers
    ("6.8.0-45-generic", True),  # Ubuntu 24.04
    ("6.15.0", False),
    ("6.18.44-fc-v1300", False),
    ("7.0.1", False),
])
def test_userns_layers_are_attached_before_6_15(monkeypatch: pytest.MonkeyPatch, release: str,
                                                attached: bool) -> None:
    from minidocker import userns

    monkeypatch.delenv("MINIDOCKER_USERNS_ATTACHED_LAYERS", raising=False)
    uname = os.uname()
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(
        (uname.sysname, uname.nodename, release, uname.version, uname.machine)))
    assert userns.layers_must_be_attached() is attached
    monkeypatch.setenv("MINIDOCKER_USERNS_ATTACHED_LAYERS", "1")
    assert userns.layers_must_be_attached() is True
