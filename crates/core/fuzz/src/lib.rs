//! The fuzz targets' logic, as plain functions so that the core's test suite can run it too
//! (`crates/core/tests/parsers_never_panic.rs` includes `checks.rs` by path).
pub mod checks;
