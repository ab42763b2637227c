//! UTF-16 text, as Windows tools write it (PowerShell's `Out-File`, `.reg`
//! exports, Visual Studio files): recognised by its byte order mark, or
//! without one by the NUL byte beside every ASCII character, and scanned as
//! the UTF-8 it decodes to.
//!
//! The engine sees the decoded text, so prefixes, charsets and checksums
//! work unchanged; each finding's byte offsets are then mapped back to the
//! original bytes. Line and column numbers need no mapping: one newline
//! decodes to one newline, one character to one character. The map holds
//! only runs of equal width, pruned as the stream settles, so memory stays
//! flat however large the input.

use std::collections::VecDeque;
use std::io::{self, Read};

use crate::engine::{Finding, Stream};

/// A UTF-16 byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Little,
    Big,
}

/// How a sniffed head of an input is to be read as UTF-16, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf16 {
    pub order: Order,
    /// Bytes of byte order mark to skip (0 or 2).
    pub bom: usize,
}

/// Recognises UTF-16 from the first bytes of an input: a byte order mark,
/// or, without one, text in which at least three code units in four are
/// ASCII or Latin-1 (a NUL on the same side of each), none is NUL, and
/// control characters other than whitespace are rare.
pub fn detect(head: &[u8]) -> Option<Utf16> {
    match head {
        // FF FE 00 00 is UTF-32's mark: not handled, left to the binary check.
        [0xFF, 0xFE, 0, 0, ..] => None,
        [0xFF, 0xFE, ..] => Some(Utf16 {
            order: Order::Little,
            bom: 2,
        }),
        [0xFE, 0xFF, ..] => Some(Utf16 { order: Order::Big, bom: 2 }),
        // Without a mark, ASCII in UTF-16 means NULs: most inputs stop here.
        _ if memchr::memchr(0, head).is_none() => None,
        _ => [Order::Little, Order::Big]
            .into_iter()
            .find(|&order| looks_like(head, order))
            .map(|order| Utf16 { order, bom: 0 }),
    }
}

fn looks_like(head: &[u8], order: Order) -> bool {
    let units: Vec<u16> = head.chunks_exact(2).map(|pair| unit(order, pair[0], pair[1])).collect();
    if units.is_empty() || units.contains(&0) {
        return false;
    }
    let narrow = units.iter().filter(|&&u| u < 0x100).count();
    if narrow * 4 < units.len() * 3 {
        return false;
    }
    let controls = units
        .iter()
        .filter(|&&u| u < 0x20 && !matches!(u, 0x09 | 0x0A | 0x0C | 0x0D) || u == 0x7F)
        .count();
    // The sniffed head may cut a surrogate pair in two.
    controls * 100 <= units.len() && char::decode_utf16(units.iter().copied()).filter(Result::is_err).count() <= 1
}

fn unit(order: Order, a: u8, b: u8) -> u16 {
    match order {
        Order::Little => u16::from_le_bytes([a, b]),
        Order::Big => u16::from_be_bytes([a, b]),
    }
}

/// A run of decoded characters that all took `width` original bytes and
/// `len` UTF-8 bytes, starting at `decoded` and `original`.
#[derive(Debug, Clone, Copy)]
struct Run {
    decoded: u64,
    original: u64,
    len: u8,
    width: u8,
}

/// Decoded offsets to original ones.
#[derive(Default)]
struct OffsetMap {
    runs: VecDeque<Run>,
}

impl OffsetMap {
    fn push(&mut self, decoded: u64, original: u64, len: u8, width: u8) {
        match self.runs.back() {
            Some(run) if run.len == len && run.width == width => {}
            _ => self.runs.push_back(Run {
                decoded,
                original,
                len,
                width,
            }),
        }
    }

    fn original(&self, decoded: u64) -> u64 {
        let at = self.runs.partition_point(|r| r.decoded <= decoded).saturating_sub(1);
        match self.runs.get(at) {
            Some(run) => {
                let chars = (decoded - run.decoded).div_ceil(u64::from(run.len));
                run.original + chars * u64::from(run.width)
            }
            None => decoded,
        }
    }

    /// Forgets the runs wholly before `decoded`: no finding can start there.
    fn prune(&mut self, decoded: u64) {
        while self.runs.len() > 1 && self.runs[1].decoded <= decoded {
            self.runs.pop_front();
        }
    }
}

/// Bytes read from the input per round.
const READ: usize = 64 << 10;

/// Scans `head` (the sniffed start of the input) and the rest of `reader`
/// as UTF-16. Returns the count of original bytes read.
pub fn scan(encoding: Utf16, head: &[u8], mut reader: impl Read, stream: &mut Stream, out: &mut Vec<Finding>) -> io::Result<u64> {
    let bom = encoding.bom.min(head.len());
    let mut pending: Vec<u8> = head[bom..].to_vec();
    let mut original = bom as u64;
    let mut decoded_at = stream.position();
    let mut map = OffsetMap::default();
    let mut read_buf = vec![0u8; READ];
    let mut decoded = Vec::with_capacity(READ * 2);
    let mut eof = false;
    loop {
        while !eof && pending.len() < READ {
            match reader.read(&mut read_buf) {
                Ok(0) => eof = true,
                Ok(n) => pending.extend_from_slice(&read_buf[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    stream.reset();
                    return Err(err);
                }
            }
        }
        decoded.clear();
        let consumed = decode(encoding.order, &pending, eof, &mut decoded, |offset, at, len, width| {
            map.push(decoded_at + offset as u64, original + at as u64, len, width)
        });
        pending.drain(..consumed);
        original += consumed as u64;
        decoded_at += decoded.len() as u64;
        feed(stream, &decoded, &mut map, out);
        if eof && pending.is_empty() {
            break;
        }
    }
    let before = out.len();
    stream.finish(out);
    remap(&map, &mut out[before..]);
    Ok(original)
}

/// Hands `decoded` to the stream as its buffer takes it, mapping the
/// findings each round gives back to original offsets.
fn feed(stream: &mut Stream, mut decoded: &[u8], map: &mut OffsetMap, out: &mut Vec<Finding>) {
    while !decoded.is_empty() {
        let spare = stream.spare();
        let n = spare.len().min(decoded.len());
        spare[..n].copy_from_slice(&decoded[..n]);
        let before = out.len();
        stream.advance(n, out);
        remap(map, &mut out[before..]);
        map.prune(stream.settled());
        decoded = &decoded[n..];
    }
}

/// Decodes the whole characters of `input` into `out`, calling
/// `record(offset in out, offset in input, UTF-8 length, input width)` for
/// each. A lone surrogate, or an odd byte at the end, becomes U+FFFD. Before
/// the end of the input, a character cut short is left for the next round.
/// Returns the input bytes consumed.
fn decode(order: Order, input: &[u8], eof: bool, out: &mut Vec<u8>, mut record: impl FnMut(usize, usize, u8, u8)) -> usize {
    let mut at = 0;
    loop {
        let (c, width) = match &input[at..] {
            [a, b, tail @ ..] => {
                let first = unit(order, *a, *b);
                match (first, tail) {
                    (0xD800..=0xDBFF, [c, d, ..]) => match char::decode_utf16([first, unit(order, *c, *d)]).next() {
                        Some(Ok(c)) => (c, 4),
                        _ => (char::REPLACEMENT_CHARACTER, 2),
                    },
                    (0xD800..=0xDBFF, _) if !eof => break,
                    _ => (char::from_u32(u32::from(first)).unwrap_or(char::REPLACEMENT_CHARACTER), 2),
                }
            }
            [_] if eof => (char::REPLACEMENT_CHARACTER, 1),
            _ => break,
        };
        let mut utf8 = [0u8; 4];
        let encoded = c.encode_utf8(&mut utf8).as_bytes();
        record(out.len(), at, encoded.len() as u8, width);
        out.extend_from_slice(encoded);
        at += width as usize;
    }
    at
}

fn remap(map: &OffsetMap, findings: &mut [Finding]) {
    for f in findings {
        f.start = map.original(f.start);
        f.end = map.original(f.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn be(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_be_bytes).collect()
    }

    macro_rules! t {
        ($name:ident, $input:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let input: &[u8] = &$input;
                assert_eq!(detect(input), $expected);
            }
        };
    }

    const LE: Option<Utf16> = Some(Utf16 {
        order: Order::Little,
        bom: 0,
    });
    const BE: Option<Utf16> = Some(Utf16 { order: Order::Big, bom: 0 });

    t!(
        le_with_bom,
        [&[0xFF, 0xFE][..], &le("$k = 1")].concat(),
        Some(Utf16 {
            order: Order::Little,
            bom: 2
        })
    );
    t!(
        be_with_bom,
        [&[0xFE, 0xFF][..], &be("$k = 1")].concat(),
        Some(Utf16 { order: Order::Big, bom: 2 })
    );
    t!(le_without_bom, le("$token = 'x'\r\n"), LE);
    t!(be_without_bom, be("$token = 'x'\r\n"), BE);
    t!(le_with_some_non_latin_text, le("name: Zoë — 日本\n"), LE);
    t!(utf8_text_is_not_utf16, *b"plain text\n", None);
    t!(utf32_is_not_utf16, [0xFF, 0xFE, 0, 0, b'a', 0, 0, 0], None);
    t!(binary_with_nul_units, [0x7F, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0], None);
    t!(control_heavy_binary, le("\u{1}\u{2}\u{3}\u{4}ab"), None);
    t!(mostly_wide_text_without_bom, le("日本語のテキスト"), None);

    #[test]
    fn offsets_map_back_across_widths() {
        // "a" (1 byte, width 2), "é" (2, 2), "😀" (4, 4), "b" (1, 2).
        let input = le("aé😀b");
        let mut decoded = Vec::new();
        let mut map = OffsetMap::default();
        let consumed = decode(Order::Little, &input, true, &mut decoded, |o, a, l, w| {
            map.push(o as u64, a as u64, l, w)
        });
        assert_eq!((&decoded[..], consumed), ("aé😀b".as_bytes(), input.len()));
        let mapped: Vec<u64> = [0, 1, 3, 7, 8].iter().map(|&d| map.original(d)).collect();
        assert_eq!(mapped, [0, 2, 4, 8, 10]);
    }

    #[test]
    fn a_split_surrogate_waits_for_its_pair() {
        let input = le("😀");
        let mut decoded = Vec::new();
        assert_eq!(decode(Order::Little, &input[..2], false, &mut decoded, |_, _, _, _| {}), 0);
        assert_eq!(decode(Order::Little, &input[..2], true, &mut decoded, |_, _, _, _| {}), 2);
        assert_eq!(decoded, "\u{fffd}".as_bytes());
    }
}
