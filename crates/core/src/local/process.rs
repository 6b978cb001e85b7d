//! Small process helpers: signals, liveness, and the sockets a process listens on.
#![allow(unsafe_code)] // kill(2): the one libc call we need, with checked arguments.

/// Send `sig` to process `pid`. Returns false if it does not exist.
#[cfg(unix)]
pub fn signal(pid: u32, sig: i32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; pid > 0 targets one process.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Send `sig` to the process group led by `pgid`.
#[cfg(unix)]
pub fn signal_group(pgid: u32, sig: i32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: as above; a negative pid addresses the process group.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

#[cfg(unix)]
pub fn alive(pid: u32) -> bool {
    signal(pid, 0)
}

/// Listening TCP sockets (address, port) of a set of processes, read from /proc (Linux).
#[cfg(target_os = "linux")]
pub fn listening_sockets(pids: &[u32]) -> Vec<(std::net::IpAddr, u16)> {
    use std::collections::HashSet;
    let mut inodes = HashSet::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        out.extend(
            parse_proc_net_tcp(&text, v6)
                .into_iter()
                .filter(|(_, _, inode)| inodes.contains(inode))
                .map(|(a, p, _)| (a, p)),
        );
    }
    out
}

/// Parse /proc/net/tcp{,6}: LISTEN rows as (address, port, inode).
pub fn parse_proc_net_tcp(text: &str, v6: bool) -> Vec<(std::net::IpAddr, u16, String)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 10 || cols[3] != "0A" {
            continue; // 0A = LISTEN
        }
        let Some((addr, port)) = cols[1].split_once(':') else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(port, 16) else {
            continue;
        };
        let Some(ip) = parse_hex_addr(addr, v6) else {
            continue;
        };
        out.push((ip, port, cols[9].to_owned()));
    }
    out
}

fn parse_hex_addr(hex: &str, v6: bool) -> Option<std::net::IpAddr> {
    if !v6 {
        let n = u32::from_str_radix(hex, 16).ok()?;
        return Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
            n.to_le_bytes(),
        )));
    }
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(4).enumerate() {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Some(std::net::IpAddr::V6(std::net::Ipv6Addr::from(bytes)))
}

/// The process and all its descendants (Linux, via /proc/*/stat ppid).
#[cfg(target_os = "linux")]
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The comm field may contain spaces; ppid is the 2nd field after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u32>().ok())
            {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1\n   2: 0100007F:4965 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 777 1\n";
        let rows = parse_proc_net_tcp(v4, false);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            ("127.0.0.1".parse().unwrap(), 18789, "12345".into())
        );
        assert!(rows[1].0.is_unspecified());
        let v6 = "  sl  local_address remote_address st\n   0: 00000000000000000000000001000000:4965 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n";
        let rows = parse_proc_net_tcp(v6, true);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].0.is_loopback(), "{:?}", rows[0].0);
        assert!(parse_proc_net_tcp("garbage\nmore garbage", false).is_empty());
    }
}
