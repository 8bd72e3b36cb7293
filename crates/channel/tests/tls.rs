//! TLS between two devices over an in-memory stream: both chains presented and checked, TLS
//! 1.3 negotiated, the renegotiation signal GnuTLS needs in our ClientHello; and refusals
//! with their reason: a certificate of another device, an expired device certificate, a
//! device revoked by its account, a banned account.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use pamoja_channel::tls::{
    Expected, Identity, PeerRefused, client_config, server_config, server_name,
};
use pamoja_identity::{Account, Certificate, ChainError, PrivateKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn identity(account: &Account) -> Identity {
    let d = account.device().unwrap();
    Identity {
        key: PrivateKey::from_pkcs8_der(d.key.to_pkcs8_der()).unwrap(),
        chain: vec![d.cert.clone(), account.account_cert().clone()],
    }
}

/// Two accounts, made once (RSA-4096 is slow).
fn accounts() -> &'static (Account, Account) {
    static A: OnceLock<(Account, Account)> = OnceLock::new();
    A.get_or_init(|| {
        (
            Account::create(|_| {}).unwrap(),
            Account::create(|_| {}).unwrap(),
        )
    })
}

/// Runs a handshake: `server` expects `server_expects`, `client` expects `client_expects`.
/// Returns each side's result and refusal reason, and the client's first bytes.
async fn handshake(
    server: &Identity,
    server_expects: Expected,
    client: &Identity,
    client_expects: Expected,
) -> (bool, Option<PeerRefused>, bool, Option<PeerRefused>) {
    let (sc, s_refused) = server_config(server, server_expects).unwrap();
    let (cc, c_refused) = client_config(client, client_expects).unwrap();
    let (a, b) = tokio::io::duplex(1 << 16);
    let acceptor = tokio_rustls::TlsAcceptor::from(sc);
    let connector = tokio_rustls::TlsConnector::from(cc);
    let server_side = tokio::spawn(async move {
        let mut s = acceptor.accept(a).await.ok()?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.ok()?;
        s.write_all(b"pong!").await.ok()?;
        s.flush().await.ok()?;
        Some(buf)
    });
    let client_side = async {
        let mut c = connector.connect(server_name(), b).await.ok()?;
        assert_eq!(
            c.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        c.write_all(b"ping!").await.ok()?;
        c.flush().await.ok()?;
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    let got_c = tokio::time::timeout(Duration::from_secs(20), client_side)
        .await
        .unwrap();
    let got_s = tokio::time::timeout(Duration::from_secs(20), server_side)
        .await
        .unwrap()
        .unwrap();
    let s_ok = got_s == Some(*b"ping!");
    let c_ok = got_c == Some(*b"pong!");
    let (sr, cr) = (
        s_refused.lock().unwrap().clone(),
        c_refused.lock().unwrap().clone(),
    );
    (s_ok, sr, c_ok, cr)
}

#[tokio::test]
async fn devices_accept_each_other() {
    let (alice, bob) = accounts();
    let (a, b) = (identity(alice), identity(bob));
    let (s_ok, sr, c_ok, cr) = handshake(
        &a,
        Expected::device(b.chain[0].public_key().clone()),
        &b,
        Expected::device(a.chain[0].public_key().clone()),
    )
    .await;
    assert!(s_ok && c_ok, "{sr:?} {cr:?}");
}

#[test]
fn client_hello_carries_the_renegotiation_signal() {
    let (alice, bob) = accounts();
    let (cc, _) = client_config(
        &identity(bob),
        Expected::device(alice.device().unwrap().cert.public_key().clone()),
    )
    .unwrap();
    let mut conn = rustls::ClientConnection::new(cc, server_name()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    // record(5) handshake(4) version(2) random(32) session id(1+n) suites(2+n)
    let sid = usize::from(hello[43]);
    let at = 44 + sid;
    let n = usize::from(u16::from_be_bytes([hello[at], hello[at + 1]]));
    let suites: Vec<u16> = hello[at + 2..at + 2 + n]
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    assert!(
        suites.contains(&0x00ff),
        "TLS_EMPTY_RENEGOTIATION_INFO_SCSV in {suites:x?}"
    );
    assert!(suites.contains(&0x1302), "TLS_AES_256_GCM_SHA384");
}

#[tokio::test]
async fn another_device_is_refused() {
    let (alice, bob) = accounts();
    let (a, b) = (identity(alice), identity(bob));
    // Alice dialled some other device of Bob's: Bob's certificate is not it.
    let other = PrivateKey::generate().unwrap();
    let (s_ok, sr, c_ok, _) = handshake(
        &a,
        Expected::device(other.public_key().clone()),
        &b,
        Expected::device(a.chain[0].public_key().clone()),
    )
    .await;
    assert!(!s_ok && !c_ok);
    assert!(
        matches!(sr, Some(PeerRefused::WrongDevice { .. })),
        "{sr:?}"
    );
}

#[tokio::test]
async fn expired_revoked_and_banned_are_refused() {
    let (alice, bob) = accounts();
    let a = identity(alice);
    // An expired device certificate of Bob's account (issued 11 years ago).
    let key = PrivateKey::generate().unwrap();
    let eleven_years = Duration::from_secs(11 * 365 * 86_400);
    let cert = Certificate::issue(
        key.public_key(),
        "Jami device",
        Some(bob.account_cert()),
        bob.account_key(),
        false,
        SystemTime::now() - eleven_years,
    )
    .unwrap();
    let expired = Identity {
        key,
        chain: vec![cert.clone(), bob.account_cert().clone()],
    };
    let (s_ok, sr, _, _) = handshake(
        &a,
        Expected::device(cert.public_key().clone()),
        &expired,
        Expected::device(a.chain[0].public_key().clone()),
    )
    .await;
    assert!(!s_ok);
    assert_eq!(
        sr,
        Some(PeerRefused::Chain(ChainError::Expired { cert: "device" }))
    );

    // A device its account revoked, when we hold the account's CRL.
    let mut bob2 = Account::from_archive(bob.archive().clone()).unwrap();
    let dev = bob2.add_device().unwrap();
    bob2.revoke_device(&dev.cert.device_id()).unwrap();
    let revoked = Identity {
        key: PrivateKey::from_pkcs8_der(dev.key.to_pkcs8_der()).unwrap(),
        chain: vec![dev.cert.clone(), bob2.account_cert().clone()],
    };
    let mut expect = Expected::device(dev.cert.public_key().clone());
    expect.crls = bob2.crl().cloned().into_iter().collect();
    let (s_ok, sr, _, _) = handshake(
        &a,
        expect,
        &revoked,
        Expected::device(a.chain[0].public_key().clone()),
    )
    .await;
    assert!(!s_ok);
    assert_eq!(sr, Some(PeerRefused::Chain(ChainError::Revoked)));

    // A banned account, on the client side this time.
    let b = identity(bob);
    let mut expect = Expected::device(a.chain[0].public_key().clone());
    expect.banned_accounts.push(alice.jami_id());
    let (_, _, c_ok, cr) = handshake(
        &a,
        Expected::device(b.chain[0].public_key().clone()),
        &b,
        expect,
    )
    .await;
    assert!(!c_ok);
    assert_eq!(cr, Some(PeerRefused::Banned));
}
