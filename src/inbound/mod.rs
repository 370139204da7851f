//! The inbound side: parsing what Graph delivers (a webhook POST, an Event Hubs message, Event
//! Grid CloudEvents), the handshakes, and the [`Receiver`] that verifies and decrypts it, set to
//! its channel with [`Delivery`].

mod admission;
mod cloud_events;
mod envelope;
mod error;
mod owned;
mod receiver;

mod handshake;

pub use crate::json::compact as compact_json;
pub use admission::Admission;
pub use envelope::{ChangeNotification, CloudEvent, EncryptedContent, Envelope, Limits};
pub use error::BodyError;
#[cfg(feature = "http")]
pub use handshake::cloud_events_handshake_http;
pub use handshake::{
    cloud_events_handshake, handshake, AbuseProtectionResponse, HandshakeResponse,
};
pub use owned::OwnedNotification;
pub use receiver::{
    Batch, ConfigError, Delivery, Inbound, KeyUpdateError, Opened, Payload, Receiver,
    ReceiverBuilder,
};
