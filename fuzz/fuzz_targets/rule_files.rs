//! Rule files from arbitrary text: a rule set must accept or refuse them
//! with an error, never panic, and an engine built from what it accepts
//! must scan the rule's own examples without panicking.
#![no_main]

use keyward::engine::{Engine, EngineOptions, RuleSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut rules = RuleSet::default();
    if rules.add_toml("fuzz.toml", text).is_err() {
        return;
    }
    let Ok(engine) = Engine::new(rules, EngineOptions { all_candidates: true }) else {
        return;
    };
    for rule in engine.rules().rules() {
        for sample in rule.examples.iter().chain(&rule.negatives) {
            for f in engine.scan_bytes(sample.as_bytes()) {
                assert!(f.end as usize <= sample.len());
            }
        }
    }
});
