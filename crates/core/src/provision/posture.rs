//! Posture: what the server really does, read back after provisioning and on demand, shown
//! as a checklist (the same [`Check`] type the local instance uses).
//!
//! One read-only script (`scripts/posture.sh`) prints every probe in sections; the parsers
//! below are pure functions of that text (unit-tested on outputs captured from a real
//! Debian 12 host, fuzzed in `crates/core/fuzz`). Nothing here trusts the config we wrote:
//! the gateway's sockets come from `ss`, sshd's settings from `sshd -T` (the effective
//! values, whichever file set them), the firewall from the kernel's ruleset, file modes
//! from `stat`, and OpenClaw's opinion from `openclaw security audit --json`.

use super::steps::{self, layout, HostFacts, ProvisionSpec};
use crate::local::verify::{Check, CheckStatus};
use crate::remote::Remote;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub const POSTURE: &str = include_str!("scripts/posture.sh");
pub const AUDIT_FIX: &str = include_str!("scripts/audit_fix.sh");

pub const GATEWAY_LOOPBACK: &str = "gateway_loopback";
pub const GATEWAY_RUNNING: &str = "gateway_running";
pub const SSH_KEYS_ONLY: &str = "ssh_keys_only";
pub const SSH_BRUTEFORCE: &str = "ssh_bruteforce";
pub const FIREWALL: &str = "firewall";
pub const EGRESS: &str = "egress_allowlist";
pub const SECRET_FILES: &str = "secret_files";
pub const UPGRADES: &str = "security_updates";
pub const SECURITY_AUDIT: &str = "openclaw_security_audit";

// ------------------------------------------------------------------------------ parsers

/// `@@name` sections of the posture report, in order (text before the first is dropped).
pub fn split_sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("@@") {
            out.push((name.trim().to_owned(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// A number written only with ASCII digits (`str::parse` also takes a leading `+`, which
/// none of these tools print: found by fuzzing).
fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// One listening TCP socket from `ss -ltnpH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `None` for a wildcard (`*`, `0.0.0.0`, `[::]`).
    pub addr: Option<IpAddr>,
    /// Interface scope (`127.0.0.53%lo` → `lo`).
    pub scope: Option<String>,
    pub port: u16,
    /// (process name, pid) pairs from the `users:(…)` column.
    pub processes: Vec<(String, u32)>,
}

impl Listener {
    /// Reachable only from this machine: a loopback address (v4, v6, or v4-mapped v6).
    pub fn is_loopback(&self) -> bool {
        match self.addr {
            Some(IpAddr::V4(a)) => a.is_loopback(),
            Some(IpAddr::V6(a)) => {
                a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            None => false,
        }
    }

    pub fn shown(&self) -> String {
        match self.addr {
            Some(IpAddr::V6(a)) => format!("[{a}]:{}", self.port),
            Some(a) => format!("{a}:{}", self.port),
            None => format!("*:{}", self.port),
        }
    }
}

/// Lines of `ss -ltnpH` (State Recv-Q Send-Q Local Peer [Process]); lines that don't parse
/// are skipped.
pub fn parse_ss(text: &str) -> Vec<Listener> {
    text.lines().filter_map(parse_ss_line).collect()
}

fn parse_ss_line(line: &str) -> Option<Listener> {
    let mut fields = line.split_whitespace();
    let state = fields.next()?;
    if state != "LISTEN" {
        return None;
    }
    let _recv = fields.next()?;
    let _send = fields.next()?;
    let local = fields.next()?;
    let _peer = fields.next()?;
    let rest: Vec<&str> = fields.collect();
    let (host, port) = local.rsplit_once(':')?;
    let port: u16 = digits(port)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let (host, scope) = match host.split_once('%') {
        Some((h, s)) => (h, Some(s.to_owned())),
        None => (host, None),
    };
    let addr = match host {
        "*" => None,
        h => {
            let ip: IpAddr = h.parse().ok()?;
            (!ip.is_unspecified()).then_some(ip)
        }
    };
    Some(Listener {
        addr,
        scope,
        port,
        processes: parse_ss_users(&rest.join(" ")),
    })
}

/// `users:(("node",pid=123,fd=20),("node",pid=124,fd=3))` → [("node",123),("node",124)].
fn parse_ss_users(s: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("(\"") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('"') else { break };
        let name = rest[..end].to_owned();
        rest = &rest[end + 1..];
        let upto = rest.find(')').unwrap_or(rest.len());
        let pid = rest[..upto]
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("pid="))
            .and_then(digits);
        if let Some(pid) = pid {
            out.push((name, pid));
        }
        rest = &rest[upto..];
    }
    out
}

/// `sshd -T`: lowercase keyword → every value it has (`port`, `hostkey`… repeat).
pub fn parse_sshd_t(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        out.entry(k.to_ascii_lowercase())
            .or_default()
            .push(v.trim().to_owned());
    }
    out
}

/// `key=value` lines (`systemctl show`); the last value wins. A key is exactly what comes
/// before `=` (`ActiveState =x` is not `ActiveState`: found by fuzzing).
pub fn parse_kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            (!k.is_empty() && !k.contains(char::is_whitespace))
                .then(|| (k.to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// One line of `stat -c '%a|%U|%G|%h|%F|%n'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub links: u64,
    /// `regular file`, `regular empty file`, `directory`, `symbolic link`, …
    pub kind: String,
    pub path: String,
}

impl FileStat {
    pub fn is_file(&self) -> bool {
        self.kind.starts_with("regular")
    }
}

pub fn parse_stat(text: &str) -> Vec<FileStat> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(6, '|');
            let mode = f.next()?.trim();
            if mode.is_empty() || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            let mode = u32::from_str_radix(mode, 8).ok()?;
            let owner = f.next()?.to_owned();
            let group = f.next()?.to_owned();
            let links = digits(f.next()?.trim())?;
            let kind = f.next()?.to_owned();
            let path = f.next()?.to_owned();
            (mode <= 0o7777 && !path.is_empty()).then_some(FileStat {
                mode,
                owner,
                group,
                links,
                kind,
                path,
            })
        })
        .collect()
}

/// The nftables objects the checks need, from `nft -j list …`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// (family, name)
    pub tables: Vec<(String, String)>,
    pub chains: Vec<NftChain>,
    pub rules: Vec<NftRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftChain {
    pub family: String,
    pub table: String,
    pub name: String,
    pub hook: Option<String>,
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub comment: Option<String>,
    /// The rule's verdict, if its last expression is one (`accept`, `drop`, `reject`…).
    pub verdict: Option<String>,
}

impl Ruleset {
    pub fn chain(&self, table: &str, name: &str) -> Option<&NftChain> {
        self.chains
            .iter()
            .find(|c| c.table == table && c.name == name)
    }

    pub fn has_rule(&self, table: &str, chain: &str, comment: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.table == table && r.chain == chain && r.comment.as_deref() == Some(comment))
    }
}

/// `nft -j list ruleset` / `list table` JSON. `None` when it is not nft's JSON at all.
pub fn parse_nft_json(text: &str) -> Option<Ruleset> {
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    let items = v.get("nftables")?.as_array()?;
    let s = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut r = Ruleset::default();
    for item in items {
        if let Some(t) = item.get("table") {
            if let (Some(f), Some(n)) = (s(t, "family"), s(t, "name")) {
                r.tables.push((f, n));
            }
        } else if let Some(c) = item.get("chain") {
            if let (Some(family), Some(table), Some(name)) =
                (s(c, "family"), s(c, "table"), s(c, "name"))
            {
                r.chains.push(NftChain {
                    family,
                    table,
                    name,
                    hook: s(c, "hook"),
                    policy: s(c, "policy"),
                });
            }
        } else if let Some(rule) = item.get("rule") {
            if let (Some(family), Some(table), Some(chain)) =
                (s(rule, "family"), s(rule, "table"), s(rule, "chain"))
            {
                let verdict = rule
                    .get("expr")
                    .and_then(Value::as_array)
                    .and_then(|e| e.last())
                    .and_then(Value::as_object)
                    .and_then(|o| {
                        ["accept", "drop", "reject", "return", "jump", "goto"]
                            .into_iter()
                            .find(|k| o.contains_key(*k))
                    })
                    .map(str::to_owned);
                r.rules.push(NftRule {
                    family,
                    table,
                    chain,
                    comment: s(rule, "comment"),
                    verdict,
                });
            }
        }
    }
    Some(r)
}

/// `openclaw security audit --json`, the parts the checklist shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub critical: u64,
    pub warn: u64,
    pub info: u64,
    pub findings: Vec<AuditFinding>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFinding {
    pub id: String,
    pub severity: String,
    pub title: String,
}

/// `None` when the text holds no JSON object with a `summary`. Text before the JSON (a
/// warning printed on stdout) is skipped.
pub fn parse_audit(text: &str) -> Option<AuditReport> {
    let start = text.find('{')?;
    let v: Value = serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<Value>()
        .next()?
        .ok()?;
    let summary = v.get("summary")?.as_object()?;
    let n = |k: &str| summary.get(k).and_then(Value::as_u64).unwrap_or(0);
    let findings = v
        .get("findings")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| {
                    let get = |keys: &[&str]| {
                        keys.iter()
                            .find_map(|k| f.get(*k).and_then(Value::as_str))
                            .map(str::to_owned)
                    };
                    Some(AuditFinding {
                        id: get(&["checkId", "id", "code"])?,
                        severity: get(&["severity", "level"]).unwrap_or_default(),
                        title: get(&["title", "message", "summary"]).unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(AuditReport {
        critical: n("critical"),
        warn: n("warn"),
        info: n("info"),
        findings,
    })
}

// ------------------------------------------------------------------------------- checks

fn check(id: &'static str, label: &'static str, ok: bool, detail: String) -> Check {
    Check {
        id,
        label,
        status: if ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        detail: Some(detail),
    }
}

/// The files whose modes the posture checks.
pub fn stat_paths(spec: &ProvisionSpec) -> Vec<String> {
    let mut p = Vec::new();
    for d in spec.credential_dirs() {
        p.push(d.dir.to_owned());
        p.extend(d.names.iter().map(|n| format!("{}/{n}", d.dir)));
    }
    p.extend(
        [
            layout::HOME,
            layout::STATE_DIR,
            layout::CONFIG_PATH,
            layout::NFT_RULES,
        ]
        .map(str::to_owned),
    );
    p
}

pub fn posture_script(spec: &ProvisionSpec) -> String {
    let mut params = vec![
        ("CK_UNIT_NAME", layout::UNIT.to_owned()),
        ("CK_STAT_PATHS", stat_paths(spec).join(" ")),
        ("CK_USER", layout::USER.to_owned()),
        ("CK_HOME", layout::HOME.to_owned()),
        ("CK_STATE_DIR", layout::STATE_DIR.to_owned()),
        ("CK_CONFIG_PATH", layout::CONFIG_PATH.to_owned()),
    ];
    params.push(("CK_NODE", super::sources::node_bin()));
    params.push(("CK_ENTRY", super::sources::openclaw_entry()));
    steps::render(POSTURE, &params)
}

pub fn audit_fix_script() -> String {
    steps::render(
        AUDIT_FIX,
        &[
            ("CK_USER", layout::USER.to_owned()),
            ("CK_HOME", layout::HOME.to_owned()),
            ("CK_STATE_DIR", layout::STATE_DIR.to_owned()),
            ("CK_CONFIG_PATH", layout::CONFIG_PATH.to_owned()),
            ("CK_NODE", super::sources::node_bin()),
            ("CK_ENTRY", super::sources::openclaw_entry()),
        ],
    )
}

/// Read the server's posture. Never fails: what could not be read is a failed check.
pub async fn check_posture<R: Remote>(
    remote: &R,
    host: &HostFacts,
    spec: &ProvisionSpec,
) -> Vec<Check> {
    let script = posture_script(spec);
    let text = match remote.run(host.shell(), Some(script.as_bytes())).await {
        Ok(out) => out.stdout_lossy(),
        Err(e) => {
            return vec![check(
                GATEWAY_LOOPBACK,
                "Only this server can reach your assistant",
                false,
                format!("Could not read the server's state: {e}"),
            )]
        }
    };
    evaluate(&text, spec)
}

/// The checklist from a posture report (pure; see `check_posture`).
pub fn evaluate(report: &str, spec: &ProvisionSpec) -> Vec<Check> {
    let sections: BTreeMap<String, String> = split_sections(report).into_iter().collect();
    let section = |k: &str| sections.get(k).map(String::as_str).unwrap_or("");
    let mut checks = Vec::new();

    // The gateway's sockets: everything its processes listen on, plus its port.
    let listeners = parse_ss(section("ss"));
    let pids: Vec<u32> = section("cgroup")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let gateway: Vec<&Listener> = listeners
        .iter()
        .filter(|l| l.port == spec.port || l.processes.iter().any(|(_, p)| pids.contains(p)))
        .collect();
    let exposed: Vec<String> = gateway
        .iter()
        .filter(|l| !l.is_loopback())
        .map(|l| l.shown())
        .collect();
    let mut shown: Vec<String> = gateway.iter().map(|l| l.shown()).collect();
    shown.dedup();
    checks.push(check(
        GATEWAY_LOOPBACK,
        "Only this server can reach your assistant",
        !gateway.is_empty() && exposed.is_empty(),
        if gateway.is_empty() {
            "It isn't listening at all (is it running?).".into()
        } else if exposed.is_empty() {
            format!("Listening only on {}", shown.join(", "))
        } else {
            format!("Also reachable at {}", exposed.join(", "))
        },
    ));

    let unit = parse_kv(section("unit"));
    let u = |k: &str| unit.get(k).map(String::as_str).unwrap_or("?");
    checks.push(check(
        GATEWAY_RUNNING,
        "Your assistant is running and starts at boot",
        u("ActiveState") == "active"
            && u("SubState") == "running"
            && u("UnitFileState") == "enabled",
        format!(
            "{} ({}), {} at boot, restarted {} times",
            u("ActiveState"),
            u("SubState"),
            u("UnitFileState"),
            u("NRestarts")
        ),
    ));

    let sshd = parse_sshd_t(section("sshd"));
    let first = |k: &str| {
        sshd.get(k)
            .and_then(|v| v.first())
            .map(String::as_str)
            .unwrap_or("?")
    };
    let mut ssh_bad = Vec::new();
    if first("passwordauthentication") != "no" {
        ssh_bad.push("password logins are allowed");
    }
    if first("kbdinteractiveauthentication") != "no" {
        ssh_bad.push("keyboard-interactive logins are allowed");
    }
    if !matches!(
        first("permitrootlogin"),
        "no" | "prohibit-password" | "without-password"
    ) {
        ssh_bad.push("root can log in with a password");
    }
    if first("permitemptypasswords") != "no" {
        ssh_bad.push("empty passwords are allowed");
    }
    checks.push(check(
        SSH_KEYS_ONLY,
        "SSH accepts keys only, never passwords",
        !sshd.is_empty() && ssh_bad.is_empty(),
        if sshd.is_empty() {
            "Could not read sshd's settings.".into()
        } else if ssh_bad.is_empty() {
            format!("Passwords off; root login: {}", first("permitrootlogin"))
        } else {
            ssh_bad.join("; ")
        },
    ));

    let nft = parse_nft_json(section("nft"));
    let table = "clawkeeper";
    let max_tries: u32 = first("maxauthtries").parse().unwrap_or(u32::MAX);
    let limited = nft
        .as_ref()
        .is_some_and(|r| r.has_rule(table, "input", "ssh-bruteforce"));
    checks.push(check(
        SSH_BRUTEFORCE,
        "Repeated SSH login attempts are cut off",
        limited && max_tries <= 3,
        format!(
            "{}; {} tries per connection",
            if limited {
                format!(
                    "new connections limited to {}/minute per address",
                    spec.firewall.ssh_per_minute
                )
            } else {
                "no connection rate limit".to_owned()
            },
            first("maxauthtries")
        ),
    ));

    let fw_unit = parse_kv(section("firewall_unit"));
    let input = nft.as_ref().and_then(|r| r.chain(table, "input"));
    let drops = input.is_some_and(|c| c.policy.as_deref() == Some("drop"));
    let ssh_rule = nft
        .as_ref()
        .is_some_and(|r| r.has_rule(table, "input", "ssh"));
    let at_boot = fw_unit.get("UnitFileState").map(String::as_str) == Some("enabled");
    checks.push(check(
        FIREWALL,
        "The firewall lets in only SSH",
        drops && ssh_rule && at_boot,
        match (&nft, drops, ssh_rule, at_boot) {
            (None, ..) => "The firewall table is not loaded.".into(),
            (_, false, ..) => "The firewall does not drop unsolicited traffic.".into(),
            (_, _, false, _) => "The SSH rule is missing.".into(),
            (_, _, _, false) => "It is not loaded again at boot.".into(),
            _ => "Everything else coming in is dropped; loaded at every boot".into(),
        },
    ));

    if let Some(list) = &spec.firewall.egress_allowlist {
        let out_chain = nft.as_ref().and_then(|r| r.chain(table, "output"));
        let ok = out_chain.is_some_and(|c| c.policy.as_deref() == Some("drop"));
        checks.push(check(
            EGRESS,
            "It can reach only the services you allowed",
            ok,
            if ok {
                format!("{} destinations allowed", list.len())
            } else {
                "Outgoing traffic is not limited.".into()
            },
        ));
    }

    let stats = parse_stat(section("stat"));
    let mut bad = Vec::new();
    let dirs = spec.credential_dirs();
    for want in stat_paths(spec) {
        let Some(s) = stats.iter().find(|s| s.path == want) else {
            bad.push(format!("{want} is missing"));
            continue;
        };
        let private = s.mode & 0o077 == 0;
        let dir = dirs
            .iter()
            .find(|d| want == d.dir || want.starts_with(&format!("{}/", d.dir)));
        let is_cred = dir.is_some_and(|d| want != d.dir);
        let right_owner = if let Some(d) = dir {
            s.owner == d.owner
        } else if want == layout::NFT_RULES {
            s.owner == "root"
        } else {
            s.owner == layout::USER
        };
        if want == layout::NFT_RULES {
            if s.mode & 0o022 != 0 || !right_owner {
                bad.push(format!("{want} is {:o} {}", s.mode, s.owner));
            }
            continue;
        }
        if !private || !right_owner || (is_cred && (!s.is_file() || s.links != 1)) {
            bad.push(format!(
                "{want} is {:o} {} ({}, {} links)",
                s.mode, s.owner, s.kind, s.links
            ));
        }
    }
    checks.push(check(
        SECRET_FILES,
        "Keys and settings on the server are private",
        bad.is_empty(),
        if bad.is_empty() {
            format!(
                "{} keys in 0600 files ({}); settings and state private to {}",
                spec.credential_names().len(),
                dirs.iter()
                    .filter(|d| !d.names.is_empty())
                    .map(|d| format!("{} owned by {}", d.names.join(" and "), d.owner))
                    .collect::<Vec<_>>()
                    .join("; "),
                layout::USER
            )
        } else {
            bad.join("; ")
        },
    ));

    let apt = section("apt");
    let auto = apt.contains("APT::Periodic::Unattended-Upgrade \"1\";");
    checks.push(check(
        UPGRADES,
        "Security updates install automatically",
        auto,
        if auto {
            "unattended-upgrades runs daily".into()
        } else {
            "Automatic security updates are off.".into()
        },
    ));

    let audit = parse_audit(section("audit"));
    checks.push(match audit {
        None => check(
            SECURITY_AUDIT,
            "OpenClaw's own security audit",
            false,
            "The audit did not run.".into(),
        ),
        Some(a) => {
            let mut detail = format!(
                "{} critical, {} warnings, {} notes",
                a.critical, a.warn, a.info
            );
            let worst: Vec<String> = a
                .findings
                .iter()
                .filter(|f| f.severity == "critical" || f.severity == "warn")
                .take(4)
                .map(|f| {
                    if f.title.is_empty() {
                        f.id.clone()
                    } else {
                        f.title.clone()
                    }
                })
                .collect();
            if !worst.is_empty() {
                detail.push_str(": ");
                detail.push_str(&worst.join("; "));
            }
            check(
                SECURITY_AUDIT,
                "OpenClaw's own security audit",
                a.critical == 0,
                detail,
            )
        }
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `posture.sh` captured on a Debian 12 test host right after provisioning.
    const REAL: &str = include_str!("testdata/posture-debian12.txt");

    fn spec() -> ProvisionSpec {
        let mut s = ProvisionSpec::new("t");
        s.model = Some(steps::ModelEndpoint {
            base_url: "http://127.0.0.1:9/v1".into(),
            model: "fake-model".into(),
        });
        s
    }

    fn section(name: &str) -> String {
        split_sections(REAL)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .unwrap()
    }

    #[test]
    fn real_report_passes_every_check() {
        let checks = evaluate(REAL, &spec());
        assert_eq!(checks.len(), 8);
        for c in &checks {
            assert_eq!(c.status, CheckStatus::Pass, "{c:?}");
        }
    }

    #[test]
    fn real_outputs_parse() {
        assert!(parse_ss("LISTEN 0 1 127.0.0.1:+3 0.0.0.0:*").is_empty());
        let ss = parse_ss(&section("ss"));
        assert_eq!(ss.len(), 4);
        let gw: Vec<_> = ss.iter().filter(|l| l.port == 18789).collect();
        assert!(gw.iter().all(|l| l.is_loopback()));
        assert_eq!(gw[0].processes[0].0, "openclaw-gatewa");
        let sshd = parse_sshd_t(&section("sshd"));
        assert_eq!(sshd["passwordauthentication"], vec!["no"]);
        assert_eq!(sshd["maxauthtries"], vec!["3"]);
        assert_eq!(sshd["allowtcpforwarding"], vec!["local"]);
        assert!(sshd["listenaddress"].len() >= 2);
        let nft = parse_nft_json(&section("nft")).unwrap();
        assert_eq!(
            nft.tables,
            vec![("inet".to_owned(), "clawkeeper".to_owned())]
        );
        let input = nft.chain("clawkeeper", "input").unwrap();
        assert_eq!(
            (input.hook.as_deref(), input.policy.as_deref()),
            (Some("input"), Some("drop"))
        );
        assert!(nft.has_rule("clawkeeper", "input", "ssh"));
        assert!(nft.has_rule("clawkeeper", "input", "ssh-bruteforce"));
        assert!(
            nft.rules
                .iter()
                .any(|r| r.comment.as_deref() == Some("ssh")
                    && r.verdict.as_deref() == Some("accept"))
        );
        let unit = parse_kv(&section("unit"));
        assert_eq!(unit["ActiveState"], "active");
        let st = parse_stat(&section("stat"));
        assert_eq!(st.len(), 8);
        assert!(st
            .iter()
            .any(|s| s.path.ends_with("gateway-token") && s.mode == 0o600 && s.links == 1));
        let audit = parse_audit(&section("audit")).unwrap();
        assert_eq!((audit.critical, audit.warn, audit.info), (0, 1, 1));
        assert_eq!(audit.findings[1].id, "gateway.trusted_proxies_missing");
    }

    #[test]
    fn exposures_and_weak_settings_fail_their_checks() {
        let exposed = REAL.replacen("127.0.0.1:18789", "0.0.0.0:18789", 1);
        let c = evaluate(&exposed, &spec());
        assert_eq!(c[0].id, GATEWAY_LOOPBACK);
        assert_eq!(c[0].status, CheckStatus::Fail);
        assert!(c[0].detail.as_deref().unwrap().contains("*:18789"), "{c:?}");
        // A worker of the gateway (by cgroup pid) listening elsewhere is caught too.
        let worker = REAL.replacen(
            "@@cgroup",
            "LISTEN 0 511 10.0.0.5:9222 0.0.0.0:* users:((\"node\",pid=537,fd=9))\n@@cgroup",
            1,
        );
        assert_eq!(evaluate(&worker, &spec())[0].status, CheckStatus::Fail);
        let weak = REAL
            .replace("passwordauthentication no", "passwordauthentication yes")
            .replace("maxauthtries 3", "maxauthtries 6");
        let c = evaluate(&weak, &spec());
        let by = |id| c.iter().find(|x| x.id == id).unwrap().status;
        assert_eq!(by(SSH_KEYS_ONLY), CheckStatus::Fail);
        assert_eq!(by(SSH_BRUTEFORCE), CheckStatus::Fail);
        let leaky = REAL.replace(
            "600|openclaw|openclaw|1|regular file|/etc/clawkeeper/openclaw-credentials/gateway-token",
            "644|openclaw|openclaw|1|regular file|/etc/clawkeeper/openclaw-credentials/gateway-token",
        );
        let c = evaluate(&leaky, &spec());
        let files = c.iter().find(|x| x.id == SECRET_FILES).unwrap();
        assert_eq!(files.status, CheckStatus::Fail);
        assert!(files
            .detail
            .as_deref()
            .unwrap()
            .contains("gateway-token is 644"));
        // Nothing readable at all: every check fails, none passes by default.
        for c in evaluate("", &spec()) {
            assert_eq!(c.status, CheckStatus::Fail, "{c:?}");
        }
    }

    #[test]
    fn ss_lines() {
        let text = "LISTEN 0      511        127.0.0.1:18789      0.0.0.0:*    users:((\"node\",pid=812,fd=24))
LISTEN 0      511            [::1]:18789         [::]:*    users:((\"node\",pid=812,fd=25))
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*    users:((\"sshd\",pid=90,fd=3))
LISTEN 0      4096   127.0.0.53%lo:53         0.0.0.0:*    users:((\"systemd-resolve\",pid=7,fd=14))
LISTEN 0      128                *:8080             *:*
garbage
";
        let l = parse_ss(text);
        assert_eq!(l.len(), 5);
        assert!(l[0].is_loopback() && l[1].is_loopback());
        assert_eq!(l[0].processes, vec![("node".to_owned(), 812)]);
        assert_eq!(l[2].addr, None);
        assert!(!l[2].is_loopback());
        assert_eq!(l[3].scope.as_deref(), Some("lo"));
        assert_eq!(l[4].shown(), "*:8080");
        assert_eq!(l[1].shown(), "[::1]:18789");
    }

    #[test]
    fn sshd_and_kv_and_stat() {
        let s = parse_sshd_t(
            "port 22\nport 2222\npasswordauthentication no\nPermitRootLogin prohibit-password\n",
        );
        assert_eq!(s["port"], vec!["22", "2222"]);
        assert_eq!(s["permitrootlogin"], vec!["prohibit-password"]);
        let kv = parse_kv("ActiveState=active\nSubState=running\nbad line\n");
        assert_eq!(kv["SubState"], "running");
        let st = parse_stat("600|root|root|1|regular file|/etc/clawkeeper/credentials/gateway-token\n700|openclaw|openclaw|3|directory|/var/lib/openclaw\nstat: cannot statx '/x': No such file or directory\n");
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].mode, 0o600);
        assert!(st[0].is_file());
        assert!(!st[1].is_file());
    }

    #[test]
    fn sections_split() {
        let s = split_sections("junk\n@@a\n1\n2\n@@b\n@@c\nx\n");
        assert_eq!(
            s,
            vec![
                ("a".to_owned(), "1\n2\n".to_owned()),
                ("b".to_owned(), String::new()),
                ("c".to_owned(), "x\n".to_owned())
            ]
        );
    }

    #[test]
    fn audit_skips_leading_noise() {
        let a = parse_audit("warning: x\n{\"summary\":{\"critical\":1,\"warn\":2,\"info\":3},\"findings\":[{\"checkId\":\"fs.config.perms_world_readable\",\"severity\":\"critical\",\"title\":\"Config is world-readable\"}]}\n").unwrap();
        assert_eq!((a.critical, a.warn, a.info), (1, 2, 3));
        assert_eq!(a.findings[0].id, "fs.config.perms_world_readable");
        assert!(parse_audit("not json").is_none());
        assert!(parse_audit("{\"findings\":[]}").is_none());
    }
}
