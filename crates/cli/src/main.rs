//! `clawkeeper-cli`: the command-line face of Clawkeeper, on the same core, store and
//! keychain as the desktop app. Scripts and tests use it.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use clawkeeper_core::app::{Clawkeeper, Event, ProviderInput};
use clawkeeper_core::local::supervisor::Policy;
use clawkeeper_core::paths::Paths;
use clawkeeper_core::store::ProviderKind;
use clawkeeper_core::{Problem, Secret};
use std::io::Read;
use std::time::Duration;

mod rotate;
mod server;
mod tailnet;
mod usage;

#[derive(Parser)]
#[command(
    name = "clawkeeper-cli",
    version,
    about = "Your private AI assistant, from the command line"
)]
struct Cli {
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Is the assistant running, and is it safe?
    Status,
    /// Start the assistant on this computer (installs it first if needed).
    Start {
        /// Stay in the foreground and keep it running (restart on crash) until Ctrl-C.
        #[arg(long)]
        foreground: bool,
    },
    /// Stop the assistant.
    Stop,
    /// Send one message and print the reply.
    Chat {
        message: String,
        /// Talk to the assistant on this server (through the SSH tunnel) instead of this computer.
        #[arg(long)]
        server: Option<String>,
    },
    /// Download and install the assistant's software (Node.js and OpenClaw).
    Install,
    /// Save the model provider. The API key is read from standard input, never from arguments.
    Provider {
        #[arg(long, value_enum, default_value_t = Kind::Openrouter)]
        kind: Kind,
        #[arg(long)]
        base_url: Option<String>,
        #[arg(long)]
        model: Option<String>,
    },
    /// Save an OpenAI Admin key (read from standard input, never from arguments) so the
    /// assistant's OpenAI key rotates in one click: `rotate provider-key` then makes a new
    /// project service account and deletes the old one. Kept in the keychain only.
    OpenaiAdminKey {
        /// The project the assistant's key belongs to (`proj_…`); may be left out when the
        /// organization has only one.
        #[arg(long)]
        project: Option<String>,
        /// Forget the admin key instead (the provider key then rotates as a guided one).
        #[arg(long, conflicts_with = "project")]
        forget: bool,
    },
    /// Connect a server you already have, over SSH.
    Connect(server::ConnectArgs),
    /// Save your Hetzner Cloud API token (read from standard input) in the keychain.
    CloudToken,
    /// Create a new server at Hetzner Cloud (or continue an interrupted deploy).
    Deploy(server::DeployArgs),
    /// Delete a deployed server at Hetzner, with its firewall and key.
    Delete(server::DeleteArgs),
    /// Set up (or repair) the assistant on a connected server. Safe to run again.
    Provision(server::ProvisionArgs),
    /// Check the server's safety: open ports, SSH settings, firewall, service, key files.
    Posture(server::PostureArgs),
    /// Time-limited SSH access for someone helping you.
    #[command(subcommand)]
    Support(server::SupportCmd),
    /// Your own tailnet (Tailscale): the API key, the policy check, putting a server on it.
    #[command(subcommand)]
    Tailnet(tailnet::TailnetCmd),
    /// What the assistant used: tokens and cost by day, model, channel or conversation.
    Usage(usage::UsageArgs),
    /// Replace keys: one (`rotate gateway-token`), all that rotate in one click (`--all`),
    /// or list them with their ages and when each is due (`--list`); `--remind 90|never`
    /// sets the reminder schedule. Finishes an interrupted rotation first.
    Rotate(rotate::RotateArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Openrouter,
    OpenaiCompatible,
}

pub(crate) fn fail(p: Problem) -> anyhow::Error {
    anyhow::anyhow!(
        "{}{}",
        p.message,
        p.hint.map(|h| format!("\n→ {h}")).unwrap_or_default()
    )
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLAWKEEPER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let paths = Paths::from_env().context("finding Clawkeeper's data folder")?;
    let app = Clawkeeper::open(paths, Policy::default())
        .await
        .map_err(fail)?;
    match cli.command {
        Command::Status => status(&app, cli.json).await,
        Command::Start { foreground } => {
            print_install_progress(&app);
            app.start().await.map_err(fail)?;
            app.wait_healthy(Duration::from_secs(180))
                .await
                .map_err(fail)?;
            status(&app, cli.json).await?;
            if foreground {
                eprintln!("Running. Press Ctrl-C to stop.");
                tokio::signal::ctrl_c().await?;
                app.stop().await.map_err(fail)?;
            }
            Ok(())
        }
        Command::Stop => {
            app.stop().await.map_err(fail)?;
            println!("Stopped.");
            Ok(())
        }
        Command::Chat {
            message,
            server: Some(id),
        } => server::chat_server(&app, &id, &message, cli.json).await,
        Command::Chat {
            message,
            server: None,
        } => {
            let reply = app
                .chat_round_trip(&message, Duration::from_secs(180))
                .await
                .map_err(fail)?;
            if cli.json {
                println!("{}", serde_json::json!({ "reply": reply }));
            } else {
                println!("{reply}");
            }
            Ok(())
        }
        Command::Install => {
            print_install_progress(&app);
            app.install_runtime().await.map_err(fail)?;
            println!("Installed.");
            Ok(())
        }
        Command::Connect(args) => server::connect(&app, args, cli.json).await,
        Command::CloudToken => server::save_cloud_token(&app).await,
        Command::Deploy(args) => server::deploy_cmd(&app, args, cli.json).await,
        Command::Delete(args) => server::delete_cmd(&app, args, cli.json).await,
        Command::Provision(args) => server::provision_cmd(&app, args, cli.json).await,
        Command::Posture(args) => server::posture_cmd(&app, args, cli.json).await,
        Command::Support(cmd) => server::support_cmd(&app, cmd, cli.json).await,
        Command::Tailnet(cmd) => tailnet::run(&app, cmd, cli.json).await,
        Command::Usage(args) => usage::run(&app, args, cli.json).await,
        Command::Rotate(args) => rotate::run(&app, args, cli.json).await,
        Command::OpenaiAdminKey { forget: true, .. } => {
            app.openai_admin_forget().await.map_err(fail)?;
            println!("Forgot the OpenAI admin key.");
            Ok(())
        }
        Command::OpenaiAdminKey { project, .. } => {
            let mut text = String::new();
            std::io::stdin().take(64 * 1024).read_to_string(&mut text)?;
            let key = Secret::new(text.trim());
            zeroize_string(&mut text);
            if key.is_empty() {
                bail!("No admin key on standard input.\n→ Run: clawkeeper-cli openai-admin-key --project proj_… < keyfile   (or paste it and press Ctrl-D)");
            }
            let saved = app.openai_admin_save(key, project).await.map_err(fail)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&saved)?);
            } else {
                println!(
                    "Saved in your keychain. Your assistant's OpenAI key in project {} now rotates in one click (clawkeeper-cli rotate provider-key).",
                    saved.project_id
                );
            }
            Ok(())
        }
        Command::Provider {
            kind,
            base_url,
            model,
        } => {
            let mut key = String::new();
            std::io::stdin().take(64 * 1024).read_to_string(&mut key)?;
            let api_key = Secret::new(key.trim());
            zeroize_string(&mut key);
            if api_key.is_empty() {
                bail!("No API key on standard input.\n→ Run: clawkeeper-cli provider < keyfile   (or paste it and press Ctrl-D)");
            }
            let kind = match kind {
                Kind::Openrouter => ProviderKind::Openrouter,
                Kind::OpenaiCompatible => ProviderKind::OpenaiCompatible,
            };
            app.save_provider(ProviderInput {
                kind,
                base_url,
                model,
                api_key,
            })
            .await
            .map_err(fail)?;
            println!("Saved in your keychain.");
            Ok(())
        }
    }
}

pub(crate) fn zeroize_string(s: &mut String) {
    // SAFETY-free zeroize: overwrite via the String API, then clear.
    let len = s.len();
    s.clear();
    s.extend(std::iter::repeat_n('\0', len));
    s.clear();
}

fn print_install_progress(app: &Clawkeeper) {
    let mut rx = app.events();
    tokio::spawn(async move {
        let mut last = String::new();
        while let Ok(ev) = rx.recv().await {
            if let Event::Install {
                progress: Some(p), ..
            } = ev
            {
                let line = format!(
                    "{} … {} of about {} MB",
                    p.step,
                    p.done / 1_048_576,
                    p.total / 1_048_576
                );
                if line != last {
                    eprintln!("{line}");
                    last = line;
                }
            }
        }
    });
}

async fn status(app: &Clawkeeper, json: bool) -> Result<()> {
    let mut overview = app.overview().await.map_err(fail)?;
    if let Some(checks) = app.verify_external().await {
        overview.checks = checks;
    }
    let external = app.external_pid();
    let live = if overview.instance.state == "healthy" || external.is_some() {
        app.probe().await.ok().flatten()
    } else {
        None
    };
    let state = match (overview.instance.state, external, &live) {
        ("stopped", Some(_), Some(_)) => "healthy",
        ("stopped", Some(_), None) => "degraded",
        (s, _, _) => s,
    };
    if json {
        let mut v = serde_json::to_value(&overview)?;
        v["instance"]["state"] = serde_json::Value::String(state.to_owned());
        v["instance"]["answering"] = serde_json::Value::Bool(live.is_some());
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let words = match state {
        "healthy" => "Working",
        "starting" => "Starting…",
        "degraded" | "error" => "Needs attention",
        "not_installed" => "Not installed",
        _ => "Stopped",
    };
    println!("Your assistant: {words}");
    if let Some(d) = &overview.instance.detail {
        println!("  {d}");
    }
    if let Some(v) = live {
        println!("  OpenClaw {v} on 127.0.0.1:{}", overview.instance.port);
    }
    println!(
        "Model provider: {}",
        if overview.provider.configured {
            format!(
                "{} (key saved in your keychain, {})",
                overview.provider.model.as_deref().unwrap_or("?"),
                overview.provider.key_fingerprint.as_deref().unwrap_or("")
            )
        } else {
            "not set up — run `clawkeeper-cli provider`".into()
        }
    );
    server::print_checks(&overview.checks, false)?;
    if let Some(n) = &overview.notice {
        println!("Note: {n}");
    }
    Ok(())
}
