//! Servers at a cloud provider (Hetzner Cloud first): choose a location and a server type
//! with live prices, then create an SSH key, a firewall and the server — without ever
//! leaving an untracked, billed resource behind.
//!
//! * [`hetzner`]: a thin API client (error envelope, rate limits, retries, pagination).
//! * [`journal`]: every resource written down before its create call.
//! * [`deploy`]: the resumable create and the complete delete, on top of both.
//!
//! Every resource carries the labels `clawkeeper-instance=<id>` and `managed-by=clawkeeper`,
//! so that the journal can be reconciled with what the provider really has.

pub mod deploy;
pub mod error;
pub mod hetzner;
pub mod journal;

pub use deploy::{
    create_server, delete_instance, reconcile, Progress, Reconciled, Removed, ServerCreated,
    ServerSpec,
};
pub use error::{Error, Result};
pub use hetzner::HetznerClient;
pub use journal::{Journal, Resource, ResourceKind, ResourceState};

use hetzner::Labels;

/// The label naming the instance a resource belongs to.
pub const LABEL_INSTANCE: &str = "clawkeeper-instance";
/// The label saying Clawkeeper made (and may remove) a resource.
pub const LABEL_MANAGED_BY: &str = "managed-by";
pub const MANAGED_BY: &str = "clawkeeper";
/// The image new servers start from.
pub const DEFAULT_IMAGE: &str = "debian-12";

/// Instance ids used at the provider: they become a label value and part of a hostname, so
/// `[A-Za-z0-9-]`, starting and ending with a letter or digit, at most 52 characters
/// (`clawkeeper-` + id fits the 63 of a hostname label).
pub fn validate_instance_id(id: &str) -> Result<()> {
    let b = id.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 52
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        Ok(())
    } else {
        Err(Error::BadInstanceId(id.to_owned()))
    }
}

/// The labels every resource of `instance_id` carries.
pub fn labels(instance_id: &str) -> Labels {
    Labels::from([
        (LABEL_INSTANCE.to_owned(), instance_id.to_owned()),
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
    ])
}

/// The label selector that finds every resource of `instance_id`.
pub fn label_selector(instance_id: &str) -> String {
    format!("{LABEL_INSTANCE}={instance_id}")
}

/// The name of each of an instance's resources (one per kind, so one name serves all;
/// Hetzner names are unique per kind within a project).
pub fn resource_name(instance_id: &str) -> String {
    format!("clawkeeper-{instance_id}")
}

/// The cloud-init `user_data` for a new server. It holds **no secret**: the gateway token,
/// provider keys and the like go over SSH after boot, because user data is readable from the
/// metadata service by any process on the server and is kept by the provider. It only
/// closes password logins before anything else happens and installs the firewall tool.
pub fn cloud_init(instance_id: &str) -> String {
    // Only characters that are safe in YAML without quoting (ids are validated elsewhere;
    // this keeps the function total).
    let id: String = instance_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(52)
        .collect();
    format!(
        "#cloud-config
# Written by Clawkeeper for instance {id}. Contains no secrets: they arrive over SSH later.
ssh_pwauth: false
disable_root: false
package_update: true
packages:
  - nftables
write_files:
  - path: /etc/ssh/sshd_config.d/10-clawkeeper.conf
    permissions: '0644'
    content: |
      PasswordAuthentication no
      KbdInteractiveAuthentication no
      PermitRootLogin prohibit-password
runcmd:
  - [systemctl, reload, ssh]
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_init_is_small_and_holds_no_secret() {
        let ud = cloud_init("5f0c1d2e-aaaa-bbbb-cccc-0123456789ab");
        assert!(ud.starts_with("#cloud-config\n"));
        assert!(ud.len() < hetzner::MAX_USER_DATA);
        assert!(hetzner::check_user_data(&ud).is_ok());
        let lower = ud.to_lowercase();
        for needle in [
            "private key",
            "begin ",
            "chpasswd",
            "password:",
            "passwd",
            "token",
            "api_key",
            "apikey",
            "sk-",
            "secret:",
        ] {
            assert!(!lower.contains(needle), "user_data contains {needle:?}");
        }
        assert!(ud.contains("PasswordAuthentication no"));
        // Nothing odd in the id makes it into the YAML.
        assert!(!cloud_init("x\nruncmd: [rm]").contains("runcmd: [rm]"));
    }

    #[test]
    fn cloud_instance_ids_fit_labels_and_hostnames() {
        assert!(validate_instance_id("5f0c1d2e-aaaa-bbbb-cccc-0123456789ab").is_ok());
        for bad in ["", "-a", "a-", "a b", "a=b", &"a".repeat(53), "ä"] {
            assert!(validate_instance_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(label_selector("x1"), "clawkeeper-instance=x1");
        assert_eq!(
            labels("x1").get("managed-by").map(String::as_str),
            Some("clawkeeper")
        );
    }
}
