//! A recording DNS stub for the test namespace: answers every query with REFUSED and
//! appends the queried name to a log, so a test can list every name the instance tried to
//! reach. `scripts/test-inner.sh` starts it on 127.0.0.1:53 and points the namespace's
//! resolv.conf at it (only loopback is involved).

use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;

/// The queried name of a DNS message, if it has one question.
pub fn question_name(msg: &[u8]) -> Option<String> {
    if msg.len() < 12 {
        return None;
    }
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if qdcount == 0 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(i)?);
        if len == 0 {
            break;
        }
        if len & 0xC0 != 0 || labels.len() > 127 {
            return None; // no compression in questions; bounded
        }
        let label = msg.get(i + 1..i + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += 1 + len;
    }
    Some(labels.join("."))
}

/// A REFUSED answer to `msg` (same id and question).
pub fn refused(msg: &[u8]) -> Vec<u8> {
    let mut out = msg.to_vec();
    if out.len() >= 4 {
        out[2] = 0x80 | (msg[2] & 0x01); // QR=1, keep RD
        out[3] = 0x05; // RCODE=REFUSED
                       // No answer, authority or additional records.
        for b in out.iter_mut().take(12).skip(6) {
            *b = 0;
        }
    }
    out
}

/// Serve forever on `sock`, appending `name` lines to `log`.
pub fn serve(sock: &UdpSocket, log: &Path) -> std::io::Result<()> {
    let mut buf = [0u8; 1500];
    loop {
        let (n, peer) = sock.recv_from(&mut buf)?;
        let msg = &buf[..n];
        if let Some(name) = question_name(msg) {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            writeln!(f, "{name}")?;
        }
        let _ = sock.send_to(&refused(msg), peer);
    }
}

/// Names recorded so far (deduplicated, sorted).
pub fn recorded(log: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().trim_end_matches('.').to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_a_query() {
        // id 0x1234, RD, 1 question: clawhub.ai A IN
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["clawhub", "ai"] {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(question_name(&q).as_deref(), Some("clawhub.ai"));
        let r = refused(&q);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0F, 5);
        assert!(question_name(&[1, 2, 3]).is_none());
        assert!(question_name(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63]).is_none());
    }
}
