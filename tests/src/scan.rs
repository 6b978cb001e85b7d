//! The planted-secret scan: look for secret values in files (SQLite and its WAL included),
//! and in every process's command line and environment.

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
