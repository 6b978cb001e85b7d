//! Test support for Clawkeeper: contract fakes and helpers shared by tests.

pub mod fake_model;
