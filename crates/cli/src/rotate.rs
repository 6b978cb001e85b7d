//! `clawkeeper-cli rotate`: the keys and their ages, one-click rotation of one key or all,
//! and finishing an interrupted rotation (which any `rotate` does first).

use crate::fail;
use anyhow::{bail, Result};
use clawkeeper_core::app::{Clawkeeper, Event};
use clawkeeper_core::rotation::KeyId;

#[derive(clap::Args)]
pub struct RotateArgs {
    /// The key to rotate: gateway-token, provider-key, ssh-key or tailscale-node.
    key: Option<String>,
    /// Every key that rotates in one click.
    #[arg(long, conflicts_with = "key")]
    all: bool,
    /// Only list the keys: where each lives, how old it is, how it rotates.
    #[arg(long, conflicts_with_all = ["key", "all"])]
    list: bool,
    /// Only finish rotations an earlier run left unfinished (the app does this by itself).
    #[arg(long, conflicts_with_all = ["key", "all", "list"])]
    resume: bool,
    /// Whose key: `local` (the assistant on this computer) or a server's id (as given to
    /// `connect` or `deploy`), e.g. `rotate ssh-key --instance server`.
    #[arg(long, default_value = "local", conflicts_with_all = ["all", "list", "resume"])]
    instance: String,
}

pub async fn run(app: &Clawkeeper, args: RotateArgs, json: bool) -> Result<()> {
    if args.list {
        let keys = app.keys_inventory().await.map_err(fail)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&keys)?);
        } else {
            for k in keys {
                println!(
                    "{:<12} {:<16} {:<28} set {:<26} rotated {:<26} {:?}",
                    k.instance_id,
                    k.key.as_str(),
                    k.label,
                    k.set_at.as_deref().unwrap_or("-"),
                    k.rotated_at.as_deref().unwrap_or("never"),
                    k.how
                );
            }
        }
        return Ok(());
    }
    if !json {
        print_progress(app);
    }
    // Whatever an earlier run left unfinished, first.
    let mut waiting = 0;
    for (r, result) in app.rotations_resume().await {
        match result {
            Ok(done) => eprintln!(
                "Finished the interrupted rotation of the {}: now {}.",
                r.key.label().to_lowercase(),
                done.new_fingerprint.as_deref().unwrap_or("-")
            ),
            Err(p) if p.code == "rotation_rolled_back" => eprintln!(
                "Undid the interrupted rotation of the {}; the old key is kept. ({})",
                r.key.label().to_lowercase(),
                p.message
            ),
            Err(p) => {
                waiting += 1;
                eprintln!(
                    "The interrupted rotation of the {} is still waiting: {}",
                    r.key.label().to_lowercase(),
                    p.message
                );
            }
        }
    }
    if args.resume {
        if waiting > 0 {
            bail!("{waiting} rotation(s) are still waiting; the keys in use work meanwhile.");
        }
        return Ok(());
    }
    if args.all {
        let results = app.rotate_all().await.map_err(fail)?;
        let failed = results
            .iter()
            .filter(|r| r.result == "unchanged" || r.result == "pending")
            .count();
        if json {
            println!("{}", serde_json::to_string_pretty(&results)?);
        } else {
            for r in &results {
                let why = r
                    .problem
                    .as_ref()
                    .map(|p| format!(": {}", p.message))
                    .unwrap_or_default();
                println!("{:<28} {}{}", r.label, r.result, why);
            }
        }
        if failed > 0 {
            bail!("{failed} key(s) were not rotated; the keys in use still work.");
        }
        return Ok(());
    }
    let Some(name) = args.key else {
        bail!("Say which key (gateway-token, provider-key, ssh-key, tailscale-node), or --all, or --list.");
    };
    let Some(key) = KeyId::parse(&name) else {
        bail!("No key called {name:?}. The keys: gateway-token, provider-key, ssh-key, tailscale-node.");
    };
    let started = std::time::Instant::now();
    let r = app
        .rotate_instance(&args.instance, key)
        .await
        .map_err(fail)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "Rotated the {}: {} replaced by {}; the old one is refused. ({:.1} s)",
            key.label(),
            r.old_fingerprint.as_deref().unwrap_or("-"),
            r.new_fingerprint.as_deref().unwrap_or("-"),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn print_progress(app: &Clawkeeper) {
    let mut rx = app.events();
    tokio::spawn(async move {
        while let Ok(ev) = rx.recv().await {
            if let Event::Rotation(r) = ev {
                if r.outcome.is_none() {
                    eprintln!("{}: {} …", r.key.label(), r.step.label());
                }
            }
        }
    });
}
