//! The rich-notification vector from Microsoft's own SDK tests (msgraph-sdk-dotnet-core, also in
//! msgraph-sdk-java-core; see `tests/fixtures/vectors/dotnet-core-chatmessage/SOURCE.txt`): an
//! RSA-4096 key as PEM and as the legacy PKCS#12 the test ships, decrypting to the recorded
//! plaintext byte for byte.
#![cfg(feature = "rust-crypto")]

use crate::common::*;
use graph_chat_notifications::crypto::{Certificate, DecryptBuffer, PrivateKey};
use graph_chat_notifications::inbound::Payload;

const DIR: &str = "vectors/dotnet-core-chatmessage";
const THUMBPRINT: &str = "4B95353E086AD37196606ACF834A14532F03E6DB";

/// The vector's one notification opened with `key` under the vector's certificate id.
fn decrypt_vector(key: PrivateKey) {
    let receiver = receiver(store().with_key("custom-id-for-testing", key).unwrap());
    let body = vector_body();
    let batch = receiver
        .receive(&body, std::time::SystemTime::now())
        .unwrap();
    assert_eq!(batch.len(), 1);
    let expected = read(&format!("{DIR}/plaintext.json"));
    assert_eq!(expected.len(), 1297, "the recorded plaintext");
    let mut opened = 0;
    batch.open_each(&mut DecryptBuffer::new(), |result| {
        opened += 1;
        match result.unwrap().payload {
            Payload::Decrypted(json) => assert!(
                json.as_bytes() == expected.as_slice(),
                "not byte for byte {DIR}/plaintext.json: {json}"
            ),
            other => panic!("{other:?}"),
        }
    });
    assert_eq!(opened, 1);
}

#[test]
fn microsoft_sdk_vector_from_pem() {
    let k = PrivateKey::from_bytes(&read(&format!("{DIR}/private_key.pem"))).unwrap();
    assert_eq!(k.bits(), 4096);
    let cert = Certificate::from_bytes(&read(&format!("{DIR}/certificate.pem"))).unwrap();
    assert_eq!(cert.thumbprint_hex(), THUMBPRINT);
    // With the certificate attached, the vector's thumbprint is checked too.
    let k = k.with_certificate(cert).unwrap();
    decrypt_vector(k);
}

#[cfg(feature = "pkcs12")]
#[test]
fn microsoft_sdk_vector_from_legacy_pfx() {
    let k = PrivateKey::from_pkcs12(&read(&format!("{DIR}/cert.pfx")), "rich").unwrap();
    assert_eq!(k.bits(), 4096);
    assert_eq!(
        k.certificate().map(Certificate::thumbprint_hex).as_deref(),
        Some(THUMBPRINT)
    );
    decrypt_vector(k);
}
