//! CRC-32 checksums written in base62, the scheme GitHub, npm and keyward
//! tokens share.
//!
//! A token carries `base62(crc32(payload))`, left-padded with `0` to six
//! digits, most significant digit first, alphabet `0-9A-Za-z`. What the
//! payload covers differs: GitHub and npm sum only the random part, keyward
//! sums everything before the checksum (prefix, kind and mode included), so
//! a token moved to another prefix or mode no longer validates.

/// Width of the written checksum: 62^6 > 2^32, so six digits always suffice.
pub const CHECKSUM_LEN: usize = 6;

/// The base62 alphabet in the order GitHub and keyward use: digits, upper, lower.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `crc32(payload)` in base62, six digits.
pub fn crc32_base62(payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(payload);
    let mut out = [b'0'; CHECKSUM_LEN];
    for digit in out.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// True when `written` is the checksum of `payload`.
pub fn verify(payload: &[u8], written: &[u8]) -> bool {
    written == crc32_base62(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $payload:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(&crc32_base62($payload), $expected);
            }
        };
    }

    // zlib.crc32(b"") == 0, so the empty payload is all padding.
    t!(empty_payload_is_all_zero_digits, b"", b"000000");
    // Vectors computed independently with Python's zlib.crc32.
    t!(single_byte, b"a", b"4GEHKN");
    t!(check_value_of_crc32, b"123456789", b"3jZRME");

    #[test]
    fn verify_rejects_one_changed_digit() {
        let sum = crc32_base62(b"payload");
        assert!(verify(b"payload", &sum));
        let mut bad = sum;
        bad[5] = if bad[5] == b'0' { b'1' } else { b'0' };
        assert!(!verify(b"payload", &bad));
    }
}
