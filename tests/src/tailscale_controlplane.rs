//! [`ContractFakeTailscaleControl`] standing in for `controlplane.tailscale.com` for the real
//! tailscaled of a test host ([`crate::testhost::TestHost`]), so that the product's own
//! command lines (`tailscale up --auth-key=file:…` without `--login-server`) log the host in
//! to a tailnet — the one of a [`crate::fake_tailscale::ContractFakeTailscale`], shared
//! ([`ContractFakeTailscaleControl::share_tailnet`]).
//!
//! How, all of it on the test side and in the host's test-only files:
//! * the fake listens on the test side's veth address ([`TestHost::gateway_addr`], which
//!   only that host reaches): plain HTTP on 80 (tailscaled's ts2021 Noise upgrade goes
//!   there first) and TLS on 443 (`GET /key`, and DERP, whose map points at this address);
//! * its TLS certificate (for `controlplane.tailscale.com` and the address) is signed by a
//!   throw-away test CA made here with the `openssl` CLI; the host's tailscaled trusts that
//!   CA, and only it, through `SSL_CERT_FILE` in a systemd drop-in ([`DROP_IN`]);
//! * the host's `/etc/hosts` maps `controlplane.tailscale.com` to that address.
//!
//! The host's network namespace keeps having no route out: nothing else of Tailscale's
//! (log servers, DERP relays, STUN) is reachable from it.

use crate::fake_tailscale::Tailnet;
use crate::fake_tailscale_control::{ContractFakeTailscaleControl, TlsIdentity};
use crate::testhost::TestHost;
use anyhow::{bail, Context, Result};
use base64::Engine;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

/// The name the fake answers as.
pub const CONTROL_HOST: &str = "controlplane.tailscale.com";
/// The test CA on the host.
pub const CA_FILE: &str = "/etc/clawkeeper-test/tailscale-test-ca.pem";
/// The drop-in that points tailscaled's TLS trust at [`CA_FILE`].
pub const DROP_IN: &str = "/etc/systemd/system/tailscaled.service.d/clawkeeper-test-ca.conf";

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A fresh test CA (its certificate, PEM) and a server identity it signed for `names` and
/// `ips` (P-256 keys, valid two days), made with the `openssl` CLI in a temporary dir.
pub fn test_ca_identity(names: &[&str], ips: &[IpAddr]) -> Result<(String, TlsIdentity)> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Clawkeeper Test CA (throw-away)",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    )?;
    let cn = format!("/CN={}", names.first().copied().unwrap_or("localhost"));
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &cn,
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
        ],
    )?;
    let san: Vec<String> = names
        .iter()
        .map(|n| format!("DNS:{n}"))
        .chain(ips.iter().map(|i| format!("IP:{i}")))
        .collect();
    std::fs::write(
        d.join("ext"),
        format!(
            "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
            san.join(",")
        ),
    )?;
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext",
            "-out",
            "srv.pem",
        ],
    )?;
    openssl(
        d,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "srv.key", "-out", "srv.pk8",
        ],
    )?;
    let read = |f: &str| std::fs::read_to_string(d.join(f)).with_context(|| format!("reading {f}"));
    Ok((
        read("ca.pem")?,
        TlsIdentity {
            cert_chain_pem: read("srv.pem")?,
            key_pem: read("srv.pk8")?,
        },
    ))
}

/// Starts the control fake for `host` as [`CONTROL_HOST`] (see the module doc) on
/// `tailnet`, and sets the host up to reach and trust it; a tailscaled already running
/// there is restarted to pick that up. Needs root (ports 80 and 443) and a Tokio runtime.
pub async fn serve_to(host: &TestHost, tailnet: Tailnet) -> Result<ContractFakeTailscaleControl> {
    let gw = host.gateway_addr();
    let http = std::net::TcpListener::bind((gw, 80)).context("binding port 80")?;
    let tls = std::net::TcpListener::bind((gw, 443)).context("binding port 443")?;
    let (ca, identity) = test_ca_identity(&[CONTROL_HOST], &[IpAddr::V4(gw)])?;
    let control = ContractFakeTailscaleControl::start_on(http, Some((tls, identity)))?;
    control.share_tailnet(tailnet);
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
    let ca_dir = CA_FILE.rsplit_once('/').map_or("/etc", |(d, _)| d);
    let drop_in_dir = DROP_IN.rsplit_once('/').map_or("/etc", |(d, _)| d);
    host.inspect_ok(&format!(
        "mkdir -p {ca_dir} {drop_in_dir} \
         && printf %s {b64} | base64 -d > {CA_FILE} \
         && printf '[Service]\\nEnvironment=SSL_CERT_FILE={CA_FILE}\\n' > {DROP_IN} \
         && printf '%s %s\\n' {gw} {CONTROL_HOST} >> /etc/hosts \
         && systemctl daemon-reload \
         && if systemctl -q is-active tailscaled; then systemctl restart tailscaled; fi"
    ))
    .await?;
    Ok(control)
}
