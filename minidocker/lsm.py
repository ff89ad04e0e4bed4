"""Linux Security Modules: AppArmor and SELinux, the mandatory access control on top.

Capabilities and seccomp are the process's own limits; an LSM is a policy the *host* writes
about what a labelled program may touch, checked by hooks all over the kernel, and which root
inside the container cannot change. The article lists the hardening options of its day
(TOMOYO, AppArmor and SELinux as LSMs; GRSEC, PaX and ASLR as hardening); :data:`LSMS` says
where each stands now, and the notebook prints it.

**AppArmor** confines programs by path. Docker loads a profile called ``docker-default`` and
runs every container under it; it denies mounting, writing most of /proc/sys and /sys, reading
/proc/kcore-like files, and ptrace outside the container. minidocker does the same with
:data:`DEFAULT_PROFILE` (``minidocker-default``), written after Docker's template, when
AppArmor is enabled: it is loaded once with ``apparmor_parser`` (the one tool that compiles
profiles, called from one place), and a container's process moves into it by writing
``changeprofile minidocker-default`` to ``/proc/self/attr/apparmor/current`` in its last steps
before execve. (runc writes ``exec ...`` to ``attr/exec`` instead, to switch at the exec itself;
but AppArmor clears the parent-death signal whenever an exec changes the profile, and a
foreground container must die with its ``minidocker run``. Switched before, the exec keeps the
profile, as the profile's ``file,`` rule allows, and the signal is armed again after the
switch.) ``--security-opt apparmor=unconfined|PROFILE``
chooses another. Where AppArmor is absent (the development machines), nothing is applied and
``doctor``, ``inspect`` and the notebook say so.

**SELinux** labels every file and process; Docker (with ``--selinux-enabled``) gives each
container a type and a unique MCS category pair so that two containers cannot read each
other's files. minidocker reports whether SELinux is present and enforcing, and does not
label containers (``--security-opt label=disable`` is accepted, other labels are refused).

Only one "major" LSM is active at a time on most kernels; /sys/kernel/security/lsm lists the
stack.

Notebook: ``03_capabilities``. Man pages: apparmor(7), apparmor_parser(8), selinux(8),
proc(5) (``/proc/[pid]/attr``).
"""

from __future__ import annotations

import os

from minidocker import syscalls
from minidocker.errors import UsageError

DEFAULT_PROFILE_NAME = "minidocker-default"

# The article's list (section 3, "0x4"), in its order, and where each stands now.
LSMS: tuple[tuple[str, str], ...] = (
    ("TOMOYO (LSM)", "still in the kernel; path-based like AppArmor; no container runtime uses "
                     "it by default"),
    ("AppArmor (LSM)", "Ubuntu, Debian (on by default since Debian 10), SUSE: Docker runs every "
                       "container under docker-default where it is enabled"),
    ("SELinux (LSM)", "Fedora, RHEL: podman labels every container (container_t + a unique MCS "
                      "category pair); Docker only with --selinux-enabled"),
    ("GRSEC", "never merged upstream; public patches stopped in 2017; several ideas landed in "
              "mainline (hardened usercopy, refcount overflow checks)"),
    ("PaX", "likewise out of tree; its memory protections (W^X, ASLR) are in mainline now"),
    ("ASLR", "in mainline since 2.6.12, on by default (/proc/sys/kernel/randomize_va_space = 2)"),
    ("templates with AppArmor / SELinux", "today: runtime defaults (docker-default, "
                                          "container_t) rather than per-image templates"),
    ("custom access control", "seccomp profiles (Docker's default since 1.10, 2016) and user "
                              "namespaces, which the article does not mention; Landlock (5.13) "
                              "lets a program sandbox itself"),
)

# Written after Docker's docker-default template (moby profiles/apparmor/template.go).
DEFAULT_PROFILE = """#include <tunables/global>

profile minidocker-default flags=(attach_disconnected,mediate_deleted) {
  #include <abstractions/base>

  network,
  capability,
  file,
  umount,
  signal (receive) peer=unconfined,
  signal (send,receive) peer=minidocker-default,

  deny @{PROC}/* w,   # deny write for all files directly in /proc (not in a subdir)
  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,
  deny @{PROC}/sys/[^k]** w,
  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,
  deny @{PROC}/sysrq-trigger rwklx,
  deny @{PROC}/kcore rwklx,

  deny mount,

  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,

  ptrace (trace,read,tracedby,readby) peer=minidocker-default,
}
"""


class LsmStatus:
    """What this host has: present (built in) and active (enabled / enforcing)."""

    __slots__ = ("apparmor_present", "apparmor_enabled", "selinux_present", "selinux_enforcing",
                 "stack")

    def __init__(self, apparmor_present: bool, apparmor_enabled: bool, selinux_present: bool,
                 selinux_enforcing: bool, stack: list[str]) -> None:
        self.apparmor_present, self.apparmor_enabled = apparmor_present, apparmor_enabled
        self.selinux_present, self.selinux_enforcing = selinux_present, selinux_enforcing
        self.stack = stack

    def as_dict(self) -> dict[str, object]:
        return {s: getattr(self, s) for s in self.__slots__}

    def summary(self) -> str:
        def one(name: str, present: bool, active: bool, word: str) -> str:
            if not present:
                return f"{name} not present"
            return f"{name} present, {word if active else 'not ' + word}"
        parts = [one("AppArmor", self.apparmor_present, self.apparmor_enabled, "enabled"),
                 one("SELinux", self.selinux_present, self.selinux_enforcing, "enforcing")]
        if self.stack:
            parts.append("LSM stack: " + ",".join(self.stack))
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"LsmStatus({self.summary()})"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:  # absent or unreadable: that is the answer
        return None


def status(sys_root: str = "/sys") -> LsmStatus:
    """Read the host's LSM state from sysfs (a temp dir in tests)."""
    apparmor = _read(os.path.join(sys_root, "module/apparmor/parameters/enabled"))
    enforce = _read(os.path.join(sys_root, "fs/selinux/enforce"))
    stack = _read(os.path.join(sys_root, "kernel/security/lsm"))
    return LsmStatus(apparmor is not None, apparmor == "Y", enforce is not None,
                     enforce == "1", stack.split(",") if stack else [])


def profile_for(option: str | None, privileged: bool, host: LsmStatus) -> str:
    """The AppArmor profile a container runs under ("" for none), Docker's rules:
    ``apparmor=NAME`` wins; privileged runs unconfined; else the default where enabled."""
    if option is not None:
        return "" if option == "unconfined" else option
    if privileged or not host.apparmor_enabled:
        return ""
    return DEFAULT_PROFILE_NAME


def check_label(option: str) -> None:
    if option not in ("disable", "disabled"):
        raise UsageError(f"--security-opt label={option}: SELinux labels are not supported by "
                         "minidocker (label=disable is accepted)")


def ensure_loaded(name: str, text: str = DEFAULT_PROFILE) -> None:
    """Load (or replace) the default profile with apparmor_parser, once per boot."""
    if _loaded(name):
        return
    if name != DEFAULT_PROFILE_NAME:
        raise UsageError(f"AppArmor profile {name!r} is not loaded (apparmor_parser -r FILE)")
    import shutil
    import subprocess

    parser = shutil.which("apparmor_parser")
    if parser is None:
        raise UsageError("AppArmor is enabled but apparmor_parser is missing: apt-get install "
                         "apparmor (or --security-opt apparmor=unconfined)")
    done = subprocess.run([parser, "-Kr"], input=text, text=True, capture_output=True)
    if done.returncode != 0:
        raise UsageError(f"apparmor_parser could not load {name}: "
                         + " ".join(done.stderr.split()))


def _loaded(name: str) -> bool:
    profiles = _read("/sys/kernel/security/apparmor/profiles") or ""
    return any(line.split(" (")[0] == name for line in profiles.splitlines())


def change_profile(profile: str) -> None:
    """Move this process into ``profile`` now (aa_change_profile(2)), not at the next exec:
    an exec that changes the profile clears the parent-death signal (apparmor's
    bprm_committing_creds), which then could not be armed again."""
    path = "/proc/self/attr/apparmor/current"
    if not os.path.exists(path):
        path = "/proc/self/attr/current"  # kernels before 5.8 have no per-LSM directory
    syscalls.write_file(path, f"changeprofile {profile}")
