//! `dns-recorder ADDR LOG`: the recording DNS stub (see `clawkeeper_tests::dns`).
fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:53".into());
    let log = std::path::PathBuf::from(args.next().unwrap_or_else(|| "dns.log".into()));
    let sock = std::net::UdpSocket::bind(&addr)?;
    clawkeeper_tests::dns::serve(&sock, &log)
}
