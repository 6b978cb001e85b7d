//! Commands for the person's own server: connect (and, as they land, provision, posture,
//! deploy, delete).

use crate::{fail, zeroize_string};
use anyhow::{bail, Context, Result};
use clap::Args;
use clawkeeper_core::app::Clawkeeper;
use clawkeeper_core::server::{self, FirstLogin};
use clawkeeper_core::ssh::{self, Target};
use clawkeeper_core::{Secret, UserFacing};
use std::io::{IsTerminal, Read, Write};

#[derive(Args)]
pub struct ConnectArgs {
    /// The server's address or name.
    #[arg(long)]
    host: String,
    #[arg(long, default_value_t = 22)]
    port: u16,
    #[arg(long, default_value = "root")]
    user: String,
    /// A name to show for it.
    #[arg(long, default_value = "My server")]
    name: String,
    /// Clawkeeper's id for this server (letters, digits, '-').
    #[arg(long, default_value = "server")]
    id: String,
    /// Log in the first time with this private key file.
    #[arg(long, conflicts_with = "password_stdin")]
    key_file: Option<std::path::PathBuf>,
    /// Log in the first time with a one-time password read from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// The host key fingerprint you confirmed (SHA256:…). Without it, Clawkeeper shows
    /// the fingerprint and asks.
    #[arg(long)]
    fingerprint: Option<String>,
}

pub async fn connect(app: &Clawkeeper, a: ConnectArgs, json: bool) -> Result<()> {
    let target = Target::new(&a.host, a.port, &a.user);
    let host_key = ssh::scan_host_key(&target)
        .await
        .map_err(|e| fail(e.problem()))?;
    match &a.fingerprint {
        Some(fp) if fp.trim() == host_key.fingerprint => {}
        Some(fp) => bail!(
            "The server's fingerprint is {}, not {}. Nothing was sent to it.\n→ Check the address, and compare with the fingerprint your hosting provider shows.",
            host_key.fingerprint,
            fp.trim()
        ),
        None => {
            eprintln!(
                "The server {target} identifies itself with this fingerprint:\n\n    {}  ({})\n",
                host_key.fingerprint, host_key.algorithm
            );
            if !std::io::stdin().is_terminal() {
                bail!("Confirm it by running the command again with --fingerprint {}", host_key.fingerprint);
            }
            eprint!("Is this the fingerprint your hosting provider shows? [y/N] ");
            std::io::stderr().flush()?;
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                bail!("Not confirmed. Nothing was sent to the server.");
            }
        }
    }
    let login = if let Some(path) = &a.key_file {
        let mut text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the key file {}", path.display()))?;
        let private = Secret::new(text.as_str());
        zeroize_string(&mut text);
        let passphrase = std::env::var("CLAWKEEPER_KEY_PASSPHRASE")
            .ok()
            .map(Secret::new);
        FirstLogin::Key {
            private,
            passphrase,
        }
    } else if a.password_stdin {
        let mut pw = String::new();
        std::io::stdin().take(4096).read_to_string(&mut pw)?;
        let secret = Secret::new(pw.trim_end_matches(['\n', '\r']));
        zeroize_string(&mut pw);
        FirstLogin::Password(secret)
    } else {
        bail!("Say how to log in the first time: --key-file PATH or --password-stdin.");
    };
    let connected = server::adopt(
        app.store(),
        app.vault(),
        &a.id,
        &a.name,
        &target,
        &host_key,
        login,
    )
    .await
    .map_err(|e| fail(e.problem()))?;
    connected.session.close().await;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "id": a.id,
                "target": target.to_string(),
                "hostFingerprint": connected.record.host_key.fingerprint,
                "appKeyFingerprint": connected.record.app_key_fingerprint,
                "usedPassword": connected.used_password,
            })
        );
    } else {
        println!(
            "Connected {target}. Clawkeeper's own key is installed ({}).",
            connected
                .record
                .app_key_fingerprint
                .as_deref()
                .unwrap_or("?")
        );
        println!("Next: clawkeeper-cli provision --id {}", a.id);
    }
    Ok(())
}
