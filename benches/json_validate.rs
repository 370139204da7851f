//! The check that a decrypted resource is JSON: the crate's allocation-free validator against
//! serde_json's own pass (`IgnoredAny`), on the same inputs. It decides which one the decrypt
//! core uses (BENCHMARKS.md, "Checking that plaintext is JSON").
//!
//! ```text
//! cargo bench --bench json_validate -- --warm-up-time 1 --measurement-time 3
//! ```

#[allow(dead_code, unused_imports)] // only `validate` and the depth scan are measured here
#[path = "../src/json.rs"]
mod json;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::de::IgnoredAny;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models");

fn inputs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["reactions", "chat-meeting", "mentions"] {
        let text = std::fs::read_to_string(format!("{DIR}/{name}.json")).unwrap();
        out.push((name.to_string(), text));
    }
    // A large message: a 1 MiB HTML body with escapes, as a long pasted message would be.
    let body = "<p>caf\\u00e9 \\\"quoted\\\" text</p>".repeat(1 << 15);
    out.push((
        "1MiB-body".to_string(),
        format!(r#"{{"id":"1","messageType":"message","body":{{"contentType":"html","content":"{body}"}},"mentions":[]}}"#),
    ));
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("plaintext_is_json");
    for (name, text) in inputs() {
        assert!(json::validate(&text).is_ok(), "{name}");
        assert!(serde_json::from_str::<IgnoredAny>(&text).is_ok(), "{name}");
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::new("crate_validate", &name), &text, |b, t| {
            b.iter(|| json::validate(std::hint::black_box(t)).is_ok())
        });
        g.bench_with_input(
            BenchmarkId::new("serde_ignored_any", &name),
            &text,
            |b, t| b.iter(|| serde_json::from_str::<IgnoredAny>(std::hint::black_box(t)).is_ok()),
        );
        // serde_json skips without a depth limit: the same rule as the crate's validator needs
        // the depth scan as well.
        g.bench_with_input(
            BenchmarkId::new("serde_ignored_any_and_depth", &name),
            &text,
            |b, t| {
                b.iter(|| {
                    let t = std::hint::black_box(t);
                    serde_json::from_str::<IgnoredAny>(t).is_ok()
                        && !json::nests_deeper_than(t.as_bytes(), 127)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
