//! Where Clawkeeper keeps things on this computer.
//!
//! Everything lives under one private data directory (mode 0700): the database, the
//! OpenClaw runtime (a private Node and a pinned `openclaw`), each instance's state and
//! logs, and our keychain helper. `CLAWKEEPER_HOME` moves all of it (tests, portable use);
//! `CLAWKEEPER_RUNTIME_DIR` points at a shared, already installed runtime.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub runtime_dir: PathBuf,
}

impl Paths {
    pub fn from_env() -> std::io::Result<Self> {
        let data_dir = match std::env::var_os("CLAWKEEPER_HOME") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => directories::ProjectDirs::from("org", "Clawkeeper", "clawkeeper")
                .map(|p| p.data_dir().to_owned())
                .ok_or_else(|| {
                    std::io::Error::other("no home directory to keep Clawkeeper's data in")
                })?,
        };
        let runtime_dir = match std::env::var_os("CLAWKEEPER_RUNTIME_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => data_dir.join("runtime"),
        };
        Ok(Self {
            data_dir,
            runtime_dir,
        })
    }

    pub fn under(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            runtime_dir: data_dir.join("runtime"),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.data_dir.join("clawkeeper.db")
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.data_dir.join("bin")
    }

    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("instances").join(id)
    }

    /// The embedded Tailscale node's own folder (its identity file, mode 0600, in a 0700
    /// folder): see `tailnet::embedded`.
    pub fn tailnet_node_dir(&self) -> PathBuf {
        self.data_dir.join("tailnet-node")
    }

    /// Create the data directory, private to this user.
    pub fn ensure(&self) -> std::io::Result<()> {
        create_private_dir(&self.data_dir)
    }
}

/// `mkdir -p` with mode 0700 on the leaf (and fix the mode if it already exists).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)
}

#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
pub fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Write a file atomically (temp file + rename) with mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent directory"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
