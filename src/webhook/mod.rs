//! The webhook side: parsing what Graph POSTs, and the [`Receiver`] that verifies and decrypts it.

mod envelope;
mod receiver;

pub use crate::json::compact as compact_json;
pub use envelope::{
    ChangeNotification, ChangeType, EncryptedContent, Envelope, LifecycleEvent, Limits,
};
pub use receiver::{ConfigError, Payload, Receiver, ReceiverBuilder};
