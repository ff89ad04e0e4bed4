#!/usr/bin/env bash
# The learner's VM, provisioned by `vagrant up` (see the Vagrantfile): the same setup as a bare
# host, then JupyterLab on the lessons as a systemd service, so that http://127.0.0.1:8888 on
# the learner's computer answers with no manual step.
#
#   bash scripts/vagrant-provision.sh               # as root, inside the VM (Vagrant runs it)
#   bash scripts/vagrant-provision.sh --print-unit  # only print the unit it installs
#
# Steps: scripts/setup.sh (apt packages, the venv, /usr/local/bin/minidocker, doctor, a first
# container) -> /etc/systemd/system/minidocker-lab.service -> enable and (re)start it -> wait
# until JupyterLab answers -> print its URL with the token. Safe to run again
# (`vagrant provision`): an updated unit or code is picked up by the restart.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UNIT=minidocker-lab.service
UNIT_PATH=/etc/systemd/system/$UNIT
PORT=8888

say() { printf '==> %s\n' "$*"; }
die() { printf 'vagrant-provision.sh: %s\n' "$*" >&2; exit 1; }

# 0.0.0.0 inside the guest: Vagrant's forwarded port arrives on the guest's NAT interface, not
# on its loopback. The host side of the forward listens on 127.0.0.1 only (the Vagrantfile), so
# the lab is reachable from the learner's computer and nowhere else. No PrivateTmp: the
# lessons' state roots must stay in /tmp, where `minidocker lab reset` finds them.
unit_text() {
    cat <<UNIT
[Unit]
Description=JupyterLab on the minidocker lessons (minidocker lab)
Documentation=file://$REPO/docs/instructor-guide.md
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
Environment=HOME=/root
WorkingDirectory=$REPO
ExecStart=/usr/local/bin/minidocker lab --ip 0.0.0.0 --port $PORT --notebook-dir $REPO/notebooks
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
UNIT
}

if [[ ${1:-} == --print-unit ]]; then
    unit_text
    exit 0
fi
[[ $# -eq 0 ]] || die "unknown argument $1 (only --print-unit)"
[[ $(id -u) -eq 0 ]] || die "needs root: sudo bash $0"
[[ -d /run/systemd/system ]] || die "needs systemd to run JupyterLab as a service"

bash "$REPO/scripts/setup.sh"

say "installing $UNIT_PATH (JupyterLab on port $PORT)"
unit_text >"$UNIT_PATH.tmp"
mv -f "$UNIT_PATH.tmp" "$UNIT_PATH"
systemctl daemon-reload
systemctl enable --quiet "$UNIT"
systemctl restart "$UNIT"

# The venv's python asks, with the token: the box may have no curl.
answers() {
    "$REPO/.venv/bin/python" - "$PORT" <<'PY'
import sys, urllib.request
from minidocker.commands.lab import default_token_file
token = open(default_token_file()).read().strip()
url = f"http://127.0.0.1:{sys.argv[1]}/api/status?token={token}"
try:
    sys.exit(0 if urllib.request.urlopen(url, timeout=5).status == 200 else 1)
except OSError:
    sys.exit(1)
PY
}
for _ in $(seq 120); do
    if HOME=/root answers 2>/dev/null; then
        say "JupyterLab is up. On this computer, open:"
        HOME=/root /usr/local/bin/minidocker lab url --port "$PORT"
        say "(again later: vagrant ssh -c 'sudo minidocker lab url')"
        exit 0
    fi
    sleep 1
done
systemctl --no-pager status "$UNIT" || true
die "JupyterLab did not answer on port $PORT within 2 minutes: journalctl -u $UNIT says why"
