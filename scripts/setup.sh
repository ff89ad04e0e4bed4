#!/usr/bin/env bash
# Make a fresh Debian 12 or Ubuntu 24.04 machine ready for minidocker, then run a container.
#
#   bash scripts/setup.sh                    # as root: install, check the host, run the demo
#   SETUP_SKIP_DEMO=1 bash scripts/setup.sh  # install only
#   SETUP_SKIP_DEMO=1 SETUP_TEST_TOOLS=1 bash scripts/setup.sh  # and the tests' tools
#                                            # (scripts/test.sh does this)
#   SETUP_DRY_RUN=1 bash scripts/setup.sh    # print the apt packages it would ask for; no root
#
# Steps: apt packages (skipped when all are installed) -> a venv at <repo>/.venv made with
# the system python3 -> pip install -e "<repo>[test,notebooks]" (skipped when pyproject.toml
# has not changed since) -> /usr/local/bin/minidocker and minidocker-runtime -> minidocker
# doctor -> the demo: minidocker run --rm busybox echo hello. Safe to run again: each step checks before it acts.
set -euo pipefail

# What the project needs from the distribution: python with venv and pip; a static busybox
# for the built-in image; iproute2 and nftables for networking; runc and crun as reference
# runtimes for the benchmarks; util-linux for nsenter/unshare/lsns in the lessons; libseccomp2,
# which compiles the seccomp profile (runc depends on it too); gcc and libc6-dev to build the
# escape suite's static probe (tests/escapes/probe.c); docker-registry, a real registry that
# the registry tests start on 127.0.0.1 with a config of their own. (modprobe
# comes from kmod, which every Debian and Ubuntu install has; a kernel with overlay built in,
# like the CI hosts', needs neither.)
APT_PACKAGES=(
    python3 python3-venv python3-pip
    busybox-static
    iproute2 nftables
    runc crun
    podman conmon fuse-overlayfs  # tests: podman --runtime minidocker-runtime
    skopeo umoci
    util-linux ca-certificates
    procps
    libseccomp2 gcc libc6-dev
    docker-registry
)
# What only the test suite uses, installed when scripts/test.sh (so CI) runs this script
# (SETUP_TEST_TOOLS=1): vagrant, whose offline `vagrant validate` checks the learners'
# Vagrantfile; shellcheck, for the scripts; chromium, the headless browser tests/course opens
# JupyterLab in (Playwright drives it and never downloads a browser of its own). A learner's
# machine or VM does not need a browser and a VM manager inside it.
TEST_APT_PACKAGES=(vagrant shellcheck chromium)
# The one place that knows how the distributions differ. Ubuntu 24.04 has neither test tool as
# a deb: vagrant left its archive (HashiCorp's licence change), and its chromium is a
# transitional package that installs the snap (pulling in snapd and systemd; without a running
# snapd, no browser at all), never a /usr/bin/chromium that Playwright can launch. Their tests
# skip there, each saying why (tests/course/test_vagrant.py, tests/course/test_browser.py).
UBUNTU_LACKS=(vagrant chromium)

# /usr/bin/python3, never a pyenv shim from PATH: the venv's interpreter is then the
# distribution's, and starting it costs no shim.
SYSTEM_PYTHON=/usr/bin/python3

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
LINK=/usr/local/bin/minidocker
RUNTIME_LINK=/usr/local/bin/minidocker-runtime

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }

# SETUP_OS_RELEASE: another os-release file, for the tests of this script.
os_release=${SETUP_OS_RELEASE:-/etc/os-release}
if [[ -r $os_release ]]; then
    # shellcheck disable=SC1090
    . "$os_release"
    case "${ID:-}" in
        debian | ubuntu) ;;
        *) say "warning: made for Debian 12 and Ubuntu 24.04, this is ${PRETTY_NAME:-unknown}" ;;
    esac
fi
if [[ ${SETUP_TEST_TOOLS:-0} == 1 ]]; then
    lacks=()
    if [[ " ${ID:-} ${ID_LIKE:-} " == *" ubuntu "* ]]; then # Ubuntu and its derivatives
        lacks=("${UBUNTU_LACKS[@]}")
    fi
    for pkg in "${TEST_APT_PACKAGES[@]}"; do
        [[ " ${lacks[*]} " == *" $pkg "* ]] || APT_PACKAGES+=("$pkg")
    done
    if ((${#lacks[@]})); then
        say "not installing ${lacks[*]}: Ubuntu has no vagrant deb and ships Chromium only as a snap, so their tests skip (Debian 12 runs them)"
    fi
fi
# A kernel that enables AppArmor confines every container with minidocker-default, which
# apparmor_parser loads: without the package every run fails (a minimal Debian 12 with
# Debian's kernel has AppArmor on and no parser). Docker's packages recommend it likewise.
if [[ $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null) == Y ]]; then
    APT_PACKAGES+=(apparmor)
fi

if [[ ${SETUP_DRY_RUN:-0} == 1 ]]; then
    printf '%s\n' "${APT_PACKAGES[@]}"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "needs root (apt-get, /usr/local/bin, containers): run it as root (sudo bash $0)"

# -- apt packages -----------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
    [[ $status == ii* ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    if [[ " ${missing[*]} " == *" docker-registry "* && -d /run/systemd/system ]]; then
        # Masked first, so that installing it does not start its packaged service (see below).
        systemctl mask --quiet docker-registry.service || true
    fi
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1
    apt-get -qq update
    apt-get -qq install -y --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
else
    say "apt packages already installed"
fi

# docker-registry's package enables and starts a service listening on 0.0.0.0:5000 with its
# packaged config. The tests start their own on 127.0.0.1; nothing else should listen. (On a
# machine where it was installed before this script masked it.)
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null &&
    systemctl is-enabled --quiet docker-registry.service 2>/dev/null; then
    say "stopping and disabling the packaged docker-registry service (tests run their own)"
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi
if [[ -x /etc/init.d/docker-registry ]] && [[ ! -d /run/systemd/system ]] &&
    /etc/init.d/docker-registry status >/dev/null 2>&1; then
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi

# The overlay module loads itself on first mount; loading it now makes doctor's check true.
if ! grep -qw overlay /proc/filesystems && command -v modprobe >/dev/null; then
    modprobe overlay || say "warning: modprobe overlay failed; minidocker doctor says more"
fi

# -- the venv ---------------------------------------------------------------------------------
if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "creating $VENV with $SYSTEM_PYTHON"
    "$SYSTEM_PYTHON" -m venv --clear "$VENV"
fi

# pip takes seconds even when nothing changed, so remember what was installed.
stamp="$VENV/.minidocker-setup"
want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ $have != "$want" || ! -x $VENV/bin/minidocker ]] ||
    ! "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("minidocker")' 2>/dev/null; then
    say "pip install -e ${REPO}[test,notebooks]"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q --no-input \
        --root-user-action=ignore -e "${REPO}[test,notebooks]"
    printf '%s\n' "$want" >"$stamp"
else
    say "python packages already installed"
fi

# Byte-compile now: where PYTHONDONTWRITEBYTECODE is set, every start would recompile.
"$VENV/bin/python" -m compileall -q "$REPO/minidocker" >/dev/null

# The launchers run the venv's interpreter directly with -I -S: minidocker itself needs only the
# standard library, and processing site-packages (with the import hook of the editable install)
# costs up to 10 ms of every `minidocker run`. minidocker-runtime is the OCI runtime face
# (runc's command line) that podman --runtime, containerd and CRI-O are pointed at.
write_launcher() { # PATH MODULE
    cat >"$1.tmp" <<EOF
#!$VENV/bin/python -IS
# $(basename "$1")'s launcher, written by $REPO/scripts/setup.sh
import sys
sys.path.insert(0, "$REPO")
from $2 import main
sys.exit(main())
EOF
    chmod 755 "$1.tmp"
    mv -f "$1.tmp" "$1"
}
write_launcher "$LINK" minidocker.cli
write_launcher "$RUNTIME_LINK" minidocker.ociruntime

if [[ ${SETUP_SKIP_DEMO:-0} == 1 ]]; then
    say "ready (demo skipped): open the lessons with 'sudo minidocker lab' (it prints the URL)"
    exit 0
fi

# -- check the host, then run a container -----------------------------------------------------
say "minidocker doctor"
if ! "$LINK" doctor; then
    die "doctor found problems: fix the ✗ lines above (each has a fix: hint), then run again"
fi

say "minidocker run --rm busybox echo hello"
"$LINK" run --rm busybox echo hello

say "ready: try 'minidocker run -it busybox sh' (as root); open the lessons with 'sudo minidocker lab' (it prints the URL)"
