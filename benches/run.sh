#!/usr/bin/env bash
# Reruns every benchmark of BENCHMARKS.md (release builds), in about 14 minutes on 2 cores
# after the build (the fleet benchmarks 10 min of it, measured), and rewrites BENCHMARKS.md's machine line and the tables between
# `<!-- run.sh:NAME -->` and `<!-- /run.sh:NAME -->` markers with this run's output.
#
#   benches/run.sh            # everything
#   benches/run.sh fleet      # only the benchmarks whose name contains "fleet"
#
# Names: delivery, chaos-outage, modbus, detectors, snmp, notify, fleet, fleet-faults,
# fleet-peers. The full output of each goes to $RESULTS/NAME.txt (printed at the end); tables
# without markers in BENCHMARKS.md (the other sections' prose compares several runs) are
# left as they are: copy figures from the results by hand.
#
# Never run by ./test.sh or CI: benchmarks assert nothing and take minutes.
#
# Peers come from Debian packages, installed only when a command is missing (apt-get update
# once, then apt-get install -y): snmpd snmp mosquitto socat prometheus-snmp-exporter
# collectd-core. The Modbus benchmark needs .venv with pymodbus (created like ./test.sh does:
# python3 -m venv .venv && .venv/bin/pip install pymodbus==3.16.1 pyserial).
#
# Environment: CARGO_TARGET_DIR (default /tmp/release-target), RESULTS (default
# $CARGO_TARGET_DIR/bench-results/<UTC time>), NO_BUILD=1 to run the binaries already built.
# A benchmark that fails is reported and the others still run; the exit status is then 1.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/release-target}
readonly ONLY=${1:-}
readonly BIN=$CARGO_TARGET_DIR/release
RESULTS=${RESULTS:-$CARGO_TARGET_DIR/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
readonly RESULTS
readonly DOC=BENCHMARKS.md

say() { printf 'run.sh: %s\n' "$*" >&2; }

have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}

install_peers() {
    local pair missing=""
    for pair in snmpd:snmpd snmpbulkwalk:snmp mosquitto:mosquitto socat:socat \
        prometheus-snmp-exporter:prometheus-snmp-exporter collectd:collectd-core; do
        have "${pair%%:*}" || missing="$missing ${pair#*:}"
    done
    if [ -n "$missing" ]; then
        say "installing:$missing"
        # No init system here: keep postinst scripts from starting the services (as test.sh).
        local added=no
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
            added=yes
        fi
        DEBIAN_FRONTEND=noninteractive apt-get update
        # shellcheck disable=SC2086 # the package list is meant to split
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
        [ "$added" = no ] || rm -f /usr/sbin/policy-rc.d
    fi
    if ! .venv/bin/python -c 'import pymodbus, serial' 2>/dev/null; then
        say "creating .venv with pymodbus 3.16.1"
        python3 -m venv .venv
        .venv/bin/pip install -q pymodbus==3.16.1 pyserial
    fi
}

# Versions of everything the figures depend on, one Markdown line.
machine_line() {
    local cores mem cpu
    cores=$(nproc)
    mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
    printf 'Last `benches/run.sh%s`: %s; %s cores (%s), %s memory; %s; snmpd %s, mosquitto %s, snmp_exporter %s, collectd %s, pymodbus %s; load average before the run: %s.\n' \
        "${ONLY:+ $ONLY}" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$cores" "$cpu" "$mem" "$(rustc --version)" \
        "$(snmpd -v 2>/dev/null | awk '/version/ { print $NF; exit }')" \
        "$(mosquitto -h 2>/dev/null | awk '/version/ { print $3; exit }')" \
        "$(prometheus-snmp-exporter --version 2>&1 | awk '{ print $3; exit }')" \
        "$(dpkg-query -W -f='${Version}' collectd-core 2>/dev/null || echo absent)" \
        "$(.venv/bin/python -c 'import pymodbus; print(pymodbus.__version__)' 2>/dev/null || echo absent)" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# Replaces the lines between `<!-- run.sh:NAME -->` and `<!-- /run.sh:NAME -->` with FILE.
rewrite_block() {
    local name=$1 file=$2 tmp
    grep -qx "<!-- run.sh:$name -->" "$DOC" || return 0
    tmp=$(mktemp)
    awk -v begin="<!-- run.sh:$name -->" -v end="<!-- /run.sh:$name -->" -v file="$file" '
        $0 == begin { print; while ((getline line < file) > 0) print line; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }' "$DOC" >"$tmp"
    mv "$tmp" "$DOC"
}

# Runs benchmark NAME (command after it) into $RESULTS/NAME.txt unless ONLY excludes it; the
# Markdown table rows (lines starting with `|`), with the command, go into its block.
bench() {
    local name=$1
    shift
    case "$name" in *"$ONLY"*) ;; *) return 0 ;; esac
    local out=$RESULTS/$name.txt start
    start=$(date +%s)
    say "$name: $*"
    if ! timeout 420 "$@" >"$out" 2>"$RESULTS/$name.err"; then
        say "$name failed or took over 7 min; see $out and $RESULTS/$name.err"
        failed="$failed $name"
        return 0
    fi
    say "$name: $(($(date +%s) - start)) s"
    {
        printf '```\n%s\n' "${*#"$BIN"/}"
        grep -v '^|' "$out" | head -5 || true
        printf '```\n\n'
        grep '^|' "$out" || true # some benchmarks print no table
    } >"$RESULTS/$name.md"
    rewrite_block "$name" "$RESULTS/$name.md"
}

install_peers
mkdir -p "$RESULTS"
if [ "${NO_BUILD:-}" != 1 ]; then
    say "building (release) into $CARGO_TARGET_DIR"
    # One invocation: separate ones unify dependency features differently and rebuild each other.
    cargo build --release -q -p coldaisle-agent -p coldaisle-collector -p coldaisle-testkit \
        -p coldaisle-benches --bins --example detector_bench --example notify_bench
fi
failed=""
machine_line >"$RESULTS/machine.md"
started=$(date +%s)

bench delivery "$BIN/delivery" --records 20000
bench detectors "$BIN/examples/detector_bench"
bench notify "$BIN/examples/notify_bench" 10000 500
bench notify-20k "$BIN/examples/notify_bench" 20000 500
bench notify-100k "$BIN/examples/notify_bench" 100000 500
bench modbus "$BIN/coldaisle-modbus-bench" 60 5
bench snmp "$BIN/coldaisle-snmp-bench" 200 5
bench chaos-outage "$BIN/coldaisle-chaos" --rounds 1 --outage 30
bench fleet "$BIN/coldaisle-fleet-bench" --devices 100,500,2000 --warmup 70 --window 30
bench fleet-faults "$BIN/coldaisle-fleet-bench" --devices 100,500,1000 --faults --warmup 20 --window 40
bench fleet-peers "$BIN/coldaisle-fleet-bench" peers --devices 10,20,40 --warmup 5 --window 15

rewrite_block machine "$RESULTS/machine.md"
say "all benchmarks: $(($(date +%s) - started)) s; results in $RESULTS"
if [ -n "$failed" ]; then
    say "failed:$failed"
    exit 1
fi
