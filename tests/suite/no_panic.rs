//! Arbitrary bytes never panic a public entry point: each returns a value or a typed error.
#![cfg(feature = "rust-crypto")]

use crate::common;

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use crate::common::*;
use graph_chat_notifications::crypto::{Certificate, DecryptBuffer, PrivateKey};
use graph_chat_notifications::inbound::{handshake, Envelope, Limits, Receiver};
use graph_chat_notifications::model::{decode, parse_time, ResourceKind, ResourcePath};
use graph_chat_notifications::outbound::Subscription;
use graph_chat_notifications::tokens::TokenValidator;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn fixtures() -> &'static (Receiver, TokenValidator) {
    static F: OnceLock<(Receiver, TokenValidator)> = OnceLock::new();
    F.get_or_init(|| {
        let v =
            TokenValidator::with_provider(provider(), [common::mint::APP], [common::mint::TENANT]);
        v.update_jwks(&read("tokens/jwks.json"), std::time::SystemTime::now())
            .unwrap();
        (receiver(all_keys()), v)
    })
}

/// Bytes that are often almost valid: pieces of real fixtures, spliced and mutated.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = [
        "batches/pascal-case.json",
        "tokens/v1.jwt",
        "tokens/jwks.json",
        "plaintexts/message-text.json",
        "models/system-members-added.json",
        "keys/rsa2048/key.pkcs8.pem",
        "keys/rsa2048/cert.der",
    ]
    .iter()
    .map(|p| read(p))
    .collect();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        (
            0..seeds.len(),
            any::<usize>(),
            any::<usize>(),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)
        )
            .prop_map(move |(s, a, b, flips)| {
                let seed = &seeds[s];
                let (a, b) = (a % (seed.len() + 1), b % (seed.len() + 1));
                let mut v = seed[a.min(b)..a.max(b)].to_vec();
                for (at, byte) in flips {
                    if !v.is_empty() {
                        let i = at % v.len();
                        v[i] = byte;
                    }
                }
                v
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))), .. ProptestConfig::default() })]

    #[test]
    fn no_entry_point_panics(data in bytes()) {
        let (receiver, validator) = fixtures();
        let text = String::from_utf8_lossy(&data);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);

        let _ = Envelope::parse(&data, &Limits::default());
        if let Ok(batch) = receiver.receive(&data, now) {
            let mut buf = DecryptBuffer::new();
            for i in 0..batch.len() {
                if let Ok(o) = batch.open(i, &mut buf) {
                    let _ = o.decode();
                }
            }
        }
        let _ = PrivateKey::from_bytes(&data);
        let _ = Certificate::from_bytes(&data);
        #[cfg(feature = "pkcs12")]
        let _ = PrivateKey::from_pkcs12(&data, "x");
        let _ = validator.validate(&text, now);
        let _ = validator.update_jwks(&data, std::time::SystemTime::now());
        let _ = handshake(&text);
        let _ = decode(&text, None);
        let _ = decode(&text, Some(ResourceKind::Chat));
        let _ = ResourcePath::parse(&text);
        let _ = Subscription::from_json(&data);
        let _ = parse_time(&text);
    }
}
