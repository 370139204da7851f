//! Broken and well-formed `encryptedContent`, through the crate's simulator.
#![allow(dead_code)]

use graph_chat_notifications::crypto::Certificate;
use graph_chat_notifications::testing::{encrypt_with, Encryption, Recipient};

pub struct Seal {
    cert: Certificate,
    cert_id: String,
    /// The symmetric key; 32 random bytes when `None`. Any length, for negative tests.
    pub sym_key: Option<Vec<u8>>,
    /// Apply PKCS#7 padding (plaintext must be block aligned when false).
    pub pad: bool,
}

impl Seal {
    pub fn new(cert_der: &[u8], cert_id: &str) -> Self {
        Self {
            cert: Certificate::from_der(cert_der).unwrap(),
            cert_id: cert_id.to_string(),
            sym_key: None,
            pad: true,
        }
    }

    /// `encryptedContent` for `plaintext`.
    pub fn encrypt(&self, plaintext: &[u8]) -> serde_json::Value {
        let how = Encryption {
            symmetric_key: self.sym_key.clone(),
            no_padding: !self.pad,
        };
        encrypt_with(
            Recipient::Certificate(&self.cert),
            &self.cert_id,
            plaintext,
            &how,
        )
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
