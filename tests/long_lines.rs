//! Thousands of candidates on one line cost what they cost one per line:
//! line, column and allow marker are tracked as the scan moves along a
//! line, never re-read from its start for each candidate. A ratio of the
//! two shapes in the same run, not a wall-clock bound (BENCHMARKS.md has
//! the release figures).

use std::time::{Duration, Instant};

use keyward::engine::{Engine, EngineOptions, RuleSet};

/// `n` distinct AWS access key ids, 20 characters each.
fn key_ids(n: usize) -> Vec<String> {
    const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            let body: String = (0..16)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    CHARSET[(state >> 59) as usize] as char
                })
                .collect();
            format!("AKIA{body}")
        })
        .collect()
}

/// The median of three scans of `input`, and the findings of the last.
fn timed(engine: &Engine, input: &[u8]) -> (Duration, Vec<keyward::engine::Finding>) {
    let mut times = Vec::new();
    let mut findings = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        findings = engine.scan_bytes(input);
        times.push(started.elapsed());
    }
    times.sort();
    (times[1], findings)
}

#[test]
fn candidates_on_one_long_line_cost_what_they_cost_one_per_line() {
    const N: usize = 10_000;
    let engine = Engine::new(RuleSet::builtin(), EngineOptions::default()).unwrap();
    let ids = key_ids(N);
    let per_line = ids.join("\n");
    let one_line = format!("{} # keyward:allow", ids.join(" "));
    let (spread, found_spread) = timed(&engine, per_line.as_bytes());
    let (packed, found_packed) = timed(&engine, one_line.as_bytes());
    eprintln!("{N} key ids: one per line {spread:?}, on one line {packed:?}");
    assert_eq!((found_spread.len(), found_packed.len()), (N, N));
    for (i, f) in found_packed.iter().enumerate() {
        assert_eq!((f.line, f.column, f.allowed), (1, 1 + 21 * i as u64, true), "candidate {i}");
    }
    assert!(found_spread
        .iter()
        .enumerate()
        .all(|(i, f)| f.line == 1 + i as u64 && f.column == 1 && !f.allowed));
    // Quadratic rescans made this 30x; a 4x bound leaves room for noise.
    assert!(
        packed <= spread * 4 + Duration::from_millis(50),
        "one line took {packed:?}, one per line {spread:?}"
    );
}
