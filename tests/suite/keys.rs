//! Loading keys and certificates: formats, refusals, rotation, and no key material in `Debug`.
#![cfg(feature = "rust-crypto")]

use crate::common::*;
use graph_chat_notifications::crypto::{Certificate, PrivateKey};
use graph_chat_notifications::KeyError;

#[test]
fn every_format_gives_the_same_key() {
    for bits in [2048u32, 3072, 4096] {
        let reference = key(bits, "key.pkcs8.pem");
        for file in [
            "key.pkcs1.pem",
            "key.pkcs8.der",
            "key.pkcs1.der",
            "key-and-cert.pem",
        ] {
            let k = key(bits, file);
            assert_eq!(
                k.expose_secret_pkcs1_der(),
                reference.expose_secret_pkcs1_der(),
                "{bits} {file}"
            );
            assert_eq!(k.modulus_len(), bits as usize / 8);
        }
        let with_cert = key(bits, "key-and-cert.pem");
        let cert = Certificate::from_bytes(&read(&format!("keys/rsa{bits}/cert.pem"))).unwrap();
        let meta: serde_json::Value =
            serde_json::from_slice(&read(&format!("keys/rsa{bits}/cert.json"))).unwrap();
        assert_eq!(
            cert.thumbprint_hex(),
            meta["encryptionCertificateThumbprint"]
        );
        assert_eq!(cert.to_base64(), meta["encryptionCertificate"]);
        assert_eq!(
            with_cert.certificate().unwrap().thumbprint(),
            cert.thumbprint()
        );
    }
}

#[test]
fn a_certificate_of_another_key_is_refused() {
    let cert = Certificate::from_bytes(&read("keys/rsa3072/cert.der")).unwrap();
    assert_eq!(
        key(2048, "key.pkcs8.pem")
            .with_certificate(cert)
            .unwrap_err(),
        KeyError::CertificateMismatch
    );
    let mixed = [
        read("keys/rsa2048/key.pkcs8.pem"),
        read("keys/rsa3072/cert.pem"),
    ]
    .concat();
    assert_eq!(
        PrivateKey::from_bytes(&mixed).unwrap_err(),
        KeyError::CertificateMismatch
    );
}

#[test]
fn pem_refusals_are_typed() {
    let two = [
        read("keys/rsa2048/key.pkcs8.pem"),
        read("keys/rsa3072/key.pkcs1.pem"),
    ]
    .concat();
    assert_eq!(
        PrivateKey::from_bytes(&two).unwrap_err(),
        KeyError::SeveralPrivateKeys
    );
    assert_eq!(
        PrivateKey::from_bytes(&read("keys/rsa2048/cert.pem")).unwrap_err(),
        KeyError::NoPrivateKey
    );
    let encrypted =
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert_eq!(
        PrivateKey::from_bytes(encrypted).unwrap_err(),
        KeyError::EncryptedPem
    );
    let mut der = read("keys/rsa2048/key.pkcs8.der");
    der.truncate(200);
    assert_eq!(
        PrivateKey::from_bytes(&der).unwrap_err(),
        KeyError::UnrecognizedFormat
    );
    assert!(Certificate::from_bytes(b"\x30\x03\x02\x01\x01").is_err());
}

/// Every PKCS#12 form the fixtures hold gives the key and certificate of the PEM files: the
/// legacy 3DES/RC2 file, the PBES2/AES one, and one whose key bag is not encrypted (read in place
/// from the file, its only copy wiped).
#[cfg(feature = "pkcs12")]
#[test]
fn every_pkcs12_form_gives_the_same_key() {
    let password = String::from_utf8(read("keys/pfx-password.txt")).unwrap();
    let reference = key(2048, "key-and-cert.pem");
    for (file, password) in [
        ("key.legacy.pfx", password.trim()),
        ("key.modern.pfx", password.trim()),
        ("key.nopass.pfx", ""),
    ] {
        let k = PrivateKey::from_pkcs12(&read(&format!("keys/rsa2048/{file}")), password)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            k.expose_secret_pkcs1_der(),
            reference.expose_secret_pkcs1_der(),
            "{file}"
        );
        assert_eq!(
            k.certificate().map(|c| c.thumbprint()),
            reference.certificate().map(|c| c.thumbprint()),
            "{file}"
        );
    }
}

#[cfg(feature = "pkcs12")]
#[test]
fn pkcs12_refusals_are_typed() {
    for file in ["key.legacy.pfx", "key.modern.pfx"] {
        let pfx = read(&format!("keys/rsa2048/{file}"));
        assert_eq!(
            PrivateKey::from_pkcs12(&pfx, "wrong").unwrap_err(),
            KeyError::Pkcs12Password,
            "{file}"
        );
        assert_eq!(
            PrivateKey::from_pkcs12(&pfx, "").unwrap_err(),
            KeyError::Pkcs12Password,
            "{file}"
        );
        let mut cut = pfx.clone();
        cut.truncate(pfx.len() / 2);
        assert!(matches!(
            PrivateKey::from_pkcs12(&cut, "x").unwrap_err(),
            KeyError::Pkcs12 { .. }
        ));
    }
    assert_eq!(
        PrivateKey::from_pkcs12(&read("vectors/dotnet-core-chatmessage/cert.pfx"), "Rich")
            .unwrap_err(),
        KeyError::Pkcs12Password
    );
    assert!(matches!(
        PrivateKey::from_pkcs12(b"not a pfx", "x").unwrap_err(),
        KeyError::Pkcs12 { .. }
    ));
}

#[test]
fn key_store_ids_rotation_and_limits() {
    let mut keys = store();
    assert_eq!(
        keys.insert("", key(2048, "key.pkcs8.pem")).unwrap_err(),
        KeyError::BadCertificateId { len: 0 }
    );
    assert_eq!(
        keys.insert("x".repeat(129), key(2048, "key.pkcs8.pem"))
            .unwrap_err(),
        KeyError::BadCertificateId { len: 129 }
    );
    keys.insert("x".repeat(128), key(2048, "key.pkcs8.pem"))
        .unwrap();
    keys.insert("old", key(2048, "key.pkcs8.pem")).unwrap();
    keys.insert("new", key(3072, "key.pkcs8.pem")).unwrap();
    keys.insert("new", key(4096, "key.pkcs8.pem")).unwrap(); // replaces
    assert_eq!(keys.len(), 3);
    assert!(keys.remove("old"));
    assert!(!keys.remove("old"));
    assert_eq!(
        keys.ids().collect::<Vec<_>>(),
        ["x".repeat(128).as_str(), "new"]
    );
}

#[test]
fn debug_output_holds_no_key_material() {
    let pem = String::from_utf8(read("keys/rsa2048/key-and-cert.pem")).unwrap();
    let k = PrivateKey::from_bytes(pem.as_bytes()).unwrap();
    let keys = store().with_key("graphsim-rsa2048", k.clone()).unwrap();
    let receiver = receiver(keys);
    for text in [
        format!("{k:?}"),
        format!("{receiver:?}"),
        format!("{:?}", receiver.keys()),
    ] {
        // No line of the PEM (key or certificate base64) appears, nor the clientState.
        for line in pem.lines().filter(|l| l.len() > 20) {
            assert!(!text.contains(line), "{text}");
        }
        assert!(!text.contains(CLIENT_STATE), "{text}");
        let hex_key: String = k.expose_secret_pkcs1_der()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!text.to_lowercase().contains(&hex_key), "{text}");
    }
    assert!(format!("{receiver:?}").contains("graphsim-rsa2048"));
}

/// Each provider's range of RSA key sizes, as SECURITY.md states it: 2048 to 8192 bits with
/// AWS-LC (its own limit), 2048 to 16384 with RustCrypto. An 8704-bit key loads into the second
/// only, and the first says why.
#[test]
fn each_provider_takes_its_own_range_of_key_sizes() {
    use graph_chat_notifications::crypto::{KeyStore, RUST_CRYPTO};
    let big = PrivateKey::from_bytes(&read("keys/large/rsa8704.pkcs8.pem")).unwrap();
    assert_eq!(big.bits(), 8704);
    KeyStore::with_provider(&RUST_CRYPTO)
        .with_key("big", big.clone())
        .unwrap();
    #[cfg(feature = "aws-lc")]
    assert_eq!(
        KeyStore::with_provider(&graph_chat_notifications::crypto::AWS_LC)
            .with_key("big", big)
            .unwrap_err(),
        KeyError::Provider {
            reason: "AWS-LC takes RSA keys of 2048 to 8192 bits"
        }
    );
}
