"""Namespaces: what a container process is allowed to *see*.

A namespace wraps one global resource so that the processes inside get their own copy. A
container is nothing more than a process started in a fresh set of them:

======= ================ ==================================================================
name    flag             what the process gets its own copy of
======= ================ ==================================================================
pid     CLONE_NEWPID     process IDs: the container's first process is PID 1
mnt     CLONE_NEWNS      the mount table: mounts made inside never appear on the host
uts     CLONE_NEWUTS     the hostname (and NIS domain name)
ipc     CLONE_NEWIPC     System V IPC and POSIX message queues
net     CLONE_NEWNET     network devices, addresses, routes, firewall, ports
cgroup  CLONE_NEWCGROUP  the view of the cgroup tree: its own cgroup looks like the root
user    CLONE_NEWUSER    user and group IDs (root inside can be nobody outside)
======= ================ ==================================================================

Each namespace a process is in shows as a magic link ``/proc/<pid>/ns/<name>``, whose target
(``mnt:[4026531841]``) is the namespace's identity: two processes are in the same namespace
exactly when the inode numbers match. That is how the notebooks and tests check isolation.

Two ordering rules shape the start sequence (see :mod:`minidocker.container`):

- ``unshare(CLONE_NEWPID)`` does not move the caller: only its *next child* is born in the new
  PID namespace, as PID 1. So the parent unshares the PID namespace, then forks.
- Every other namespace is unshared by that child, so the parent (the ``minidocker`` CLI) stays
  on the host, where it can wait for the container and clean up after it.

Notebook: ``01_namespaces``. Man pages: namespaces(7), unshare(2), setns(2), pid_namespaces(7),
mount_namespaces(7).
"""

from __future__ import annotations

import os

from minidocker import syscalls
from minidocker.syscalls import CLONE

# name in /proc/<pid>/ns, the clone flag, and what it isolates (printed by the notebooks).
NAMESPACES: tuple[tuple[str, CLONE, str], ...] = (
    ("pid", CLONE.NEWPID, "process IDs"),
    ("mnt", CLONE.NEWNS, "mount points"),
    ("uts", CLONE.NEWUTS, "hostname and domain name"),
    ("ipc", CLONE.NEWIPC, "System V IPC, POSIX message queues"),
    ("net", CLONE.NEWNET, "network devices, stacks, ports"),
    ("cgroup", CLONE.NEWCGROUP, "cgroup root directory"),
    ("user", CLONE.NEWUSER, "user and group IDs"),
)

FLAGS = {name: flag for name, flag, _ in NAMESPACES}

# What ``minidocker run`` gives every container (Docker's default: no user namespace).
DEFAULT_KINDS = ("pid", "mnt", "uts", "ipc", "net", "cgroup")


def flags_for(kinds: tuple[str, ...] | list[str]) -> CLONE:
    """``("mnt", "uts")`` -> ``CLONE_NEWNS|CLONE_NEWUTS``."""
    flags = CLONE(0)
    for kind in kinds:
        flags |= FLAGS[kind]
    return flags


def ns_id(kind: str, pid: int | str = "self") -> str:
    """The identity of a namespace, as the kernel shows it: ``"mnt:[4026531841]"``."""
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def ns_ids(pid: int | str = "self") -> dict[str, str]:
    """Every namespace ``pid`` is in, by kind."""
    ids = {}
    for kind, _, _ in NAMESPACES:
        try:
            ids[kind] = ns_id(kind, pid)
        except FileNotFoundError:  # a kernel without that namespace kind
            continue
    return ids


def unshare(kinds: tuple[str, ...] | list[str]) -> None:
    """Move the calling process into new namespaces of these kinds (``pid``: its children)."""
    syscalls.unshare(flags_for(kinds))


def join(pid: int, kinds: tuple[str, ...] | list[str]) -> None:
    """Enter the namespaces of process ``pid`` (``minidocker exec`` and ``--network container:``).

    The user namespace, if any, must be joined first: it decides what the others allow. The
    mount namespace goes last among the rest so the /proc paths stay valid while we open them.
    """
    order = sorted(kinds, key=lambda k: (k != "user", k == "mnt"))
    fds = [(kind, os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)) for kind in order]
    try:
        for kind, fd in fds:
            syscalls.setns(fd, FLAGS[kind], f"/proc/{pid}/ns/{kind}")
    finally:
        for _, fd in fds:
            os.close(fd)


def new_or_join(kind: str, path: str = "") -> None:
    """A new namespace of ``kind`` (unshare), or with ``path`` the one it names (setns)."""
    if path:
        join_path(kind, path)
    else:
        unshare([kind])


def join_path(kind: str, path: str) -> None:
    """Enter the namespace of ``kind`` that ``path`` names (a bind-mounted /proc/<pid>/ns/ file,
    as an OCI bundle's ``linux.namespaces[].path``); setns checks it is of that kind."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscalls.setns(fd, FLAGS[kind], path)
    finally:
        os.close(fd)
