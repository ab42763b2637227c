//! Feeding the engine input of any size in fixed chunks, with flat memory.
//!
//! The caller reads straight into [`Stream::spare`] and reports how much
//! arrived; when the buffer is full it is scanned and all but an overlap
//! of one finding's maximum span is dropped. A candidate that starts too
//! close to the end of a chunk to be judged is left for the next round,
//! where it is seen whole. Line numbers are kept by counting the newlines
//! of every dropped stretch.
//!
//! Lines, columns and the `keyward:allow` marker are tracked incrementally
//! as candidates advance through a chunk: a line holding thousands of
//! candidates is read a constant number of times, not once per candidate.

use memchr::{memchr, memmem, memrchr};

use super::{Engine, Finding};

/// Bytes read per round: large enough that per-chunk costs vanish, small
/// enough that two scanning threads stay far below 100 MiB.
pub const DEFAULT_CHUNK: usize = 1 << 20;

const ALLOW_MARKER: &[u8] = b"keyward:allow";

pub struct Stream<'e> {
    engine: &'e Engine,
    buf: Vec<u8>,
    filled: usize,
    /// Absolute offset of `buf[0]` in the input.
    base: u64,
    newlines_before_base: u64,
    /// Characters between the last dropped newline (or the start of the
    /// input) and `base`: the column a line that began before `base` is at.
    chars_before_base: u64,
    /// Candidates starting before this absolute offset were already judged.
    judged_upto: u64,
}

impl<'e> Stream<'e> {
    pub fn new(engine: &'e Engine) -> Stream<'e> {
        Stream::with_chunk_size(engine, DEFAULT_CHUNK)
    }

    pub fn with_chunk_size(engine: &'e Engine, chunk: usize) -> Stream<'e> {
        Stream {
            engine,
            buf: vec![0; chunk.max(1) + overlap(engine)],
            filled: 0,
            base: 0,
            newlines_before_base: 0,
            chars_before_base: 0,
            judged_upto: 0,
        }
    }

    /// Space for the next read. Never empty.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// Bytes received so far, including those already dropped.
    pub fn position(&self) -> u64 {
        self.base + self.filled as u64
    }

    /// Offsets before this are judged: every finding still to come starts
    /// at or after it.
    pub fn settled(&self) -> u64 {
        self.judged_upto
    }

    /// Records that `n` bytes were written into [`Stream::spare`]; scans
    /// when the buffer is full.
    pub fn advance(&mut self, n: usize, out: &mut Vec<Finding>) {
        self.filled += n;
        debug_assert!(self.filled <= self.buf.len());
        if self.filled == self.buf.len() {
            self.scan(false, out);
            self.compact();
        }
    }

    /// Scans what is left and makes the stream ready for the next input.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        self.scan(true, out);
        self.reset();
    }

    /// Forgets the current input without scanning the rest of it.
    pub fn reset(&mut self) {
        self.filled = 0;
        self.base = 0;
        self.newlines_before_base = 0;
        self.chars_before_base = 0;
        self.judged_upto = 0;
    }

    fn scan(&mut self, at_end: bool, out: &mut Vec<Finding>) {
        let hay = &self.buf[..self.filled];
        let safe_end = if at_end {
            hay.len()
        } else {
            hay.len().saturating_sub(self.engine.max_span() + 1)
        };
        let mut lines = LineCursor::new(self.newlines_before_base, self.chars_before_base);
        let mut marker = MarkerCache::default();
        for c in self.engine.candidates(hay) {
            let abs = self.base + c.start as u64;
            if abs < self.judged_upto || c.start >= safe_end {
                continue;
            }
            let (line, column) = lines.advance(hay, c.start);
            let allowed = marker.line_has_marker(hay, lines.line_start, c.end);
            out.push(c.into_finding(self.engine, self.base, line, column, allowed));
        }
        self.judged_upto = self.base + safe_end as u64;
    }

    fn compact(&mut self) {
        let keep_from = self.filled - overlap(self.engine);
        let dropped = &self.buf[..keep_from];
        self.newlines_before_base += count_newlines(dropped);
        match memrchr(b'\n', dropped) {
            Some(nl) => self.chars_before_base = chars(&dropped[nl + 1..]),
            None => self.chars_before_base += chars(dropped),
        }
        self.buf.copy_within(keep_from..self.filled, 0);
        self.filled -= keep_from;
        self.base += keep_from as u64;
    }
}

/// Kept between chunks: one maximal finding, the byte before it, and the
/// few base64 characters that can precede a hit inside its group.
fn overlap(engine: &Engine) -> usize {
    engine.max_span() + 8
}

/// Line and column of positions that only move forward through one chunk.
struct LineCursor {
    pos: usize,
    newlines: u64,
    /// Where the current line starts in the chunk (0 when it began earlier).
    line_start: usize,
    /// Characters from the start of the line to `pos`.
    chars: u64,
}

impl LineCursor {
    fn new(newlines: u64, chars_before: u64) -> LineCursor {
        LineCursor {
            pos: 0,
            newlines,
            line_start: 0,
            chars: chars_before,
        }
    }

    /// 1-based line and column of `pos`, reading only the bytes since the
    /// previous position.
    fn advance(&mut self, hay: &[u8], pos: usize) -> (u64, u64) {
        if pos > self.pos {
            let stretch = &hay[self.pos..pos];
            match memrchr(b'\n', stretch) {
                Some(nl) => {
                    self.newlines += count_newlines(stretch);
                    self.line_start = self.pos + nl + 1;
                    self.chars = chars(&hay[self.line_start..pos]);
                }
                None => self.chars += chars(stretch),
            }
            self.pos = pos;
        }
        (self.newlines + 1, self.chars + 1)
    }
}

/// Whether the stretch of lines from a candidate's line start to the end
/// of the line holding its end carries the allow marker, remembered for the
/// candidates that follow on the same line.
#[derive(Default)]
struct MarkerCache {
    line: Option<MarkedLine>,
}

struct MarkedLine {
    start: usize,
    /// The end of the latest candidate on it, and of the line itself.
    last_end: usize,
    end: usize,
    has_marker: bool,
}

impl MarkerCache {
    fn line_has_marker(&mut self, hay: &[u8], line_start: usize, end: usize) -> bool {
        match &mut self.line {
            Some(line) if line.start == line_start && (line.last_end..=line.end).contains(&end) => {
                line.last_end = end;
                line.has_marker
            }
            _ => {
                let line_end = memchr(b'\n', &hay[end..]).map_or(hay.len(), |nl| end + nl);
                let has_marker = memmem::find(&hay[line_start..line_end], ALLOW_MARKER).is_some();
                self.line = Some(MarkedLine {
                    start: line_start,
                    last_end: end,
                    end: line_end,
                    has_marker,
                });
                has_marker
            }
        }
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Characters, not bytes: UTF-8 continuation bytes do not count.
pub(super) fn chars(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count() as u64
}

pub(super) fn line_has_marker(hay: &[u8], start: usize, end: usize) -> bool {
    let line_start = memrchr(b'\n', &hay[..start]).map_or(0, |nl| nl + 1);
    let line_end = memchr(b'\n', &hay[end..]).map_or(hay.len(), |nl| end + nl);
    memmem::find(&hay[line_start..line_end], ALLOW_MARKER).is_some()
}
