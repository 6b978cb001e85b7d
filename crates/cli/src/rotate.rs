//! `clawkeeper-cli rotate`: the keys and their ages, one-click rotation of one key or all,
//! and finishing an interrupted rotation (which any `rotate` does first).

use crate::fail;
use anyhow::{bail, Result};
use clawkeeper_core::app::{Clawkeeper, Event, Reminders};
use clawkeeper_core::rotation::KeyId;

#[derive(clap::Args)]
pub struct RotateArgs {
    /// The key to rotate: gateway-token, provider-key, ssh-key, tailscale-node, cloud-token,
    /// telegram-token, discord-token or tailscale-api.
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
    /// With provider-key, cloud-token, telegram-token, discord-token or tailscale-api: the
    /// new key, one you made at your provider (a bot token: BotFather's /revoke, Discord's
    /// Reset Token), read from standard input (never from arguments). Clawkeeper checks it,
    /// puts it in use, then (if still needed) waits for you to delete the old one there.
    #[arg(long, conflicts_with_all = ["all", "list", "resume"])]
    new_key_stdin: bool,
    /// With provider-key at OpenRouter: get the new key by signing in with OpenRouter in
    /// your browser (this prints the page to open) instead of pasting one. Clawkeeper
    /// checks it, puts it in use, then waits for you to delete the old one there.
    #[arg(long, conflicts_with_all = ["all", "list", "resume", "new_key_stdin"])]
    sign_in: bool,
    /// Remind to change the keys every DAYS days (30, 90, 180, …), or `never`.
    #[arg(long, value_name = "DAYS|never", conflicts_with_all = ["key", "all", "list", "resume"])]
    remind: Option<String>,
    /// Whose key: `local` (the assistant on this computer) or a server's id (as given to
    /// `connect` or `deploy`), e.g. `rotate ssh-key --instance server`.
    #[arg(long, default_value = "local", conflicts_with_all = ["all", "list", "resume"])]
    instance: String,
}

/// "every 90 days; next reminder 2027-03-01 (Assistant access token)".
fn reminder_line(r: &Reminders) -> String {
    let every = match r.every_days {
        Some(n) => format!("every {n} days"),
        None => return "Reminders to change keys: never.".into(),
    };
    let next = match &r.next_at {
        Some(_) if !r.due.is_empty() => format!(
            "due now: {} (reminded again every {} days until changed)",
            r.due.iter().map(|d| d.label).collect::<Vec<_>>().join(", "),
            r.again_after_days
        ),
        Some(at) => format!(
            "next reminder {} ({})",
            at.get(..10).unwrap_or(at),
            r.next_keys.join(", ")
        ),
        None => "no key with a known age yet".into(),
    };
    format!("Reminders to change keys: {every}; {next}.")
}

pub async fn run(app: &Clawkeeper, args: RotateArgs, json: bool) -> Result<()> {
    if let Some(words) = &args.remind {
        let r = app.set_key_reminders_from(words).await.map_err(fail)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            println!("{}", reminder_line(&r));
        }
        return Ok(());
    }
    if args.list {
        let keys = app.keys_inventory().await.map_err(fail)?;
        let reminders = app.key_reminders().await.map_err(fail)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&keys)?);
        } else {
            for k in keys {
                let due = match (&k.due_at, k.due) {
                    (Some(_), true) => "DUE now".to_owned(),
                    (Some(at), false) => format!("due {}", at.get(..10).unwrap_or(at)),
                    (None, _) => "-".to_owned(),
                };
                println!(
                    "{:<12} {:<16} {:<28} set {:<26} rotated {:<26} {:<16} {:?}",
                    k.instance_id,
                    k.key.as_str(),
                    k.label,
                    k.set_at.as_deref().unwrap_or("-"),
                    k.rotated_at.as_deref().unwrap_or("never"),
                    due,
                    k.how
                );
                if let Some(at) = &k.expires_at {
                    println!("{:<12} {:<16} expires {at}", "", k.key.as_str());
                }
            }
            println!("{}", reminder_line(&reminders));
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
                "Undid the interrupted rotation of the {}; {} ({})",
                r.key.label().to_lowercase(),
                if matches!(r.key, KeyId::TelegramBotToken | KeyId::DiscordBotToken) {
                    "your assistant is back on the old token, which making the new one has cancelled: paste the new token again."
                } else {
                    "the old key is kept."
                },
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
        bail!("Say which key (gateway-token, provider-key, ssh-key, tailscale-node, cloud-token, telegram-token, discord-token, tailscale-api), or --all, or --list.");
    };
    let Some(key) = KeyId::parse(&name) else {
        bail!("No key called {name:?}. The keys: gateway-token, provider-key, ssh-key, tailscale-node, cloud-token, telegram-token, discord-token, tailscale-api.");
    };
    let started = std::time::Instant::now();
    let r = if args.sign_in {
        if key != KeyId::ProviderKey {
            bail!("--sign-in is for provider-key (at OpenRouter).");
        }
        let url = app.begin_provider_key_sign_in().await.map_err(fail)?;
        println!("Open this page in your browser and approve Clawkeeper at OpenRouter:\n{url}");
        eprintln!("Waiting for the browser (up to 10 minutes)…");
        app.finish_provider_key_sign_in().await.map_err(fail)?
    } else if args.new_key_stdin {
        if !matches!(
            key,
            KeyId::ProviderKey
                | KeyId::CloudToken
                | KeyId::TelegramBotToken
                | KeyId::DiscordBotToken
                | KeyId::TailscaleApi
        ) {
            bail!("--new-key-stdin is for provider-key, cloud-token, telegram-token, discord-token and tailscale-api; the other keys are made by Clawkeeper.");
        }
        use std::io::Read;
        let mut text = String::new();
        std::io::stdin().take(64 * 1024).read_to_string(&mut text)?;
        let new_key = clawkeeper_core::Secret::new(text.trim());
        crate::zeroize_string(&mut text);
        app.rotate_with(key, new_key).await.map_err(fail)?
    } else {
        app.rotate_instance(&args.instance, key)
            .await
            .map_err(fail)?
    };
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
