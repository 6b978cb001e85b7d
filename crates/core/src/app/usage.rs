//! Usage and spend in the facade: syncing the assistant's usage into the ledger (every
//! few minutes in the tray daemon, or on demand), the view the status window and the
//! tray show, exports, the spend cap and its alerts, and pausing at the cap.

use super::{problem, Clawkeeper, Event};
use crate::audit;
use crate::local::supervisor::InstanceState;
use crate::local::LOCAL_ID;
use crate::openrouter::{LimitReset, OpenRouterApi, RetryPolicy};
use crate::problem::{Problem, UserFacing};
use crate::secret::Secret;
use crate::store::ProviderKind;
use crate::usage::alerts::{self, Cap};
use crate::usage::ledger::{Filter, Ledger, Row, Totals};
use crate::usage::{format_dollars, By, Day, Period, SyncReport, Syncer};
use crate::vault::{SecretKind, SecretRef};
use serde::Serialize;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The setting that says the assistant was paused at the cap (value: the day it was).
pub const PAUSED_SETTING: &str = "spend.paused";

/// The setting that remembers the OpenRouter hash of the assistant's key (to set its cap).
use crate::rotation::provider_key::OPENROUTER_KEY_HASH as KEY_HASH_SETTING;

/// The management key's place in the keychain.
fn management_ref() -> SecretRef {
    SecretRef::new(SecretKind::ProviderManagement, "openrouter")
}

/// OpenRouter's API: `CLAWKEEPER_OPENROUTER_SITE` (tests: the contract fake), else the
/// real site.
pub(super) fn openrouter_api() -> Result<OpenRouterApi, Problem> {
    let site = std::env::var("CLAWKEEPER_OPENROUTER_SITE")
        .unwrap_or_else(|_| crate::openrouter::SITE.to_owned());
    OpenRouterApi::for_site(&site, RetryPolicy::default()).map_err(|e| e.problem())
}

fn limit_reset(p: Period) -> LimitReset {
    match p {
        Period::Daily => LimitReset::Daily,
        Period::Weekly => LimitReset::Weekly,
        Period::Monthly => LimitReset::Monthly,
    }
}

/// The two counts disagree enough to show: more than a cent and more than 5 %.
fn disagree(app: f64, provider: f64) -> bool {
    let diff = (app - provider).abs();
    diff > 0.01 && diff > 0.05 * app.max(provider)
}

/// How often the tray daemon syncs usage when nothing is wrong.
pub const SYNC_EVERY: Duration = Duration::from_secs(300);
/// The longest wait between attempts while the assistant can't be reached.
const SYNC_BACKOFF_MAX: Duration = Duration::from_secs(1800);

/// The compressed summary for the tray (tooltip and menu line).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    pub today: f64,
    pub month: f64,
    /// Percent of the cap used in its current period, if there is a cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_percent: Option<f64>,
    /// When the numbers were last brought up to date (RFC 3339), if ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_at: Option<String>,
    /// Why the last attempt failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub paused: bool,
}

impl UsageSummary {
    /// "$0.42 today · $6.10 this month" (and "· 85 % of cap").
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} today · {} this month",
            format_dollars(self.today),
            format_dollars(self.month)
        );
        if let Some(p) = self.cap_percent {
            s.push_str(&format!(" · {p:.0}% of cap"));
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapView {
    #[serde(flatten)]
    pub cap: Cap,
    pub period_start: Day,
    pub period_end: Day,
    pub spent: f64,
    pub percent: f64,
}

/// Where the app's count (from the assistant) and the provider's disagree by more than a
/// cent and 5 %: shown side by side, never silently picked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// `today` | `month` (OpenRouter's key) | a past UTC day `YYYY-MM-DD` (the account's
    /// activity, with a management key)
    pub period: String,
    pub app: f64,
    pub provider: f64,
}

/// What the model provider itself says (OpenRouter's key and, with a management key, its
/// activity and credits), when it can be asked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderUsageView {
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub today: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub week: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub month: Option<f64>,
    /// The key's limit, and what is left of it (`None`: no limit on the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_remaining: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_reset: Option<String>,
    /// The cap is set on the key at the provider (so it holds even if this app is closed).
    pub cap_enforced: bool,
    /// A management key is saved (so the cap can be set at the provider).
    pub management_key: bool,
    /// Credits left on the account (management key only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_left: Option<f64>,
    pub checked_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub differs: Vec<Difference>,
}

/// Spend as it stands (see `Clawkeeper::spend_now`).
struct SpendNow {
    today: Totals,
    month: Totals,
    cap: Option<CapView>,
    summary: UsageSummary,
}

/// Everything the status window's Usage section shows, from the ledger only (fast: no
/// call to the assistant).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    /// Days are UTC days (what OpenRouter and the caps count in): the UI says so.
    pub days_are: &'static str,
    pub today: Day,
    pub from: Day,
    pub to: Day,
    pub summary: UsageSummary,
    pub today_totals: Totals,
    pub month_totals: Totals,
    pub range_totals: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<CapView>,
    pub daily: Vec<Row>,
    pub model_daily: Vec<Row>,
    pub models: Vec<Row>,
    pub channels: Vec<Row>,
    pub sessions: Vec<Row>,
    /// The provider's own view, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderUsageView>,
}

/// A usage export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// Where exports go: `CLAWKEEPER_EXPORT_DIR`, else Downloads, else the home folder.
fn export_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("CLAWKEEPER_EXPORT_DIR").filter(|d| !d.is_empty()) {
        return d.into();
    }
    directories::UserDirs::new()
        .and_then(|u| {
            u.download_dir()
                .map(std::path::Path::to_owned)
                .or_else(|| Some(u.home_dir().to_owned()))
        })
        .unwrap_or_else(std::env::temp_dir)
}

fn usage_problem(e: &crate::usage::Error) -> Problem {
    problem(e)
}

/// A CSV field: quoted when needed, and text that a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) made plain with a leading `'`.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Rows as CSV with a header line. Costs in US dollars with full precision.
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::from(
        "day,key,label,input_tokens,output_tokens,cache_read_tokens,cache_write_tokens,total_tokens,cost_usd,calls\n",
    );
    for r in rows {
        let line = [
            r.day.map(|d| d.to_string()).unwrap_or_default(),
            csv_field(&r.key),
            csv_field(r.label.as_deref().unwrap_or("")),
            r.tokens.input.to_string(),
            r.tokens.output.to_string(),
            r.tokens.cache_read.to_string(),
            r.tokens.cache_write.to_string(),
            r.tokens.total.to_string(),
            format!("{}", r.cost),
            r.calls.map(|c| c.to_string()).unwrap_or_default(),
        ]
        .join(",");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

impl Clawkeeper {
    pub fn usage_ledger(&self) -> Ledger {
        Ledger::new(self.inner.store.clone())
    }

    /// The instance whose gateway chat (and so usage sync) goes to.
    async fn usage_instance(&self) -> String {
        self.assistant_server()
            .await
            .unwrap_or_else(|| LOCAL_ID.to_owned())
    }

    /// Bring the assistant's usage up to date now (only the last days are asked for), then
    /// give any spend alert that is due. The assistant on this computer must be running.
    pub async fn usage_sync(&self) -> Result<SyncReport, Problem> {
        let instance = self.usage_instance().await;
        // The provider's count is independent of the assistant: asked either way.
        self.refresh_provider().await;
        if instance == LOCAL_ID {
            let state = self.inner.supervisor.status().borrow().state.clone();
            if !matches!(
                state,
                InstanceState::Healthy { .. } | InstanceState::Degraded { .. }
            ) {
                let _ = self.check_spend().await;
                self.emit_usage().await;
                return Err(Problem::new(
                    "assistant_not_running",
                    "Your assistant isn't running, so its usage can't be brought up to date.",
                    Some("Start it; the numbers shown are from when it last ran."),
                ));
            }
        }
        let gw = match self.gateway().await {
            Ok(gw) => gw,
            Err(p) => {
                let _ = self.check_spend().await;
                return Err(p);
            }
        };
        let syncer = Syncer::new(self.usage_ledger());
        let result = syncer.sync(&gw, &instance, Day::today()).await;
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = self.check_spend().await;
                self.emit_usage().await;
                return Err(usage_problem(&e));
            }
        };
        tracing::debug!(?report, "usage synced");
        self.check_spend().await?;
        self.emit_usage().await;
        Ok(report)
    }

    /// Give the spend alerts that are due (each once per period), and pause the assistant
    /// at the cap if the person asked for that. Spend is the higher of the app's count and
    /// the provider's (OpenRouter also counts use of the key elsewhere).
    async fn check_spend(&self) -> Result<(), Problem> {
        let store = &self.inner.store;
        let today = Day::today();
        let cap = Cap::load(store).await.map_err(|e| usage_problem(&e))?;
        let ledger = self.usage_ledger();
        let provider = self.provider_view();
        let spent = match &cap {
            Some(c) => {
                let (from, to) = c.period.bounds(today);
                let ours = ledger
                    .totals(&Filter {
                        from,
                        to,
                        instance: None,
                    })
                    .await
                    .map_err(|e| usage_problem(&e))?
                    .cost;
                let theirs = provider
                    .as_ref()
                    .filter(|p| p.error.is_none())
                    .and_then(|p| match c.period {
                        Period::Daily => p.today,
                        Period::Weekly => p.week,
                        Period::Monthly => p.month,
                    });
                ours.max(theirs.unwrap_or(0.0))
            }
            None => 0.0,
        };
        let daily = ledger
            .daily_spend(&Filter {
                from: today.plus(-alerts::SPIKE_WINDOW - 1),
                to: today,
                instance: None,
            })
            .await
            .map_err(|e| usage_problem(&e))?;
        let due = alerts::due(store, cap.as_ref(), spent, &daily, today)
            .await
            .map_err(|e| usage_problem(&e))?;
        for alert in due {
            let (summary, body) = alert.words();
            let _ = audit::append(store, None, "spend.alert", &summary).await;
            self.emit(Event::SpendAlert {
                summary,
                body,
                alert: alert.clone(),
            });
        }
        if let Some(c) = cap
            .as_ref()
            .filter(|c| c.pause_at_cap && spent + 1e-9 >= c.amount)
        {
            let (period_start, _) = c.period.bounds(today);
            if alerts::once(store, "pause", period_start, 100)
                .await
                .map_err(|e| usage_problem(&e))?
            {
                self.pause_at_cap(today).await?;
            }
        }
        Ok(())
    }

    /// Stop the assistant on this computer because the cap was reached (a server's
    /// assistant is held back by the provider's own limit on the key).
    async fn pause_at_cap(&self, today: Day) -> Result<(), Problem> {
        let store = &self.inner.store;
        store
            .set_setting(PAUSED_SETTING, &today.to_string())
            .await
            .map_err(|e| problem(&e))?;
        let _ = audit::append(
            store,
            Some(LOCAL_ID),
            "spend.paused",
            "the spend cap was reached",
        )
        .await;
        if self.usage_instance().await == LOCAL_ID {
            self.stop().await?;
        }
        Ok(())
    }

    /// Whether the assistant was paused at the cap.
    pub async fn spend_paused(&self) -> bool {
        matches!(self.inner.store.setting(PAUSED_SETTING).await, Ok(Some(_)))
    }

    /// Resume after a pause at the cap: one click.
    pub async fn spend_resume(&self) -> Result<(), Problem> {
        // Resuming within the same period must not pause again at once: the pause of this
        // period is already recorded (see check_spend), so it stays resumed until the next.
        let store = &self.inner.store;
        store
            .delete_setting(PAUSED_SETTING)
            .await
            .map_err(|e| problem(&e))?;
        let _ = audit::append(store, Some(LOCAL_ID), "spend.resumed", "").await;
        if self.usage_instance().await == LOCAL_ID {
            self.start().await?;
        }
        self.emit_usage().await;
        Ok(())
    }

    /// Set (or with `None`, remove) the spend cap.
    pub async fn spend_cap_set(&self, cap: Option<Cap>, days: u32) -> Result<UsageView, Problem> {
        let store = &self.inner.store;
        match &cap {
            Some(c) => {
                c.save(store).await.map_err(|e| usage_problem(&e))?;
                let _ = audit::append(
                    store,
                    None,
                    "spend.cap_set",
                    &format!("{} {}", format_dollars(c.amount), c.period.name()),
                )
                .await;
            }
            None => {
                Cap::clear(store).await.map_err(|e| usage_problem(&e))?;
                let _ = audit::append(store, None, "spend.cap_removed", "").await;
            }
        }
        // At the provider too, so it holds when this app is closed. A failure there keeps
        // the cap here and says why in the provider's part of the view.
        let enforced = self.enforce_cap(cap.as_ref()).await;
        self.refresh_provider().await;
        if let Err(p) = enforced {
            tracing::warn!(code = %p.code, "the cap could not be set at the provider");
            if let Ok(mut v) = self.inner.provider_usage.lock() {
                if let Some(v) = v.as_mut() {
                    v.error = Some(format!(
                        "The cap couldn't be set at OpenRouter: {}",
                        p.message
                    ));
                }
            }
        }
        // A cap below what is already spent is news at once.
        self.check_spend().await?;
        self.emit_usage().await;
        self.usage_view(days).await
    }

    /// Today's and this month's totals and the cap's current period, read once for both
    /// the tray's summary and the Usage section.
    async fn spend_now(&self, today: Day) -> Result<SpendNow, Problem> {
        let ledger = self.usage_ledger();
        let err = |e: crate::usage::Error| usage_problem(&e);
        let all = |(from, to): (Day, Day)| Filter {
            from,
            to,
            instance: None,
        };
        let today_totals = ledger.totals(&all((today, today))).await.map_err(err)?;
        let month_totals = ledger
            .totals(&all(Period::Monthly.bounds(today)))
            .await
            .map_err(err)?;
        let cap = match Cap::load(&self.inner.store).await.map_err(err)? {
            Some(c) => {
                let (period_start, period_end) = c.period.bounds(today);
                let spent = ledger
                    .totals(&all((period_start, period_end)))
                    .await
                    .map_err(err)?
                    .cost;
                Some(CapView {
                    percent: 100.0 * spent / c.amount,
                    cap: c,
                    period_start,
                    period_end,
                    spent,
                })
            }
            None => None,
        };
        let state = ledger
            .sync_state(&self.usage_instance().await)
            .await
            .map_err(err)?;
        let summary = UsageSummary {
            today: today_totals.cost,
            month: month_totals.cost,
            cap_percent: cap.as_ref().map(|c| c.percent),
            synced_at: state.as_ref().map(|s| s.synced_at.clone()),
            error: state.and_then(|s| s.error),
            paused: self.spend_paused().await,
        };
        Ok(SpendNow {
            today: today_totals,
            month: month_totals,
            cap,
            summary,
        })
    }

    pub async fn usage_summary(&self) -> Result<UsageSummary, Problem> {
        Ok(self.spend_now(Day::today()).await?.summary)
    }

    async fn emit_usage(&self) {
        if let Ok(s) = self.usage_summary().await {
            self.emit(Event::Usage(s));
        }
    }

    /// The Usage section: the last `days` days (UTC) and the current month.
    pub async fn usage_view(&self, days: u32) -> Result<UsageView, Problem> {
        let today = Day::today();
        let from = today.plus(-i64::from(days.clamp(1, 3660)) + 1);
        let f = Filter {
            from,
            to: today,
            instance: None,
        };
        let ledger = self.usage_ledger();
        let err = |e: crate::usage::Error| usage_problem(&e);
        let now = self.spend_now(today).await?;
        let mut sessions = ledger.breakdown(&f, By::Session).await.map_err(err)?;
        sessions.truncate(20);
        Ok(UsageView {
            days_are: "utc",
            today,
            from,
            to: today,
            today_totals: now.today,
            month_totals: now.month,
            range_totals: ledger.totals(&f).await.map_err(err)?,
            summary: now.summary,
            cap: now.cap,
            daily: ledger.breakdown(&f, By::Day).await.map_err(err)?,
            model_daily: ledger.breakdown(&f, By::DayModel).await.map_err(err)?,
            models: ledger.breakdown(&f, By::Model).await.map_err(err)?,
            channels: ledger.breakdown(&f, By::Channel).await.map_err(err)?,
            sessions,
            provider: self.provider_view(),
        })
    }

    /// Usage over `from..=to` grouped `by`, as CSV or JSON text.
    pub async fn usage_export(
        &self,
        format: Format,
        from: Day,
        to: Day,
        by: By,
    ) -> Result<String, Problem> {
        let rows = self
            .usage_ledger()
            .breakdown(
                &Filter {
                    from,
                    to,
                    instance: None,
                },
                by,
            )
            .await
            .map_err(|e| usage_problem(&e))?;
        Ok(match format {
            Format::Csv => to_csv(&rows),
            Format::Json => serde_json::to_string_pretty(&serde_json::json!({
                "daysAre": "utc",
                "currency": "USD",
                "from": from,
                "to": to,
                "rows": rows,
            }))
            .unwrap_or_default(),
        })
    }

    /// Save an export as a file in the person's Downloads folder (or
    /// `CLAWKEEPER_EXPORT_DIR`), never over an existing file. Returns where it went.
    pub async fn usage_save(
        &self,
        format: Format,
        from: Day,
        to: Day,
        by: By,
    ) -> Result<std::path::PathBuf, Problem> {
        let text = self.usage_export(format, from, to, by).await?;
        let dir = export_dir();
        let ext = match format {
            Format::Csv => "csv",
            Format::Json => "json",
        };
        let by_name = match by {
            By::Day => "by-day",
            By::Model => "by-model",
            By::Channel => "by-channel",
            By::Session => "by-conversation",
            By::DayModel => "by-day-and-model",
        };
        let cant = |e: std::io::Error| {
            let disk_full = e.raw_os_error() == Some(libc::ENOSPC);
            Problem::new(
                if disk_full {
                    "disk_full"
                } else {
                    "export_failed"
                },
                format!(
                    "The usage export couldn't be saved in {}: {e}",
                    dir.display()
                ),
                Some(if disk_full {
                    "Free some disk space, then export again."
                } else {
                    "Check that the folder exists and is writable, then export again."
                }),
            )
        };
        tokio::fs::create_dir_all(&dir).await.map_err(cant)?;
        let stem = format!("clawkeeper-usage-{by_name}-{from}-to-{to}");
        let mut path = dir.join(format!("{stem}.{ext}"));
        let mut n = 2;
        while tokio::fs::try_exists(&path).await.unwrap_or(false) {
            path = dir.join(format!("{stem}-{n}.{ext}"));
            n += 1;
        }
        let tmp = path.with_extension(format!("{ext}.part"));
        let write = async {
            tokio::fs::write(&tmp, text.as_bytes()).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(cant(e));
        }
        let _ = audit::append(
            &self.inner.store,
            None,
            "usage.exported",
            &path.display().to_string(),
        )
        .await;
        Ok(path)
    }

    /// The assistant's OpenRouter key, when the provider is OpenRouter.
    async fn openrouter_key(&self) -> Option<Secret> {
        let rec = self.inner.store.provider(LOCAL_ID).await.ok().flatten()?;
        if rec.kind != ProviderKind::Openrouter {
            return None;
        }
        self.inner
            .vault
            .read(&self.inner.instance.provider_key_ref())
            .await
            .ok()
    }

    pub(super) async fn management_key(&self) -> Option<Secret> {
        self.inner.vault.read(&management_ref()).await.ok()
    }

    /// Save an OpenRouter management key (checked first: OpenRouter must accept it as one),
    /// then set the spend cap on the assistant's key at OpenRouter, if there is a cap.
    pub async fn provider_management_save(&self, key: Secret) -> Result<UsageView, Problem> {
        let api = openrouter_api()?;
        api.credits(&key).await.map_err(|e| e.problem())?;
        self.inner
            .vault
            .store(&management_ref(), &key)
            .await
            .map_err(|e| problem(&e))?;
        drop(key);
        let _ = audit::append(
            &self.inner.store,
            None,
            "provider.management_key_saved",
            "OpenRouter",
        )
        .await;
        let cap = Cap::load(&self.inner.store)
            .await
            .map_err(|e| usage_problem(&e))?;
        if let Some(c) = &cap {
            self.enforce_cap(Some(c)).await?;
        }
        let _ = self.refresh_provider().await;
        self.usage_view(30).await
    }

    /// Forget the management key (the cap at OpenRouter stays as it was set).
    pub async fn provider_management_forget(&self) -> Result<UsageView, Problem> {
        self.inner
            .vault
            .delete(&management_ref())
            .await
            .map_err(|e| problem(&e))?;
        let _ = self.inner.store.delete_setting(KEY_HASH_SETTING).await;
        let _ = audit::append(
            &self.inner.store,
            None,
            "provider.management_key_forgotten",
            "OpenRouter",
        )
        .await;
        let _ = self.refresh_provider().await;
        self.usage_view(30).await
    }

    /// Set the cap (or with `None`, remove it) on the assistant's key at OpenRouter, so it
    /// holds even when this app is closed. Needs the management key; returns false when
    /// there is none or the provider isn't OpenRouter.
    async fn enforce_cap(&self, cap: Option<&Cap>) -> Result<bool, Problem> {
        let (Some(key), Some(mgmt)) = (self.openrouter_key().await, self.management_key().await)
        else {
            return Ok(false);
        };
        let api = openrouter_api()?;
        let (limit, reset) = (cap.map(|c| c.amount), cap.map(|c| limit_reset(c.period)));
        let mut remembered = self
            .inner
            .store
            .setting(KEY_HASH_SETTING)
            .await
            .ok()
            .flatten();
        let mut retried = false;
        loop {
            let hash = match remembered.take() {
                Some(h) => h,
                None => {
                    let h = api
                        .find_key_hash(&mgmt, &key)
                        .await
                        .map_err(|e| e.problem())?;
                    let _ = self.inner.store.set_setting(KEY_HASH_SETTING, &h).await;
                    h
                }
            };
            match api.set_limit(&mgmt, &hash, limit, reset).await {
                // The key was replaced since: find it again once.
                Err(crate::openrouter::ApiError::NotFound { .. }) if !retried => {
                    retried = true;
                    let _ = self.inner.store.delete_setting(KEY_HASH_SETTING).await;
                }
                set => {
                    set.map_err(|e| e.problem())?;
                    break;
                }
            }
        }
        let _ = audit::append(
            &self.inner.store,
            None,
            "spend.cap_enforced",
            &match cap {
                Some(c) => format!(
                    "OpenRouter key limit {} {}",
                    format_dollars(c.amount),
                    c.period.name()
                ),
                None => "OpenRouter key limit removed".into(),
            },
        )
        .await;
        Ok(true)
    }

    /// Ask OpenRouter what the assistant's key has spent (and, with the management key,
    /// the account's credits), compare with the app's own count, and keep the answer for
    /// the Usage section. `None` when the provider isn't OpenRouter.
    pub async fn refresh_provider(&self) -> Option<ProviderUsageView> {
        let Some(key) = self.openrouter_key().await else {
            if let Ok(mut v) = self.inner.provider_usage.lock() {
                *v = None;
            }
            return None;
        };
        let now = crate::time::now_rfc3339();
        let view = match openrouter_api() {
            Err(p) => self.provider_failed(p.message, now),
            Ok(api) => match api.key_info(&key).await {
                Err(e) => self.provider_failed(e.to_string(), now),
                Ok(info) => {
                    let mgmt = self.management_key().await;
                    let credits = match &mgmt {
                        Some(m) => api.credits(m).await.ok().map(|c| c.remaining()),
                        None => None,
                    };
                    // The account's last 30 complete days, per day, against the app's.
                    let activity = match &mgmt {
                        Some(m) => api.activity(m, None).await.ok(),
                        None => None,
                    };
                    let cap = Cap::load(&self.inner.store).await.ok().flatten();
                    let cap_enforced = cap.as_ref().is_some_and(|c| {
                        info.limit.is_some_and(|l| (l - c.amount).abs() < 0.005)
                            && info.limit_reset == Some(limit_reset(c.period))
                    });
                    let today = Day::today();
                    let ledger = self.usage_ledger();
                    let mut differs = Vec::new();
                    let (mf, mt) = Period::Monthly.bounds(today);
                    for (period, from, to, theirs) in [
                        ("today", today, today, info.usage_daily),
                        ("month", mf, mt, info.usage_monthly),
                    ] {
                        let Some(theirs) = theirs else { continue };
                        if let Ok(ours) = ledger
                            .totals(&Filter {
                                from,
                                to,
                                instance: None,
                            })
                            .await
                        {
                            if disagree(ours.cost, theirs) {
                                differs.push(Difference {
                                    period: period.to_owned(),
                                    app: ours.cost,
                                    provider: theirs,
                                });
                            }
                        }
                    }
                    if let Some(rows) = activity {
                        let mut theirs: std::collections::BTreeMap<String, f64> =
                            std::collections::BTreeMap::new();
                        for r in rows {
                            *theirs.entry(r.date).or_default() += r.usage;
                        }
                        let ours: std::collections::BTreeMap<String, f64> = ledger
                            .daily_spend(&Filter {
                                from: today.plus(-30),
                                to: today.plus(-1),
                                instance: None,
                            })
                            .await
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(d, c)| (d.to_string(), c))
                            .collect();
                        let days: std::collections::BTreeSet<&String> =
                            theirs.keys().chain(ours.keys()).collect();
                        for day in days.into_iter().rev() {
                            let (a, p) = (
                                ours.get(day).copied().unwrap_or(0.0),
                                theirs.get(day).copied().unwrap_or(0.0),
                            );
                            if disagree(a, p) {
                                differs.push(Difference {
                                    period: day.clone(),
                                    app: a,
                                    provider: p,
                                });
                            }
                        }
                    }
                    ProviderUsageView {
                        name: "OpenRouter",
                        today: info.usage_daily,
                        week: info.usage_weekly,
                        month: info.usage_monthly,
                        limit: info.limit,
                        limit_remaining: info.limit_remaining,
                        limit_reset: info.limit_reset.map(|r| r.as_str().to_owned()),
                        cap_enforced,
                        management_key: mgmt.is_some(),
                        credits_left: credits,
                        checked_at: now,
                        error: None,
                        differs,
                    }
                }
            },
        };
        if let Ok(mut v) = self.inner.provider_usage.lock() {
            *v = Some(view.clone());
        }
        Some(view)
    }

    /// The last answer, kept with the error of this attempt.
    fn provider_failed(&self, error: String, now: String) -> ProviderUsageView {
        let last = self
            .inner
            .provider_usage
            .lock()
            .ok()
            .and_then(|v| v.clone());
        match last {
            Some(mut v) => {
                v.error = Some(error);
                v
            }
            None => ProviderUsageView {
                name: "OpenRouter",
                today: None,
                week: None,
                month: None,
                limit: None,
                limit_remaining: None,
                limit_reset: None,
                cap_enforced: false,
                management_key: false,
                credits_left: None,
                checked_at: now,
                error: Some(error),
                differs: Vec::new(),
            },
        }
    }

    /// What the provider said when last asked.
    fn provider_view(&self) -> Option<ProviderUsageView> {
        self.inner
            .provider_usage
            .lock()
            .ok()
            .and_then(|v| v.clone())
    }

    /// Keep usage up to date in the background (the tray daemon calls this once): every
    /// `every`, sooner when chat moves to another assistant, backing off (to 30 min) while
    /// the assistant can't be reached.
    pub fn watch_usage(&self, every: Duration) {
        let app = self.clone();
        let mut rx = self.events();
        tokio::spawn(async move {
            let mut wait = every;
            loop {
                match app.usage_sync().await {
                    Ok(_) => wait = every,
                    Err(p) => {
                        tracing::info!(code = %p.code, "usage not synced");
                        wait = if p.code == "assistant_not_running" {
                            every
                        } else {
                            (wait * 2).clamp(Duration::from_secs(30), SYNC_BACKOFF_MAX.max(every))
                        };
                    }
                }
                let sleep = tokio::time::sleep(wait);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        ev = rx.recv() => match ev {
                            Ok(Event::Assistant(_)) => break,
                            Ok(Event::Instance { state: "healthy", .. }) => break,
                            Ok(_) | Err(RecvError::Lagged(_)) => {}
                            Err(RecvError::Closed) => return,
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Tokens;

    #[test]
    fn csv_is_safe_for_spreadsheets() {
        let rows = vec![Row {
            day: Day::parse("2026-11-26"),
            key: "=HYPERLINK(\"x\")".into(),
            label: Some("Team, \"ops\"\nchat".into()),
            tokens: Tokens {
                input: 1,
                output: 2,
                cache_read: 0,
                cache_write: 0,
                total: 3,
            },
            cost: 0.0042,
            calls: None,
        }];
        let csv = to_csv(&rows);
        let line = csv.lines().nth(1).unwrap();
        assert!(
            line.starts_with("2026-11-26,\"'=HYPERLINK(\"\"x\"\")\",\"Team, \"\"ops\"\""),
            "{csv}"
        );
        assert!(csv.contains(",3,0.0042,\n"), "{csv}");
    }

    #[test]
    fn the_tray_line_reads_like_the_issue() {
        let s = UsageSummary {
            today: 0.42,
            month: 6.1,
            cap_percent: None,
            synced_at: None,
            error: None,
            paused: false,
        };
        assert_eq!(s.line(), "$0.42 today · $6.10 this month");
        let s = UsageSummary {
            cap_percent: Some(84.6),
            ..s
        };
        assert_eq!(s.line(), "$0.42 today · $6.10 this month · 85% of cap");
    }
}
