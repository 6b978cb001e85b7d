//! SSH keys: the app's own ed25519 key per server, and keys the person imports.
//!
//! Private halves exist only in the keychain (as OpenSSH-format text) and, while in use,
//! in memory (`ssh_key::PrivateKey` zeroizes its key material on drop).

use super::{Error, Result};
use crate::secret::Secret;
use crate::vault::{SecretKind, SecretRef, Vault};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// The comment on the app's public key in `authorized_keys`, so it can be found and
/// removed later: `clawkeeper-<instance>`.
pub fn app_key_comment(instance: &str) -> String {
    format!("clawkeeper-{instance}")
}

/// A fresh ed25519 key. The seed comes from the OS RNG and is wiped after use.
pub fn generate_ed25519(comment: &str) -> Result<PrivateKey> {
    use rand::RngCore;
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(seed.as_mut());
    let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    key.set_comment(comment);
    Ok(key)
}

/// Parse a private key the person picked (OpenSSH, PEM or PuTTY), decrypting it with
/// `passphrase` when it is encrypted.
pub fn parse_private(text: &Secret, passphrase: Option<&Secret>) -> Result<PrivateKey> {
    let trimmed = text.expose().trim();
    if trimmed.starts_with("ssh-") || trimmed.starts_with("ecdsa-") {
        return Err(Error::BadKey(
            "this is a public key; pick the private key file next to it".into(),
        ));
    }
    match russh::keys::decode_secret_key(trimmed, passphrase.map(Secret::expose)) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(Error::KeyNeedsPassphrase),
        Err(e) if passphrase.is_some() && is_decrypt_error(&e) => Err(Error::BadKey(
            "the passphrase is not right for this key".into(),
        )),
        Err(e) => Err(Error::BadKey(e.to_string())),
    }
}

fn is_decrypt_error(e: &russh::keys::Error) -> bool {
    let s = e.to_string().to_ascii_lowercase();
    s.contains("decrypt") || s.contains("crypto") || s.contains("passphrase")
}

/// OpenSSH private key text (for the keychain).
pub fn to_openssh(key: &PrivateKey) -> Result<Secret> {
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| Error::BadKey(e.to_string()))?;
    Ok(Secret::new(text.as_str()))
}

/// `ssh-ed25519 AAAA… comment`, the line for `authorized_keys`.
pub fn public_line(key: &PublicKey) -> Result<String> {
    key.to_openssh().map_err(|e| Error::BadKey(e.to_string()))
}

/// `SHA256:…`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The app's key for `instance`: read from the keychain, or generated and stored there
/// on first use. Returns the key and whether it was just created.
pub async fn app_key(vault: &Vault, instance: &str) -> Result<(PrivateKey, bool)> {
    let r = SecretRef::new(SecretKind::SshKey, instance);
    match vault.read(&r).await {
        Ok(text) => Ok((parse_private(&text, None)?, false)),
        Err(crate::vault::Error::NotFound(_)) => {
            let key = generate_ed25519(&app_key_comment(instance))?;
            vault.store(&r, &to_openssh(&key)?).await?;
            Ok((key, true))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_and_differ() {
        let a = generate_ed25519("clawkeeper-t").unwrap();
        let b = generate_ed25519("clawkeeper-t").unwrap();
        assert_ne!(fingerprint(a.public_key()), fingerprint(b.public_key()));
        let text = to_openssh(&a).unwrap();
        assert!(text
            .expose()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let back = parse_private(&text, None).unwrap();
        assert_eq!(back.public_key().key_data(), a.public_key().key_data());
        let line = public_line(a.public_key()).unwrap();
        assert!(line.starts_with("ssh-ed25519 "), "{line}");
        assert!(line.ends_with(" clawkeeper-t"), "{line}");
        assert!(fingerprint(a.public_key()).starts_with("SHA256:"));
    }

    #[test]
    fn public_key_and_garbage_are_refused_clearly() {
        let key = generate_ed25519("x").unwrap();
        let public = Secret::new(public_line(key.public_key()).unwrap());
        assert!(
            matches!(parse_private(&public, None), Err(Error::BadKey(m)) if m.contains("public key"))
        );
        assert!(matches!(
            parse_private(&Secret::new("not a key"), None),
            Err(Error::BadKey(_))
        ));
    }

    /// Made with `ssh-keygen -t ed25519 -N 'correct horse' -C fixture` (a throwaway key).
    const ENCRYPTED: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABCcIT6+60
4j3Hfy+r61J0ssAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIPReM7GrxNV983Nf
nr997sz9WPMZLnryVZfJmBMInnVSAAAAkE+SmxgPrihD1LssZkwLAKtLaQWu3ac2tB3KP8
kTm5Ln9CZlYneiIdiFWVsCL9w4EwN5XB9bRm5wkNTfM7NYtHYOf0R0X9TNKuoomgO9DG3d
o84ocjwOcg9RxDqcwNY9soxtgYC6/Ra3+TeZ1+uUKdIePYMHJINbcCqNeNFZc2CyjIXDBv
XhgNI4gQbKP1zt/A==
-----END OPENSSH PRIVATE KEY-----
";
    const ENCRYPTED_PUB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPReM7GrxNV983Nfnr997sz9WPMZLnryVZfJmBMInnVS";

    #[test]
    fn encrypted_key_needs_its_passphrase() {
        let text = Secret::new(ENCRYPTED);
        assert!(matches!(
            parse_private(&text, None),
            Err(Error::KeyNeedsPassphrase)
        ));
        assert!(matches!(
            parse_private(&text, Some(&Secret::new("wrong"))),
            Err(Error::BadKey(_))
        ));
        let ok = parse_private(&text, Some(&Secret::new("correct horse"))).unwrap();
        let line = public_line(ok.public_key()).unwrap();
        assert!(line.starts_with(ENCRYPTED_PUB), "{line}");
    }
}
