//! STUN against a real coturn (Debian's `turnserver`), started by the test on loopback and
//! stopped by its PID: a Binding request of ours gets a response that decodes, carries our
//! address in XOR-MAPPED-ADDRESS and a valid FINGERPRINT.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pamoja_ice::stun::{BINDING, Builder, Class, Message, attr};

const TURNSERVER: &str = "/usr/bin/turnserver";

struct Coturn(Child);

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn binding_with_coturn() {
    if !std::path::Path::new(TURNSERVER).exists() {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "coturn is missing in CI"
        );
        eprintln!("SKIPPED binding_with_coturn: coturn not installed (scripts/install-deps)");
        return;
    }
    let port = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let _server = Coturn(
        Command::new(TURNSERVER)
            .args([
                "-n",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--listening-ip=127.0.0.1",
            ])
            .arg(format!("--listening-port={port}"))
            .arg(format!(
                "--pidfile={}",
                dir.path().join("turn.pid").display()
            ))
            .args(["--log-file=stdout", "--simple-log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = socket.local_addr().unwrap();
    let transaction = Builder::random_transaction();
    let request = Builder::new(Class::Request, BINDING, transaction)
        .attr(attr::SOFTWARE, b"pamoja test")
        .fingerprint();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    let answer = loop {
        assert!(Instant::now() < deadline, "coturn never answered");
        socket.send_to(&request, ("127.0.0.1", port)).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            break buf[..n].to_vec();
        }
    };
    let m = Message::decode(&answer).unwrap();
    assert_eq!((m.class, m.method), (Class::Success, BINDING));
    assert_eq!(m.transaction, transaction);
    assert_eq!(m.mapped_address(), Some(me));
    assert!(m.check_fingerprint(&answer), "coturn's FINGERPRINT checks");
    // A request without the magic cookie framing is not ours to decode.
    assert!(Message::decode(&answer[..answer.len() - 1]).is_err());
}
