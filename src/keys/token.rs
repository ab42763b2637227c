//! keyward tokens: `prefix _ kind _ mode _ body checksum`, generated from the
//! OS CSPRNG and parsed back with the checksum checked first, so a typo or
//! a look-alike is refused before any lookup.

use std::fmt;

use rand::rngs::OsRng;
use rand::RngCore;

use super::checksum::{self, BASE62, CHECKSUM_LEN};

/// Random characters per token: 43 base62 digits carry 256 bits.
pub const BODY_LEN: usize = 43;

pub const DEFAULT_PREFIX: &str = "kw";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `sk`: a server-side secret.
    Secret,
    /// `pk`: meant to be embedded in public clients; never revoked as leaked.
    Publishable,
}

impl Kind {
    pub fn code(self) -> &'static str {
        match self {
            Kind::Secret => "sk",
            Kind::Publishable => "pk",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Publishable => "publishable",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "secret" => Some(Kind::Secret),
            "publishable" => Some(Kind::Publishable),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Live,
    Test,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "live" => Some(Mode::Live),
            "test" => Some(Mode::Test),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token prefix must be 2 to 16 characters of [a-z0-9]")]
    BadPrefix,
    #[error("not a keyward token")]
    Malformed,
    #[error("token checksum does not match")]
    BadChecksum,
}

/// A plaintext token. Its `Debug` and `Display` never show the secret part.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A new token from the OS CSPRNG.
    pub fn generate(prefix: &str, kind: Kind, mode: Mode) -> Result<Token, TokenError> {
        if !valid_prefix(prefix) {
            return Err(TokenError::BadPrefix);
        }
        let mut text = format!("{prefix}_{}_{}_", kind.code(), mode.as_str());
        text.push_str(&random_base62(BODY_LEN));
        let sum = checksum::crc32_base62(text.as_bytes());
        text.push_str(std::str::from_utf8(&sum).expect("base62 is ASCII"));
        Ok(Token(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The last four characters, shown in listings and alerts.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…{})", display_prefix_of(&self.0), self.last4())
    }
}

fn display_prefix_of(token: &str) -> &str {
    token.rfind('_').map_or("", |i| &token[..=i])
}

/// What a well-formed token says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub prefix: &'a str,
    pub kind: Kind,
    pub mode: Mode,
    /// `prefix_kind_mode_`, shown with last4 in listings.
    pub display_prefix: &'a str,
    pub last4: &'a str,
}

/// Parses and checks a token without any lookup.
pub fn parse(token: &str) -> Result<Parsed<'_>, TokenError> {
    let mut parts = token.splitn(4, '_');
    let (prefix, kind, mode, rest) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(k), Some(m), Some(r)) => (p, k, m, r),
        _ => return Err(TokenError::Malformed),
    };
    let kind = match kind {
        "sk" => Kind::Secret,
        "pk" => Kind::Publishable,
        _ => return Err(TokenError::Malformed),
    };
    let mode = Mode::parse(mode).ok_or(TokenError::Malformed)?;
    if !valid_prefix(prefix) || rest.len() != BODY_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TokenError::Malformed);
    }
    let (payload, sum) = token.split_at(token.len() - CHECKSUM_LEN);
    if !checksum::verify(payload.as_bytes(), sum.as_bytes()) {
        return Err(TokenError::BadChecksum);
    }
    Ok(Parsed {
        prefix,
        kind,
        mode,
        display_prefix: &token[..token.len() - rest.len()],
        last4: &token[token.len() - 4..],
    })
}

pub fn valid_prefix(prefix: &str) -> bool {
    (2..=16).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `n` base62 characters, each uniform: bytes of 248 and above are
/// rejected, since 248 = 4 * 62 is the largest multiple of 62 a byte holds.
pub fn random_base62(n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        OsRng.fill_bytes(&mut buf);
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == n {
                break;
            }
            out.push(BASE62[(b % 62) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    macro_rules! t {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(parse($input).map(|p| (p.kind, p.mode)), $expected);
            }
        };
    }

    t!(
        live_secret,
        "kw_sk_live_7KWyWfty6uEvcdZQoaZrknnVmnbSF0d57Iq6S0qvhVh0giP4Y",
        Ok((Kind::Secret, Mode::Live))
    );
    t!(
        test_publishable,
        "kw_pk_test_E7i4w6oo4btlkO28SrZl1mntIQxNZhroSCx3QJ9HexY22Cefs",
        Ok((Kind::Publishable, Mode::Test))
    );
    t!(
        bad_checksum,
        "kw_sk_live_PfRdTcOh6NtqRmhSbKaOM0mMOlMoGoU0NQT2c1tjIYY2Y7tuA",
        Err(TokenError::BadChecksum)
    );
    t!(
        mode_swapped,
        "kw_sk_test_7KWyWfty6uEvcdZQoaZrknnVmnbSF0d57Iq6S0qvhVh0giP4Y",
        Err(TokenError::BadChecksum)
    );
    t!(
        unknown_kind,
        "kw_xk_live_7KWyWfty6uEvcdZQoaZrknnVmnbSF0d57Iq6S0qvhVh0giP4Y",
        Err(TokenError::Malformed)
    );
    t!(short_body, "kw_sk_live_abc", Err(TokenError::Malformed));
    t!(empty, "", Err(TokenError::Malformed));
    t!(non_ascii, "kw_sk_live_é", Err(TokenError::Malformed));
    t!(
        upper_prefix,
        "KW_sk_live_7KWyWfty6uEvcdZQoaZrknnVmnbSF0d57Iq6S0qvhVh0giP4Y",
        Err(TokenError::Malformed)
    );

    #[test]
    fn debug_hides_the_secret() {
        let token = Token::generate("kw", Kind::Secret, Mode::Live).unwrap();
        let shown = format!("{token:?}");
        assert!(shown.starts_with("Token(kw_sk_live_…"));
        assert!(!shown.contains(&token.expose()[11..40]));
    }

    #[test]
    fn random_base62_is_roughly_uniform() {
        let sample = random_base62(62 * 2000);
        let mut counts = [0usize; 62];
        for b in sample.bytes() {
            counts[BASE62.iter().position(|&c| c == b).unwrap()] += 1;
        }
        // Each digit expects 2000; a biased sampler (plain `b % 62`) gives
        // the first 8 digits ~2300.
        assert!(counts.iter().all(|&c| (1750..2250).contains(&c)), "{counts:?}");
    }

    fn kind_mode() -> impl Strategy<Value = (Kind, Mode)> {
        (
            prop_oneof![Just(Kind::Secret), Just(Kind::Publishable)],
            prop_oneof![Just(Mode::Live), Just(Mode::Test)],
        )
    }

    proptest! {
        #[test]
        fn every_generated_token_parses(prefix in "[a-z0-9]{2,16}", (kind, mode) in kind_mode()) {
            let token = Token::generate(&prefix, kind, mode).unwrap();
            let parsed = parse(token.expose()).unwrap();
            prop_assert_eq!((parsed.prefix, parsed.kind, parsed.mode), (prefix.as_str(), kind, mode));
            prop_assert_eq!(token.expose().len(), prefix.len() + 9 + BODY_LEN + CHECKSUM_LEN);
        }

        #[test]
        fn any_single_character_change_is_caught(index in 0usize..60, replacement in "[0-9A-Za-z_]") {
            let token = Token::generate("kw", Kind::Secret, Mode::Live).unwrap();
            let mut bytes = token.expose().as_bytes().to_vec();
            let i = index % bytes.len();
            let new = replacement.as_bytes()[0];
            prop_assume!(bytes[i] != new);
            bytes[i] = new;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(parse(&changed).is_err(), "{} accepted", changed);
        }
    }
}
