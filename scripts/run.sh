#!/usr/bin/env bash
# THE run command: scripts/run.sh [--dev-fake-model] [app args]
# Installs what is missing, builds the UI and the release app (the tray daemon
# `clawkeeper` and the window process `clawkeeper-window` next to it), then runs the
# daemon on this computer (the default target).
#
# --dev-fake-model: no model account needed. Starts the contract fake model
# (an OpenAI-compatible server on 127.0.0.1 that echoes) and saves it as the
# provider, so the app goes straight to a working assistant that answers
# "Echo: <your message>". For development and demos only.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CK_ROOT"

step "Setup (scripts/setup.sh)"
bash "$CK_ROOT/scripts/setup.sh"

ck_path_add_cargo
CARGO_TARGET_DIR="$(ck_target_dir)"
export CARGO_TARGET_DIR

ck_build_ui

step "cargo build --release: tray daemon, window process, keychain helper and CLI (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
# The keychain helper (crates/cli) must sit next to the daemon: OpenClaw reads its keys through it.
cargo build --release -p clawkeeper-tray-daemon -p clawkeeper-window -p clawkeeper-cli

bin="$CARGO_TARGET_DIR/release/clawkeeper"
[[ -x "$bin" ]] || die "built binary not found: $bin"
for b in clawkeeper-window clawkeeper-keyhelper clawkeeper-cli; do
  [[ -x "$CARGO_TARGET_DIR/release/$b" ]] || die "built binary not found: $b"
done

if [[ "${1:-}" == "--dev-fake-model" ]]; then
  shift
  step "Starting the contract fake model (--dev-fake-model)"
  cargo build --release -p clawkeeper-tests --bin contract-fake-model
  key="dev-fake-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  log="$(mktemp)"
  FAKE_MODEL_KEY="$key" "$CARGO_TARGET_DIR/release/contract-fake-model" >"$log" 2>&1 &
  fake_pid=$!
  trap 'kill $fake_pid 2>/dev/null || true' EXIT
  for _ in $(seq 50); do grep -q 'http://' "$log" && break; sleep 0.1; done
  url="$(grep -o 'http://127.0.0.1:[0-9]*/v1' "$log" | head -n1)"
  [[ -n "$url" ]] || die "the fake model did not start: $(cat "$log")"
  info "fake model at $url"
  printf '%s' "$key" | "$CARGO_TARGET_DIR/release/clawkeeper-cli" provider --kind openai-compatible --base-url "$url" --model echo-1
  step "Starting $bin $*"
  "$bin" "$@"
  exit $?
fi
step "Starting $bin $*"
exec "$bin" "$@"
