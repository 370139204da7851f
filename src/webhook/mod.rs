//! The webhook side: parsing what Graph POSTs, and the [`Receiver`] that verifies and decrypts it.

mod envelope;
mod receiver;

mod handshake;

pub use crate::json::compact as compact_json;
pub use envelope::{
    ChangeNotification, ChangeType, EncryptedContent, Envelope, LifecycleEvent, Limits,
};
pub use handshake::{handshake, HandshakeResponse};
pub use receiver::{Batch, ConfigError, Inbound, Opened, Payload, Receiver, ReceiverBuilder};
