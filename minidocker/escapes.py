"""The escape suite: known container breakouts, tried from inside a container.

Each :data:`ATTACKS` entry is an attack that has worked against some container runtime, the
probe that tries it (``tests/escapes/probe.c``, a small static program: busybox has none of
these tools), and what in minidocker's default stops it. The suite runs each one twice: in a
default container, where it must fail, and under ``--privileged``, where it mostly succeeds,
which shows what the default protects. ``tests/kernel/test_escapes.py`` asserts it;
``notebooks/03_capabilities.ipynb`` prints it as a table.

**Nothing is ever done to the host.** Each probe stops at the proof: a kernel knob is opened
for writing and closed unwritten, the host's disk is read (its superblock), a cgroup hierarchy
mounted for the release_agent attack is a new, empty one, unmounted again, a traced process is
one the suite started itself. :func:`host_fingerprint` is taken before and after: core_pattern,
the sysrq setting, every release_agent, the host's mounts, /dev, and the bytes of minidocker's
own interpreter (CVE-2019-5736's target) must be unchanged.

Notebook: ``03_capabilities``. See also :mod:`minidocker.security` for what each defence is.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    Runner = Callable[..., tuple[int, str, str]]  # minidocker ARGS -> (exit code, out, err)

PROBE_IMAGE = "escape-probe"


class Attack:
    """One breakout: how to try it, and what stops it by default."""

    __slots__ = ("key", "title", "argv", "flags", "default_flags", "stopped_by", "privileged")

    def __init__(self, key: str, title: str, argv: list[str], stopped_by: str,
                 privileged: str, flags: tuple[str, ...] = (),
                 default_flags: tuple[str, ...] = ()) -> None:
        self.key, self.title, self.argv = key, title, argv
        self.flags = flags  # for both runs (--pid host, --init)
        self.default_flags = default_flags  # for the default run only (--cap-drop NET_RAW)
        self.stopped_by = stopped_by
        self.privileged = privileged  # what --privileged should show: ESCAPED/ALLOWED/BLOCKED


def attacks(host_pid: int = 0, disk: tuple[int, int] | None = None,
            state_root: str | None = None) -> list[Attack]:
    """The suite. ``host_pid``: a host process to try ptrace on (one the caller started);
    ``disk``: (major, minor) of the device holding the host's / (default: read from stat);
    ``state_root``: where the containers' files are (default: ``$MINIDOCKER_ROOT`` or
    /var/lib/minidocker), whose filesystem the shocker aims at.

    What ``--privileged`` shows depends on the host, and is read from it: a cgroup v2 host
    has no v1 release_agent to reach, and the shocker's guessed handle fits only ext2/3/4."""
    if disk is None:
        st = os.stat("/")
        disk = (os.major(st.st_dev), os.minor(st.st_dev))
    sysrq = "ALLOWED" if os.path.exists("/proc/sysrq-trigger") else "N/A"
    agent = "ESCAPED" if v1_release_agents() else "BLOCKED"
    shocker = "ESCAPED" if shocker_reaches(state_root) else "BLOCKED"
    return [
        Attack("mknod-disk", "mknod the host's disk, read it, mount it",
               ["mknod-disk", str(disk[0]), str(disk[1])],
               "devices: /dev is nodev, so the new node won't open; mount needs CAP_SYS_ADMIN "
               "and seccomp forbids it", "ESCAPED" if host_can_open(disk) else "N/A"),
        Attack("sysrq", "write /proc/sysrq-trigger (crash or reboot the host)", ["sysrq"],
               "masks: /proc/sysrq-trigger is read-only", sysrq),
        Attack("core-pattern", "write /proc/sys/kernel/core_pattern (run a program as host "
               "root on the next crash)", ["core-pattern"],
               "masks: /proc/sys is read-only", "ALLOWED"),
        Attack("release-agent", "cgroup v1 release_agent (CVE-2022-0492)", ["release-agent"],
               "seccomp: unshare and mount are refused; no CAP_SYS_ADMIN", agent),
        Attack("module", "load a kernel module", ["module"],
               "seccomp: finit_module is refused; no CAP_SYS_MODULE", "ALLOWED"),
        Attack("keyctl", "keyctl: the kernel keyring (not namespaced)", ["keyctl"],
               "seccomp: keyctl is refused", "ALLOWED"),
        Attack("ptrace", "ptrace a host process", ["ptrace", str(host_pid)],
               "the PID namespace hides it; with --pid host, no CAP_SYS_PTRACE", "ESCAPED",
               flags=("--pid", "host")),
        Attack("shocker", "open_by_handle_at the host's / ('shocker', 2014)", ["shocker"],
               "seccomp: open_by_handle_at is refused; no CAP_DAC_READ_SEARCH", shocker),
        Attack("chroot", "chroot out of the root filesystem", ["chroot"],
               "pivot_root detached the host's root: there is nothing above / to climb to",
               "BLOCKED"),
        Attack("raw-socket", "raw socket with NET_RAW dropped", ["raw-socket"],
               "capabilities: no CAP_NET_RAW (Docker keeps it by default: drop it)", "ALLOWED",
               default_flags=("--cap-drop", "NET_RAW")),
        Attack("userns", "unshare a user namespace to regain capabilities", ["userns"],
               "seccomp: unshare is refused without CAP_SYS_ADMIN", "ALLOWED"),
        Attack("proc-exe", "reach the runtime's binary via /proc/1/exe (CVE-2019-5736)",
               ["proc-exe", "/proc/1/exe"],
               "--init's PID 1 is non-dumpable, and there is no CAP_SYS_PTRACE; the command "
               "itself may never be the runtime's binary", "ALLOWED", flags=("--init",)),
    ]


class Outcome:
    """What one attack did in one mode: the probe's first word and its line."""

    __slots__ = ("attack", "mode", "word", "line", "code")

    def __init__(self, attack: Attack, mode: str, word: str, line: str, code: int) -> None:
        self.attack, self.mode, self.word, self.line, self.code = attack, mode, word, line, code

    @property
    def failed(self) -> bool:
        """The attack did not get through (a probe's BLOCKED, or minidocker refused to run)."""
        return self.word in ("BLOCKED", "REFUSED", "N/A")

    def __repr__(self) -> str:
        return f"Outcome({self.attack.key}, {self.mode}: {self.line})"


def run_attack(run: Runner, attack: Attack, mode: str, image: str = PROBE_IMAGE) -> Outcome:
    """Try ``attack`` in a ``default`` or ``privileged`` container."""
    flags = list(attack.flags) + (list(attack.default_flags) if mode == "default"
                                  else ["--privileged"])
    code, out, err = run("run", "--rm", *flags, image, "/probe", *attack.argv)
    line = out.strip().splitlines()[0] if out.strip() else err.strip()
    word = line.split(" ", 1)[0] if code == 0 and line else "REFUSED"
    if attack.privileged == "N/A" and mode == "privileged" and word == "BLOCKED":
        word, line = "N/A", line + " (this host refuses it to its own root too)"
    return Outcome(attack, mode, word, line, code)


def v1_release_agents(cgroup_root: str = "/sys/fs/cgroup") -> list[str]:
    """The host's cgroup v1 hierarchies that have a release_agent (CVE-2022-0492's target).

    None on a cgroup v2 host: then even a privileged container cannot mount one, since a
    new hierarchy may be made only from the initial cgroup namespace, and the probe runs
    in the container's own (also after unsharing a new one)."""
    if not os.path.isdir(cgroup_root):
        return []
    return [name for name in sorted(os.listdir(cgroup_root))
            if os.path.exists(os.path.join(cgroup_root, name, "release_agent"))]


def shocker_reaches(state_root: str | None = None) -> bool:
    """Would the shocker's guessed handle (an ext2/3/4 root directory: inode 2,
    FILEID_INO32_GEN) name the root of the filesystem holding ``state_root``, whose files
    (/etc/hostname) are bind-mounted into a container? Other filesystems number or encode
    their handles differently (tmpfs: a 64-bit inode in a longer handle) and answer ESTALE.
    The kernel's ext4 driver, which mounts ext2 and ext3 too, lists each of its filesystems
    in /sys/fs/ext4 by device name."""
    if state_root is None:
        state_root = os.environ.get("MINIDOCKER_ROOT") or "/var/lib/minidocker"
    path = os.path.realpath(state_root)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.stat(path)
    name = _device_name((os.major(st.st_dev), os.minor(st.st_dev)))
    return name is not None and os.path.isdir(f"/sys/fs/ext4/{name}")


def _device_name(disk: tuple[int, int]) -> str | None:
    """The kernel's name for block device ``disk`` (``vda``), None if it is none."""
    try:
        with open(f"/sys/dev/block/{disk[0]}:{disk[1]}/uevent") as f:
            return dict(line.split("=", 1) for line in f.read().split()
                        if "=" in line).get("DEVNAME")
    except OSError:
        return None


def host_can_open(disk: tuple[int, int]) -> bool:
    """Can the host's own root open block device ``disk`` (some sandboxes forbid it)?"""
    name = _device_name(disk)
    if name is None:
        return False
    try:
        fd = os.open(f"/dev/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def run_suite(run: Runner, host_pid: int, image: str = PROBE_IMAGE,
              state_root: str | None = None) -> list[tuple[Outcome, Outcome]]:
    return [(run_attack(run, a, "default", image), run_attack(run, a, "privileged", image))
            for a in attacks(host_pid, state_root=state_root)]


def format_table(results: list[tuple[Outcome, Outcome]], width: int = 58) -> str:
    """attack | default | --privileged, one row each."""
    rows = [f"{'attack':{width}} {'default':9} --privileged"]
    for default, privileged in results:
        rows.append(f"{default.attack.title[:width]:{width}} {default.word:9} {privileged.word}")
    return "\n".join(rows)


# -- building the probe and its image -----------------------------------------------------------

def build_probe(source: str, out_dir: str) -> str:
    """``gcc -static`` the probe; raises RuntimeError with the reason if it can't."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is not installed (apt-get install gcc libc6-dev)")
    out = os.path.join(out_dir, "probe")
    done = subprocess.run([gcc, "-static", "-O2", "-o", out, source], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError("gcc -static failed (is libc6-dev installed?): "
                           + " ".join(done.stderr.split())[:300])
    return out


def probe_tarball(busybox_layer: str, probe: str, dest: str) -> str:
    """A rootfs tarball: the busybox image's files, ``/probe``, a setuid-root copy
    ``/probe-suid`` (for no_new_privs), and ``/exe-script``, a script whose interpreter is
    ``/proc/self/exe`` (CVE-2019-5736's first step)."""
    path = os.path.join(dest, "escape-probe.tar")
    with tarfile.open(path, "w") as tar:
        for name in sorted(os.listdir(busybox_layer)):
            tar.add(os.path.join(busybox_layer, name), arcname=name)
        for arcname, mode in (("probe", 0o755), ("probe-suid", 0o4755)):
            info = tar.gettarinfo(probe, arcname=arcname)
            info.mode, info.uid, info.gid, info.uname, info.gname = mode, 0, 0, "root", "root"
            with open(probe, "rb") as f:
                tar.addfile(info, f)
        script = b"#!/proc/self/exe\nprint('the runtime ran me')\n"
        info = tarfile.TarInfo("exe-script")
        info.mode, info.size = 0o755, len(script)
        tar.addfile(info, io.BytesIO(script))
    return path


def make_probe_image(run: Runner, root: str, source: str) -> str:
    """Build the probe and import ``escape-probe`` into the state root; returns its name."""
    from minidocker import imagecache

    code, _, err = run("run", "--rm", "busybox", "true")  # the built-in image, unpacked
    if code != 0:
        raise RuntimeError(f"busybox does not run: {err.strip()}")
    _, _, lowers = imagecache.resolve(root, "busybox")
    with tempfile.TemporaryDirectory(prefix="mdprobe-") as tmp:
        tarball = probe_tarball(lowers[0], build_probe(source, tmp), tmp)
        code, _, err = run("import", tarball, PROBE_IMAGE)
    if code != 0:
        raise RuntimeError(f"import of the probe image failed: {err.strip()}")
    return PROBE_IMAGE


# -- the host, before and after -----------------------------------------------------------------

def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return f"<{exc.strerror}>"


def host_fingerprint(binary: str | None = None) -> dict[str, str]:
    """What the attacks aim at, read from the host: it must not change."""
    import sys

    binary = os.path.realpath(binary or sys.executable)
    with open(binary, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    st = os.stat(binary)
    found = {
        "core_pattern": _read("/proc/sys/kernel/core_pattern"),
        "sysrq": _read("/proc/sys/kernel/sysrq"),
        "runtime binary": f"{binary} {st.st_size} {st.st_mtime_ns} {digest}",
        # Other work on the machine mounts network namespaces and test directories: those
        # are not the attacks' (each of which would show as a disk, cgroup or probe mount).
        "host mounts": " ".join(sorted(
            point for point in {line.split()[4] for line in
                                _read("/proc/1/mountinfo").splitlines()}
            if "probe" in point or not point.startswith(("/run/netns/", "/tmp/")))),
        "/dev": " ".join(sorted(os.listdir("/dev"))),
        "cgroup hierarchies": " ".join(sorted(line.split(":")[1] for line in
                                              _read("/proc/self/cgroup").splitlines())),
    }
    cgroup_root = "/sys/fs/cgroup"
    for name in sorted(os.listdir(cgroup_root)) if os.path.isdir(cgroup_root) else []:
        agent = os.path.join(cgroup_root, name, "release_agent")
        if os.path.exists(agent):
            found[f"release_agent {name}"] = _read(agent)
    return found
