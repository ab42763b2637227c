//! The token parser on arbitrary text: it must not panic, and whatever it
//! accepts must describe the token it was given.
#![no_main]

use keyward::keys::{checksum, token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = token::parse(text) else {
        return;
    };
    assert!(text.starts_with(parsed.display_prefix));
    assert!(text.ends_with(parsed.last4));
    assert_eq!(parsed.last4.len(), 4);
    assert!(token::valid_prefix(parsed.prefix));
    assert_eq!(
        parsed.display_prefix,
        format!("{}_{}_{}_", parsed.prefix, parsed.kind.code(), parsed.mode.as_str())
    );
    let (payload, sum) = text.split_at(text.len() - checksum::CHECKSUM_LEN);
    assert!(checksum::verify(payload.as_bytes(), sum.as_bytes()));
});
