//! Every log line of this process at TRACE (the `log` records of dependencies included),
//! kept in memory, for tests that check that no secret reaches a log.
//!
//! One subscriber per process: under nextest each test is its own process; under
//! `cargo test` tests share it, so each test scans for its own secrets only.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Captured(Arc::new(Mutex::new(Vec::new())));
        let writer = buf.clone();
        let installed = tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        assert!(installed.is_ok(), "another subscriber was installed first");
        buf
    })
    .clone()
}

/// Start capturing (once per process; later calls do nothing).
pub fn capture_logs() {
    captured();
}

/// Everything logged since [`capture_logs`].
pub fn logs() -> String {
    let bytes = captured().0.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
