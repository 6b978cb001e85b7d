# shellcheck shell=bash
# shellcheck disable=SC2034 # variables are used by the scripts that source this
# Shared settings and helpers for scripts/*.sh. Source it; it exports nothing
# global beyond the calling script's own process.

# Repository root (this file lives in <root>/scripts).
CK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Pinned runtime versions for the test cache.
CK_NODE_VERSION="24.21.0"
CK_OPENCLAW_VERSION="2026.9.6"
# npm for the servers Clawkeeper provisions (crates/core/src/provision/sources.rs NPM_VERSION).
CK_NPM_VERSION="11.19.1"

# Cache locations (outside the clone, reused between runs).
CK_CACHE="${CLAWKEEPER_CACHE:-/var/cache/clawkeeper}"
CK_RUNTIME_DIR="$CK_CACHE/runtime"
CK_NODE_PREFIX="$CK_RUNTIME_DIR/node-$CK_NODE_VERSION"  # same layout as crates/core/src/local/runtime.rs
CK_NODE_BIN="$CK_NODE_PREFIX/node_modules/node/bin"
CK_OPENCLAW_PREFIX="$CK_RUNTIME_DIR/openclaw-$CK_OPENCLAW_VERSION"

step() { printf '\n==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Take the cache lock of directory $1 (created if needed) on fd 9 for the rest of the
# script, so that concurrent runs build a cache entry once.
ck_lock_dir() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock 9
}

# cargo-installed tools (cargo, tauri-driver, ...) live in ~/.cargo/bin.
ck_path_add_cargo() {
  local d="${CARGO_HOME:-$HOME/.cargo}/bin"
  if [[ -d "$d" && ":$PATH:" != *":$d:"* ]]; then
    PATH="$d:$PATH"
  fi
}

# Pick the shared cargo target dir; fall back to the clone when the shared
# one can't be created (e.g. a non-root user without /var/cache rights).
ck_target_dir() {
  local want="${CARGO_TARGET_DIR:-$CK_CACHE/target}"
  if mkdir -p "$want" 2>/dev/null && [[ -w "$want" ]]; then
    printf '%s\n' "$want"
  else
    warn "cannot write $want; using $CK_ROOT/target instead"
    printf '%s\n' "$CK_ROOT/target"
  fi
}

# Build the UI when there is one (ui/package.json) and it has a build script.
ck_build_ui() {
  if [[ -f "$CK_ROOT/ui/package.json" ]]; then
    step "Building the UI (npm run build in ui/)"
    (cd "$CK_ROOT/ui" && PATH="$CK_NODE_BIN:$PATH" npm run build --if-present)
  else
    step "No ui/package.json yet: skipping the UI build"
  fi
}

# Install the pinned OpenClaw (and Node) into the shared runtime cache with
# Clawkeeper's own installer (`clawkeeper-cli install`); a no-op when complete.
ck_install_openclaw_runtime() {
  local cli="$1" home
  home="$(mktemp -d)"
  CLAWKEEPER_HOME="$home" CLAWKEEPER_RUNTIME_DIR="$CK_RUNTIME_DIR" CLAWKEEPER_LOG=warn "$cli" install
  rm -rf "$home"
}
