//! `store-writer DB`: appends audit rows forever, printing each sequence number once its
//! transaction has committed. A test kills it with SIGKILL and checks nothing printed is lost.
use clawkeeper_core::{audit, store::Store};
use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = std::env::args().nth(1).ok_or("usage: store-writer DB")?;
    let (store, _) = Store::open(std::path::Path::new(&db)).await?;
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let row = audit::append(&store, Some("local"), "test.write", &format!("row {i}")).await?;
        writeln!(out, "{}", row.seq)?;
        out.flush()?;
    }
    Ok(())
}
