//! Notifications encrypted by an independent implementation (OpenSSL, through Python
//! `cryptography`: `tests/fixtures/make_fixtures.py`) decrypt to exactly the plaintexts it
//! encrypted, at every key size Graph uses, and in the envelope spellings Graph sends.
#![cfg(feature = "rust-crypto")]

use crate::common::*;

#[test]
fn every_key_size_decrypts_every_payload() {
    for bits in [2048, 3072, 4096] {
        assert_batch(&format!("rsa{bits}.json"), all_keys());
    }
}

#[test]
fn two_certificates_in_one_batch() {
    let ids: std::collections::BTreeSet<String> = manifest("two-certs.json")
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(ids.len(), 2, "the fixture must mix two certificates");
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
    let body = String::from_utf8(read("batches/pascal-case.json")).unwrap();
    assert!(
        body.contains("\"EncryptedContent\""),
        "fixture must spell keys in PascalCase"
    );
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
    let names: Vec<String> = manifest("rsa4096.json")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for name in [
        "message-large.json",
        "message-unicode.json",
        "message-pretty.json",
    ] {
        assert!(names.iter().any(|n| n == name), "rsa4096.json lacks {name}");
    }
    assert_batch("rsa4096.json", all_keys());
}
