//! Runs the contract fake OpenAI-compatible model server by hand.
//!
//! `FAKE_MODEL_KEY=sk-... contract-fake-model` prints the base URL
//! (`http://127.0.0.1:PORT/v1`) and serves until ctrl-c. With
//! `FAKE_MODEL_DUMP=<file>` it writes the recorded requests there as JSON
//! lines when it stops. With `FAKE_MODEL_PRICE=<in>,<out>` (dollars per
//! prompt / completion token) every usage object also reports an
//! OpenRouter-style `cost`.

use std::io::Write;

use clawkeeper_tests::fake_model::{ContractFakeModel, TokenPrice, DEFAULT_MODEL_IDS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let key = std::env::var("FAKE_MODEL_KEY")
        .map_err(|_| anyhow::anyhow!("set FAKE_MODEL_KEY to the API key the fake should expect"))?;
    let price = match std::env::var("FAKE_MODEL_PRICE") {
        Ok(raw) => {
            let (input, output) = raw
                .split_once(',')
                .ok_or_else(|| anyhow::anyhow!("FAKE_MODEL_PRICE must be <in>,<out>"))?;
            Some(TokenPrice {
                input: input.trim().parse()?,
                output: output.trim().parse()?,
            })
        }
        Err(_) => None,
    };
    let ids = DEFAULT_MODEL_IDS.iter().map(|s| (*s).to_owned()).collect();
    let fake = ContractFakeModel::start_priced(([127, 0, 0, 1], 0).into(), key, ids, price).await?;
    println!("{}", fake.base_url());
    tokio::signal::ctrl_c().await?;
    let requests = fake.requests();
    eprintln!("served {} request(s)", requests.len());
    if let Ok(path) = std::env::var("FAKE_MODEL_DUMP") {
        let mut file = std::fs::File::create(path)?;
        for r in &requests {
            let line = serde_json::json!({
                "method": r.method,
                "path": r.path,
                "auth_present": r.auth_present,
                "auth_ok": r.auth_ok,
                "last_user_text": r.last_user_text,
                "prompt": r.prompt,
                "body": r.body,
            });
            writeln!(file, "{line}")?;
        }
    }
    Ok(())
}
