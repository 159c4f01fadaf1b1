//! Personal data at rest: field encryption (AES-256-GCM, a random 96-bit nonce per value) and blind
//! indexes (HMAC-SHA-256) so an encrypted phone number can still be found and de-duplicated.
//!
//! One 32-byte master secret (the data key) is configured per deployment; the encryption key and the
//! index key are derived from it with separate labels, so neither can stand in for the other. The
//! company and the field name are bound into every ciphertext as associated data: a value copied to
//! another row's field or another tenant fails to decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rxmember_core::CompanyId;
use sha2::Sha256;
use std::sync::Arc;

use crate::StoreError;

const VERSION: u8 = 1;

/// The deployment's keys for personal data. Cheap to clone. Never printed.
#[derive(Clone)]
pub struct Crypto {
    inner: Arc<Keys>,
}

struct Keys {
    cipher: Aes256Gcm,
    index_key: [u8; 32],
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crypto(<keys redacted>)")
    }
}

fn derive(master: &[u8; 32], label: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Crypto {
    /// Builds the keys from a 32-byte master secret.
    pub fn from_master(master: &[u8; 32]) -> Crypto {
        let enc = derive(master, "rxmember field encryption v1");
        let index_key = derive(master, "rxmember blind index v1");
        let cipher = Aes256Gcm::new_from_slice(&enc).expect("32-byte key");
        Crypto { inner: Arc::new(Keys { cipher, index_key }) }
    }

    /// Parses a base64 master secret (as in `RXMEMBER_DATA_KEY` or the key file).
    pub fn from_base64(s: &str) -> Result<Crypto, StoreError> {
        let bytes = B64.decode(s.trim()).map_err(|_| StoreError::Crypto("the data key is not valid base64".into()))?;
        let master: [u8; 32] = bytes
            .try_into()
            .map_err(|_| StoreError::Crypto("the data key must be 32 bytes (44 base64 characters)".into()))?;
        Ok(Crypto::from_master(&master))
    }

    /// A fresh random master secret, base64, for a new deployment's key file.
    pub fn generate_base64() -> String {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).expect("the OS random source is available");
        B64.encode(k)
    }

    /// A fixed key for tests and benchmarks. Never use for real data.
    pub fn for_tests() -> Crypto {
        Crypto::from_master(&[7u8; 32])
    }

    fn aad(company: CompanyId, field: &str) -> Vec<u8> {
        let mut aad = company.0.to_le_bytes().to_vec();
        aad.extend_from_slice(field.as_bytes());
        aad
    }

    /// Encrypts one field value: `version ‖ nonce ‖ ciphertext+tag`.
    pub fn encrypt(&self, company: CompanyId, field: &str, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS random source is available");
        let aad = Self::aad(company, field);
        let ct = self
            .inner
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext.as_bytes(), aad: &aad })
            .expect("AES-GCM encryption of a short value cannot fail");
        let mut out = Vec::with_capacity(1 + 12 + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts a value written by [`encrypt`](Self::encrypt) for the same company and field.
    pub fn decrypt(&self, company: CompanyId, field: &str, data: &[u8]) -> Result<String, StoreError> {
        if data.len() < 1 + 12 + 16 || data[0] != VERSION {
            return Err(StoreError::Crypto(format!("{field}: not an rxmember ciphertext")));
        }
        let nonce: [u8; 12] = data[1..13].try_into().expect("12 bytes");
        let aad = Self::aad(company, field);
        let pt = self
            .inner
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: &data[13..], aad: &aad })
            .map_err(|_| StoreError::Crypto(format!("{field}: wrong key or tampered value")))?;
        String::from_utf8(pt).map_err(|_| StoreError::Crypto(format!("{field}: not UTF-8")))
    }

    /// The keyed hash used to find a value without decrypting: equal inputs (same company, same field)
    /// give equal outputs; nothing else can be learned from it without the key.
    pub fn blind_index(&self, company: CompanyId, field: &str, value: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.inner.index_key).expect("any key length");
        mac.update(&Self::aad(company, field));
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_context() {
        let c = Crypto::for_tests();
        let ct = c.encrypt(CompanyId(1), "phone", "13812341234");
        assert!(!ct.windows(11).any(|w| w == b"13812341234"));
        assert_eq!(c.decrypt(CompanyId(1), "phone", &ct).unwrap(), "13812341234");
        // Another tenant or another field cannot read it.
        assert!(c.decrypt(CompanyId(2), "phone", &ct).is_err());
        assert!(c.decrypt(CompanyId(1), "name", &ct).is_err());
        // A different key cannot read it.
        assert!(Crypto::from_master(&[8u8; 32]).decrypt(CompanyId(1), "phone", &ct).is_err());
        // Nonces are random: the same value encrypts differently.
        assert_ne!(ct, c.encrypt(CompanyId(1), "phone", "13812341234"));
    }

    #[test]
    fn blind_index_is_deterministic_per_context() {
        let c = Crypto::for_tests();
        let a = c.blind_index(CompanyId(1), "phone", "13812341234");
        assert_eq!(a, c.blind_index(CompanyId(1), "phone", "13812341234"));
        assert_ne!(a, c.blind_index(CompanyId(2), "phone", "13812341234"));
        assert_ne!(a, c.blind_index(CompanyId(1), "phone", "13812341235"));
    }

    #[test]
    fn key_parsing() {
        let k = Crypto::generate_base64();
        assert!(Crypto::from_base64(&k).is_ok());
        assert!(Crypto::from_base64("c2hvcnQ=").is_err());
        assert!(Crypto::from_base64("not base64!").is_err());
        assert_eq!(format!("{:?}", Crypto::for_tests()), "Crypto(<keys redacted>)");
    }
}
