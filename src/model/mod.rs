//! Typed `chat` and `chatMessage` resources: borrowed from the decrypted buffer, lossless, and
//! strict where it matters.
//!
//! * **Borrowed**: strings borrow from the JSON they were read from unless an escape forces a
//!   copy; [`IntoOwned::into_owned`] makes a `'static` copy for queues and caches.
//! * **Lossless**: every property is a [`Prop`], which tells an absent property (in a
//!   user-specific chat notification, "unchanged") from `null` and from a value; properties this
//!   version does not model are kept in `other`; enum values it does not know are kept as
//!   `Other`. Serializing a model gives back the JSON it was read from (as a JSON value: key order
//!   may differ).
//! * **Strict**: a property of the wrong JSON type, or a time that is not a time, fails with a
//!   [`ModelError`] naming the property's path (`from.user.displayName`).
//!
//! ```
//! use graph_chat_notifications::model::{decode, ChatOrMessage, ResourceKind};
//! let json = r#"{"id":"1616990032035","messageType":"message","createdDateTime":"2021-03-29T03:53:52.035Z",
//!   "lastEditedDateTime":null,"body":{"contentType":"html","content":"<p>Hi</p>"},"newProperty":[1]}"#;
//! let ChatOrMessage::ChatMessage(m) = decode(json, Some(ResourceKind::ChatMessage))? else { unreachable!() };
//! assert_eq!(m.id.as_deref(), Some("1616990032035"));
//! assert!(m.last_edited_date_time.is_null());      // null, not absent
//! assert!(m.deleted_date_time.is_absent());        // absent, not null
//! let back: serde_json::Value = serde_json::to_value(&m).unwrap();
//! assert_eq!(back, serde_json::from_str::<serde_json::Value>(json).unwrap());
//!
//! let err = decode(r#"{"id":"1","createdDateTime":"yesterday"}"#, Some(ResourceKind::ChatMessage)).unwrap_err();
//! assert_eq!(err.path(), "createdDateTime");
//! # Ok::<(), graph_chat_notifications::model::ModelError>(())
//! ```

mod change;
mod chat;
mod datetime;
mod decode;
mod enums;
mod error;
mod kind;
mod macros;
mod message;
mod path;
pub(crate) mod redact;
mod timeline;
pub(crate) mod unique;
mod value;

pub use change::{ChangeType, LifecycleEvent};
pub use chat::{
    Chat, ChatType, ChatViewpoint, ConversationMember, LastMessagePreview, OnlineMeetingInfo,
};
pub use datetime::{parse_time, DateTime};
pub(crate) use decode::read;
pub use decode::{decode, resource_kind, ChatOrMessage};
pub use enums::{EnumValue, GraphEnum};
pub use error::ModelError;
pub use kind::ResourceKind;
pub use message::{
    Attachment, BodyType, ChannelIdentity, ChatMessage, DlpAction, EventDetail, EventFields,
    Identity, IdentitySet, Importance, ItemBody, Mention, MessageHistoryItem, MessageType,
    PolicyTip, PolicyViolation, Reaction, RedactedText,
};
pub use path::{ResourcePath, ResourcePathError};
pub use timeline::{
    chat_is_visible, metered_cost_usd, ChatTimeline, MessageVersion, TimelineEntry,
    METERED_PRICE_MICRO_USD,
};
pub use value::{IntoOwned, Json, Prop, Text};
