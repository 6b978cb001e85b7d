#!/usr/bin/env bash
# Installs what Clawkeeper needs on a fresh Debian 12 / Ubuntu machine.
# Idempotent: everything already present is skipped.
#
#   scripts/setup.sh          # what building and running the app needs
#   scripts/setup.sh --test   # ... plus what the test suite needs
#
# Environment: CLAWKEEPER_CACHE (default /var/cache/clawkeeper) is where the
# test runtime cache (Node + OpenClaw) is kept.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WITH_TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (usage: scripts/setup.sh [--test])" ;;
  esac
done

APP_PACKAGES=(libwebkit2gtk-4.1-dev build-essential pkg-config libssl-dev libxdo-dev
  libayatana-appindicator3-dev librsvg2-dev file)
TEST_PACKAGES=(xvfb imagemagick webkit2gtk-driver dbus dbus-x11 gnome-keyring
  libsecret-tools dunst xauth iproute2 procps util-linux
  debootstrap systemd-container openssh-server openssh-client zstd curl
  gpg gpg-agent)

# ---------------------------------------------------------------- Debian packages
pkg_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

install_debian_packages() {
  local wanted=("${APP_PACKAGES[@]}")
  ((WITH_TEST)) && wanted+=("${TEST_PACKAGES[@]}")
  step "Checking Debian packages (${#wanted[@]})"
  command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian/Ubuntu only"
  local missing=() p
  for p in "${wanted[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    info "all present"
    return
  fi
  info "missing: ${missing[*]}"
  step "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update
  step "apt-get install ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------- Rust
check_rust() {
  step "Checking the Rust toolchain"
  ck_path_add_cargo
  if ! command -v cargo >/dev/null 2>&1; then
    die "cargo not found. Install Rust (https://rustup.rs: 'rustup default stable') and re-run."
  fi
  info "$(cargo --version)"
  local comp
  for comp in fmt clippy; do
    if ! cargo "$comp" --version >/dev/null 2>&1; then
      if command -v rustup >/dev/null 2>&1; then
        local name=$comp; [[ $comp == fmt ]] && name=rustfmt
        step "Adding the rustup component $name"
        rustup component add "$name" || die "cargo $comp missing and 'rustup component add $name' failed"
      else
        die "cargo $comp is missing (install the rustfmt/clippy components)"
      fi
    fi
  done
}

# ---------------------------------------------------------------- Node / npm
check_node() {
  step "Checking Node.js and npm"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    info "node/npm not found: installing Debian's nodejs and npm"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
  fi
  local v major
  v="$(node --version)"; major="${v#v}"; major="${major%%.*}"
  info "node $v, npm $(npm --version)"
  if ((major < 20)); then
    warn "node $v is old; the UI build (Vite) wants Node >= 20. (The OpenClaw runtime uses its own Node.)"
  fi
}

install_ui_deps() {
  local ui="$CK_ROOT/ui"
  if [[ ! -f "$ui/package.json" ]]; then
    step "No ui/package.json yet: skipping UI dependencies"
    return
  fi
  step "Checking UI dependencies (ui/node_modules)"
  local lock="$ui/package-lock.json" hash_src hash
  if [[ -f "$lock" ]]; then hash_src="$lock"; else hash_src="$ui/package.json"; fi
  hash="$(sha256sum <"$hash_src" | cut -d' ' -f1) node-$CK_NODE_VERSION"
  if [[ -d "$ui/node_modules" && -f "$ui/node_modules/.stamp" && "$(cat "$ui/node_modules/.stamp")" == "$hash" ]]; then
    info "up to date"
    return
  fi
  if [[ -f "$lock" ]]; then
    step "npm ci in ui/ (with Node $CK_NODE_VERSION)"
    (cd "$ui" && PATH="$CK_NODE_BIN:$PATH" npm ci --no-audit --no-fund)
  else
    step "npm install in ui/ (no package-lock.json)"
    (cd "$ui" && PATH="$CK_NODE_BIN:$PATH" npm install --no-audit --no-fund)
    hash="$(sha256sum <"$ui/package.json" | cut -d' ' -f1) node-$CK_NODE_VERSION"
  fi
  printf '%s\n' "$hash" >"$ui/node_modules/.stamp"
}

# ---------------------------------------------------------------- test tools
install_cargo_tools() {
  step "Checking cargo-nextest"
  if command -v cargo-nextest >/dev/null 2>&1; then
    info "$(cargo-nextest --version 2>/dev/null | head -n1)"
  else
    step "cargo install cargo-nextest --locked"
    cargo install cargo-nextest --locked
  fi
  step "Checking tauri-driver"
  if command -v tauri-driver >/dev/null 2>&1; then
    info "$(command -v tauri-driver)"
  else
    step "cargo install tauri-driver --version ^2 --locked (about 2 minutes)"
    cargo install tauri-driver --version '^2' --locked
  fi
}

# ---------------------------------------------------------------- runtime cache
RUNTIME_TMP=""
cleanup_runtime_tmp() { [[ -n "$RUNTIME_TMP" && -d "$RUNTIME_TMP" ]] && rm -rf "$RUNTIME_TMP"; return 0; }

node_cache_ok() {
  [[ -f "$CK_NODE_PREFIX/.complete" && -x "$CK_NODE_BIN/node" ]] &&
    [[ "$(cat "$CK_NODE_PREFIX/.complete")" == "node@$CK_NODE_VERSION" ]] &&
    [[ "$("$CK_NODE_BIN/node" --version 2>/dev/null)" == "v$CK_NODE_VERSION" ]]
}

openclaw_cache_ok() {
  local pj="$CK_OPENCLAW_PREFIX/node_modules/openclaw/package.json"
  [[ -f "$CK_OPENCLAW_PREFIX/.complete" && -f "$pj" ]] &&
    [[ "$(cat "$CK_OPENCLAW_PREFIX/.complete")" == "openclaw@$CK_OPENCLAW_VERSION" ]] &&
    [[ "$("$CK_NODE_BIN/node" -p 'require(process.argv[1]).version' "$pj" 2>/dev/null)" == "$CK_OPENCLAW_VERSION" ]]
}

# Replace $2 with the finished temp dir $1 (same file system, so mv is a rename).
promote() {
  local tmp="$1" dest="$2"
  chmod 755 "$tmp"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  RUNTIME_TMP=""
}

# install_runtime_cache [--node-only]: the pinned Node (always: the UI is built with it,
# since Debian 12's Node 18 is too old for Vite) and, for tests, the pinned OpenClaw.
install_runtime_cache() {
  local ONLY_NODE=0
  [[ "${1:-}" == "--node-only" ]] && ONLY_NODE=1
  step "Checking the runtime cache in $CK_RUNTIME_DIR"
  mkdir -p "$CK_RUNTIME_DIR"
  # One installer at a time (parallel CI runs on the same machine).
  exec 9>"$CK_RUNTIME_DIR/.lock"
  flock 9
  trap cleanup_runtime_tmp EXIT
  # Leftovers of an interrupted run are never used; remove them.
  rm -rf "$CK_RUNTIME_DIR"/.tmp-* 2>/dev/null || true

  if ((ONLY_NODE == 0)) && node_cache_ok && openclaw_cache_ok; then
    info "node $CK_NODE_VERSION and openclaw $CK_OPENCLAW_VERSION: present"
  elif node_cache_ok; then
    info "node $CK_NODE_VERSION: present"
  else
    step "Installing node@$CK_NODE_VERSION into $CK_NODE_PREFIX"
    RUNTIME_TMP="$(mktemp -d "$CK_RUNTIME_DIR/.tmp-node.XXXXXX")"
    npm install --prefix "$RUNTIME_TMP" "node@$CK_NODE_VERSION" --no-audit --no-fund
    local got
    got="$("$RUNTIME_TMP/node_modules/node/bin/node" --version)" || die "installed node does not run"
    [[ "$got" == "v$CK_NODE_VERSION" ]] || die "installed node is $got, expected v$CK_NODE_VERSION"
    printf 'node@%s\n' "$CK_NODE_VERSION" >"$RUNTIME_TMP/.complete"
    promote "$RUNTIME_TMP" "$CK_NODE_PREFIX"
    info "done"
  fi

  if ((ONLY_NODE)) || openclaw_cache_ok; then
    ((ONLY_NODE)) || info "openclaw $CK_OPENCLAW_VERSION: present"
  else
    step "Installing openclaw@$CK_OPENCLAW_VERSION into $CK_OPENCLAW_PREFIX (about a minute)"
    RUNTIME_TMP="$(mktemp -d "$CK_RUNTIME_DIR/.tmp-openclaw.XXXXXX")"
    PATH="$CK_NODE_BIN:$PATH" npm install --prefix "$RUNTIME_TMP" "openclaw@$CK_OPENCLAW_VERSION" \
      --no-audit --no-fund --foreground-scripts
    local pj="$RUNTIME_TMP/node_modules/openclaw/package.json" got
    got="$("$CK_NODE_BIN/node" -p 'require(process.argv[1]).version' "$pj")" || die "openclaw package.json missing after install"
    [[ "$got" == "$CK_OPENCLAW_VERSION" ]] || die "installed openclaw is $got, expected $CK_OPENCLAW_VERSION"
    PATH="$CK_NODE_BIN:$PATH" timeout 120 "$RUNTIME_TMP/node_modules/.bin/openclaw" --version >/dev/null ||
      die "the installed openclaw does not start ('openclaw --version' failed)"
    printf 'openclaw@%s\n' "$CK_OPENCLAW_VERSION" >"$RUNTIME_TMP/.complete"
    promote "$RUNTIME_TMP" "$CK_OPENCLAW_PREFIX"
    info "done"
  fi
  flock -u 9
  exec 9>&-
}

# ---------------------------------------------------------------- main
step "Clawkeeper setup$( ((WITH_TEST)) && echo ' (with test tools)')"
install_debian_packages
check_rust
check_node
# Only the pinned Node here (the UI is built with it). OpenClaw itself is installed by
# Clawkeeper's own installer: by the app on first run, and for the tests by scripts/test.sh.
install_runtime_cache --node-only
install_ui_deps
if ((WITH_TEST)); then
  install_cargo_tools
fi

step "Setup complete"
info "repository:      $CK_ROOT"
info "cargo:           $(command -v cargo)"
if ((WITH_TEST)); then
  info "cargo-nextest:   $(command -v cargo-nextest)"
  info "tauri-driver:    $(command -v tauri-driver)"
  info "WebKitWebDriver: $(command -v WebKitWebDriver || echo 'not found')"
  info "test runtime:    $CK_RUNTIME_DIR   (CLAWKEEPER_TEST_RUNTIME; OpenClaw added by scripts/test.sh)"
  info "  node:          $CK_NODE_BIN/node"
fi
