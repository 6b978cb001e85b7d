//! clawkeeper-core: everything Clawkeeper does, with no UI. The desktop app (`src-tauri`)
//! and the command line (`crates/cli`) are thin faces over this crate.

pub mod app;
pub mod audit;
pub mod cloud;
pub mod gateway;
pub mod http;
#[cfg(unix)]
pub mod ipc;
pub mod local;
pub mod openai;
pub mod openrouter;
pub mod paths;
pub mod problem;
pub mod provision;
pub mod remote;
pub mod rotation;
pub mod secret;
pub mod server;
pub mod ssh;
pub mod store;
pub mod tailnet;
pub mod time;
pub mod usage;
pub mod vault;

pub use problem::{Problem, UserFacing};
pub use secret::Secret;
