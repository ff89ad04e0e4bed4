"""seccomp: a filter on the system calls themselves, below every other defence.

Capabilities decide what a privileged call may do; seccomp decides whether the call may be
made at all. A process installs a small program (classic BPF, the language of packet filters)
that the kernel runs on *every* system call the process and its descendants make, before the
call does anything. The program sees the syscall number, the architecture and the six argument
registers (never memory: it cannot follow a pointer), and answers allow, fail with an errno,
kill, trap or log. Once installed a filter can never be removed, only stacked on.

Docker's default profile (:mod:`minidocker.seccomp_default`) allows about 350 calls and
answers ``EPERM`` to the rest: the calls that were the way into the kernel's least-audited
code, or that act on the whole machine (keyctl, add_key, kexec_load, bpf, userfaultfd,
perf_event_open, reboot...), and the ones that would undo the other walls (mount, unshare of a
new user namespace to regain capabilities, setns) unless the container holds the capability.
``--security-opt seccomp=unconfined`` turns it off, ``seccomp=PROFILE.json`` replaces it with a
profile in Docker's JSON format.

**Built on libseccomp, not a compiler of our own.** The interesting lesson is the *policy*
(which calls, which arguments, why), and the JSON format is libseccomp's model (actions,
``SCMP_CMP_*`` comparisons, architecture names). libseccomp also gets the parts that are easy
to get wrong and hard to see: checking the architecture first (an x86_64 process can make
32-bit syscalls, with other numbers, through ``int 0x80``), the x32 ABI's syscall bit, 64-bit
argument comparisons in a 32-bit machine, and jump offsets that overflow 255. It is on every
Debian and Ubuntu machine that has runc (Debian ``libseccomp2``), and is reached through ctypes,
like the kernel. We use it only to *compile*: the BPF program is exported and installed by our
own ``seccomp(2)`` call (:func:`minidocker.syscalls.seccomp_set_mode_filter`), so ``--trace``
shows it, and so the program can be cached: compiling Docker's profile takes a few
milliseconds, loading a cached program microseconds. ``pfc`` shows the same filter as readable
pseudo code, and :func:`disassemble` the instructions themselves.

**When it is loaded.** Installing a filter needs ``no_new_privs`` or ``CAP_SYS_ADMIN``, because
a filter could otherwise make a setuid program misbehave. So, as runc does, a container without
``--security-opt no-new-privileges`` loads it while it still holds CAP_SYS_ADMIN (before the
capability sets are cut), and one with it sets no_new_privs and loads it last, right before
execve. See :func:`minidocker.security.apply`.

**An unknown syscall name** in a profile never widens the policy silently: a name libseccomp
does not know, in a rule that would *deny* it while the default allows, is an error; in a rule
that would allow it, it stays denied and minidocker says so (Docker skips such names quietly).

Notebook: ``03_capabilities``. Man pages: seccomp(2), prctl(2) (PR_SET_NO_NEW_PRIVS),
seccomp_rule_add(3), seccomp_export_bpf(3), syscalls(2).
"""

from __future__ import annotations

import os

from minidocker import syscalls
from minidocker.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    from collections.abc import Mapping
    from typing import Any

EPERM = 1
# Actions, as libseccomp spells them (seccomp.h); ERRNO and TRACE carry a 16-bit value.
ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000, "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
PERMISSIVE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
COMPARISONS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
               "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
# uname -m -> the names the profile's "arches" conditions use (Go's GOARCH).
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64", "s390x": "s390x",
           "ppc64le": "ppc64le", "armv7l": "arm", "i686": "386"}
CACHE_SUFFIX = ".bpf"
SCMP_FLTATR_CTL_OPTIMIZE = 8


class SeccompError(UsageError):
    """A profile that cannot be used: unreadable, malformed, or naming an unknown syscall."""


# -- the profile ------------------------------------------------------------------------------

def read_profile(path: str) -> dict[str, Any]:
    """A profile file in Docker's JSON format, checked enough to fail with one clear line."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            profile = json.load(f)
    except OSError as exc:
        raise SeccompError(f"opening seccomp profile {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SeccompError(f"seccomp profile {path} is not valid JSON: {exc}") from None
    check_profile(profile, path)
    return profile


def check_profile(profile: object, where: str = "default") -> None:
    """Reject what Docker rejects: no defaultAction, unknown actions or comparisons."""
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise SeccompError(f"seccomp profile {where}: no defaultAction")
    if profile["defaultAction"] not in ACTIONS:
        raise SeccompError(f"seccomp profile {where}: unknown action "
                           f"{profile['defaultAction']!r}")
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict) or rule.get("action") not in ACTIONS:
            action = rule.get("action") if isinstance(rule, dict) else rule
            raise SeccompError(f"seccomp profile {where}: unknown action {action!r}")
        if not (rule.get("names") or rule.get("name")):
            raise SeccompError(f"seccomp profile {where}: a rule without syscall names")
        for arg in rule.get("args") or []:
            if not isinstance(arg, dict) or arg.get("op") not in COMPARISONS \
                    or not 0 <= int(arg.get("index", -1)) <= 5:
                raise SeccompError(f"seccomp profile {where}: bad argument condition {arg!r}")


def _kernel_at_least(release: str, wanted: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        parts = []
        for piece in text.split(".")[:2]:
            digits = "".join(c for c in piece if c.isdigit()) or "0"
            parts.append(int(digits))
        return tuple(parts)
    return numbers(release) >= numbers(wanted)


def applies(rule: Mapping[str, Any], caps: set[str], arch: str, kernel: str) -> bool:
    """Docker's includes/excludes: every included capability granted, no excluded one; the
    architecture listed (or not excluded); the kernel at least ``minKernel``."""
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if any(c not in caps for c in inc.get("caps") or []):
        return False
    if any(c in caps for c in exc.get("caps") or []):
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if arch in (exc.get("arches") or []):
        return False
    if inc.get("minKernel") and not _kernel_at_least(kernel, inc["minKernel"]):
        return False
    return not (exc.get("minKernel") and _kernel_at_least(kernel, exc["minKernel"]))


def _action(name: str, errno_ret: int | None) -> int:
    value = ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value |= (EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


# -- compiling with libseccomp ----------------------------------------------------------------

_lib: Any = None


def libseccomp() -> Any:
    """libseccomp.so.2 through ctypes, loaded once, only when a profile must be compiled."""
    global _lib
    if _lib is None:
        import ctypes

        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            raise SeccompError("libseccomp.so.2 not found: apt-get install libseccomp2 "
                               "(or --security-opt seccomp=unconfined)") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.c_void_p]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_export_pfc.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        _lib = lib
    return _lib


def libseccomp_version() -> str:
    import ctypes

    class Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib = libseccomp()
    lib.seccomp_version.restype = ctypes.POINTER(Version)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


class Compiled:
    """A compiled filter: the BPF program, and what compiling it left out (and why)."""

    __slots__ = ("program", "rules", "skipped")

    def __init__(self, program: bytes, rules: int, skipped: list[str]) -> None:
        self.program = program  # struct sock_filter[], 8 bytes an instruction
        self.rules = rules
        self.skipped = skipped  # names libseccomp does not know: they stay denied

    def __repr__(self) -> str:
        return (f"Compiled({len(self.program) // 8} instructions, {self.rules} rules, "
                f"skipped={self.skipped})")


def _arg_array(args: list[Mapping[str, Any]]) -> ctypes.Array[Any]:
    import ctypes

    class ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                    ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]

    array = (ArgCmp * max(len(args), 1))()
    for i, a in enumerate(args):
        array[i] = ArgCmp(int(a["index"]), COMPARISONS[a["op"]], int(a.get("value", 0)),
                          int(a.get("valueTwo", 0)))
    return array


def _with_context(profile: Mapping[str, Any], caps: set[str], machine: str, kernel: str,
                  where: str, use: Any) -> Any:
    """Build the libseccomp filter for ``profile`` and hand the context to ``use``."""
    lib = libseccomp()
    default_name = profile["defaultAction"]
    default = _action(default_name, profile.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SeccompError("seccomp_init failed")
    try:
        # A binary search on the syscall number instead of one long chain of tests (libseccomp
        # 2.5; older versions refuse and keep the chain). For Docker's profile: 1227 instead of
        # 983 instructions, but each syscall runs ~10 tests instead of up to ~350, and so does
        # the kernel when it precomputes, at load time, which syscalls are always allowed
        # (the seccomp action cache): loading drops from ~1.3 ms to ~0.5 ms here.
        lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)
        _add_architectures(lib, ctx, profile, where)
        rules, skipped = _add_rules(lib, ctx, profile, caps, GO_ARCH.get(machine, machine),
                                    kernel, default, default_name in PERMISSIVE, where)
        return use(lib, ctx, rules, skipped)
    finally:
        lib.seccomp_release(ctx)


def _add_architectures(lib: Any, ctx: int, profile: Mapping[str, Any], where: str) -> None:
    """The native architecture is always there; add the ones the profile pairs with it (the
    32-bit ABIs an x86_64 kernel also runs), so their syscalls are filtered, not killed."""
    native = lib.seccomp_arch_native()
    names = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if lib.seccomp_arch_resolve_name(_arch_name(entry["architecture"])) == native:
            names += [entry["architecture"], *(entry.get("subArchitectures") or [])]
    for name in names:
        token = lib.seccomp_arch_resolve_name(_arch_name(name))
        if token == 0:
            raise SeccompError(f"seccomp profile {where}: unknown architecture {name!r}")
        ret = lib.seccomp_arch_add(ctx, token)
        if ret not in (0, -17):  # -EEXIST: the native one, already present
            raise SeccompError(f"seccomp profile {where}: architecture {name}: "
                               f"{os.strerror(-ret)}")


def _arch_name(name: str) -> bytes:
    return name.removeprefix("SCMP_ARCH_").lower().encode()


def _add_rules(lib: Any, ctx: int, profile: Mapping[str, Any], caps: set[str], arch: str,
               kernel: str, default: int, default_permissive: bool,
               where: str) -> tuple[int, list[str]]:
    count, skipped = 0, []
    for rule in profile.get("syscalls") or []:
        if not applies(rule, caps, arch, kernel):
            continue
        action = _action(rule["action"], rule.get("errnoRet"))
        if action == default:
            continue  # the same as the default: libseccomp refuses it, and it changes nothing
        args = list(rule.get("args") or [])
        indexes = [int(a["index"]) for a in args]
        # libseccomp ANDs the conditions of one rule, and can't AND two on the same argument:
        # Docker (runc) then adds one rule per condition, which ORs them.
        groups = [[a] for a in args] if len(set(indexes)) < len(indexes) else [args]
        for name in rule.get("names") or [rule["name"]]:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == -1:  # __NR_SCMP_ERROR: no architecture has a call of that name
                if rule["action"] in PERMISSIVE or not default_permissive:
                    skipped.append(name)
                    continue
                raise SeccompError(
                    f"seccomp profile {where}: unknown syscall {name!r} in a rule that denies "
                    "it: skipping it would allow it, so the profile is refused")
            for group in groups:
                ret = lib.seccomp_rule_add_array(ctx, action, number, len(group),
                                                 _arg_array(group))
                if ret < 0:
                    raise SeccompError(f"seccomp profile {where}: rule for {name}: "
                                       f"{os.strerror(-ret)}")
                count += 1
    return count, skipped


def compile_profile(profile: Mapping[str, Any], caps: set[str], where: str = "default",
                    machine: str | None = None, kernel: str | None = None) -> Compiled:
    """The BPF program for ``profile`` in a container granted ``caps`` (names)."""
    uname = os.uname()

    def export(lib: Any, ctx: int, rules: int, skipped: list[str]) -> Compiled:
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            ret = lib.seccomp_export_bpf(ctx, fd)
            if ret < 0:
                raise SeccompError(f"seccomp_export_bpf: {os.strerror(-ret)}")
            size = os.lseek(fd, 0, os.SEEK_CUR)
            return Compiled(os.pread(fd, size, 0), rules, skipped)
        finally:
            os.close(fd)

    return _with_context(profile, caps, machine or uname.machine, kernel or uname.release,
                         where, export)


def pfc(profile: Mapping[str, Any], caps: set[str]) -> str:
    """The same filter as libseccomp's pseudo filter code: readable, for the notebook."""
    uname = os.uname()

    def export(lib: Any, ctx: int, rules: int, skipped: list[str]) -> str:
        fd = os.memfd_create("seccomp-pfc", os.MFD_CLOEXEC)
        try:
            lib.seccomp_export_pfc(ctx, fd)
            return os.pread(fd, os.lseek(fd, 0, os.SEEK_CUR), 0).decode()
        finally:
            os.close(fd)

    text: str = _with_context(profile, caps, uname.machine, uname.release, "default", export)
    return text


def disassemble(program: bytes, limit: int = 12) -> list[str]:
    """The first ``limit`` BPF instructions: ``code jt jf k`` (struct sock_filter)."""
    lines = []
    for i in range(0, min(len(program), limit * 8), 8):
        code = int.from_bytes(program[i:i + 2], "little")
        jt, jf = program[i + 2], program[i + 3]
        k = int.from_bytes(program[i + 4:i + 8], "little")
        lines.append(f"{i // 8:4}: code={code:#06x} jt={jt:<3} jf={jf:<3} k={k:#010x}")
    return lines


# -- the program a container gets, cached -----------------------------------------------------

def default_stamp() -> str:
    """Changes whenever the default profile or this compiler changes (sizes and mtimes of
    both files; the profile module is not imported for it, that is the point of the cache)."""
    here = os.path.dirname(os.path.abspath(__file__))
    stamps = []
    for name in ("seccomp_default.py", "seccomp.py"):
        st = os.stat(os.path.join(here, name))
        stamps.append(f"{st.st_size:x}.{st.st_mtime_ns:x}")
    return "-".join(stamps)


def program_for(option: str, caps: set[str], cache_dir: str | None = None,
                warn: Any = None) -> bytes | None:
    """The filter for ``--security-opt seccomp=<option>``: None for ``unconfined``.

    ``""`` means the default profile, compiled once per set of capabilities and kept in
    ``cache_dir`` (the state root's ``cache/seccomp``); another profile is compiled each time.
    ``warn`` is told about syscall names libseccomp does not know (they stay denied).
    """
    if option == "unconfined":
        return None
    if option:
        compiled = compile_profile(read_profile(option), caps, where=option)
        if compiled.skipped and warn is not None:
            warn(f"seccomp profile {option}: unknown syscalls stay denied: "
                 + ", ".join(compiled.skipped))
        return compiled.program
    uname = os.uname()
    key = (f"default-{_caps_key(caps)}-{uname.machine}-{uname.release}-"
           f"{default_stamp()}{CACHE_SUFFIX}")
    if cache_dir is not None:
        try:
            with open(os.path.join(cache_dir, key), "rb") as f:
                program = f.read()
            if program and len(program) % 8 == 0:
                return program
        except FileNotFoundError:
            pass
    from minidocker.seccomp_default import DEFAULT_PROFILE

    program = compile_profile(DEFAULT_PROFILE, caps).program
    if cache_dir is not None:
        _store(cache_dir, key, program)
    return program


def _caps_key(caps: set[str]) -> str:
    from minidocker.capabilities import to_mask

    return format(to_mask(sorted(caps)), "x")


def _store(cache_dir: str, key: str, program: bytes) -> None:
    """Write atomically; a cache that can't be written only means compiling next time."""
    tmp = os.path.join(cache_dir, f".{key}.{os.getpid()}")
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(program)
        os.replace(tmp, os.path.join(cache_dir, key))
    except OSError:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(program: bytes) -> None:
    """Install the filter on this process (and all it will ever start)."""
    syscalls.seccomp_set_mode_filter(program)
