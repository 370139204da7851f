//! Every key format users hold keys in (PKCS#8 PEM, PKCS#1 PEM, PKCS#8 DER, PKCS#1 DER, and a
//! PEM with the key and its certificate), at every key size, loads and decrypts the batches the
//! independent reference encrypted for that key.
#![cfg(feature = "rust-crypto")]

use crate::common::*;

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

#[test]
fn a_pem_with_its_certificate_keeps_the_certificate_the_batches_name() {
    for bits in [2048, 3072, 4096] {
        let meta: serde_json::Value =
            serde_json::from_slice(&read(&format!("keys/rsa{bits}/cert.json"))).unwrap();
        let k = key(bits, "key-and-cert.pem");
        assert_eq!(
            k.certificate().map(|c| c.thumbprint_hex()).as_deref(),
            meta["encryptionCertificateThumbprint"].as_str(),
            "{bits}"
        );
        // The bare key formats carry no certificate.
        assert!(key(bits, "key.pkcs8.pem").certificate().is_none(), "{bits}");
    }
}
