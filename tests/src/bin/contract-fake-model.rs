//! Runs the contract fake OpenAI-compatible model server by hand.
//!
//! `FAKE_MODEL_KEY=sk-... contract-fake-model` prints the base URL
//! (`http://127.0.0.1:PORT/v1`) and serves until ctrl-c. With
//! `FAKE_MODEL_DUMP=<file>` it writes the recorded requests there as JSON
//! lines when it stops.

use std::io::Write;

use clawkeeper_tests::fake_model::ContractFakeModel;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let key = std::env::var("FAKE_MODEL_KEY")
        .map_err(|_| anyhow::anyhow!("set FAKE_MODEL_KEY to the API key the fake should expect"))?;
    let fake = ContractFakeModel::start(key).await?;
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
