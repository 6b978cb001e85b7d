//! A minimal DERP server: enough for tailscaled to count one live connection to its home
//! region. It relays nothing. Framing and handshake from tailscale/tailscale `derp/derp.go`
//! (frame = type (1), length (4, big-endian), payload) and `derp/derp_client.go`
//! (server key frame with the magic, client info sealed with NaCl box, server info).

use crypto_box::aead::Aead;
use crypto_box::{PublicKey, SalsaBox, SecretKey};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MAGIC: &[u8] = "DERP🔑".as_bytes();
const FRAME_SERVER_KEY: u8 = 0x01;
const FRAME_CLIENT_INFO: u8 = 0x02;
const FRAME_SERVER_INFO: u8 = 0x03;
const FRAME_KEEP_ALIVE: u8 = 0x06;
const FRAME_PING: u8 = 0x12;
const FRAME_PONG: u8 = 0x13;
const MAX_FRAME: usize = 64 * 1024;
const NONCE_LEN: usize = 24;

pub fn frame(t: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + payload.len());
    f.push(t);
    // Payloads here are small (< 64 KiB, see MAX_FRAME).
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    t: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    w.write_all(&frame(t, payload)).await?;
    w.flush().await
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let mut hdr = [0u8; 5];
    r.read_exact(&mut hdr).await?;
    let len = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("DERP frame too large"));
    }
    let mut p = vec![0u8; len];
    r.read_exact(&mut p).await?;
    Ok((hdr[0], p))
}

/// Opens a client info frame's payload: the client's node key (public), and its info JSON.
pub fn open_client_info(server: &SecretKey, payload: &[u8]) -> Result<([u8; 32], Vec<u8>), String> {
    if payload.len() < 32 + NONCE_LEN + 16 {
        return Err(format!("client info too short ({} bytes)", payload.len()));
    }
    let mut client = [0u8; 32];
    client.copy_from_slice(&payload[..32]);
    let b = SalsaBox::new(&PublicKey::from(client), server);
    let nonce = crypto_box::Nonce::clone_from_slice(&payload[32..32 + NONCE_LEN]);
    let info = b
        .decrypt(&nonce, &payload[32 + NONCE_LEN..])
        .map_err(|_| "client info does not open".to_string())?;
    Ok((client, info))
}

/// Serves one DERP client until it goes away. `on_client(node_key, up)` is told when the
/// client (`nodekey:<hex>`) has completed the handshake and when it has gone.
pub async fn serve<T>(io: T, server_private: [u8; 32], on_client: impl Fn(&str, bool))
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (mut r, mut w) = tokio::io::split(io);
    let secret = SecretKey::from(server_private);
    let mut greet = MAGIC.to_vec();
    greet.extend_from_slice(secret.public_key().as_bytes());
    if write_frame(&mut w, FRAME_SERVER_KEY, &greet).await.is_err() {
        return;
    }
    let Ok((t, p)) = read_frame(&mut r).await else {
        return;
    };
    if t != FRAME_CLIENT_INFO {
        eprintln!("fake control (derp): expected client info, got frame {t}");
        return;
    }
    let (client, _info) = match open_client_info(&secret, &p) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fake control (derp): {e}");
            return;
        }
    };
    let b = SalsaBox::new(&PublicKey::from(client), &secret);
    let nonce = crypto_box::Nonce::from(rand::random::<[u8; NONCE_LEN]>());
    let Ok(sealed) = b.encrypt(&nonce, br#"{"version":2}"#.as_slice()) else {
        return;
    };
    let mut msg = nonce.to_vec();
    msg.extend_from_slice(&sealed);
    if write_frame(&mut w, FRAME_SERVER_INFO, &msg).await.is_err() {
        return;
    }
    let node_key = format!("nodekey:{}", hex::encode(client));
    on_client(&node_key, true);
    let mut keep_alive = tokio::time::interval(std::time::Duration::from_secs(60));
    keep_alive.tick().await;
    loop {
        tokio::select! {
            f = read_frame(&mut r) => match f {
                Ok((FRAME_PING, p)) => {
                    if write_frame(&mut w, FRAME_PONG, &p).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            },
            _ = keep_alive.tick() => {
                if write_frame(&mut w, FRAME_KEEP_ALIVE, &[]).await.is_err() {
                    break;
                }
            }
        }
    }
    on_client(&node_key, false);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn a_client_completes_the_handshake_and_gets_pongs() {
        let server_private: [u8; 32] = rand::random();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let server = tokio::spawn(async move {
            serve(server_io, server_private, move |k, up| {
                seen2.lock().unwrap().push((k.to_string(), up));
            })
            .await;
        });
        let (mut r, mut w) = tokio::io::split(client_io);
        let (t, greet) = read_frame(&mut r).await.unwrap();
        assert_eq!(t, FRAME_SERVER_KEY);
        assert_eq!(&greet[..MAGIC.len()], MAGIC);
        let server_pub = PublicKey::from_slice(&greet[MAGIC.len()..]).unwrap();
        let client_secret = SecretKey::from(rand::random::<[u8; 32]>());
        let b = SalsaBox::new(&server_pub, &client_secret);
        let nonce = crypto_box::Nonce::from(rand::random::<[u8; 24]>());
        let mut info = client_secret.public_key().as_bytes().to_vec();
        info.extend_from_slice(&nonce);
        info.extend(b.encrypt(&nonce, br#"{"version":2}"#.as_slice()).unwrap());
        write_frame(&mut w, FRAME_CLIENT_INFO, &info).await.unwrap();
        let (t, sealed) = read_frame(&mut r).await.unwrap();
        assert_eq!(t, FRAME_SERVER_INFO);
        let opened = b
            .decrypt(crypto_box::Nonce::from_slice(&sealed[..24]), &sealed[24..])
            .unwrap();
        assert_eq!(opened, br#"{"version":2}"#);
        write_frame(&mut w, FRAME_PING, b"12345678").await.unwrap();
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            (FRAME_PONG, b"12345678".to_vec())
        );
        drop((r, w));
        server.await.unwrap();
        let node_key = format!(
            "nodekey:{}",
            hex::encode(client_secret.public_key().as_bytes())
        );
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(node_key.clone(), true), (node_key, false)]
        );
    }

    #[test]
    fn client_info_sealed_for_another_server_does_not_open() {
        let server = SecretKey::from(rand::random::<[u8; 32]>());
        let other = SecretKey::from(rand::random::<[u8; 32]>());
        let client = SecretKey::from(rand::random::<[u8; 32]>());
        let nonce = crypto_box::Nonce::from(rand::random::<[u8; 24]>());
        let sealed = SalsaBox::new(&other.public_key(), &client)
            .encrypt(&nonce, b"{}".as_slice())
            .unwrap();
        let mut p = client.public_key().as_bytes().to_vec();
        p.extend_from_slice(&nonce);
        p.extend(sealed);
        assert!(open_client_info(&server, &p).is_err());
        assert!(open_client_info(&server, &p[..40]).is_err());
    }
}
