//! TLS between two Jami devices, on rustls (aws-lc-rs): configurations for both roles and the
//! check of the peer's certificate chain.
//!
//! Roles follow ICE: the side that asked for the connection (ICE controlled) is the TLS
//! **server**, the side that answered (ICE controlling) the **client**. Both present their
//! device certificate followed by its issuers (account, and Jami's CA for three-level
//! accounts), exactly as published on the DHT; the server demands a client certificate.
//! Neither side uses Web PKI: a peer is accepted when
//!
//! * its leaf is the device we expect (the one we dialled, or the signer of the request we
//!   answered): same public key;
//! * the chain verifies as Jami's (signatures, CA flags, validity, the account id in the
//!   account certificate), and the device is not revoked by the account's CRL when we have it;
//! * its keys are RSA of at least 2048 bits; neither the device nor its account is banned.
//!
//! Anything else is refused with the reason logged (`tracing`). TLS 1.3 is negotiated; TLS
//! 1.2 stays enabled on the client because that is what makes rustls send the safe
//! renegotiation signal GnuTLS servers (jamid) require even for TLS 1.3.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use pamoja_identity::{
    Certificate, ChainError, DeviceId, JamiId, PrivateKey, PublicKey, RevocationList,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Our side of a link: the device key and its chain (device first).
#[derive(Debug)]
pub struct Identity {
    /// Device private key.
    pub key: PrivateKey,
    /// Device certificate, then its issuers.
    pub chain: Vec<Certificate>,
}

/// Why a peer's chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefused {
    /// The leaf is not the device we expect.
    #[error("certificate of device {got}, expected {expected}")]
    WrongDevice {
        /// What was presented.
        got: DeviceId,
        /// What we expected.
        expected: DeviceId,
    },
    /// The chain is not device → account (→ CA).
    #[error("no account certificate in the chain")]
    NoIssuer,
    /// A certificate does not parse.
    #[error("unreadable certificate")]
    Unreadable,
    /// The chain does not verify (signatures, validity, CA flags, revocation).
    #[error("chain check failed: {0}")]
    Chain(ChainError),
    /// An RSA key under 2048 bits.
    #[error("key too small ({0} bits)")]
    WeakKey(usize),
    /// The device or its account is banned.
    #[error("banned")]
    Banned,
}

/// What we expect of the peer.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The peer device's public key.
    pub device: PublicKey,
    /// The peer account's revocation lists we hold (any of them revoking the device
    /// refuses it; lists not signed by the account are ignored).
    pub crls: Vec<RevocationList>,
    /// Accounts we banned.
    pub banned_accounts: Vec<JamiId>,
    /// Devices we banned.
    pub banned_devices: Vec<DeviceId>,
}

impl Expected {
    /// Expect this device, nothing else known.
    pub fn device(device: PublicKey) -> Self {
        Self {
            device,
            crls: Vec::new(),
            banned_accounts: Vec::new(),
            banned_devices: Vec::new(),
        }
    }

    /// Checks a presented chain (DER, leaf first) at `now`.
    pub fn check(&self, chain: &[&[u8]], now: SystemTime) -> Result<(), PeerRefused> {
        let certs: Vec<Certificate> = chain
            .iter()
            .map(|d| Certificate::from_der(d).map_err(|_| PeerRefused::Unreadable))
            .collect::<Result<_, _>>()?;
        let leaf = certs.first().ok_or(PeerRefused::Unreadable)?;
        if leaf.public_key().spki_der() != self.device.spki_der() {
            return Err(PeerRefused::WrongDevice {
                got: leaf.public_key().device_id(),
                expected: self.device.device_id(),
            });
        }
        let account = certs.get(1).ok_or(PeerRefused::NoIssuer)?;
        for c in &certs {
            let bits = c.public_key().bits();
            if bits < 2048 {
                return Err(PeerRefused::WeakKey(bits));
            }
        }
        pamoja_identity::verify_device_chain(leaf, account, certs.get(2), None, now)
            .map_err(PeerRefused::Chain)?;
        let revoked = self.crls.iter().any(|crl| {
            crl.lists(leaf)
                && crl.is_issued_by_name(account)
                && crl.verify_signature(account.public_key()).is_ok()
        });
        if revoked {
            return Err(PeerRefused::Chain(ChainError::Revoked));
        }
        if self.banned_devices.contains(&leaf.public_key().device_id())
            || self.banned_accounts.contains(&account.jami_id())
        {
            return Err(PeerRefused::Banned);
        }
        Ok(())
    }
}

/// Checks the peer for rustls and remembers why it refused one.
#[derive(Debug)]
struct PeerVerifier {
    expected: Expected,
    provider: Arc<CryptoProvider>,
    refused: Arc<Mutex<Option<PeerRefused>>>,
}

impl PeerVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let mut chain: Vec<&[u8]> = vec![end_entity.as_ref()];
        chain.extend(intermediates.iter().map(|c| c.as_ref()));
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(now.as_secs());
        self.expected.check(&chain, now).map_err(|why| {
            tracing::warn!(
                "refusing peer device {}: {why}",
                self.expected.device.device_id()
            );
            if let Ok(mut r) = self.refused.lock() {
                *r = Some(why);
            }
            rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        })
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ServerCertVerifier::supported_verify_schemes(self)
    }
}

/// Where the reason of a refusal lands (read it after a failed handshake).
pub type Refusal = Arc<Mutex<Option<PeerRefused>>>;

fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    // Forward secrecy only; every suite of the provider is ECDHE or TLS 1.3.
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(t) => {
            matches!(t.kx, rustls::crypto::KeyExchangeAlgorithm::ECDHE)
        }
    });
    Arc::new(p)
}

/// The provider, a verifier of `expected`, and where it leaves its reason.
fn verifier(expected: Expected) -> (Arc<CryptoProvider>, Arc<PeerVerifier>, Refusal) {
    let provider = provider();
    let refused: Refusal = Arc::default();
    let verifier = Arc::new(PeerVerifier {
        expected,
        provider: provider.clone(),
        refused: refused.clone(),
    });
    (provider, verifier, refused)
}

fn chain_der(identity: &Identity) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = identity
        .chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        identity.key.to_pkcs8_der().to_vec(),
    ));
    (chain, key)
}

/// The configuration of the TLS client (the side that answered the connection request).
pub fn client_config(
    identity: &Identity,
    expected: Expected,
) -> Result<(Arc<rustls::ClientConfig>, Refusal), rustls::Error> {
    let (provider, verifier, refused) = verifier(expected);
    let (chain, key) = chain_der(identity);
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        // TLS 1.2 enabled so that the ClientHello carries the renegotiation SCSV.
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    config.enable_sni = false;
    Ok((Arc::new(config), refused))
}

/// The configuration of the TLS server (the side that asked for the connection).
pub fn server_config(
    identity: &Identity,
    expected: Expected,
) -> Result<(Arc<rustls::ServerConfig>, Refusal), rustls::Error> {
    let (provider, verifier, refused) = verifier(expected);
    let (chain, key) = chain_der(identity);
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok((Arc::new(config), refused))
}

/// The name the client gives rustls (never sent: SNI is off).
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("jami.device").expect("a valid DNS name")
}
