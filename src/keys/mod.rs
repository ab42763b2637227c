//! Pure key logic: the token format, fingerprints, scopes and names. No
//! I/O; the key service and the scanner both build on it.

pub mod checksum;
pub mod fingerprint;
pub mod limits;
pub mod scopes;
pub mod sealed;
pub mod token;
pub mod verdict;

/// Key names: letters, digits and `_`, 1 to 64 characters.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    macro_rules! t {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(super::valid_name($input), $expected);
            }
        };
    }

    t!(letters_digits_underscore, "backend_2", true);
    t!(empty, "", false);
    t!(dash, "my-key", false);
    t!(space, "my key", false);
    t!(unicode, "clé", false);
    t!(max_length, &"a".repeat(64), true);
    t!(too_long, &"a".repeat(65), false);
}
