//! The whole job, offline, in order: subscribe, answer the handshake, receive a batch the way
//! Graph sends it (encrypted, with validation tokens), check it, decrypt it, and read the typed
//! chat and chatMessage.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Microsoft Graph is played by the crate's test simulator (feature `testing`); everything the
//! webhook side does is what a production service does.

use std::time::{Duration, SystemTime};

use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::inbound::{Inbound, Receiver};
use graph_chat_notifications::model::{ChangeType, ChatOrMessage, EnumValue};
use graph_chat_notifications::outbound::{Resource as Watch, SubscriptionRequest};
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::tokens::TokenValidator;

const APP_ID: &str = "11111111-2222-3333-4444-555555555555";
const TENANT_ID: &str = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = SystemTime::now();

    // 1. Your key and certificate (here a test fixture), and the subscription request to send to
    //    Graph with your own HTTP client and token.
    let key = PrivateKey::from_bytes(&std::fs::read(format!(
        "{FIXTURES}/keys/rsa2048/key-and-cert.pem"
    ))?)?;
    let certificate = key
        .certificate()
        .expect("the PEM holds the certificate")
        .clone();
    let request = SubscriptionRequest::builder(
        Watch::all_chat_messages(),
        "https://webhook.example.com/notifications",
    )
    .change_types([
        ChangeType::Created,
        ChangeType::Updated,
        ChangeType::Deleted,
    ])
    .include_resource_data(certificate.der(), "cert-2026-11")
    .expires_in(now, Duration::from_secs(55 * 60))
    .client_state("secretClientState")
    .build()?;
    // The body, without the (long) base64 certificate.
    let mut shown: serde_json::Value = serde_json::from_str(request.body_text())?;
    shown["encryptionCertificate"] = "(base64 of the certificate's DER)".into();
    println!(
        "1. subscribe: {} {}\n   {shown}",
        request.method.as_str(),
        request.url,
    );

    // 2. Configure the receiver once: keys, clientState, and who may vouch for a batch.
    let graph = GraphSimulator::new(APP_ID, TENANT_ID); // plays Microsoft Graph
    let tokens = TokenValidator::new([APP_ID], [TENANT_ID]);
    tokens.update_jwks(&graph.jwks(), std::time::SystemTime::now())?; // in production: bytes fetched from the JWKS URL
    let receiver = Receiver::builder()
        .keys(KeyStore::new().with_key("cert-2026-11", key)?)
        .client_state("secretClientState")
        .tokens(tokens)
        .build()?;

    // 3. Graph checks the URL first: answer 200 text/plain with the decoded token.
    let query = "validationToken=Validation%3A%20Testing%20client%20application%20reachability";
    if let Inbound::Handshake(reply) = receiver.handle(query, b"", now)? {
        println!(
            "2. handshake: answer {} ({}) with the token: {}",
            reply.status(),
            reply.content_type(),
            reply.body()
        );
    }

    // 4. Then notifications arrive: a chat and a message, encrypted for your certificate.
    let chat = std::fs::read_to_string(format!("{FIXTURES}/plaintexts/chat-group-members.json"))?;
    let message = std::fs::read_to_string(format!("{FIXTURES}/plaintexts/message-html.json"))?;
    let body = graph.collection(
        &[
            graph.notification(
                &chat,
                (&certificate).into(),
                "cert-2026-11",
                ChangeType::Created,
            ),
            graph.notification(
                &message,
                (&certificate).into(),
                "cert-2026-11",
                ChangeType::Created,
            ),
        ],
        &[graph.token(now)],
    );

    // 5. One call checks the body and every validation token, before any RSA work.
    let Inbound::Notifications(batch) = receiver.handle("", &body, now)? else {
        unreachable!("no validationToken in the query");
    };
    println!(
        "3. received {} notifications; tokens from tenant {}",
        batch.len(),
        batch.validated_tokens()[0].tenant_id
    );

    // 6. Open each: clientState, key, HMAC, AES. Each result is owned and serializable: what a
    // worker puts on a queue (no clientState, no ciphertext). Then the typed model.
    let mut buf = DecryptBuffer::new();
    let mut kept = Vec::new();
    for queued in batch.open_all(&mut buf) {
        let queued = queued?;
        let Some(resource) = queued.decode()? else {
            continue;
        };
        match &resource {
            ChatOrMessage::Chat(c) => println!(
                "4. chat \"{}\" ({}), {} members",
                c.topic.as_deref().unwrap_or("(no topic)"),
                c.chat_type.get().map_or("unknown type", EnumValue::as_str),
                c.members.get().map_or(0, Vec::len)
            ),
            ChatOrMessage::ChatMessage(m) => println!(
                "5. message {} from {} at {}: {} bytes of {}",
                m.id.as_deref().unwrap_or("?"),
                m.from
                    .get()
                    .and_then(|f| f.user.get())
                    .and_then(|u| u.display_name.as_deref())
                    .unwrap_or("(unknown sender)"),
                m.created_date_time.get().map(|t| t.as_str()).unwrap_or("?"),
                m.body
                    .get()
                    .and_then(|b| b.content.get())
                    .map_or(0, |c| c.len()),
                m.body
                    .get()
                    .and_then(|b| b.content_type.get())
                    .map_or("text", EnumValue::as_str),
            ),
            _ => {}
        }
        kept.push(serde_json::to_string(&queued)?);
    }
    println!(
        "6. done: {} typed resources ready for your queue",
        kept.len()
    );
    Ok(())
}
