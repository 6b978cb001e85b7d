//! The keychain helper OpenClaw runs to resolve its SecretRefs (`exec` source, protocol 1).
//!
//! stdin:  `{"protocolVersion":1,"provider":"clawkeeper","ids":["gateway-token/local"]}`
//! stdout: `{"protocolVersion":1,"values":{"gateway-token/local":"…"}}` (+ `errors` per id)
//!
//! It reads the OS keychain under the namespace given by `--namespace`, answers only ids
//! that are valid Clawkeeper references, prints nothing else, and logs nothing.

use clawkeeper_core::vault::{self, SecretRef, Vault};
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut namespace = None;
    while let Some(a) = args.next() {
        if a == "--namespace" {
            namespace = args.next();
        }
    }
    let namespace = namespace.unwrap_or_else(vault::default_namespace);

    let mut input = String::new();
    if std::io::stdin()
        .take(1024 * 1024)
        .read_to_string(&mut input)
        .is_err()
    {
        return ExitCode::from(2);
    }
    let ids: Vec<String> = match serde_json::from_str::<Value>(&input) {
        Ok(v) if v.get("protocolVersion").and_then(Value::as_u64) == Some(1) => v
            .get("ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        _ => return ExitCode::from(2),
    };

    let vault = Vault::new(&namespace);
    let mut values = Map::new();
    let mut errors = Map::new();
    for id in ids {
        match SecretRef::parse_config_id(&id).and_then(|r| vault.read_blocking(&r)) {
            Ok(secret) => {
                values.insert(id, Value::String(secret.expose().to_owned()));
            }
            Err(e) => {
                let code = match e {
                    vault::Error::NotFound(_) | vault::Error::BadRef(_) => "NOT_FOUND",
                    vault::Error::Locked => "LOCKED",
                    _ => "UNAVAILABLE",
                };
                errors.insert(id, json!({ "code": code }));
            }
        }
    }
    let mut out = json!({ "protocolVersion": 1, "values": values });
    if !errors.is_empty() {
        out["errors"] = Value::Object(errors);
    }
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{out}").is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
