//! Bad input of every kind: each fails with an error naming the notification and the field, never
//! panics, and never takes the good notifications of the batch down with it.
#![cfg(feature = "rust-crypto")]

use crate::common::seal::{notification, Seal};
use crate::common::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use graph_chat_notifications::crypto::{DecryptBuffer, PrivateKey};
use graph_chat_notifications::inbound::{Limits, Payload, Receiver};
use graph_chat_notifications::{BodyError, ItemErrorKind};
use serde_json::{json, Value};

const GOOD: &str = r#"{"id":"1","body":{"content":"hello"}}"#;
const ID: &str = "graphsim-rsa2048";

fn cert_der() -> Vec<u8> {
    read("keys/rsa2048/cert.der")
}

fn good_item() -> Value {
    notification(Seal::new(&cert_der(), ID).encrypt(GOOD.as_bytes()))
}

/// A batch of [good, bad, good]; asserts the neighbours decrypt and returns the middle error.
fn middle(bad: Value, receiver: &Receiver) -> (&'static str, ItemErrorKind) {
    let body = serde_json::to_vec(&json!({"value": [good_item(), bad, good_item()]})).unwrap();
    let results = open_all(receiver, &body);
    assert_eq!(results[0].as_deref(), Ok(GOOD));
    assert_eq!(results[2].as_deref(), Ok(GOOD));
    let e = results[1]
        .clone()
        .expect_err("the bad notification must fail");
    assert_eq!(e.index(), 1);
    assert!(e.to_string().starts_with("notification 1"), "{e}");
    (e.field(), e.kind().clone())
}

fn default_receiver() -> Receiver {
    receiver(all_keys())
}

fn with_enc(mutate: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut item = good_item();
    mutate(item["encryptedContent"].as_object_mut().unwrap());
    item
}

fn flip_base64(text: &str, at: usize) -> String {
    let mut bytes = B64.decode(text).unwrap();
    let i = at.min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    B64.encode(bytes)
}

#[test]
fn tampered_fields_fail_opaquely_after_base64() {
    let r = default_receiver();
    let decrypt = ("encryptedContent", ItemErrorKind::Decrypt);
    for (name, mutate) in [
        (
            "data byte flipped",
            Box::new(|m: &mut serde_json::Map<String, Value>| {
                let d = flip_base64(m["data"].as_str().unwrap(), 3);
                m.insert("data".into(), d.into());
            }) as Box<dyn Fn(&mut serde_json::Map<String, Value>)>,
        ),
        (
            "last data block flipped",
            Box::new(|m| {
                let d = B64.decode(m["data"].as_str().unwrap()).unwrap();
                let d = flip_base64(m["data"].as_str().unwrap(), d.len() - 1);
                m.insert("data".into(), d.into());
            }),
        ),
        (
            "signature flipped",
            Box::new(|m| {
                let s = flip_base64(m["dataSignature"].as_str().unwrap(), 31);
                m.insert("dataSignature".into(), s.into());
            }),
        ),
        (
            "dataKey flipped",
            Box::new(|m| {
                let k = flip_base64(m["dataKey"].as_str().unwrap(), 100);
                m.insert("dataKey".into(), k.into());
            }),
        ),
        (
            "dataKey all zero",
            Box::new(|m| {
                m.insert("dataKey".into(), B64.encode([0u8; 256]).into());
            }),
        ),
    ] {
        assert_eq!(middle(with_enc(mutate), &r), decrypt, "{name}");
    }
}

#[test]
fn data_key_of_another_notification_fails_the_hmac() {
    let other = Seal::new(&cert_der(), ID).encrypt(b"{}");
    let item = with_enc(|m| {
        m.insert("dataKey".into(), other["dataKey"].clone());
    });
    assert_eq!(
        middle(item, &default_receiver()),
        ("encryptedContent", ItemErrorKind::Decrypt)
    );
}

#[test]
fn broken_base64_names_the_field() {
    let r = default_receiver();
    for field in ["data", "dataKey", "dataSignature"] {
        for bad in ["%%%", "QUJD*", "A", "QQ==QQ=="] {
            let item = with_enc(|m| {
                m.insert(field.into(), bad.into());
            });
            let (f, kind) = middle(item, &r);
            assert_eq!(f, format!("encryptedContent.{field}"), "{field} {bad}");
            assert!(
                matches!(
                    kind,
                    ItemErrorKind::NotBase64
                        | ItemErrorKind::WrongLength { .. }
                        | ItemErrorKind::NotBlockAligned { .. }
                ),
                "{field} {bad}: {kind:?}"
            );
        }
    }
}

#[test]
fn lengths_are_checked_before_any_crypto() {
    let r = default_receiver();
    let wrong = |expected, actual| ItemErrorKind::WrongLength { expected, actual };
    for (field, bytes, expected) in [
        ("dataKey", 255, wrong(256, 255)),
        ("dataSignature", 20, wrong(32, 20)),
        ("data", 33, ItemErrorKind::NotBlockAligned { len: 33 }),
        ("data", 0, ItemErrorKind::NotBlockAligned { len: 0 }),
    ] {
        let item = with_enc(|m| {
            m.insert(field.into(), B64.encode(vec![7u8; bytes]).into());
        });
        let (f, kind) = middle(item, &r);
        assert_eq!(
            (f.strip_prefix("encryptedContent.").unwrap(), kind),
            (field, expected)
        );
    }
}

#[test]
fn symmetric_keys_of_the_wrong_length() {
    let r = default_receiver();
    for len in [0usize, 16, 31, 33, 64] {
        let mut seal = Seal::new(&cert_der(), ID);
        seal.sym_key = Some(vec![0x42; len]);
        let item = notification(seal.encrypt(GOOD.as_bytes()));
        assert_eq!(
            middle(item, &r),
            ("encryptedContent", ItemErrorKind::Decrypt),
            "{len}"
        );
    }
}

#[test]
fn bad_padding_behind_a_valid_hmac() {
    let r = default_receiver();
    // Block-aligned plaintexts encrypted without padding: the last byte is not valid PKCS#7.
    for last in [0u8, 17, 0xff] {
        let mut plain = vec![b' '; 32];
        plain[31] = last;
        let mut seal = Seal::new(&cert_der(), ID);
        seal.pad = false;
        let item = notification(seal.encrypt(&plain));
        assert_eq!(
            middle(item, &r),
            ("encryptedContent", ItemErrorKind::Decrypt),
            "{last}"
        );
    }
    // Inconsistent padding bytes.
    let mut plain = vec![b' '; 32];
    plain[28..].copy_from_slice(&[4, 4, 3, 4]);
    let mut seal = Seal::new(&cert_der(), ID);
    seal.pad = false;
    assert_eq!(
        middle(notification(seal.encrypt(&plain)), &r),
        ("encryptedContent", ItemErrorKind::Decrypt)
    );
}

#[test]
fn plaintext_that_is_not_json_or_not_utf8() {
    let r = default_receiver();
    let seal = Seal::new(&cert_der(), ID);
    let (f, k) = middle(notification(seal.encrypt(b"\xff\xfe{}")), &r);
    assert_eq!(
        (f, k),
        ("encryptedContent.data", ItemErrorKind::PlaintextNotUtf8)
    );
    for bad in [&b"not json"[..], b"{\"a\":", b"", b"{} {}"] {
        let (f, k) = middle(notification(seal.encrypt(bad)), &r);
        assert_eq!(f, "encryptedContent.data");
        assert!(matches!(k, ItemErrorKind::PlaintextNotJson { .. }), "{k:?}");
    }
}

/// A `\uD800`-`\uDFFF` escape without its other half is no character: serde_json refuses it in
/// every string it decodes, so the decrypt core's JSON check refuses it too, at the escape, and
/// the notification fails there rather than later, in typed decoding, with another message.
#[test]
fn decrypted_lone_surrogates_are_not_json() {
    let r = default_receiver();
    let seal = Seal::new(&cert_der(), ID);
    for (bad, column) in [
        (r#"{"subject":"\ud800"}"#, 13),
        (r#"{"subject":"a\udc00"}"#, 14),
        (r#"{"subject":"\ud800\u0041"}"#, 13),
        (r#"{"id":"1","\ud83dx":1}"#, 12),
        ("{\n \"body\": {\"content\": \"\\ude00\\ud83d\"}}", 23),
    ] {
        let (f, k) = middle(notification(seal.encrypt(bad.as_bytes())), &r);
        assert_eq!(f, "encryptedContent.data", "{bad}");
        let line = if bad.contains('\n') { 2 } else { 1 };
        assert_eq!(k, ItemErrorKind::PlaintextNotJson { line, column }, "{bad}");
    }
    // A pair is one character, and passes.
    let pair = r#"{"id":"1","subject":"\ud83d\ude00"}"#;
    let body = serde_json::to_vec(&json!({"value": [notification(seal.encrypt(pair.as_bytes()))]}))
        .unwrap();
    assert_eq!(open_all(&r, &body)[0].as_deref(), Ok(pair));
}

#[test]
fn unknown_certificate_and_key_of_the_wrong_certificate() {
    let item = with_enc(|m| {
        m.insert("encryptionCertificateId".into(), "not-configured".into());
    });
    assert_eq!(
        middle(item, &default_receiver()),
        (
            "encryptedContent.encryptionCertificateId",
            ItemErrorKind::UnknownCertificate
        )
    );

    // The id is known but the key is another 2048-bit key: good neighbours use the right one.
    use rsa::pkcs8::EncodePrivateKey;
    let other = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let other = PrivateKey::from_pkcs8_der(other.to_pkcs8_der().unwrap().as_bytes()).unwrap();
    let mut keys = all_keys();
    keys.insert("wrong-key", other).unwrap();
    let r = receiver(keys);
    let mut seal = Seal::new(&cert_der(), "wrong-key");
    seal.sym_key = None;
    assert_eq!(
        middle(notification(seal.encrypt(GOOD.as_bytes())), &r),
        ("encryptedContent", ItemErrorKind::Decrypt)
    );
}

#[test]
fn wrong_json_types_and_missing_fields_name_the_field() {
    let r = default_receiver();
    for (field, value) in [
        ("data", json!(12)),
        ("dataKey", json!(["x"])),
        ("dataSignature", json!({"a": 1})),
        ("encryptionCertificateId", json!(true)),
        ("encryptionCertificateThumbprint", json!(1.5)),
    ] {
        let item = with_enc(|m| {
            m.insert(field.into(), value.clone());
        });
        assert_eq!(
            middle(item, &r),
            (
                Box::leak(format!("encryptedContent.{field}").into_boxed_str()) as &'static str,
                ItemErrorKind::WrongType {
                    expected: "a string"
                }
            )
        );
    }
    for field in [
        "data",
        "dataKey",
        "dataSignature",
        "encryptionCertificateId",
    ] {
        let item = with_enc(|m| {
            m.remove(field);
        });
        let (f, k) = middle(item, &r);
        assert_eq!(
            (f.rsplit('.').next().unwrap(), k),
            (field, ItemErrorKind::Missing)
        );
    }
    for (field, value) in [
        ("changeType", json!(1)),
        ("resource", json!([])),
        ("clientState", json!({})),
    ] {
        let mut item = good_item();
        item[field] = value;
        assert_eq!(
            middle(item, &r),
            (
                field,
                ItemErrorKind::WrongType {
                    expected: "a string"
                }
            )
        );
    }
    let mut item = good_item();
    item["encryptedContent"] = json!("abc");
    assert_eq!(
        middle(item, &r),
        (
            "encryptedContent",
            ItemErrorKind::WrongType {
                expected: "an object"
            }
        )
    );
    assert_eq!(
        middle(json!([1, 2]), &r),
        (
            "",
            ItemErrorKind::WrongType {
                expected: "a notification object"
            }
        )
    );
    assert_eq!(
        middle(json!(null), &r).1,
        ItemErrorKind::WrongType {
            expected: "a notification object"
        }
    );
}

#[test]
fn client_state_mismatch_or_absence_fails_that_item_only() {
    let r = default_receiver();
    for value in [
        json!("secretClientStatf"),
        json!("secretClientState "),
        json!(""),
        json!("x".repeat(5000)),
    ] {
        let mut item = good_item();
        item["clientState"] = value;
        assert_eq!(
            middle(item, &r),
            ("clientState", ItemErrorKind::ClientStateMismatch)
        );
    }
    let mut item = good_item();
    item.as_object_mut().unwrap().remove("clientState");
    assert_eq!(middle(item, &r), ("clientState", ItemErrorKind::Missing));
    // Several expected values: any of them is accepted.
    let r2 = Receiver::builder()
        .keys(all_keys())
        .client_state("other")
        .client_state(CLIENT_STATE)
        .dangerous_skip_token_validation()
        .build()
        .unwrap();
    let body = serde_json::to_vec(&json!({"value": [good_item()]})).unwrap();
    assert_eq!(open_all(&r2, &body)[0].as_deref(), Ok(GOOD));
}

#[test]
fn huge_fields_are_refused_by_size_not_by_work() {
    let r = Receiver::builder()
        .keys(all_keys())
        .client_state(CLIENT_STATE)
        .limits(Limits::default().with_max_item_bytes(1024))
        .dangerous_skip_token_validation()
        .build()
        .unwrap();
    let item = with_enc(|m| {
        m.insert("data".into(), "QUFB".repeat(100_000).into());
    });
    let (f, k) = middle(item, &r);
    assert_eq!(f, "encryptedContent.data");
    assert!(
        matches!(k, ItemErrorKind::TooLarge { limit: 1024, .. }),
        "{k:?}"
    );
    let item = with_enc(|m| {
        m.insert("dataKey".into(), "QUFB".repeat(1_000_000).into());
    });
    assert_eq!(middle(item, &r).0, "encryptedContent.dataKey");
}

#[test]
fn notifications_without_resource_data_and_lifecycle_events() {
    let r = default_receiver();
    let body = serde_json::to_vec(&json!({"value": [
        {"subscriptionId": "s", "changeType": "deleted", "clientState": CLIENT_STATE,
         "resource": "chats('19:a@thread.v2')", "resourceData": {"id": "19:a@thread.v2"}},
        {"subscriptionId": "s", "clientState": CLIENT_STATE, "lifecycleEvent": "reauthorizationRequired"},
        {"subscriptionId": "s", "clientState": CLIENT_STATE, "lifecycleEvent": "brandNewEvent"},
        {"subscriptionId": "s", "clientState": "forged", "lifecycleEvent": "subscriptionRemoved"},
    ]}))
    .unwrap();
    let batch = r.receive(&body, std::time::SystemTime::now()).unwrap();
    let mut buf = DecryptBuffer::new();
    let opened = batch.open(0, &mut buf).unwrap();
    assert_eq!(opened.notification.change_type.as_deref(), Some("deleted"));
    match opened.payload {
        Payload::ResourceData(Some(raw)) => assert_eq!(raw.get(), r#"{"id":"19:a@thread.v2"}"#),
        other => panic!("{other:?}"),
    }
    use graph_chat_notifications::model::IntoOwned;
    use graph_chat_notifications::model::LifecycleEvent;
    let p1 = batch.open(1, &mut buf).unwrap().payload;
    assert!(
        matches!(p1, Payload::Lifecycle(ref e) if *e == LifecycleEvent::ReauthorizationRequired)
    );
    let p2 = batch.open(2, &mut buf).unwrap().payload.into_owned();
    assert!(
        matches!(p2, Payload::Lifecycle(ref e) if e.known().is_none() && e.as_str() == "brandNewEvent")
    );
    let e3 = batch.open(3, &mut buf).unwrap_err();
    assert_eq!(e3.kind(), &ItemErrorKind::ClientStateMismatch);
}

#[test]
fn body_level_refusals() {
    let r = default_receiver();
    type Check = fn(&BodyError) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (b"".to_vec(), |e| *e == BodyError::Empty),
        (b"   \n".to_vec(), |e| *e == BodyError::Empty),
        (b"\xff\xfe".to_vec(), |e| {
            matches!(e, BodyError::NotUtf8 { .. })
        }),
        (b"{\"value\": [".to_vec(), |e| {
            matches!(e, BodyError::NotJson { .. })
        }),
        (b"null".to_vec(), |e| {
            matches!(e, BodyError::NotACollection { .. })
        }),
        (b"\"value\"".to_vec(), |e| {
            matches!(e, BodyError::NotACollection { .. })
        }),
        (b"{\"values\": []}".to_vec(), |e| {
            matches!(e, BodyError::NotACollection { .. })
        }),
        (b"{\"value\": null}".to_vec(), |e| {
            matches!(e, BodyError::NotACollection { .. })
        }),
        (
            [
                b"{\"value\":".as_slice(),
                &[b'['; 10_000],
                &[b']'; 10_000],
                b"}",
            ]
            .concat(),
            |e| matches!(e, BodyError::TooDeep { .. }),
        ),
        (
            serde_json::to_vec(&json!({"value": vec![json!({}); 1001]})).unwrap(),
            |e| matches!(e, BodyError::TooManyItems { limit: 1000 }),
        ),
    ];
    for (body, check) in cases {
        let e = r.receive(&body, std::time::SystemTime::now()).unwrap_err();
        assert!(
            check(&e),
            "{:?} -> {e:?}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        assert!(!e.to_string().is_empty());
    }
    // A byte order mark is tolerated.
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend_from_slice(br#"{"value":[]}"#);
    assert!(r
        .receive(&body, std::time::SystemTime::now())
        .unwrap()
        .is_empty());
}

#[test]
fn without_keys_every_encrypted_item_fails_by_name() {
    // An empty store needs no token validator: nothing can be decrypted anyway.
    let r = Receiver::builder()
        .keys(store())
        .client_state(CLIENT_STATE)
        .build()
        .unwrap();
    let body = serde_json::to_vec(&json!({"value": [good_item()]})).unwrap();
    let e = open_all(&r, &body)[0].clone().unwrap_err();
    assert_eq!(e.field(), "encryptedContent.encryptionCertificateId");
}

#[test]
fn debug_of_a_decrypted_payload_hides_the_plaintext() {
    let r = default_receiver();
    let body = serde_json::to_vec(&json!({"value": [good_item()]})).unwrap();
    let batch = r.receive(&body, std::time::SystemTime::now()).unwrap();
    let mut buf = DecryptBuffer::new();
    let opened = batch.open(0, &mut buf).unwrap();
    let text = format!("{opened:?} {:?}", opened.payload);
    assert!(!text.contains("hello"), "{text}");
    let text = format!("{buf:?}");
    assert!(!text.contains("hello"), "{text}");
}
