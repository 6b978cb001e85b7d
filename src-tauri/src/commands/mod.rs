//! The commands the UI invokes (`ui/src/api.ts`), one file per domain. Each is a thin call
//! into `clawkeeper-core`; errors reach the UI as `{code, message, hint}` ([`Problem`]).
//!
//! [`Problem`]: clawkeeper_core::Problem

pub mod chat;
pub mod instance;
pub mod keys;
pub mod provider;
pub mod server;
pub mod tailnet;
pub mod usage;
pub mod window;
