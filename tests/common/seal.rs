//! Graph's side of the scheme, with knobs for building broken notifications in tests.
#![allow(dead_code)]

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::{Oaep, RsaPublicKey};

pub struct Seal {
    /// DER of the certificate to encrypt for.
    pub cert_der: Vec<u8>,
    pub cert_id: String,
    /// The symmetric key; 32 random bytes when `None`. Any length, for negative tests.
    pub sym_key: Option<Vec<u8>>,
    /// Apply PKCS#7 padding (plaintext must be block aligned when false).
    pub pad: bool,
}

impl Seal {
    pub fn new(cert_der: &[u8], cert_id: &str) -> Self {
        Self {
            cert_der: cert_der.to_vec(),
            cert_id: cert_id.to_string(),
            sym_key: None,
            pad: true,
        }
    }

    pub fn public_key(&self) -> RsaPublicKey {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(&self.cert_der).unwrap();
        let spki = cert.tbs_certificate.subject_public_key_info;
        RsaPublicKey::from_pkcs1_der(spki.subject_public_key.raw_bytes()).unwrap()
    }

    /// `encryptedContent` for `plaintext`.
    pub fn encrypt(&self, plaintext: &[u8]) -> serde_json::Value {
        let key = self.sym_key.clone().unwrap_or_else(|| {
            let mut k = vec![0u8; 32];
            OsRng.fill_bytes(&mut k);
            k
        });
        // AES needs 32 bytes even when the wrapped key is of another length.
        let mut aes_key = [0u8; 32];
        let n = key.len().min(32);
        aes_key[..n].copy_from_slice(&key[..n]);
        let iv: [u8; 16] = aes_key[..16].try_into().unwrap();
        let enc = cbc::Encryptor::<aes::Aes256>::new(&aes_key.into(), &iv.into());
        let ciphertext = if self.pad {
            enc.encrypt_padded_vec_mut::<Pkcs7>(plaintext)
        } else {
            assert_eq!(plaintext.len() % 16, 0);
            let mut buf = plaintext.to_vec();
            enc.encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(
                &mut buf,
                plaintext.len(),
            )
            .unwrap();
            buf
        };
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&aes_key).unwrap();
        mac.update(&ciphertext);
        let wrapped = self
            .public_key()
            .encrypt(&mut OsRng, Oaep::new::<sha1::Sha1>(), &key)
            .unwrap();
        serde_json::json!({
            "data": B64.encode(&ciphertext),
            "dataSignature": B64.encode(mac.finalize().into_bytes()),
            "dataKey": B64.encode(wrapped),
            "encryptionCertificateId": self.cert_id,
        })
    }
}

/// A notification around `encrypted_content`.
pub fn notification(encrypted_content: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "subscriptionId": "8f2a3b1c-0000-4000-8000-000000000001",
        "changeType": "created",
        "clientState": super::CLIENT_STATE,
        "resource": "chats('19:a@thread.v2')/messages('1')",
        "resourceData": {"id": "1"},
        "encryptedContent": encrypted_content,
        "tenantId": "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1",
    })
}
