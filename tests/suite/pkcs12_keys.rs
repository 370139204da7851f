//! PKCS#12 (.pfx) files as Windows/.NET (legacy 3DES/RC2), current OpenSSL (PBES2/AES) and
//! passwordless exports write them: each loads with its certificate and decrypts the batch the
//! independent reference encrypted for that key.
#![cfg(all(feature = "rust-crypto", feature = "pkcs12"))]

use crate::common::*;
use graph_chat_notifications::crypto::{Certificate, PrivateKey};

/// `key`, read from `keys/rsa2048/{file}`, holds its certificate and decrypts `rsa2048.json`.
fn loads_and_decrypts(file: &str, key: PrivateKey) {
    let cert = Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap();
    assert_eq!(key.bits(), 2048, "{file}");
    assert_eq!(
        key.certificate().map(Certificate::thumbprint),
        Some(cert.thumbprint()),
        "{file}: the certificate of the key"
    );
    assert_batch(
        "rsa2048.json",
        store().with_key("graphsim-rsa2048", key).unwrap(),
    );
}

#[test]
fn pkcs12_legacy_modern_and_passwordless() {
    // A password outside ASCII, as the fixture's is: the two PKCS#12 generations encode it
    // differently (BMPString for the legacy PBE, UTF-8 for PBES2).
    let password = String::from_utf8(read("keys/pfx-password.txt")).unwrap();
    assert!(!password.is_ascii());
    for (file, pass) in [
        ("key.legacy.pfx", password.as_str()),
        ("key.modern.pfx", password.as_str()),
        ("key.nopass.pfx", ""),
    ] {
        let key = PrivateKey::from_pkcs12(&read(&format!("keys/rsa2048/{file}")), pass)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        loads_and_decrypts(file, key);
    }
}

#[test]
fn a_passwordless_pfx_loads_without_naming_its_format() {
    let key = PrivateKey::from_bytes(&read("keys/rsa2048/key.nopass.pfx"))
        .unwrap_or_else(|e| panic!("key.nopass.pfx: {e}"));
    loads_and_decrypts("key.nopass.pfx", key);
}
