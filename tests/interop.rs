//! Notifications encrypted by an independent implementation (OpenSSL through Python
//! `cryptography`) and by Microsoft's SDK tests decrypt to exactly the reference plaintext.
#![cfg(feature = "rust-crypto")]

mod common;

use common::*;
use graph_chat_notifications::crypto::{Certificate, DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::{ItemErrorKind, KeyError};

fn assert_batch(batch: &str, keys: KeyStore) {
    let receiver = receiver(keys);
    let results = open_all(&receiver, &read(&format!("batches/{batch}")));
    let expected = manifest(batch);
    assert_eq!(results.len(), expected.len(), "{batch}");
    for (i, (result, (name, _))) in results.iter().zip(&expected).enumerate() {
        let got = result
            .as_ref()
            .unwrap_or_else(|e| panic!("{batch}[{i}] {name}: {e}"));
        assert_eq!(got, &plaintext(name), "{batch}[{i}] {name}");
    }
}

#[test]
fn every_key_size_decrypts_every_payload() {
    for bits in [2048, 3072, 4096] {
        assert_batch(&format!("rsa{bits}.json"), all_keys());
    }
}

#[test]
fn two_certificates_in_one_batch() {
    assert_batch("two-certs.json", all_keys());
}

#[test]
fn escaped_slashes_in_the_envelope() {
    let body = read("batches/escaped-slashes.json");
    assert!(
        String::from_utf8_lossy(&body).contains("\\/"),
        "fixture must escape slashes"
    );
    assert_batch("escaped-slashes.json", all_keys());
}

#[test]
fn pascal_case_keys() {
    assert_batch("pascal-case.json", all_keys());
}

#[test]
fn large_unicode_and_pretty_plaintexts_are_byte_exact() {
    let large = plaintext("message-large.json");
    assert!(large.len() > 30_000);
    let uni = plaintext("message-unicode.json");
    assert!(
        uni.chars().any(|c| c as u32 > 0xFFFF),
        "fixture must hold non-BMP characters"
    );
    assert!(plaintext("message-pretty.json").contains('\n'));
    assert_batch("rsa4096.json", all_keys());
}

#[test]
fn every_key_format_loads_and_decrypts() {
    let formats = [
        "key.pkcs8.pem",
        "key.pkcs1.pem",
        "key.pkcs8.der",
        "key.pkcs1.der",
        "key-and-cert.pem",
    ];
    for bits in [2048, 3072, 4096] {
        for file in formats {
            let k = key(bits, file);
            assert_eq!(k.bits(), bits as usize, "{bits} {file}");
            let keys = store().with_key(format!("graphsim-rsa{bits}"), k).unwrap();
            assert_batch(&format!("rsa{bits}.json"), keys);
        }
    }
}

#[cfg(feature = "pkcs12")]
#[test]
fn pkcs12_legacy_modern_and_passwordless() {
    let password = String::from_utf8(read("keys/pfx-password.txt")).unwrap();
    for (file, pass) in [
        ("key.legacy.pfx", password.as_str()),
        ("key.modern.pfx", password.as_str()),
        ("key.nopass.pfx", ""),
    ] {
        let k = PrivateKey::from_pkcs12(&read(&format!("keys/rsa2048/{file}")), pass)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
        assert_eq!(
            k.certificate().unwrap().thumbprint(),
            cert.thumbprint(),
            "{file}"
        );
        let keys = store().with_key("graphsim-rsa2048", k).unwrap();
        assert_batch("rsa2048.json", keys);
    }
    // Without a password, `from_bytes` reads a passwordless PKCS#12 too.
    assert!(PrivateKey::from_bytes(&read("keys/rsa2048/key.nopass.pfx")).is_ok());
}

#[test]
fn microsoft_sdk_vector_from_pem() {
    let k =
        PrivateKey::from_bytes(&read("vectors/dotnet-core-chatmessage/private_key.pem")).unwrap();
    assert_eq!(k.bits(), 4096);
    let cert =
        Certificate::from_bytes(&read("vectors/dotnet-core-chatmessage/certificate.pem")).unwrap();
    assert_eq!(
        cert.thumbprint_hex(),
        "4B95353E086AD37196606ACF834A14532F03E6DB"
    );
    let k = k.with_certificate(cert).unwrap();
    let receiver = receiver(store().with_key("custom-id-for-testing", k).unwrap());
    let results = open_all(&receiver, &vector_body());
    let expected =
        String::from_utf8(read("vectors/dotnet-core-chatmessage/plaintext.json")).unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &expected);
}

#[cfg(feature = "pkcs12")]
#[test]
fn microsoft_sdk_vector_from_legacy_pfx() {
    let k =
        PrivateKey::from_pkcs12(&read("vectors/dotnet-core-chatmessage/cert.pfx"), "rich").unwrap();
    let receiver = receiver(store().with_key("custom-id-for-testing", k).unwrap());
    let results = open_all(&receiver, &vector_body());
    let expected =
        String::from_utf8(read("vectors/dotnet-core-chatmessage/plaintext.json")).unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &expected);
}

#[test]
fn thumbprint_is_checked_when_the_certificate_is_known() {
    let k = key(2048, "key-and-cert.pem");
    let keys = store().with_key("graphsim-rsa2048", k).unwrap();
    let receiver = receiver(keys);
    let body = String::from_utf8(read("batches/rsa2048.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_slice(&read("keys/rsa2048/cert.json")).unwrap();
    let thumb = meta["encryptionCertificateThumbprint"].as_str().unwrap();
    // Lower case is the same thumbprint.
    let lower = body.replace(thumb, &thumb.to_lowercase());
    assert!(open_all(&receiver, lower.as_bytes())
        .iter()
        .all(|r| r.is_ok()));
    let wrong = body.replace(thumb, &"AB".repeat(20));
    for r in open_all(&receiver, wrong.as_bytes()) {
        let e = r.unwrap_err();
        assert_eq!(
            e.field(),
            "encryptedContent.encryptionCertificateThumbprint"
        );
        assert_eq!(e.kind(), &ItemErrorKind::ThumbprintMismatch);
    }
}

#[test]
fn one_receiver_serves_many_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<graph_chat_notifications::webhook::Receiver>();
    assert_send_sync::<graph_chat_notifications::tokens::TokenValidator>();
    assert_send_sync::<KeyStore>();

    let receiver = receiver(all_keys());
    let body = read("batches/two-certs.json");
    let expected: Vec<String> = manifest("two-certs.json")
        .iter()
        .map(|(n, _)| plaintext(n))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..3 {
                    let got: Vec<String> = open_all(&receiver, &body)
                        .into_iter()
                        .map(Result::unwrap)
                        .collect();
                    assert_eq!(got, expected);
                }
            });
        }
    });
}

#[test]
fn keys_rotate_while_one_receiver_serves_many_threads() {
    // The old certificate is the 2048-bit fixture, the new one the 3072-bit one; each fixture
    // batch is encrypted for one of them.
    let receiver = receiver(
        store()
            .with_key("graphsim-rsa2048", key(2048, "key.pkcs8.pem"))
            .unwrap(),
    );
    let (old_body, new_body) = (read("batches/rsa2048.json"), read("batches/rsa3072.json"));
    let (n_old, n_new) = (
        manifest("rsa2048.json").len(),
        manifest("rsa3072.json").len(),
    );
    let opened = |body: &[u8]| {
        let results = open_all(&receiver, body);
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(e.kind(), &ItemErrorKind::UnknownCertificate, "{e}");
        }
        results.iter().filter(|r| r.is_ok()).count()
    };
    assert_eq!((opened(&old_body), opened(&new_body)), (n_old, 0));
    let received_before = receiver
        .receive(&old_body, std::time::SystemTime::now())
        .unwrap();

    // The new key goes in while other threads keep opening batches: none of them fails.
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| s.spawn(|| (0..3).all(|_| opened(&old_body) == n_old)))
            .collect();
        receiver
            .update_keys(|keys| keys.insert("graphsim-rsa3072", key(3072, "key.pkcs8.pem")))
            .unwrap();
        assert!(readers.into_iter().all(|r| r.join().unwrap()));
    });
    assert_eq!((opened(&old_body), opened(&new_body)), (n_old, n_new));

    // The old key goes; a batch received before that keeps the keys it started with.
    receiver
        .update_keys(|keys| {
            assert!(keys.remove("graphsim-rsa2048"));
            Ok(())
        })
        .unwrap();
    assert_eq!((opened(&old_body), opened(&new_body)), (0, n_new));
    let mut buf = DecryptBuffer::new();
    for i in 0..received_before.len() {
        received_before.open(i, &mut buf).unwrap();
    }

    // A change that fails leaves the keys as they were.
    let refused = receiver.update_keys(|keys| {
        keys.remove("graphsim-rsa3072");
        keys.insert("", key(2048, "key.pkcs8.pem"))
    });
    assert_eq!(
        refused.unwrap_err(),
        graph_chat_notifications::webhook::KeyUpdateError::Key(KeyError::BadCertificateId {
            len: 0
        })
    );
    assert_eq!(opened(&new_body), n_new);
    assert_eq!(
        receiver.keys().unwrap().ids().collect::<Vec<_>>(),
        ["graphsim-rsa3072"]
    );
}
