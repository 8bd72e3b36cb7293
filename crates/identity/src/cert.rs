//! X.509 certificates with the profile jamid produces.
//!
//! jamid (through opendht and GnuTLS) issues three certificates per device:
//!
//! | certificate | subject | issuer | extensions |
//! |---|---|---|---|
//! | CA | `CN=Jami CA`, `UID=<CA id>` | itself | SKI, basicConstraints CA (critical), keyUsage keyCertSign+cRLSign (critical) |
//! | account | `CN=Jami`, `UID=<Jami ID>` | CA | the same three |
//! | device | `CN=Jami device`, `UID=<short device id>` | account | none |
//!
//! All are v3, valid 3650 days from creation, signed with RSA PKCS#1 v1.5 and SHA-384, with an
//! 8-byte serial. jamid writes the serial in host byte order, so it is often negative; this
//! module reads such serials and writes positive ones.

use std::time::{Duration, SystemTime};

use der::asn1::{Any, BitString, Null, ObjectIdentifier, OctetString, PrintableStringRef};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::error::{Error, Result, malformed};
use crate::id::{DeviceId, JamiId, ShortDeviceId};
use crate::key::{PrivateKey, PublicKey, SignatureHash};
use crate::pem;

/// Validity Jami gives every certificate: 10 years of 365 days.
pub const VALIDITY: Duration = Duration::from_secs(10 * 365 * 86400);

/// Common name of the account CA certificate.
pub const CN_CA: &str = "Jami CA";
/// Common name of the account certificate.
pub const CN_ACCOUNT: &str = "Jami";
/// Common name of a device certificate.
pub const CN_DEVICE: &str = "Jami device";

pub(crate) const OID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
pub(crate) const OID_UID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1");
const OID_SKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const OID_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
pub(crate) const OID_SHA256_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const OID_SHA384_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
pub(crate) const OID_SHA512_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");

/// The signature hash GnuTLS picks for an RSA-4096 signer, used for every certificate.
pub const CERT_SIGNATURE_HASH: SignatureHash = SignatureHash::Sha384;

/// An X.509 certificate: its DER bytes and the parsed form.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    tbs_der: Vec<u8>,
    cert: x509_cert::Certificate,
    public: PublicKey,
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for Certificate {}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.cert.tbs_certificate.subject.to_string())
            .field("issuer", &self.cert.tbs_certificate.issuer.to_string())
            .field("serial", &self.serial_hex())
            .finish()
    }
}

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let cert =
            x509_cert::Certificate::from_der(der).map_err(|e| malformed("certificate", e))?;
        let tbs_der = first_element(der).map_err(|e| malformed("certificate", e))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| malformed("certificate", e))?;
        let public = PublicKey::from_spki_der(&spki)?;
        Ok(Self {
            der: der.to_vec(),
            tbs_der,
            cert,
            public,
        })
    }

    /// Parses a PEM chain (leaf first, as in `ring_device.crt`) or a single DER certificate.
    pub fn chain_from_pem_or_der(data: &[u8]) -> Result<Vec<Self>> {
        if pem::is_pem(data) {
            pem::decode_all("certificate", data)?
                .into_iter()
                .filter(|(label, _)| label == "CERTIFICATE")
                .map(|(_, der)| Self::from_der(&der))
                .collect()
        } else {
            Ok(vec![Self::from_der(data)?])
        }
    }

    /// Encodes a chain as concatenated PEM blocks.
    pub fn chain_to_pem(chain: &[&Certificate]) -> String {
        chain.iter().map(|c| c.to_pem()).collect()
    }

    /// DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM text (`-----BEGIN CERTIFICATE-----`).
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    /// The parsed certificate.
    pub fn x509(&self) -> &x509_cert::Certificate {
        &self.cert
    }

    /// The certified public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Jami ID of the certified key (meaningful for an account certificate).
    pub fn jami_id(&self) -> JamiId {
        self.public.jami_id()
    }

    /// Device id of the certified key (meaningful for a device certificate).
    pub fn device_id(&self) -> DeviceId {
        self.public.device_id()
    }

    /// Short device id of the certified key.
    pub fn short_device_id(&self) -> ShortDeviceId {
        self.public.short_device_id()
    }

    /// The serial number as written (two's complement, may be negative).
    pub fn serial(&self) -> &SerialNumber {
        &self.cert.tbs_certificate.serial_number
    }

    /// The serial number as lowercase hex of its two's complement bytes.
    pub fn serial_hex(&self) -> String {
        hex::encode(self.serial().as_bytes())
    }

    /// First common name of the subject.
    pub fn subject_cn(&self) -> Option<String> {
        name_attr(&self.cert.tbs_certificate.subject, OID_CN)
    }

    /// First UID of the subject.
    pub fn subject_uid(&self) -> Option<String> {
        name_attr(&self.cert.tbs_certificate.subject, OID_UID)
    }

    /// First UID of the issuer (for a device certificate: its account's Jami ID).
    pub fn issuer_uid(&self) -> Option<String> {
        name_attr(&self.cert.tbs_certificate.issuer, OID_UID)
    }

    /// DER of the subject name.
    pub fn subject_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate
            .subject
            .to_der()
            .unwrap_or_default()
    }

    /// DER of the issuer name.
    pub fn issuer_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate
            .issuer
            .to_der()
            .unwrap_or_default()
    }

    /// True when the subject and issuer names are the same.
    pub fn is_self_issued(&self) -> bool {
        self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
    }

    /// True when `issuer`'s subject is this certificate's issuer name.
    pub fn is_issued_by_name(&self, issuer: &Certificate) -> bool {
        self.cert.tbs_certificate.issuer == issuer.cert.tbs_certificate.subject
    }

    /// Start of validity.
    pub fn not_before(&self) -> SystemTime {
        self.cert
            .tbs_certificate
            .validity
            .not_before
            .to_system_time()
    }

    /// End of validity.
    pub fn not_after(&self) -> SystemTime {
        self.cert
            .tbs_certificate
            .validity
            .not_after
            .to_system_time()
    }

    /// The hash of the certificate's RSA signature, if it is one this crate accepts
    /// (SHA-256, SHA-384 or SHA-512; SHA-1 is refused as GnuTLS' MEDIUM profile does).
    pub fn signature_hash(&self) -> Option<SignatureHash> {
        hash_of_oid(&self.cert.signature_algorithm.oid)
    }

    /// Checks the certificate's signature with `issuer_key`.
    pub fn verify_signature(&self, issuer_key: &PublicKey) -> Result<()> {
        let hash = self.signature_hash().ok_or(Error::BadSignature)?;
        let sig = self.cert.signature.as_bytes().ok_or(Error::BadSignature)?;
        issuer_key.verify(hash, &self.tbs_der, sig)
    }

    /// The extensions, in order.
    pub fn extensions(&self) -> &[Extension] {
        self.cert
            .tbs_certificate
            .extensions
            .as_deref()
            .unwrap_or(&[])
    }

    fn extension(&self, oid: ObjectIdentifier) -> Option<&Extension> {
        self.extensions().iter().find(|e| e.extn_id == oid)
    }

    /// The "is a CA" test opendht uses: basicConstraints CA set, and keyUsage absent, not
    /// critical, or allowing keyCertSign.
    pub fn is_ca(&self) -> bool {
        let Some(bc) = self.extension(OID_BASIC_CONSTRAINTS) else {
            return false;
        };
        let Ok(bc) = BasicConstraints::from_der(bc.extn_value.as_bytes()) else {
            return false;
        };
        if !bc.ca {
            return false;
        }
        match self.extension(OID_KEY_USAGE) {
            None => true,
            Some(ku) if !ku.critical => true,
            Some(ku) => KeyUsage::from_der(ku.extn_value.as_bytes())
                .map(|k| k.0.contains(KeyUsages::KeyCertSign))
                .unwrap_or(false),
        }
    }

    /// Issues a certificate with Jami's profile.
    ///
    /// `issuer` is `None` for a self-signed certificate (then `signer` must be the subject's
    /// own key). `is_ca` adds the CA extensions (SKI, basicConstraints, keyUsage); a device
    /// certificate has none.
    pub fn issue(
        subject_key: &PublicKey,
        common_name: &str,
        issuer: Option<&Certificate>,
        signer: &PrivateKey,
        is_ca: bool,
        not_before: SystemTime,
    ) -> Result<Self> {
        let uid = subject_key.jami_id().to_string();
        Self::issue_with_uid(
            subject_key,
            common_name,
            &uid,
            issuer,
            signer,
            is_ca,
            not_before,
        )
    }

    /// [`Self::issue`] with an explicit UID (tests build wrong certificates with it).
    pub(crate) fn issue_with_uid(
        subject_key: &PublicKey,
        common_name: &str,
        uid: &str,
        issuer: Option<&Certificate>,
        signer: &PrivateKey,
        is_ca: bool,
        not_before: SystemTime,
    ) -> Result<Self> {
        let subject = jami_name(common_name, uid)?;
        let issuer_name = match issuer {
            Some(c) => c.cert.tbs_certificate.subject.clone(),
            None => subject.clone(),
        };
        // Whole seconds, as GnuTLS writes.
        let secs = not_before
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|e| Error::Key(e.to_string()))?
            .as_secs();
        let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let validity = Validity {
            not_before: x509_time(not_before)?,
            not_after: x509_time(not_before + VALIDITY)?,
        };
        let extensions = if is_ca {
            let ski = SubjectKeyIdentifier(
                OctetString::new(subject_key.jami_id().as_bytes().to_vec()).map_err(enc)?,
            );
            let bc = BasicConstraints {
                ca: true,
                path_len_constraint: None,
            };
            let ku = KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign);
            Some(vec![
                ext(OID_SKI, false, &ski)?,
                ext(OID_BASIC_CONSTRAINTS, true, &bc)?,
                ext(OID_KEY_USAGE, true, &ku)?,
            ])
        } else {
            None
        };
        let tbs = x509_cert::TbsCertificate {
            version: x509_cert::Version::V3,
            serial_number: SerialNumber::new(&random_serial()?).map_err(enc)?,
            signature: rsa_algorithm(CERT_SIGNATURE_HASH),
            issuer: issuer_name,
            validity,
            subject,
            subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(subject_key.spki_der())
                .map_err(enc)?,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions,
        };
        let tbs_der = tbs.to_der().map_err(enc)?;
        let sig = signer.sign(CERT_SIGNATURE_HASH, &tbs_der)?;
        let cert = x509_cert::Certificate {
            tbs_certificate: tbs,
            signature_algorithm: rsa_algorithm(CERT_SIGNATURE_HASH),
            signature: BitString::from_bytes(&sig).map_err(enc)?,
        };
        Self::from_der(&cert.to_der().map_err(enc)?)
    }
}

pub(crate) fn enc(e: der::Error) -> Error {
    Error::Key(format!("DER encoding: {e}"))
}

pub(crate) fn x509_time(t: SystemTime) -> Result<Time> {
    // GnuTLS writes UTCTime up to 2049 and GeneralizedTime after, as RFC 5280 asks.
    Time::try_from(t).map_err(enc)
}

pub(crate) fn rsa_algorithm(hash: SignatureHash) -> AlgorithmIdentifierOwned {
    let oid = match hash {
        SignatureHash::Sha256 => OID_SHA256_RSA,
        SignatureHash::Sha384 => OID_SHA384_RSA,
        SignatureHash::Sha512 => OID_SHA512_RSA,
    };
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::from(Null)),
    }
}

pub(crate) fn hash_of_oid(oid: &ObjectIdentifier) -> Option<SignatureHash> {
    match *oid {
        OID_SHA256_RSA => Some(SignatureHash::Sha256),
        OID_SHA384_RSA => Some(SignatureHash::Sha384),
        OID_SHA512_RSA => Some(SignatureHash::Sha512),
        _ => None,
    }
}

fn ext<T: Encode>(oid: ObjectIdentifier, critical: bool, value: &T) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(enc)?).map_err(enc)?,
    })
}

/// `CN=<cn>, UID=<uid>`, two RDNs, both PrintableString, in that order.
pub(crate) fn jami_name(cn: &str, uid: &str) -> Result<Name> {
    let rdn = |oid, v: &str| -> Result<RelativeDistinguishedName> {
        let value = Any::encode_from(&PrintableStringRef::new(v).map_err(enc)?).map_err(enc)?;
        let atv = AttributeTypeAndValue { oid, value };
        RelativeDistinguishedName::try_from(vec![atv]).map_err(enc)
    };
    Ok(RdnSequence(vec![rdn(OID_CN, cn)?, rdn(OID_UID, uid)?]))
}

fn name_attr(name: &Name, oid: ObjectIdentifier) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oid)
        .and_then(|atv| {
            let v = &atv.value;
            std::str::from_utf8(v.value()).ok().map(str::to_owned)
        })
}

/// A positive 8-byte serial (first byte 0x01..=0x7f keeps the DER INTEGER at 8 bytes).
fn random_serial() -> Result<[u8; 8]> {
    let mut s = [0u8; 8];
    // Serials must not repeat: without the system generator, no certificate.
    aws_lc_rs::rand::fill(&mut s)
        .map_err(|_| Error::Key("the system random generator failed".into()))?;
    s[0] = (s[0] & 0x7f).max(1);
    Ok(s)
}

/// The complete DER TLV of the first element inside the outer SEQUENCE.
pub(crate) fn first_element(der: &[u8]) -> der::Result<Vec<u8>> {
    let mut reader = der::SliceReader::new(der)?;
    let header = der::Header::decode(&mut reader)?;
    header.tag.assert_eq(der::Tag::Sequence)?;
    let inner = Any::decode(&mut reader)?;
    inner.to_der()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::tests::test_key;

    #[test]
    fn ca_and_device_profile() {
        let now = SystemTime::now();
        let ca_key = test_key(0);
        let ca = Certificate::issue(ca_key.public_key(), CN_CA, None, ca_key, true, now).unwrap();
        assert!(ca.is_ca());
        assert!(ca.is_self_issued());
        ca.verify_signature(ca_key.public_key()).unwrap();
        assert_eq!(ca.subject_cn().as_deref(), Some("Jami CA"));
        assert_eq!(
            ca.subject_uid(),
            Some(ca_key.public_key().jami_id().to_string())
        );
        assert_eq!(ca.extensions().len(), 3);
        assert_eq!(ca.serial().as_bytes().len(), 8);
        assert_eq!(ca.signature_hash(), Some(SignatureHash::Sha384));
        let secs = ca.not_after().duration_since(ca.not_before()).unwrap();
        assert_eq!(secs, VALIDITY);

        let dev_key = test_key(1);
        let dev = Certificate::issue(
            dev_key.public_key(),
            CN_DEVICE,
            Some(&ca),
            ca_key,
            false,
            now,
        )
        .unwrap();
        assert!(!dev.is_ca());
        assert!(dev.extensions().is_empty());
        assert!(dev.is_issued_by_name(&ca));
        dev.verify_signature(ca_key.public_key()).unwrap();
        assert!(dev.verify_signature(dev_key.public_key()).is_err());
        let chain = Certificate::chain_to_pem(&[&dev, &ca]);
        let back = Certificate::chain_from_pem_or_der(chain.as_bytes()).unwrap();
        assert_eq!(back, vec![dev.clone(), ca.clone()]);
        assert_eq!(Certificate::from_der(dev.der()).unwrap(), dev);
    }

    #[test]
    fn negative_serial_is_read() {
        let k = test_key(0);
        let ca =
            Certificate::issue(k.public_key(), CN_CA, None, k, true, SystemTime::now()).unwrap();
        // Rewrite the serial INTEGER to a negative value and check it still parses.
        let mut der = ca.der().to_vec();
        let serial = ca.serial().as_bytes().to_vec();
        let pos = der
            .windows(serial.len() + 2)
            .position(|w| w[0] == 0x02 && w[1] == 8 && w[2..] == serial[..])
            .unwrap();
        der[pos + 2] = 0xaf;
        let c = Certificate::from_der(&der).unwrap();
        assert_eq!(c.serial().as_bytes()[0], 0xaf);
        assert!(
            c.verify_signature(k.public_key()).is_err(),
            "signature covers the serial"
        );
    }
}
