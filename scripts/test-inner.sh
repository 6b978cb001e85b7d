#!/usr/bin/env bash
# The inside of scripts/test.sh: runs the tests in an isolated environment.
#
# test.sh starts this as PID 1 of a private network + PID namespace
# (`unshare --net --pid --fork --mount-proc`), so the only network is loopback
# and every process a test leaves behind dies when this script ends.
#
# Phase "outer" (default): bring lo up, make a temp root with a fresh HOME,
# start Xvfb, start a D-Bus session bus (dbus-run-session) and re-run this
# script inside it as phase "session". Phase "session": unlocked
# gnome-keyring (Secret Service, random password), then the tests.
#
# Arguments are passed to `cargo nextest run`. For debugging, set
# CLAWKEEPER_TEST_CMD to a shell command to run instead of nextest, e.g.
#   CLAWKEEPER_TEST_CMD='ip addr; secret-tool lookup x y' scripts/test.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SELF="$CK_ROOT/scripts/test-inner.sh"

XVFB_PID=""
KEYRING_PID=""

cleanup_outer() {
  if [[ -n "$XVFB_PID" ]]; then
    kill "$XVFB_PID" 2>/dev/null || true
    wait "$XVFB_PID" 2>/dev/null || true
  fi
  rm -rf "$CK_TEST_ROOT"
}

start_xvfb() {
  step "Starting Xvfb"
  local dfile="$CK_TEST_ROOT/xvfb.display" i
  : >"$dfile"
  # -displayfd: Xvfb picks a free display number and writes it to fd 3.
  Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp -noreset \
    3>"$dfile" >"$CK_TEST_ROOT/xvfb.log" 2>&1 &
  XVFB_PID=$!
  for ((i = 0; i < 100; i++)); do
    [[ -s "$dfile" ]] && break
    kill -0 "$XVFB_PID" 2>/dev/null || { cat "$CK_TEST_ROOT/xvfb.log" >&2; die "Xvfb exited"; }
    sleep 0.1
  done
  [[ -s "$dfile" ]] || { cat "$CK_TEST_ROOT/xvfb.log" >&2; die "Xvfb did not start in 10 s"; }
  DISPLAY=":$(tr -d '[:space:]' <"$dfile")"
  export DISPLAY
  info "DISPLAY=$DISPLAY (pid $XVFB_PID)"
}

# Every name looked up inside the namespace goes to our recording DNS stub on
# 127.0.0.1:53 (answers REFUSED), so tests can fail on any call home. The
# resolv.conf bind mount lives in this run's private mount namespace only.
start_dns_recorder() {
  step "Recording DNS stub on 127.0.0.1:53"
  local bin="${CARGO_TARGET_DIR:?}/debug/dns-recorder"
  [[ -x "$bin" ]] || die "missing $bin (cargo build --workspace --all-targets)"
  export CLAWKEEPER_DNS_LOG="$CK_TEST_ROOT/dns.log"
  : >"$CLAWKEEPER_DNS_LOG"
  "$bin" 127.0.0.1:53 "$CLAWKEEPER_DNS_LOG" &
  printf 'nameserver 127.0.0.1\noptions attempts:1 timeout:1\n' >"$CK_TEST_ROOT/resolv.conf"
  mount --bind "$CK_TEST_ROOT/resolv.conf" /etc/resolv.conf
  info "CLAWKEEPER_DNS_LOG=$CLAWKEEPER_DNS_LOG"
}

phase_outer() {
  step "Isolated network: loopback only"
  ip link set lo up
  ip -brief addr show >&2

  CK_TEST_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/clawkeeper-test.XXXXXX")"
  export CK_TEST_ROOT
  # PID 1 only gets signals it has handlers for.
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap cleanup_outer EXIT

  # Keep the real toolchain and caches: HOME changes below.
  export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
  export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"

  # A fresh home and XDG dirs under the temp root (set before the bus starts,
  # so bus-activated services such as dunst see them too).
  export HOME="$CK_TEST_ROOT/home"
  export XDG_RUNTIME_DIR="$CK_TEST_ROOT/run"
  export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share"
  export XDG_CACHE_HOME="$HOME/.cache" XDG_STATE_HOME="$HOME/.local/state"
  export TMPDIR="$CK_TEST_ROOT/tmp"
  mkdir -p "$HOME" "$TMPDIR" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$XDG_STATE_HOME"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
  unset SSH_AUTH_SOCK GNOME_KEYRING_CONTROL WAYLAND_DISPLAY DISPLAY XAUTHORITY DBUS_SESSION_BUS_ADDRESS
  export NO_AT_BRIDGE=1 # no accessibility bus warnings from GTK

  start_dns_recorder

  # Xvfb before the bus, so bus-activated services get DISPLAY.
  start_xvfb

  step "Starting a D-Bus session bus"
  # The bus and the services it starts (dunst, ...) log to a file; the
  # session phase gets the real stderr back through fd 3.
  local rc=0 buslog="$CK_TEST_ROOT/session-bus.log"
  exec 3>&2
  dbus-run-session -- bash "$SELF" --session "$@" 2>"$buslog" || rc=$?
  exec 3>&-
  if ((rc != 0)) && [[ -s "$buslog" ]]; then
    printf '\n--- session bus log (%s) ---\n' "$buslog" >&2
    tail -n 50 "$buslog" >&2
  fi
  return "$rc"
}

cleanup_session() {
  if [[ -n "$KEYRING_PID" ]]; then
    kill "$KEYRING_PID" 2>/dev/null || true
  fi
  return 0
}

phase_session() {
  # Take the real stderr back (see phase_outer).
  if { true >&3; } 2>/dev/null; then exec 2>&3 3>&-; fi
  trap cleanup_session EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  step "Starting gnome-keyring-daemon (secrets, unlocked)"
  local pw
  pw="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
  eval "$(printf '%s' "$pw" | gnome-keyring-daemon --unlock --components=secrets)"
  unset pw
  # Prove the login collection takes a write without any prompt.
  printf 'probe' | timeout 20 secret-tool store --label='clawkeeper test probe' \
    service clawkeeper-test-probe username probe ||
    die "the keyring does not accept secrets (gnome-keyring-daemon not unlocked?)"
  [[ "$(timeout 20 secret-tool lookup service clawkeeper-test-probe username probe)" == "probe" ]] ||
    die "keyring probe lookup failed"
  timeout 20 secret-tool clear service clawkeeper-test-probe username probe || true
  KEYRING_PID="$(dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null |
    awk '/uint32/ {print $2}')" || true
  info "keyring ready (pid ${KEYRING_PID:-?})"

  export CLAWKEEPER_TEST_RUNTIME="$CK_RUNTIME_DIR"
  export CLAWKEEPER_KEYCHAIN_NAMESPACE="clawkeeper-test"
  # The app's check for a newer OpenClaw would look the public registry up: off here, a
  # test that checks it points it at the offline mirror on loopback.
  export CLAWKEEPER_UPDATE_REGISTRY="off"
  export CARGO_NET_OFFLINE=true # no network in here: fail fast, never hang
  # OpenClaw's Discord plugin for the Discord tests (scripts/test.sh fetched it; a run
  # started some other way takes the cache if it is complete: --present fetches nothing).
  if [[ -z "${CLAWKEEPER_DISCORD_PLUGIN:-}" ]]; then
    CLAWKEEPER_DISCORD_PLUGIN="$(bash "$CK_ROOT/scripts/discord-plugin.sh" --present 2>/dev/null || true)"
  fi
  export CLAWKEEPER_DISCORD_PLUGIN

  step "Environment"
  info "HOME=$HOME"
  info "DISPLAY=$DISPLAY"
  info "DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS"
  info "CLAWKEEPER_TEST_RUNTIME=$CLAWKEEPER_TEST_RUNTIME"
  info "CLAWKEEPER_KEYCHAIN_NAMESPACE=$CLAWKEEPER_KEYCHAIN_NAMESPACE"
  info "CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-}"
  info "CLAWKEEPER_TESTHOST_IMAGE=${CLAWKEEPER_TESTHOST_IMAGE:-}"
  info "CLAWKEEPER_NPM_MIRROR=${CLAWKEEPER_NPM_MIRROR:-}"
  info "CLAWKEEPER_TAILSCALE_BIN=${CLAWKEEPER_TAILSCALE_BIN:-}"
  info "CLAWKEEPER_DISCORD_PLUGIN=${CLAWKEEPER_DISCORD_PLUGIN:-}"

  cd "$CK_ROOT"
  local rc=0
  if [[ -n "${CLAWKEEPER_TEST_CMD:-}" ]]; then
    step "Running CLAWKEEPER_TEST_CMD: $CLAWKEEPER_TEST_CMD"
    bash -c "$CLAWKEEPER_TEST_CMD" || rc=$?
  else
    step "cargo nextest run --workspace --profile ci $*"
    cargo nextest run --workspace --profile ci "$@" || rc=$?
  fi
  return "$rc"
}

if [[ "${1:-}" == "--session" ]]; then
  shift
  phase_session "$@"
else
  phase_outer "$@"
fi
