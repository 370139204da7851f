//! The inbound job end to end, offline: answer Graph's validation handshake, then receive a
//! notification body the way Graph sends it, check its validation tokens, and verify and decrypt
//! each notification.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! The key, the JWKS and the body are test fixtures made by an independent implementation of
//! Graph's side (OpenSSL). In production the body is what Graph POSTs to your `notificationUrl`,
//! the key is that of the certificate you subscribed with, the JWKS comes from the identity
//! platform, and `now` is the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_notifications::webhook::{Inbound, Payload, Receiver};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn read(path: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(format!("{FIXTURES}/{path}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Once, at start-up: the private key of each certificate id you subscribed with, the
    //    clientState you chose, and who may vouch for a batch (your app id, your tenants).
    let key = PrivateKey::from_bytes(&read("keys/rsa2048/key-and-cert.pem")?)?;
    println!("key: {} bits, {:?}", key.bits(), key.certificate());
    let tokens = TokenValidator::new(
        ["11111111-2222-3333-4444-555555555555"],
        ["4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1"],
    );
    tokens.update_jwks(&read("tokens/jwks.json")?)?;
    let receiver = Receiver::builder()
        .keys(KeyStore::new().with_key("graphsim-rsa2048", key)?)
        .client_state("secretClientState")
        .tokens(tokens)
        .build()?;

    // The tokens in the fixture were minted at this time; a server passes SystemTime::now().
    let now: SystemTime = UNIX_EPOCH + Duration::from_secs(1_800_000_000);

    // 2. When you subscribe, Graph first checks the URL: answer 200 text/plain with the token.
    let query = "validationToken=Validation%3A%20Testing%20client%20application%20reachability";
    if let Inbound::Handshake(reply) = receiver.handle(query, b"", now)? {
        println!(
            "\nhandshake: {} {} {:?}",
            reply.status(),
            reply.content_type(),
            reply.body()
        );
    }

    // 3. Then notifications arrive. One call checks the body and every validation token
    //    (before any RSA work); an error refuses the whole body.
    let body = read("tokens/batch.json")?;
    let Inbound::Notifications(batch) = receiver.handle("", &body, now)? else {
        unreachable!("no validationToken in the query");
    };
    println!(
        "\nreceived {} notifications, tokens from {:?}",
        batch.len(),
        batch.validated_tokens()
    );

    // 4. Open each notification: clientState, key lookup, HMAC check, then AES. Each one
    //    succeeds or fails on its own.
    let mut buf = DecryptBuffer::new();
    for i in 0..batch.len() {
        let opened = match batch.open(i, &mut buf) {
            Ok(opened) => opened,
            Err(e) => {
                println!("  failed {e}");
                continue;
            }
        };
        let n = opened.notification;
        let change = n.change_type.as_deref().unwrap_or("?");
        let resource = n.resource.as_deref().unwrap_or("?");
        match opened.payload {
            Payload::Resource(json) => {
                let value: serde_json::Value = serde_json::from_str(&json)?;
                let kind = if value.get("chatType").is_some() {
                    "chat"
                } else {
                    "chatMessage"
                };
                println!(
                    "\n{change} {kind} {resource}\n{}",
                    serde_json::to_string_pretty(&value)?
                );
            }
            other => println!("\n{change} {resource}: {other:?}"),
        }
    }
    Ok(())
}
