//! Feeding the engine input of any size in fixed chunks, with flat memory.
//!
//! The caller reads straight into [`Stream::spare`] and reports how much
//! arrived; when the buffer is full it is scanned and all but an overlap
//! of one finding's maximum span is dropped. A candidate that starts too
//! close to the end of a chunk to be judged is left for the next round,
//! where it is seen whole. Line numbers are kept by counting the newlines
//! of every dropped stretch.

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
    last_newline_before_base: Option<u64>,
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
            last_newline_before_base: None,
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
        self.last_newline_before_base = None;
        self.judged_upto = 0;
    }

    fn scan(&mut self, at_end: bool, out: &mut Vec<Finding>) {
        let hay = &self.buf[..self.filled];
        let safe_end = if at_end {
            hay.len()
        } else {
            hay.len().saturating_sub(self.engine.max_span() + 1)
        };
        let mut lines = LineCursor {
            pos: 0,
            newlines: self.newlines_before_base,
        };
        for c in self.engine.candidates(hay) {
            let abs = self.base + c.start as u64;
            if abs < self.judged_upto || c.start >= safe_end {
                continue;
            }
            let line = lines.line_at(hay, c.start);
            let column = self.column_at(hay, c.start);
            let allowed = line_has_marker(hay, c.start, c.end);
            out.push(c.into_finding(self.engine, self.base, line, column, allowed));
        }
        self.judged_upto = self.base + safe_end as u64;
    }

    fn column_at(&self, hay: &[u8], pos: usize) -> u64 {
        match memrchr(b'\n', &hay[..pos]) {
            Some(nl) => chars(&hay[nl + 1..pos]) + 1,
            None => {
                let before = match self.last_newline_before_base {
                    Some(nl) => self.base - nl - 1,
                    None => self.base,
                };
                before + chars(&hay[..pos]) + 1
            }
        }
    }

    fn compact(&mut self) {
        let keep_from = self.filled - overlap(self.engine);
        let dropped = &self.buf[..keep_from];
        self.newlines_before_base += count_newlines(dropped);
        if let Some(nl) = memrchr(b'\n', dropped) {
            self.last_newline_before_base = Some(self.base + nl as u64);
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

struct LineCursor {
    pos: usize,
    newlines: u64,
}

impl LineCursor {
    /// 1-based line of `pos`; positions must not go backwards.
    fn line_at(&mut self, hay: &[u8], pos: usize) -> u64 {
        if pos > self.pos {
            self.newlines += count_newlines(&hay[self.pos..pos]);
            self.pos = pos;
        }
        self.newlines + 1
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
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
