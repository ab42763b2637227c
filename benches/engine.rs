//! Engine throughput on in-memory input: source-like text with a few
//! planted tokens, and the same text inside base64.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyward::engine::{Engine, EngineOptions, RuleSet};

const GHP: &str = "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";

fn source_like(bytes: usize) -> Vec<u8> {
    let lines = [
        "    let requestId = \"EFDF261FEeE53F51\";\n",
        "def handler(request, context):\n",
        "        return self.client.get(url, params=params, timeout=30)\n",
        "    # Parse the SK_OPTIONS and AKIA-like config values from the environment.\n",
        "import { createServer } from 'node:http'; // https://example.com/docs\n",
        "    match_items = in(async, 7653)\n",
    ];
    let mut out = Vec::with_capacity(bytes);
    let mut i = 0usize;
    while out.len() < bytes {
        out.extend_from_slice(lines[i % lines.len()].as_bytes());
        if i % 5000 == 0 {
            out.extend_from_slice(format!("TOKEN={GHP}\n").as_bytes());
        }
        i = i.wrapping_mul(31).wrapping_add(7) % 1_000_003;
    }
    out
}

fn bench(c: &mut Criterion) {
    let engine = Engine::new(RuleSet::builtin(), EngineOptions::default()).unwrap();
    let text = source_like(16 << 20);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(10);
    group.bench_function("source_16MiB", |b| b.iter(|| engine.scan_bytes(&text).len()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
