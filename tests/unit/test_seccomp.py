"""seccomp profiles: Docker's JSON format, its conditions, compiling and caching (no root).

Compiling needs libseccomp (Debian libseccomp2), not root: the program is built and exported,
never installed, here.
"""

from __future__ import annotations

import ctypes.util
import json
import os

import pytest

from minidocker import seccomp
from minidocker.errors import UsageError
from minidocker.seccomp_default import DEFAULT_PROFILE

pytestmark = pytest.mark.nb03

needs_libseccomp = pytest.mark.skipif(ctypes.util.find_library("seccomp") is None,
                                      reason="libseccomp2 is not installed")
DEFAULT_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}


def allowed_names(caps: set[str], arch: str = "amd64", kernel: str = "6.1") -> set[str]:
    """Names an ALLOW rule of the default profile applies to, unconditionally."""
    return {name for rule in DEFAULT_PROFILE["syscalls"]
            if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
            and seccomp.applies(rule, caps, arch, kernel) for name in rule["names"]}


def test_the_default_profile_is_a_valid_docker_profile():
    seccomp.check_profile(json.loads(json.dumps(DEFAULT_PROFILE)))
    assert DEFAULT_PROFILE["defaultAction"] == "SCMP_ACT_ERRNO"
    assert DEFAULT_PROFILE["defaultErrnoRet"] == 1


@pytest.mark.parametrize("name", ["keyctl", "add_key", "request_key", "kexec_load", "bpf",
                                  "unshare", "mount", "umount2", "setns", "init_module",
                                  "finit_module", "open_by_handle_at", "reboot", "chroot",
                                  "userfaultfd", "perf_event_open", "clone3", "syslog"])
def test_dangerous_calls_are_not_allowed_by_default(name):
    caps = DEFAULT_CAPS - {"CAP_SYS_CHROOT"}  # chroot rides on that capability: see below
    assert name not in allowed_names(caps)


def test_calls_follow_the_capabilities():
    assert "chroot" in allowed_names(DEFAULT_CAPS)
    with_admin = allowed_names(DEFAULT_CAPS | {"CAP_SYS_ADMIN"})
    assert {"mount", "unshare", "setns", "bpf", "clone"} <= with_admin
    assert "ptrace" in allowed_names(DEFAULT_CAPS)  # kernel >= 4.8
    assert "ptrace" not in allowed_names(DEFAULT_CAPS, kernel="4.4")
    assert "open_by_handle_at" in allowed_names(DEFAULT_CAPS | {"CAP_DAC_READ_SEARCH"})


def test_clone3_gets_enosys_and_clone_is_checked_for_namespace_flags():
    rules = [r for r in DEFAULT_PROFILE["syscalls"]
             if "clone3" in r["names"] and r["action"] == "SCMP_ACT_ERRNO"]
    assert rules and rules[0]["errnoRet"] == 38
    clone = [r for r in DEFAULT_PROFILE["syscalls"] if r["names"] == ["clone"]
             and seccomp.applies(r, DEFAULT_CAPS, "amd64", "6.1")]
    assert clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"
    assert clone[0]["args"][0]["value"] == 0x7E020000  # every CLONE_NEW* flag


def test_conditions_arches_and_kernel():
    rule = {"includes": {"arches": ["amd64"], "minKernel": "5.8"}}
    assert seccomp.applies(rule, set(), "amd64", "6.18.44-fc")
    assert not seccomp.applies(rule, set(), "arm64", "6.18")
    assert not seccomp.applies(rule, set(), "amd64", "5.4.0")
    assert not seccomp.applies({"excludes": {"caps": ["CAP_X"]}}, {"CAP_X"}, "amd64", "6.1")


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ('{"syscalls": []}', "no defaultAction"),
    ('{"defaultAction": "SCMP_ACT_MAYBE"}', "unknown action"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
     '"action": "SCMP_ACT_NOPE"}]}', "unknown action"),
    ('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
     '"action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}',
     "bad argument condition"),
])
def test_malformed_profiles_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "profile.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        seccomp.read_profile(str(path))
    assert "\n" not in str(info.value)


def test_a_missing_profile_file(tmp_path):
    with pytest.raises(UsageError, match="opening seccomp profile .*No such file"):
        seccomp.read_profile(str(tmp_path / "nope.json"))


@needs_libseccomp
def test_the_default_profile_compiles_to_bpf():
    compiled = seccomp.compile_profile(DEFAULT_PROFILE, DEFAULT_CAPS)
    assert len(compiled.program) % 8 == 0 and len(compiled.program) > 8 * 100
    assert compiled.skipped == []
    first = seccomp.disassemble(compiled.program, 2)
    # BPF_LD|BPF_W|BPF_ABS of seccomp_data.arch (offset 4): the architecture is checked first
    assert first[0].startswith("   0: code=0x0020") and first[0].endswith("k=0x00000004")


@needs_libseccomp
def test_pfc_is_readable():
    text = seccomp.pfc(DEFAULT_PROFILE, DEFAULT_CAPS)
    assert 'filter for syscall "read"' in text
    assert 'syscall "keyctl"' not in text


@needs_libseccomp
def test_an_unknown_syscall_that_would_be_denied_is_an_error():
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}]}
    with pytest.raises(UsageError, match="unknown syscall 'no_such_call'.*would allow it"):
        seccomp.compile_profile(profile, set())


@needs_libseccomp
def test_an_unknown_syscall_that_would_be_allowed_stays_denied_with_a_warning(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "no_such_call"], "action": "SCMP_ACT_ALLOW"}]}))
    warnings: list[str] = []
    program = seccomp.program_for(str(path), set(), None, warnings.append)
    assert program
    assert warnings and "no_such_call" in warnings[0] and "stay denied" in warnings[0]


def test_unconfined_is_no_program():
    assert seccomp.program_for("unconfined", DEFAULT_CAPS) is None


@needs_libseccomp
def test_the_default_program_is_cached_per_capability_set(tmp_path):
    cache = str(tmp_path / "cache")
    first = seccomp.program_for("", DEFAULT_CAPS, cache)
    assert first is not None
    [name] = os.listdir(cache)
    assert name.startswith("default-a80425fb-") and name.endswith(".bpf")
    with open(os.path.join(cache, name), "rb") as f:
        assert f.read() == first
    assert seccomp.program_for("", DEFAULT_CAPS, cache) == first  # a hit
    seccomp.program_for("", DEFAULT_CAPS | {"CAP_SYS_ADMIN"}, cache)
    assert len(os.listdir(cache)) == 2


@needs_libseccomp
def test_a_damaged_cache_entry_is_compiled_again(tmp_path):
    cache = tmp_path / "cache"
    good = seccomp.program_for("", DEFAULT_CAPS, str(cache))
    [entry] = cache.iterdir()
    entry.write_bytes(b"123")  # not a whole number of instructions
    assert seccomp.program_for("", DEFAULT_CAPS, str(cache)) == good
