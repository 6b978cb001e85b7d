//! Secrets in memory: a newtype that zeroizes on drop, never prints, never serializes.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

/// A secret value (API key, gateway token). `Debug` and `Display` print `<redacted>`;
/// there is deliberately no `Serialize`. The only way to the bytes is [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// A new random secret: `bytes` of OS randomness, URL-safe base64 without padding.
    pub fn random(bytes: usize) -> Self {
        use base64::Engine;
        use rand::RngCore;
        let mut buf = vec![0u8; bytes];
        rand::rng().fill_bytes(&mut buf);
        let s = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf);
        zeroize::Zeroize::zeroize(&mut buf);
        Self::new(s)
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// A short, non-reversible fingerprint to show the user ("sha256:1a2b3c4d").
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.expose().as_bytes());
        format!("sha256:{}", hex::encode(&digest[..4]))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for Secret {
    /// Constant-time comparison.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.expose().as_bytes(), other.expose().as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s}"), "<redacted>");
        assert!(!format!("{s:?}{s}").contains("very"));
    }

    #[test]
    fn random_secrets_are_long_and_distinct() {
        let a = Secret::random(32);
        let b = Secret::random(32);
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
        assert!(a.fingerprint().starts_with("sha256:"));
        assert_eq!(a.fingerprint().len(), "sha256:".len() + 8);
    }
}
