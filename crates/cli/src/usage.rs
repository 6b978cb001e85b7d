//! `clawkeeper-cli usage`: what the assistant used, from the app's own ledger (fast, works
//! while the assistant is stopped), grouped by day, model, channel or session, as a table,
//! JSON or CSV. `--refresh` asks the running assistant for what's new first.

use crate::fail;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use clawkeeper_core::app::{Clawkeeper, Format};
use clawkeeper_core::usage::{format_dollars, By, Day};

#[derive(Args)]
pub struct UsageArgs {
    /// How far back: `30d` (the last 30 days, today included) or a date (`2026-11-01`).
    #[arg(long, default_value = "30d")]
    since: String,
    /// Group by day, model, channel or session.
    #[arg(long, value_enum, default_value_t = ByArg::Day)]
    by: ByArg,
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Bring the numbers up to date from the running assistant first.
    #[arg(long)]
    refresh: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ByArg {
    Day,
    Model,
    Channel,
    Session,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Json,
    Csv,
}

/// `30d` → 30 days back from `today` (today included); `YYYY-MM-DD` → that day.
fn since(s: &str, today: Day) -> Option<Day> {
    if let Some(n) = s.strip_suffix('d') {
        let n: i64 = n.parse().ok().filter(|n| (1..=36_600).contains(n))?;
        return Some(today.plus(1 - n));
    }
    Day::parse(s)
}

pub async fn run(app: &Clawkeeper, args: UsageArgs, json: bool) -> Result<()> {
    let today = Day::today();
    let Some(from) = since(&args.since, today) else {
        bail!(
            "--since {:?} isn't a number of days (30d) or a date (2026-11-01).",
            args.since
        );
    };
    if args.refresh {
        if let Err(p) = app.usage_sync().await {
            eprintln!("Not brought up to date: {}", p.message);
        }
    }
    let by = match args.by {
        ByArg::Day => By::Day,
        ByArg::Model => By::Model,
        ByArg::Channel => By::Channel,
        ByArg::Session => By::Session,
    };
    let format = if json { FormatArg::Json } else { args.format };
    match format {
        FormatArg::Json | FormatArg::Csv => {
            let f = if matches!(format, FormatArg::Json) {
                Format::Json
            } else {
                Format::Csv
            };
            let text = app.usage_export(f, from, today, by).await.map_err(fail)?;
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
        FormatArg::Table => {
            let rows = app
                .usage_ledger()
                .breakdown(
                    &clawkeeper_core::usage::ledger::Filter {
                        from,
                        to: today,
                        instance: None,
                    },
                    by,
                )
                .await
                .map_err(|e| fail(clawkeeper_core::UserFacing::problem(&e)))?;
            let head = match by {
                By::Day => "Day (UTC)",
                By::Model => "Model",
                By::Channel => "Channel",
                By::Session | By::DayModel => "Conversation",
            };
            println!("Usage {from} to {today} (days are UTC days)");
            println!("{head:<40} {:>12} {:>12} {:>12}", "Input", "Output", "Cost");
            let (mut tokens_in, mut tokens_out, mut cost) = (0u64, 0u64, 0.0f64);
            for r in &rows {
                let name = match (by, r.day, &r.label) {
                    (By::Day, Some(d), _) => d.to_string(),
                    (By::Session, _, Some(l)) => format!("{l} ({})", r.key),
                    _ => r.key.clone(),
                };
                let name: String = name.chars().take(40).collect();
                let (i, o) = if by == By::Model {
                    ("-".to_owned(), format!("{} total", r.tokens.total))
                } else {
                    (r.tokens.input.to_string(), r.tokens.output.to_string())
                };
                println!("{name:<40} {i:>12} {o:>12} {:>12}", format_dollars(r.cost));
                tokens_in += r.tokens.input;
                tokens_out += r.tokens.output;
                cost += r.cost;
            }
            if rows.is_empty() {
                println!("(no use recorded)");
            }
            let (i, o) = if by == By::Model {
                ("-".to_owned(), "-".to_owned())
            } else {
                (tokens_in.to_string(), tokens_out.to_string())
            };
            println!(
                "{:<40} {i:>12} {o:>12} {:>12}",
                "Total",
                format_dollars(cost)
            );
            if let Ok(s) = app.usage_summary().await {
                match (s.synced_at, s.error) {
                    (Some(at), None) => println!("Counted at {at}"),
                    (Some(at), Some(e)) => println!("Counted at {at}; the last update failed: {e}"),
                    (None, _) => {
                        println!("Not counted yet: run with --refresh while the assistant runs.")
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_days_or_a_date() {
        let today = Day::parse("2026-11-26").unwrap();
        assert_eq!(since("1d", today), Some(today));
        assert_eq!(since("30d", today), Day::parse("2026-10-28"));
        assert_eq!(since("2026-11-01", today), Day::parse("2026-11-01"));
        assert_eq!(since("0d", today), None);
        assert_eq!(since("-3d", today), None);
        assert_eq!(since("week", today), None);
    }
}
