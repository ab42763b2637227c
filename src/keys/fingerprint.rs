//! `HMAC-SHA256(pepper, token)`: what the store keeps instead of the token.
//!
//! A keyed hash, so a stolen database cannot be checked against guesses
//! without the pepper, which lives outside it. A slow hash would buy
//! nothing: tokens carry 256 bits of entropy.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Pepper bytes below this are refused: the pepper is the only secret
/// between a leaked database and offline verification.
pub const MIN_PEPPER_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("the pepper must be at least {MIN_PEPPER_LEN} bytes")]
pub struct WeakPepper;

/// A keyed hasher, initialised once; cloning the prepared state saves the
/// two compressions of the key schedule on every verify. During a pepper
/// rotation it also holds the previous pepper, so keys fingerprinted with
/// it are still found (and then re-fingerprinted).
#[derive(Clone)]
pub struct Fingerprinter {
    prepared: HmacSha256,
    id: String,
    /// The pepper's other use: sealing third-party tokens that wait for
    /// their issuer (`keys::sealed`).
    sealer: super::sealed::Sealer,
    previous: Option<Box<Fingerprinter>>,
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter([pepper])")
    }
}

/// 32 bytes, compared in constant time.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// Hashes a [`Fingerprint`] to its first eight bytes. They are an HMAC's
/// output, uniform and unknowable without the pepper, so no caller can
/// crowd one bucket, and hashing them again (SipHash) would only cost the
/// verify path time.
#[derive(Clone, Copy, Default)]
pub struct FingerprintHash;

impl std::hash::BuildHasher for FingerprintHash {
    type Hasher = FirstEightBytes;

    fn build_hasher(&self) -> FirstEightBytes {
        FirstEightBytes(0)
    }
}

/// The hasher of [`FingerprintHash`]: the first eight bytes of the byte
/// string it is given (the fingerprint); the length before it is ignored.
pub struct FirstEightBytes(u64);

impl std::hash::Hasher for FirstEightBytes {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_usize(&mut self, _length: usize) {}

    fn write(&mut self, bytes: &[u8]) {
        if let Some(first) = bytes.first_chunk::<8>() {
            self.0 = u64::from_le_bytes(*first);
        }
    }
}

impl Fingerprint {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Fingerprint> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Fingerprint(out))
    }

    pub fn ct_eq(&self, other: &Fingerprint) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({}…)", &self.to_hex()[..8])
    }
}

impl Fingerprinter {
    pub fn new(pepper: &[u8]) -> Result<Fingerprinter, WeakPepper> {
        if pepper.len() < MIN_PEPPER_LEN {
            return Err(WeakPepper);
        }
        let prepared = HmacSha256::new_from_slice(pepper).map_err(|_| WeakPepper)?;
        use sha2::Digest;
        let digest = Sha256::new().chain_update(b"keyward-pepper-id:").chain_update(pepper).finalize();
        Ok(Fingerprinter {
            prepared,
            id: hex::encode(&digest[..8]),
            sealer: super::sealed::Sealer::new(pepper),
            previous: None,
        })
    }

    /// Seals third-party tokens under a key derived from the pepper.
    pub fn sealer(&self) -> &super::sealed::Sealer {
        &self.sealer
    }

    /// Opens a token sealed under this pepper, or under the one it replaces.
    pub fn open_sealed(&self, held: &super::sealed::HeldToken, incident_id: &str) -> Result<String, super::sealed::SealError> {
        self.sealer.open(held, incident_id).or_else(|e| match &self.previous {
            Some(previous) => previous.sealer.open(held, incident_id),
            None => Err(e),
        })
    }

    /// The same hasher, also knowing the pepper it replaces.
    pub fn with_previous(mut self, previous_pepper: &[u8]) -> Result<Fingerprinter, WeakPepper> {
        self.previous = Some(Box::new(Fingerprinter::new(previous_pepper)?));
        Ok(self)
    }

    /// 16 hex characters naming the pepper (a hash of it, not the pepper).
    pub fn pepper_id(&self) -> &str {
        &self.id
    }

    /// The pepper being rotated away from, if any.
    pub fn previous(&self) -> Option<&Fingerprinter> {
        self.previous.as_deref()
    }

    pub fn fingerprint(&self, token: &str) -> Fingerprint {
        let mut mac = self.prepared.clone();
        mac.update(token.as_bytes());
        Fingerprint(mac.finalize().into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::token::{Kind, Mode, Token};
    use proptest::prelude::*;

    #[test]
    fn weak_pepper_refused() {
        assert!(Fingerprinter::new(b"short").is_err());
        assert!(Fingerprinter::new(&[1; 32]).unwrap().with_previous(b"short").is_err());
    }

    #[test]
    fn matches_rfc4231_style_hmac() {
        // HMAC-SHA256(key = 0x0b * 20, "Hi There"), RFC 4231 test case 1.
        let f = Fingerprinter::new(&[0x0b; 20]).unwrap();
        assert_eq!(
            f.fingerprint("Hi There").to_hex(),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn a_fingerprint_hashes_to_its_first_eight_bytes_and_the_map_still_tells_them_apart() {
        use std::hash::BuildHasher;
        let mut a = [7u8; 32];
        a[..8].copy_from_slice(&0x0102_0304_0506_0708_u64.to_le_bytes());
        let mut b = a;
        b[31] = 8;
        assert_eq!(FingerprintHash.hash_one(Fingerprint(a)), 0x0102_0304_0506_0708);
        assert_eq!(FingerprintHash.hash_one(Fingerprint(a)), FingerprintHash.hash_one(Fingerprint(b)));
        let mut map = std::collections::HashMap::with_hasher(FingerprintHash);
        map.insert(Fingerprint(a), "a");
        map.insert(Fingerprint(b), "b");
        assert_eq!((map[&Fingerprint(a)], map[&Fingerprint(b)], map.len()), ("a", "b", 2));
    }

    proptest! {
        #[test]
        fn only_the_owner_token_matches(seed in any::<u64>()) {
            let f = Fingerprinter::new(&seed.to_le_bytes().repeat(4)).unwrap();
            let a = Token::generate("kw", Kind::Secret, Mode::Live).unwrap();
            let b = Token::generate("kw", Kind::Secret, Mode::Live).unwrap();
            let stored = f.fingerprint(a.expose());
            prop_assert!(stored.ct_eq(&f.fingerprint(a.expose())));
            prop_assert!(!stored.ct_eq(&f.fingerprint(b.expose())));
            let other_pepper = Fingerprinter::new(&seed.wrapping_add(1).to_le_bytes().repeat(4)).unwrap();
            prop_assert!(!stored.ct_eq(&other_pepper.fingerprint(a.expose())));
        }
    }
}
