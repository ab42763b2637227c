//! Finding prefixes inside base64 without a second pass.
//!
//! A prefix encoded in base64 looks different for each of the three byte
//! offsets it can start at inside a 3-byte group. For each offset we keep
//! the run of base64 characters that depend only on the prefix's bits, and
//! put those runs into the same automaton as the plain prefixes. A hit
//! tells where the enclosing 4-character group starts, and we decode from
//! there.

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encoded characters that precede a hit inside its 4-character group, for
/// a prefix starting at byte `align` (0, 1 or 2) of a 3-byte group.
pub fn lead_chars(align: usize) -> usize {
    (8 * align).div_ceil(6)
}

/// The encoded fragment that depends only on `prefix` when it starts at
/// byte `align` of a 3-byte group, in the standard alphabet.
pub fn fragment(prefix: &[u8], align: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; align];
    bytes.extend_from_slice(prefix);
    let encoded = encode(&bytes);
    let first = lead_chars(align);
    let last = (8 * (align + prefix.len())) / 6;
    encoded[first..last.max(first)].to_vec()
}

/// The characters that can follow [`fragment`]`(prefix, align)` when the
/// prefix is followed by any byte: the next character carries the
/// prefix's last bits and the first of that byte, so it is one of 4 or 16
/// (a 3-character fragment), in either alphabet.
pub fn chars_after_fragment(prefix: &[u8], align: usize) -> Vec<u8> {
    let at = lead_chars(align) + fragment(prefix, align).len();
    let mut bytes = vec![0u8; align];
    bytes.extend_from_slice(prefix);
    bytes.push(0);
    let known = sextet(encode(&bytes)[at]).expect("encode writes the standard alphabet");
    // The character's low bits are the first bits of the byte that follows.
    let free = 6 * (at + 1) - 8 * (align + prefix.len());
    let mut chars: Vec<u8> = (0..1u32 << free)
        .flat_map(|low| match STANDARD[(known | low) as usize] {
            b'+' => vec![b'+', b'-'],
            b'/' => vec![b'/', b'_'],
            c => vec![c],
        })
        .collect();
    chars.sort_unstable();
    chars
}

fn encode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let mut n = [0u8; 3];
        n[..group.len()].copy_from_slice(group);
        let v = u32::from(n[0]) << 16 | u32::from(n[1]) << 8 | u32::from(n[2]);
        let chars = group.len() + 1;
        for i in 0..chars {
            out.push(STANDARD[((v >> (18 - 6 * i)) & 63) as usize]);
        }
    }
    out
}

fn sextet(byte: u8) -> Option<u32> {
    Some(match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// A character of either base64 alphabet.
pub fn is_alphabet(byte: u8) -> bool {
    sextet(byte).is_some()
}

/// Decodes base64 (either alphabet) from the start of `encoded` until the
/// first non-alphabet byte or until `max_bytes` are out.
pub fn decode_prefix(encoded: &[u8], max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(max_bytes.min(4096));
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in encoded {
        let Some(v) = sextet(c) else { break };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
            if out.len() >= max_bytes {
                break;
            }
        }
    }
    out
}

/// Encoded position of decoded byte `n` (the first character carrying its bits).
pub fn encoded_offset(n: usize) -> usize {
    (8 * n) / 6
}

/// Encoded length needed to hold the first `n` decoded bytes.
pub fn encoded_len(n: usize) -> usize {
    (8 * n).div_ceil(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $prefix:expr, $align:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(String::from_utf8(fragment($prefix, $align)).unwrap(), $expected);
            }
        };
    }

    // "ghp_" -> Z2hwXw== ; offset 1 ("?ghp_") and 2 ("??ghp_") checked with Python.
    t!(ghp_aligned, b"ghp_", 0, "Z2hwX");
    t!(ghp_offset_one, b"ghp_", 1, "docF");
    t!(ghp_offset_two, b"ghp_", 2, "naHBf");
    t!(pem_header, b"-----BEGIN", 0, "LS0tLS1CRUdJT");

    #[test]
    fn a_three_character_fragment_is_followed_by_one_of_few_characters() {
        // "sk-" two bytes into a group: "zay", then a character whose top
        // four bits are the last four of '-'.
        assert_eq!(String::from_utf8(fragment(b"sk-", 2)).unwrap(), "zay");
        let after = chars_after_fragment(b"sk-", 2);
        assert_eq!(String::from_utf8(after).unwrap(), "0123");
        for next in 0..=255u8 {
            let encoded = encode(&[0, 0, b's', b'k', b'-', next]);
            assert!(chars_after_fragment(b"sk-", 2).contains(&encoded[6]));
        }
    }

    #[test]
    fn decode_round_trips() {
        let text = b"token: ghp_abc\n";
        let encoded = encode(text);
        assert_eq!(decode_prefix(&encoded, 100), text);
        assert_eq!(decode_prefix(&encoded, 5), &text[..5]);
    }

    #[test]
    fn decode_stops_at_non_alphabet() {
        assert_eq!(decode_prefix(b"Z2hw\"rest", 100), b"ghp");
    }
}
