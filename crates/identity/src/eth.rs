//! The legacy Ethereum key every Jami account still carries (`ethKey` in the archive, `eth` in
//! the device receipt and the name server's `owner`).

use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin, EcPublicKeyUncompressedBin};
use aws_lc_rs::signature::{ECDSA_P256K1_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use sha3::{Digest, Keccak256};

use crate::error::{Error, Result, malformed};

/// A secp256k1 secret key.
pub struct EthKey {
    secret: [u8; 32],
    address: [u8; 20],
}

impl EthKey {
    /// Generates a new key.
    pub fn generate() -> Result<Self> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256K1_SHA256_FIXED_SIGNING)
            .map_err(|_| Error::Key("secp256k1 generation failed".into()))?;
        let bin: EcPrivateKeyBin<'static> = pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| Error::Key("secp256k1 export failed".into()))?;
        Self::from_secret(bin.as_ref())
    }

    /// Reads a 32-byte secret, as stored (base64) in `ethKey`.
    pub fn from_secret(secret: &[u8]) -> Result<Self> {
        let secret: [u8; 32] = secret
            .try_into()
            .map_err(|_| malformed("ethKey", "not 32 bytes"))?;
        // RFC 5915 ECPrivateKey { version 1, privateKey, [0] secp256k1 }; the public point is
        // computed by the backend.
        let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x01, 0x04, 0x20];
        der.extend_from_slice(&secret);
        der.extend_from_slice(&[0xa0, 0x07, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]);
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256K1_SHA256_FIXED_SIGNING, &der)
            .map_err(|e| malformed("ethKey", e))?;
        let point: EcPublicKeyUncompressedBin<'static> = pair
            .public_key()
            .as_be_bytes()
            .map_err(|_| Error::Key("secp256k1 export failed".into()))?;
        let point = point.as_ref();
        let hash = Keccak256::digest(
            point
                .get(1..)
                .ok_or_else(|| malformed("ethKey", "empty point"))?,
        );
        let mut address = [0u8; 20];
        address.copy_from_slice(&hash[12..]);
        Ok(Self { secret, address })
    }

    /// The 32-byte secret.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The address: last 20 bytes of Keccak-256 of the uncompressed public point.
    pub fn address(&self) -> [u8; 20] {
        self.address
    }

    /// The address as 40 lowercase hex characters, without `0x`.
    pub fn address_hex(&self) -> String {
        hex::encode(self.address)
    }
}

impl Drop for EthKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl std::fmt::Debug for EthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EthKey({})", self.address_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_address() {
        // Secret 1 is the generator point; its address is a well-known Ethereum constant.
        let mut s = [0u8; 32];
        s[31] = 1;
        let k = EthKey::from_secret(&s).unwrap();
        assert_eq!(k.address_hex(), "7e5f4552091a69125d5dfcb7b8c2659029395bdf");
        let g = EthKey::generate().unwrap();
        assert_eq!(
            EthKey::from_secret(g.secret()).unwrap().address(),
            g.address()
        );
        assert!(EthKey::from_secret(&[1, 2]).is_err());
    }
}
