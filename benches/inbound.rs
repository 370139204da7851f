//! The inbound path, piece by piece and whole, on each crypto provider.
//!
//! ```text
//! cargo bench --bench inbound --features aws-lc
//! ```

use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use graph_chat_notifications::crypto::{
    CryptoProvider, DecryptBuffer, KeyStore, PrivateKey, RUST_CRYPTO,
};
use graph_chat_notifications::inbound::{Envelope, Limits, Receiver};
use graph_chat_notifications::model::{decode, IntoOwned as _, ResourceKind};
use graph_chat_notifications::tokens::TokenValidator;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{path}")).unwrap()
}

fn providers() -> Vec<&'static CryptoProvider> {
    #[allow(unused_mut)] // without the aws-lc feature there is nothing to add
    let mut p = vec![&RUST_CRYPTO];
    #[cfg(feature = "aws-lc")]
    p.push(&graph_chat_notifications::crypto::AWS_LC);
    p
}

fn receiver(provider: &'static CryptoProvider, bits: u32) -> Receiver {
    let key = PrivateKey::from_bytes(&read(&format!("keys/rsa{bits}/key.pkcs8.pem"))).unwrap();
    Receiver::builder()
        .keys(
            KeyStore::with_provider(provider)
                .with_key(format!("graphsim-rsa{bits}"), key)
                .unwrap(),
        )
        .client_state("secretClientState")
        .dangerous_skip_token_validation()
        .build()
        .unwrap()
}

/// The first notification of a fixture batch (a small chat), alone in a body.
fn single(bits: u32) -> Vec<u8> {
    let batch: serde_json::Value =
        serde_json::from_slice(&read(&format!("batches/rsa{bits}.json"))).unwrap();
    serde_json::to_vec(&serde_json::json!({"value": [batch["value"][0]]})).unwrap()
}

fn envelope_parse(c: &mut Criterion) {
    let body = read("batches/rsa2048.json");
    let mut g = c.benchmark_group("envelope_parse");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("11 notifications", |b| {
        b.iter(|| Envelope::parse(&body, &Limits::default()).unwrap().len())
    });
    g.finish();
}

fn decrypt_one(c: &mut Criterion) {
    let mut g = c.benchmark_group("decrypt_one");
    for provider in providers() {
        for bits in [2048, 3072, 4096] {
            let r = receiver(provider, bits);
            let body = single(bits);
            let batch = r.receive(&body, UNIX_EPOCH).unwrap();
            let mut buf = DecryptBuffer::new();
            g.bench_with_input(BenchmarkId::new(provider.name, bits), &bits, |b, _| {
                b.iter(|| {
                    batch
                        .open(0, &mut buf)
                        .unwrap()
                        .payload
                        .clone()
                        .into_owned()
                })
            });
        }
    }
    g.finish();
}

/// The RSA-OAEP unwrap alone: the floor of the per-notification cost on each provider.
fn rsa_unwrap(c: &mut Criterion) {
    use base64::Engine as _;
    let mut g = c.benchmark_group("rsa_unwrap");
    for provider in providers() {
        for bits in [2048, 3072, 4096] {
            let key =
                PrivateKey::from_bytes(&read(&format!("keys/rsa{bits}/key.pkcs8.pem"))).unwrap();
            let loaded = (provider.load_rsa_private_key)(&key).unwrap();
            let batch: serde_json::Value =
                serde_json::from_slice(&read(&format!("batches/rsa{bits}.json"))).unwrap();
            let wrapped = base64::engine::general_purpose::STANDARD
                .decode(
                    batch["value"][0]["encryptedContent"]["dataKey"]
                        .as_str()
                        .unwrap(),
                )
                .unwrap();
            let mut out = [0u8; 32];
            g.bench_with_input(BenchmarkId::new(provider.name, bits), &bits, |b, _| {
                b.iter(|| loaded.unwrap_key(&wrapped, &mut out).unwrap())
            });
        }
    }
    g.finish();
}

fn whole_batch(c: &mut Criterion) {
    let body = read("batches/rsa2048.json");
    let mut g = c.benchmark_group("whole_batch_rsa2048");
    g.throughput(Throughput::Elements(11));
    for provider in providers() {
        let r = receiver(provider, 2048);
        let mut buf = DecryptBuffer::new();
        g.bench_function(provider.name, |b| {
            b.iter(|| {
                let batch = r.receive(&body, UNIX_EPOCH).unwrap();
                (0..batch.len())
                    .filter(|&i| batch.open(i, &mut buf).is_ok())
                    .count()
            })
        });
    }
    g.finish();
}

fn token_validation(c: &mut Criterion) {
    let token = String::from_utf8(read("tokens/v1.jwt")).unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut g = c.benchmark_group("token_validation");
    for provider in providers() {
        let v = TokenValidator::with_provider(
            provider,
            ["11111111-2222-3333-4444-555555555555"],
            ["4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1"],
        );
        v.update_jwks(&read("tokens/jwks.json"), std::time::SystemTime::now())
            .unwrap();
        // Graph reuses a token across batches: the repeat is a cache lookup.
        g.bench_function(format!("{} repeated (cached)", provider.name), |b| {
            b.iter(|| v.validate(&token, now).unwrap())
        });
        let uncached = TokenValidator::with_provider(
            provider,
            ["11111111-2222-3333-4444-555555555555"],
            ["4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1"],
        )
        .token_cache_capacity(0);
        uncached
            .update_jwks(&read("tokens/jwks.json"), std::time::SystemTime::now())
            .unwrap();
        g.bench_function(format!("{} first use (RS256)", provider.name), |b| {
            b.iter(|| uncached.validate(&token, now).unwrap())
        });
    }
    g.finish();
}

fn typed_decoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("typed_decoding");
    for (name, kind) in [
        ("message-html.json", ResourceKind::ChatMessage),
        ("message-large.json", ResourceKind::ChatMessage),
        ("chat-group-members.json", ResourceKind::Chat),
    ] {
        let text = String::from_utf8(read(&format!("plaintexts/{name}"))).unwrap();
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(name, |b| b.iter(|| decode(&text, Some(kind)).unwrap()));
    }
    g.finish();
}

criterion_group!(
    benches,
    envelope_parse,
    rsa_unwrap,
    decrypt_one,
    whole_batch,
    token_validation,
    typed_decoding
);
criterion_main!(benches);
