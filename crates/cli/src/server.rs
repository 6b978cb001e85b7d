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
    /// The key file's passphrase, read from standard input (never an argument or an
    /// environment variable: those are visible to other programs).
    #[arg(long, requires = "key_file")]
    passphrase_stdin: bool,
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
        let passphrase = if a.passphrase_stdin {
            let mut pp = String::new();
            std::io::stdin().take(4096).read_to_string(&mut pp)?;
            let secret = Secret::new(pp.trim_end_matches(['\n', '\r']));
            zeroize_string(&mut pp);
            Some(secret)
        } else {
            None
        };
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

// ---- cloud (Hetzner) ----

use clawkeeper_core::cloud::hetzner::{HetznerClient, RetryPolicy};
use clawkeeper_core::server::deploy::{self, DeployProgress, DeployRequest};
use clawkeeper_core::vault::{SecretKind, SecretRef};
use tokio_util::sync::CancellationToken;

fn cloud_token_ref() -> SecretRef {
    SecretRef::new(SecretKind::CloudToken, "hetzner")
}

/// The Hetzner client with the token from the keychain. `CLAWKEEPER_HETZNER_API` points
/// it elsewhere (tests: the contract fake).
async fn hetzner(app: &Clawkeeper) -> Result<HetznerClient> {
    let token = app.vault().read(&cloud_token_ref()).await.map_err(|e| {
        if matches!(e, clawkeeper_core::vault::Error::NotFound(_)) {
            anyhow::anyhow!("No Hetzner API token saved yet.\n→ Run: clawkeeper-cli cloud-token < token.txt   (a Read & Write token from your Hetzner project's Security page)")
        } else {
            fail(e.problem())
        }
    })?;
    let client = match std::env::var("CLAWKEEPER_HETZNER_API") {
        Ok(base) => HetznerClient::with_base_url(&base, token, RetryPolicy::default()),
        Err(_) => HetznerClient::new(token),
    };
    client.map_err(|e| fail(e.problem()))
}

/// Save the Hetzner API token (from standard input) in the keychain.
pub async fn save_cloud_token(app: &Clawkeeper) -> Result<()> {
    let mut text = String::new();
    std::io::stdin().take(4096).read_to_string(&mut text)?;
    let token = Secret::new(text.trim());
    zeroize_string(&mut text);
    if token.is_empty() {
        bail!("No token on standard input.\n→ Run: clawkeeper-cli cloud-token < token.txt");
    }
    app.vault()
        .store(&cloud_token_ref(), &token)
        .await
        .map_err(|e| fail(e.problem()))?;
    println!(
        "Hetzner token saved in your keychain ({}).",
        token.fingerprint()
    );
    Ok(())
}

#[derive(Args)]
pub struct DeployArgs {
    /// Server type, e.g. one listed by `clawkeeper-cli deploy --list`.
    #[arg(long, required_unless_present = "list")]
    server_type: Option<String>,
    /// Location, e.g. fsn1, nbg1, hel1.
    #[arg(long, required_unless_present = "list")]
    location: Option<String>,
    #[arg(long, default_value = "server")]
    id: String,
    #[arg(long, default_value = "My server")]
    name: String,
    /// Show the server types and locations with today's prices, and stop.
    #[arg(long)]
    list: bool,
}

pub async fn deploy_cmd(app: &Clawkeeper, a: DeployArgs, json: bool) -> Result<()> {
    let client = hetzner(app).await?;
    if a.list {
        let (types, locations) = tokio::try_join!(client.server_types(), client.locations())
            .map_err(|e| fail(e.problem()))?;
        if json {
            println!(
                "{}",
                serde_json::json!({ "serverTypes": types, "locations": locations })
            );
            return Ok(());
        }
        println!("Locations:");
        for l in &locations {
            println!("  {:6} {}, {}", l.name, l.city, l.country);
        }
        println!("Server types (price per month incl. VAT, by location):");
        for t in types.iter().filter(|t| t.deprecation.is_none()) {
            let prices: Vec<String> = t
                .prices
                .iter()
                .map(|p| format!("{} €{}", p.location, trim_price(&p.price_monthly.gross)))
                .collect();
            println!(
                "  {:8} {} vCPU, {} GB RAM, {} GB disk ({}) — {}",
                t.name,
                t.cores,
                t.memory,
                t.disk,
                t.architecture,
                prices.join(", ")
            );
        }
        return Ok(());
    }
    let req = DeployRequest {
        instance_id: a.id.clone(),
        name: a.name,
        server_type: a.server_type.unwrap_or_default(),
        location: a.location.unwrap_or_default(),
    };
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("Stopping safely… (everything created so far is recorded; deploy again to continue or delete it)");
            on_ctrl_c.cancel();
        }
    });
    let connected = deploy::deploy(
        app.store(),
        app.vault(),
        &client,
        &req,
        cancel,
        &mut |p: &DeployProgress| print_deploy_progress(p, json),
    )
    .await
    .map_err(|e| fail(e.problem()))?;
    connected.session.close().await;
    if !json {
        println!(
            "Server ready at {} (host key {}).",
            connected.record.target.host, connected.record.host_key.fingerprint
        );
        println!("Next: clawkeeper-cli provision --id {}", a.id);
    }
    Ok(())
}

fn trim_price(s: &str) -> String {
    match s.split_once('.') {
        Some((a, b)) => format!("{a}.{}", &b[..b.len().min(2)]),
        None => s.to_owned(),
    }
}

fn print_deploy_progress(p: &DeployProgress, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(p) {
            eprintln!("{line}");
        }
        return;
    }
    use clawkeeper_core::cloud::deploy::Progress as C;
    use clawkeeper_core::cloud::journal::ResourceKind;
    let word = |k: &ResourceKind| match k {
        ResourceKind::SshKey => "SSH key",
        ResourceKind::Firewall => "firewall",
        ResourceKind::Server => "server",
    };
    let line = match p {
        DeployProgress::Cloud(C::Intended { kind, name }) => {
            format!("Creating {} {name}…", word(kind))
        }
        DeployProgress::Cloud(C::Recorded { kind, id }) => {
            format!("  {} created (id {id})", word(kind))
        }
        DeployProgress::Cloud(C::Reused { kind, name, id }) => {
            format!("  {} {name} already there (id {id})", word(kind))
        }
        DeployProgress::Cloud(C::WaitingForBoot { status }) => format!("  server is {status}…"),
        DeployProgress::Cloud(C::Ready { ipv4, .. }) => format!("Server running at {ipv4}"),
        DeployProgress::WaitingForSsh { waited_s, .. } => {
            format!("Waiting for the server to answer ({waited_s} s)…")
        }
        DeployProgress::HostKeyPinned { fingerprint } => {
            format!("Server identity pinned: {fingerprint}")
        }
        DeployProgress::LoggedIn => "Logged in with Clawkeeper's key".into(),
        _ => return,
    };
    eprintln!("{line}");
}

#[derive(Args)]
pub struct DeleteArgs {
    #[arg(long, default_value = "server")]
    id: String,
    /// Really delete (the server and everything on it is gone for good).
    #[arg(long)]
    yes: bool,
}

pub async fn delete_cmd(app: &Clawkeeper, a: DeleteArgs, json: bool) -> Result<()> {
    if !a.yes {
        bail!("This deletes the server at Hetzner with everything on it.\n→ Run again with --yes to confirm.");
    }
    let client = hetzner(app).await?;
    let mut deleted = deploy::delete(app.store(), app.vault(), &client, &a.id)
        .await
        .map_err(|e| fail(e.problem()))?;
    deleted.here.extend(app.tailnet_remove_server(&a.id).await);
    let removed = &deleted.at_provider;
    if json {
        let list: Vec<String> = removed.iter().map(ToString::to_string).collect();
        println!(
            "{}",
            serde_json::json!({ "removed": list, "forgotten": deleted.here })
        );
        return Ok(());
    }
    if removed.is_empty() {
        println!("Nothing to remove at Hetzner.");
    } else {
        println!("Removed at Hetzner:");
        for r in removed {
            println!("  {r}");
        }
    }
    if !deleted.here.is_empty() {
        println!("Removed on this computer:");
        for r in &deleted.here {
            println!("  {r}");
        }
    }
    Ok(())
}

// ---- provisioning, posture, chat through the tunnel ----

use clawkeeper_core::local::verify::{Check, CheckStatus};
use clawkeeper_core::provision::{Progress as ProvisionProgress, StepState};
use clawkeeper_core::server::ops;

#[derive(Args)]
pub struct ProvisionArgs {
    #[arg(long, default_value = "server")]
    id: String,
}

pub async fn provision_cmd(app: &Clawkeeper, a: ProvisionArgs, json: bool) -> Result<()> {
    let cancel = CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("Stopping after the current step… (run provision again to continue)");
            on_ctrl_c.cancel();
        }
    });
    let outcome = ops::provision_server(app.store(), app.vault(), &a.id, cancel, |p| {
        print_provision_progress(&p, json)
    })
    .await
    .map_err(|e| fail(e.problem()))?;
    print_checks(&outcome.checks, json)?;
    if outcome.checks.iter().any(|c| c.status == CheckStatus::Fail) {
        bail!("Some safety checks failed (above).");
    }
    if !json {
        println!("Your assistant is running on the server, reachable only through Clawkeeper.");
    }
    Ok(())
}

pub(crate) fn print_provision_progress(p: &ProvisionProgress, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(p) {
            eprintln!("{line}");
        }
        return;
    }
    let mark = match p.state {
        StepState::Running => "…",
        StepState::Done => "✓",
        StepState::Failed => "✗",
    };
    eprintln!("[{}/{}] {mark} {}", p.index, p.total, p.name);
}

pub(crate) fn print_checks(checks: &[Check], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(checks)?);
        return Ok(());
    }
    for c in checks {
        let mark = match c.status {
            CheckStatus::Pass => "✓",
            CheckStatus::Fail => "✗",
            CheckStatus::Pending => "…",
        };
        println!(
            "  {mark} {}{}",
            c.label,
            c.detail
                .as_ref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct PostureArgs {
    #[arg(long, default_value = "server")]
    id: String,
    /// Let OpenClaw's own audit fix what it safely can first.
    #[arg(long)]
    fix: bool,
}

pub async fn posture_cmd(app: &Clawkeeper, a: PostureArgs, json: bool) -> Result<()> {
    let checks = ops::posture(app.store(), app.vault(), &a.id, a.fix)
        .await
        .map_err(|e| fail(e.problem()))?;
    print_checks(&checks, json)?;
    if checks.iter().any(|c| c.status == CheckStatus::Fail) {
        bail!("Some safety checks failed.\n→ Run `clawkeeper-cli provision --id {}` to repair the server's setup{}.", a.id, if a.fix { "" } else { ", or `posture --fix` for OpenClaw's own findings" });
    }
    Ok(())
}

/// One message to the assistant on the server, through the SSH tunnel.
pub async fn chat_server(app: &Clawkeeper, id: &str, message: &str, json: bool) -> Result<()> {
    use clawkeeper_core::gateway::chat::{parse_chat_event, MAIN_SESSION};
    use clawkeeper_core::server::ServerLink;
    let link = ServerLink::new(app.store().clone(), app.vault().clone(), id);
    let tunnel = link.gateway_tunnel().await.map_err(|e| fail(e.problem()))?;
    let gw = link.gateway(&tunnel);
    gw.wait_connected(std::time::Duration::from_secs(30))
        .await
        .map_err(|e| fail(e.problem()))?;
    let mut events = gw.events();
    let run_id = gw
        .chat_send(MAIN_SESSION, message)
        .await
        .map_err(|e| fail(e.problem()))?;
    let wait = async {
        loop {
            let ev = events.recv().await?;
            if ev.event != "chat" {
                continue;
            }
            let Some(u) = parse_chat_event(&ev.payload) else {
                continue;
            };
            if u.run_id != run_id {
                continue;
            }
            if let Some(outcome) = u.outcome() {
                return outcome.map_err(fail);
            }
        }
    };
    let reply = tokio::time::timeout(std::time::Duration::from_secs(180), wait)
        .await
        .map_err(|_| anyhow::anyhow!("The assistant took too long to answer."))??;
    gw.shutdown();
    if json {
        println!("{}", serde_json::json!({ "reply": reply }));
    } else {
        println!("{reply}");
    }
    Ok(())
}

// ---- support access ----

use clawkeeper_core::server::support;

#[derive(clap::Subcommand)]
pub enum SupportCmd {
    /// Give a helper a one-time SSH key for a few hours. The key is shown once.
    Issue {
        #[arg(long, default_value = "server")]
        id: String,
        /// How long it stays valid (1 to 168 hours).
        #[arg(long, default_value_t = 4)]
        hours: u64,
        /// Who it is for, for your records.
        #[arg(long, default_value = "")]
        note: String,
        /// Write the helper's private key to this file (mode 600) instead of printing it.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// List the support keys and whether they are still on the server.
    List {
        #[arg(long, default_value = "server")]
        id: String,
    },
    /// Take a support key away now.
    Revoke {
        #[arg(long, default_value = "server")]
        id: String,
        grant: String,
    },
}

pub async fn support_cmd(app: &Clawkeeper, cmd: SupportCmd, json: bool) -> Result<()> {
    let session = |id: String| async move {
        server::open_session(app.store(), app.vault(), &id)
            .await
            .map_err(|e| fail(e.problem()))
    };
    match cmd {
        SupportCmd::Issue {
            id,
            hours,
            note,
            out,
        } => {
            if !(1..=168).contains(&hours) {
                bail!("A support window is 1 to 168 hours (a week).");
            }
            let s = session(id.clone()).await?;
            let issued = support::issue(
                app.store(),
                &s,
                &id,
                std::time::Duration::from_secs(hours * 3600),
                &note,
            )
            .await
            .map_err(|e| fail(e.problem()))?;
            s.close().await;
            match out {
                Some(path) => {
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    f.write_all(issued.private_key.expose().as_bytes())?;
                    eprintln!(
                        "The helper's key is in {} — send it to them privately.",
                        path.display()
                    );
                }
                None => print!("{}", issued.private_key.expose()),
            }
            eprintln!(
                "Support key {} ({}) works until {} (UTC), then removes itself. Revoke it any time: clawkeeper-cli support revoke {}",
                issued.grant.id, issued.grant.fingerprint, issued.grant.expires_at, issued.grant.id
            );
        }
        SupportCmd::List { id } => {
            let s = session(id.clone()).await?;
            let grants = support::list(app.store(), Some(&s), &id)
                .await
                .map_err(|e| fail(e.problem()))?;
            s.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&grants)?);
            } else if grants.is_empty() {
                println!("No support keys.");
            } else {
                let now = time::OffsetDateTime::now_utc();
                for g in grants {
                    let state = if g.revoked_at.is_some() {
                        "revoked"
                    } else if g.active(now) {
                        "active"
                    } else {
                        "expired"
                    };
                    println!(
                        "  {} {state:8} until {} {}{}",
                        g.id,
                        g.expires_at,
                        if g.on_server == Some(true) {
                            "(on the server)"
                        } else {
                            "(not on the server)"
                        },
                        if g.note.is_empty() {
                            String::new()
                        } else {
                            format!(" — {}", g.note)
                        }
                    );
                }
            }
        }
        SupportCmd::Revoke { id, grant } => {
            let s = session(id.clone()).await?;
            support::revoke(app.store(), &s, &id, &grant)
                .await
                .map_err(|e| fail(e.problem()))?;
            s.close().await;
            println!("Support key {grant} revoked.");
        }
    }
    Ok(())
}
