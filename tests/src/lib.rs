//! Test support for Clawkeeper: contract fakes and helpers shared by tests.

pub mod apt_repo;
pub mod cli;
pub mod discord_plugin;
pub mod dns;
pub mod env;
pub mod fake_discord;
pub mod fake_hetzner;
pub mod fake_local_api;
pub mod fake_model;
pub mod fake_openai;
pub mod fake_openrouter;
pub mod fake_tailscale;
pub mod fake_telegram;
pub mod local_window;
pub mod npm_mirror;
pub mod openclaw_state;
pub mod private_keyring;
pub mod rotation_cli;
pub mod scan;
pub mod ssh_cli_remote;
pub mod sshd;
pub mod tailnet_double;
pub mod tailscaled;
pub mod testhost;
pub mod trace_capture;
pub mod webdriver;
