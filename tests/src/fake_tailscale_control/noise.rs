//! The ts2021 base transport, server side: `Noise_IK_25519_ChaChaPoly_BLAKE2s` with
//! Tailscale's framing, written from the protocol description in tailscale/tailscale
//! `control/controlbase/` (`handshake.go`, `messages.go`, `conn.go`).
//!
//! * Prologue: `"Tailscale Control Protocol v<N>"`, N the client's protocol version (the
//!   first two bytes of the initiation, big-endian).
//! * Initiation (client → server, 101 bytes, base64 in the `X-Tailscale-Handshake` header of
//!   the upgrade request): version (2), type 1, length 96 (2), ephemeral key (32), the
//!   client's machine key encrypted (32 + 16 tag), an empty payload's tag (16).
//! * Response (server → client, 51 bytes, first on the upgraded connection): type 2,
//!   length 48 (2), ephemeral key (32), an empty payload's tag (16).
//! * Records: type 4, length (2, big-endian), ChaCha20-Poly1305 ciphertext; at most 4096
//!   bytes a record.
//!
//! The quirk that rules out an off-the-shelf Noise library's transport mode: the record
//! nonce is the 8-byte counter **big-endian** in the last 8 bytes of the 12-byte nonce
//! (`conn.go`, `nonce`); the Noise spec (and `snow`) put it little-endian.

use blake2::{Blake2s256, Digest};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::SimpleHkdf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

const PROTOCOL_NAME: &[u8] = b"Noise_IK_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE_PREFIX: &str = "Tailscale Control Protocol v";
/// 5 header + 32 ephemeral + 48 encrypted machine key + 16 tag.
pub const INIT_LEN: usize = 101;
const MSG_INITIATION: u8 = 1;
const MSG_RESPONSE: u8 = 2;
const MSG_RECORD: u8 = 4;
const MAX_MESSAGE: usize = 4096;
const HEADER_LEN: usize = 3;
const TAG_LEN: usize = 16;
const MAX_PLAINTEXT: usize = MAX_MESSAGE - HEADER_LEN - TAG_LEN;

pub type Key = [u8; 32];

/// X25519 of `private` and `public` (the private key is clamped).
pub fn x25519(private: &Key, public: &Key) -> Key {
    x25519_dalek::x25519(*private, *public)
}

pub fn public_of(private: &Key) -> Key {
    x25519(private, &x25519_dalek::X25519_BASEPOINT_BYTES)
}

/// A fresh private key (any 32 random bytes: X25519 clamps them).
pub fn random_key() -> Key {
    rand::random()
}

fn key32(b: &[u8]) -> Result<Key, String> {
    b.try_into()
        .map_err(|_| format!("expected 32 bytes, got {}", b.len()))
}

/// The handshake's symmetric state (Noise: h, ck).
struct Symmetric {
    h: Key,
    ck: Key,
}

impl Symmetric {
    fn new(version: u16) -> Self {
        let h: Key = Blake2s256::digest(PROTOCOL_NAME).into();
        let mut s = Self { h, ck: h };
        s.mix_hash(format!("{PROLOGUE_PREFIX}{version}").as_bytes());
        s
    }

    fn mix_hash(&mut self, data: &[u8]) {
        let mut d = Blake2s256::new();
        d.update(self.h);
        d.update(data);
        self.h = d.finalize().into();
    }

    fn hkdf2(ck: &Key, ikm: &[u8]) -> (Key, Key) {
        let hk = SimpleHkdf::<Blake2s256>::new(Some(ck), ikm);
        let mut okm = [0u8; 64];
        // 64 bytes is far below HKDF-BLAKE2s's limit (255 * 32): this cannot fail.
        let _ = hk.expand(&[], &mut okm);
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        a.copy_from_slice(&okm[..32]);
        b.copy_from_slice(&okm[32..]);
        (a, b)
    }

    /// MixKey(DH(private, public)): a new chaining key and the key for one AEAD use.
    fn mix_dh(&mut self, private: &Key, public: &Key) -> Key {
        let (ck, k) = Self::hkdf2(&self.ck, &x25519(private, public));
        self.ck = ck;
        k
    }

    fn encrypt_and_hash(&mut self, key: &Key, plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let ct = ChaCha20Poly1305::new(key.into())
            .encrypt(
                &[0u8; 12].into(),
                Payload {
                    msg: plaintext,
                    aad: &self.h,
                },
            )
            .map_err(|_| "handshake encryption failed".to_string())?;
        self.mix_hash(&ct);
        Ok(ct)
    }

    fn decrypt_and_hash(&mut self, key: &Key, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        let pt = ChaCha20Poly1305::new(key.into())
            .decrypt(
                &[0u8; 12].into(),
                Payload {
                    msg: ciphertext,
                    aad: &self.h,
                },
            )
            .map_err(|_| "handshake decryption failed".to_string())?;
        self.mix_hash(ciphertext);
        Ok(pt)
    }

    /// (initiator → responder key, responder → initiator key).
    fn split(&self) -> (Key, Key) {
        Self::hkdf2(&self.ck, &[])
    }
}

/// The server's half of a completed handshake.
pub struct Accepted {
    /// The client's protocol version (`tailcfg.CurrentCapabilityVersion`).
    pub version: u16,
    /// The client's machine key (its Noise static key).
    pub machine_key: Key,
    /// The 51-byte response to write to the client first.
    pub response: Vec<u8>,
    tx_key: Key,
    rx_key: Key,
}

/// Processes the client's initiation (from the `X-Tailscale-Handshake` header).
pub fn accept(server_private: &Key, init: &[u8]) -> Result<Accepted, String> {
    if init.len() != INIT_LEN {
        return Err(format!("wrong handshake initiation size {}", init.len()));
    }
    let version = u16::from_be_bytes([init[0], init[1]]);
    if init[2] != MSG_INITIATION {
        return Err(format!("unexpected handshake message type {}", init[2]));
    }
    if usize::from(u16::from_be_bytes([init[3], init[4]])) != INIT_LEN - 5 {
        return Err("wrong handshake initiation length".into());
    }
    let e_client = key32(&init[5..37])?;
    let mut s = Symmetric::new(version);
    s.mix_hash(&public_of(server_private));
    // -> e, es, s, ss
    s.mix_hash(&e_client);
    let k = s.mix_dh(server_private, &e_client);
    let machine_key = key32(&s.decrypt_and_hash(&k, &init[37..85])?)?;
    let k = s.mix_dh(server_private, &machine_key);
    s.decrypt_and_hash(&k, &init[85..101])?;
    // <- e, ee, se
    let e_private = random_key();
    let e_public = public_of(&e_private);
    s.mix_hash(&e_public);
    let _ = s.mix_dh(&e_private, &e_client);
    let k = s.mix_dh(&e_private, &machine_key);
    let tag = s.encrypt_and_hash(&k, &[])?;
    let (c1, c2) = s.split();
    let mut response = vec![MSG_RESPONSE, 0, 48];
    response.extend_from_slice(&e_public);
    response.extend_from_slice(&tag);
    Ok(Accepted {
        version,
        machine_key,
        response,
        tx_key: c2,
        rx_key: c1,
    })
}

/// The 12-byte record nonce: 4 zero bytes, then the counter big-endian.
pub fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

/// One record: `plaintext` encrypted with `key` under nonce `counter`, framed.
pub fn seal_record(key: &Key, counter: u64, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(format!("record plaintext too long: {}", plaintext.len()));
    }
    let ct = ChaCha20Poly1305::new(key.into())
        .encrypt(&nonce(counter).into(), plaintext)
        .map_err(|_| "record encryption failed".to_string())?;
    let len = u16::try_from(ct.len()).map_err(|_| "record too long".to_string())?;
    let mut frame = Vec::with_capacity(HEADER_LEN + ct.len());
    frame.push(MSG_RECORD);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&ct);
    Ok(frame)
}

/// The ciphertext length a record header announces, if it is a valid record header.
pub fn record_len(header: [u8; 3]) -> Result<usize, String> {
    let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
    if header[0] != MSG_RECORD {
        return Err(format!(
            "unexpected message type {} in transport",
            header[0]
        ));
    }
    if len + HEADER_LEN > MAX_MESSAGE || len < TAG_LEN {
        return Err(format!("bad record length {len}"));
    }
    Ok(len)
}

pub fn open_record(key: &Key, counter: u64, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
    ChaCha20Poly1305::new(key.into())
        .decrypt(&nonce(counter).into(), ciphertext)
        .map_err(|_| format!("record {counter} does not decrypt"))
}

/// Writes the handshake response to `io`, then runs the record layer over it and returns the
/// plaintext end as an in-memory stream (the HTTP/2 connection runs on that).
pub async fn serve<T>(mut io: T, acc: Accepted) -> std::io::Result<DuplexStream>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    io.write_all(&acc.response).await?;
    io.flush().await?;
    let (plain_here, plain_there) = tokio::io::duplex(256 * 1024);
    let (mut net_r, mut net_w) = tokio::io::split(io);
    let (mut pl_r, mut pl_w) = tokio::io::split(plain_here);
    let (rx_key, tx_key) = (acc.rx_key, acc.tx_key);
    // network → plaintext
    tokio::spawn(async move {
        let mut counter: u64 = 0;
        loop {
            let mut hdr = [0u8; HEADER_LEN];
            if net_r.read_exact(&mut hdr).await.is_err() {
                break;
            }
            let len = match record_len(hdr) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("fake control (noise): {e}");
                    break;
                }
            };
            let mut ct = vec![0u8; len];
            if net_r.read_exact(&mut ct).await.is_err() {
                break;
            }
            let pt = match open_record(&rx_key, counter, &ct) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("fake control (noise): {e}");
                    break;
                }
            };
            counter += 1;
            if pl_w.write_all(&pt).await.is_err() {
                break;
            }
        }
        let _ = pl_w.shutdown().await;
    });
    // plaintext → network
    tokio::spawn(async move {
        let mut counter: u64 = 0;
        let mut buf = vec![0u8; MAX_PLAINTEXT];
        loop {
            let got = match pl_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(g) => g,
            };
            let Ok(frame) = seal_record(&tx_key, counter, &buf[..got]) else {
                break;
            };
            counter += 1;
            if net_w.write_all(&frame).await.is_err() || net_w.flush().await.is_err() {
                break;
            }
        }
        let _ = net_w.shutdown().await;
    });
    Ok(plain_there)
}

/// The client's side of the handshake, for tests of the server side.
#[cfg(test)]
pub mod client {
    use super::*;

    pub struct Initiation {
        pub message: Vec<u8>,
        state: Symmetric,
        e_private: Key,
        machine_private: Key,
    }

    pub fn initiate(version: u16, machine_private: &Key, server_public: &Key) -> Initiation {
        let mut s = Symmetric::new(version);
        s.mix_hash(server_public);
        let e_private = random_key();
        let e_public = public_of(&e_private);
        s.mix_hash(&e_public);
        let k = s.mix_dh(&e_private, server_public);
        let enc_machine = s.encrypt_and_hash(&k, &public_of(machine_private)).unwrap();
        let k = s.mix_dh(machine_private, server_public);
        let tag = s.encrypt_and_hash(&k, &[]).unwrap();
        let mut message = version.to_be_bytes().to_vec();
        message.push(MSG_INITIATION);
        message.extend_from_slice(&96u16.to_be_bytes());
        message.extend_from_slice(&e_public);
        message.extend_from_slice(&enc_machine);
        message.extend_from_slice(&tag);
        Initiation {
            message,
            state: s,
            e_private,
            machine_private: *machine_private,
        }
    }

    /// The response's check: (client → server key, server → client key).
    pub fn finish(init: Initiation, response: &[u8]) -> Result<(Key, Key), String> {
        if response.len() != 51 || response[0] != MSG_RESPONSE || response[1..3] != [0, 48] {
            return Err("bad response header".into());
        }
        let mut s = init.state;
        let e_server = key32(&response[3..35])?;
        s.mix_hash(&e_server);
        let _ = s.mix_dh(&init.e_private, &e_server);
        let k = s.mix_dh(&init.machine_private, &e_server);
        s.decrypt_and_hash(&k, &response[35..51])?;
        Ok(s.split())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn nonce_is_big_endian_in_the_last_eight_bytes() {
        assert_eq!(nonce(0), [0; 12]);
        assert_eq!(nonce(1), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            nonce(0x0102_0304_0506_0708),
            [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn x25519_matches_rfc7748_vector() {
        // RFC 7748 section 6.1: Alice's private key and public key.
        let alice: Key =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            hex::encode(public_of(&alice)),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn a_client_handshake_is_accepted_and_keys_match() {
        let server = random_key();
        let machine = random_key();
        let init = client::initiate(130, &machine, &public_of(&server));
        assert_eq!(init.message.len(), INIT_LEN);
        let acc = accept(&server, &init.message).unwrap();
        assert_eq!(acc.version, 130);
        assert_eq!(acc.machine_key, public_of(&machine));
        assert_eq!(acc.response.len(), 51);
        let (c2s, s2c) = client::finish(init, &acc.response).unwrap();
        assert_eq!(c2s, acc.rx_key);
        assert_eq!(s2c, acc.tx_key);
        assert_ne!(c2s, s2c);
    }

    #[test]
    fn a_handshake_for_another_server_key_or_version_is_refused() {
        let server = random_key();
        let machine = random_key();
        let other = client::initiate(130, &machine, &public_of(&random_key()));
        assert!(accept(&server, &other.message).is_err());
        // The version is part of the prologue: changing it breaks the tags.
        let mut init = client::initiate(130, &machine, &public_of(&server)).message;
        init[1] = 131;
        assert_eq!(
            accept(&server, &init).err().as_deref(),
            Some("handshake decryption failed")
        );
        assert!(accept(&server, &init[..100]).is_err());
        let mut wrong_type = client::initiate(130, &machine, &public_of(&server)).message;
        wrong_type[2] = 2;
        assert!(accept(&server, &wrong_type).is_err());
    }

    #[test]
    fn records_round_trip_and_refuse_a_wrong_counter() {
        let key = random_key();
        let frame = seal_record(&key, 7, b"hello").unwrap();
        assert_eq!(frame[0], 4);
        let len = record_len([frame[0], frame[1], frame[2]]).unwrap();
        assert_eq!(len, 5 + 16);
        assert_eq!(open_record(&key, 7, &frame[3..]).unwrap(), b"hello");
        assert!(open_record(&key, 8, &frame[3..]).is_err());
        assert!(record_len([1, 0, 20]).is_err());
        assert!(record_len([4, 0x10, 0]).is_err());
        assert!(seal_record(&key, 0, &vec![0; MAX_PLAINTEXT + 1]).is_err());
    }

    #[tokio::test]
    async fn the_transport_carries_bytes_both_ways() {
        let server = random_key();
        let machine = random_key();
        let init = client::initiate(130, &machine, &public_of(&server));
        let acc = accept(&server, &init.message).unwrap();
        let (net_client, net_server) = tokio::io::duplex(64 * 1024);
        let mut plain = serve(net_server, acc).await.unwrap();
        let (mut cr, mut cw) = tokio::io::split(net_client);
        let mut resp = [0u8; 51];
        cr.read_exact(&mut resp).await.unwrap();
        let (c2s, s2c) = client::finish(init, &resp).unwrap();
        // Two records from the client arrive as one plaintext stream.
        cw.write_all(&seal_record(&c2s, 0, b"ping ").unwrap())
            .await
            .unwrap();
        cw.write_all(&seal_record(&c2s, 1, b"pong").unwrap())
            .await
            .unwrap();
        let mut got = [0u8; 9];
        plain.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping pong");
        // A long write goes out in records of at most 4096 bytes, counters 0, 1, ...
        let big = vec![7u8; 5000];
        plain.write_all(&big).await.unwrap();
        let mut out = Vec::new();
        let mut counter = 0;
        while out.len() < big.len() {
            let mut hdr = [0u8; 3];
            cr.read_exact(&mut hdr).await.unwrap();
            let len = record_len(hdr).unwrap();
            assert!(len + 3 <= MAX_MESSAGE);
            let mut ct = vec![0u8; len];
            cr.read_exact(&mut ct).await.unwrap();
            out.extend(open_record(&s2c, counter, &ct).unwrap());
            counter += 1;
        }
        assert_eq!(out, big);
        assert!(counter >= 2);
    }
}
