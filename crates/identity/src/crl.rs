//! Certificate revocation lists in jamid's format.
//!
//! An account revokes one of its devices by listing the device certificate's serial in a CRL
//! signed by the account key: v2, `sha512WithRSAEncryption`, issuer = the account subject,
//! nextUpdate = the account certificate's notAfter, one extension (cRLNumber, 8 bytes, random
//! at first and incremented on each re-signing), entries without extensions. jamid stores it
//! as DER; PEM is read too.

use std::time::SystemTime;

use der::asn1::{BitString, OctetString};
use der::{Decode, Encode};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;

use crate::cert::{Certificate, enc, first_element, hash_of_oid, rsa_algorithm, x509_time};
use crate::error::{Error, Result, malformed};
use crate::key::{PrivateKey, PublicKey, SignatureHash};
use crate::pem;

const OID_CRL_NUMBER: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.20");

/// A parsed (and possibly locally built) revocation list.
#[derive(Clone)]
pub struct RevocationList {
    der: Vec<u8>,
    tbs_der: Vec<u8>,
    crl: CertificateList,
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList")
            .field("issuer", &self.crl.tbs_cert_list.issuer.to_string())
            .field("revoked", &self.revoked_serials().len())
            .finish()
    }
}

impl PartialEq for RevocationList {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl RevocationList {
    /// Parses a DER or PEM (`X509 CRL`) revocation list.
    pub fn from_pem_or_der(data: &[u8]) -> Result<Self> {
        if pem::is_pem(data) {
            let blocks = pem::decode_all("CRL", data)?;
            let (_, der) = blocks
                .into_iter()
                .find(|(l, _)| l == "X509 CRL")
                .ok_or_else(|| malformed("CRL", "no X509 CRL block"))?;
            Self::from_der(&der)
        } else {
            Self::from_der(data)
        }
    }

    /// Parses a DER revocation list.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let crl = CertificateList::from_der(der).map_err(|e| malformed("CRL", e))?;
        let tbs_der = first_element(der).map_err(|e| malformed("CRL", e))?;
        Ok(Self {
            der: der.to_vec(),
            tbs_der,
            crl,
        })
    }

    /// DER bytes, as stored in archives and DHT values.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM text (`-----BEGIN X509 CRL-----`).
    pub fn to_pem(&self) -> String {
        pem::encode("X509 CRL", &self.der)
    }

    /// The parsed list.
    pub fn x509(&self) -> &CertificateList {
        &self.crl
    }

    /// Serials of the revoked certificates.
    pub fn revoked_serials(&self) -> Vec<&SerialNumber> {
        self.crl
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| &r.serial_number)
            .collect()
    }

    /// True when `cert`'s serial is listed. The caller checks the CRL's issuer and signature.
    pub fn lists(&self, cert: &Certificate) -> bool {
        self.revoked_serials()
            .into_iter()
            .any(|s| s == cert.serial())
    }

    /// True when this list was issued under `issuer`'s subject name.
    pub fn is_issued_by_name(&self, issuer: &Certificate) -> bool {
        self.crl.tbs_cert_list.issuer == issuer.x509().tbs_certificate.subject
    }

    /// Checks the list's signature with `key`.
    pub fn verify_signature(&self, key: &PublicKey) -> Result<()> {
        let hash = hash_of_oid(&self.crl.signature_algorithm.oid).ok_or(Error::BadSignature)?;
        let sig = self.crl.signature.as_bytes().ok_or(Error::BadSignature)?;
        key.verify(hash, &self.tbs_der, sig)
    }

    /// The cRLNumber extension's INTEGER bytes (two's complement), if present.
    pub fn number(&self) -> Option<Vec<u8>> {
        let ext = self
            .crl
            .tbs_cert_list
            .crl_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == OID_CRL_NUMBER)?;
        der::asn1::Int::from_der(ext.extn_value.as_bytes())
            .ok()
            .map(|i| i.as_bytes().to_vec())
    }

    /// Signs a list revoking `revoked` (plus everything `previous` listed), as the account
    /// `issuer` with `key`. The cRLNumber is `previous`'s plus one, or random at first.
    pub fn sign(
        issuer: &Certificate,
        key: &PrivateKey,
        previous: Option<&RevocationList>,
        revoked: &[&Certificate],
        now: SystemTime,
    ) -> Result<Self> {
        let now_t = x509_time(now)?;
        let mut entries: Vec<RevokedCert> = previous
            .map(|p| {
                p.crl
                    .tbs_cert_list
                    .revoked_certificates
                    .clone()
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        for cert in revoked {
            if !entries.iter().any(|e| &e.serial_number == cert.serial()) {
                entries.push(RevokedCert {
                    serial_number: cert.serial().clone(),
                    revocation_date: now_t,
                    crl_entry_extensions: None,
                });
            }
        }
        let number = match previous.and_then(|p| p.number()) {
            Some(n) => increment(&n),
            None => {
                let mut n = [0u8; 8];
                aws_lc_rs::rand::fill(&mut n)
                    .map_err(|_| Error::Key("the system random generator failed".into()))?;
                n[0] = (n[0] & 0x7f).max(1);
                n.to_vec()
            }
        };
        let number = der::asn1::Int::new(&number).map_err(enc)?;
        let ext = Extension {
            extn_id: OID_CRL_NUMBER,
            critical: false,
            extn_value: OctetString::new(number.to_der().map_err(enc)?).map_err(enc)?,
        };
        let tbs = TbsCertList {
            version: x509_cert::Version::V2,
            signature: rsa_algorithm(SignatureHash::Sha512),
            issuer: issuer.x509().tbs_certificate.subject.clone(),
            this_update: now_t,
            next_update: Some(issuer.x509().tbs_certificate.validity.not_after),
            revoked_certificates: if entries.is_empty() {
                None
            } else {
                Some(entries)
            },
            crl_extensions: Some(vec![ext]),
        };
        let tbs_der = tbs.to_der().map_err(enc)?;
        let sig = key.sign(SignatureHash::Sha512, &tbs_der)?;
        let crl = CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm: rsa_algorithm(SignatureHash::Sha512),
            signature: BitString::from_bytes(&sig).map_err(enc)?,
        };
        Self::from_der(&crl.to_der().map_err(enc)?)
    }
}

/// Adds one to a big-endian two's complement integer, growing it when it overflows.
fn increment(n: &[u8]) -> Vec<u8> {
    let negative = n.first().is_some_and(|b| b & 0x80 != 0);
    let mut out = n.to_vec();
    let mut carry = true;
    for b in out.iter_mut().rev() {
        if !carry {
            break;
        }
        let (v, c) = b.overflowing_add(1);
        *b = v;
        carry = c;
    }
    if out.is_empty() {
        out.push(1);
    } else if !negative && out[0] & 0x80 != 0 {
        // A positive number became "negative": widen with a zero byte.
        out.insert(0, 0);
    } else if carry && negative {
        // -1 + 1 = 0: all bytes wrapped to zero; keep one.
        out.truncate(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::{CN_ACCOUNT, CN_DEVICE};
    use crate::key::tests::test_key;

    #[test]
    fn increment_two_complement() {
        assert_eq!(increment(&[0x01]), vec![0x02]);
        assert_eq!(increment(&[0x7f]), vec![0x00, 0x80]);
        assert_eq!(increment(&[0x00, 0xff]), vec![0x01, 0x00]);
        assert_eq!(increment(&[0xff]), vec![0x00]);
        assert_eq!(increment(&[0xfe]), vec![0xff]);
        assert_eq!(increment(&[0xaf, 0xff]), vec![0xb0, 0x00]);
    }

    #[test]
    fn sign_parse_and_grow() {
        let now = SystemTime::now();
        let k = test_key(0);
        let account = Certificate::issue(k.public_key(), CN_ACCOUNT, None, k, true, now).unwrap();
        let d1 = Certificate::issue(
            test_key(1).public_key(),
            CN_DEVICE,
            Some(&account),
            k,
            false,
            now,
        )
        .unwrap();
        let d2 = Certificate::issue(
            test_key(2).public_key(),
            CN_DEVICE,
            Some(&account),
            k,
            false,
            now,
        )
        .unwrap();
        let crl = RevocationList::sign(&account, k, None, &[&d1], now).unwrap();
        crl.verify_signature(k.public_key()).unwrap();
        assert!(crl.verify_signature(test_key(1).public_key()).is_err());
        assert!(crl.lists(&d1) && !crl.lists(&d2));
        assert!(crl.is_issued_by_name(&account));
        let n1 = crl.number().unwrap();
        assert_eq!(n1.len(), 8);
        let crl2 = RevocationList::sign(&account, k, Some(&crl), &[&d2], now).unwrap();
        assert!(crl2.lists(&d1) && crl2.lists(&d2));
        assert_eq!(crl2.number().unwrap(), increment(&n1));
        let parsed = RevocationList::from_pem_or_der(crl2.to_pem().as_bytes()).unwrap();
        assert_eq!(parsed, crl2);
        assert!(RevocationList::from_der(&crl2.der()[..100]).is_err());
    }
}
