//! The engine on arbitrary bytes, streamed in arbitrary chunks and reads:
//! it must not panic, every finding must lie inside the input, and the
//! findings must equal those of the brute-force reference matcher.
#![no_main]

use std::sync::OnceLock;

use keyward::engine::{comparable, Engine, EngineOptions, RuleSet};
use libfuzzer_sys::fuzz_target;

fn engines() -> &'static [Engine; 2] {
    static ENGINES: OnceLock<[Engine; 2]> = OnceLock::new();
    ENGINES.get_or_init(|| {
        [false, true].map(|all| Engine::new(RuleSet::builtin(), EngineOptions { all_candidates: all }).expect("built-in rules build"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&[knobs, chunk, read], input)) = data.split_first_chunk::<3>() else {
        return;
    };
    let engine = &engines()[usize::from(knobs & 1)];
    let chunk = 1 + usize::from(chunk) * 4;
    let read = 1 + usize::from(read);
    let fast = engine.scan_in_reads(input, chunk, read);
    for f in &fast {
        assert!(
            f.start < f.end && f.end as usize <= input.len(),
            "finding outside the input: {}..{}",
            f.start,
            f.end
        );
    }
    let slow = engine.reference_scan(input);
    assert_eq!(comparable(&fast), comparable(&slow), "streamed with chunk {chunk}, read {read}");
});
