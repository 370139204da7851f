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
//! use graph_chat_notifications::webhook::{Payload, Receiver};
//!
//! // Once, at start-up: the key for the certificate id you subscribed with.
//! let pem = std::fs::read("tests/fixtures/keys/rsa2048/key.pkcs8.pem")?;
//! let receiver = Receiver::builder()
//!     .keys(KeyStore::new().with_key("graphsim-rsa2048", PrivateKey::from_bytes(&pem)?)?)
//!     .client_state("secretClientState")
//!     .build()?;
//!
//! // Per POST: parse the body, then open each notification.
//! let body = std::fs::read("tests/fixtures/batches/rsa2048.json")?;
//! let envelope = receiver.parse(&body)?; // whole-body refusal: answer and log
//! let mut buf = DecryptBuffer::new(); // one per thread, reused
//! for item in envelope.items() {
//!     let opened = item
//!         .as_ref()
//!         .map_err(Clone::clone)
//!         .and_then(|n| receiver.open(n, &mut buf));
//!     match opened {
//!         Ok(Payload::Resource(json)) => println!("{json}"),
//!         Ok(other) => println!("{other:?}"),
//!         Err(e) => eprintln!("{e}"), // names the notification and the field
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Features
//! * `rust-crypto` (default): the pure-Rust [`crypto::RUST_CRYPTO`] provider.
//! * `pkcs12`: load keys from `.pfx` files, legacy (3DES/RC2) and modern (PBES2/AES).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod crypto;
pub mod error;
mod json;
pub mod webhook;

pub use error::{BodyError, ItemError, ItemErrorKind, KeyError};
pub use webhook::ConfigError;
