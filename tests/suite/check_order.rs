//! The order of the checks, seen through a crypto provider that counts what the crate asks of
//! it. Refusals that end in the same error kind whatever the order (a bad signature is
//! `Decrypt` before or after AES) are told apart here by the work done before them:
//!
//! * no AES-256-CBC for an item whose HMAC fails, and no HMAC for one whose RSA unwrap fails;
//! * no RSA private-key operation (nor HMAC, nor AES) for an item refused by a check that needs
//!   no secret: certificate id, thumbprint, base64, lengths, size;
//! * none for an item refused for its `clientState` or its tenant, and none for a body refused
//!   at the token stage (after the RS256 check that refused it).
//!
//! The counters are per thread: every test opens its batches on its own thread (the crate
//! starts none), so tests running in parallel do not see each other's calls.
#![cfg(feature = "rust-crypto")]

use std::cell::Cell;
use std::sync::LazyLock;

use crate::common::mint::{self, Minter, APP, TENANT};
use crate::common::seal::{notification, Seal};
use crate::common::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use graph_chat_notifications::crypto::{
    CryptoFailure, CryptoProvider, DecryptBuffer, KeyStore, PrivateKey, Rs256PublicKey,
    RsaOaepSha1Key,
};
use graph_chat_notifications::inbound::{Limits, Receiver};
use graph_chat_notifications::testing::{encrypt_with, Encryption, Recipient};
use graph_chat_notifications::tokens::{TokenError, TokenValidator};
use graph_chat_notifications::{BodyError, ItemError, ItemErrorKind, KeyError};
use serde_json::{json, Map, Value};

/// Calls into the provider's primitives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Calls {
    /// RSA-OAEP unwraps of a `dataKey`: the private-key operation.
    rsa_unwraps: usize,
    hmacs: usize,
    aes_decrypts: usize,
    /// RS256 signature checks of validation tokens.
    rs256_verifies: usize,
}

thread_local! {
    static CALLS: Cell<Calls> = const {
        Cell::new(Calls { rsa_unwraps: 0, hmacs: 0, aes_decrypts: 0, rs256_verifies: 0 })
    };
}

fn bump(count: fn(&mut Calls)) {
    CALLS.with(|c| {
        let mut calls = c.get();
        count(&mut calls);
        c.set(calls);
    });
}

/// What `f` asked of the counting provider on this thread.
fn counted<T>(f: impl FnOnce() -> T) -> (T, Calls) {
    CALLS.with(|c| c.set(Calls::default()));
    let out = f();
    (out, CALLS.with(Cell::get))
}

struct CountingRsa(Box<dyn RsaOaepSha1Key>);

impl RsaOaepSha1Key for CountingRsa {
    fn unwrap_key(&self, ciphertext: &[u8], out: &mut [u8; 32]) -> Result<(), CryptoFailure> {
        bump(|c| c.rsa_unwraps += 1);
        self.0.unwrap_key(ciphertext, out)
    }
}

struct CountingRs256(Box<dyn Rs256PublicKey>);

impl Rs256PublicKey for CountingRs256 {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        bump(|c| c.rs256_verifies += 1);
        self.0.verify(message, signature)
    }
}

// Each primitive is the suite's provider's (`GCN_PROVIDER`), counted.

fn load_rsa(key: &PrivateKey) -> Result<Box<dyn RsaOaepSha1Key>, KeyError> {
    Ok(Box::new(CountingRsa((provider().load_rsa_private_key)(
        key,
    )?)))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    bump(|c| c.hmacs += 1);
    (provider().hmac_sha256)(key, message)
}

fn aes256_cbc_decrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    buf: &mut [u8],
) -> Result<usize, CryptoFailure> {
    bump(|c| c.aes_decrypts += 1);
    (provider().aes256_cbc_decrypt)(key, iv, buf)
}

fn load_rs256(modulus: &[u8], exponent: &[u8]) -> Result<Box<dyn Rs256PublicKey>, KeyError> {
    Ok(Box::new(CountingRs256((provider().load_rs256_public_key)(
        modulus, exponent,
    )?)))
}

static COUNTING: LazyLock<CryptoProvider> = LazyLock::new(|| {
    provider()
        .with_name("counting")
        .with_rsa_private_key_loader(load_rsa)
        .with_hmac_sha256(hmac_sha256)
        .with_aes256_cbc_decrypt(aes256_cbc_decrypt)
        .with_rs256_public_key_loader(load_rs256)
});

const ID: &str = "graphsim-rsa2048";
const GOOD: &str = r#"{"id":"1","body":{"content":"hello"}}"#;

/// The 2048-bit fixture key with its certificate (so the thumbprint is checked), on the
/// counting provider.
fn counting_keys() -> KeyStore {
    KeyStore::with_provider(&COUNTING)
        .with_key(ID, key(2048, "key-and-cert.pem"))
        .unwrap()
}

fn receiver_with(limits: Limits) -> Receiver {
    Receiver::builder()
        .keys(counting_keys())
        .client_state(CLIENT_STATE)
        .dangerous_skip_token_validation()
        .limits(limits)
        .build()
        .unwrap()
}

fn item(plaintext: &[u8]) -> Value {
    notification(Seal::new(&read("keys/rsa2048/cert.der"), ID).encrypt(plaintext))
}

fn with_content(mutate: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut item = item(GOOD.as_bytes());
    mutate(item["encryptedContent"].as_object_mut().unwrap());
    item
}

/// Base64 `field` of `content` decoded, changed by `change`, and encoded again.
fn rewrite(content: &mut Map<String, Value>, field: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = B64.decode(content[field].as_str().unwrap()).unwrap();
    change(&mut bytes);
    content.insert(field.into(), B64.encode(bytes).into());
}

/// Opens the one notification of a batch holding `item`, counting the provider calls.
fn open_one(receiver: &Receiver, item: Value) -> (Result<String, ItemError>, Calls) {
    let body = serde_json::to_vec(&json!({ "value": [item] })).unwrap();
    let batch = receiver
        .receive(&body, std::time::SystemTime::now())
        .unwrap();
    let mut buf = DecryptBuffer::new();
    let mut result = None;
    let ((), calls) = counted(|| {
        batch.open_each(&mut buf, |r| {
            result = Some(r.map(|opened| format!("{:?}", opened.payload)));
        })
    });
    (result.expect("one notification"), calls)
}

/// The control: without it, a provider the crate did not call would pass every test below.
#[test]
fn a_good_item_takes_each_step_once() {
    let (result, calls) = open_one(&receiver_with(Limits::default()), item(GOOD.as_bytes()));
    assert_eq!(
        result.unwrap(),
        format!("Decrypted([{} bytes])", GOOD.len())
    );
    assert_eq!(
        calls,
        Calls {
            rsa_unwraps: 1,
            hmacs: 1,
            aes_decrypts: 1,
            rs256_verifies: 0
        }
    );
}

#[test]
fn a_failed_signature_stops_before_aes() {
    let receiver = receiver_with(Limits::default());
    let cases: [(&str, Value); 4] = [
        (
            "signature bit flipped",
            with_content(|c| rewrite(c, "dataSignature", |s| s[0] ^= 0x01)),
        ),
        (
            "signature of other data",
            with_content(|c| {
                let other = item(br#"{"id":"2"}"#);
                c.insert(
                    "dataSignature".into(),
                    other["encryptedContent"]["dataSignature"].clone(),
                );
            }),
        ),
        (
            "first ciphertext block flipped",
            with_content(|c| rewrite(c, "data", |d| d[0] ^= 0x80)),
        ),
        (
            "last ciphertext block flipped",
            with_content(|c| rewrite(c, "data", |d| *d.last_mut().unwrap() ^= 0x01)),
        ),
    ];
    for (name, bad) in cases {
        let (result, calls) = open_one(&receiver, bad);
        let e = result.unwrap_err();
        assert_eq!(e.kind(), &ItemErrorKind::Decrypt, "{name}");
        assert_eq!(
            (calls.rsa_unwraps, calls.hmacs),
            (1, 1),
            "{name}: the HMAC is checked under the unwrapped key"
        );
        assert_eq!(
            calls.aes_decrypts, 0,
            "{name}: AES ran before the HMAC was checked"
        );
    }
}

#[test]
fn a_failed_unwrap_stops_before_hmac_and_aes() {
    let receiver = receiver_with(Limits::default());
    let wrong_key_length = |len: usize| {
        let mut seal = Seal::new(&read("keys/rsa2048/cert.der"), ID);
        seal.sym_key = Some(vec![0x42; len]);
        notification(seal.encrypt(GOOD.as_bytes()))
    };
    let other_key = || {
        // Wrapped for another 2048-bit key, under this certificate's id and thumbprint.
        let other = PrivateKey::from_bytes(&read("tokens/other/signing.pem")).unwrap();
        let mut ec = encrypt_with(
            Recipient::Key(&other),
            ID,
            GOOD.as_bytes(),
            &Encryption::default(),
        );
        ec["encryptionCertificateThumbprint"] =
            item(b"{}")["encryptedContent"]["encryptionCertificateThumbprint"].clone();
        notification(ec)
    };
    for (name, bad) in [
        ("a 16-byte symmetric key", wrong_key_length(16)),
        ("a 31-byte symmetric key", wrong_key_length(31)),
        ("a 33-byte symmetric key", wrong_key_length(33)),
        ("a key wrapped for another certificate", other_key()),
        (
            "a wrapped key with a flipped bit",
            with_content(|c| rewrite(c, "dataKey", |k| k[100] ^= 0x01)),
        ),
    ] {
        let (result, calls) = open_one(&receiver, bad);
        assert_eq!(
            result.unwrap_err().kind(),
            &ItemErrorKind::Decrypt,
            "{name}"
        );
        assert_eq!(
            calls,
            Calls {
                rsa_unwraps: 1,
                ..Calls::default()
            },
            "{name}: HMAC or AES after a failed unwrap"
        );
    }
}

#[test]
fn refusals_that_need_no_secret_come_before_any_rsa() {
    const KEY: &str = "encryptedContent.dataKey";
    const SIG: &str = "encryptedContent.dataSignature";
    const DATA: &str = "encryptedContent.data";
    let wrong = |expected, actual| ItemErrorKind::WrongLength { expected, actual };
    let resize = |field: &'static str, len: usize| {
        with_content(move |c| rewrite(c, field, |b| b.resize(len, 0x5a)))
    };
    let set = |field: &'static str, value: &'static str| {
        with_content(move |c| {
            c.insert(field.into(), value.into());
        })
    };
    let mut cases: Vec<(&str, Value, &str, ItemErrorKind)> = vec![
        (
            "unknown certificate",
            set("encryptionCertificateId", "someone-else"),
            "encryptedContent.encryptionCertificateId",
            ItemErrorKind::UnknownCertificate,
        ),
        (
            "another thumbprint",
            set(
                "encryptionCertificateThumbprint",
                "ABABABABABABABABABABABABABABABABABABABAB",
            ),
            "encryptedContent.encryptionCertificateThumbprint",
            ItemErrorKind::ThumbprintMismatch,
        ),
        (
            "dataKey one byte short",
            resize("dataKey", 255),
            KEY,
            wrong(256, 255),
        ),
        (
            "dataKey one byte long",
            resize("dataKey", 257),
            KEY,
            wrong(256, 257),
        ),
        (
            "dataKey for a 4096-bit key",
            resize("dataKey", 512),
            KEY,
            wrong(256, 512),
        ),
        ("dataKey empty", set("dataKey", ""), KEY, wrong(256, 0)),
        (
            "dataKey not base64",
            set("dataKey", "@@@@"),
            KEY,
            ItemErrorKind::NotBase64,
        ),
        (
            "dataSignature short",
            resize("dataSignature", 31),
            SIG,
            wrong(32, 31),
        ),
        (
            "dataSignature long",
            resize("dataSignature", 33),
            SIG,
            wrong(32, 33),
        ),
        (
            "dataSignature not base64",
            set("dataSignature", "@@@@"),
            SIG,
            ItemErrorKind::NotBase64,
        ),
        (
            "data not base64",
            set("data", "@@@@"),
            DATA,
            ItemErrorKind::NotBase64,
        ),
        (
            "data empty",
            set("data", ""),
            DATA,
            ItemErrorKind::NotBlockAligned { len: 0 },
        ),
        (
            "data not block aligned",
            with_content(|c| rewrite(c, "data", |d| d.truncate(17))),
            DATA,
            ItemErrorKind::NotBlockAligned { len: 17 },
        ),
    ];
    // Every case is tried before any assertion fails, so a reordering shows all it affects.
    let mut early_crypto = Vec::new();
    for (name, bad, field, kind) in cases.drain(..) {
        let (result, calls) = open_one(&receiver_with(Limits::default()), bad);
        let e = result.unwrap_err();
        assert_eq!((e.field(), e.kind()), (field, &kind), "{name}");
        if calls != Calls::default() {
            early_crypto.push(format!("{name}: {calls:?}"));
        }
    }
    // An item well formed in every way but its size: refused before its key is unwrapped.
    let limit = 1024;
    let large = format!(
        r#"{{"id":"1","body":{{"content":"{}"}}}}"#,
        "x".repeat(8 * limit)
    );
    let (result, calls) = open_one(
        &receiver_with(Limits::default().with_max_item_bytes(limit)),
        item(large.as_bytes()),
    );
    let e = result.unwrap_err();
    assert_eq!(e.field(), DATA);
    assert!(
        matches!(e.kind(), ItemErrorKind::TooLarge { size, limit: l } if *l == limit && *size > limit),
        "{e}"
    );
    if calls != Calls::default() {
        early_crypto.push(format!("oversized data: {calls:?}"));
    }
    assert!(
        early_crypto.is_empty(),
        "crypto before the refusal: {early_crypto:#?}"
    );

    // The same item under the default limit is opened: the refusal was the size.
    let (result, _) = open_one(&receiver_with(Limits::default()), item(large.as_bytes()));
    assert!(result.is_ok(), "{result:?}");
}

#[test]
fn items_refused_for_their_client_state_cost_no_crypto() {
    let receiver = receiver_with(Limits::default());
    let mut wrong = item(GOOD.as_bytes());
    wrong["clientState"] = json!("not-the-secret");
    let mut missing = item(GOOD.as_bytes());
    missing.as_object_mut().unwrap().remove("clientState");
    for (name, bad, kind) in [
        ("wrong", wrong, ItemErrorKind::ClientStateMismatch),
        ("missing", missing, ItemErrorKind::Missing),
    ] {
        let (result, calls) = open_one(&receiver, bad);
        let e = result.unwrap_err();
        assert_eq!((e.field(), e.kind()), ("clientState", &kind), "{name}");
        assert_eq!(calls, Calls::default(), "{name}");
    }
}

// The token stage.

fn token_receiver() -> Receiver {
    let validator = TokenValidator::with_provider(&COUNTING, [APP], [TENANT]);
    validator
        .update_jwks(&read("tokens/jwks.json"), mint::now())
        .unwrap();
    Receiver::builder()
        .keys(counting_keys())
        .client_state(CLIENT_STATE)
        .tokens(validator)
        .build()
        .unwrap()
}

/// The fixture batch (encrypted for the 2048-bit key, one tenant), with `tokens` in place of
/// its own (removed when `None`) and `change` applied to its items.
fn token_batch(tokens: Option<Vec<String>>, change: impl FnOnce(&mut Vec<Value>)) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&read("tokens/batch.json")).unwrap();
    match tokens {
        Some(t) => body["validationTokens"] = json!(t),
        None => {
            body.as_object_mut().unwrap().remove("validationTokens");
        }
    }
    change(body["value"].as_array_mut().unwrap());
    serde_json::to_vec(&body).unwrap()
}

fn batch_len() -> usize {
    let body: Value = serde_json::from_slice(&read("tokens/batch.json")).unwrap();
    body["value"].as_array().unwrap().len()
}

/// Receives `body` and, if it is accepted, opens every item: the refusal (if any), the items
/// that opened, and every provider call made for both.
fn receive_and_open(body: &[u8]) -> (Option<BodyError>, usize, Calls) {
    let receiver = token_receiver();
    let ((refusal, opened), calls) = counted(|| match receiver.receive(body, mint::now()) {
        Err(e) => (Some(e), 0),
        Ok(batch) => {
            let mut opened = 0;
            batch.open_each(&mut DecryptBuffer::new(), |r| {
                opened += usize::from(r.is_ok())
            });
            (None, opened)
        }
    });
    (refusal, opened, calls)
}

#[test]
fn a_body_refused_at_the_token_stage_costs_no_rsa() {
    let good = Minter::fixture().token(&Minter::v1());
    let n = batch_len();
    assert!(n >= 2);

    // The control: the same body with a good token is checked once and every item opened.
    let (refusal, opened, calls) = receive_and_open(&token_batch(Some(vec![good.clone()]), |_| {}));
    assert_eq!((refusal, opened), (None, n));
    assert_eq!(
        calls,
        Calls {
            rsa_unwraps: n,
            hmacs: n,
            aes_decrypts: n,
            rs256_verifies: 1
        }
    );

    let forged = Minter::other().token(&Minter::v1());
    let expired = Minter::fixture().token(&Minter::v1_at(mint::NOW as i64 - 7 * 24 * 3600));
    let signature = |e: &TokenError| *e == TokenError::Signature;
    let expiry = |e: &TokenError| matches!(e, TokenError::Expired { .. });
    type Why = fn(&TokenError) -> bool;
    let cases: [(&str, Vec<String>, usize, Why, _); 4] = [
        ("forged", vec![forged.clone()], 0, signature, 1..=1),
        (
            "good then forged",
            vec![good.clone(), forged.clone()],
            1,
            signature,
            1..=2,
        ),
        ("forged then good", vec![forged, good], 0, signature, 1..=2),
        ("expired", vec![expired], 0, expiry, 0..=1),
    ];
    for (name, tokens, at, why, verifies) in cases {
        let (refusal, opened, calls) = receive_and_open(&token_batch(Some(tokens), |_| {}));
        assert!(
            matches!(&refusal, Some(BodyError::Token { index, error }) if *index == at && why(error)),
            "{name}: {refusal:?}"
        );
        assert_eq!(opened, 0, "{name}");
        assert_eq!(
            (calls.rsa_unwraps, calls.hmacs, calls.aes_decrypts),
            (0, 0, 0),
            "{name}: decryption before the token refusal"
        );
        assert!(
            verifies.contains(&calls.rs256_verifies),
            "{name}: {} RS256 checks",
            calls.rs256_verifies
        );
    }

    // Encrypted content without any token: refused before any crypto at all.
    let (refusal, _, calls) = receive_and_open(&token_batch(None, |_| {}));
    assert_eq!(refusal, Some(BodyError::MissingValidationTokens));
    assert_eq!(calls, Calls::default());
}

#[test]
fn an_item_of_a_tenant_no_token_vouches_for_costs_no_rsa() {
    let good = Minter::fixture().token(&Minter::v1());
    let n = batch_len();
    let body = token_batch(Some(vec![good]), |items| {
        items[0]["tenantId"] = json!("00000000-0000-0000-0000-000000000000");
    });
    let receiver = token_receiver();
    let batch = receiver.receive(&body, mint::now()).unwrap();
    let mut buf = DecryptBuffer::new();
    let (first, calls) = counted(|| batch.open(0, &mut buf).map(|_| ()));
    let e = first.unwrap_err();
    assert_eq!(
        (e.field(), e.kind()),
        ("tenantId", &ItemErrorKind::TenantNotVouched)
    );
    assert_eq!(calls, Calls::default());
    // The others, vouched for, are opened.
    let (rest, calls) = counted(|| (1..n).filter(|&i| batch.open(i, &mut buf).is_ok()).count());
    assert_eq!(rest, n - 1);
    assert_eq!(calls.rsa_unwraps, n - 1);
}
