"""``minidocker doctor``: can this host run containers, and if not, what to do about it.

A container is not one kernel feature but a handful used together, and a host can lack any of
them. Each check below looks at one of them the way the kernel shows it (a file under ``/proc``
or ``/sys``), says what it saw, and for every failure says how to fix it. Notebooks call
:func:`can_run_containers` to decide whether to run a cell live or show its recorded output
(on mybinder.org we are not root, so they explain instead).

What each check is for:

- **root**: ``unshare(2)`` of most namespaces, ``mount(2)``, ``pivot_root(2)`` and writing to
  cgroupfs all need ``CAP_SYS_ADMIN`` in the initial user namespace; minidocker runs as root.
- **python**: 3.11 or newer (the syscall layer uses ``add_note`` on the errors it raises).
- **kernel**: 5.0 or newer; newer kernels add features some lessons use, listed in
  :data:`KERNEL_FEATURES` (idmapped mounts need 5.12, for example).
- **namespace <kind>**: each kind of namespace the kernel was built with appears as a link in
  ``/proc/self/ns`` (see namespaces(7)); mnt, uts, ipc, pid and net are required.
- **user namespaces**: ``/proc/sys/user/max_user_namespaces`` caps how many may exist (0 turns
  them off); Debian's ``kernel.unprivileged_userns_clone`` and Ubuntu's
  ``kernel.apparmor_restrict_unprivileged_userns`` only matter to non-root users.
- **cgroups**: how cgroupfs is mounted under ``/sys/fs/cgroup`` (from
  ``/proc/self/mountinfo``): v2 alone ("unified", the learner's VM), v1 alone ("legacy"), or
  v1 controllers plus an empty cgroup2 tree ("hybrid", the development hosts). Limits use
  whichever hierarchy holds the controllers; see cgroups(7).
- **I/O weight**: ``--blkio-weight`` needs something that weighs I/O: the BFQ scheduler (its
  ``blkio.bfq.weight`` / ``io.bfq.weight``), CFQ before Linux 5.0 (``blkio.weight``), or on v2
  blk-iocost (``io.weight``). Disks on ``none`` or ``mq-deadline`` (``/sys/block/*/queue/
  scheduler``) have none of them, so the weight is discarded with Docker's warning. Only a
  warning: nothing else needs it.
- **overlayfs**: image layers are stacked read-only under a writable upper directory; the
  kernel must list ``overlay`` in ``/proc/filesystems``.
- **storage driver**: the upper directory lives in the state directory (``$MINIDOCKER_ROOT``,
  default ``/var/lib/minidocker``), and overlayfs refuses some filesystems as upper, overlayfs
  itself first of all (Docker-in-Docker hits this). Then the ``vfs`` driver, which copies each
  layer in full, is used instead.
- **/ propagation**: the optional fields of ``/`` in mountinfo (``shared:1``) say whether mount
  events propagate to and from peers; see mount_namespaces(7). pivot_root(2) fails with EINVAL
  when the parent mount of the new root (or of the current root) is shared, so minidocker
  makes every mount private inside its own mount namespace before pivoting. Shared is fine,
  but it is why that step exists.
- **busybox**: the built-in ``busybox`` image is made from the host's ``/bin/busybox``, which
  must be statically linked: the image has no libc for a dynamic one to load.
- **nft, runc, crun**: optional tools (network rules, the benchmarks' reference runtimes).
- **security modules**: AppArmor or SELinux may deny what a confined process does; worth
  knowing when a mount fails with EACCES.

Every check takes its inputs as arguments (a path root, a mountinfo text), so the unit tests
point them at a temporary directory standing in for ``/``.
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# The host facts live below, where the storage driver (a mechanism) can read them without
# importing this report; notebooks 01 and 04 still call them as ``doctor.parse_mountinfo``,
# ``doctor.filesystem_types`` and ``doctor.storage_driver``.
from minidocker import procfs
from minidocker.graphdriver import storage_driver
from minidocker.mountinfo import (
    cgroup_layout,
    filesystem_types,
    parse_mountinfo,
    propagation,
)

DEFAULT_STATE_DIR = "/var/lib/minidocker"
MIN_PYTHON = (3, 11)
MIN_KERNEL = (5, 0)

# What a kernel older than the version misses; a lesson using it says so.
KERNEL_FEATURES: tuple[tuple[tuple[int, int], str], ...] = (
    ((4, 5), "cgroup v2"),
    ((4, 6), "cgroup namespaces"),
    ((5, 3), "pidfd_open(2) and clone3(2)"),
    ((5, 6), "time namespaces"),
    ((5, 11), "overlayfs inside a user namespace"),
    ((5, 12), "idmapped mounts"),
    ((5, 14), "cgroup.kill"),
)


@dataclass(frozen=True)
class NamespaceKind:
    name: str  # as in /proc/self/ns
    flag: str  # the clone(2) flag
    isolates: str
    config: str  # the kernel option that builds it in
    required: bool


NAMESPACES: tuple[NamespaceKind, ...] = (
    NamespaceKind("mnt", "CLONE_NEWNS", "the mount table, so the container gets its own /",
                  "CONFIG_NAMESPACES", True),
    NamespaceKind("uts", "CLONE_NEWUTS", "hostname and domain name", "CONFIG_UTS_NS", True),
    NamespaceKind("ipc", "CLONE_NEWIPC", "System V IPC and POSIX message queues",
                  "CONFIG_IPC_NS", True),
    NamespaceKind("pid", "CLONE_NEWPID", "process IDs, so the command is PID 1",
                  "CONFIG_PID_NS", True),
    NamespaceKind("net", "CLONE_NEWNET", "interfaces, addresses, routes and ports",
                  "CONFIG_NET_NS", True),
    NamespaceKind("user", "CLONE_NEWUSER", "user and group IDs (rootless containers)",
                  "CONFIG_USER_NS", False),
    NamespaceKind("cgroup", "CLONE_NEWCGROUP", "the view of /proc/self/cgroup",
                  "CONFIG_CGROUPS", False),
    NamespaceKind("time", "CLONE_NEWTIME", "CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets (5.6+)",
                  "CONFIG_TIME_NS", False),
)

OPTIONAL_TOOLS: tuple[tuple[str, str, str], ...] = (
    ("nft", "nftables", "firewall and NAT rules for container networks"),
    ("runc", "runc", "a reference OCI runtime for the benchmarks"),
    ("crun", "crun", "a reference OCI runtime for the benchmarks"),
)

_TOOL_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


@dataclass
class Check:
    """One line of the report. ``ok`` is None for a warning or a check that does not apply."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# -- reading the host ------------------------------------------------------------------------

def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # missing or unreadable: the check reports it as such
        return None


def elf_is_static(head: bytes) -> bool | None:
    """True if an ELF image has no PT_INTERP (no dynamic loader); None if not ELF.

    ``head`` must hold the ELF header and the program headers (the first 4 KiB do).
    """
    if len(head) < 52 or head[:4] != b"\x7fELF":
        return None
    end = "<" if head[5] == 1 else ">"
    if head[4] == 2:  # ELFCLASS64
        (phoff,) = struct.unpack_from(end + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
    else:
        (phoff,) = struct.unpack_from(end + "I", head, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
    pt_interp = 3
    for i in range(phnum):
        offset = phoff + i * phentsize
        if offset + 4 > len(head):
            return None
        (p_type,) = struct.unpack_from(end + "I", head, offset)
        if p_type == pt_interp:
            return False
    return True


def state_dir() -> str:
    return os.environ.get("MINIDOCKER_ROOT") or DEFAULT_STATE_DIR


# -- the checks ------------------------------------------------------------------------------

def check_root(euid: int) -> Check:
    if euid == 0:
        return Check("root", True, "running as uid 0")
    return Check("root", False, f"running as uid {euid}",
                 "run as root: sudo minidocker ... (namespaces, mounts and cgroups need "
                 "CAP_SYS_ADMIN); on mybinder.org there is no root, so notebooks explain instead")


def check_python(version: tuple[int, ...]) -> Check:
    shown = ".".join(str(v) for v in version[:3])
    if version[:2] >= MIN_PYTHON:
        return Check("python", True, f"python {shown}")
    return Check("python", False, f"python {shown}, minidocker needs 3.11+",
                 "use Debian 12 or Ubuntu 24.04's /usr/bin/python3, or install python3.11; "
                 "then recreate the venv: sudo bash scripts/setup.sh")


def check_kernel(release: str) -> Check:
    version = procfs.kernel_version(release)
    if version is None:
        return Check("kernel", None, f"cannot read a version from {release!r}",
                     "minidocker needs linux 5.0+; check `uname -r`")
    if version[:2] < MIN_KERNEL:
        return Check("kernel", False, f"{release}: older than 5.0",
                     "boot a newer kernel: Debian 12 ships 6.1, Ubuntu 24.04 ships 6.8")
    missing = [f"{name} ({major}.{minor}+)" for (major, minor), name in KERNEL_FEATURES
               if version[:2] < (major, minor)]
    if missing:
        return Check("kernel", None, f"{release}: lacks " + ", ".join(missing),
                     "the lessons on these need a newer kernel (Debian 12: 6.1, Ubuntu 24.04: "
                     "6.8); everything else works")
    return Check("kernel", True, f"{release}: has every feature the lessons use")


def check_namespaces(ns_dir: Path) -> list[Check]:
    checks = []
    for kind in NAMESPACES:
        name = f"namespace {kind.name}"
        try:
            link = os.readlink(ns_dir / kind.name)
        except OSError:
            fix = (f"the kernel was built without {kind.config} ({kind.flag}); use a "
                   "distribution kernel (Debian 12 and Ubuntu 24.04 have every kind)")
            status = False if kind.required else None
            checks.append(Check(name, status, f"no {ns_dir / kind.name}: {kind.isolates}", fix))
            continue
        checks.append(Check(name, True, f"{link}: {kind.isolates}"))
    return checks


def check_user_namespaces(proc: Path) -> Check:
    name = "user namespaces"
    raw = _read(proc / "sys/user/max_user_namespaces")
    if raw is None:
        return Check(name, None, f"no {proc}/sys/user/max_user_namespaces",
                     "the kernel may lack CONFIG_USER_NS; only rootless containers need it")
    limit = int(raw.strip() or 0)
    if limit == 0:
        return Check(name, None, "user.max_user_namespaces = 0: user namespaces are off "
                     "(only rootless containers need them)",
                     "sysctl -w user.max_user_namespaces=15000 (and put it in /etc/sysctl.d/)")
    notes = [f"user.max_user_namespaces = {limit}"]
    clone = _read(proc / "sys/kernel/unprivileged_userns_clone")
    if clone is not None and clone.strip() == "0":
        return Check(name, None, notes[0] + ", kernel.unprivileged_userns_clone = 0",
                     "only non-root users are refused; to allow them: "
                     "sysctl -w kernel.unprivileged_userns_clone=1")
    restrict = _read(proc / "sys/kernel/apparmor_restrict_unprivileged_userns")
    if restrict is not None and restrict.strip() == "1":
        notes.append("AppArmor restricts them for non-root users (Ubuntu's default)")
    return Check(name, True, "; ".join(notes))


def check_cgroups(mountinfo: str, cgroup_root: Path) -> Check:
    layout = cgroup_layout(parse_mountinfo(mountinfo))
    if layout.mode == "none":
        return Check("cgroups", False, "no cgroup or cgroup2 mount in /proc/self/mountinfo",
                     "mount cgroup v2: mount -t cgroup2 cgroup2 /sys/fs/cgroup")
    if layout.mode == "v2":
        controllers = (_read(cgroup_root / "cgroup.controllers") or "").split()
        shown = " ".join(controllers) or "unknown"
        detail = f"v2 (unified) at {layout.v2_path}; controllers: {shown}"
    else:
        controllers = list(layout.v1_controllers)
        shown = " ".join(controllers)
        if layout.mode == "hybrid":
            detail = (f"hybrid: v1 controllers {shown} under /sys/fs/cgroup/<name>, cgroup2 "
                      f"at {layout.v2_path} holds none; limits use v1 here (the VM: v2 only)")
        else:
            detail = f"v1 (legacy): controllers {shown} under /sys/fs/cgroup/<controller>"
    lacking = [c for c in ("memory", "pids", "cpu") if controllers and c not in controllers]
    if lacking:
        return Check("cgroups", None, detail + f"; no {', '.join(lacking)} controller",
                     "limits on " + ", ".join(lacking) + " will not apply; check the kernel "
                     "command line for cgroup_disable= and that nothing else binds them")
    return Check("cgroups", True, detail)


def io_schedulers(block_dir: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``{disk: (the scheduler in use, every one offered)}`` from each
    ``/sys/block/<disk>/queue/scheduler`` (``[none] mq-deadline kyber``: the one in use is
    bracketed)."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    try:
        disks = sorted(os.listdir(block_dir))
    except OSError:  # no sysfs (a chroot, a test root): no disks to report
        return found
    for disk in disks:
        text = _read(block_dir / disk / "queue/scheduler")
        if text is None:
            continue
        names = tuple(n.strip("[]") for n in text.split())
        current = next((n.strip("[]") for n in text.split() if n.startswith("[")), "none")
        found[disk] = (current, names)
    return found


def check_io_weight(mountinfo: str, sys_root: Path) -> Check:
    """Can ``--blkio-weight`` take effect here, and if not, why (see the module's docstring)."""
    name = "I/O weight"
    layout = cgroup_layout(parse_mountinfo(mountinfo))
    cgroup_root = sys_root / "fs/cgroup"
    if layout.mode == "none":
        return Check(name, None, "no cgroups: --blkio-weight is discarded",
                     "see the cgroups check")
    iocost = False
    if layout.mode == "v2":
        if "io" not in (_read(cgroup_root / "cgroup.controllers") or "").split():
            return Check(name, None, "no io controller in cgroup.controllers: --blkio-weight "
                         "is discarded", "check the kernel command line for cgroup_disable=io, "
                         "and that this cgroup's parent delegates io")
        iocost = (cgroup_root / "io.cost.qos").exists()  # only on the root, if built in
    elif "blkio" not in layout.v1_controllers:
        return Check(name, None, "no blkio controller mounted: --blkio-weight is discarded",
                     "mount it: mkdir /sys/fs/cgroup/blkio && "
                     "mount -t cgroup -o blkio blkio /sys/fs/cgroup/blkio")
    disks = io_schedulers(sys_root / "block")
    weighing = sorted(d for d, (current, _) in disks.items() if current in ("bfq", "cfq"))
    if weighing:
        return Check(name, True, f"{disks[weighing[0]][0]} on {', '.join(weighing)}: "
                     "--blkio-weight is written and weighs I/O there")
    if iocost:
        return Check(name, True, "io.weight from blk-iocost: --blkio-weight is written (it "
                     "weighs I/O on disks where io.cost.qos enables it)")
    in_use = sorted({current for current, _ in disks.values()}) or ["no disks seen"]
    use_bfq = "echo bfq > /sys/block/<disk>/queue/scheduler (a udev rule keeps it across boots)"
    if any("bfq" in offered for _, offered in disks.values()):
        return Check(name, None, f"bfq is loaded but no disk uses it (in use: "
                     f"{', '.join(in_use)}): --blkio-weight is written but weighs nothing",
                     use_bfq)
    return Check(name, None, f"no BFQ scheduler on any disk (in use: {', '.join(in_use)}): "
                 "--blkio-weight is discarded", "modprobe bfq, then " + use_bfq)


def check_overlay(filesystems: str) -> Check:
    if "overlay" in filesystem_types(filesystems):
        return Check("overlayfs", True, "overlay is in /proc/filesystems")
    return Check("overlayfs", False, "overlay is not in /proc/filesystems",
                 "load the module: modprobe overlay (to load it at boot: "
                 "echo overlay > /etc/modules-load.d/overlay.conf)")


def check_storage(path: str, mountinfo: str, filesystems: str,
                  recorded: tuple[str, str] | None = None) -> Check:
    """The driver ``path`` gets; ``recorded`` is the choice already made for it, if any
    (:func:`minidocker.graphdriver.recorded_choice`), which is the one in use."""
    overlay = "overlay" in filesystem_types(filesystems)
    driver, why = storage_driver(path, parse_mountinfo(mountinfo), overlay)
    if recorded is not None:
        driver, why = recorded[0], (f"in use: chosen when this state root was first used "
                                    f"({recorded[1]})")
    if driver == "overlay":
        return Check("storage driver", True, f"overlay: {why}")
    return Check("storage driver", None, f"vfs (copies every layer in full): {why}",
                 "point MINIDOCKER_ROOT at a directory on ext4, xfs, btrfs or tmpfs, "
                 "e.g. MINIDOCKER_ROOT=/var/tmp/minidocker, or mount a volume at "
                 f"{path}")


def check_propagation(mountinfo: str) -> Check:
    mounts = [m for m in parse_mountinfo(mountinfo) if m.mount_point == "/"]
    if not mounts:
        return Check("/ propagation", None, "no / in /proc/self/mountinfo",
                     "is /proc mounted? mount -t proc proc /proc")
    root = mounts[-1]
    kind = propagation(root)
    tags = " ".join(root.optional) or "no optional fields"
    why = ("pivot_root(2) fails with EINVAL under a shared parent, so minidocker makes mounts "
           "private in its own mount namespace first")
    return Check("/ propagation", True, f"{kind} ({tags}): {why}")


def check_busybox(path: Path) -> Check:
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        return Check("busybox", False, f"no {path} (the built-in busybox image is made from it)",
                     "apt-get install busybox-static")
    except OSError as exc:
        return Check("busybox", False, f"cannot read {path}: {exc.strerror}",
                     f"check the permissions of {path}, or reinstall: "
                     "apt-get install --reinstall busybox-static")
    static = elf_is_static(head)
    if static is None:
        return Check("busybox", False, f"{path} is not an ELF executable",
                     "apt-get install --reinstall busybox-static")
    if not static:
        return Check("busybox", False, f"{path} is dynamically linked; an image has no libc",
                     "apt-get install busybox-static (it replaces the dynamic busybox package)")
    if not os.access(path, os.X_OK):
        return Check("busybox", False, f"{path} is not executable", f"chmod 755 {path}")
    size = path.stat().st_size / 2**20
    return Check("busybox", True, f"{path}: static ELF, {size:.1f} MiB")


def _which(name: str, dirs: list[str]) -> str | None:
    for d in dirs:
        candidate = os.path.join(d, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def check_tools(root: Path, path_env: str) -> list[Check]:
    dirs = [d for d in path_env.split(os.pathsep) if d] + list(_TOOL_DIRS)
    dirs = [str(root / d.lstrip("/")) for d in dict.fromkeys(dirs)]
    checks = []
    for tool, package, use in OPTIONAL_TOOLS:
        found = _which(tool, dirs)
        if found:
            checks.append(Check(tool, True, f"{found}: {use}"))
        else:
            checks.append(Check(tool, None, f"not found: optional, {use}",
                                f"apt-get install {package}"))
    return checks


def check_security_modules(sys_root: Path) -> Check:
    notes = []
    apparmor = _read(sys_root / "module/apparmor/parameters/enabled")
    if apparmor is None:
        notes.append("apparmor not present")
    else:
        if apparmor.strip() == "Y":
            notes.append("apparmor enabled (it confines programs by path: containers run "
                         "under minidocker-default, a root shell is unconfined)")
        else:
            notes.append("apparmor present but disabled")
    enforce = _read(sys_root / "fs/selinux/enforce")
    if enforce is None:
        notes.append("selinux not present")
        return Check("security modules", True, "; ".join(notes))
    if enforce.strip() == "1":
        notes.append("selinux enforcing")
        return Check("security modules", None, "; ".join(notes),
                     "if a mount or exec fails with EACCES, look for AVC denials "
                     "(ausearch -m avc); setenforce 0 tells whether selinux is the cause")
    notes.append("selinux permissive")
    return Check("security modules", True, "; ".join(notes))


def run_checks(root: str | Path = "/", *, euid: int | None = None,
               python: tuple[int, ...] | None = None, state: str | None = None,
               path_env: str | None = None) -> list[Check]:
    """Run every check against the host whose / is ``root`` (a temp dir in tests)."""
    root = Path(root)
    proc, sys_root = root / "proc", root / "sys"
    if root == Path("/") and os.geteuid() == 0:
        from minidocker import overlay

        overlay.ensure_loaded()  # as a start does: a module not loaded yet is not missing
    mountinfo = _read(proc / "self/mountinfo") or ""
    filesystems = _read(proc / "filesystems") or ""
    release = (_read(proc / "sys/kernel/osrelease") or os.uname().release).strip()
    checks = [
        check_root(os.geteuid() if euid is None else euid),
        check_python(tuple(sys.version_info[:3]) if python is None else python),
        check_kernel(release),
        *check_namespaces(proc / "self/ns"),
        check_user_namespaces(proc),
        check_cgroups(mountinfo, sys_root / "fs/cgroup"),
        check_io_weight(mountinfo, sys_root),
        check_overlay(filesystems),
        check_storage(os.path.realpath(state or state_dir()), mountinfo, filesystems,
                      _recorded_driver(state or state_dir())),
        check_propagation(mountinfo),
        check_busybox(root / "bin/busybox"),
        *check_tools(root, os.environ.get("PATH", "") if path_env is None else path_env),
        check_security_modules(sys_root),
    ]
    return checks


def _recorded_driver(state: str) -> tuple[str, str] | None:
    from minidocker.errors import HostError
    from minidocker.graphdriver import recorded_choice

    try:
        return recorded_choice(state)
    except (HostError, OSError):
        return None


def can_run_containers(root: str | Path = "/", euid: int | None = None) -> tuple[bool, str]:
    """Root, the required namespaces and overlayfs: enough to run a container live."""
    euid = os.geteuid() if euid is None else euid
    root = Path(root)
    if euid != 0:
        return False, (f"not root (uid {euid}): namespaces and mounts need root, so this "
                       "shows recorded output instead")
    failed = [c for c in check_namespaces(root / "proc/self/ns") if c.ok is False]
    if failed:
        return False, f"{failed[0].name} is missing: {failed[0].fix}"
    if root == Path("/"):
        from minidocker import overlay as overlayfs

        overlayfs.ensure_loaded()  # after a reboot a module is not loaded yet, not missing
    overlay = check_overlay(_read(root / "proc/filesystems") or "")
    if not overlay.ok:
        return False, f"{overlay.detail}: {overlay.fix}"
    return True, "root, namespaces and overlayfs are available"


# -- the report ------------------------------------------------------------------------------

def format_table(checks: list[Check], ascii_only: bool = False) -> str:
    marks = {True: "ok", False: "FAIL", None: "warn"} if ascii_only else \
        {True: "✓", False: "✗", None: "!"}
    width = max((len(c.name) for c in checks), default=0)
    pad = max(len(m) for m in marks.values())
    lines = []
    for c in checks:
        lines.append(f"{marks[c.ok]:<{pad}} {c.name:<{width}}  {c.detail}")
        if c.fix and c.ok is not True:
            lines.append(f"{'':<{pad}} {'':<{width}}  fix: {c.fix}")
    failed = sum(c.ok is False for c in checks)
    warned = sum(c.ok is None for c in checks)
    lines.append(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from minidocker.flags import argparser as make_parser

    parser = make_parser("minidocker doctor", "check that this host can run containers")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    args = parser.parse_args(argv)
    checks = run_checks()
    if args.json:
        import json

        print(json.dumps([c.to_dict() for c in checks], indent=2))
    else:
        encoding = (getattr(sys.stdout, "encoding", None) or "ascii").lower()
        print(format_table(checks, ascii_only="utf" not in encoding))
    return 1 if any(c.ok is False for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
