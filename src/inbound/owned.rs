//! The owned, serializable form of an opened notification: what a worker hands to a queue.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{CloudEvent, Opened, Payload};
use crate::error::ItemError;
use crate::model::{ChangeType, ChatOrMessage, EnumValue, IntoOwned, LifecycleEvent, ResourceKind};

/// An opened notification that owns its data: what a worker puts on a queue once the checks
/// have passed. It serializes to JSON with Graph's property names and deserializes back
/// (`DeserializeOwned`), and [`payload`](Self::payload) and [`decode`](Self::decode) give the
/// same views [`Opened`] gives.
///
/// It holds no secret of the subscription: `clientState` was checked and is left out, and the
/// ciphertext is replaced by what it decrypted to (which is the message content: treat the
/// queue accordingly). `Debug` shows ids and kinds, never the resource.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
/// use graph_chat_notifications::model::{ChatOrMessage, IntoOwned};
/// use graph_chat_notifications::inbound::{OwnedNotification, Receiver};
/// # let read = |p: &str| std::fs::read(format!("tests/fixtures/{p}")).unwrap();
/// let key = PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem"))?;
/// let receiver = Receiver::builder()
///     .keys(KeyStore::new().with_key("graphsim-rsa2048", key)?)
///     .client_state("secretClientState")
///     .dangerous_skip_token_validation() // the fixture batch carries no tokens
///     .build()?;
/// let body = read("batches/rsa2048.json");
/// let batch = receiver.receive(&body, std::time::SystemTime::now())?;
/// let mut buf = DecryptBuffer::new();
/// let queued: OwnedNotification = batch.open(0, &mut buf)?.into_owned();
/// let wire = serde_json::to_vec(&queued)?;
/// assert!(!String::from_utf8_lossy(&wire).contains("secretClientState"));
///
/// // On the consumer's side:
/// let back: OwnedNotification = serde_json::from_slice(&wire)?;
/// assert_eq!(back, queued);
/// assert!(matches!(back.decode()?, Some(ChatOrMessage::Chat(_) | ChatOrMessage::ChatMessage(_))));
/// # Ok(()) }
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OwnedNotification {
    /// Position in the body's `value`.
    pub index: usize,
    /// `id` of the notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `subscriptionId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// `subscriptionExpirationDateTime`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_expiration_date_time: Option<String>,
    /// `changeType`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<String>,
    /// `resource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// `tenantId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// `lifecycleEvent`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_event: Option<String>,
    /// `resourceData`, untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_data: Option<Box<RawValue>>,
    /// The CloudEvent that carried the notification, when it came through Event Grid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_event: Option<CloudEvent<'static>>,
    /// The decrypted resource, as Graph sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decrypted: Option<Box<RawValue>>,
    /// Whether this is Graph's validation message on an Event Hub.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validation_message: bool,
    /// [`ChangeNotification::idempotency_key`](super::ChangeNotification::idempotency_key),
    /// for consumers that drop redeliveries.
    pub idempotency_key: String,
}

impl OwnedNotification {
    /// What the notification delivered, borrowed from this value: the same [`Payload`] the
    /// [`Opened`] it came from held.
    pub fn payload(&self) -> Payload<'_> {
        if self.validation_message {
            Payload::ValidationMessage
        } else if let Some(event) = &self.lifecycle_event {
            Payload::Lifecycle(EnumValue::new(event.as_str()))
        } else if let Some(json) = &self.decrypted {
            Payload::Decrypted(Cow::Borrowed(json.get()))
        } else {
            Payload::ResourceData(self.resource_data.as_deref().map(Cow::Borrowed))
        }
    }

    /// The typed `changeType`, if present.
    pub fn change_type(&self) -> Option<EnumValue<'_, ChangeType>> {
        self.change_type.as_deref().map(EnumValue::new)
    }

    /// The typed `lifecycleEvent`, if this is a lifecycle notification.
    pub fn lifecycle_event(&self) -> Option<EnumValue<'_, LifecycleEvent>> {
        self.lifecycle_event.as_deref().map(EnumValue::new)
    }

    /// Which resource the notification is about (from `resourceData`, else `resource`).
    pub fn resource_kind(&self) -> Option<ResourceKind> {
        crate::model::resource_kind(self.resource_data.as_deref(), self.resource.as_deref())
    }

    /// The typed resource, borrowed from this value: as [`Opened::decode`].
    pub fn decode(&self) -> Result<Option<ChatOrMessage<'_>>, ItemError> {
        let decrypted = self.decrypted.as_deref().map(RawValue::get);
        super::receiver::decode_payload(self.index, decrypted, self.resource_kind())
    }
}

impl PartialEq for OwnedNotification {
    fn eq(&self, other: &Self) -> bool {
        fn raw(r: &Option<Box<RawValue>>) -> Option<&str> {
            r.as_deref().map(RawValue::get)
        }
        self.index == other.index
            && self.id == other.id
            && self.subscription_id == other.subscription_id
            && self.subscription_expiration_date_time == other.subscription_expiration_date_time
            && self.change_type == other.change_type
            && self.resource == other.resource
            && self.tenant_id == other.tenant_id
            && self.lifecycle_event == other.lifecycle_event
            && raw(&self.resource_data) == raw(&other.resource_data)
            && self.cloud_event == other.cloud_event
            && raw(&self.decrypted) == raw(&other.decrypted)
            && self.validation_message == other.validation_message
            && self.idempotency_key == other.idempotency_key
    }
}

impl fmt::Debug for OwnedNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size =
            |r: &Option<Box<RawValue>>| r.as_ref().map(|r| format!("[{} bytes]", r.get().len()));
        f.debug_struct("OwnedNotification")
            .field("index", &self.index)
            .field("id", &self.id)
            .field("subscription_id", &self.subscription_id)
            .field("change_type", &self.change_type)
            .field("resource", &self.resource)
            .field("tenant_id", &self.tenant_id)
            .field("lifecycle_event", &self.lifecycle_event)
            .field("resource_data", &size(&self.resource_data))
            .field("cloud_event", &self.cloud_event)
            .field("decrypted", &size(&self.decrypted))
            .field("validation_message", &self.validation_message)
            .finish_non_exhaustive()
    }
}

impl IntoOwned for Opened<'_, '_> {
    type Owned = OwnedNotification;
    /// The notification and its payload, owned and ready to serialize (without `clientState`
    /// or ciphertext).
    fn into_owned(self) -> OwnedNotification {
        let n = self.notification;
        let s = |v: &Option<Cow<'_, str>>| v.as_deref().map(str::to_owned);
        let (decrypted, validation_message) = match &self.payload {
            // The receiver checked that the plaintext is JSON before handing it out.
            Payload::Decrypted(json) => (RawValue::from_string(json.to_string()).ok(), false),
            Payload::ValidationMessage => (None, true),
            _ => (None, false),
        };
        OwnedNotification {
            index: n.index,
            id: s(&n.id),
            subscription_id: s(&n.subscription_id),
            subscription_expiration_date_time: s(&n.subscription_expiration_date_time),
            change_type: s(&n.change_type),
            resource: s(&n.resource),
            tenant_id: s(&n.tenant_id),
            lifecycle_event: s(&n.lifecycle_event),
            resource_data: n.resource_data.map(ToOwned::to_owned),
            cloud_event: n.cloud_event.clone().map(IntoOwned::into_owned),
            decrypted,
            validation_message,
            idempotency_key: n.idempotency_key(),
        }
    }
}
