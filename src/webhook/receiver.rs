//! One configured value that runs the inbound path for every POST.

use std::fmt;

use serde_json::value::RawValue;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{ChangeNotification, Envelope, LifecycleEvent, Limits};
use crate::crypto::{decrypt, DecryptBuffer, KeyStore};
use crate::error::{BodyError, ItemError, ItemErrorKind};

/// Longest `clientState` Graph accepts.
const MAX_CLIENT_STATE_CHARS: usize = 128;

/// Verifies and decrypts notification bodies. Configure it once, share it across threads
/// (it is `Send + Sync`), and give each thread its own [`DecryptBuffer`].
///
/// For each POST: [`Receiver::parse`] the body, then [`Receiver::open`] each notification. A bad
/// notification yields an [`ItemError`] naming it and its field; the others are unaffected.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
/// use graph_chat_notifications::webhook::{Payload, Receiver};
///
/// let key = PrivateKey::from_bytes(&std::fs::read("tests/fixtures/keys/rsa2048/key.pkcs8.pem")?)?;
/// let receiver = Receiver::builder()
///     .keys(KeyStore::new().with_key("graphsim-rsa2048", key)?)
///     .client_state("secretClientState")
///     .build()?;
///
/// let body = std::fs::read("tests/fixtures/batches/rsa2048.json")?;
/// let envelope = receiver.parse(&body)?;
/// let mut buf = DecryptBuffer::new();
/// for item in envelope.items() {
///     let notification = item.as_ref().map_err(Clone::clone)?;
///     match receiver.open(notification, &mut buf)? {
///         Payload::Resource(json) => assert!(json.starts_with('{')),
///         other => panic!("unexpected {other:?}"),
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Receiver {
    keys: Option<KeyStore>,
    client_states: Vec<Zeroizing<String>>,
    limits: Limits,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("keys", &self.keys)
            .field(
                "client_states",
                &format_args!("[{} redacted]", self.client_states.len()),
            )
            .field("limits", &self.limits)
            .finish()
    }
}

/// Builds a [`Receiver`].
#[derive(Default)]
pub struct ReceiverBuilder {
    keys: Option<KeyStore>,
    client_states: Vec<Zeroizing<String>>,
    limits: Limits,
}

impl fmt::Debug for ReceiverBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverBuilder").finish_non_exhaustive()
    }
}

/// Why a [`ReceiverBuilder`] refused its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A `clientState` is empty or longer than 128 characters (Graph's limit).
    #[error("a clientState must be 1 to 128 characters, got {len}")]
    BadClientState {
        /// Its length in characters.
        len: usize,
    },
}

impl ReceiverBuilder {
    /// The keys that unwrap `dataKey`. Without keys, every encrypted notification fails with
    /// [`ItemErrorKind::UnknownCertificate`] (or [`ItemErrorKind::NoProvider`] when the crate is
    /// built without a crypto provider).
    pub fn keys(mut self, keys: KeyStore) -> Self {
        self.keys = Some(keys);
        self
    }

    /// A `clientState` that notifications must carry. Call it once per value in use (one per
    /// subscription, or old and new during a rotation). Without any, `clientState` is not
    /// checked: set one in production, since it is the only proof that a notification without
    /// resource data comes from Graph.
    pub fn client_state(mut self, value: impl Into<String>) -> Self {
        self.client_states.push(Zeroizing::new(value.into()));
        self
    }

    /// Bounds on body size, notification count, per-notification size and nesting.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks the configuration and builds the receiver.
    pub fn build(self) -> Result<Receiver, ConfigError> {
        for s in &self.client_states {
            let len = s.chars().count();
            if len == 0 || len > MAX_CLIENT_STATE_CHARS {
                return Err(ConfigError::BadClientState { len });
            }
        }
        #[cfg(feature = "rust-crypto")]
        let keys = Some(self.keys.unwrap_or_default());
        #[cfg(not(feature = "rust-crypto"))]
        let keys = self.keys;
        Ok(Receiver {
            keys,
            client_states: self.client_states,
            limits: self.limits,
        })
    }
}

/// What one notification delivered, once verified.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Payload<'c> {
    /// The decrypted resource (a `chat` or `chatMessage`), as UTF-8 JSON exactly as Graph sent it.
    Resource(&'c str),
    /// A notification without resource data: its `resourceData`, if any. Fetch the resource
    /// with a GET to see it.
    ResourceData(Option<&'c RawValue>),
    /// A lifecycle notification.
    Lifecycle(LifecycleEvent<'c>),
}

impl Receiver {
    /// A builder with no keys, no expected clientState and default [`Limits`].
    pub fn builder() -> ReceiverBuilder {
        ReceiverBuilder::default()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The key store.
    pub fn keys(&self) -> Option<&KeyStore> {
        self.keys.as_ref()
    }

    /// Parses a POST body within the configured limits.
    pub fn parse<'a>(&self, body: &'a [u8]) -> Result<Envelope<'a>, BodyError> {
        Envelope::parse(body, &self.limits)
    }

    /// Verifies one notification and opens its payload: `clientState` first (constant time),
    /// then, for resource data, key lookup and authenticated decryption into `buf`.
    pub fn open<'c>(
        &self,
        notification: &'c ChangeNotification<'_>,
        buf: &'c mut DecryptBuffer,
    ) -> Result<Payload<'c>, ItemError> {
        let fail = |field, kind| ItemError::new(notification.index, field, kind);
        if !self.client_states.is_empty() {
            let sent = notification
                .client_state
                .as_deref()
                .ok_or_else(|| fail("clientState", ItemErrorKind::Missing))?;
            // Every expected value is compared, so timing does not tell which one matched.
            let matched = self
                .client_states
                .iter()
                .fold(subtle::Choice::from(0), |acc, expected| {
                    acc | expected.as_bytes().ct_eq(sent.as_bytes())
                });
            if !bool::from(matched) {
                return Err(fail("clientState", ItemErrorKind::ClientStateMismatch));
            }
        }
        if let Some(event) = notification.lifecycle_event() {
            return Ok(Payload::Lifecycle(event));
        }
        let Some(content) = &notification.encrypted_content else {
            return Ok(Payload::ResourceData(notification.resource_data));
        };
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| fail("encryptedContent", ItemErrorKind::NoProvider))?;
        decrypt(keys, content, self.limits.get_max_item_bytes(), buf)
            .map(Payload::Resource)
            .map_err(|(field, kind)| fail(field, kind))
    }
}
