//! Microsoft Graph change notifications for Teams chats and chat messages: verified, decrypted
//! and typed, without I/O.
//!
//! Graph POSTs notification collections to your webhook. With resource data, each notification
//! carries the changed `chat` or `chatMessage` encrypted for your certificate: an RSA-OAEP
//! (SHA-1) wrapped AES key, an HMAC-SHA256 signature and AES-256-CBC ciphertext. This crate turns
//! those bytes into verified plaintext, one result per notification, so a bad item never takes
//! the good ones down.
//!
//! The crate is sans-IO: it does no networking, reads no clock and keeps no global state. You
//! move the bytes (with any HTTP server); it checks and decrypts them.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
//! use graph_chat_notifications::tokens::TokenValidator;
//! use graph_chat_notifications::inbound::{Inbound, Payload, Receiver};
//! # let read = |p: &str| std::fs::read(format!("tests/fixtures/{p}")).unwrap();
//! # let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
//!
//! // Once, at start-up: the key for the certificate id you subscribed with, your clientState,
//! // and who may send you validation tokens (your app id, the tenants you serve).
//! let key = PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem"))?;
//! let tokens = TokenValidator::new(
//!     ["11111111-2222-3333-4444-555555555555"],
//!     ["4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1"],
//! );
//! tokens.update_jwks(&read("tokens/jwks.json"), now)?; // bytes you fetched from the JWKS URL
//! let receiver = Receiver::builder()
//!     .keys(KeyStore::new().with_key("graphsim-rsa2048", key)?)
//!     .client_state("secretClientState")
//!     .tokens(tokens)
//!     .build()?;
//!
//! // Per POST: one call, with the query string, the body and the time.
//! let body = read("tokens/batch.json");
//! match receiver.handle("", &body, now)? {
//!     Inbound::Handshake(reply) => println!("200 text/plain: {}", reply.body()),
//!     Inbound::Notifications(batch) => {
//!         let mut buf = DecryptBuffer::new(); // one per thread, reused
//!         batch.open_each(&mut buf, |opened| match opened {
//!             Ok(opened) => match opened.payload {
//!                 Payload::Decrypted(json) => println!("{json}"),
//!                 other => println!("{other:?}"),
//!             },
//!             Err(e) => eprintln!("{e}"), // names the notification and the field
//!         });
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Modules, each importing only the ones below it: [`inbound`] (what Graph delivers, on every
//! channel: handshakes, envelopes, CloudEvents, admission, [`inbound::Receiver`]), [`keeper`]
//! (what to renew, reauthorize, recreate or resync, and when), [`outbound`] (every request value,
//! checked against what Graph accepts: subscriptions, the resync reads, typed pages),
//! [`tokens`] (`validationTokens`, the JWKS refresh policy), [`crypto`] (keys and the decrypt
//! core), [`model`] (typed chats and messages, the timeline), [`cloud`] (national clouds),
//! [`error`]. The [`manual`] holds the guides: security, delivery channels, lifecycle. The
//! server half (axum, tokio, SQLite) is the `graph-chat-webhook` crate.
//!
//! # Features
//! * `aws-lc` (default): the AWS-LC provider, `crypto::AWS_LC`: constant-time RSA at OpenSSL's
//!   speed; builds C. [`crypto::default_provider`] picks it when it is on.
//! * `rust-crypto`: the pure-Rust provider, `crypto::RUST_CRYPTO`, for targets without a C
//!   compiler (its `rsa` crate carries RUSTSEC-2023-0071; see `SECURITY.md`).
//! * `pkcs12`: load keys from `.pfx` files, legacy (3DES/RC2) and modern (PBES2/AES).
//! * `testing`: [`testing::GraphSimulator`], Graph's side for your tests (test-only).
//! * `http`: conversions to and from the `http` crate's requests and responses (axum, hyper,
//!   reqwest, tower): outbound requests, `Receiver::handle_http`, handshake replies, the
//!   keeper's `Outcome::from_http_response`.
//! * `tracing`: spans and events from the inbound path, counting refusals by kind; never content,
//!   secrets or tokens.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cloud;
pub mod crypto;
pub mod error;
pub mod inbound;
mod json;
pub mod keeper;
pub mod manual;
pub mod model;
pub mod outbound;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;

pub use cloud::Cloud;
pub use crypto::KeyError;
pub use error::{ItemError, ItemErrorKind};
pub use inbound::{BodyError, ConfigError};

/// Graph's rule for `clientState` and `encryptionCertificateId`:
/// 1 to [`outbound::MAX_SECRET_CHARS`] characters. On failure, the length in characters.
pub(crate) fn check_graph_id_len(value: &str) -> Result<(), usize> {
    let len = value.chars().count();
    if (1..=outbound::MAX_SECRET_CHARS).contains(&len) {
        Ok(())
    } else {
        Err(len)
    }
}
