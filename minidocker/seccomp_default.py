"""minidocker's default seccomp profile: Docker's default, as data in Docker's own JSON format.

``json.dumps(DEFAULT_PROFILE)`` is a profile ``--security-opt seccomp=FILE`` accepts, and so is
Docker's ``profiles/seccomp/default.json``: edit a copy to experiment. The semantics are
Docker's (moby's default profile, 2024):

- everything not listed fails with ``EPERM`` (``defaultAction: SCMP_ACT_ERRNO``,
  ``defaultErrnoRet: 1``): keyctl, add_key, request_key, kexec_load, reboot, init_module,
  bpf, userfaultfd, perf_event_open, mount, unshare, setns... are simply absent;
- the allow list below, grouped here by what the calls are for (Docker keeps one long list);
- calls that are safe only with a capability are allowed only when the container has it
  (``includes.caps``): mount and unshare with ``CAP_SYS_ADMIN``, ptrace with
  ``CAP_SYS_PTRACE``... so ``--cap-add`` widens the filter along with the capability set;
- ``clone`` is allowed only without namespace flags (an argument test on the flags), and
  ``clone3``, whose flags live in memory a filter cannot read, fails with ``ENOSYS`` so that
  the C library falls back to ``clone``;
- ``socket`` is allowed for every address family but ``AF_VSOCK`` (40), which reaches the
  hypervisor; ``personality`` only with the few values programs use.

Notebook: ``03_capabilities``. Man pages: seccomp(2), syscalls(2).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What every container may call, by purpose. Names not on this architecture (chown32 on x86_64)
# are ignored by libseccomp, as they are by Docker.
ALLOWED: dict[str, tuple[str, ...]] = {
    "files and directories": (
        "access", "chdir", "chmod", "chown", "chown32", "close", "close_range",
        "copy_file_range", "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2",
        "fadvise64", "fadvise64_64", "fallocate", "fchdir", "fchmod", "fchmodat", "fchown",
        "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "flock", "fstat", "fstat64",
        "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futimesat",
        "getcwd", "getdents", "getdents64", "lchown", "lchown32", "link", "linkat", "_llseek",
        "lseek", "lstat", "lstat64", "mkdir", "mkdirat", "mknod", "mknodat", "name_to_handle_at",
        "newfstatat", "open", "openat", "openat2", "pread64", "preadv", "preadv2", "pwrite64",
        "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "rename",
        "renameat", "renameat2", "rmdir", "sendfile", "sendfile64", "splice", "stat", "stat64",
        "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
        "syncfs", "tee", "truncate", "truncate64", "umask", "unlink", "unlinkat", "utime",
        "utimensat", "utimensat_time64", "utimes", "vmsplice", "write", "writev",
    ),
    "extended attributes": (
        "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "lgetxattr",
        "listxattr", "llistxattr", "lremovexattr", "lsetxattr", "removexattr", "setxattr",
    ),
    "waiting for events": (
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
        "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "fanotify_mark",
        "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "_newselect",
        "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64", "select", "signalfd",
        "signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
        "timerfd_settime", "timerfd_settime64",
    ),
    "asynchronous I/O and ioctl": (
        "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
        "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup",
        "ioctl", "ioprio_get", "ioprio_set",
    ),
    "memory": (
        "brk", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock",
        "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "msync", "munlock",
        "munlockall", "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages",
    ),
    "processes and threads": (
        "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "futex",
        "futex_time64", "futex_waitv", "get_robust_list", "get_thread_area", "getcpu",
        "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrusage", "getsid",
        "gettid", "kill", "landlock_add_rule", "landlock_create_ruleset",
        "landlock_restrict_self", "pidfd_open", "pidfd_send_signal", "prctl",
        "process_mrelease", "restart_syscall", "rseq", "seccomp", "set_robust_list",
        "set_thread_area", "set_tid_address", "setpgid", "setpriority", "setsid", "tgkill",
        "tkill", "vfork", "wait4", "waitid", "waitpid",
    ),
    "user and group ids": (
        "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups",
        "getgroups32", "getresgid", "getresgid32", "getresuid", "getresuid32", "getuid",
        "getuid32", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
        "setgroups", "setgroups32", "setregid", "setregid32", "setresgid", "setresgid32",
        "setresuid", "setresuid32", "setreuid", "setreuid32", "setuid", "setuid32",
    ),
    "signals": (
        "alarm", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
        "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo", "sigaltstack", "sigprocmask", "sigreturn",
    ),
    "time (reading it; setting needs CAP_SYS_TIME, below)": (
        "adjtimex", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
        "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
        "getitimer", "gettimeofday", "nanosleep", "setitimer", "time", "timer_create",
        "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
        "timer_settime", "timer_settime64", "times",
    ),
    "scheduling": (
        "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity",
        "sched_getattr", "sched_getparam", "sched_getscheduler", "sched_rr_get_interval",
        "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
        "sched_setparam", "sched_setscheduler", "sched_yield",
    ),
    "limits and system information": (
        "getrandom", "getrlimit", "prlimit64", "setrlimit", "sysinfo", "ugetrlimit", "uname",
    ),
    "sockets (socket itself: below)": (
        "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
        "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
        "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socketcall", "socketpair",
    ),
    "pipes and System V / POSIX IPC": (
        "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
        "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl",
        "msgget", "msgrcv", "msgsnd", "pipe", "pipe2", "semctl", "semget", "semop",
        "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget",
    ),
}

# Allowed only when the container holds the capability: the filter follows --cap-add.
WITH_CAPABILITY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CAP_SYS_ADMIN", (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
        "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
        "syslog", "umount", "umount2", "unshare")),
    ("CAP_SYS_BOOT", ("reboot",)),
    ("CAP_SYS_CHROOT", ("chroot",)),
    ("CAP_SYS_MODULE", ("delete_module", "init_module", "finit_module")),
    ("CAP_SYS_PACCT", ("acct",)),
    ("CAP_SYS_PTRACE", ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                        "process_vm_writev", "ptrace")),
    ("CAP_SYS_RAWIO", ("iopl", "ioperm")),
    ("CAP_SYS_TIME", ("settimeofday", "stime", "clock_settime", "clock_settime64")),
    ("CAP_SYS_TTY_CONFIG", ("vhangup",)),
    ("CAP_SYS_NICE", ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node")),
    ("CAP_SYSLOG", ("syslog",)),
    ("CAP_BPF", ("bpf",)),
    ("CAP_PERFMON", ("perf_event_open",)),
    ("CAP_DAC_READ_SEARCH", ("open_by_handle_at",)),
)

# Every CLONE_NEW* flag: clone(2) with any of them set is a namespace creation.
CLONE_NAMESPACE_FLAGS = 0x7E020000
AF_VSOCK = 40
# personality(2) values programs use: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
# and 0xffffffff (query).
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"names": sorted({n for group in ALLOWED.values() for n in group}),
         "action": "SCMP_ACT_ALLOW"},
        # Before 4.8 a traced process could skip the filter (the tracer rewrote the syscall after
        # seccomp had looked at it), so ptrace is allowed only on newer kernels.
        {"names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": "SCMP_ACT_ALLOW",
         "includes": {"minKernel": "4.8"}},
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}],
         "comment": "every address family but AF_VSOCK"},
    ]
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}]}
              for value in PERSONALITIES]
    rules += [
        {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["amd64", "x32"]}},
        {"names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["amd64", "x32", "x86"]}},
        {"names": ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
                   "cacheflush", "set_tls"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["arm", "arm64"]}},
        {"names": ["riscv_flush_icache"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["riscv64"]}},
    ]
    rules += [{"names": list(names), "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}}
              for cap, names in WITH_CAPABILITY]
    rules += [
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                   "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]},
         "comment": "fork and threads, but no new namespaces"},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 1, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                   "op": "SCMP_CMP_MASKED_EQ"}],
         "includes": {"arches": ["s390", "s390x"]}, "excludes": {"caps": ["CAP_SYS_ADMIN"]},
         "comment": "s390 passes clone's arguments in another order"},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]},
         "comment": "ENOSYS: the C library then falls back to clone, which is checked above"},
    ]
    return rules


DEFAULT_PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,  # EPERM
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64",
         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": None},
    ],
    "syscalls": _rules(),
}
