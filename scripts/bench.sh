#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md: scripts/bench.sh [chat|app|deploy|embedded-rss|usage|rotate|all]
# Release builds, run in the same isolated environment as the tests (loopback-only
# network namespace, D-Bus session, unlocked keyring, Xvfb). Prints numbers and ratios.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CK_ROOT"
what="${1:-all}"

bash "$CK_ROOT/scripts/setup.sh" --test
ck_path_add_cargo
CARGO_TARGET_DIR="$(ck_target_dir)"
export CARGO_TARGET_DIR
ck_build_ui

step "Release build (tray daemon, window process, CLI, keychain helper, bench)"
cargo build --release -p clawkeeper-tray-daemon -p clawkeeper-window -p clawkeeper-cli -p clawkeeper-tests \
  --bin clawkeeper --bin clawkeeper-window --bin clawkeeper-cli --bin clawkeeper-keyhelper --bin clawkeeper-bench
cargo build -p clawkeeper-tests --bin dns-recorder # the test environment's DNS stub
step "OpenClaw runtime cache (Clawkeeper's own installer)"
ck_install_openclaw_runtime "$CARGO_TARGET_DIR/release/clawkeeper-cli"

cmds=()
[[ "$what" == chat || "$what" == all ]] && cmds+=("$CARGO_TARGET_DIR/release/clawkeeper-bench chat 20")
[[ "$what" == app || "$what" == all ]] && cmds+=("$CARGO_TARGET_DIR/release/clawkeeper-bench app")
[[ "$what" == deploy || "$what" == all ]] && cmds+=("$CARGO_TARGET_DIR/release/clawkeeper-bench deploy 5 3")
[[ "$what" == embedded-rss || "$what" == all ]] && cmds+=("$CARGO_TARGET_DIR/release/clawkeeper-bench embedded-rss 30")
# usage: ~1.6 GB of generated state in the sandbox's temp dir (deleted after), ~2.5 GB gateway RSS.
[[ "$what" == usage || "$what" == all ]] && cmds+=("$CARGO_TARGET_DIR/release/clawkeeper-bench usage 1000000")
[[ "$what" == rotate || "$what" == all ]] && cmds+=("$CARGO_TARGET_DIR/release/clawkeeper-bench rotate 5")
((${#cmds[@]})) || die "usage: scripts/bench.sh [chat|app|deploy|embedded-rss|usage|rotate|all]"

if [[ "$what" == deploy || "$what" == rotate || "$what" == all ]]; then
  # Built (once, cached) outside the sandbox: they need the Debian mirror and the npm registry.
  step "Provisioning test host image (scripts/testhost-image.sh)"
  CLAWKEEPER_TESTHOST_IMAGE="$(bash "$CK_ROOT/scripts/testhost-image.sh")"
  export CLAWKEEPER_TESTHOST_IMAGE
  step "Offline npm registry for the test hosts (scripts/npm-mirror.sh)"
  CLAWKEEPER_NPM_MIRROR="$(bash "$CK_ROOT/scripts/npm-mirror.sh")"
  export CLAWKEEPER_NPM_MIRROR
fi

step "Machine"
info "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
for c in "${cmds[@]}"; do
  step "$c"
  CLAWKEEPER_TEST_CMD="$c" unshare --net --pid --fork --mount-proc --kill-child bash "$CK_ROOT/scripts/test-inner.sh"
done
