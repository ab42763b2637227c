//! Checksums and structure checks that tell a real token from a
//! look-alike, as small pure functions over the token's bytes.
//!
//! Each is chosen by name from a rule file (`checksum = "marvin32"`) and
//! knows one issuer's published scheme (TOKEN-FORMATS.md section 2). None
//! allocates more than the decoded token, and none looks anything up: a
//! scan stays offline.

use crate::keys::checksum::{self, CHECKSUM_LEN};

/// GitHub and npm: the last six body characters are CRC-32 of the rest of
/// the body, in base62.
pub fn crc32_base62_tail(body: &[u8]) -> bool {
    body.len() > CHECKSUM_LEN && checksum::verify(&body[..body.len() - CHECKSUM_LEN], &body[body.len() - CHECKSUM_LEN..])
}

/// GitLab routable tokens: `<prefix><base64url payload>.[01.]<2 base36:
/// payload length><7 base36: CRC-32 of everything before them>`.
pub fn gitlab_routable(token: &[u8], prefix_len: usize) -> bool {
    const CRC_LEN: usize = 7;
    if token.len() < prefix_len + CRC_LEN + 4 {
        return false;
    }
    let (signed, written) = token.split_at(token.len() - CRC_LEN);
    if written != base36(crc32fast::hash(signed), CRC_LEN).as_slice() {
        return false;
    }
    let (head, length) = signed.split_at(signed.len() - 2);
    let Some(length) = parse_base36(length) else {
        return false;
    };
    let head = head.strip_suffix(b".01.").or_else(|| head.strip_suffix(b".")).unwrap_or(b"");
    let payload = head.get(prefix_len..).unwrap_or(b"");
    // Runner tokens keep a `t<digit>_` routing part ahead of the payload.
    let routed = payload.len() >= 3 && payload[0] == b't' && payload[2] == b'_';
    !payload.is_empty() && (payload.len() == length || (routed && payload.len() - 3 == length))
}

/// Atlassian: the last 8 characters are CRC-32 of everything before them,
/// in uppercase hex, most significant byte first.
pub fn crc32_hex_be(token: &[u8]) -> bool {
    let Some(split) = token.len().checked_sub(8) else {
        return false;
    };
    let (signed, written) = token.split_at(split);
    written == format!("{:08X}", crc32fast::hash(signed)).as_bytes()
}

/// Grafana service accounts: `<signed>_<8 hex>`, the hex being CRC-32 of
/// `<signed>` written as its four little-endian bytes.
pub fn crc32_hex_le(token: &[u8]) -> bool {
    let Some(split) = token.len().checked_sub(9) else {
        return false;
    };
    let (signed, rest) = token.split_at(split);
    rest[0] == b'_' && rest[1..] == *hex::encode(crc32fast::hash(signed).to_le_bytes()).as_bytes()
}

/// Marvin32 (SymCrypt, .NET): the 32-bit hash Microsoft's identifiable
/// keys carry. `seed` is an 8-character ASCII word read big-endian.
pub fn marvin32(data: &[u8], seed: u64) -> u32 {
    let mut lanes = (seed as u32, (seed >> 32) as u32);
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        lanes.0 = lanes.0.wrapping_add(u32::from_le_bytes(word.try_into().expect("four bytes")));
        marvin_block(&mut lanes);
    }
    let tail = words.remainder();
    let mut last = 0x80u32 << (8 * tail.len());
    for (i, &b) in tail.iter().enumerate() {
        last |= u32::from(b) << (8 * i);
    }
    lanes.0 = lanes.0.wrapping_add(last);
    marvin_block(&mut lanes);
    marvin_block(&mut lanes);
    lanes.0 ^ lanes.1
}

fn marvin_block((p0, p1): &mut (u32, u32)) {
    *p1 ^= *p0;
    *p0 = p0.rotate_left(20).wrapping_add(*p1);
    *p1 = p1.rotate_left(9) ^ *p0;
    *p0 = p0.rotate_left(27).wrapping_add(*p1);
    *p1 = p1.rotate_left(19);
}

/// The Marvin32 seed for an 8-character kind name such as `Default0`.
pub fn marvin_seed(name: &str) -> Option<u64> {
    let bytes: [u8; 8] = name.as_bytes().try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Azure identifiable keys and 88-character CASK keys: base64 whose last
/// four decoded bytes are the little-endian Marvin32 of the others. The
/// 84-character CASK layout instead ends with 4 characters encoding the
/// hash's first three bytes.
pub fn marvin32_key(token: &[u8], seed: u64) -> bool {
    if token.len() == 84 && !token.contains(&b'=') {
        let bytes = decode_base64(&token[..80]);
        let hash = marvin32(&bytes, seed).to_le_bytes();
        return bytes.len() == 60 && encode_base64(&hash[..3]) == token[80..];
    }
    let bytes = decode_base64(token);
    let Some(split) = bytes.len().checked_sub(4) else {
        return false;
    };
    split >= 20 && bytes[split..] == marvin32(&bytes[..split], seed).to_le_bytes()
}

/// Bech32 (BIP-173): the polymod over the expanded human-readable part and
/// the data characters is 1. Used by age identities.
pub fn bech32(token: &[u8]) -> bool {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let lower = token.to_ascii_lowercase();
    let Some(sep) = lower.iter().rposition(|&b| b == b'1') else {
        return false;
    };
    let (hrp, data) = (&lower[..sep], &lower[sep + 1..]);
    if hrp.is_empty() || data.len() < 6 {
        return false;
    }
    let mut values: Vec<u8> = hrp.iter().map(|b| b >> 5).collect();
    values.push(0);
    values.extend(hrp.iter().map(|b| b & 31));
    for c in data {
        match CHARSET.iter().position(|x| x == c) {
            Some(v) => values.push(v as u8),
            None => return false,
        }
    }
    bech32_polymod(&values) == 1
}

fn bech32_polymod(values: &[u8]) -> u32 {
    const GEN: [u32; 5] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3];
    let mut chk = 1u32;
    for &v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// base64 JSON that names every field: the first `eyJ` in the token starts
/// an object (`{"`) whose decoded text holds `"<field>"` for each field.
pub fn base64_json(token: &[u8], fields: &[String]) -> bool {
    let Some(start) = memchr::memmem::find(token, b"eyJ") else {
        return false;
    };
    let end = token[start..].iter().position(|&b| b == b'.').map_or(token.len(), |p| start + p);
    let text = decode_base64(&token[start..end]);
    fields
        .iter()
        .all(|f| memchr::memmem::find(&text, format!("\"{f}\"").as_bytes()).is_some())
}

/// A JSON Web Token: three dot-separated base64url parts, the first a JSON
/// header naming its `alg`, the second a JSON object.
pub fn jwt(token: &[u8]) -> bool {
    let mut parts = token.split(|&b| b == b'.');
    let (Some(header), Some(claims), Some(_signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let header = decode_base64(header);
    header.starts_with(b"{") && memchr::memmem::find(&header, b"\"alg\"").is_some() && decode_base64(claims).starts_with(b"{")
}

/// PyPI API tokens are macaroons (v2, binary): `pypi-` and base64url whose
/// bytes open with version 2 and a location field naming a PyPI host.
pub fn pypi_macaroon(token: &[u8]) -> bool {
    let bytes = decode_base64(token.strip_prefix(b"pypi-").unwrap_or(token));
    let Some([2, 1, len, rest @ ..]) = bytes.get(..) else {
        return false;
    };
    let location = rest.get(..usize::from(*len)).unwrap_or(b"");
    location == b"pypi.org" || location == b"test.pypi.org"
}

/// A fixed marker somewhere in the token (OpenAI's `T3BlbkFJ`), at its end
/// (Anthropic's `AA`), or inside its base64 body once decoded (Bedrock's
/// `bedrock.amazonaws.com`).
pub fn marker(token: &[u8], prefix_len: usize, marker: &[u8], place: MarkerPlace) -> bool {
    match place {
        MarkerPlace::Anywhere => memchr::memmem::find(&token[prefix_len..], marker).is_some(),
        MarkerPlace::End => token.ends_with(marker),
        MarkerPlace::Decoded => memchr::memmem::find(&decode_base64(&token[prefix_len..]), marker).is_some(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MarkerPlace {
    #[default]
    Anywhere,
    End,
    Decoded,
}

fn base36(mut value: u32, width: usize) -> Vec<u8> {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = vec![b'0'; width];
    for digit in out.iter_mut().rev() {
        *digit = DIGITS[(value % 36) as usize];
        value /= 36;
    }
    out
}

fn parse_base36(text: &[u8]) -> Option<usize> {
    text.iter()
        .try_fold(0usize, |acc, &c| Some(acc * 36 + (c as char).to_digit(36)? as usize))
}

/// Either base64 alphabet, padding and all; stops at the first other byte.
fn decode_base64(text: &[u8]) -> Vec<u8> {
    let trimmed = text.iter().position(|&b| b == b'=').map_or(text, |p| &text[..p]);
    super::base64::decode_prefix(trimmed, trimmed.len())
}

fn encode_base64(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each verifier against its published sample (true) and the sample
    /// with one character changed (false).
    macro_rules! t {
        ($name:ident, $check:expr, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let check: fn(&[u8]) -> bool = $check;
                assert_eq!(check($input.as_bytes()), $expected, "{}", $input);
            }
        };
    }

    const AZURE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa+ASt5mnCaw==";
    const AGE: &str = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
    const GRAFANA: &str = "glsa_iNValIdinValiDinvalidinvalidinva_5b582697";
    const GITLAB: &str = "glpat-bzox79Of-KE9FD2LjoXXF4CvyxA.0r03gxo7s";
    const GITHUB: &str = "zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq17";

    fn default0(token: &[u8]) -> bool {
        marvin32_key(token, marvin_seed("Default0").unwrap())
    }

    t!(github_sample, crc32_base62_tail, GITHUB, true);
    t!(
        github_one_char_off,
        crc32_base62_tail,
        "zQWBuTSOoRi4A9spHcVY5ncnsDkxkJ0mLq18",
        false
    );
    t!(gitlab_sample, |t| gitlab_routable(t, 6), GITLAB, true);
    t!(
        gitlab_one_char_off,
        |t| gitlab_routable(t, 6),
        "glpat-bzox79Of-KE9FD2LjoXXF4CvyxB.0r03gxo7s",
        false
    );
    t!(
        gitlab_wrong_length_field,
        |t| gitlab_routable(t, 6),
        "glpat-bzox79Of-KE9FD2LjoXXF4CvyxA.0s03gxo7s",
        false
    );
    t!(grafana_sample, crc32_hex_le, GRAFANA, true);
    t!(
        grafana_one_char_off,
        crc32_hex_le,
        "glsa_iNValIdinValiDinvalidinvalidinvb_5b582697",
        false
    );
    t!(azure_storage_sample, default0, AZURE, true);
    t!(
        azure_one_char_off,
        default0,
        "baaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa+ASt5mnCaw==",
        false
    );
    t!(age_sample, bech32, AGE, true);
    t!(
        age_one_char_off,
        bech32,
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEQ",
        false
    );
    t!(
        jwt_header_with_alg,
        jwt,
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJlLW5vdC1jaGVja2Vk",
        true
    );
    t!(jwt_header_without_alg, jwt, "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiI0MiJ9.c2ln", false);
    t!(jwt_two_parts, jwt, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9", false);

    #[test]
    fn marvin32_matches_the_published_azure_value() {
        let bytes = decode_base64(AZURE.as_bytes());
        assert_eq!(bytes.len(), 64);
        assert_eq!(marvin32(&bytes[..60], 0x4465_6661_756c_7430), 0x6bc2_69e6);
        assert_eq!(marvin_seed("Default0"), Some(0x4465_6661_756c_7430));
    }

    #[test]
    fn marvin32_of_every_tail_length_differs() {
        let hashes: Vec<u32> = (0..8).map(|n| marvin32(&b"abcdefgh"[..n], 1)).collect();
        let mut unique = hashes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), hashes.len());
    }

    #[test]
    fn atlassian_layout_round_trips() {
        let signed = format!("ATATT3xFfGF0{}=", "Q".repeat(171));
        let token = format!("{signed}{:08X}", crc32fast::hash(signed.as_bytes()));
        assert_eq!(token.len(), 192);
        assert!(crc32_hex_be(token.as_bytes()));
        let mut off = token.clone().into_bytes();
        off[20] = b'R';
        assert!(!crc32_hex_be(&off));
    }

    #[test]
    fn cask_short_layout_checks_three_hash_bytes() {
        let seed = marvin_seed("Default0").unwrap();
        let body = format!("{}JQQJ99{}", "b".repeat(52), "c".repeat(22));
        let bytes = decode_base64(body.as_bytes());
        let hash = marvin32(&bytes, seed).to_le_bytes();
        let token = [body.as_bytes(), &encode_base64(&hash[..3])].concat();
        assert_eq!(token.len(), 84);
        assert!(marvin32_key(&token, seed));
        let mut off = token.clone();
        off[3] = b'd';
        assert!(!marvin32_key(&off, seed));
    }

    #[test]
    fn base64_json_needs_every_field() {
        let token = b"glc_eyJvIjoiMSIsIm4iOiJ4IiwiayI6InkifQ==";
        assert!(base64_json(token, &["o".into(), "k".into()]));
        assert!(!base64_json(token, &["o".into(), "zz".into()]));
    }

    #[test]
    fn pypi_macaroon_names_its_host() {
        assert!(pypi_macaroon(b"pypi-AgEIcHlwaS5vcmcCJGFiY2Q"));
        assert!(pypi_macaroon(b"pypi-AgENdGVzdC5weXBpLm9yZwIkYWJj"));
        assert!(!pypi_macaroon(b"pypi-AgEIcHlxaS5vcmcCJGFiY2Q"));
    }

    #[test]
    fn markers_in_each_place() {
        assert!(marker(b"sk-proj-abcT3BlbkFJxyz", 8, b"T3BlbkFJ", MarkerPlace::Anywhere));
        assert!(!marker(b"sk-proj-abcT3BlbkFLxyz", 8, b"T3BlbkFJ", MarkerPlace::Anywhere));
        assert!(marker(b"sk-ant-api03-xyzAA", 13, b"AA", MarkerPlace::End));
        assert!(marker(
            b"ABSKYmVkcm9jay5hbWF6b25hd3MuY29t",
            4,
            b"bedrock.amazonaws.com",
            MarkerPlace::Decoded
        ));
    }
}
