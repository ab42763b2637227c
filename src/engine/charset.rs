//! Byte classes for token bodies, written as ranges: `0-9A-Za-z_-`.
//!
//! A 256-entry table makes extending a prefix hit one load per byte.

#[derive(Debug, thiserror::Error)]
#[error("charset {spec:?}: {problem}")]
pub struct CharsetError {
    spec: String,
    problem: &'static str,
}

#[derive(Clone)]
pub struct Charset {
    table: [bool; 256],
    spec: String,
}

impl std::fmt::Debug for Charset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Charset({})", self.spec)
    }
}

impl Charset {
    /// Parses ranges (`a-z`) and single ASCII characters. A `-` that does
    /// not sit between two characters stands for itself.
    pub fn parse(spec: &str) -> Result<Charset, CharsetError> {
        let error = |problem| CharsetError {
            spec: spec.to_string(),
            problem,
        };
        if !spec.is_ascii() || spec.is_empty() {
            return Err(error("must be non-empty ASCII"));
        }
        let bytes = spec.as_bytes();
        let mut table = [false; 256];
        let mut i = 0;
        while i < bytes.len() {
            if i + 2 < bytes.len() && bytes[i + 1] == b'-' {
                let (lo, hi) = (bytes[i], bytes[i + 2]);
                if lo > hi {
                    return Err(error("range runs backwards"));
                }
                (lo..=hi).for_each(|b| table[b as usize] = true);
                i += 3;
            } else {
                table[bytes[i] as usize] = true;
                i += 1;
            }
        }
        Ok(Charset {
            table,
            spec: spec.to_string(),
        })
    }

    #[inline]
    pub fn contains(&self, byte: u8) -> bool {
        self.table[byte as usize]
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }
}

/// Characters that glue onto a token: a token followed or preceded by one
/// of these is part of a longer word, not a token.
#[inline]
pub fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $spec:expr, $inside:expr, $outside:expr) => {
            #[test]
            fn $name() {
                let set = Charset::parse($spec).unwrap();
                for b in $inside.bytes() {
                    assert!(set.contains(b), "{} should contain {:?}", $spec, b as char);
                }
                for b in $outside.bytes() {
                    assert!(!set.contains(b), "{} should not contain {:?}", $spec, b as char);
                }
            }
        };
    }

    t!(base62, "0-9A-Za-z", "09AZaz", "-_. /");
    t!(trailing_dash_is_literal, "0-9A-Za-z_-", "-_9", ". /");
    t!(lower_hex, "0-9a-f", "0af", "gAF");

    #[test]
    fn backwards_range_rejected() {
        assert!(Charset::parse("z-a").is_err());
    }
}
