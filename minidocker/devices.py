"""Devices: which device nodes a container can open, and how the kernel is made to refuse others.

A device node is only a name for a (type, major, minor) triple: ``mknod /x b 254 0`` makes a
new name for the host's first virtio disk anywhere, and whoever can open it reads and writes
the host's disk beneath every filesystem permission. A default container *has* ``CAP_MKNOD``
(Docker keeps it, for package installs that make device nodes), and an image's layers may ship
device nodes too. So the protection cannot be "no mknod"; it must be "no open". Three ways to
say no, each used here:

1. **The mount table** (every container, at almost no cost). Every filesystem the container
   can write is mounted ``nodev``: the kernel refuses to open any device node on it
   (``EACCES``), however it got there. ``/`` is remounted ``MS_NODEV`` after pivot_root, and so
   is the ``/dev`` tmpfs, but only after each device the container is meant to have
   (``rootfs.DEFAULT_DEVICES`` and each ``--device``) has been bind-mounted onto itself: a bind
   is a mount of its own, made while /dev still allowed devices, so it keeps allowing them.
   Only ``CAP_SYS_ADMIN`` could remount anything, and a default container lacks it (and
   seccomp forbids mount). Under ``--userns private`` the nodes are the host's own,
   bind-mounted, as runc does for rootless containers: a user namespace may not create devices.
2. **The devices cgroup, v1** (``devices.deny`` / ``devices.allow``): a list of
   ``type major:minor access`` rules checked on every open and mknod. Docker's defaults are
   :data:`DEFAULT_RULES`. Every container has a cgroup, but the rules are one more group (the
   ``devices`` hierarchy) and a dozen writes per start, so they are used only where the mount
   table cannot say it: a ``--device`` narrowed to read or write only.
3. **An eBPF program, cgroup v2** (which has no devices files): a ``BPF_PROG_TYPE_CGROUP_DEVICE``
   program attached to the container's cgroup answers each (type, major, minor, access) with
   0 or 1. :func:`bpf_program` writes it instruction by instruction from the same rules, as
   runc's ``devicefilter`` does.

``--privileged`` gets every host device in ``/dev``, no nodev, and no device rules.

Notebook: ``03_capabilities``. Man pages: mknod(2), mount(2) (MS_NODEV), bpf(2); the kernel's
Documentation/admin-guide/cgroup-v1/devices.rst and cgroup-v2.rst ("Device controller").
"""

from __future__ import annotations

import os
import stat

from minidocker import syscalls, trace
from minidocker.errors import UsageError
from minidocker.syscalls import MS

# Docker's default device cgroup rules (runc's AllowedDevices): (type, major, minor, access).
# -1 is "*". The first two let a container mknod any node: it is the open that is checked.
DEFAULT_RULES: tuple[tuple[str, int, int, str, str], ...] = (
    ("c", -1, -1, "m", "mknod of any character device"),
    ("b", -1, -1, "m", "mknod of any block device"),
    ("c", 1, 3, "rwm", "/dev/null"),
    ("c", 1, 5, "rwm", "/dev/zero"),
    ("c", 1, 7, "rwm", "/dev/full"),
    ("c", 5, 0, "rwm", "/dev/tty"),
    ("c", 1, 8, "rwm", "/dev/random"),
    ("c", 1, 9, "rwm", "/dev/urandom"),
    ("c", 5, 1, "rwm", "/dev/console"),
    ("c", 136, -1, "rwm", "/dev/pts/*"),
    ("c", 5, 2, "rwm", "/dev/ptmx"),
    ("c", 10, 200, "rwm", "/dev/net/tun"),
)

# /dev entries a privileged container does not copy from the host (they are its own mounts).
_HOST_DEV_SKIP = ("pts", "shm", "mqueue", "fd", "console", "core", "ptmx", "stdin", "stdout",
                  "stderr")


class Device:
    """A device node the container gets: where, what it is, who owns it, what it may do."""

    __slots__ = ("path", "kind", "major", "minor", "mode", "uid", "gid", "access", "host_path")

    def __init__(self, path: str, kind: str, major: int, minor: int, mode: int = 0o666,
                 uid: int = 0, gid: int = 0, access: str = "rwm", host_path: str = "") -> None:
        self.path, self.kind, self.major, self.minor = path, kind, major, minor
        self.mode, self.uid, self.gid, self.access = mode, uid, gid, access
        self.host_path = host_path

    def rule(self) -> tuple[str, int, int, str]:
        return (self.kind, self.major, self.minor, self.access)

    def as_dict(self) -> dict[str, object]:
        """Docker's HostConfig.Devices entry."""
        return {"PathOnHost": self.host_path, "PathInContainer": self.path,
                "CgroupPermissions": self.access}

    def __repr__(self) -> str:
        return f"Device({self.path} {self.kind} {self.major}:{self.minor} {self.access})"


def parse(flag: str) -> Device:
    """``--device /dev/x[:/dev/y][:rwm]``: look the host node up now, as Docker does."""
    parts = flag.split(":")
    access = "rwm"
    if len(parts) > 1 and parts[-1] and set(parts[-1]) <= set("rwm") \
            and not parts[-1].startswith("/"):
        access = parts.pop()
    if not parts[0] or len(parts) > 2 or not all(p.startswith("/") for p in parts):
        raise UsageError(f"invalid --device {flag!r}: want /dev/host[:/dev/container][:rwm]")
    host, inside = parts[0], parts[-1]
    try:
        st = os.stat(host)
    except OSError as exc:
        raise UsageError(f"error gathering device information while adding custom device "
                         f"{host!r}: {(exc.strerror or str(exc)).lower()}") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise UsageError(f"--device {host}: not a device node")
    kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
    return Device(os.path.normpath(inside), kind, os.major(st.st_rdev), os.minor(st.st_rdev),
                  stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, access, host)


def default_devices(table: tuple[tuple[str, int, int], ...]) -> list[Device]:
    """The default nodes (rootfs.DEFAULT_DEVICES: path, major, minor), all c, 0666, rwm."""
    return [Device(path, "c", major, minor, host_path=path) for path, major, minor in table]


def host_devices(dev: str = "/dev") -> list[Device]:
    """Every device node under the host's /dev (for --privileged), skipping its own mounts."""
    found = []
    for dirpath, dirnames, filenames in os.walk(dev):
        if dirpath == dev:
            dirnames[:] = [d for d in dirnames if d not in _HOST_DEV_SKIP]
        for name in filenames:
            if dirpath == dev and name in _HOST_DEV_SKIP:
                continue
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
                found.append(Device(path, kind, os.major(st.st_rdev), os.minor(st.st_rdev),
                                    stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                    host_path=path))
    return found


# -- 1. the mount table ------------------------------------------------------------------------

def populate_dev(dev: str, devices: list[Device], from_host: bool = False) -> None:
    """Make each of ``devices`` in ``dev`` (the container's /dev tmpfs) a bind mount of its
    own, then make the tmpfs itself ``nodev``: from then on no other device node there opens.

    A node is bound onto itself: the bind is a new mount, made while /dev still allowed
    devices, so it keeps allowing them after /dev is remounted nodev. (``from_host``: the host's
    own nodes are bound instead, since a user namespace may not mknod.) The nodes rootfs made
    (``rootfs.DEFAULT_DEVICES``) are reused; a ``--device`` node is made here.
    """
    old_umask = os.umask(0)
    try:
        for device in devices:
            target = os.path.join(dev, device.path.removeprefix("/dev/"))
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            if from_host:
                if not os.path.lexists(target):
                    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
                syscalls.mount(device.host_path, target, None, MS.BIND)
                continue
            if not _is_node(target, device):
                if os.path.lexists(target):
                    os.unlink(target)
                kind = stat.S_IFCHR if device.kind == "c" else stat.S_IFBLK
                syscalls.mknod(target, kind | device.mode, device.major, device.minor)
                os.chown(target, device.uid, device.gid)
            syscalls.mount(target, target, None, MS.BIND)
    finally:
        os.umask(old_umask)
    syscalls.mount(None, dev, None, MS.REMOUNT | MS.BIND | MS.NOSUID | MS.NODEV | MS.STRICTATIME)
    if trace.enabled():
        trace.note(f"/dev is nodev; {len(devices)} device nodes are bind mounts of their own")


def _is_node(path: str, device: Device) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    kind = stat.S_ISCHR if device.kind == "c" else stat.S_ISBLK
    return kind(st.st_mode) and st.st_rdev == os.makedev(device.major, device.minor)


def seal_root() -> None:
    """Remount / ``nodev`` (after pivot_root): device nodes from image layers, or made with
    CAP_MKNOD anywhere in the root filesystem, can never be opened."""
    syscalls.mount(None, "/", None, MS.REMOUNT | MS.BIND | MS.NODEV)


def make_host_devices(dev: str, devices: list[Device]) -> None:
    """--privileged: the host's device nodes, made with mknod in /dev (which stays dev)."""
    old_umask = os.umask(0)
    try:
        for device in devices:
            target = os.path.join(dev, device.path.removeprefix("/dev/"))
            if os.path.lexists(target):
                continue
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            kind = stat.S_IFCHR if device.kind == "c" else stat.S_IFBLK
            os.mknod(target, kind | device.mode, os.makedev(device.major, device.minor))
            os.chown(target, device.uid, device.gid)
    finally:
        os.umask(old_umask)
    if trace.enabled():
        trace.note(f"--privileged: {len(devices)} host device nodes made in /dev")


# -- 2. cgroup v1: devices.deny and devices.allow ---------------------------------------------

def rule_text(kind: str, major: int, minor: int, access: str) -> str:
    """``("c", 136, -1, "rwm")`` -> ``"c 136:* rwm"``, the devices.allow syntax."""
    def number(n: int) -> str:
        return "*" if n < 0 else str(n)
    return f"{kind} {number(major)}:{number(minor)} {access}"


def rules_for(devices: list[Device]) -> list[tuple[str, int, int, str]]:
    return [r[:4] for r in DEFAULT_RULES] + [d.rule() for d in devices]


def set_rules_v1(cgroup_dir: str, rules: list[tuple[str, int, int, str]]) -> None:
    """Deny everything, then allow each rule (the order matters: a deny clears the list)."""
    syscalls.write_file(os.path.join(cgroup_dir, "devices.deny"), "a")
    for rule in rules:
        syscalls.write_file(os.path.join(cgroup_dir, "devices.allow"), rule_text(*rule))


# -- 3. cgroup v2: an eBPF program ------------------------------------------------------------

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_F_ALLOW_MULTI = 2
_TYPES = {"c": 2, "b": 1}  # BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction: opcode, dst/src registers, 16-bit offset, 32-bit immediate."""
    return (bytes([code, src << 4 | dst]) + off.to_bytes(2, "little", signed=True)
            + (imm & 0xFFFFFFFF).to_bytes(4, "little"))


def bpf_program(rules: list[tuple[str, int, int, str]]) -> bytes:
    """A cgroup device program that returns 1 (allow) for a matching rule, else 0.

    The kernel passes ``struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }``
    in r1; ``access_type`` is ``access << 16 | type``. Registers: r2 type, r3 access, r4
    major, r5 minor. Each rule is a block of tests that jumps past itself on a mismatch.
    """
    prologue = [
        _insn(0x61, 2, 1, 0),      # w2 = *(u32 *)(r1 + 0)   access_type
        _insn(0x54, 2, imm=0xFFFF),  # w2 &= 0xffff          type
        _insn(0x61, 3, 1, 0),      # w3 = *(u32 *)(r1 + 0)
        _insn(0x74, 3, imm=16),    # w3 >>= 16               access
        _insn(0x61, 4, 1, 4),      # w4 = *(u32 *)(r1 + 4)   major
        _insn(0x61, 5, 1, 8),      # w5 = *(u32 *)(r1 + 8)   minor
    ]
    body: list[bytes] = []
    for kind, major, minor, access in rules:
        mask = sum(_ACCESS[a] for a in access)
        # (opcode, dst, src, imm, is a "goto next rule on mismatch")
        tests = [
            (0xBC, 1, 3, 0, False),            # w1 = w3
            (0x54, 1, 0, mask, False),         # w1 &= the access this rule allows
            (0x5D, 1, 3, 0, True),             # if r1 != r3 goto next: asked for more
            (0x55, 2, 0, _TYPES[kind], True),  # if r2 != type goto next
        ]
        if major >= 0:
            tests.append((0x55, 4, 0, major, True))  # if r4 != major goto next
        if minor >= 0:
            tests.append((0x55, 5, 0, minor, True))  # if r5 != minor goto next
        tail = [_insn(0xB7, 0, imm=1), _insn(0x95)]  # r0 = 1; exit
        for i, (code, dst, src, imm, jump) in enumerate(tests):
            skip = len(tests) - i - 1 + len(tail) if jump else 0  # past the end of the block
            body.append(_insn(code, dst, src, skip, imm))
        body += tail
    epilogue = [_insn(0xB7, 0, imm=0), _insn(0x95)]  # r0 = 0; exit: no rule allowed it
    return b"".join(prologue + body + epilogue)


def attach_v2(cgroup_dir: str, rules: list[tuple[str, int, int, str]]) -> None:
    """Load :func:`bpf_program` and attach it to ``cgroup_dir``; the attachment keeps it."""
    import ctypes

    program = bpf_program(rules)
    insns = ctypes.create_string_buffer(program, len(program))
    license_ = ctypes.create_string_buffer(b"Apache-2.0")
    attr = ctypes.create_string_buffer(128)
    ctypes.memmove(ctypes.addressof(attr), BPF_PROG_TYPE_CGROUP_DEVICE.to_bytes(4, "little")
                   + (len(program) // 8).to_bytes(4, "little")
                   + ctypes.addressof(insns).to_bytes(8, "little")
                   + ctypes.addressof(license_).to_bytes(8, "little"), 24)
    ctypes.memmove(ctypes.addressof(attr) + 48, b"minidocker_dev", 14)  # prog_name
    ctypes.memmove(ctypes.addressof(attr) + 68, BPF_CGROUP_DEVICE.to_bytes(4, "little"), 4)
    prog_fd = syscalls.bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD{BPF_PROG_TYPE_CGROUP_DEVICE}")
    try:
        cgroup_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            attach = ctypes.create_string_buffer(
                cgroup_fd.to_bytes(4, "little") + prog_fd.to_bytes(4, "little")
                + BPF_CGROUP_DEVICE.to_bytes(4, "little")
                + BPF_F_ALLOW_MULTI.to_bytes(4, "little"), 32)
            syscalls.bpf(BPF_PROG_ATTACH, attach, f"BPF_PROG_ATTACH{{{cgroup_dir}}}")
        finally:
            os.close(cgroup_fd)
    finally:
        os.close(prog_fd)
