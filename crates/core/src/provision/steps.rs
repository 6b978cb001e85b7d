//! The provisioning steps: what each one is called, and the script it runs on the server.
//!
//! Each step is a bash script under `scripts/` (shellchecked; `include_str!`ed here) that
//! checks, applies what is missing and then verifies its own result, so running it again is
//! harmless and a job can be resumed at any point by running every step again. A script is
//! sent on stdin to `bash -s` (through `sudo -n` when the login user is not root), preceded
//! by `set -euo pipefail`, its parameters as single-quoted `CK_*=` assignments and
//! `scripts/common.sh`. Files a script installs (unit, config, lockfile) travel inside it as
//! base64 parameters. Secrets never travel inside a script: the "secrets" step sends each
//! one alone, as the stdin of `install … /dev/stdin <path>` (see `mod.rs`).

use super::sources::{self, Arch, PackageSources};
use crate::local::config as local_config;
use crate::remote::shell_quote;
use base64::Engine;
use serde_json::{json, Value};

/// A step of the provisioning job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepDef {
    /// Stable id (stored in the job's steps; never shown).
    pub id: &'static str,
    /// What the progress bar says while it runs.
    pub name: &'static str,
}

/// The order matters for safety, not only for dependencies: the host is locked down
/// (key-only SSH, firewall, automatic security updates) right after the packages it needs
/// and before the long downloads, so a server first logged into with a one-time password
/// never keeps password logins on while Node and OpenClaw download, and a failure later
/// (a full disk, a bad download, a crash of the app) still leaves it hardened. Each step
/// needs only what an earlier one (or `adopt`, which installs the login key) put there.
pub const STEPS: &[StepDef] = &[
    StepDef {
        id: "os",
        name: "Checking the operating system",
    },
    StepDef {
        id: "packages",
        name: "Installing system packages",
    },
    StepDef {
        id: "sshd",
        name: "Locking down SSH logins",
    },
    StepDef {
        id: "firewall",
        name: "Turning on the firewall",
    },
    StepDef {
        id: "upgrades",
        name: "Turning on automatic security updates",
    },
    StepDef {
        id: "user",
        name: "Creating the openclaw user",
    },
    StepDef {
        id: "node",
        name: "Installing Node.js",
    },
    StepDef {
        id: "openclaw",
        name: "Installing OpenClaw",
    },
    StepDef {
        id: "secrets",
        name: "Storing the keys safely",
    },
    StepDef {
        id: "config",
        name: "Writing the assistant's settings",
    },
    StepDef {
        id: "service",
        name: "Setting up the background service",
    },
    StepDef {
        id: "start",
        name: "Starting the assistant",
    },
    StepDef {
        id: "verify",
        name: "Checking that no key is in plain text",
    },
];

// Exit codes of the scripts (see scripts/common.sh).
pub const EXIT_UNSUPPORTED: u32 = 10;
pub const EXIT_CHECKSUM: u32 = 11;
pub const EXIT_DISK_FULL: u32 = 12;
pub const EXIT_LOCKOUT: u32 = 13;

pub const COMMON: &str = include_str!("scripts/common.sh");
pub const OS: &str = include_str!("scripts/os.sh");
pub const PACKAGES: &str = include_str!("scripts/packages.sh");
pub const USER: &str = include_str!("scripts/user.sh");
pub const NODE: &str = include_str!("scripts/node.sh");
pub const OPENCLAW: &str = include_str!("scripts/openclaw.sh");
pub const SECRETS_PREPARE: &str = include_str!("scripts/secrets_prepare.sh");
pub const SECRETS_CHECK: &str = include_str!("scripts/secrets_check.sh");
pub const CONFIG: &str = include_str!("scripts/config.sh");
pub const SERVICE: &str = include_str!("scripts/service.sh");
pub const SSHD: &str = include_str!("scripts/sshd.sh");
pub const FIREWALL: &str = include_str!("scripts/firewall.sh");
pub const UPGRADES: &str = include_str!("scripts/upgrades.sh");
pub const START: &str = include_str!("scripts/start.sh");
pub const VERIFY: &str = include_str!("scripts/verify.sh");

/// Where things live on the server.
pub mod layout {
    pub const USER: &str = "openclaw";
    /// The service user's home: config, state, logs. `ReadWritePaths` of the unit.
    pub const HOME: &str = "/var/lib/openclaw";
    pub const STATE_DIR: &str = "/var/lib/openclaw/state";
    pub const CONFIG_PATH: &str = "/var/lib/openclaw/openclaw.json";
    pub const LOG_FILE: &str = "/var/lib/openclaw/logs/openclaw.log";
    pub const UNIT: &str = "clawkeeper-gateway.service";
    pub const FIREWALL_UNIT: &str = "clawkeeper-firewall.service";
    pub const SSHD_DROPIN: &str = "/etc/ssh/sshd_config.d/10-clawkeeper.conf";
    pub const NFT_RULES: &str = "/etc/clawkeeper/nftables.nft";
    pub const DOWNLOADS: &str = "/var/cache/clawkeeper/downloads";
    /// Root-only source files of the systemd credentials.
    pub const CREDENTIALS_DIR: &str = "/etc/clawkeeper/credentials";
    /// Where systemd puts them for the running unit (`$CREDENTIALS_DIRECTORY`).
    pub const RUN_CREDENTIALS_DIR: &str = "/run/credentials/clawkeeper-gateway.service";
    /// Files owned by the service user that the gateway reads as they are: the gateway
    /// token always (so that a rotation can switch it without a restart), every secret
    /// with [`super::SecretDelivery::ServiceUserFiles`].
    pub const USER_CREDENTIALS_DIR: &str = "/etc/clawkeeper/openclaw-credentials";
}

/// The credentials' names (file names on the server, ids in the unit).
pub const GATEWAY_TOKEN: &str = "gateway-token";
pub const PROVIDER_KEY: &str = "provider-key";

/// The config's SecretRef providers (`file`, `singleValue`) of the two secrets.
pub const GATEWAY_TOKEN_PROVIDER: &str = "clawkeeper_gateway_token";
pub const PROVIDER_KEY_PROVIDER: &str = "clawkeeper_provider_key";

/// How the gateway reads its secrets on the server.
///
/// The gateway token is, in both, a 0600 file owned by the service user in
/// [`layout::USER_CREDENTIALS_DIR`] (0700, its own), read through a `file` SecretRef: a
/// systemd credential is a copy made when the unit starts, so a new token in it would need
/// a restart (15–20 s without a working token), whereas the config can name another file
/// live (see `crate::rotation::server_token`). The service user can read the token either
/// way (it is the gateway's own), so nothing is exposed that wasn't.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretDelivery {
    /// The model provider key: a root-only 0600 file in [`layout::CREDENTIALS_DIR`], handed
    /// to the unit with `LoadCredential=` and read by OpenClaw (SecretRef `file`,
    /// `singleValue`) from [`layout::RUN_CREDENTIALS_DIR`]: the service user cannot read the
    /// source file, and the copy exists only while the unit runs (on a non-swappable
    /// in-memory filesystem).
    #[default]
    SystemdCredentials,
    /// Every secret a 0600 file owned by the service user in a 0700 directory it owns
    /// ([`layout::USER_CREDENTIALS_DIR`]). For systems where OpenClaw refuses the systemd
    /// copies. Outside the state dir, so OpenClaw's backups never contain them.
    ServiceUserFiles,
}

impl SecretDelivery {
    /// Whether the secret `name` goes through `LoadCredential=`.
    fn systemd(self, name: &str) -> bool {
        self == SecretDelivery::SystemdCredentials && name != GATEWAY_TOKEN
    }

    /// Where the secret `name` is written over SSH, and who owns it there.
    pub fn source_of(self, name: &str) -> (&'static str, &'static str) {
        if self.systemd(name) {
            (layout::CREDENTIALS_DIR, "root")
        } else {
            (layout::USER_CREDENTIALS_DIR, layout::USER)
        }
    }

    /// Where the gateway reads the secret `name`.
    pub fn read_path(self, name: &str) -> String {
        if self.systemd(name) {
            format!("{}/{name}", layout::RUN_CREDENTIALS_DIR)
        } else {
            format!("{}/{name}", layout::USER_CREDENTIALS_DIR)
        }
    }

    /// The directories it writes secrets to, with their owners.
    pub fn dirs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            SecretDelivery::SystemdCredentials => &[
                (layout::CREDENTIALS_DIR, "root"),
                (layout::USER_CREDENTIALS_DIR, layout::USER),
            ],
            SecretDelivery::ServiceUserFiles => &[(layout::USER_CREDENTIALS_DIR, layout::USER)],
        }
    }
}

/// A directory of credential files on the server: its owner (also the files') and the
/// files that belong in it (anything else there is removed by the "secrets" step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialDir {
    pub dir: &'static str,
    pub owner: &'static str,
    pub names: Vec<&'static str>,
}

/// The model provider the gateway talks to (its key is a secret, given separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEndpoint {
    /// OpenAI-compatible base URL, e.g. `https://openrouter.ai/api/v1`.
    pub base_url: String,
    /// Model id at that provider, e.g. `openrouter/auto`.
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSpec {
    /// New SSH connections allowed per source address per minute (then dropped for a while).
    pub ssh_per_minute: u32,
    pub ssh_burst: u32,
    /// `None`: outbound traffic is open. `Some(list)`: only DNS, NTP, DHCP and these
    /// `host:port` pairs (see [`FirewallSpec::recommended_egress`]).
    pub egress_allowlist: Option<Vec<String>>,
    /// Tailscale's UDP port, let in when the server is on the person's tailnet (see
    /// [`super::tailnet`]); nothing else is opened for the tailnet.
    pub tailscale_udp: Option<u16>,
}

impl Default for FirewallSpec {
    fn default() -> Self {
        Self {
            ssh_per_minute: 10,
            ssh_burst: 10,
            egress_allowlist: None,
            tailscale_udp: None,
        }
    }
}

impl FirewallSpec {
    /// What a server needs to reach when outbound traffic is limited: the model provider,
    /// the chat channels, OS updates and Tailscale.
    pub fn recommended_egress(provider_base_url: Option<&str>) -> Vec<String> {
        let mut hosts: Vec<String> = [
            "deb.debian.org:80",
            "deb.debian.org:443",
            "security.debian.org:80",
            "security.debian.org:443",
            "archive.ubuntu.com:80",
            "security.ubuntu.com:80",
            "api.telegram.org:443",
            "discord.com:443",
            "gateway.discord.gg:443",
            "pkgs.tailscale.com:443",
            "controlplane.tailscale.com:443",
            "login.tailscale.com:443",
            "log.tailscale.com:443",
            "derp1.tailscale.com:443",
        ]
        .map(String::from)
        .to_vec();
        if let Some(host) = provider_base_url.and_then(url_host_port) {
            hosts.insert(0, host);
        }
        hosts
    }
}

/// `https://openrouter.ai/api/v1` → `openrouter.ai:443`.
pub fn url_host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() || authority.starts_with('[') {
        return None;
    }
    Some(match authority.split_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => format!("{h}:{p}"),
        Some(_) => return None,
        None => match scheme {
            "https" => format!("{authority}:443"),
            "http" => format!("{authority}:80"),
            _ => return None,
        },
    })
}

/// Everything provisioning needs to know about the instance (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionSpec {
    /// The instance this server belongs to (the job's `instance_id`).
    pub instance_id: String,
    /// Gateway port on the server's loopback.
    pub port: u16,
    pub model: Option<ModelEndpoint>,
    pub firewall: FirewallSpec,
    pub sources: PackageSources,
    pub delivery: SecretDelivery,
    /// Free disk space required before anything is installed.
    pub min_free_mb: u32,
    /// How long to wait for the gateway to become live.
    pub start_timeout_secs: u32,
}

impl ProvisionSpec {
    pub fn new(instance_id: &str) -> Self {
        Self {
            instance_id: instance_id.to_owned(),
            port: crate::local::DEFAULT_PORT,
            model: None,
            firewall: FirewallSpec::default(),
            sources: PackageSources::default(),
            delivery: SecretDelivery::default(),
            min_free_mb: 2048,
            start_timeout_secs: 90,
        }
    }

    /// The credentials this instance uses.
    pub fn credential_names(&self) -> Vec<&'static str> {
        let mut names = vec![GATEWAY_TOKEN];
        if self.model.is_some() {
            names.push(PROVIDER_KEY);
        }
        names
    }

    /// Every directory the secrets go to (also one that holds none of them now: the
    /// "secrets" step empties it), with the credentials in each.
    pub fn credential_dirs(&self) -> Vec<CredentialDir> {
        let mut dirs: Vec<CredentialDir> = self
            .delivery
            .dirs()
            .iter()
            .map(|&(dir, owner)| CredentialDir {
                dir,
                owner,
                names: Vec::new(),
            })
            .collect();
        for name in self.credential_names() {
            let (dir, _) = self.delivery.source_of(name);
            if let Some(d) = dirs.iter_mut().find(|d| d.dir == dir) {
                d.names.push(name);
            }
        }
        dirs
    }
}

/// What the "os" step found out, needed by later steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The account we log in as (whose SSH key must exist before passwords are turned off).
    pub login_user: String,
    /// Whether commands need `sudo -n`.
    pub sudo: bool,
    pub arch: Arch,
    /// `debian 12`, `ubuntu 24.04`, …
    pub os: String,
    /// What `systemd-detect-virt` said (`none`, `kvm`, `systemd-nspawn`, …).
    pub virt: String,
}

impl HostFacts {
    /// The command that runs a script (given on stdin) as root.
    pub fn shell(&self) -> &'static str {
        if self.sudo {
            "sudo -n bash -s"
        } else {
            "bash -s"
        }
    }

    /// `command` as root (for a command that is not a script).
    pub fn as_root(&self, command: &str) -> String {
        if self.sudo {
            format!("sudo -n {command}")
        } else {
            command.to_owned()
        }
    }
}

/// `key=value` lines a script printed on stdout (later keys win).
pub fn parse_facts(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let k = k.trim();
            (!k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                .then(|| (k.to_owned(), v.trim().to_owned()))
        })
        .collect()
}

pub fn fact<'a>(facts: &'a [(String, String)], key: &str) -> Option<&'a str> {
    facts
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A script ready to send: parameters, common functions, body, all inside one `{ … }`
/// group. bash reads a script from stdin as it goes, and parses a group whole before it
/// runs any of it: a script cut short on the way (the app died, the connection dropped
/// while it was being sent) is a syntax error that runs nothing, instead of its first
/// half run on its own (half a line like `rm -rf /opt/clawkeeper/…` could still parse).
pub fn render(body: &str, params: &[(&str, String)]) -> String {
    assemble(COMMON, body, params)
}

fn assemble(common: &str, body: &str, params: &[(&str, String)]) -> String {
    let mut s = String::from("{\nset -euo pipefail\n");
    for (k, v) in params {
        s.push_str(k);
        s.push('=');
        s.push_str(&shell_quote(v));
        s.push('\n');
    }
    s.push_str(common);
    s.push('\n');
    s.push_str(body);
    s.push_str("\n}\n");
    s
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn service_params() -> Vec<(&'static str, String)> {
    vec![
        ("CK_USER", layout::USER.into()),
        ("CK_HOME", layout::HOME.into()),
        ("CK_STATE_DIR", layout::STATE_DIR.into()),
        ("CK_CONFIG_PATH", layout::CONFIG_PATH.into()),
        ("CK_NODE", sources::node_bin()),
        ("CK_ENTRY", sources::openclaw_entry()),
    ]
}

/// The hardened gateway config for the server: the shared hardened base plus secrets read
/// through SecretRef `file` providers (one file per secret, `singleValue`).
pub fn gateway_config(spec: &ProvisionSpec) -> Value {
    let file_ref =
        |provider: &str| json!({ "source": "file", "provider": provider, "id": "value" });
    let mut config = local_config::hardened_base(
        spec.port,
        file_ref(GATEWAY_TOKEN_PROVIDER),
        layout::LOG_FILE,
    );
    let mut providers = serde_json::Map::new();
    providers.insert(
        GATEWAY_TOKEN_PROVIDER.into(),
        json!({ "source": "file", "path": spec.delivery.read_path(GATEWAY_TOKEN), "mode": "singleValue" }),
    );
    if let Some(m) = &spec.model {
        providers.insert(
            PROVIDER_KEY_PROVIDER.into(),
            json!({ "source": "file", "path": spec.delivery.read_path(PROVIDER_KEY), "mode": "singleValue" }),
        );
        local_config::add_model(
            &mut config,
            &m.base_url,
            &m.model,
            file_ref(PROVIDER_KEY_PROVIDER),
        );
    }
    config["secrets"] = json!({ "providers": providers });
    config
}

/// The systemd unit that runs the gateway.
pub fn unit_file(spec: &ProvisionSpec) -> String {
    // No OPENCLAW_GATEWAY_TOKEN, ever: the token is the config's SecretRef only.
    let creds = spec
        .credential_names()
        .iter()
        .filter(|n| spec.delivery.source_of(n).0 == layout::CREDENTIALS_DIR)
        .map(|n| format!("LoadCredential={n}:{}/{n}\n", layout::CREDENTIALS_DIR))
        .collect::<String>();
    let read_only = format!("ReadOnlyPaths={}\n", layout::USER_CREDENTIALS_DIR);
    format!(
        "# Written by Clawkeeper. Do not edit: provisioning rewrites it.
[Unit]
Description=OpenClaw gateway (managed by Clawkeeper)
Documentation=https://docs.openclaw.ai/
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
WorkingDirectory={home}
Environment=HOME={home}
Environment=OPENCLAW_STATE_DIR={state}
Environment=OPENCLAW_CONFIG_PATH={config}
Environment=OPENCLAW_NO_AUTO_UPDATE=1
Environment=OPENCLAW_DISABLE_BONJOUR=1
Environment=NODE_ENV=production
{creds}ExecStart={node} {entry} gateway run
Restart=on-failure
RestartSec=5
# 78 = EX_CONFIG: OpenClaw refuses its config or state; restarting cannot fix that.
RestartPreventExitStatus=78
TimeoutStopSec=45
UMask=0077

# Hardening. Not MemoryDenyWriteExecute: Node's JIT needs writable+executable memory.
# Not RestrictSUIDSGID: with it, OpenClaw 2026.9.6's state lock fails at start (another
# SQLite maintenance command owns this state directory, exit 78; bisected on Debian 12).
# NoNewPrivileges and the empty capability set already keep set-id files from elevating.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths={home}
{read_only}PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK

[Install]
WantedBy=multi-user.target
",
        user = layout::USER,
        home = layout::HOME,
        state = layout::STATE_DIR,
        config = layout::CONFIG_PATH,
        node = sources::node_bin(),
        entry = sources::openclaw_entry(),
    )
}

pub const FIREWALL_UNIT_FILE: &str =
    "# Written by Clawkeeper. Loads /etc/clawkeeper/nftables.nft at boot.
[Unit]
Description=Clawkeeper firewall (nftables table inet clawkeeper)
DefaultDependencies=no
Before=network-pre.target shutdown.target
Wants=network-pre.target
After=local-fs.target nftables.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f /etc/clawkeeper/nftables.nft

[Install]
WantedBy=sysinit.target
";

/// The sshd drop-in. `AllowTcpForwarding local`: the app reaches the gateway through a
/// local forward (direct-tcpip) of its SSH session; remote forwards are not needed.
pub const SSHD_DROPIN: &str =
    "# Written by Clawkeeper. Sorted before cloud-init's 50-*: sshd keeps the first value it reads.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
MaxAuthTries 3
LoginGraceTime 30
AllowTcpForwarding local
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
";

pub const AUTO_UPGRADES: &str = "// Written by Clawkeeper: unattended security upgrades.
APT::Periodic::Update-Package-Lists \"1\";
APT::Periodic::Unattended-Upgrade \"1\";
";

/// The script of a step (for "secrets", the preparation before the secrets are sent).
pub fn script(id: &str, spec: &ProvisionSpec, host: &HostFacts) -> Option<String> {
    let s = match id {
        "os" => render(OS, &[("CK_MIN_FREE_MB", spec.min_free_mb.to_string())]),
        "packages" => render(PACKAGES, &[]),
        "user" => render(
            USER,
            &[
                ("CK_USER", layout::USER.into()),
                ("CK_HOME", layout::HOME.into()),
                ("CK_STATE_DIR", layout::STATE_DIR.into()),
            ],
        ),
        "node" => {
            let node = spec.sources.node(host.arch);
            let npm = spec.sources.npm();
            render(
                NODE,
                &[
                    ("CK_PREFIX_ROOT", sources::PREFIX_ROOT.into()),
                    ("CK_DOWNLOADS", layout::DOWNLOADS.into()),
                    ("CK_NODE_VERSION", node.version.into()),
                    ("CK_NODE_URL", node.url),
                    ("CK_NODE_SHA512", node.sha512_hex),
                    ("CK_NPM_VERSION", npm.version.into()),
                    ("CK_NPM_URL", npm.url),
                    ("CK_NPM_SHA512", npm.sha512_hex),
                ],
            )
        }
        "openclaw" => render(
            OPENCLAW,
            &[
                ("CK_PREFIX_ROOT", sources::PREFIX_ROOT.into()),
                ("CK_USER", layout::USER.into()),
                ("CK_REGISTRY", spec.sources.npm_registry.clone()),
                ("CK_NODE_VERSION", sources::NODE_VERSION.into()),
                ("CK_NPM_VERSION", sources::NPM_VERSION.into()),
                ("CK_OPENCLAW_VERSION", sources::OPENCLAW_VERSION.into()),
                ("CK_PACKAGE_JSON_B64", b64(sources::OPENCLAW_PACKAGE_JSON)),
                ("CK_LOCK_B64", b64(sources::OPENCLAW_LOCK)),
            ],
        ),
        // (The preparation of each directory: see `sync_secrets`.)
        "secrets" => render(
            SECRETS_PREPARE,
            &spec
                .credential_dirs()
                .first()
                .map(secrets_params)
                .unwrap_or_default(),
        ),
        "config" => {
            let mut p = service_params();
            let config = serde_json::to_string_pretty(&gateway_config(spec)).unwrap_or_default();
            p.push(("CK_CONFIG_B64", b64(&(config + "\n"))));
            render(CONFIG, &p)
        }
        "service" => render(
            SERVICE,
            &[
                ("CK_UNIT_NAME", layout::UNIT.into()),
                ("CK_UNIT_B64", b64(&unit_file(spec))),
            ],
        ),
        "sshd" => render(
            SSHD,
            &[
                ("CK_SSHD_DROPIN_B64", b64(SSHD_DROPIN)),
                ("CK_LOGIN_USER", host.login_user.clone()),
            ],
        ),
        "firewall" => render(
            FIREWALL,
            &[
                (
                    "CK_SSH_RATE",
                    format!("{}/minute", spec.firewall.ssh_per_minute.max(1)),
                ),
                ("CK_SSH_BURST", spec.firewall.ssh_burst.max(1).to_string()),
                ("CK_FW_UNIT_B64", b64(FIREWALL_UNIT_FILE)),
                (
                    "CK_EGRESS",
                    egress_entries(spec).unwrap_or_default().join(" "),
                ),
                (
                    "CK_TS_UDP",
                    spec.firewall
                        .tailscale_udp
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                ),
            ],
        ),
        "upgrades" => render(UPGRADES, &[("CK_AUTO_UPGRADES_B64", b64(AUTO_UPGRADES))]),
        "start" => {
            let mut paths = vec![
                format!("/etc/systemd/system/{}", layout::UNIT),
                layout::CONFIG_PATH.to_owned(),
            ];
            paths.extend(spec.delivery.dirs().iter().map(|(d, _)| (*d).to_owned()));
            paths.push(sources::openclaw_prefix() + "/.complete");
            render(
                START,
                &[
                    ("CK_UNIT_NAME", layout::UNIT.into()),
                    ("CK_PORT", spec.port.to_string()),
                    ("CK_TIMEOUT", spec.start_timeout_secs.to_string()),
                    ("CK_FINGERPRINT_PATHS", paths.join(" ")),
                ],
            )
        }
        "verify" => render(VERIFY, &service_params()),
        _ => return None,
    };
    Some(s)
}

/// The outbound allowlist as the firewall script gets it (`None`: outbound is open). The
/// firewall goes up before Node and OpenClaw are downloaded, and updates come from the same
/// place, so the npm registry of [`PackageSources`] is always allowed; entries that are not
/// a plain `host:port` are dropped.
pub fn egress_entries(spec: &ProvisionSpec) -> Option<Vec<String>> {
    let list = spec.firewall.egress_allowlist.as_ref()?;
    let mut out: Vec<String> = Vec::new();
    let registry = url_host_port(&spec.sources.npm_registry);
    for e in registry.iter().chain(list.iter()) {
        if is_host_port(e) && !out.contains(e) {
            out.push(e.clone());
        }
    }
    Some(out)
}

pub fn secrets_params(dir: &CredentialDir) -> Vec<(&'static str, String)> {
    vec![
        ("CK_CRED_DIR", dir.dir.into()),
        ("CK_CRED_OWNER", dir.owner.into()),
        ("CK_CRED_NAMES", dir.names.join(" ")),
    ]
}

/// `host:port` with a plausible host name or address and a numeric port (anything else is
/// dropped from the allowlist rather than pasted into a script).
pub fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// `install … /dev/stdin <path>`: writes one secret, given as the command's stdin.
pub fn write_secret_command(spec: &ProvisionSpec, name: &str, host: &HostFacts) -> String {
    let (dir, owner) = spec.delivery.source_of(name);
    host.as_root(&format!(
        "install -m 0600 -o {owner} -g {owner} /dev/stdin {}",
        shell_quote(&format!("{dir}/{name}"))
    ))
}

/// One line of `secrets_check.sh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialState {
    pub name: String,
    /// `None` when the file is missing.
    pub sha256: Option<String>,
    pub mode: String,
    pub owner: String,
    pub links: String,
}

pub fn parse_credentials(stdout: &str) -> Vec<CredentialState> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            if f.next()? != "cred" {
                return None;
            }
            let name = f.next()?.to_owned();
            let sum = f.next()?;
            if sum == "missing" {
                return Some(CredentialState {
                    name,
                    sha256: None,
                    mode: String::new(),
                    owner: String::new(),
                    links: String::new(),
                });
            }
            let mode = f.next()?.to_owned();
            let owner = f.next()?.to_owned();
            let _group = f.next()?;
            let links = f.next()?.to_owned();
            Some(CredentialState {
                name,
                sha256: Some(sum.to_owned()),
                mode,
                owner,
                links,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            login_user: "root".into(),
            sudo: false,
            arch: Arch::X64,
            os: "debian 12".into(),
            virt: "kvm".into(),
        }
    }

    #[test]
    fn every_step_has_a_script_and_unique_id() {
        let mut spec = ProvisionSpec::new("srv");
        spec.model = Some(ModelEndpoint {
            base_url: "https://openrouter.ai/api/v1".into(),
            model: "openrouter/auto".into(),
        });
        let mut ids = std::collections::HashSet::new();
        for s in STEPS {
            assert!(ids.insert(s.id), "duplicate {}", s.id);
            let script = script(s.id, &spec, &host()).unwrap();
            assert!(script.starts_with("{\nset -euo pipefail\n"));
            assert!(script.ends_with("\n}\n"));
            assert!(script.contains("fail_with()"));
        }
    }

    #[test]
    fn a_script_cut_short_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let body = format!("touch {}\necho more\necho done\n", marker.display());
        // (Without common.sh, whose lock lives in the server's /run.)
        let full = assemble("", &body, &[("CK_X", "1".into())]);
        let run = |script: &str| {
            use std::io::Write;
            let mut child = std::process::Command::new("bash")
                .arg("-s")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            child.wait().unwrap()
        };
        // Cut after the line that would do something, before the group closes.
        let cut = &full[..full.find("echo more").unwrap()];
        assert!(!run(cut).success());
        assert!(!marker.exists(), "half a script ran");
        assert!(run(&full).success());
        assert!(marker.exists());
    }

    #[test]
    fn parameters_are_quoted() {
        let s = render("echo", &[("CK_X", "a'b $(rm -rf /)".into())]);
        assert!(s.contains(r"CK_X='a'\''b $(rm -rf /)'"));
    }

    #[test]
    fn server_config_is_hardened_and_holds_only_refs() {
        let mut spec = ProvisionSpec::new("srv");
        spec.model = Some(ModelEndpoint {
            base_url: "https://openrouter.ai/api/v1".into(),
            model: "openrouter/auto".into(),
        });
        let c = gateway_config(&spec);
        assert_eq!(c["gateway"]["bind"], "loopback");
        assert_eq!(c["gateway"]["auth"]["mode"], "token");
        assert_eq!(c["gateway"]["auth"]["token"]["source"], "file");
        assert_eq!(c["update"]["checkOnStart"], false);
        assert_eq!(c["discovery"]["mdns"]["mode"], "off");
        assert_eq!(c["models"]["catalogRefresh"]["enabled"], false);
        assert_eq!(c["session"]["dmScope"], "per-channel-peer");
        assert_eq!(
            c["secrets"]["providers"]["clawkeeper_gateway_token"]["path"],
            "/etc/clawkeeper/openclaw-credentials/gateway-token"
        );
        assert_eq!(
            c["secrets"]["providers"]["clawkeeper_provider_key"]["path"],
            "/run/credentials/clawkeeper-gateway.service/provider-key"
        );
        assert_eq!(
            c["models"]["providers"]["clawkeeper"]["apiKey"]["provider"],
            "clawkeeper_provider_key"
        );
        assert_eq!(c["logging"]["file"], layout::LOG_FILE);
    }

    #[test]
    fn unit_is_hardened_and_loads_credentials() {
        let mut spec = ProvisionSpec::new("srv");
        let u = unit_file(&spec);
        assert!(!u.contains("provider-key"));
        spec.model = Some(ModelEndpoint {
            base_url: "https://openrouter.ai/api/v1".into(),
            model: "openrouter/auto".into(),
        });
        let u = unit_file(&spec);
        for line in [
            "User=openclaw",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "ReadWritePaths=/var/lib/openclaw",
            "CapabilityBoundingSet=\n",
            "LoadCredential=provider-key:/etc/clawkeeper/credentials/provider-key",
            "ReadOnlyPaths=/etc/clawkeeper/openclaw-credentials",
            "Environment=OPENCLAW_NO_AUTO_UPDATE=1",
        ] {
            assert!(u.contains(line), "{line}");
        }
        assert!(!u.contains("\nMemoryDenyWriteExecute"));
        assert!(u.contains("RestartPreventExitStatus=78"));
        // The gateway token is a live file, never a credential copy or an environment variable.
        assert!(!u.contains("gateway-token"), "{u}");
        assert!(!u.contains("OPENCLAW_GATEWAY_TOKEN"), "{u}");
    }

    #[test]
    fn the_gateway_token_is_a_live_file_of_the_service_user() {
        let mut spec = ProvisionSpec::new("srv");
        spec.model = Some(ModelEndpoint {
            base_url: "https://openrouter.ai/api/v1".into(),
            model: "openrouter/auto".into(),
        });
        let dirs = spec.credential_dirs();
        assert_eq!(
            dirs,
            vec![
                CredentialDir {
                    dir: layout::CREDENTIALS_DIR,
                    owner: "root",
                    names: vec![PROVIDER_KEY],
                },
                CredentialDir {
                    dir: layout::USER_CREDENTIALS_DIR,
                    owner: layout::USER,
                    names: vec![GATEWAY_TOKEN],
                },
            ]
        );
        spec.delivery = SecretDelivery::ServiceUserFiles;
        assert_eq!(
            spec.credential_dirs(),
            vec![CredentialDir {
                dir: layout::USER_CREDENTIALS_DIR,
                owner: layout::USER,
                names: vec![GATEWAY_TOKEN, PROVIDER_KEY],
            }]
        );
        assert_eq!(
            gateway_config(&spec)["secrets"]["providers"]["clawkeeper_provider_key"]["path"],
            "/etc/clawkeeper/openclaw-credentials/provider-key"
        );
    }

    #[test]
    fn hosts_and_allowlist_entries() {
        assert_eq!(
            url_host_port("https://openrouter.ai/api/v1").as_deref(),
            Some("openrouter.ai:443")
        );
        assert_eq!(
            url_host_port("http://10.0.0.1:8080/v1").as_deref(),
            Some("10.0.0.1:8080")
        );
        assert_eq!(url_host_port("ftp://x"), None);
        assert!(is_host_port("api.telegram.org:443"));
        assert!(!is_host_port("api.telegram.org"));
        assert!(!is_host_port("a;rm -rf /:443"));
        assert!(
            FirewallSpec::recommended_egress(Some("https://openrouter.ai/api/v1"))
                .contains(&"openrouter.ai:443".to_owned())
        );
    }

    #[test]
    fn hardening_comes_before_the_downloads_and_the_registry_stays_reachable() {
        let pos = |id: &str| STEPS.iter().position(|s| s.id == id).unwrap();
        for hardening in ["sshd", "firewall", "upgrades"] {
            assert!(pos(hardening) > pos("packages"), "{hardening}");
            for later in ["user", "node", "openclaw", "secrets", "start"] {
                assert!(pos(hardening) < pos(later), "{hardening} before {later}");
            }
        }
        let mut spec = ProvisionSpec::new("srv");
        assert_eq!(egress_entries(&spec), None);
        spec.sources.npm_registry = "http://10.213.0.1:41234/".into();
        spec.firewall.egress_allowlist =
            Some(vec!["api.telegram.org:443".into(), "bad entry".into()]);
        assert_eq!(
            egress_entries(&spec).unwrap(),
            ["10.213.0.1:41234", "api.telegram.org:443"]
        );
        let s = script("firewall", &spec, &host()).unwrap();
        assert!(s.contains("CK_EGRESS='10.213.0.1:41234 api.telegram.org:443'"));
    }

    #[test]
    fn parses_facts_and_credentials() {
        let f = parse_facts("os=debian 12\narch=x86_64\nnoise\n=x\nvirt=\n");
        assert_eq!(fact(&f, "os"), Some("debian 12"));
        assert_eq!(fact(&f, "virt"), Some(""));
        let c = parse_credentials(
            "cred gateway-token 9f86d08 600 root root 1 file\ncred provider-key missing\n",
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].sha256.as_deref(), Some("9f86d08"));
        assert_eq!(c[0].mode, "600");
        assert_eq!(c[1].sha256, None);
    }

    #[test]
    fn secret_command_holds_no_secret_and_uses_stdin() {
        let spec = ProvisionSpec::new("srv");
        let mut h = host();
        h.sudo = true;
        assert_eq!(
            write_secret_command(&spec, GATEWAY_TOKEN, &h),
            "sudo -n install -m 0600 -o openclaw -g openclaw /dev/stdin '/etc/clawkeeper/openclaw-credentials/gateway-token'"
        );
        assert_eq!(
            write_secret_command(&spec, PROVIDER_KEY, &h),
            "sudo -n install -m 0600 -o root -g root /dev/stdin '/etc/clawkeeper/credentials/provider-key'"
        );
    }
}
