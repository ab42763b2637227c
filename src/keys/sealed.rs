//! A third-party token sealed while its revocation waits.
//!
//! To revoke a token at its issuer later (after a crash, after a rate
//! limit), the job must hold the token itself, not a hash. It is sealed with
//! ChaCha20-Poly1305 under a key derived from the pepper by HKDF-SHA256, so
//! the database alone never yields it, and the incident id is bound in as
//! associated data, so a sealed token cannot be moved to another incident.
//! The sealed copy is deleted when the job ends.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

/// What the derived key is for: a key derived for anything else differs.
const INFO: &[u8] = b"keyward held third-party token v1";
const SALT: &[u8] = b"keyward";

/// A token sealed while its revocation waits: nonce and ciphertext, hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldToken {
    pub nonce: String,
    pub sealed: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the sealed token is not hex of the expected length")]
    Malformed,
    /// Wrong pepper, wrong incident, or altered bytes.
    #[error("the sealed token does not open with this pepper for this incident")]
    Rejected,
}

#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([key])")
    }
}

impl Sealer {
    pub fn new(pepper: &[u8]) -> Sealer {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(SALT), pepper)
            .expand(INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// Seals `token` for the incident `incident_id`, under a fresh nonce.
    pub fn seal(&self, token: &str, incident_id: &str) -> HeldToken {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: token.as_bytes(),
                    aad: incident_id.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 seals any message under 256 GiB");
        HeldToken {
            nonce: hex::encode(nonce),
            sealed: hex::encode(sealed),
        }
    }

    pub fn open(&self, held: &HeldToken, incident_id: &str) -> Result<String, SealError> {
        let nonce: [u8; 12] = hex::decode(&held.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError::Malformed)?;
        let sealed = hex::decode(&held.sealed).map_err(|_| SealError::Malformed)?;
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: incident_id.as_bytes(),
                },
            )
            .map_err(|_| SealError::Rejected)?;
        String::from_utf8(plain).map_err(|_| SealError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";

    #[test]
    fn a_sealed_token_opens_for_its_incident_only() {
        let sealer = Sealer::new(&[7u8; 32]);
        let held = sealer.seal(TOKEN, "tpi_1");
        assert!(!held.sealed.contains(&hex::encode(TOKEN)), "the ciphertext hides the token");
        assert_eq!(sealer.open(&held, "tpi_1").unwrap(), TOKEN);
        assert_eq!(sealer.open(&held, "tpi_2"), Err(SealError::Rejected));
        assert_eq!(Sealer::new(&[8u8; 32]).open(&held, "tpi_1"), Err(SealError::Rejected));
    }

    #[test]
    fn each_seal_takes_a_fresh_nonce() {
        let sealer = Sealer::new(&[7u8; 32]);
        let (a, b) = (sealer.seal(TOKEN, "i"), sealer.seal(TOKEN, "i"));
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.sealed, b.sealed);
    }

    #[test]
    fn altered_or_malformed_bytes_are_refused() {
        let sealer = Sealer::new(&[7u8; 32]);
        let mut held = sealer.seal(TOKEN, "i");
        let flipped = if held.sealed.starts_with('0') { "1" } else { "0" };
        held.sealed.replace_range(0..1, flipped);
        assert_eq!(sealer.open(&held, "i"), Err(SealError::Rejected));
        held.nonce = "zz".into();
        assert_eq!(sealer.open(&held, "i"), Err(SealError::Malformed));
    }
}
