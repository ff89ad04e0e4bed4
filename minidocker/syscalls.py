"""The syscall layer: every call minidocker makes into the kernel goes through this module.

One seam, for three reasons:

1. **Teaching.** Each function records a trace event (see :mod:`minidocker.trace`) with its
   arguments spelled as the man page spells them (``mount(2)`` flags print as
   ``MS_BIND|MS_REC``), its result and its duration.
2. **Errors.** A failure raises ``OSError(errno, strerror, path)`` with a note naming the call,
   so ``pivot_root: Invalid argument`` never reaches a user without saying what was asked.
3. **Testing.** Tests can swap a function here for a recorder.

Python 3.11 has no ``os.unshare``/``os.setns`` (they arrived in 3.12), and glibc has no
``pivot_root`` wrapper, so these go through ``ctypes`` and ``syscall(2)``. Where ``os`` already
has a call (``os.mknod``, ``os.chroot``...) we use it, still traced.

Man pages: unshare(2), setns(2), mount(2), umount(2), pivot_root(2), sethostname(2), prctl(2),
mknod(2), execve(2).
"""

from __future__ import annotations

import ctypes
import enum
import os
import time

from minidocker import trace

TYPE_CHECKING = False  # typing costs ~6 ms at start-up; mypy still reads the hints
if TYPE_CHECKING:
    from typing import Any


class CLONE(enum.IntFlag):
    """Namespace flags for unshare(2), setns(2) and clone(2)."""

    NEWTIME = 0x00000080
    NEWNS = 0x00020000
    NEWCGROUP = 0x02000000
    NEWUTS = 0x04000000
    NEWIPC = 0x08000000
    NEWUSER = 0x10000000
    NEWPID = 0x20000000
    NEWNET = 0x40000000


class MS(enum.IntFlag):
    """mount(2) flags."""

    RDONLY = 1
    NOSUID = 2
    NODEV = 4
    NOEXEC = 8
    SYNCHRONOUS = 16
    REMOUNT = 32
    MANDLOCK = 64
    DIRSYNC = 128
    NOSYMFOLLOW = 256
    NOATIME = 1024
    NODIRATIME = 2048
    BIND = 4096
    MOVE = 8192
    REC = 16384
    SILENT = 32768
    UNBINDABLE = 1 << 17
    PRIVATE = 1 << 18
    SLAVE = 1 << 19
    SHARED = 1 << 20
    RELATIME = 1 << 21
    STRICTATIME = 1 << 24


class MNT(enum.IntFlag):
    """umount2(2) flags."""

    FORCE = 1
    DETACH = 2
    EXPIRE = 4


class PR(enum.IntEnum):
    """prctl(2) options we use."""

    SET_PDEATHSIG = 1
    SET_DUMPABLE = 4
    SET_KEEPCAPS = 8
    SET_NAME = 15
    CAPBSET_READ = 23
    CAPBSET_DROP = 24
    SET_CHILD_SUBREAPER = 36
    SET_NO_NEW_PRIVS = 38
    GET_NO_NEW_PRIVS = 39
    CAP_AMBIENT = 47


# syscall(2) numbers for calls glibc does not wrap.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


def flag_names(flags: enum.IntFlag, prefix: str) -> str:
    """``MS.BIND|MS.REC`` -> ``"MS_BIND|MS_REC"``, the spelling of the man pages."""
    names = [f"{prefix}_{m.name}" for m in type(flags) if m.value and m in flags]
    rest = int(flags) & ~sum(m.value for m in type(flags) if m in flags)
    if rest:
        names.append(hex(rest))
    return "|".join(names) if names else "0"


def _q(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return '"' + value + '"'
    return str(value)


def _raise(call: str, args: list[str], path: str | None) -> None:
    err = ctypes.get_errno()
    exc = OSError(err, os.strerror(err), path)
    exc.add_note(f"syscall: {call}({', '.join(args)})")
    raise exc


def _record(call: str, args: list[str], ret: int, t0: int, path: str | None = None) -> None:
    """Trace a finished call; raise ``OSError`` if it returned -1."""
    failed = ret == -1
    if trace.enabled():
        import errno as _errno

        result = f"-1 {_errno.errorcode.get(ctypes.get_errno(), '?')}" if failed else str(ret)
        trace.emit("syscall", call, args, result, time.monotonic_ns() - t0)
    if failed:
        _raise(call, args, path)


def _b(value: str | bytes | os.PathLike[str] | None) -> bytes | None:
    if value is None:
        return None
    return os.fsencode(value)


# -- namespaces -------------------------------------------------------------------------------

def unshare(flags: CLONE) -> None:
    """Move the calling process into new namespaces (``CLONE_NEWPID`` affects children only)."""
    t0 = time.monotonic_ns()
    ret = _libc.unshare(int(flags))
    _record("unshare", [flag_names(CLONE(flags), "CLONE")], ret, t0)


def setns(fd: int, nstype: CLONE | int = 0, label: str = "") -> None:
    """Join the namespace open at ``fd``; ``label`` names it in the trace (its /proc path)."""
    t0 = time.monotonic_ns()
    ret = _libc.setns(fd, int(nstype))
    kind = flag_names(CLONE(nstype), "CLONE") if nstype else "0"
    _record("setns", [label or str(fd), kind], ret, t0, label or None)


# -- mounts -----------------------------------------------------------------------------------

def mount(source: str | None, target: str | os.PathLike[str], fstype: str | None,
          flags: MS | int = 0, data: str | None = None) -> None:
    t0 = time.monotonic_ns()
    ret = _libc.mount(_b(source), _b(target), _b(fstype), int(flags), _b(data))
    args = [_q(source), _q(os.fspath(target)), _q(fstype), flag_names(MS(flags), "MS"), _q(data)]
    _record("mount", args, ret, t0, os.fspath(target))


def umount2(target: str | os.PathLike[str], flags: MNT | int = 0) -> None:
    t0 = time.monotonic_ns()
    ret = _libc.umount2(_b(target), int(flags))
    _record("umount2", [_q(os.fspath(target)), flag_names(MNT(flags), "MNT")], ret, t0,
            os.fspath(target))


def pivot_root(new_root: str, put_old: str) -> None:
    """Make ``new_root`` the root of this mount namespace; the old root goes to ``put_old``."""
    number = _SYS_PIVOT_ROOT[os.uname().machine]
    t0 = time.monotonic_ns()
    ret = _libc.syscall(number, _b(new_root), _b(put_old))
    _record("pivot_root", [_q(new_root), _q(put_old)], ret, t0, new_root)


# -- the rest ---------------------------------------------------------------------------------

def socket(domain: int, kind: int) -> int:
    """socket(2) with SOCK_CLOEXEC; a bare fd (the socket module costs start-up time)."""
    t0 = time.monotonic_ns()
    ret = _libc.socket(domain, kind | os.O_CLOEXEC, 0)  # SOCK_CLOEXEC == O_CLOEXEC on Linux
    names = ({2: "AF_INET", 10: "AF_INET6", 1: "AF_UNIX", 16: "AF_NETLINK"},
             {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW"})
    args = [names[0].get(domain, str(domain)), names[1].get(kind, str(kind)) + "|SOCK_CLOEXEC",
            "0"]
    _record("socket", args, ret, t0)
    return int(ret)


def sethostname(name: str) -> None:
    t0 = time.monotonic_ns()
    raw = name.encode()
    ret = _libc.sethostname(raw, len(raw))
    _record("sethostname", [_q(name), str(len(raw))], ret, t0)


def prctl(option: PR, arg2: int = 0, arg3: int = 0) -> int:
    t0 = time.monotonic_ns()
    ret = _libc.prctl(int(option), arg2, arg3, 0, 0)
    shown = repr(arg2) if option != PR.SET_PDEATHSIG else getattr(arg2, "name", str(arg2))
    _record("prctl", [f"PR_{option.name}", shown] + ([str(arg3)] if arg3 else []), ret, t0)
    return int(ret)


def _timed_os(call: str, args: list[str], fn: Any, *fn_args: Any) -> Any:
    """Run an ``os`` function with the same tracing and error note as the ctypes calls."""
    t0 = time.monotonic_ns()
    try:
        result = fn(*fn_args)
    except OSError as exc:
        if trace.enabled():
            import errno as _errno

            trace.emit("syscall", call, args, f"-1 {_errno.errorcode.get(exc.errno or 0, '?')}",
                       time.monotonic_ns() - t0)
        exc.add_note(f"syscall: {call}({', '.join(args)})")
        raise
    if trace.enabled():
        trace.emit("syscall", call, args, "0" if result is None else str(result),
                   time.monotonic_ns() - t0)
    return result


def mknod(path: str, mode: int, major: int, minor: int) -> None:
    kind = "S_IFCHR" if mode & 0o170000 == 0o020000 else "S_IFBLK"
    args = [_q(path), f"{kind}|{oct(mode & 0o7777)}", f"makedev({major}, {minor})"]
    _timed_os("mknod", args, os.mknod, path, mode, os.makedev(major, minor))


def chdir(path: str) -> None:
    _timed_os("chdir", [_q(path)], os.chdir, path)


def fchdir(fd: int) -> None:
    _timed_os("fchdir", [str(fd)], os.fchdir, fd)


def setgroups(groups: list[int]) -> None:
    _timed_os("setgroups", [str(len(groups)), str(groups)], os.setgroups, groups)


def setresgid(gid: int) -> None:
    _timed_os("setresgid", [str(gid)] * 3, os.setresgid, gid, gid, gid)


def setresuid(uid: int) -> None:
    _timed_os("setresuid", [str(uid)] * 3, os.setresuid, uid, uid, uid)


def open_fd(path: str, flags: int) -> int:
    return int(_timed_os("open", [_q(path), _open_flag_names(flags)], os.open, path, flags))


def _open_flag_names(flags: int) -> str:
    names = [n for n in ("O_RDONLY", "O_WRONLY", "O_RDWR") if getattr(os, n) == flags & 3][:1]
    names += [n for n in ("O_CLOEXEC", "O_DIRECTORY", "O_NOFOLLOW", "O_PATH", "O_NOCTTY")
              if getattr(os, n, 0) & flags]
    return "|".join(names)


def write_file(path: str, data: str) -> None:
    """Write a kernel file under /proc or /sys, traced as a ``write`` event."""
    t0 = time.monotonic_ns()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        exc.add_note(f"write: {data!r} > {path}")
        if trace.enabled():
            trace.emit("write", "write", [_q(path), _q(data)], f"-1 {exc.strerror}",
                       time.monotonic_ns() - t0)
        raise
    if trace.enabled():
        trace.emit("write", "write", [_q(path), _q(data)], str(len(data)),
                   time.monotonic_ns() - t0)


def mkdir(path: str, mode: int = 0o755) -> None:
    """mkdir(2); in cgroupfs it creates a cgroup (the kernel fills in its files)."""
    _timed_os("mkdir", [_q(path), oct(mode)], os.mkdir, path, mode)


def rmdir(path: str) -> None:
    """rmdir(2); in cgroupfs it removes a cgroup, which must hold no process (else EBUSY)."""
    _timed_os("rmdir", [_q(path)], os.rmdir, path)


def kill(pid: int, sig: int) -> None:
    """kill(2), traced with the signal's name."""
    import signal as _signal

    _timed_os("kill", [str(pid), _signal.Signals(sig).name], os.kill, pid, sig)


def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
    """Replace this process with ``path``. Traced before the call: it only returns on error."""
    if trace.enabled():
        trace.emit("syscall", "execve", [_q(path), str(argv), f"[{len(env)} vars]"], "...")
    os.execve(path, argv, env)


# -- security: capabilities, seccomp, rlimits, user namespaces, idmapped mounts, eBPF ---------
# (issue 5; man pages capabilities(7), capget(2), seccomp(2), prlimit(2), clone(2),
# user_namespaces(7), mount_setattr(2), open_tree(2), fsopen(2), move_mount(2), bpf(2))

# syscall(2) numbers: the generic table (aarch64, riscv64) differs from x86_64's below 403.
_SYS = {
    "x86_64": {"clone": 56, "seccomp": 317, "bpf": 321},
    "aarch64": {"clone": 220, "seccomp": 277, "bpf": 280},
    "riscv64": {"clone": 220, "seccomp": 277, "bpf": 280},
}
# Calls added since Linux 5.1 have one number on every architecture.
_SYS_UNIFIED = {"open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
                "fsmount": 432, "clone3": 435, "mount_setattr": 442}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _sysno(name: str) -> int:
    return _SYS_UNIFIED.get(name) or _SYS[os.uname().machine][name]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) capability sets, as 64-bit masks."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    t0 = time.monotonic_ns()
    ret = _libc.capget(ctypes.byref(header), data)
    _record("capget", ["{_LINUX_CAPABILITY_VERSION_3, 0}", "..."], ret, t0)
    eff, prm, inh = (getattr(data[0], f) | getattr(data[1], f) << 32
                     for f in ("effective", "permitted", "inheritable"))
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's effective, permitted and inheritable sets (64-bit masks)."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = effective >> shift & 0xFFFFFFFF
        data[i].permitted = permitted >> shift & 0xFFFFFFFF
        data[i].inheritable = inheritable >> shift & 0xFFFFFFFF
    t0 = time.monotonic_ns()
    ret = _libc.capset(ctypes.byref(header), data)
    _record("capset", ["{_LINUX_CAPABILITY_VERSION_3, 0}",
                       f"{{effective={effective:#x}, permitted={permitted:#x}, "
                       f"inheritable={inheritable:#x}}}"], ret, t0)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_mode_filter(program: bytes, flags: int = 0) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER): install a classic BPF program (8 bytes an instruction).

    The kernel accepts it only with no_new_privs set or CAP_SYS_ADMIN in the caller's user
    namespace (see seccomp(2), EACCES).
    """
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    t0 = time.monotonic_ns()
    ret = _libc.syscall(_sysno("seccomp"), 1, flags, ctypes.byref(prog))  # SET_MODE_FILTER = 1
    _record("seccomp", ["SECCOMP_SET_MODE_FILTER", str(flags),
                        f"{{len={len(program) // 8}, filter=...}}"], ret, t0)


class _Rlimit(ctypes.Structure):
    _fields_ = [("rlim_cur", ctypes.c_uint64), ("rlim_max", ctypes.c_uint64)]


def prlimit(resource: int, soft: int, hard: int, name: str = "") -> None:
    """prlimit(0, resource, {soft, hard}, NULL): set one of this process's rlimits."""
    new = _Rlimit(soft, hard)
    t0 = time.monotonic_ns()
    ret = _libc.prlimit(0, resource, ctypes.byref(new), None)
    _record("prlimit", ["0", name or str(resource), f"{{{soft}, {hard}}}", "NULL"], ret, t0)


_pylib = ctypes.PyDLL(None, use_errno=True)  # keeps the GIL held across the call, as os.fork


class _CloneArgs(ctypes.Structure):
    """struct clone_args (linux/sched.h), up to ``cgroup`` (CLONE_ARGS_SIZE_VER2, 88 bytes)."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]


CLONE_INTO_CGROUP = 0x200000000  # clone3 only: the flag does not fit clone(2)'s int


def clone(flags: CLONE | int, cgroup_fd: int | None = None) -> int:
    """fork(2) with namespace flags: clone(flags|SIGCHLD); returns 0 in the child.

    Python's ``os.fork`` takes no flags, and ``unshare(CLONE_NEWUSER)`` followed by fork would
    leave the child's PID namespace owned by the *host's* user namespace, where the container's
    root could not mount its own /proc. So a user-namespaced container is cloned with
    ``CLONE_NEWUSER|CLONE_NEWPID`` at once (the kernel creates the user namespace first and
    makes it the owner of the other). The interpreter is told about the fork the way
    ``os.fork`` tells it (``PyOS_BeforeFork`` / ``PyOS_AfterFork_*``).

    With ``cgroup_fd`` (an O_DIRECTORY fd of a cgroup v2 group) it is clone3(2) with
    ``CLONE_INTO_CGROUP``: the child is born in that group, so nobody has to move it there
    (a write to ``cgroup.procs``, which waits for an RCU grace period). Linux 5.7 and later;
    older kernels answer ENOSYS (no clone3) or E2BIG (a shorter struct clone_args).
    """
    api = ctypes.pythonapi
    t0 = time.monotonic_ns()
    api.PyOS_BeforeFork()
    if cgroup_fd is None:
        pid = _pylib.syscall(_sysno("clone"), ctypes.c_ulong(int(flags) | 17), None, None, None,
                             None)  # 17: SIGCHLD, the signal the parent gets when the child ends
    else:
        args = _CloneArgs(flags=int(flags) | CLONE_INTO_CGROUP, exit_signal=17, cgroup=cgroup_fd)
        size = ctypes.c_size_t(ctypes.sizeof(args))
        pid = _pylib.syscall(_sysno("clone3"), ctypes.byref(args), size)
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    ctypes.set_errno(err)
    if cgroup_fd is None:
        _record("clone", [flag_names(CLONE(flags), "CLONE") + "|SIGCHLD"], pid, t0)
    else:
        names = flag_names(CLONE(flags), "CLONE") + "|" if flags else ""
        _record("clone3", [f"{{flags={names}CLONE_INTO_CGROUP, exit_signal=SIGCHLD, "
                           f"cgroup={cgroup_fd}}}", str(ctypes.sizeof(_CloneArgs))], pid, t0)
    return int(pid)


def setfsuid(uid: int) -> int:
    """setfsuid(2): the uid used for file-system checks only; returns the previous one."""
    t0 = time.monotonic_ns()
    old = _libc.setfsuid(uid)
    _record("setfsuid", [str(uid)], 0, t0)
    return int(old)


def setfsgid(gid: int) -> int:
    t0 = time.monotonic_ns()
    old = _libc.setfsgid(gid)
    _record("setfsgid", [str(gid)], 0, t0)
    return int(old)


OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_IDMAP = 0x00100000
MOVE_MOUNT_F_EMPTY_PATH = 0x4


def open_tree(path: str, flags: int = OPEN_TREE_CLONE | os.O_CLOEXEC) -> int:
    """open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at ``path``, as an fd."""
    t0 = time.monotonic_ns()
    ret = _libc.syscall(_sysno("open_tree"), -100, _b(path), flags)  # -100: AT_FDCWD
    _record("open_tree", ["AT_FDCWD", _q(path), "OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC"], ret, t0,
            path)
    return int(ret)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr_idmap(fd: int, userns_fd: int, label: str = "",
                        readonly: bool = False) -> None:
    """mount_setattr(2) MOUNT_ATTR_IDMAP: files under the detached mount ``fd`` appear with
    their owners mapped through the user namespace ``userns_fd`` (an idmapped mount);
    ``readonly`` sets MOUNT_ATTR_RDONLY in the same call."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP | (MOUNT_ATTR_RDONLY if readonly else 0), 0, 0,
                      userns_fd)
    t0 = time.monotonic_ns()
    ret = _libc.syscall(_sysno("mount_setattr"), fd, b"", AT_EMPTY_PATH, ctypes.byref(attr),
                        ctypes.sizeof(attr))
    flags = "MOUNT_ATTR_IDMAP" + ("|MOUNT_ATTR_RDONLY" if readonly else "")
    _record("mount_setattr", [label or str(fd), '""', "AT_EMPTY_PATH",
                              f"{{attr_set={flags}, userns_fd={userns_fd}}}"], ret, t0)


MOUNT_ATTR_RDONLY = 0x00000001


def mount_setattr(path: str, attr_set: int, attr_clr: int = 0, recursive: bool = False) -> None:
    """mount_setattr(2) on the mount at ``path`` (Linux 5.12): set and clear MOUNT_ATTR_*
    flags, with ``AT_RECURSIVE`` on every mount under it too (mount(2) cannot: MS_REMOUNT
    changes one mount)."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    t0 = time.monotonic_ns()
    ret = _libc.syscall(_sysno("mount_setattr"), -100, _b(path), flags, ctypes.byref(attr),
                        ctypes.sizeof(attr))  # -100: AT_FDCWD
    names = {MOUNT_ATTR_RDONLY: "MOUNT_ATTR_RDONLY"}
    _record("mount_setattr", ["AT_FDCWD", _q(path), "AT_RECURSIVE" if recursive else "0",
                              f"{{attr_set={names.get(attr_set, hex(attr_set))}, "
                              f"attr_clr={names.get(attr_clr, hex(attr_clr))}}}"], ret, t0, path)


def fsopen(fstype: str) -> int:
    t0 = time.monotonic_ns()
    ret = _libc.syscall(_sysno("fsopen"), _b(fstype), 1)  # FSOPEN_CLOEXEC
    _record("fsopen", [_q(fstype), "FSOPEN_CLOEXEC"], ret, t0)
    return int(ret)


def fsconfig(fd: int, key: str | None, value: str | None = None) -> None:
    """fsconfig(2): FSCONFIG_SET_STRING ``key=value``, or FSCONFIG_CMD_CREATE for ``None``."""
    t0 = time.monotonic_ns()
    if key is None:
        ret = _libc.syscall(_sysno("fsconfig"), fd, 6, None, None, 0)  # FSCONFIG_CMD_CREATE
        _record("fsconfig", [str(fd), "FSCONFIG_CMD_CREATE", "NULL", "NULL", "0"], ret, t0)
        return
    ret = _libc.syscall(_sysno("fsconfig"), fd, 1, _b(key), _b(value), 0)  # SET_STRING
    _record("fsconfig", [str(fd), "FSCONFIG_SET_STRING", _q(key), _q(value), "0"], ret, t0)


def fsmount(fd: int) -> int:
    t0 = time.monotonic_ns()
    ret = _libc.syscall(_sysno("fsmount"), fd, 1, 0)  # FSMOUNT_CLOEXEC
    _record("fsmount", [str(fd), "FSMOUNT_CLOEXEC", "0"], ret, t0)
    return int(ret)


def move_mount(fd: int, target: str) -> None:
    """move_mount(2): attach the detached mount ``fd`` at ``target``."""
    t0 = time.monotonic_ns()
    ret = _libc.syscall(_sysno("move_mount"), fd, b"", -100, _b(target),
                        MOVE_MOUNT_F_EMPTY_PATH)
    _record("move_mount", [str(fd), '""', "AT_FDCWD", _q(target), "MOVE_MOUNT_F_EMPTY_PATH"],
            ret, t0, target)


def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], label: str) -> int:
    """bpf(2) with a prepared ``union bpf_attr``; ``label`` names the command in the trace."""
    t0 = time.monotonic_ns()
    ret = _libc.syscall(_sysno("bpf"), cmd, attr, len(attr))
    _record("bpf", [label, "{...}", str(len(attr))], ret, t0)
    return int(ret)
