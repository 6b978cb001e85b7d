//! A seeded generator of OpenClaw usage state, and a reader that sums it.
//!
//! [`generate`] writes transcript events into an OpenClaw 2026.9.x state dir the way the
//! gateway stores them (see docs/openclaw-usage.md): per agent one SQLite database
//! `agents/<agent>/agent/openclaw-agent.sqlite` whose `session_nodes` row is a session's
//! store entry (`entry_json`; its `delivery` names the channel), whose `session_windows`
//! row is the transcript instance the usage methods discover (`transcript_updated_at`
//! must be set), and whose `transcript_events` rows are the transcript itself: one JSON
//! event per row, a header, a `model_change`, then `message` events chained by
//! `id`/`parentId`, assistant messages carrying `usage{input, output, cacheRead,
//! cacheWrite, totalTokens, cost{input, output, cacheRead, cacheWrite, total}}`. The
//! gateway's own navigation rows (`transcript_event_identities`,
//! `session_transcript_index_state`, `session_transcript_active_events`) are written too.
//! Rows are stored uncompressed (`event_json`), as the gateway stores every event under
//! 1 KiB; the full-text search index is not filled.
//!
//! The schema is OpenClaw's: the database must already exist, created by the gateway
//! (one chat through it is enough). Stop the gateway while generating.
//!
//! [`generate`] returns the exact sums it wrote ([`Expected`]); [`read_transcript_sums`]
//! reads any state dir (zstd rows included) and sums it the same way, so a test can set
//! the gateway's `usage.cost` / `sessions.usage` against the transcript.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, Row, SqliteConnection};

const MS_PER_DAY: i64 = 86_400_000;

/// A model the generator bills: prices in dollars per million tokens, as in
/// `models.providers.<p>.models[].cost`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub provider: String,
    pub model: String,
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
    /// The provider reports a billed total (OpenRouter's `usage.cost`): the event's
    /// `cost.total` is then that figure (here: the component sum plus 5 %) and carries
    /// `totalOrigin: "provider-billed"`, as the gateway records it.
    pub provider_billed: bool,
}

impl ModelSpec {
    fn new(provider: &str, model: &str, prices: [f64; 4], provider_billed: bool) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            input: prices[0],
            output: prices[1],
            cache_read: prices[2],
            cache_write: prices[3],
            provider_billed,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenSpec {
    pub seed: u64,
    /// Rows written to `transcript_events`, headers and model changes included.
    pub events: u64,
    /// Sessions (transcripts); fewer when `events` is too small to give each four rows.
    pub sessions: u32,
    /// UTC calendar days the events spread over, ending with `end_date`.
    pub days: u32,
    /// Last day (`YYYY-MM-DD`, UTC) that holds events.
    pub end_date: String,
    pub models: Vec<ModelSpec>,
    /// Channels sessions belong to; about one session in five belongs to none (a local
    /// operator session, `delivery.kind: "none"`).
    pub channels: Vec<String>,
    pub agent_id: String,
    /// No event later than this (ms since the epoch): with `end_date` today, "now", as a
    /// real gateway's history never has events from later in the day. None: the whole day.
    pub until_ms: Option<i64>,
}

impl GenSpec {
    /// A realistic mix: 200 sessions over 90 days ending `end_date`, four models (one
    /// OpenRouter-billed), three channels plus channel-less sessions.
    pub fn new(seed: u64, events: u64, end_date: &str) -> Self {
        Self {
            seed,
            events,
            sessions: 200,
            days: 90,
            end_date: end_date.to_owned(),
            models: vec![
                ModelSpec::new("openai", "gpt-5.1-mini", [0.25, 2.0, 0.025, 0.0], false),
                ModelSpec::new(
                    "anthropic",
                    "claude-sonnet-4.5",
                    [3.0, 15.0, 0.3, 3.75],
                    false,
                ),
                ModelSpec::new(
                    "openrouter",
                    "moonshotai/kimi-k2",
                    [0.6, 2.5, 0.15, 0.0],
                    true,
                ),
                ModelSpec::new("google", "gemini-2.5-flash", [0.3, 2.5, 0.03, 0.0], false),
            ],
            channels: vec!["telegram".into(), "whatsapp".into(), "discord".into()],
            agent_id: "main".into(),
            until_ms: None,
        }
    }
}

/// Sums over a set of message events, the way the gateway totals them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total_tokens: u64,
    /// Σ `usage.cost.total` (dollars).
    pub total_cost: f64,
    pub input_cost: f64,
    pub output_cost: f64,
    pub cache_read_cost: f64,
    pub cache_write_cost: f64,
    /// Messages with usage but no positive recorded cost (the gateway prices those from
    /// config at read time, or counts them in `missingCostEntries`).
    pub unpriced: u64,
    /// Messages by role, as in `messageCounts`.
    pub user_messages: u64,
    pub assistant_messages: u64,
}

impl Totals {
    fn add_usage(&mut self, u: &EventUsage) {
        self.input += u.input;
        self.output += u.output;
        self.cache_read += u.cache_read;
        self.cache_write += u.cache_write;
        self.total_tokens += u.total_tokens;
        match u.cost {
            Some(c) => {
                self.total_cost += c.total;
                self.input_cost += c.input;
                self.output_cost += c.output;
                self.cache_read_cost += c.cache_read;
                self.cache_write_cost += c.cache_write;
            }
            None => self.unpriced += 1,
        }
    }

    fn add_message(&mut self, role: Role) {
        match role {
            Role::User => self.user_messages += 1,
            Role::Assistant => self.assistant_messages += 1,
            Role::Tool => {}
        }
    }

    /// Adds another total (for `before + generated` checks).
    pub fn merge(&mut self, o: &Totals) {
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.total_tokens += o.total_tokens;
        self.total_cost += o.total_cost;
        self.input_cost += o.input_cost;
        self.output_cost += o.output_cost;
        self.cache_read_cost += o.cache_read_cost;
        self.cache_write_cost += o.cache_write_cost;
        self.unpriced += o.unpriced;
        self.user_messages += o.user_messages;
        self.assistant_messages += o.assistant_messages;
    }

    /// Same token counts and message counts, and every cost within `tol` (relative to
    /// the larger magnitude, at least absolute `tol`). Returns the first difference.
    pub fn diff(&self, o: &Totals, tol: f64) -> Option<String> {
        let ints = [
            ("input", self.input, o.input),
            ("output", self.output, o.output),
            ("cacheRead", self.cache_read, o.cache_read),
            ("cacheWrite", self.cache_write, o.cache_write),
            ("totalTokens", self.total_tokens, o.total_tokens),
            ("userMessages", self.user_messages, o.user_messages),
            (
                "assistantMessages",
                self.assistant_messages,
                o.assistant_messages,
            ),
        ];
        for (name, a, b) in ints {
            if a != b {
                return Some(format!("{name}: {a} != {b}"));
            }
        }
        let floats = [
            ("totalCost", self.total_cost, o.total_cost),
            ("inputCost", self.input_cost, o.input_cost),
            ("outputCost", self.output_cost, o.output_cost),
            ("cacheReadCost", self.cache_read_cost, o.cache_read_cost),
            ("cacheWriteCost", self.cache_write_cost, o.cache_write_cost),
        ];
        for (name, a, b) in floats {
            if !close(a, b, tol) {
                return Some(format!("{name}: {a} != {b}"));
            }
        }
        None
    }

    /// As the gateway's totals object (`input`, …, `totalCost`, `inputCost`, …).
    pub fn to_json(&self) -> Value {
        json!({
            "input": self.input,
            "output": self.output,
            "cacheRead": self.cache_read,
            "cacheWrite": self.cache_write,
            "totalTokens": self.total_tokens,
            "totalCost": self.total_cost,
            "inputCost": self.input_cost,
            "outputCost": self.output_cost,
            "cacheReadCost": self.cache_read_cost,
            "cacheWriteCost": self.cache_write_cost,
            "unpriced": self.unpriced,
            "userMessages": self.user_messages,
            "assistantMessages": self.assistant_messages,
        })
    }

    /// Reads the token and cost fields of a gateway totals object (`usage.cost`'s
    /// `totals`/`daily[]`, `sessions.usage`'s `totals`/`usage`/`byChannel[].totals`).
    /// Message counts stay 0.
    pub fn from_gateway(v: &Value) -> Totals {
        let u = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        let f = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        Totals {
            input: u("input"),
            output: u("output"),
            cache_read: u("cacheRead"),
            cache_write: u("cacheWrite"),
            total_tokens: u("totalTokens"),
            total_cost: f("totalCost"),
            input_cost: f("inputCost"),
            output_cost: f("outputCost"),
            cache_read_cost: f("cacheReadCost"),
            cache_write_cost: f("cacheWriteCost"),
            unpriced: u("missingCostEntries"),
            ..Totals::default()
        }
    }

    /// Only the fields the gateway reports (message counts zeroed).
    pub fn without_messages(&self) -> Totals {
        Totals {
            user_messages: 0,
            assistant_messages: 0,
            ..*self
        }
    }
}

/// `a` and `b` agree to `tol` relative to the larger magnitude (absolute below 1).
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// The sums of a state dir's transcripts (or of what [`generate`] wrote).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// `transcript_events` rows.
    pub events: u64,
    pub sessions: u64,
    pub totals: Totals,
    /// UTC day (`YYYY-MM-DD`) of `message.timestamp`.
    pub by_day: BTreeMap<String, Totals>,
    /// (UTC day, provider, model).
    pub by_day_model: BTreeMap<(String, String, String), Totals>,
    /// (provider, model).
    pub by_model: BTreeMap<(String, String), Totals>,
    /// Session key (`agent:<agent>:…`).
    pub by_session: BTreeMap<String, Totals>,
    /// Channel of the session's store entry; sessions without one are not in here (as
    /// in the gateway's `byChannel`).
    pub by_channel: BTreeMap<String, Totals>,
    /// First and last UTC day with a message.
    pub first_day: Option<String>,
    pub last_day: Option<String>,
}

impl Expected {
    fn add(&mut self, ctx: &SessionCtx<'_>, msg: &MessageFacts) {
        let day = utc_day(msg.timestamp_ms);
        if self.first_day.as_ref().is_none_or(|d| day < *d) {
            self.first_day = Some(day.clone());
        }
        if self.last_day.as_ref().is_none_or(|d| day > *d) {
            self.last_day = Some(day.clone());
        }
        let mut targets: Vec<&mut Totals> = vec![
            &mut self.totals,
            self.by_day.entry(day.clone()).or_default(),
            self.by_session.entry(ctx.key.to_owned()).or_default(),
        ];
        if let Some(ch) = ctx.channel {
            targets.push(self.by_channel.entry(ch.to_owned()).or_default());
        }
        for t in targets {
            t.add_message(msg.role);
            if let Some(u) = &msg.usage {
                t.add_usage(u);
            }
        }
        if let Some(u) = &msg.usage {
            let provider = msg.provider.clone().unwrap_or_else(|| "unknown".into());
            let model = msg.model.clone().unwrap_or_else(|| "unknown".into());
            self.by_day_model
                .entry((day, provider.clone(), model.clone()))
                .or_default()
                .add_usage(u);
            self.by_model
                .entry((provider, model))
                .or_default()
                .add_usage(u);
        }
    }

    /// Everything as JSON (maps keyed `day`, `day|provider/model`, `provider/model`).
    pub fn to_json(&self) -> Value {
        let map = |m: &BTreeMap<String, Totals>| -> Value {
            Value::Object(m.iter().map(|(k, t)| (k.clone(), t.to_json())).collect())
        };
        json!({
            "events": self.events,
            "sessions": self.sessions,
            "firstDay": self.first_day,
            "lastDay": self.last_day,
            "totals": self.totals.to_json(),
            "byDay": map(&self.by_day),
            "byModel": Value::Object(self.by_model.iter().map(|((p, m), t)| (format!("{p}/{m}"), t.to_json())).collect()),
            "byDayModel": Value::Object(self.by_day_model.iter().map(|((d, p, m), t)| (format!("{d}|{p}/{m}"), t.to_json())).collect()),
            "byChannel": map(&self.by_channel),
            "bySession": map(&self.by_session),
        })
    }

    /// Adds another state's sums (sessions must not overlap).
    pub fn merge(&mut self, o: &Expected) {
        self.events += o.events;
        self.sessions += o.sessions;
        self.totals.merge(&o.totals);
        for (k, t) in &o.by_day {
            self.by_day.entry(k.clone()).or_default().merge(t);
        }
        for (k, t) in &o.by_day_model {
            self.by_day_model.entry(k.clone()).or_default().merge(t);
        }
        for (k, t) in &o.by_model {
            self.by_model.entry(k.clone()).or_default().merge(t);
        }
        for (k, t) in &o.by_session {
            self.by_session.entry(k.clone()).or_default().merge(t);
        }
        for (k, t) in &o.by_channel {
            self.by_channel.entry(k.clone()).or_default().merge(t);
        }
        for d in [&o.first_day, &o.last_day].into_iter().flatten() {
            if self.first_day.as_ref().is_none_or(|f| d < f) {
                self.first_day = Some(d.clone());
            }
            if self.last_day.as_ref().is_none_or(|l| d > l) {
                self.last_day = Some(d.clone());
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct EventCost {
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
    total: f64,
}

#[derive(Debug, Clone, PartialEq)]
struct EventUsage {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    total_tokens: u64,
    /// None: no positive recorded cost.
    cost: Option<EventCost>,
}

#[derive(Debug, Clone, PartialEq)]
struct MessageFacts {
    role: Role,
    timestamp_ms: i64,
    provider: Option<String>,
    model: Option<String>,
    usage: Option<EventUsage>,
}

struct SessionCtx<'a> {
    key: &'a str,
    channel: Option<&'a str>,
}

/// `agents/<agent>/agent/openclaw-agent.sqlite` under a state dir.
pub fn agent_db_path(state_dir: &Path, agent_id: &str) -> PathBuf {
    state_dir
        .join("agents")
        .join(agent_id)
        .join("agent")
        .join("openclaw-agent.sqlite")
}

async fn open_db(path: &Path, read_only: bool) -> anyhow::Result<SqliteConnection> {
    if !path.is_file() {
        bail!(
            "{} does not exist: the schema is OpenClaw's — start the gateway on this state dir \
             and chat once to create it",
            path.display()
        );
    }
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .read_only(read_only)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(30))
        .foreign_keys(true);
    Ok(SqliteConnection::connect_with(&opts).await?)
}

// ---------------------------------------------------------------- deterministic randomness

/// SplitMix64: tiny, fast, and the same on every platform and crate version.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `pct`/100.
    fn pct(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }

    fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

// ---------------------------------------------------------------- time helpers

/// `YYYY-MM-DD` (UTC) of a Unix millisecond timestamp.
pub fn utc_day(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2026-11-26T03:17:34.511Z`.
fn iso_ms(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (h, min, s, milli) = (
        rem / 3_600_000,
        (rem / 60_000) % 60,
        (rem / 1000) % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` → days since 1970-01-01.
fn days_from_civil(date: &str) -> anyhow::Result<i64> {
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        bail!("bad date {date:?}, expected YYYY-MM-DD");
    };
    let (y, m, d): (i64, i64, i64) = (y.parse()?, m.parse()?, d.parse()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        bail!("bad date {date:?}");
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    if utc_day(days * MS_PER_DAY) != date {
        bail!("bad date {date:?}");
    }
    Ok(days)
}

// ---------------------------------------------------------------- generation

#[allow(clippy::cast_precision_loss)] // token counts are far below 2^53
fn price(
    model: &ModelSpec,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
) -> EventCost {
    let input_c = input as f64 * model.input / 1e6;
    let output_c = output as f64 * model.output / 1e6;
    let cr = cache_read as f64 * model.cache_read / 1e6;
    let cw = cache_write as f64 * model.cache_write / 1e6;
    let sum = input_c + output_c + cr + cw;
    let total = if model.provider_billed {
        // A provider's own figure: rounded to 1e-10 dollars, as billing APIs report.
        (sum * 1.05 * 1e10).round() / 1e10
    } else {
        sum
    };
    EventCost {
        input: input_c,
        output: output_c,
        cache_read: cr,
        cache_write: cw,
        total,
    }
}

struct Session {
    key: String,
    id: String,
    channel: Option<String>,
    peer: u64,
    /// Index into the spec's models of the session's usual model.
    home_model: usize,
    events: u64,
    start_ms: i64,
    end_ms: i64,
}

/// Rows of one table, flushed as multi-row INSERTs.
struct Batch {
    sql_head: &'static str,
    cols: usize,
    rows: Vec<Vec<Bind>>,
}

enum Bind {
    Text(String),
    Int(i64),
    Null,
}

const BATCH_ROWS: usize = 200;

impl Batch {
    fn new(sql_head: &'static str, cols: usize) -> Self {
        Self {
            sql_head,
            cols,
            rows: Vec::with_capacity(BATCH_ROWS),
        }
    }

    fn push(&mut self, row: Vec<Bind>) {
        self.rows.push(row);
    }

    fn full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS
    }

    async fn flush(&mut self, conn: &mut SqliteConnection) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let one = format!("({})", vec!["?"; self.cols].join(","));
        let sql = format!(
            "{} VALUES {}",
            self.sql_head,
            vec![one.as_str(); self.rows.len()].join(",")
        );
        let mut q = sqlx::query(&sql);
        for row in self.rows.drain(..) {
            for b in row {
                q = match b {
                    Bind::Text(s) => q.bind(s),
                    Bind::Int(i) => q.bind(i),
                    Bind::Null => q.bind(Option::<i64>::None),
                };
            }
        }
        q.execute(&mut *conn).await?;
        Ok(())
    }
}

fn plan_sessions(spec: &GenSpec, rng: &mut Rng) -> anyhow::Result<Vec<Session>> {
    if spec.models.is_empty() {
        bail!("no models");
    }
    if spec.days == 0 {
        bail!("days must be at least 1");
    }
    let end_day = days_from_civil(&spec.end_date)?;
    let win_start = (end_day - i64::from(spec.days) + 1) * MS_PER_DAY;
    let win_end = ((end_day + 1) * MS_PER_DAY - 1).min(spec.until_ms.unwrap_or(i64::MAX));
    if win_end <= win_start {
        bail!("until_ms is before the first day");
    }
    let n = u64::from(spec.sessions.max(1)).min((spec.events / 4).max(1));
    if spec.events < 4 {
        bail!("need at least 4 events");
    }
    let base = spec.events / n;
    let extra = spec.events % n;
    let mut out = Vec::new();
    for i in 0..n {
        let events = base + u64::from(i < extra);
        // One session in five belongs to no channel.
        let channel = if spec.channels.is_empty() || rng.pct(20) {
            None
        } else {
            let c = usize::try_from(rng.range(0, spec.channels.len() as u64 - 1))?;
            Some(spec.channels[c].clone())
        };
        let peer = rng.range(100_000, 999_999_999);
        let key = match &channel {
            Some(ch) => format!("agent:{}:{ch}:direct:{peer}", spec.agent_id),
            None => format!("agent:{}:gen-{i:05}", spec.agent_id),
        };
        let home_model = usize::try_from(rng.range(0, spec.models.len() as u64 - 1))?;
        // Active for one hour up to the whole window, somewhere inside it.
        let span = u64::try_from(win_end - win_start)?;
        let len = rng.range(3_600_000.min(span), span);
        let start = win_start + i64::try_from(rng.range(0, span - len))?;
        out.push(Session {
            key,
            id: rng.uuid(),
            channel,
            peer,
            home_model,
            events,
            start_ms: start,
            end_ms: start + i64::try_from(len)?,
        });
    }
    Ok(out)
}

/// Writes `spec.events` transcript events into the gateway's database under `state_dir`
/// (which must exist, created by the gateway; the gateway should be stopped) and returns
/// the exact sums of what it wrote. Deterministic in `spec`.
pub async fn generate(state_dir: &Path, spec: &GenSpec) -> anyhow::Result<Expected> {
    let mut rng = Rng(spec.seed);
    let sessions = plan_sessions(spec, &mut rng)?;
    let path = agent_db_path(state_dir, &spec.agent_id);
    let mut conn = open_db(&path, false).await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await?;
    let result = write_sessions(&mut conn, spec, &sessions, &mut rng).await;
    match result {
        Ok(expected) => {
            sqlx::query("COMMIT").execute(&mut conn).await?;
            conn.close().await?;
            Ok(expected)
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
            Err(e)
        }
    }
}

async fn write_sessions(
    conn: &mut SqliteConnection,
    spec: &GenSpec,
    sessions: &[Session],
    rng: &mut Rng,
) -> anyhow::Result<Expected> {
    let mut expected = Expected::default();
    let mut events = Batch::new(
        "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_utf8_bytes)",
        5,
    );
    let mut identities = Batch::new(
        "INSERT INTO transcript_event_identities \
         (session_id, event_id, seq, event_type, parent_id, message_idempotency_key, created_at)",
        7,
    );
    let mut active = Batch::new(
        "INSERT INTO session_transcript_active_events \
         (session_id, active_position, event_seq, message_position, context_eligible)",
        5,
    );
    for s in sessions {
        let ctx = SessionCtx {
            key: &s.key,
            channel: s.channel.as_deref(),
        };
        let home = &spec.models[s.home_model];
        let messages = s.events - 2;
        let step = ((s.end_ms - s.start_ms) / i64::try_from(s.events)?).max(1);
        let at = |seq: u64| -> i64 { s.start_ms + step * i64::try_from(seq).unwrap_or(0) };
        let last_ms = at(s.events - 1);
        insert_session_rows(conn, spec, s, home, last_ms).await?;

        let mut seq: u64 = 0;
        let push_event = |ev: Value,
                          id: Option<&str>,
                          kind: &str,
                          parent: Option<&str>,
                          ts: i64,
                          seq: u64|
         -> (Vec<Bind>, Vec<Bind>) {
            let text = ev.to_string();
            let bytes = i64::try_from(text.len()).unwrap_or(i64::MAX);
            let seq = i64::try_from(seq).unwrap_or(i64::MAX);
            (
                vec![
                    Bind::Text(s.id.clone()),
                    Bind::Int(seq),
                    Bind::Text(text),
                    Bind::Int(ts),
                    Bind::Int(bytes),
                ],
                vec![
                    Bind::Text(s.id.clone()),
                    Bind::Text(id.unwrap_or(&s.id).to_owned()),
                    Bind::Int(seq),
                    Bind::Text(kind.to_owned()),
                    parent.map_or(Bind::Null, |p| Bind::Text(p.to_owned())),
                    Bind::Null,
                    Bind::Int(ts),
                ],
            )
        };

        // seq 0: the header, seq 1: the model the session starts on.
        let t0 = at(0);
        let header = json!({
            "type": "session", "version": 4, "id": s.id,
            "timestamp": iso_ms(t0), "cwd": "/srv/openclaw/workspace",
        });
        let (e, i) = push_event(header, None, "session", None, t0, seq);
        events.push(e);
        identities.push(i);
        seq += 1;
        let t1 = at(1);
        let mut parent = rng.uuid();
        let change = json!({
            "type": "model_change", "provider": home.provider, "modelId": home.model,
            "id": parent, "parentId": null, "timestamp": iso_ms(t1),
        });
        let (e, i) = push_event(change, Some(&parent), "model_change", None, t1, seq);
        events.push(e);
        identities.push(i);
        active.push(vec![
            Bind::Text(s.id.clone()),
            Bind::Int(0),
            Bind::Int(1),
            Bind::Null,
            Bind::Int(1),
        ]);
        seq += 1;

        for m in 0..messages {
            let ts = at(seq);
            let id = rng.uuid();
            let role = if m % 2 == 0 {
                Role::User
            } else {
                Role::Assistant
            };
            let (message, facts) = match role {
                Role::User => {
                    let words = rng.range(3, 40);
                    let text = filler(rng, words);
                    (
                        json!({"role": "user", "content": text, "timestamp": ts - 40}),
                        MessageFacts {
                            role,
                            timestamp_ms: ts - 40,
                            provider: None,
                            model: None,
                            usage: None,
                        },
                    )
                }
                _ => {
                    // Mostly the session's model, sometimes another.
                    let model = if rng.pct(85) {
                        home
                    } else {
                        &spec.models[usize::try_from(rng.range(0, spec.models.len() as u64 - 1))?]
                    };
                    let input =
                        rng.range(200, 9_000) + if rng.pct(10) { rng.range(0, 60_000) } else { 0 };
                    let output = rng.range(5, 900);
                    let cache_read = if rng.pct(40) {
                        rng.range(0, 2 * input)
                    } else {
                        0
                    };
                    let cache_write = if model.cache_write > 0.0 && rng.pct(10) {
                        rng.range(0, input)
                    } else {
                        0
                    };
                    let total_tokens = input + output + cache_read + cache_write;
                    let cost = price(model, input, output, cache_read, cache_write);
                    let mut cost_json = json!({
                        "input": cost.input, "output": cost.output,
                        "cacheRead": cost.cache_read, "cacheWrite": cost.cache_write,
                        "total": cost.total,
                    });
                    if model.provider_billed {
                        cost_json["totalOrigin"] = json!("provider-billed");
                    }
                    let words = (output / 3).clamp(1, 60);
                    let text = filler(rng, words);
                    (
                        json!({
                            "role": "assistant",
                            "content": [{"type": "text", "text": text}],
                            "api": "openai-completions",
                            "provider": model.provider,
                            "model": model.model,
                            "usage": {
                                "input": input, "output": output,
                                "cacheRead": cache_read, "cacheWrite": cache_write,
                                "totalTokens": total_tokens, "cost": cost_json,
                            },
                            "stopReason": "stop",
                            "timestamp": ts - 5,
                            "responseId": format!("gen-{}", rng.next_u64() % 1_000_000_000),
                        }),
                        MessageFacts {
                            role,
                            timestamp_ms: ts - 5,
                            provider: Some(model.provider.clone()),
                            model: Some(model.model.clone()),
                            usage: Some(EventUsage {
                                input,
                                output,
                                cache_read,
                                cache_write,
                                total_tokens,
                                cost: (cost.total > 0.0).then_some(cost),
                            }),
                        },
                    )
                }
            };
            let ev = json!({
                "type": "message", "id": id, "parentId": parent,
                "timestamp": iso_ms(ts), "message": message,
            });
            let (e, i) = push_event(ev, Some(&id), "message", Some(&parent), ts, seq);
            events.push(e);
            identities.push(i);
            active.push(vec![
                Bind::Text(s.id.clone()),
                Bind::Int(i64::try_from(seq - 1)?),
                Bind::Int(i64::try_from(seq)?),
                Bind::Int(i64::try_from(m)?),
                Bind::Int(1),
            ]);
            if events.full() {
                // Events first: the other two reference them.
                events.flush(conn).await?;
                identities.flush(conn).await?;
                active.flush(conn).await?;
            }
            expected.add(&ctx, &facts);
            parent = id;
            seq += 1;
        }
        events.flush(conn).await?;
        identities.flush(conn).await?;
        active.flush(conn).await?;
        sqlx::query(
            "INSERT INTO session_transcript_index_state (session_id, indexed_seq, leaf_event_id, \
             needs_rebuild, active_event_count, active_message_count, updated_at) \
             VALUES (?, ?, ?, 0, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(i64::try_from(s.events - 1)?)
        .bind(&parent)
        .bind(i64::try_from(s.events - 1)?)
        .bind(i64::try_from(messages)?)
        .bind(last_ms)
        .execute(&mut *conn)
        .await?;
        expected.events += s.events;
        expected.sessions += 1;
    }
    Ok(expected)
}

async fn insert_session_rows(
    conn: &mut SqliteConnection,
    spec: &GenSpec,
    s: &Session,
    home: &ModelSpec,
    last_ms: i64,
) -> anyhow::Result<()> {
    let display = s
        .key
        .strip_prefix(&format!("agent:{}:", spec.agent_id))
        .unwrap_or(&s.key)
        .to_owned();
    let delivery = match &s.channel {
        Some(ch) => json!({
            "kind": "external",
            "route": {"channel": ch, "to": s.peer.to_string()},
            "context": {"channel": ch},
            "origin": {"provider": ch},
        }),
        None => json!({"kind": "none"}),
    };
    let entry = json!({
        "sessionId": s.id,
        "updatedAt": last_ms,
        "sessionStartedAt": s.start_ms,
        "lastInteractionAt": last_ms,
        "delivery": delivery,
        "displayName": display,
        "createdVia": if s.channel.is_some() { "channel" } else { "run" },
        "createdAt": s.start_ms,
        "status": "done",
        "model": home.model,
        "modelProvider": home.provider,
        "lastActivityAt": last_ms,
    });
    sqlx::query(
        "INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at, \
         status, created_at, created_via, display_name, last_interaction_at, last_activity_at) \
         VALUES (?, ?, ?, ?, 'done', ?, ?, ?, ?, ?)",
    )
    .bind(&s.key)
    .bind(&s.id)
    .bind(entry.to_string())
    .bind(last_ms)
    .bind(s.start_ms)
    .bind(if s.channel.is_some() {
        "channel"
    } else {
        "run"
    })
    .bind(&display)
    .bind(last_ms)
    .bind(last_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO session_windows (session_id, session_key, session_scope, created_at, \
         updated_at, transcript_updated_at, session_entry_provenance, started_at, ended_at, \
         status, chat_type, channel, model_provider, model, display_name) \
         VALUES (?, ?, 'conversation', ?, ?, ?, 1, ?, ?, 'done', ?, ?, ?, ?, ?)",
    )
    .bind(&s.id)
    .bind(&s.key)
    .bind(s.start_ms)
    .bind(last_ms)
    .bind(last_ms)
    .bind(s.start_ms)
    .bind(last_ms)
    .bind(s.channel.as_ref().map(|_| "direct"))
    .bind(s.channel.as_deref())
    .bind(&home.provider)
    .bind(&home.model)
    .bind(&display)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const WORDS: &[&str] = &[
    "the",
    "gateway",
    "usage",
    "token",
    "reply",
    "session",
    "model",
    "cost",
    "day",
    "channel",
    "cache",
    "tray",
    "keeper",
    "private",
    "assistant",
    "question",
    "answer",
    "today",
    "please",
    "thanks",
];

fn filler(rng: &mut Rng, words: u64) -> String {
    let mut out = String::new();
    for i in 0..words {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[usize::try_from(rng.next_u64() % WORDS.len() as u64).unwrap_or(0)]);
    }
    out
}

// ---------------------------------------------------------------- reading

/// Sums every agent's transcripts under `state_dir` the way the gateway does for the
/// whole range: sessions are the `session_windows` rows with `transcript_updated_at`
/// set, their channel the store entry's (`session_nodes.entry_json` `delivery`); a
/// message counts by role, its `usage` (if any) into the token sums and its recorded
/// `cost` (if `total` > 0) into the costs. Compressed rows (`event_zstd`) are decoded.
/// Transcripts are read in `seq` order without following branches (a linear chat).
pub async fn read_transcript_sums(state_dir: &Path) -> anyhow::Result<Expected> {
    let mut expected = Expected::default();
    let agents = state_dir.join("agents");
    let mut dirs: Vec<_> = match std::fs::read_dir(&agents) {
        Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(expected),
        Err(e) => return Err(e).context(format!("reading {}", agents.display())),
    };
    dirs.sort();
    for dir in dirs {
        let db = dir.join("agent").join("openclaw-agent.sqlite");
        if db.is_file() {
            read_agent(&db, &mut expected).await?;
        }
    }
    Ok(expected)
}

async fn read_agent(db: &Path, expected: &mut Expected) -> anyhow::Result<()> {
    let mut conn = open_db(db, true).await?;
    let windows = sqlx::query(
        "SELECT w.session_id, w.session_key, n.entry_json FROM session_windows w \
         LEFT JOIN session_nodes n ON n.session_key = w.session_key \
         WHERE w.transcript_updated_at IS NOT NULL ORDER BY w.session_id",
    )
    .fetch_all(&mut conn)
    .await?;
    for w in windows {
        let session_id: String = w.try_get(0)?;
        let key: String = w.try_get(1)?;
        let entry: Option<String> = w.try_get(2)?;
        let channel = entry
            .as_deref()
            .and_then(|e| serde_json::from_str::<Value>(e).ok())
            .and_then(|e| entry_channel(&e));
        let ctx = SessionCtx {
            key: &key,
            channel: channel.as_deref(),
        };
        let rows = sqlx::query(
            "SELECT event_json, event_zstd FROM transcript_events WHERE session_id = ? ORDER BY seq",
        )
        .bind(&session_id)
        .fetch_all(&mut conn)
        .await?;
        expected.sessions += 1;
        for row in rows {
            expected.events += 1;
            let text: Option<String> = row.try_get(0)?;
            let zstd: Option<Vec<u8>> = row.try_get(1)?;
            let text = match (text, zstd) {
                (Some(t), _) => t,
                (None, Some(z)) => decode_zstd(&z)?,
                (None, None) => continue,
            };
            let Ok(event) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if let Some(facts) = message_facts(&event) {
                expected.add(&ctx, &facts);
            }
        }
    }
    conn.close().await?;
    Ok(())
}

/// The channel of a session store entry: `delivery.context.channel`, else
/// `delivery.origin.provider`, for external delivery only.
pub fn entry_channel(entry: &Value) -> Option<String> {
    let d = entry.get("delivery")?;
    if d.get("kind").and_then(Value::as_str) != Some("external") {
        return None;
    }
    d.pointer("/context/channel")
        .or_else(|| d.pointer("/origin/provider"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn decode_zstd(bytes: &[u8]) -> anyhow::Result<String> {
    let mut decoder = ruzstd::decoding::StreamingDecoder::new(bytes)
        .map_err(|e| anyhow::anyhow!("zstd frame: {e}"))?;
    let mut out = Vec::new();
    decoder.read_to_end(&mut out)?;
    Ok(String::from_utf8(out)?)
}

fn message_facts(event: &Value) -> Option<MessageFacts> {
    let message = event.get("message")?;
    let role = match message.get("role").and_then(Value::as_str)? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" | "toolResult" => Role::Tool,
        _ => return None,
    };
    let timestamp_ms = message
        .get("timestamp")
        .and_then(Value::as_f64)
        .map(|t| t as i64)
        .or_else(|| {
            let iso = event.get("timestamp")?.as_str()?;
            let t =
                time::OffsetDateTime::parse(iso, &time::format_description::well_known::Rfc3339)
                    .ok()?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
        })?;
    let usage = message
        .get("usage")
        .or_else(|| event.get("usage"))
        .map(|u| {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            let (input, output, cache_read, cache_write) =
                (n("input"), n("output"), n("cacheRead"), n("cacheWrite"));
            let total_tokens = u
                .get("totalTokens")
                .and_then(Value::as_u64)
                .unwrap_or(input + output + cache_read + cache_write);
            let c = |k: &str| {
                u.pointer(&format!("/cost/{k}"))
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
            };
            let cost = EventCost {
                input: c("input"),
                output: c("output"),
                cache_read: c("cacheRead"),
                cache_write: c("cacheWrite"),
                total: c("total"),
            };
            EventUsage {
                input,
                output,
                cache_read,
                cache_write,
                total_tokens,
                cost: (cost.total > 0.0).then_some(cost),
            }
        });
    let text = |k: &str| {
        message
            .get(k)
            .or_else(|| event.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Some(MessageFacts {
        role,
        timestamp_ms,
        provider: text("provider"),
        model: text("model"),
        usage,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for d in [
            "1970-01-01",
            "2000-02-29",
            "2026-11-26",
            "2026-12-31",
            "2027-03-01",
        ] {
            let days = days_from_civil(d).unwrap();
            assert_eq!(utc_day(days * MS_PER_DAY), d);
        }
        assert!(days_from_civil("2026-02-30").is_err());
        assert_eq!(iso_ms(1_795_663_054_511), "2026-11-26T03:17:34.511Z");
        assert_eq!(utc_day(1_795_663_054_511), "2026-11-26");
    }

    #[test]
    fn rng_is_stable() {
        let mut r = Rng(42);
        let a: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut r = Rng(42);
        let b: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        assert_eq!(Rng(7).uuid().len(), 36);
    }

    #[test]
    fn plan_covers_every_event_inside_the_window() {
        let spec = GenSpec::new(3, 10_003, "2026-11-25");
        let sessions = plan_sessions(&spec, &mut Rng(3)).unwrap();
        assert_eq!(sessions.len(), 200);
        assert_eq!(sessions.iter().map(|s| s.events).sum::<u64>(), 10_003);
        let lo = days_from_civil("2026-08-28").unwrap() * MS_PER_DAY;
        let hi = (days_from_civil("2026-11-25").unwrap() + 1) * MS_PER_DAY;
        for s in &sessions {
            assert!(
                s.start_ms >= lo && s.end_ms < hi,
                "{} {}",
                s.start_ms,
                s.end_ms
            );
        }
    }

    #[test]
    fn reads_a_gateway_assistant_event() {
        let ev: Value = serde_json::from_str(r#"{"type":"message","id":"a","parentId":"b","timestamp":"2026-11-26T03:17:34.724Z","message":{"role":"assistant","content":[{"type":"text","text":"x"}],"api":"openai-completions","provider":"fake","model":"echo-1","usage":{"input":6369,"output":9,"cacheRead":0,"cacheWrite":0,"totalTokens":6378,"cost":{"input":0.0095535,"output":0.000054,"cacheRead":0,"cacheWrite":0,"total":0.012827999999999999,"totalOrigin":"provider-billed"}},"stopReason":"stop","timestamp":1795663054671}}"#).unwrap();
        let f = message_facts(&ev).unwrap();
        assert_eq!(f.role, Role::Assistant);
        assert_eq!(f.timestamp_ms, 1_795_663_054_671);
        let u = f.usage.unwrap();
        assert_eq!((u.input, u.output, u.total_tokens), (6369, 9, 6378));
        // serde_json's default float parser may be 1 ulp off JavaScript's.
        assert!(close(
            u.cost.unwrap().total,
            0.012_827_999_999_999_999,
            1e-15
        ));
    }
    #[test]
    fn decodes_a_gateway_zstd_row() {
        // What the gateway's codec (node:zlib zstdCompressSync, level 1, checksum on)
        // stores in event_zstd for a 1,869-byte assistant event.
        let hex = [
            "28b52ffd644d061d070052cf2d214069dc0671ca8382fef62b556b0be99d328a65b366d4bfa2df0a",
            "e36f5c15458d0bd3a48b921852298a2160d1695247ee9123f5c87e8e39a6aafd6b9c700767b56b6e",
            "1611ec9bc5038c601673cc542db963eabe25a8b12f563a5e0d871bf71ccf8985f07dc40d53701174",
            "3c980ee0100c7ff1ade036d877e36e8e39bedbeac7de5bdfb3e3a22f165f9020cb91a85d74551e14",
            "c45035142491efa167f5e387f5f129d08da3051daf8aef1b763c27acf7f8f99ea185fe220e0009e7",
            "c30432a6808314629329b498b4bedc7a34b7827fd975d4a17ca3c2057f94272754e15c930c1e4fbf",
            "bc",
        ]
        .concat();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let text = decode_zstd(&bytes).unwrap();
        assert_eq!(text.len(), 1869);
        let f = message_facts(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(f.usage.unwrap().total_tokens, 310);
    }
}
