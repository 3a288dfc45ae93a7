#!/usr/bin/env bash
# Installs what the end-to-end tests need, then builds and tests the whole workspace.
#
#   ./test.sh                 # everything
#   ./test.sh peers           # extra arguments go to `cargo test --workspace`
#
# - Debian packages for the real peers (mosquitto, snmpd, ..., chromium + chromium-driver for the
#   dashboard's browser test), installed only if a command is
#   missing (apt-get update once, then apt-get install; sudo only when not root).
# - .venv with pymodbus==3.16.1 and pyserial (used by tests/peers/modbus_server.py), created or fixed only
#   when missing or at another version.
# - cargo build --workspace --bins, then cargo test --workspace "$@".
# - Supply chain: cargo-deny (licenses, bans, sources; advisories only with a local RustSec
#   database in $CARGO_HOME/advisory-dbs, as CI has no network to fetch one), installed at a
#   pinned version.
# - The fuzz targets' checks run over their seeds on stable in `cargo test` (e2e `fuzz_seeds`).
# - libFuzzer smoke (COLDAISLE_FUZZ_SMOKE=0 skips it on a developer's machine; its cost is in
#   FUZZING.md): each cargo-fuzz target in fuzz/ runs its seeds plus FUZZ_SMOKE_RUNS (2000)
#   inputs (nightly toolchain and cargo-fuzz installed when missing).
#
# Idempotent: when everything is installed it goes straight to cargo.
# Environment: PYTHON (default python3) creates the venv.
set -euo pipefail
cd "$(dirname "$0")"

readonly PYMODBUS_VERSION=3.16.1
readonly VENV=.venv
PYTHON=${PYTHON:-python3}

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (run as root or install sudo)"
    fi
}

# A command on PATH or in an sbin directory (mosquitto and snmpd live in /usr/sbin, which a
# non-root PATH may lack).
have() {
    local path
    { path=$(command -v "$1" 2>/dev/null) && [ -x "$path" ]; } || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

# Debian packages whose commands are missing, one per line.
missing_packages() {
    local pair command package
    for pair in mosquitto:mosquitto mosquitto_passwd:mosquitto \
        mosquitto_pub:mosquitto-clients mosquitto_sub:mosquitto-clients \
        snmpd:snmpd snmpget:snmp snmpwalk:snmp socat:socat mbpoll:mbpoll \
        prometheus-alertmanager:prometheus-alertmanager systemd-analyze:systemd \
        chromium:chromium chromedriver:chromium-driver promtool:prometheus; do
        command=${pair%%:*}
        package=${pair#*:}
        have "$command" || echo "$package"
    done
    # PostgreSQL 15's server binaries are not on PATH (tests/src/postgres.rs starts its own).
    [ -x /usr/lib/postgresql/15/bin/initdb ] || echo postgresql
    # `python3 -m venv` of Debian's python needs python3-venv (ensurepip); only matters when
    # the venv still has to be created.
    if ! venv_ok && command -v dpkg-query >/dev/null 2>&1 &&
        ! dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q 'ok installed'; then
        echo python3-venv
    fi
}

install_packages() {
    local missing
    missing=$(missing_packages | sort -u | paste -sd' ' -)
    if [ -z "${missing// /}" ]; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing commands from Debian packages: $missing; no apt-get here, install them by hand"
    say "installing: $missing"

    # No init system runs in containers and CI: a package's postinst that starts its service
    # (mosquitto, snmpd) must not start daemons on 1883/161 nor fail the install. The standard
    # way is a policy-rc.d that denies starts; add one for the duration of the install if the
    # machine has none (Docker images usually have one already).
    local policy=/usr/sbin/policy-rc.d added_policy=no
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\n# added by coldaisle test.sh during apt-get install\nexit 101\n' > $policy && chmod 755 $policy"
        added_policy=yes
        trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
    fi

    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing; then
        # Typically a postinst that failed to start a service: the files are unpacked, so
        # finish configuring what can be and judge by the commands below, not by apt's status.
        say "apt-get install reported an error; running dpkg --configure -a and checking commands"
        as_root env DEBIAN_FRONTEND=noninteractive dpkg --configure -a || true
    fi

    if [ "$added_policy" = yes ]; then
        as_root rm -f "$policy"
        trap - EXIT
    fi

    local still
    still=$(missing_packages | sort -u | paste -sd' ' -)
    if [ -n "${still// /}" ]; then
        die "still missing after apt-get install: $still"
    fi
}

# The venv runs and has the pinned pymodbus.
venv_ok() {
    [ -x "$VENV/bin/python" ] &&
        [ "$("$VENV/bin/python" -c 'import pymodbus, serial; print(pymodbus.__version__)' 2>/dev/null)" = "$PYMODBUS_VERSION" ]
}

setup_venv() {
    if venv_ok; then
        return 0
    fi
    if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        say "$VENV is broken (its python does not run); recreating it"
        rm -rf "$VENV"
    fi
    if [ ! -e "$VENV" ]; then
        command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: apt-get install -y python3 python3-venv"
        say "creating $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed (Debian: apt-get install -y python3-venv)"
    fi
    say "installing pymodbus==$PYMODBUS_VERSION into $VENV"
    # pyserial: the RTU tests serve Modbus on a socat pty (ModbusSerialServer).
    "$VENV/bin/python" -m pip install --quiet "pymodbus==$PYMODBUS_VERSION" "pyserial==3.5"
    venv_ok || die "$VENV still lacks pymodbus==$PYMODBUS_VERSION"
}

readonly CARGO_DENY_VERSION=0.20.2
readonly CARGO_FUZZ_VERSION=0.13.2
readonly FUZZ_SMOKE_RUNS=${FUZZ_SMOKE_RUNS:-2000}

# A cargo subcommand at a pinned version, installed when missing or at another version.
cargo_tool() {
    local tool=$1 version=$2
    if ! "cargo-$tool" --version 2>/dev/null | grep -qF "$version"; then
        say "installing cargo-$tool $version"
        cargo install --locked "cargo-$tool@$version"
    fi
}

supply_chain() {
    cargo_tool deny "$CARGO_DENY_VERSION"
    cargo deny check licenses bans sources
    # cargo-deny's database directory (deny.toml keeps the default db-path).
    local db="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
    if [ -d "$db" ] && [ -n "$(ls -A "$db")" ]; then
        cargo deny --offline check advisories
    else
        say "advisories NOT checked: no RustSec database in $db (CI has no network to fetch one; run \`cargo deny fetch\` where it has)"
    fi
}

fuzz_smoke() {
    # On by default, so CI runs every target: the sanitizer build of the agent and collector
    # costs about 7 CPU-minutes on a fresh machine, seconds of fuzzing after it (FUZZING.md).
    if [ "${COLDAISLE_FUZZ_SMOKE:-1}" = 0 ]; then
        say "fuzz smoke skipped (COLDAISLE_FUZZ_SMOKE=0)"
        return 0
    fi
    command -v rustup >/dev/null 2>&1 || die "the fuzz smoke needs rustup (for the nightly toolchain)"
    rustup run nightly rustc --version >/dev/null 2>&1 ||
        rustup toolchain install nightly --profile minimal
    cargo_tool fuzz "$CARGO_FUZZ_VERSION"
    local target bin
    # One build of every target, then the binaries directly (`cargo fuzz run` rebuilt per target).
    (cd fuzz && cargo +nightly fuzz build -O)
    bin="${CARGO_TARGET_DIR:-fuzz/target}/x86_64-unknown-linux-gnu/release"
    for target in $(cd fuzz && cargo +nightly fuzz list); do
        say "fuzz smoke: $target ($FUZZ_SMOKE_RUNS runs)"
        mkdir -p "fuzz/corpus/$target"
        "$bin/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
            -runs="$FUZZ_SMOKE_RUNS" -timeout=10 -rss_limit_mb=2048
    done
}

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs)"
install_packages
setup_venv
cargo build --workspace --bins
cargo test --workspace "$@"
supply_chain
fuzz_smoke
