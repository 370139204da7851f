//! `encryptionCertificateThumbprint` is checked against the certificate a key was loaded with:
//! the right one passes in either case, any other fails that item with `ThumbprintMismatch`.
//! A key loaded without its certificate has nothing to check against.
#![cfg(feature = "rust-crypto")]

use crate::common::*;
use graph_chat_notifications::crypto::{Certificate, PrivateKey};
use graph_chat_notifications::ItemErrorKind;

const FIELD: &str = "encryptedContent.encryptionCertificateThumbprint";

fn sent_thumbprint() -> String {
    let meta: serde_json::Value = serde_json::from_slice(&read("keys/rsa2048/cert.json")).unwrap();
    meta["encryptionCertificateThumbprint"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `batches/rsa2048.json` with every thumbprint replaced by `thumbprint`.
fn body_with(thumbprint: &str) -> Vec<u8> {
    let body = String::from_utf8(read("batches/rsa2048.json")).unwrap();
    let sent = sent_thumbprint();
    assert!(body.contains(&sent), "the batch must send the thumbprint");
    body.replace(&sent, thumbprint).into_bytes()
}

fn assert_all_mismatch(results: Vec<Result<String, graph_chat_notifications::ItemError>>) {
    assert_eq!(results.len(), manifest("rsa2048.json").len());
    for r in results {
        let e = r.unwrap_err();
        assert_eq!(e.field(), FIELD);
        assert_eq!(e.kind(), &ItemErrorKind::ThumbprintMismatch);
    }
}

#[test]
fn thumbprint_is_checked_when_the_certificate_is_known() {
    let k = key(2048, "key-and-cert.pem");
    assert_eq!(
        k.certificate().map(Certificate::thumbprint_hex),
        Some(sent_thumbprint())
    );
    let receiver = receiver(store().with_key("graphsim-rsa2048", k).unwrap());
    let expected: Vec<String> = manifest("rsa2048.json")
        .iter()
        .map(|(name, _)| plaintext(name))
        .collect();
    let thumb = sent_thumbprint();
    // As sent (upper case), and in lower case: the same thumbprint.
    for spelled in [thumb.clone(), thumb.to_lowercase()] {
        let got: Vec<String> = open_all(&receiver, &body_with(&spelled))
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{spelled}: {e}")))
            .collect();
        assert_eq!(got, expected, "{spelled}");
    }
    // Another certificate's, one digit off, cut short, and not hex at all.
    let mut one_off = thumb.clone().into_bytes();
    one_off[39] = if one_off[39] == b'0' { b'1' } else { b'0' };
    for wrong in [
        "AB".repeat(20),
        String::from_utf8(one_off).unwrap(),
        thumb[..38].to_string(),
        "Z".repeat(40),
    ] {
        assert_all_mismatch(open_all(&receiver, &body_with(&wrong)));
    }
}

#[test]
fn a_key_without_its_certificate_checks_no_thumbprint() {
    let receiver = receiver(
        store()
            .with_key("graphsim-rsa2048", key(2048, "key.pkcs8.pem"))
            .unwrap(),
    );
    let results = open_all(&receiver, &body_with(&"AB".repeat(20)));
    assert_eq!(results.len(), manifest("rsa2048.json").len());
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

#[test]
fn the_microsoft_vector_thumbprint_is_checked() {
    let dir = "vectors/dotnet-core-chatmessage";
    let k = PrivateKey::from_bytes(&read(&format!("{dir}/private_key.pem")))
        .unwrap()
        .with_certificate(
            Certificate::from_bytes(&read(&format!("{dir}/certificate.pem"))).unwrap(),
        )
        .unwrap();
    let receiver = receiver(store().with_key("custom-id-for-testing", k).unwrap());
    let body = String::from_utf8(vector_body()).unwrap();
    let thumb = "4B95353E086AD37196606ACF834A14532F03E6DB";
    assert!(body.contains(thumb));
    for right in [thumb.to_string(), thumb.to_lowercase()] {
        let results = open_all(&receiver, body.replace(thumb, &right).as_bytes());
        assert!(results[0].is_ok(), "{right}: {results:?}");
    }
    let results = open_all(&receiver, body.replace(thumb, &"AB".repeat(20)).as_bytes());
    let e = results[0].as_ref().unwrap_err();
    assert_eq!(
        (e.field(), e.kind()),
        (FIELD, &ItemErrorKind::ThumbprintMismatch)
    );
}
