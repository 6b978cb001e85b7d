#!/usr/bin/env bash
# THE run command: scripts/run.sh [app args, e.g. --dev-fake-model]
# Installs what is missing, builds the UI and the release app, then runs it.
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

step "cargo build --release -p clawkeeper (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release -p clawkeeper

bin="$CARGO_TARGET_DIR/release/clawkeeper"
[[ -x "$bin" ]] || die "built binary not found: $bin"
step "Starting $bin $*"
exec "$bin" "$@"
