//! `clawkeeper-cli tailnet …`: the person's Tailscale API key, the policy check, and putting
//! a server on the tailnet — the same core calls as the status window's "Private network".

use crate::{fail, zeroize_string};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use clawkeeper_core::app::Clawkeeper;
use clawkeeper_core::app::{Event, ServerJob};
use clawkeeper_core::Secret;
use std::io::Read;

#[derive(Subcommand)]
pub enum TailnetCmd {
    /// Save a Tailscale API access token or OAuth client secret (read from standard input),
    /// after checking it with Tailscale.
    Key {
        /// The OAuth client's ID, when the secret is an OAuth client's.
        #[arg(long)]
        client_id: Option<String>,
    },
    /// Whether your tailnet's policy lets Clawkeeper's servers use tag:clawkeeper (and the
    /// line to add if not), and the server's device.
    Check(IdArg),
    /// Put a set-up server on your tailnet: Tailscale from its signed packages, a key that
    /// works once, the assistant offered on the tailnet only. Safe to run again.
    Join(IdArg),
}

#[derive(Args)]
pub struct IdArg {
    #[arg(long, default_value = "server")]
    id: String,
}

pub async fn run(app: &Clawkeeper, cmd: TailnetCmd, json: bool) -> Result<()> {
    match cmd {
        TailnetCmd::Key { client_id } => {
            let mut text = String::new();
            std::io::stdin().take(4096).read_to_string(&mut text)?;
            let secret = Secret::new(text.trim());
            zeroize_string(&mut text);
            if secret.is_empty() {
                bail!("No key on standard input.\n→ Run: clawkeeper-cli tailnet key < key.txt");
            }
            let view = app
                .tailnet_key_save(secret, client_id, None)
                .await
                .map_err(fail)?;
            print_view(&view, json)
        }
        TailnetCmd::Check(a) => {
            let view = app.tailnet_check(Some(&a.id)).await;
            print_view(&view, json)
        }
        TailnetCmd::Join(a) => {
            // The app's own job (as the status window's button starts it), followed here
            // through its events.
            let mut events = app.events();
            app.server_tailnet_join(&a.id).await.map_err(fail)?;
            tokio::spawn({
                let app = app.clone();
                async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        eprintln!("Stopping after the current step… (run it again to continue)");
                        app.cancel_server_job();
                    }
                }
            });
            let mut checks = None;
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(e) => bail!("The app stopped before the job ended ({e})."),
                };
                match event {
                    Event::ServerChecks { id, checks: c, .. } if id == a.id => checks = Some(c),
                    Event::Server { id, job } if id == a.id && job.kind == "tailnet" => {
                        print_job(&job, json);
                        match job.state {
                            "running" => {}
                            "succeeded" => break,
                            _ => {
                                return Err(fail(job.error.unwrap_or_else(|| {
                                    clawkeeper_core::Problem::new(
                                        "tailnet_join_stopped",
                                        "Joining the tailnet stopped.",
                                        Some("Run it again: it continues where it stopped."),
                                    )
                                })))
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let Some(c) = checks {
                if json {
                    println!("{}", serde_json::to_string_pretty(&c)?);
                } else {
                    for c in &c {
                        println!(
                            "  {} {}",
                            if c.status == "pass" { "✓" } else { "✗" },
                            c.label
                        );
                    }
                }
            }
            if !json {
                let view = app.tailnet_check(Some(&a.id)).await;
                if let Some(d) = view.device {
                    println!("Your server is on your tailnet as {}.", d.name);
                } else {
                    println!("Your server joined your tailnet.");
                }
            }
            Ok(())
        }
    }
}

fn print_job(job: &ServerJob, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(job) {
            eprintln!("{line}");
        }
    } else if job.state == "running" {
        eprintln!(
            "[{}/{}] {}",
            (job.index + 1).min(job.total),
            job.total,
            job.step
        );
    }
}

fn print_view(view: &clawkeeper_core::app::TailnetView, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(view)?);
        return Ok(());
    }
    if let Some(p) = &view.error {
        bail!("{}", p.message);
    }
    match view.tag_owners_ok {
        Some(true) => println!("✓ Your tailnet lets Clawkeeper's servers join as tag:clawkeeper."),
        Some(false) => {
            println!("✗ {}", view.explanation);
            println!("  Add this to the tagOwners of your tailnet's policy (admin console → Access controls):");
            println!("{}", view.snippet);
        }
        None => println!("Not checked (no Tailscale key saved yet)."),
    }
    if let Some(d) = &view.device {
        println!(
            "Server on the tailnet: {} {}",
            d.name,
            d.address.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
