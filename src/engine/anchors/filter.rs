//! A one-pass test of every position against thousands of 4-byte windows.
//!
//! aho-corasick's SIMD prefilter (Teddy) takes at most 64 literals, and
//! past that its DFA walks one byte at a time: about 450 MB/s per core on
//! this project's rules (BENCHMARKS.md, "Rule count"). This filter keeps one
//! pass whatever the rule count: each 4-byte window of the input is hashed
//! (a multiply and a shift) into a table of 2^21 bits. A clear bit rules the
//! position out; a set bit is looked up exactly by the caller. The table's
//! size was measured: 256 KiB lives in the L2 cache, and with the shipped
//! rules' ~6,000 windows it passes 0.3% of positions by collision; 32 KiB
//! (L1) passed 2.4% and the exact lookups behind them cost more than the
//! cache misses saved. The AVX2 kernel tests 32 positions per step with
//! four loads one byte apart and four 8-lane gathers; a portable loop does
//! the same one position at a time. Both report the same positions (a test
//! compares them). An AVX-512 kernel (48 positions per step) measured no
//! faster, so there is none.
//!
//! This module holds the project's only `unsafe` code: the AVX2
//! intrinsics, behind a runtime CPU check.

/// log2 of the table's size in bits.
const BITS: u32 = 21;
const WORDS: usize = 1 << (BITS - 5);
/// Knuth's multiplicative hash: the top bits of `window * MULTIPLIER`
/// depend on every byte of the window.
const MULTIPLIER: u32 = 0x9E37_79B1;

/// The table's bit for a 4-byte window read little-endian.
#[inline(always)]
fn slot(window: u32) -> u32 {
    window.wrapping_mul(MULTIPLIER) >> (32 - BITS)
}

/// How positions are tested: chosen once from what the CPU offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Scalar,
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU runs, unless `KEYWARD_SCAN_KERNEL=scalar`
    /// asks for the portable one (for benchmarks and tests).
    pub fn detect() -> Kernel {
        match std::env::var("KEYWARD_SCAN_KERNEL").as_deref() {
            Ok("scalar") => Kernel::Scalar,
            _ if Kernel::Avx2.supported() => Kernel::Avx2,
            _ => Kernel::Scalar,
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
        }
    }
}

pub struct Filter {
    words: Box<[u32]>,
    kernel: Kernel,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set: u32 = self.words.iter().map(|w| w.count_ones()).sum();
        write!(f, "Filter({} kernel, {set} of {} bits set)", self.kernel.as_str(), WORDS * 32)
    }
}

impl Filter {
    /// A filter passing every window in `windows` (and, by collision, a
    /// few others), tested with `kernel`.
    pub fn new(windows: impl IntoIterator<Item = u32>, kernel: Kernel) -> Filter {
        assert!(kernel.supported(), "the {} kernel needs a CPU that has it", kernel.as_str());
        let mut words = vec![0u32; WORDS].into_boxed_slice();
        for window in windows {
            let bit = slot(window);
            words[(bit >> 5) as usize] |= 1 << (bit & 31);
        }
        Filter { words, kernel }
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Appends, in ascending order, every position `i` with `i + 4 <=
    /// hay.len()` whose window may be in the set.
    pub fn positions(&self, hay: &[u8], out: &mut Vec<usize>) {
        let done = match self.kernel {
            Kernel::Scalar => 0,
            // SAFETY: `Filter::new` asserted that this CPU has the kernel's
            // features.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { self.positions_avx2(hay, out) },
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx2 => 0,
        };
        self.positions_scalar(hay, done, out);
    }

    #[inline(always)]
    fn passes(&self, window: u32) -> bool {
        let bit = slot(window);
        self.words[(bit >> 5) as usize] >> (bit & 31) & 1 != 0
    }

    fn positions_scalar(&self, hay: &[u8], from: usize, out: &mut Vec<usize>) {
        let Some(last) = hay.len().checked_sub(4) else { return };
        for (i, w) in hay[from.min(hay.len())..].windows(4).enumerate() {
            if self.passes(u32::from_le_bytes([w[0], w[1], w[2], w[3]])) {
                out.push(from + i);
            }
        }
        debug_assert!(out.last().is_none_or(|&p| p <= last));
    }

    /// Tests positions 32 at a time (four loads one byte apart, eight
    /// windows each) while the loads fit, and returns where it stopped.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn positions_avx2(&self, hay: &[u8], out: &mut Vec<usize>) -> usize {
        use std::arch::x86_64::*;
        let table = self.words.as_ptr().cast::<i32>();
        let mut i = 0;
        while i + 35 <= hay.len() {
            let at = |k: usize| _mm256_loadu_si256(hay.as_ptr().add(i + k).cast());
            let masks = [
                test_avx2(at(0), table),
                test_avx2(at(1), table),
                test_avx2(at(2), table),
                test_avx2(at(3), table),
            ];
            if masks != [0; 4] {
                // Lane k of load j is position 4k + j.
                let found = masks
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (j, &m)| acc | u64::from(spread_nibbles(m)) << j);
                push_bits(found, i, out);
            }
            i += 32;
        }
        i
    }
}

/// The 8 lanes' bits in the table at `table`, as a mask: each bit is moved
/// to its lane's sign for a movemask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn test_avx2(windows: std::arch::x86_64::__m256i, table: *const i32) -> u32 {
    use std::arch::x86_64::*;
    let low5 = _mm256_set1_epi32(31);
    let bit = _mm256_srli_epi32::<{ 32 - BITS as i32 }>(_mm256_mullo_epi32(windows, _mm256_set1_epi32(MULTIPLIER as i32)));
    let words = _mm256_i32gather_epi32::<4>(table, _mm256_srli_epi32::<5>(bit));
    let signed = _mm256_sllv_epi32(words, _mm256_sub_epi32(low5, _mm256_and_si256(bit, low5)));
    _mm256_movemask_ps(_mm256_castsi256_ps(signed)) as u32
}

/// Positions `base + b` for each set bit `b`, lowest first.
#[inline(always)]
fn push_bits(mut bits: u64, base: usize, out: &mut Vec<usize>) {
    while bits != 0 {
        out.push(base + bits.trailing_zeros() as usize);
        bits &= bits - 1;
    }
}

/// Bit k of an 8-bit mask moved to bit 4k.
#[inline(always)]
fn spread_nibbles(mask: u32) -> u32 {
    (0..8).fold(0, |acc, k| acc | (mask >> k & 1) << (4 * k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows_of(literals: &[&[u8]]) -> Vec<u32> {
        literals.iter().map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]])).collect()
    }

    fn every_kernel() -> Vec<Kernel> {
        [Kernel::Scalar, Kernel::Avx2].into_iter().filter(|k| k.supported()).collect()
    }

    #[test]
    fn a_window_in_the_set_always_passes_at_every_offset() {
        let windows = windows_of(&[b"ghp_", b"xoxb", b"AKIA"]);
        for kernel in every_kernel() {
            let filter = Filter::new(windows.iter().copied(), kernel);
            for offset in 0..150 {
                let mut hay = vec![b' '; 200];
                hay[offset..offset + 4].copy_from_slice(b"xoxb");
                let mut out = Vec::new();
                filter.positions(&hay, &mut out);
                assert!(out.contains(&offset), "{kernel:?} missed offset {offset}: {out:?}");
                assert!(out.iter().all(|&p| p + 4 <= hay.len()));
            }
        }
    }

    #[test]
    fn every_kernel_reports_the_same_positions() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Dense enough that about one position in nine passes.
        let windows: Vec<u32> = (0..250_000).map(|_| rng.gen()).collect();
        for len in [0usize, 3, 4, 5, 34, 35, 36, 63, 64, 65, 111, 112, 113, 1000, 4099] {
            let hay: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let mut expected = Vec::new();
            Filter::new(windows.iter().copied(), Kernel::Scalar).positions(&hay, &mut expected);
            for kernel in every_kernel() {
                let mut out = Vec::new();
                Filter::new(windows.iter().copied(), kernel).positions(&hay, &mut out);
                assert_eq!(out, expected, "{kernel:?} on {len} bytes");
            }
        }
    }

    #[test]
    fn spreading_puts_bit_k_at_4k() {
        assert_eq!(spread_nibbles(0b1000_0101), 1 | 1 << 8 | 1 << 28);
    }
}
