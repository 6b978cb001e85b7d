//! The person's own server as an instance: connecting it over SSH (first contact, the
//! app's own key), opening sessions to it later, and reaching its gateway through an SSH
//! tunnel. Provisioning (`crate::provision`) and cloud deploys (`crate::cloud`) build on
//! this.

pub mod connect;
pub mod deploy;
pub mod link;
pub mod ops;
pub mod support;

pub use connect::{adopt, open_session, Connected, FirstLogin};
pub use link::{ServerLink, REMOTE_GATEWAY_PORT};
