//! Fuzz target `usage_sessions`: the invariants are in `src/checks.rs` (shared with the
//! core's `tests/parsers_never_panic.rs`); a violated one aborts with its description.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = clawkeeper_core_fuzz::checks::usage_sessions(data) {
        panic!("{violation}");
    }
});
