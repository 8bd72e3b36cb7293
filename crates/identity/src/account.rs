//! A Jami account: the CA, the account identity and this device, with the other devices the
//! account knows and its revocation list. It is what an archive holds, in typed form.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::announce::Receipt;
use crate::archive::Archive;
use crate::cert::{CN_ACCOUNT, CN_CA, CN_DEVICE, Certificate};
use crate::chain::verify_device_chain;
use crate::crl::RevocationList;
use crate::error::{Error, Result};
use crate::eth::EthKey;
use crate::id::{DeviceId, JamiId};
use crate::key::PrivateKey;

/// A device's key pair and certificate (signed by the account).
#[derive(Debug)]
pub struct Device {
    /// The device private key.
    pub key: PrivateKey,
    /// The device certificate.
    pub cert: Certificate,
}

impl Device {
    /// The device id (SHA-256 of its public key).
    pub fn id(&self) -> DeviceId {
        self.cert.device_id()
    }
}

/// Progress of a long account operation, for callers that show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Generating the RSA-4096 key of the CA.
    CaKey,
    /// Generating the account key.
    AccountKey,
    /// Generating a device key.
    DeviceKey,
    /// Signing certificates, receipt and announcement.
    Signing,
}

/// A Jami account loaded from, or saved to, an [`Archive`].
#[derive(Debug)]
pub struct Account {
    archive: Archive,
    ca_key: Option<PrivateKey>,
    ca_cert: Option<Certificate>,
    account_key: PrivateKey,
    account_cert: Certificate,
    eth: Option<EthKey>,
    device: Option<Device>,
    crl: Option<RevocationList>,
    known: BTreeMap<DeviceId, Certificate>,
}

impl Account {
    /// Creates a new account as jamid does: a device key, the CA identity, the account
    /// identity signed by the CA, an Ethereum key, and the device certificate signed by the
    /// account. `progress` is told each step (key generation takes about a second per key).
    pub fn create(mut progress: impl FnMut(Step)) -> Result<Self> {
        let now = SystemTime::now();
        progress(Step::DeviceKey);
        let device_key = PrivateKey::generate()?;
        progress(Step::CaKey);
        let ca_key = PrivateKey::generate()?;
        progress(Step::AccountKey);
        let account_key = PrivateKey::generate()?;
        progress(Step::Signing);
        let ca_cert = Certificate::issue(ca_key.public_key(), CN_CA, None, &ca_key, true, now)?;
        let account_cert = Certificate::issue(
            account_key.public_key(),
            CN_ACCOUNT,
            Some(&ca_cert),
            &ca_key,
            true,
            now,
        )?;
        let device_cert = Certificate::issue(
            device_key.public_key(),
            CN_DEVICE,
            Some(&account_cert),
            &account_key,
            false,
            now,
        )?;
        let mut archive = Archive::new();
        archive.set_str("Account.type", "RING");
        let mut account = Self {
            archive,
            ca_key: Some(ca_key),
            ca_cert: Some(ca_cert),
            account_key,
            account_cert,
            eth: Some(EthKey::generate()?),
            device: Some(Device {
                key: device_key,
                cert: device_cert,
            }),
            crl: None,
            known: BTreeMap::new(),
        };
        account.sync_archive();
        Ok(account)
    }

    /// Reads an account from an archive, checking that the account certificate certifies the
    /// account key and that the saved device (if any) chains to it.
    pub fn from_archive(archive: Archive) -> Result<Self> {
        let account_key = archive.account_key()?;
        let mut chain = archive.account_chain()?.into_iter();
        let account_cert = chain
            .next()
            .ok_or(Error::MissingField(crate::archive::KEY_ACCOUNT_CERT))?;
        if account_cert.public_key() != account_key.public_key() {
            return Err(Error::Mismatch(
                "ringAccountCert does not certify ringAccountKey".into(),
            ));
        }
        let ca_cert = chain.next();
        let ca_key = archive.ca_key()?;
        let eth_secret = archive.eth_secret()?;
        let eth = if eth_secret.is_empty() {
            None
        } else {
            Some(EthKey::from_secret(&eth_secret)?)
        };
        let crl = archive.crl()?;
        let device = match (archive.device_key()?, archive.device_chain()?) {
            (Some(key), Some(chain)) => {
                let cert = chain
                    .into_iter()
                    .next()
                    .ok_or(Error::MissingField(crate::archive::KEY_DEVICE_CERT))?;
                if cert.public_key() != key.public_key() {
                    return Err(Error::Mismatch(
                        "device certificate does not certify the device key".into(),
                    ));
                }
                Some(Device { key, cert })
            }
            _ => None,
        };
        let mut known = BTreeMap::new();
        for cert in archive.known_device_certs()? {
            known.insert(cert.device_id(), cert);
        }
        Ok(Self {
            archive,
            ca_key,
            ca_cert,
            account_key,
            account_cert,
            eth,
            device,
            crl,
            known,
        })
    }

    /// Writes the typed parts back into the archive JSON, keeping every other key.
    fn sync_archive(&mut self) {
        let a = &mut self.archive;
        a.set_account_key(&self.account_key);
        let mut chain = vec![&self.account_cert];
        chain.extend(self.ca_cert.as_ref());
        a.set_account_chain(&chain);
        if let Some(k) = &self.ca_key {
            a.set_ca_key(k);
        }
        a.set_eth_secret(self.eth.as_ref().map(|e| &e.secret()[..]).unwrap_or(&[]));
        if let Some(crl) = &self.crl {
            a.set_crl(crl);
        }
        if let Some(d) = &self.device {
            let mut chain = vec![&d.cert, &self.account_cert];
            chain.extend(self.ca_cert.as_ref());
            a.set_device(&d.key, &chain);
        }
        for cert in self.known.values() {
            a.add_known_device_cert(cert);
        }
    }

    /// The archive, up to date.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The Jami ID.
    pub fn jami_id(&self) -> JamiId {
        self.account_key.public_key().jami_id()
    }

    /// The account private key.
    pub fn account_key(&self) -> &PrivateKey {
        &self.account_key
    }

    /// The account certificate.
    pub fn account_cert(&self) -> &Certificate {
        &self.account_cert
    }

    /// The CA certificate, when the archive has it.
    pub fn ca_cert(&self) -> Option<&Certificate> {
        self.ca_cert.as_ref()
    }

    /// The Ethereum key, when the archive has one.
    pub fn eth_key(&self) -> Option<&EthKey> {
        self.eth.as_ref()
    }

    /// The device this archive belongs to, if it records one.
    pub fn device(&self) -> Option<&Device> {
        self.device.as_ref()
    }

    /// The account's revocation list.
    pub fn crl(&self) -> Option<&RevocationList> {
        self.crl.as_ref()
    }

    /// Every device certificate this account knows: this device first, then the others.
    pub fn device_certs(&self) -> Vec<&Certificate> {
        let own = self.device.as_ref().map(|d| &d.cert);
        own.into_iter()
            .chain(self.known.values().filter(|c| Some(*c) != own))
            .collect()
    }

    /// Ids of the known devices that are not revoked.
    pub fn devices(&self) -> Vec<DeviceId> {
        self.device_certs()
            .into_iter()
            .filter(|c| !self.is_revoked(c))
            .map(Certificate::device_id)
            .collect()
    }

    /// Ids of the known devices that the account's CRL revokes.
    pub fn revoked_devices(&self) -> Vec<DeviceId> {
        self.device_certs()
            .into_iter()
            .filter(|c| self.is_revoked(c))
            .map(Certificate::device_id)
            .collect()
    }

    /// True when the account's CRL lists this device certificate.
    pub fn is_revoked(&self, cert: &Certificate) -> bool {
        self.crl
            .as_ref()
            .is_some_and(|crl| crl.is_issued_by_name(&self.account_cert) && crl.lists(cert))
    }

    /// Validates a device certificate of this account at `now` (issuer, signatures, validity,
    /// CA flags, Jami ID, CRL).
    pub fn verify_device(&self, cert: &Certificate, now: SystemTime) -> Result<()> {
        verify_device_chain(
            cert,
            &self.account_cert,
            self.ca_cert.as_ref(),
            self.crl.as_ref(),
            now,
        )?;
        Ok(())
    }

    /// Issues a new device (fresh RSA-4096 key, certificate signed by the account) and records
    /// its certificate among the known devices. The new device's own archive is
    /// [`Self::archive_for`].
    pub fn add_device(&mut self) -> Result<Device> {
        let key = PrivateKey::generate()?;
        let cert = Certificate::issue(
            key.public_key(),
            CN_DEVICE,
            Some(&self.account_cert),
            &self.account_key,
            false,
            SystemTime::now(),
        )?;
        if let Some(own) = &self.device {
            self.known.insert(own.id(), own.cert.clone());
        }
        self.known.insert(cert.device_id(), cert.clone());
        self.sync_archive();
        Ok(Device { key, cert })
    }

    /// The archive of another device of this account: the same JSON with `device` as the
    /// saved device.
    pub fn archive_for(&self, device: &Device) -> Archive {
        let mut a = self.archive.clone();
        let mut chain = vec![&device.cert, &self.account_cert];
        chain.extend(self.ca_cert.as_ref());
        a.set_device(&device.key, &chain);
        a
    }

    /// Revokes a device: adds its certificate to the account's CRL and re-signs the CRL.
    pub fn revoke_device(&mut self, id: &DeviceId) -> Result<()> {
        let cert = self
            .device_certs()
            .into_iter()
            .find(|c| &c.device_id() == id)
            .cloned()
            .ok_or(Error::UnknownDevice(*id))?;
        let crl = RevocationList::sign(
            &self.account_cert,
            &self.account_key,
            self.crl.as_ref(),
            &[&cert],
            SystemTime::now(),
        )?;
        self.crl = Some(crl);
        self.sync_archive();
        Ok(())
    }

    /// The signed receipt of this archive's device: `(receipt JSON, signature)`.
    pub fn receipt(&self) -> Result<(String, Vec<u8>)> {
        let device = self
            .device
            .as_ref()
            .ok_or(Error::MissingField(crate::archive::KEY_DEVICE_CERT))?;
        let eth = self
            .eth
            .as_ref()
            .map(EthKey::address_hex)
            .unwrap_or_else(|| "0".repeat(40));
        let (text, sig, _) = Receipt::make(&self.account_key, device.key.public_key(), &eth)?;
        Ok((text, sig))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive;
    use crate::error::ChainError;

    #[test]
    fn create_add_revoke_round_trip() {
        let mut steps = Vec::new();
        let mut acc = Account::create(|s| steps.push(s)).unwrap();
        assert_eq!(
            steps,
            [
                Step::DeviceKey,
                Step::CaKey,
                Step::AccountKey,
                Step::Signing
            ]
        );
        let first = acc.device().unwrap().id();
        // `{:?}` shows no secret: neither the archive's key texts nor any piece of them.
        let shown = format!("{acc:?} {:?}", acc.archive());
        assert!(shown.contains(archive::KEY_ACCOUNT_KEY), "{shown}");
        for key in [
            archive::KEY_ACCOUNT_KEY,
            archive::KEY_CA_KEY,
            archive::KEY_DEVICE_KEY,
            archive::KEY_ETH_KEY,
        ] {
            let secret = acc
                .archive()
                .get_str(key)
                .unwrap_or_else(|| panic!("{key}"));
            assert!(secret.len() > 40, "{key}");
            for piece in secret.as_bytes().chunks(24).filter(|c| c.len() == 24) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(!shown.contains(piece), "{key} shows in {{:?}}");
            }
        }
        acc.verify_device(&acc.device().unwrap().cert, SystemTime::now())
            .unwrap();
        let (text, sig) = acc.receipt().unwrap();
        Receipt::verify(
            &text,
            &sig,
            acc.account_key().public_key(),
            acc.device().unwrap().key.public_key(),
        )
        .unwrap();

        let second = acc.add_device().unwrap();
        assert_eq!(acc.devices(), {
            let mut v = vec![first];
            v.extend([first, second.id()].into_iter().filter(|d| *d != first));
            v.sort_by_key(|d| (*d != first, *d));
            v
        });
        let other_archive = acc.archive_for(&second);
        let other = Account::from_archive(other_archive).unwrap();
        assert_eq!(other.jami_id(), acc.jami_id());
        assert_eq!(other.device().unwrap().id(), second.id());

        acc.revoke_device(&second.id()).unwrap();
        assert_eq!(acc.revoked_devices(), vec![second.id()]);
        assert_eq!(acc.devices(), vec![first]);
        assert_eq!(
            acc.verify_device(&second.cert, SystemTime::now())
                .unwrap_err()
                .to_string(),
            Error::Chain(ChainError::Revoked).to_string()
        );
        let bytes = acc.archive().encode(None).unwrap();
        let back = Account::from_archive(Archive::decode(&bytes, None).unwrap()).unwrap();
        assert_eq!(back.revoked_devices(), vec![second.id()]);
        assert!(
            acc.revoke_device(&"00".repeat(32).parse().unwrap())
                .is_err()
        );
    }
}
