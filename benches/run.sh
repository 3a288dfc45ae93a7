#!/usr/bin/env bash
# Reruns every benchmark of BENCHMARKS.md (release builds), at sizes small enough for the whole
# run to take under 15 minutes (BUDGET, 900 s) on 2 cores after the build: each benchmark has
# its own limit (its share of the budget, from the wall times in BENCHMARKS.md and timed runs;
# see "The last full run of benches/run.sh"), and one that overruns it is stopped and reported
# as FAILED; the total wall time is printed at the end and a total over BUDGET fails too. It
# rewrites BENCHMARKS.md's machine line and
# the tables between `<!-- run.sh:NAME -->` and `<!-- /run.sh:NAME -->` markers with this
# run's output. Each block starts with the command, the date, the machine (cores, memory) and
# the peer versions of the run that wrote it.
#
#   benches/run.sh            # everything
#   benches/run.sh fleet      # only the benchmarks whose name contains "fleet"
#
# Names: delivery, detectors, notify, notify-20k, notify-100k, modbus, snmp, chaos-outage,
# step, state-save, ingest-bounds, analysis, history, report, retention, store-backends,
# detect-eval, fleet, fleet-faults, fleet-peers. Three sizes each (smaller than the largest of
# their sections, which compare runs by hand). The full output of each goes to
# $RESULTS/NAME.txt (printed at the end); every benchmark's block is in BENCHMARKS.md, either
# in its own section or in "The last full run of benches/run.sh"; its wall time goes to the
# `times` block.
#
# Never run by ./test.sh or CI: benchmarks assert nothing and take minutes.
#
# Peers come from Debian packages, installed only when a command is missing (apt-get update
# once, then apt-get install -y): snmpd snmp mosquitto socat prometheus-snmp-exporter
# collectd-core. The Modbus benchmark needs .venv with pymodbus (created like ./test.sh does:
# python3 -m venv .venv && .venv/bin/pip install pymodbus==3.16.1 pyserial); store-backends
# needs PostgreSQL's binaries (./test.sh installs them); detect-eval the NAB and SKAB mirrors
# (see its section).
#
# Environment: CARGO_TARGET_DIR (default /tmp/release-target), RESULTS (default
# $CARGO_TARGET_DIR/bench-results/<UTC time>), NO_BUILD=1 to run the binaries already built,
# LIMIT (seconds) to give every benchmark that limit instead of its own (a slower machine),
# BUDGET (default 900) the seconds all benchmarks together may take.
# A benchmark that fails is reported and the others still run; the exit status is then 1.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/release-target}
readonly ONLY=${1:-}
readonly BIN=$CARGO_TARGET_DIR/release
RESULTS=${RESULTS:-$CARGO_TARGET_DIR/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
readonly RESULTS
readonly DOC=BENCHMARKS.md
# Every benchmark's own limit unless set (s); the whole run's budget (s), build excluded.
readonly LIMIT=${LIMIT:-}
readonly BUDGET=${BUDGET:-900}

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

# What the figures depend on, read once: date, machine and peer versions.
read_versions() {
    RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
    CORES=$(nproc)
    MEMORY=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
    PEERS=$(printf 'snmpd %s, mosquitto %s, snmp_exporter %s, collectd %s, pymodbus %s' \
        "$(snmpd -v 2>/dev/null | awk '/version/ { print $NF; exit }')" \
        "$(mosquitto -h 2>/dev/null | awk '/version/ { print $3; exit }')" \
        "$(prometheus-snmp-exporter --version 2>&1 | awk '{ print $3; exit }')" \
        "$(dpkg-query -W -f='${Version}' collectd-core 2>/dev/null || echo absent)" \
        "$(.venv/bin/python -c 'import pymodbus; print(pymodbus.__version__)' 2>/dev/null || echo absent)")
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
}

# The machine line: versions of everything the figures depend on and this run's wall time.
machine_line() {
    printf 'Last `benches/run.sh%s`: %s; %s cores (%s), %s memory; %s; %s; load average before the run: %s, after: %s; wall time %s s (build %s s, benchmarks %s s)%s.\n' \
        "${ONLY:+ $ONLY}" "$RUN_DATE" "$CORES" "$CPU" "$MEMORY" "$(rustc --version)" "$PEERS" \
        "$LOAD_BEFORE" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(($(date +%s) - run_started))" \
        "$build_s" "$(($(date +%s) - started))" "${failed:+; failed:$failed}"
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

# Says loudly that benchmark NAME failed, and why.
fail() {
    local name=$1
    shift
    say '**************************************************************************'
    say "FAILED: $name: $*"
    say '**************************************************************************'
    failed="$failed $name"
}

# Runs benchmark NAME within LIMIT seconds (command after them) into $RESULTS/NAME.txt unless
# ONLY excludes it; the Markdown table rows (lines starting with `|`) and headings (`#`), with
# the command, go into its block.
bench() {
    local name=$1 limit=${LIMIT:-$2}
    shift 2
    case "$name" in *"$ONLY"*) ;; *) return 0 ;; esac
    local out=$RESULTS/$name.txt start status=0
    start=$(date +%s)
    say "$name (limit $limit s): $*"
    timeout "$limit" "$@" >"$out" 2>"$RESULTS/$name.err" || status=$?
    if [ "$status" = 124 ]; then
        fail "$name" "took over its limit of $limit s and was stopped; see $out and $RESULTS/$name.err"
        printf '| %s | over %s (stopped) | %s |\n' "$name" "$limit" "$limit" >>"$RESULTS/times.rows"
        return 0
    elif [ "$status" != 0 ]; then
        fail "$name" "exit status $status after $(($(date +%s) - start)) s; see $out and $RESULTS/$name.err"
        printf '| %s | failed (exit %s) after %s | %s |\n' "$name" "$status" "$(($(date +%s) - start))" "$limit" >>"$RESULTS/times.rows"
        return 0
    fi
    local took=$(($(date +%s) - start))
    say "$name: $took s (limit $limit s)"
    printf '| %s | %s | %s |\n' "$name" "$took" "$limit" >>"$RESULTS/times.rows"
    {
        printf '```\n%s\n' "${*#"$BIN"/}"
        printf '# run.sh, %s; %s cores, %s; %s\n' "$RUN_DATE" "$CORES" "$MEMORY" "$PEERS"
        grep -v '^|' "$out" | head -5 || true
        printf '```\n\n'
        # Table rows, and the headings between tables (some benchmarks print several, or none).
        awk '/^\|/ { print; next } /^#+ / { print ""; print; print "" }' "$out"
    } >"$RESULTS/$name.md"
    rewrite_block "$name" "$RESULTS/$name.md"
}

run_started=$(date +%s)
install_peers
read_versions
mkdir -p "$RESULTS"
build_s=0
if [ "${NO_BUILD:-}" != 1 ]; then
    say "building (release) into $CARGO_TARGET_DIR"
    # One invocation: separate ones unify dependency features differently and rebuild each other.
    cargo build --release -q -p coldaisle-agent -p coldaisle-collector -p coldaisle-testkit \
        -p coldaisle-benches --bins --example detector_bench --example notify_bench \
        --example step_bench --example state_save_bench
    build_s=$(($(date +%s) - run_started))
fi
failed=""
started=$(date +%s)
: >"$RESULTS/times.rows"

# NAME, its limit (s), the command. The expected wall times at these sizes add up to about
# 750 s, under the budget; each limit is about 1.3-2x its benchmark's expected time, so one
# that runs away is stopped early and named (BENCHMARKS.md, "The last full run of
# benches/run.sh": the expected times and how each size was chosen).
bench delivery 40 "$BIN/delivery" --records 20000
bench detectors 60 "$BIN/examples/detector_bench" 2000000 20000
bench notify 15 "$BIN/examples/notify_bench" 10000 500
bench notify-20k 15 "$BIN/examples/notify_bench" 20000 500
bench notify-100k 70 "$BIN/examples/notify_bench" 100000 500
bench modbus 30 "$BIN/coldaisle-modbus-bench" 60 3
bench snmp 45 "$BIN/coldaisle-snmp-bench" 200 2
bench chaos-outage 60 "$BIN/coldaisle-chaos" --rounds 1 --outage 20
bench step 30 "$BIN/examples/step_bench"
bench state-save 30 sh -c "for n in 100 500 2000; do $BIN/examples/state_save_bench bytes \$n; done"
bench ingest-bounds 10 "$BIN/ingest_bounds"
bench analysis 30 "$BIN/analysis" --window-hours 24 --skip-replays 10000 30000 100000
bench history 30 "$BIN/history" 30 60 90 # it checks 30 days of samples: fewer days fail
bench report 30 "$BIN/report" 4x25 20x25 4x500
bench retention 30 "$BIN/retention" 10000 30000 100000
bench store-backends 40 "$BIN/store_backends" --sizes 1000,5000,20000 --refresh 1000,10000
bench detect-eval 20 "$BIN/detect_eval"
# The fleet: warm-up past the first detector-state save and reading summaries (60 s), as the
# footprint table needs; 1,000 devices, not 2,000, at the largest size (start-up and the
# collector's ingest grow with it); the faults' jitter over 2 polls per device; the peers with
# 8 s windows (ours grows to at most 32 s, until 0.15 s of CPU), only our default GET size.
bench fleet 270 "$BIN/coldaisle-fleet-bench" --devices 100,500,1000 --warmup 65 --window 15
bench fleet-faults 130 "$BIN/coldaisle-fleet-bench" --devices 100,500,1000 --faults --warmup 15 --window 20
bench fleet-peers 220 "$BIN/coldaisle-fleet-bench" peers --devices 10,20,40 --warmup 3 --window 8 --min-cpu 0.15

total=$(($(date +%s) - started))
{
    printf '| benchmark | wall time s | limit s |\n|---|---|---|\n'
    cat "$RESULTS/times.rows"
    printf '| **all (benchmarks only)** | **%s** | %s |\n' "$total" "$BUDGET"
} >"$RESULTS/times.md"
[ "$total" -le "$BUDGET" ] || [ -n "$ONLY" ] ||
    fail all "the benchmarks took $total s, over the budget of $BUDGET s"
rewrite_block times "$RESULTS/times.md"
machine_line >"$RESULTS/machine.md"
rewrite_block machine "$RESULTS/machine.md"
say "total wall time: $(($(date +%s) - run_started)) s (build $build_s s, benchmarks $total s, budget $BUDGET s); results in $RESULTS"
if [ -n "$failed" ]; then
    say "FAILED:$failed"
    exit 1
fi
