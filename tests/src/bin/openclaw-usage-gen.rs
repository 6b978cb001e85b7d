//! Seeded generator of OpenClaw usage state (see `clawkeeper_tests::openclaw_state`).
//!
//! ```text
//! openclaw-usage-gen generate --state <OPENCLAW_STATE_DIR> --events N [--seed S]
//!     [--sessions N] [--days N] [--end-date YYYY-MM-DD] [--agent ID] [--out expected.json]
//! openclaw-usage-gen read --state <OPENCLAW_STATE_DIR> [--out sums.json]
//! ```
//!
//! `generate` appends N transcript events to the gateway's agent database (which the
//! gateway must have created; stop it first) and prints the exact sums it wrote as JSON;
//! `read` sums whatever transcripts the state dir holds.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clawkeeper_tests::openclaw_state::{generate, read_transcript_sums, GenSpec};

fn usage() -> ! {
    eprintln!(
        "usage: openclaw-usage-gen generate --state DIR --events N [--seed S] [--sessions N] \
         [--days N] [--end-date YYYY-MM-DD] [--agent ID] [--out FILE]\n       \
         openclaw-usage-gen read --state DIR [--out FILE]"
    );
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_else(|| usage());
    let mut state: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    let mut events: Option<u64> = None;
    let mut seed = 1u64;
    let mut sessions: Option<u32> = None;
    let mut days: Option<u32> = None;
    let mut end_date: Option<String> = None;
    let mut agent: Option<String> = None;
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--state" => state = Some(value()?.into()),
            "--out" => out = Some(value()?.into()),
            "--events" => events = Some(value()?.parse()?),
            "--seed" => seed = value()?.parse()?,
            "--sessions" => sessions = Some(value()?.parse()?),
            "--days" => days = Some(value()?.parse()?),
            "--end-date" => end_date = Some(value()?),
            "--agent" => agent = Some(value()?),
            _ => usage(),
        }
    }
    let state = state.unwrap_or_else(|| usage());
    let started = Instant::now();
    let result = match cmd.as_str() {
        "generate" => {
            let end_date = match end_date {
                Some(d) => d,
                None => clawkeeper_tests::openclaw_state::utc_day(i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_millis(),
                )?),
            };
            let mut spec = GenSpec::new(seed, events.unwrap_or_else(|| usage()), &end_date);
            if let Some(s) = sessions {
                spec.sessions = s;
            }
            if let Some(d) = days {
                spec.days = d;
            }
            if let Some(a) = agent {
                spec.agent_id = a;
            }
            generate(&state, &spec).await?
        }
        "read" => read_transcript_sums(&state).await?,
        _ => bail!("unknown command {cmd:?}"),
    };
    eprintln!(
        "{cmd}: {} events, {} sessions in {:.2?}",
        result.events,
        result.sessions,
        started.elapsed()
    );
    let json = serde_json::to_string_pretty(&result.to_json())?;
    match out {
        Some(path) => {
            std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{json}"),
    }
    Ok(())
}
