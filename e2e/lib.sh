# shellcheck shell=bash
# Helpers shared by e2e/build-deps, e2e/up, e2e/down and e2e/run: logging, step timing and the
# paths every script agrees on. Sourced, never run.
# shellcheck disable=SC2034 # the variables are for the scripts that source this file

E2E_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_REPO=$(cd "$E2E_HERE/.." && pwd)
# shellcheck source=versions.env
source "$E2E_HERE/versions.env"

# Cache layout: one directory per set of pinned versions, so a version bump never reuses a
# binary built from another version; Go's module and build caches are shared between them.
E2E_CACHE_ROOT=${ALLOT_E2E_CACHE:-$HOME/.cache/allot-e2e}
E2E_CACHE_KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
E2E_BIN=${ALLOT_E2E_BIN:-$E2E_CACHE_ROOT/$E2E_CACHE_KEY/bin}
# Data files that belong to the binaries (kwok's stages), next to bin/.
E2E_SHARE=$(dirname "$E2E_BIN")/share
# Run directory of one control plane: certificates, configs, data, logs, pid files.
E2E_DIR=${ALLOT_E2E_DIR:-/tmp/allot-e2e}

E2E_NAME=$(basename "$0")

log() { printf '[%s %s] %s\n' "$E2E_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$E2E_NAME" "$*" >&2; }
die() {
    printf '[%s] ERROR: %s\n' "$E2E_NAME" "$*" >&2
    exit 1
}

# Milliseconds since the epoch, for step timings.
now_ms() { date +%s%3N; }

# step_begin NAME / step_end: print what a step does and how long it took.
step_begin() {
    E2E_STEP_NAME=$1
    E2E_STEP_T0=$(now_ms)
    log "-> $E2E_STEP_NAME"
}
step_end() {
    local ms=$(($(now_ms) - E2E_STEP_T0))
    log "<- $E2E_STEP_NAME ($(fmt_ms "$ms"))"
}
fmt_ms() { printf '%d.%01ds' $(($1 / 1000)) $((($1 % 1000) / 100)); }

# Marks a run directory as made by e2e/up, so e2e/down never removes anything else.
E2E_MARKER=.allot-e2e-run-dir
