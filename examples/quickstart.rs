//! The inbound job end to end, offline: configure a receiver once, then verify and decrypt a
//! notification body the way Graph encrypts it.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! The body and key are test fixtures made by an independent implementation of Graph's side
//! (OpenSSL); in production the body is what Graph POSTs to your `notificationUrl` and the key is
//! the private key of the certificate you subscribed with.

use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::webhook::{Payload, Receiver};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Once, at start-up: the private key for each `encryptionCertificateId` you subscribed
    //    with, and the clientState you chose.
    let pem = std::fs::read(format!("{DIR}/keys/rsa2048/key-and-cert.pem"))?;
    let key = PrivateKey::from_bytes(&pem)?;
    println!(
        "loaded a {}-bit key, certificate {:?}",
        key.bits(),
        key.certificate()
    );
    let receiver = Receiver::builder()
        .keys(KeyStore::new().with_key("graphsim-rsa2048", key)?)
        .client_state("secretClientState")
        .build()?;

    // 2. Per POST: parse the body. A refusal here concerns the whole body.
    let body = std::fs::read(format!("{DIR}/batches/rsa2048.json"))?;
    let envelope = receiver.parse(&body)?;
    println!("received {} notifications", envelope.len());

    // 3. Open each notification: clientState, key lookup, HMAC check, then AES. Each one
    //    succeeds or fails on its own.
    let mut buf = DecryptBuffer::new();
    for item in envelope.items() {
        let result = item.as_ref().map_err(Clone::clone).and_then(|n| {
            let payload = receiver.open(n, &mut buf)?;
            Ok((
                n.change_type.as_deref().unwrap_or("?"),
                n.resource.as_deref().unwrap_or("?"),
                payload,
            ))
        });
        match result {
            Ok((change, resource, Payload::Resource(json))) => {
                let value: serde_json::Value = serde_json::from_str(json)?;
                let kind = if value.get("chatType").is_some() {
                    "chat"
                } else {
                    "chatMessage"
                };
                let text = value["body"]["content"]
                    .as_str()
                    .or(value["topic"].as_str())
                    .unwrap_or("");
                let preview: String = text.chars().take(60).collect();
                println!("{change:>8} {kind:<11} {resource}\n         {preview:?}");
            }
            Ok((change, resource, other)) => println!("{change:>8} {resource}: {other:?}"),
            Err(e) => println!("  failed {e}"),
        }
    }
    Ok(())
}
