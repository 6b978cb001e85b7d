//! The planted-secret scan: look for secret values in files (SQLite and its WAL included),
//! and in every process's command line and environment.

use clawkeeper_core::rotation::journal;
use clawkeeper_core::store::Store;
use std::path::{Path, PathBuf};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Files under `dir` that contain any of `needles`.
pub fn files_containing(dir: &Path, needles: &[&str]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    if needles.iter().any(|n| contains(&bytes, n.as_bytes())) {
                        hits.push(e.path());
                    }
                }
            }
        }
    }
    hits
}

/// `/proc/<pid>/{cmdline,environ}` entries that contain any of `needles` (Linux).
pub fn processes_containing(needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return hits;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        for file in ["cmdline", "environ"] {
            if let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{file}")) {
                if needles.iter().any(|n| contains(&bytes, n.as_bytes())) {
                    hits.push(format!("/proc/{pid}/{file}"));
                }
            }
        }
    }
    hits
}

/// The planted-secret scan of a rotation test: none of `needles` (every secret the test
/// planted or saw, old and new) in a file under `data_dir` (database, WAL, logs), in a
/// process's arguments or environment, in the rotation journal or in the audit log.
/// Returns the audit log's text (its last 500 rows) for the test's own checks, e.g. that
/// the new secret's fingerprint is there.
#[allow(clippy::unwrap_used)] // a test assertion: a store that cannot be read fails the test
pub async fn assert_nowhere(data_dir: &Path, store: &Store, needles: &[&str]) -> String {
    let files = files_containing(data_dir, needles);
    assert!(files.is_empty(), "planted secrets in files: {files:?}");
    let procs = processes_containing(needles);
    assert!(
        procs.is_empty(),
        "planted secrets in process arguments: {procs:?}"
    );
    let journal_text = format!("{:?}", journal::recent(store, 200).await.unwrap());
    let audit_text = format!(
        "{:?}",
        clawkeeper_core::audit::recent(store, 500).await.unwrap()
    );
    for (i, n) in needles.iter().enumerate() {
        assert!(
            !journal_text.contains(n),
            "planted secret #{i} in the rotation journal"
        );
        assert!(
            !audit_text.contains(n),
            "planted secret #{i} in the audit log"
        );
    }
    audit_text
}
