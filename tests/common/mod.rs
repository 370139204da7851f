//! Fixture access shared by the integration tests.
#![allow(dead_code)]

#[cfg(feature = "rust-crypto")]
pub mod mint;
#[cfg(feature = "rust-crypto")]
pub mod seal;

use std::path::PathBuf;

#[cfg(feature = "rust-crypto")]
use graph_chat_notifications::{
    crypto::{CryptoProvider, DecryptBuffer, KeyStore, PrivateKey},
    inbound::{Payload, Receiver},
    ItemError,
};

mod example;
#[allow(unused_imports)] // not every test binary runs an example
pub use example::example_path;

pub const CLIENT_STATE: &str = "secretClientState";

/// The crypto provider the conformance suites run against: the crate's default (AWS-LC with the
/// default features), or `GCN_PROVIDER=aws-lc` / `GCN_PROVIDER=rust-crypto`. `.ci/run` runs the
/// suites with each.
#[cfg(feature = "rust-crypto")]
pub fn provider() -> &'static CryptoProvider {
    match std::env::var("GCN_PROVIDER").as_deref() {
        #[cfg(feature = "aws-lc")]
        Ok("aws-lc") => &graph_chat_notifications::crypto::AWS_LC,
        Ok("rust-crypto") => &graph_chat_notifications::crypto::RUST_CRYPTO,
        Err(_) => graph_chat_notifications::crypto::default_provider(),
        Ok(other) => panic!("GCN_PROVIDER={other}: not a provider compiled in"),
    }
}

/// An empty key store on [`provider`].
#[cfg(feature = "rust-crypto")]
pub fn store() -> KeyStore {
    KeyStore::with_provider(provider())
}

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[cfg(feature = "rust-crypto")]
pub fn key(bits: u32, file: &str) -> PrivateKey {
    PrivateKey::from_bytes(&read(&format!("keys/rsa{bits}/{file}"))).unwrap()
}

#[cfg(feature = "rust-crypto")]
/// A store with the PKCS#8 PEM key of every fixture size, under the ids the batches use.
pub fn all_keys() -> KeyStore {
    let mut keys = store();
    for bits in [2048, 3072, 4096] {
        keys.insert(format!("graphsim-rsa{bits}"), key(bits, "key.pkcs8.pem"))
            .unwrap();
    }
    keys
}

#[cfg(feature = "rust-crypto")]
/// A receiver for the decryption tests, which carry no validation tokens (the token tests
/// build their own).
pub fn receiver(keys: KeyStore) -> Receiver {
    Receiver::builder()
        .keys(keys)
        .client_state(CLIENT_STATE)
        .dangerous_skip_token_validation()
        .build()
        .unwrap()
}

/// (plaintext file, certificate id) for each item of a fixture batch.
pub fn manifest(batch: &str) -> Vec<(String, String)> {
    let m: serde_json::Value = serde_json::from_slice(&read("batches/manifest.json")).unwrap();
    m[batch]
        .as_array()
        .unwrap_or_else(|| panic!("{batch} not in manifest"))
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn plaintext(name: &str) -> String {
    String::from_utf8(read(&format!("plaintexts/{name}"))).unwrap()
}

#[cfg(feature = "rust-crypto")]
/// Opens every notification of `body`: the decrypted resource of each (other payloads rendered
/// as `resourceData:<json>` or `lifecycle:<event>`), or its error.
pub fn open_all(receiver: &Receiver, body: &[u8]) -> Vec<Result<String, ItemError>> {
    let batch = receiver
        .receive(body, std::time::SystemTime::now())
        .expect("body accepted");
    let mut buf = DecryptBuffer::new();
    (0..batch.len())
        .map(|i| match batch.open(i, &mut buf)?.payload {
            Payload::Decrypted(json) => Ok(json.to_string()),
            Payload::ResourceData(raw) => Ok(format!(
                "resourceData:{}",
                raw.as_deref().map_or("null", |r| r.get())
            )),
            Payload::Lifecycle(event) => Ok(format!("lifecycle:{}", event.as_str())),
            other => panic!("unexpected payload {other:?}"),
        })
        .collect()
}

#[cfg(feature = "rust-crypto")]
/// Receives the fixture batch `batches/{batch}` with `keys` and opens it with
/// [`Batch::open_each`](graph_chat_notifications::inbound::Batch::open_each): every item must
/// name the certificate the manifest records for it and decrypt to its recorded plaintext, byte
/// for byte.
pub fn assert_batch(batch: &str, keys: KeyStore) {
    let receiver = receiver(keys);
    let body = read(&format!("batches/{batch}"));
    let expected = manifest(batch);
    let received = receiver
        .receive(&body, std::time::SystemTime::now())
        .unwrap_or_else(|e| panic!("{batch}: {e}"));
    assert_eq!(received.len(), expected.len(), "{batch}");
    let mut opened = 0;
    received.open_each(&mut DecryptBuffer::new(), |result| {
        let (name, cert_id) = &expected[opened];
        let item = result.unwrap_or_else(|e| panic!("{batch}[{opened}] {name}: {e}"));
        assert_eq!(item.notification.index, opened, "{batch}[{opened}]");
        let sent_id = item
            .notification
            .encrypted_content
            .as_ref()
            .map(|c| c.encryption_certificate_id.as_ref());
        assert_eq!(sent_id, Some(cert_id.as_str()), "{batch}[{opened}] {name}");
        match &item.payload {
            Payload::Decrypted(json) => {
                let want = read(&format!("plaintexts/{name}"));
                if json.as_bytes() != want.as_slice() {
                    let at = json
                        .bytes()
                        .zip(&want)
                        .position(|(a, b)| a != *b)
                        .unwrap_or(json.len().min(want.len()));
                    panic!(
                        "{batch}[{opened}]: {} bytes, plaintexts/{name} {}; first difference at byte {at}",
                        json.len(),
                        want.len()
                    );
                }
            }
            other => panic!("{batch}[{opened}] {name}: {other:?}"),
        }
        opened += 1;
    });
    assert_eq!(opened, expected.len(), "{batch}");
}

/// The Microsoft SDK vector wrapped in a notification collection of one item.
pub fn vector_body() -> Vec<u8> {
    let ec: serde_json::Value = serde_json::from_slice(&read(
        "vectors/dotnet-core-chatmessage/encryptedContent.json",
    ))
    .unwrap();
    serde_json::to_vec(&serde_json::json!({"value": [{
        "subscriptionId": "0d4c6a4e-0000-0000-0000-000000000000",
        "changeType": "created",
        "clientState": CLIENT_STATE,
        "resource": "teams('79852646-8963-4d32-95f1-e0c5237d37fa')/channels('19:etTE40ziboDEfQ1v0B96_nCVjGUsZ77LQa5KRb0cukQ1@thread.tacv2')/messages('1625067617497')/replies('1625126194597')",
        "encryptedContent": ec,
    }]}))
    .unwrap()
}
