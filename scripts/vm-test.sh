#!/usr/bin/env bash
# The learners' machine, booted here: a throwaway Debian 12 VM (cgroup v2 only, AppArmor on,
# /tmp on tmpfs) built from Debian's packages, with this repository's HEAD set up inside by
# scripts/setup.sh, running the checks below, then powered off. As root, on a Debian host:
#
#   bash scripts/vm-test.sh                        # every stage (well over an hour here)
#   bash scripts/vm-test.sh unit kernel            # only these stages
#   VM_DIR=/var/tmp/mdvm bash scripts/vm-test.sh   # where the rootfs, disk and results go
#   VM_TESTS="tests/kernel/test_cgroups.py -k oom" bash scripts/vm-test.sh kernel
#                                                  # the kernel stage runs these pytest args
#
#   bash scripts/vm-test.sh provision              # `vagrant up`'s provisioning, systemd as PID 1
#
# Stages: doctor (also checks that overlay loads itself: nothing loads it at boot), hello,
# unit (tests/unit), kernel (tests/kernel), notebooks (nbval, as CI runs it). provision runs
# alone, in a VM of its own that boots systemd (installed in the rootfs for it) instead of the
# PID 1 below: scripts/vagrant-provision.sh as Vagrant runs it (root, no network), then from
# inside the guest: JupyterLab's /api/status answers 200 with the token, minidocker-lab.service
# is enabled and active, and answers again after `systemctl restart` and after a power cycle
# (a second boot of the same disk, which runs nothing but the checks). It does not prove what
# needs a Vagrant provider: the box download, the rsync of the folder, the port forward. The results
# land in $VM_DIR/results/ (one log and one JUnit XML per stage, summary.txt, and report.txt:
# counts per stage and time per lesson, by tools/junitsummary.py); the exit status is
# non-zero if any stage failed. docs/vm-lane.md records the last runs. The first run spends
# ~5 minutes on debootstrap and apt; later runs reuse the rootfs and only refresh the
# repository in it.
#
# Why this shape: KVM is present on the development machines but does not boot guests, so
# qemu emulates the CPU (tcg), ~10x slower than the host: too slow for CI, run it before
# resolving work that touches cgroups, AppArmor or anything the VM differs in. Booting
# Debian's kernel directly with our own PID 1 (below) reaches the tests in ~15 s, where a
# bootloader and systemd would take minutes; that PID 1 mounts what systemd would.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VM_DIR=${VM_DIR:-/var/tmp/minidocker-vm}
ROOTFS=$VM_DIR/rootfs
STAGES=("$@")
VM_TESTS=${VM_TESTS:-tests/kernel}
((${#STAGES[@]})) || STAGES=(doctor hello unit kernel notebooks)
PROVISION=0
[[ " ${STAGES[*]} " != *" provision "* ]] || PROVISION=1

say() { printf '==> %s\n' "$*"; }
die() { printf 'vm-test.sh: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, mkfs): run it as root"
for stage in "${STAGES[@]}"; do
    case $stage in doctor | hello | unit | kernel | notebooks | provision) ;; *) die "unknown stage: $stage" ;; esac
done
((!PROVISION || ${#STAGES[@]} == 1)) || die "provision boots systemd in a VM of its own: run it alone"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if ((${#need[@]})); then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p "$VM_DIR"

# -- the root filesystem: Debian 12 with its kernel, AppArmor and what setup.sh installs ------
if [[ ! -x $ROOTFS/usr/bin/apt-get ]]; then
    say "debootstrap bookworm into $ROOTFS (a few minutes, once)"
    debootstrap --variant=minbase bookworm "$ROOTFS" >"$VM_DIR/debootstrap.log" 2>&1 ||
        die "debootstrap failed: see $VM_DIR/debootstrap.log"
fi
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d" # no service starts in the chroot
chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
binds=(proc sys dev dev/pts)
unbind() { for ((i = ${#binds[@]} - 1; i >= 0; i--)); do umount "$ROOTFS/${binds[i]}" 2>/dev/null || true; done; }
trap unbind EXIT
for m in "${binds[@]}"; do mountpoint -q "$ROOTFS/$m" || mount --bind "/$m" "$ROOTFS/$m"; done
in_chroot() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    DEBIAN_FRONTEND=noninteractive "$@"; }
if ! ls "$ROOTFS"/boot/vmlinuz-* >/dev/null 2>&1; then
    say "installing Debian's kernel, AppArmor and git in the rootfs"
    in_chroot bash -c 'apt-get -qq update && apt-get -qq install -y --no-install-recommends \
        linux-image-amd64 initramfs-tools kmod apparmor git ca-certificates procps util-linux \
        python3 python3-venv' >"$VM_DIR/apt.log" 2>&1 || die "apt in the rootfs failed: see $VM_DIR/apt.log"
fi
if ((PROVISION)) && [[ ! -x $ROOTFS/lib/systemd/systemd ]]; then
    say "installing systemd as the rootfs's init (the provision stage boots it)"
    in_chroot bash -c 'apt-get -qq update && apt-get -qq install -y --no-install-recommends \
        systemd systemd-sysv dbus' >>"$VM_DIR/apt.log" 2>&1 || die "apt in the rootfs failed: see $VM_DIR/apt.log"
fi
say "this repository's HEAD ($(git -C "$REPO" rev-parse --short HEAD)) into the rootfs; setup.sh there"
rm -rf "$ROOTFS/root/project"
git clone -q "$REPO" "$ROOTFS/root/project"
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/tmp/host-ca.crt" # pip in a chroot: the host's CAs
in_chroot SETUP_SKIP_DEMO=1 PIP_CERT=/tmp/host-ca.crt bash -c 'cd /root/project && bash scripts/setup.sh' \
    >"$VM_DIR/setup.log" 2>&1 || die "setup.sh in the rootfs failed: see $VM_DIR/setup.log"
rm -f "$ROOTFS/tmp/host-ca.crt"
unbind
trap - EXIT

# -- PID 1 of the VM: what systemd would mount, then the stages ----------------------------------
cat >"$ROOTFS/vm-init" <<'INIT'
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 none /sys/fs/cgroup
echo "+cpu +cpuset +io +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
mount -t securityfs securityfs /sys/kernel/security # AppArmor loads profiles through it
mount -t mqueue mqueue /dev/mqueue; mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp # a tmpfs /tmp, as many VMs have
# No modprobe overlay: minidocker must load it itself, as after a reboot.
hostname learner-vm; ip link set lo up; mount -o remount,rw /
R=/results; rm -rf $R; mkdir -p $R
exec > >(tee -a $R/all.log) 2>&1
stage() { # NAME TIMEOUT COMMAND...
    local name=$1 limit=$2 start; shift 2; start=$(date +%s)
    echo "### BEGIN $name"
    timeout -k 10 "$limit" "$@" 2>&1 | tee $R/$name.log
    local rc=${PIPESTATUS[0]}
    echo "### END $name rc=$rc secs=$(($(date +%s) - start))"
    echo "$name rc=$rc secs=$(($(date +%s) - start))" >>$R/summary.txt; sync
}
{ uname -r; cat /sys/fs/cgroup/cgroup.controllers; cat /sys/module/apparmor/parameters/enabled
  grep -c overlay /proc/filesystems; } >$R/env.txt 2>&1
cd /root/project; export PYTHONDONTWRITEBYTECODE=1 PATH=/root/project/.venv/bin:$PATH
for stage in $(cat /stages); do
    case $stage in
    doctor) stage doctor 900 minidocker doctor ;;
    hello) stage hello 900 minidocker run --rm busybox echo hello ;;
    unit) stage unit 3600 python -m pytest -q -rfEs -p no:cacheprovider \
        --junitxml=$R/unit.xml tests/unit ;;
    kernel) stage kernel 10800 python -m pytest -q -rfEs -p no:cacheprovider \
        --junitxml=$R/kernel.xml $(cat /kernel-tests) ;;
    notebooks) stage notebooks 7200 python -m pytest -q -rfEs -p no:cacheprovider --nbval-lax \
        --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg \
        --junitxml=$R/notebooks.xml notebooks/ ;;
    esac
done
echo "### ALL DONE"; sync; echo o >/proc/sysrq-trigger; sleep 30
INIT
chmod 755 "$ROOTFS/vm-init"
printf '%s\n' "${STAGES[@]}" >"$ROOTFS/stages"
printf '%s\n' "$VM_TESTS" >"$ROOTFS/kernel-tests"

# -- the provision stage: systemd is PID 1, and this oneshot unit runs the checks ---------------
# The first boot provisions as `vagrant up` does; the second (same disk) only checks that the
# enabled service came back by itself. Each boot ends with a poweroff, which ends qemu.
if ((PROVISION)); then
    cat >"$ROOTFS/vm-provision" <<'CHECKS'
#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
REPO=/root/project UNIT=minidocker-lab.service R=/results WAIT=900 # seconds; emulation is slow
lab_answers() { # the status of JupyterLab's /api/status with the token, as vagrant-provision.sh asks
    "$REPO/.venv/bin/python" - <<'PY'
import urllib.request
from minidocker.commands.lab import default_token_file
token = open(default_token_file()).read().strip()
url = f"http://127.0.0.1:8888/api/status?token={token}"
try:
    print(urllib.request.urlopen(url, timeout=10).status)
except OSError as e:
    print(e)
PY
}
lab_is_up() { # WHEN: enabled, active, and answering 200 within $WAIT seconds
    local start=$SECONDS answer=''
    until [[ $answer == 200 ]] || ((SECONDS - start > WAIT)); do
        sleep 2; answer=$(cd "$REPO" && lab_answers 2>&1 | tail -n 1)
    done
    echo "$1: /api/status answered ${answer:-nothing} after $((SECONDS - start)) s;" \
        "$UNIT is $(systemctl is-enabled $UNIT) and $(systemctl is-active $UNIT)"
    [[ $answer == 200 && $(systemctl is-enabled $UNIT) == enabled && $(systemctl is-active $UNIT) == active ]]
}
case ${1:-} in
provision) # as Vagrant's shell provisioner runs it: as root, from the repository
    bash "$REPO/scripts/vagrant-provision.sh" || exit
    lab_is_up "after vagrant-provision.sh" || exit
    before=$(systemctl show -p MainPID --value $UNIT)
    systemctl restart $UNIT
    lab_is_up "after systemctl restart" || exit
    after=$(systemctl show -p MainPID --value $UNIT)
    echo "the lab's main process: $before, then $after"; [[ $before != "$after" ]] || exit
    echo "docker-registry.service (its package enables it): $(systemctl is-enabled docker-registry)"
    [[ $(systemctl is-active docker-registry) != active ]] || exit
    echo "provisioned: JupyterLab answers" ;;
reboot) # nothing is run: the enabled service must come up at boot by itself
    lab_is_up "after a power cycle" || exit
    echo "after the power cycle: JupyterLab answers" ;;
*) # the unit's entry: the boot's stage, its log and summary line, then poweroff
    mkdir -p $R; stage=provision; [[ ! -s $R/provision.log ]] || stage=reboot
    exec > >(tee -a $R/all.log) 2>&1
    { uname -r; cat /sys/fs/cgroup/cgroup.controllers; cat /sys/module/apparmor/parameters/enabled
      grep -c overlay /proc/filesystems; echo "PID 1: $(cat /proc/1/comm);"
      echo "links:" /sys/class/net/*; } >$R/env.txt 2>&1 # no network card: only lo
    echo "$stage: its unit started $(cut -d' ' -f1 /proc/uptime) s after the kernel" >>$R/boot.txt
    start=$SECONDS; echo "### BEGIN $stage"
    timeout -k 10 2400 "$0" $stage 2>&1 | tee $R/$stage.log
    rc=${PIPESTATUS[0]}
    echo "### END $stage rc=$rc secs=$((SECONDS - start))"
    echo "$stage rc=$rc secs=$((SECONDS - start))" >>$R/summary.txt
    journalctl -b --no-pager -u $UNIT >$R/$stage-lab-journal.log 2>&1
    journalctl -b --no-pager -p warning >$R/$stage-warnings.log 2>&1
    sync; systemctl poweroff --no-block ;;
esac
CHECKS
    chmod 755 "$ROOTFS/vm-provision"
    cat >"$ROOTFS/etc/systemd/system/vm-stages.service" <<'UNIT'
[Unit]
Description=The VM lane's provision stage (scripts/vm-test.sh)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/vm-provision
TimeoutStartSec=infinity
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
UNIT
    mkdir -p "$ROOTFS/etc/systemd/system/multi-user.target.wants"
    ln -sf /etc/systemd/system/vm-stages.service "$ROOTFS/etc/systemd/system/multi-user.target.wants/"
fi

say "making the disk and booting (qemu, software emulation)"
rm -f "$VM_DIR/disk.img"
truncate -s 10G "$VM_DIR/disk.img"
mkfs.ext4 -q -F -d "$ROOTFS" "$VM_DIR/disk.img"
kernel=$(find "$ROOTFS/boot" -name 'vmlinuz-*' | sort -V | tail -1)
initrd=$(find "$ROOTFS/boot" -name 'initrd.img-*' | sort -V | tail -1)
boot() { # SECONDS SERIAL_LOG QEMU_ARGS...: until the guest powers off (or the time is up)
    local limit=$1 log=$2; shift 2
    timeout "$limit" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -nographic \
        -no-reboot -kernel "$kernel" -initrd "$initrd" \
        -drive "file=$VM_DIR/disk.img,if=virtio,format=raw" "$@" >"$log" 2>&1 || true
}
started=$(date +%s)
if ((PROVISION)); then # systemd as init, and no network card: provisioning must work offline
    for log in serial.log serial-reboot.log; do
        boot 3600 "$VM_DIR/$log" -m 4G -nic none \
            -append "root=/dev/vda rw console=ttyS0 cgroup_no_v1=all panic=-1"
    done
    STAGES=(provision reboot)
else
    boot 14400 "$VM_DIR/serial.log" -m 6G \
        -append "root=/dev/vda rw console=ttyS0 init=/vm-init cgroup_no_v1=all panic=-1"
fi

# -- the results, read back from the disk ----------------------------------------------------------
rm -rf "$VM_DIR/results"
mnt=$(mktemp -d)
mount -o loop,ro,noload "$VM_DIR/disk.img" "$mnt" # noload: the guest powered off mid-journal
cp -r "$mnt/results" "$VM_DIR/results" 2>/dev/null || true
umount "$mnt"
rmdir "$mnt"
[[ -s $VM_DIR/results/summary.txt ]] || die "the VM ran no stage: see $VM_DIR/serial.log"
say "$(date -u +%F) $(( ($(date +%s) - started) / 60 )) min in the VM; $(tr '\n' ' ' <"$VM_DIR/results/env.txt")"
cat "$VM_DIR/results/summary.txt"
for stage in "${STAGES[@]}"; do
    tail -n 1 "$VM_DIR/results/$stage.log" 2>/dev/null | sed "s/^/  $stage: /"
done
{ # counts per stage, and the time of each lesson (one nbval file is one lesson)
    for stage in unit kernel; do
        [[ ! -s $VM_DIR/results/$stage.xml ]] || python3 "$REPO/tools/junitsummary.py" \
            "$VM_DIR/results/$stage.xml"
    done
    [[ ! -s $VM_DIR/results/notebooks.xml ]] || python3 "$REPO/tools/junitsummary.py" \
        --per-file "$VM_DIR/results/notebooks.xml"
} | tee "$VM_DIR/results/report.txt"
! grep -qv ' rc=0 ' "$VM_DIR/results/summary.txt"
