//! Recognises bodies that only look like tokens: `XXXX…`, `0000…`,
//! `<your-key>`, documentation examples and counting sequences.
//!
//! These are what tutorials and config templates are full of; reporting
//! them would teach users to ignore the scanner.

const WORDS: &[&[u8]] = &[
    b"example",
    b"xxxxx",
    b"placeholder",
    b"your_",
    b"your-",
    b"yourkey",
    b"yourtoken",
    b"redacted",
    b"dummy",
    b"changeme",
    b"sample",
    b"insert",
];

/// Bytes that open a template slot right after a prefix: `ghp_<token>`,
/// `sk_live_${KEY}`, `AKIA****`.
pub fn opens_template(byte: u8) -> bool {
    b"<{[$*%.".contains(&byte)
}

/// Bytes that end a template slot (or leave it empty: `ghp_.` ends a
/// sentence, it opens no slot).
pub fn closes_template(byte: u8) -> bool {
    b" \t\r\n\"'`>}]".contains(&byte)
}

/// A password that names itself: what templates, test suites and docs put
/// in a URI's userinfo (`password`, `home-pass`, `s3cret-pwd`, `pw`).
pub fn is_placeholder_word(password: &[u8]) -> bool {
    const NAMING: &[&[u8]] = &[b"pass", b"pwd", b"secret"];
    let lower = password.to_ascii_lowercase();
    lower == b"pw" || has_placeholder_word(&lower) || NAMING.iter().any(|w| memchr::memmem::find(&lower, w).is_some())
}

pub fn looks_like_placeholder(body: &[u8]) -> bool {
    few_distinct(body) || has_counting_run(body) || has_placeholder_word(body)
}

fn few_distinct(body: &[u8]) -> bool {
    let mut seen = [false; 256];
    let mut distinct = 0usize;
    for &b in body {
        if !seen[b as usize] {
            seen[b as usize] = true;
            distinct += 1;
        }
    }
    // Random base62 of length n shows ~n distinct characters up to ~30;
    // a quarter of that never happens by chance.
    distinct <= 2 || distinct * 4 < body.len().min(40)
}

fn has_counting_run(body: &[u8]) -> bool {
    let mut run = 1;
    for pair in body.windows(2) {
        run = if pair[1] == pair[0].wrapping_add(1) { run + 1 } else { 1 };
        if run >= 8 {
            return true;
        }
    }
    false
}

fn has_placeholder_word(body: &[u8]) -> bool {
    let lower = body.to_ascii_lowercase();
    WORDS.iter().any(|w| memchr::memmem::find(&lower, w).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $body:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(looks_like_placeholder($body), $expected);
            }
        };
    }

    t!(all_x, b"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", true);
    t!(all_zero, b"000000000000000000000000000000000000", true);
    t!(aws_doc_example, b"IOSFODNN7EXAMPLE", true);
    t!(counting, b"1234567890abcdefghij", true);
    t!(two_letters_alternating, b"abababababababababab", true);
    t!(your_key, b"your_key_goes_here_ok", true);
    t!(random_base62, b"Gq3TJtq9jY6l2r5vX8bWcN1eK0sZpLmAo7HdRfUi", false);
    t!(random_upper, b"Q7ZP3K2LMX5RT4VN", false);
    t!(random_hex, b"9f3b1c7e2a5d48e6b0c1d2e3f4a5b6c7", false);
}
