#!/usr/bin/env bash
# Fuzz the core's parsers of outside data with libFuzzer (cargo-fuzz):
#
#   scripts/fuzz.sh [seconds] [target ...]   # default: 60 s for each target
#
# Targets live in crates/core/fuzz (its own cargo workspace, not built by the test
# command); their invariants are crates/core/fuzz/src/checks.rs, which the normal test
# suite also runs without libFuzzer (crates/core/tests/parsers_never_panic.rs).
#
# - Installs cargo-fuzz if it is missing (cargo install --locked; idempotent).
# - Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly
#   flags (-Zsanitizer=address, ...). CLAWKEEPER_FUZZ_SANITIZER=none runs without
#   AddressSanitizer (faster; the code under test has no unsafe of its own).
# - The seed corpus crates/core/fuzz/corpus/<target>/ is only read; what libFuzzer
#   learns goes to $CLAWKEEPER_CACHE/fuzz/corpus/<target>/ (default
#   /var/cache/clawkeeper), builds to $CLAWKEEPER_CACHE/fuzz/target, crashes to
#   crates/core/fuzz/artifacts/<target>/.
# - Exit status 1 when any target found a crash or broke an invariant (each one's
#   artifact and a reproduce command are printed).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CARGO_FUZZ_VERSION="0.13.2"
ALL_TARGETS=(gateway_frame chat_event proc_net_tcp secret_ref hetzner_response tailscale_response tailscale_local tailscale_serve usage_sessions openrouter_usage openai_admin posture_ss posture_sshd posture_nft posture_kv_stat posture_audit posture_report)

SECONDS_PER_TARGET="${1:-60}"
[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ && "$SECONDS_PER_TARGET" -gt 0 ]] ||
  die "usage: scripts/fuzz.sh [seconds] [target ...] (targets: ${ALL_TARGETS[*]})"
shift $(($# > 0 ? 1 : 0))
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL_TARGETS[@]}")

FUZZ_DIR="$CK_ROOT/crates/core/fuzz"
SANITIZER="${CLAWKEEPER_FUZZ_SANITIZER:-address}"
WORK="$CK_CACHE/fuzz"
mkdir -p "$WORK/corpus" "$WORK/logs" || die "cannot create $WORK (set CLAWKEEPER_CACHE)"

ck_path_add_cargo
if [[ "$(cargo fuzz --version 2>/dev/null || true)" != *"$CARGO_FUZZ_VERSION"* ]]; then
  step "Installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install --locked)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# cargo-fuzz's flags need a nightly compiler; this lets the stable one accept them.
export RUSTC_BOOTSTRAP=1
fuzz_args=(--fuzz-dir "$FUZZ_DIR" --target-dir "$WORK/target" --sanitizer "$SANITIZER")

step "Building the fuzz targets (sanitizer: $SANITIZER)"
(cd "$CK_ROOT/crates/core" && cargo fuzz build "${fuzz_args[@]}")

failed=()
for t in "${TARGETS[@]}"; do
  [[ -d "$FUZZ_DIR/corpus/$t" ]] || die "unknown target $t (targets: ${ALL_TARGETS[*]})"
  step "Fuzzing $t for ${SECONDS_PER_TARGET}s"
  mkdir -p "$WORK/corpus/$t"
  log="$WORK/logs/$t.log"
  # The first corpus dir is where libFuzzer writes; the seeds are read from the second.
  if (cd "$CK_ROOT/crates/core" && cargo fuzz run "${fuzz_args[@]}" "$t" \
    "$WORK/corpus/$t" "$FUZZ_DIR/corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1) >"$log" 2>&1; then
    status="ok"
  else
    status="FAILED"
    failed+=("$t")
  fi
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
  cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -n1 || true)"
  info "$t: $status, ${execs:-?} executions (${speed:-?}/s), ${cov:-cov: ?}; log: $log"
  if [[ "$status" == "FAILED" ]]; then
    grep -E "invariant .* broken|panicked at|ERROR: (libFuzzer|AddressSanitizer)" "$log" | head -n 5 >&2 || true
    artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)"
    if [[ -n "$artifact" ]]; then
      info "artifact: $artifact"
      info "reproduce: (cd crates/core && RUSTC_BOOTSTRAP=1 cargo fuzz run ${fuzz_args[*]} $t $artifact)"
    else
      tail -n 20 "$log" >&2
    fi
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  die "fuzzing found problems in: ${failed[*]}"
fi
step "No crash in ${TARGETS[*]} (${SECONDS_PER_TARGET}s each)"
