//! The person's own tailnet (Tailscale): how the desktop reaches the server privately.
//!
//! - [`dial`]: the [`dial::Tailnet`] trait — one way onto the tailnet, whichever node
//!   provides it.
//! - [`proxy`]: the loopback proxy the chat and the gateway client connect to.

pub mod dial;
pub mod proxy;

pub use dial::{Tailnet, TailnetState};
pub use proxy::TailnetProxy;
