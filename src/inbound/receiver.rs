//! One configured value that runs the inbound path for every POST.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use serde_json::value::RawValue;
use zeroize::Zeroizing;

use super::BodyError;
use super::{
    handshake, Admission, ChangeNotification, Envelope, HandshakeResponse, Limits,
    OwnedNotification,
};
use crate::crypto::KeyError;
use crate::crypto::{decrypt, DecryptBuffer, KeyStore};
use crate::error::{ItemError, ItemErrorKind};
use crate::model::{EnumValue, IntoOwned, LifecycleEvent};
use crate::tokens::{TokenValidator, ValidatedToken};

/// Runs the whole inbound path. Configure it once, share it across threads (it is
/// `Send + Sync`), and give each thread its own [`DecryptBuffer`].
///
/// Per POST, [`Receiver::handle`] answers the validation handshake, or parses the body and checks
/// every `validationToken` (before any RSA work) and hands back a [`Batch`]; [`Batch::open`]
/// then checks each notification's `clientState` and decrypts it. A bad notification yields an
/// [`ItemError`] naming it and its field; the others are unaffected.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
/// use graph_chat_notifications::tokens::TokenValidator;
/// use graph_chat_notifications::inbound::{Inbound, Payload, Receiver};
/// # let fixture = |p: &str| std::fs::read(format!("tests/fixtures/{p}")).unwrap();
///
/// let key = PrivateKey::from_bytes(&fixture("keys/rsa2048/key.pkcs8.pem"))?;
/// let tokens = TokenValidator::new(
///     ["11111111-2222-3333-4444-555555555555"], // your app id
///     ["4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1"], // the tenants you serve
/// );
/// tokens.update_jwks(&fixture("tokens/jwks.json"), std::time::SystemTime::now())?; // fetched from the identity platform
/// let receiver = Receiver::builder()
///     .keys(KeyStore::new().with_key("graphsim-rsa2048", key)?)
///     .client_state("secretClientState")
///     .tokens(tokens)
///     .build()?;
///
/// let body = fixture("tokens/batch.json");
/// # let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
/// let Inbound::Notifications(batch) = receiver.handle("", &body, now)? else { unreachable!() };
/// let mut buf = DecryptBuffer::new();
/// batch.open_each(&mut buf, |opened| {
///     let opened = opened.expect("the fixture batch is good");
///     assert!(matches!(opened.payload, Payload::Decrypted(_)));
/// });
/// # Ok(()) }
/// ```
pub struct Receiver {
    /// Replaced whole by [`Receiver::update_keys`]; each batch takes a snapshot when received.
    keys: RwLock<Option<Arc<KeyStore>>>,
    /// Serializes key updates, so that two concurrent updates cannot lose one another.
    key_updates: Mutex<()>,
    client_states: Vec<Zeroizing<String>>,
    /// Set by [`ReceiverBuilder::allowed_tenants`]: when not empty, every notification's tenant.
    tenants: Vec<String>,
    limits: Limits,
    tokens: Option<TokenValidator>,
    /// Set only by [`ReceiverBuilder::dangerous_skip_token_validation`].
    skip_tokens: bool,
    delivery: Delivery,
}

/// How Graph delivers the bodies a [`Receiver`] reads: part of its configuration, because each
/// channel has its own shape and its own proof of origin.
///
/// | channel | body | proof of origin |
/// |---|---|---|
/// | [`Webhook`](Self::Webhook) | `{"value": [...], "validationTokens": [...]}` POSTed to your URL | `validationTokens` (required for encrypted content) and `clientState` |
/// | [`EventHubs`](Self::EventHubs) | the same collection, without `validationTokens`; Graph's validation message (every field `"NA"`) arrives once per new subscription | the hub's access control (only Graph can send to it: lock it down), and `clientState` |
/// | [`EventGrid`](Self::EventGrid) | one CloudEvent 1.0, or a JSON array of them, each `data` one notification | the partner topic and event subscription in your Azure subscription (and Microsoft Entra authentication of the delivery, which your endpoint checks), and `clientState` |
///
/// Tokens that do arrive (an Event Hubs body that carries `validationTokens`) are still checked
/// when a validator is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Delivery {
    /// A webhook: Graph POSTs to your `https://` notification URL (the default).
    #[default]
    Webhook,
    /// Azure Event Hubs: each event's body is a notification collection.
    EventHubs,
    /// Azure Event Grid: CloudEvents from a Graph partner topic.
    EventGrid,
}

impl Delivery {
    /// Whether Graph sends `validationTokens` on this channel.
    pub fn carries_tokens(self) -> bool {
        matches!(self, Self::Webhook)
    }
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("keys", &self.keys())
            .field(
                "client_states",
                &format_args!("[{} redacted]", self.client_states.len()),
            )
            .field("limits", &self.limits)
            .field("tokens", &self.tokens)
            .field("delivery", &self.delivery)
            .finish()
    }
}

/// Builds a [`Receiver`].
#[derive(Default)]
pub struct ReceiverBuilder {
    keys: Option<KeyStore>,
    client_states: Vec<Zeroizing<String>>,
    tenants: Vec<String>,
    limits: Limits,
    tokens: Option<TokenValidator>,
    skip_tokens: bool,
    any_client_state: bool,
    delivery: Delivery,
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
    /// Keys are configured (so encrypted content is expected) but validation tokens are not
    /// checked: configure a [`TokenValidator`], or opt out explicitly with
    /// [`ReceiverBuilder::dangerous_skip_token_validation`].
    #[error("keys are configured but validation tokens are not checked")]
    TokenValidationNotConfigured,
    /// The token validator has no app id or no tenant, so it could accept nothing.
    #[error("the token validator needs at least one app id and one tenant id")]
    EmptyTokenValidator,
    /// No `clientState` is configured: it is the only proof of origin for notifications
    /// without resource data. Configure one with [`ReceiverBuilder::client_state`], or opt out
    /// with [`ReceiverBuilder::dangerous_accept_any_client_state`].
    #[error("no clientState is configured")]
    ClientStateNotConfigured,
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
    /// subscription, or old and new during a rotation). At least one is required: it is the
    /// only proof that a notification without resource data comes from Graph.
    pub fn client_state(mut self, value: impl Into<String>) -> Self {
        self.client_states.push(Zeroizing::new(value.into()));
        self
    }

    /// Builds a receiver that checks no `clientState`, so that anyone who knows the URL can
    /// deliver notifications without resource data. Use it only in tests or debugging tools.
    pub fn dangerous_accept_any_client_state(mut self) -> Self {
        self.any_client_state = true;
        self
    }

    /// The tenants the receiver serves: every notification's `tenantId` must be one of them
    /// (compared without regard to case), and a CloudEvent's `source`
    /// (`/tenants/{tenantId}/applications/{appId}`) must name the same tenant; others fail alone
    /// with [`ItemErrorKind::TenantNotAllowed`]. Without it, any tenant is taken (on the webhook
    /// channel the validation tokens still bind each notification to a tenant they were issued
    /// for). On Event Hubs and Event Grid, where Graph sends no tokens, it is the tenant check.
    pub fn allowed_tenants<I>(mut self, tenants: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tenants.extend(tenants.into_iter().map(Into::into));
        self
    }

    /// Bounds on body size, notification count, per-notification size and nesting.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks `validationTokens`: every token must pass before anything in the body is
    /// decrypted, and a body with encrypted content must carry tokens.
    pub fn tokens(mut self, validator: TokenValidator) -> Self {
        self.tokens = Some(validator);
        self
    }

    /// Decrypts without checking `validationTokens`. Then anyone who has your certificate (it
    /// is public) can make notifications you will decrypt and trust: use it only in tests, or
    /// behind another proof of origin.
    ///
    /// Without it, a receiver without a [`TokenValidator`] can never decrypt: `build` refuses
    /// keys, and [`Receiver::update_keys`] refuses to add any.
    pub fn dangerous_skip_token_validation(mut self) -> Self {
        self.skip_tokens = true;
        self
    }

    /// The channel the bodies come through (default [`Delivery::Webhook`]). On Event Hubs and
    /// Event Grid Graph sends no validation tokens, so a receiver for them decrypts without a
    /// [`TokenValidator`]: the channel's own access control is the proof of origin.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Checks the configuration and builds the receiver.
    pub fn build(self) -> Result<Receiver, ConfigError> {
        for s in &self.client_states {
            crate::check_graph_id_len(s).map_err(|len| ConfigError::BadClientState { len })?;
        }
        if let Some(t) = &self.tokens {
            if t.app_ids().is_empty() || t.tenant_ids().is_empty() {
                return Err(ConfigError::EmptyTokenValidator);
            }
        }
        if self.client_states.is_empty() && !self.any_client_state {
            return Err(ConfigError::ClientStateNotConfigured);
        }
        let has_keys = self.keys.as_ref().is_some_and(|k| !k.is_empty());
        if has_keys && !may_hold_keys(self.tokens.is_some(), self.skip_tokens, self.delivery) {
            return Err(ConfigError::TokenValidationNotConfigured);
        }
        #[cfg(any(feature = "rust-crypto", feature = "aws-lc"))]
        let keys = Some(self.keys.unwrap_or_default());
        #[cfg(not(any(feature = "rust-crypto", feature = "aws-lc")))]
        let keys = self.keys;
        Ok(Receiver {
            keys: RwLock::new(keys.map(Arc::new)),
            key_updates: Mutex::new(()),
            client_states: self.client_states,
            tenants: self.tenants,
            limits: self.limits,
            tokens: self.tokens,
            skip_tokens: self.skip_tokens,
            delivery: self.delivery,
        })
    }
}

/// Whether a receiver may decrypt: it checks validation tokens, or says it will not, or reads a
/// channel on which Graph sends none. `build` and `update_keys` both apply it.
fn may_hold_keys(checks_tokens: bool, skip_tokens: bool, delivery: Delivery) -> bool {
    checks_tokens || skip_tokens || !delivery.carries_tokens()
}

/// Why [`Receiver::update_keys`] changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyUpdateError {
    /// The receiver has no key store to change: it was built without keys and without a crypto
    /// provider. Give it one with [`ReceiverBuilder::keys`].
    #[error("the receiver has no key store (build it with keys, or with a crypto provider)")]
    NoKeyStore,
    /// The change would let a receiver that checks no validation tokens decrypt: configure a
    /// token validator, or opt out with [`ReceiverBuilder::dangerous_skip_token_validation`].
    #[error("the receiver checks no validation tokens, so it may hold no keys")]
    TokenValidationNotConfigured,
    /// The change itself failed: a key or certificate id was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What one POST to the webhook is.
#[derive(Debug)]
pub enum Inbound<'r, 'a> {
    /// A validation request: send this response.
    Handshake(HandshakeResponse),
    /// A notification collection whose tokens passed.
    Notifications(Batch<'r, 'a>),
}

/// A notification collection that passed the body checks and the token checks. Open its
/// notifications one at a time with [`Batch::open`].
pub struct Batch<'r, 'a> {
    receiver: &'r Receiver,
    /// The keys in force when the batch was received: a key update does not change them.
    keys: Option<Arc<KeyStore>>,
    envelope: Envelope<'a>,
    tokens: Vec<ValidatedToken>,
    /// Read back from an [`Admission`] record: the checks before decryption already passed.
    admitted: bool,
}

impl fmt::Debug for Batch<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("envelope", &self.envelope)
            .field("tokens", &self.tokens)
            .field("admitted", &self.admitted)
            .finish()
    }
}

/// What one notification delivered, once verified. `Debug` shows the size of a decrypted
/// resource, never its content.
#[derive(Clone)]
#[non_exhaustive]
pub enum Payload<'c> {
    /// The decrypted resource (a `chat` or `chatMessage`), as UTF-8 JSON exactly as Graph sent it.
    Decrypted(Cow<'c, str>),
    /// A notification without resource data: its `resourceData`, if any. Fetch the resource
    /// with a GET to see it.
    ResourceData(Option<Cow<'c, RawValue>>),
    /// A lifecycle notification: its event, which may be one newer than the crate (kept as
    /// sent).
    Lifecycle(EnumValue<'c, LifecycleEvent>),
    /// Graph's validation message on an Event Hub (every field `"NA"`), sent when a
    /// subscription is created there: proof the hub is reachable, nothing to process.
    ValidationMessage,
}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decrypted(json) => write!(f, "Decrypted([{} bytes])", json.len()),
            // The size only: `resourceData` holds properties of the resource.
            Self::ResourceData(None) => f.write_str("ResourceData(None)"),
            Self::ResourceData(Some(r)) => {
                write!(f, "ResourceData(Some([{} bytes]))", r.get().len())
            }
            Self::Lifecycle(e) => f.debug_tuple("Lifecycle").field(e).finish(),
            Self::ValidationMessage => f.write_str("ValidationMessage"),
        }
    }
}

impl IntoOwned for Payload<'_> {
    type Owned = Payload<'static>;
    /// The payload without borrows, for queues and caches.
    fn into_owned(self) -> Payload<'static> {
        match self {
            Self::Decrypted(s) => Payload::Decrypted(Cow::Owned(s.into_owned())),
            Self::ResourceData(r) => Payload::ResourceData(r.map(|r| Cow::Owned(r.into_owned()))),
            Self::Lifecycle(e) => Payload::Lifecycle(e.into_owned()),
            Self::ValidationMessage => Payload::ValidationMessage,
        }
    }
}

/// One opened notification: the notification as sent, and what it delivered.
#[derive(Debug)]
#[non_exhaustive]
pub struct Opened<'c, 'a> {
    /// The notification (subscription, change type, resource, tenant...).
    pub notification: &'c ChangeNotification<'a>,
    /// What it delivered.
    pub payload: Payload<'c>,
}

impl<'c> Opened<'c, '_> {
    /// The typed resource of a notification with resource data (`None` for other payloads).
    /// Which model applies comes from the notification's `resourceData` `@odata.type` or its
    /// `resource` path, else from the document. A resource that does not fit its model fails
    /// this notification with [`ItemErrorKind::Model`], naming the property.
    pub fn decode(&self) -> Result<Option<crate::model::ChatOrMessage<'_>>, ItemError> {
        let decrypted = match &self.payload {
            Payload::Decrypted(json) => Some(&**json),
            _ => None,
        };
        decode_payload(
            self.notification.index,
            decrypted,
            self.notification.resource_kind(),
        )
    }
}

/// The typed resource of notification `index`'s decrypted JSON, for [`Opened::decode`] and
/// [`OwnedNotification::decode`](super::OwnedNotification::decode).
pub(super) fn decode_payload(
    index: usize,
    decrypted: Option<&str>,
    kind: Option<crate::model::ResourceKind>,
) -> Result<Option<crate::model::ChatOrMessage<'_>>, ItemError> {
    let Some(json) = decrypted else {
        return Ok(None);
    };
    crate::model::decode(json, kind)
        .map(Some)
        .map_err(|e| ItemError::new(index, "encryptedContent.data", ItemErrorKind::Model(e)))
}

impl Receiver {
    /// A builder with no keys, no expected clientState, no token validation and default
    /// [`Limits`].
    pub fn builder() -> ReceiverBuilder {
        ReceiverBuilder::default()
    }

    /// The channel the receiver reads.
    pub fn delivery(&self) -> Delivery {
        self.delivery
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The key store in force (`None` only when the crate is built without a crypto provider
    /// and no keys were given). A snapshot: a later [`update_keys`](Self::update_keys) does not
    /// change it.
    pub fn keys(&self) -> Option<Arc<KeyStore>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes the keys while the receiver is in use, for certificate rotation: `change` edits a
    /// copy of the current store (the loaded keys are shared, not copied), which then replaces
    /// it. Batches received before the swap keep the keys they started with; batches received
    /// after it use the new ones. Updates from several threads apply one after the other, and
    /// receiving is never blocked while a key loads. If `change` fails, nothing changes.
    ///
    /// Rotation with it: insert the new key under the new certificate id, renew the
    /// subscription with the new certificate (`outbound::renew_with_certificate`), and
    /// remove the old id once no notification names it.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use graph_chat_notifications::crypto::{KeyStore, PrivateKey};
    /// use graph_chat_notifications::inbound::Receiver;
    /// # let read = |p: &str| std::fs::read(format!("tests/fixtures/{p}")).unwrap();
    /// let old = PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem"))?;
    /// let receiver = Receiver::builder()
    ///     .keys(KeyStore::new().with_key("cert-2026-10", old)?)
    ///     .client_state("secretClientState")
    ///     .dangerous_skip_token_validation() // for brevity; configure tokens in production
    ///     .build()?;
    ///
    /// let new = PrivateKey::from_bytes(&read("keys/rsa3072/key.pkcs8.pem"))?;
    /// receiver.update_keys(|keys| keys.insert("cert-2026-11", new))?;
    /// // ... once no notification names the old id:
    /// receiver.update_keys(|keys| {
    ///     keys.remove("cert-2026-10");
    ///     Ok(())
    /// })?;
    /// assert_eq!(receiver.keys().unwrap().ids().collect::<Vec<_>>(), ["cert-2026-11"]);
    /// # Ok(()) }
    /// ```
    pub fn update_keys<F>(&self, change: F) -> Result<(), KeyUpdateError>
    where
        F: FnOnce(&mut KeyStore) -> Result<(), KeyError>,
    {
        let _one_at_a_time = self.key_updates.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.keys().ok_or(KeyUpdateError::NoKeyStore)?;
        let mut store = KeyStore::clone(&current);
        change(&mut store)?;
        // The rule `build` enforces holds for the receiver's whole life.
        if !store.is_empty()
            && !may_hold_keys(self.tokens.is_some(), self.skip_tokens, self.delivery)
        {
            return Err(KeyUpdateError::TokenValidationNotConfigured);
        }
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(store));
        Ok(())
    }

    /// The tenants set with [`ReceiverBuilder::allowed_tenants`] (empty: any tenant).
    pub fn allowed_tenants(&self) -> &[String] {
        &self.tenants
    }

    /// The token validator, to [`update_jwks`](TokenValidator::update_jwks) when keys rotate.
    pub fn tokens(&self) -> Option<&TokenValidator> {
        self.tokens.as_ref()
    }

    /// One call per POST: `query` is the request URL's query string (with or without `?`),
    /// `body` its body, `now` the current time (for token expiry).
    ///
    /// A `validationToken` in the query makes it a handshake. Otherwise the body is parsed
    /// within the limits and its `validationTokens` are checked; an `Err` refuses the whole body,
    /// with a reason that is safe to log.
    pub fn handle<'r, 'a>(
        &'r self,
        query: &str,
        body: &'a [u8],
        now: SystemTime,
    ) -> Result<Inbound<'r, 'a>, BodyError> {
        if let Some(reply) = handshake(query) {
            return Ok(Inbound::Handshake(reply));
        }
        self.receive(body, now).map(Inbound::Notifications)
    }

    /// [`handle`](Self::handle) for a request of the `http` crate, as axum, hyper and tower
    /// servers hand them over (feature `http`): the query string and the body, read up to
    /// [`Limits::max_body_bytes`] by the caller. Answer a [`Inbound::Handshake`] with its
    /// `http::Response` (`.into()`).
    ///
    /// ```
    /// # #[cfg(feature = "http")] {
    /// use graph_chat_notifications::inbound::{Inbound, Receiver};
    /// let receiver = Receiver::builder()
    ///     .client_state("secretClientState")
    ///     .dangerous_skip_token_validation()
    ///     .build()
    ///     .unwrap();
    /// let request = http::Request::post("/notify?validationToken=hello%20world").body(Vec::new()).unwrap();
    /// let Ok(Inbound::Handshake(reply)) = receiver.handle_http(&request, std::time::SystemTime::now()) else {
    ///     unreachable!()
    /// };
    /// let response: http::Response<String> = reply.into();
    /// assert_eq!(response.body(), "hello world");
    /// # }
    /// ```
    #[cfg(feature = "http")]
    pub fn handle_http<'r, 'a, B: AsRef<[u8]>>(
        &'r self,
        request: &'a http::Request<B>,
        now: SystemTime,
    ) -> Result<Inbound<'r, 'a>, BodyError> {
        self.handle(
            request.uri().query().unwrap_or(""),
            request.body().as_ref(),
            now,
        )
    }

    /// Parses a notification collection and checks its `validationTokens` (when a validator is
    /// configured): all must pass, and encrypted content without tokens is refused. When tokens
    /// passed, each notification's `tenantId` must be a tenant one of them was issued for; a
    /// notification whose tenant none vouches for fails alone, in [`Batch::open`], naming
    /// `tenantId`.
    pub fn receive<'r, 'a>(
        &'r self,
        body: &'a [u8],
        now: SystemTime,
    ) -> Result<Batch<'r, 'a>, BodyError> {
        #[cfg(feature = "tracing")]
        let _span = tracing::debug_span!(
            target: "graph_chat_notifications",
            "receive",
            delivery = ?self.delivery,
            body_bytes = body.len()
        )
        .entered();
        let received = self.receive_checked(body, now);
        #[cfg(feature = "tracing")]
        match &received {
            Ok(batch) => tracing::debug!(
                target: "graph_chat_notifications",
                notifications = batch.len(),
                tokens = batch.tokens.len(),
                "body accepted"
            ),
            Err(e) => tracing::warn!(
                target: "graph_chat_notifications",
                error = e.code(),
                "body refused"
            ),
        }
        received
    }

    fn receive_checked<'r, 'a>(
        &'r self,
        body: &'a [u8],
        now: SystemTime,
    ) -> Result<Batch<'r, 'a>, BodyError> {
        let envelope = match self.delivery {
            Delivery::EventGrid => Envelope::parse_cloud_events(body, &self.limits)?,
            Delivery::Webhook | Delivery::EventHubs => Envelope::parse(body, &self.limits)?,
        };
        let mut tokens = Vec::new();
        if let Some(validator) = &self.tokens {
            let sent = envelope.validation_tokens().unwrap_or(&[]);
            if sent.is_empty() && envelope.has_encrypted_content() && self.delivery.carries_tokens()
            {
                return Err(BodyError::MissingValidationTokens);
            }
            tokens = validator
                .validate_all(sent, now)
                .map_err(|(index, error)| BodyError::Token { index, error })?;
        }
        Ok(Batch {
            receiver: self,
            keys: self.keys(),
            envelope,
            tokens,
            admitted: false,
        })
    }

    /// Reads back an [`Admission`] record that [`Batch::admit`] made (and your inbox stored), to
    /// decrypt what was admitted. The checks admission ran are not run again: no validation
    /// token (the record holds none), no tenant, no `clientState` (the record holds none either).
    /// That is what makes an acknowledged batch openable after the signing keys rotated or the
    /// configuration changed; it is also why the name says `dangerous`: bytes that did not come
    /// from your own admission, through storage only you write, would be decrypted and trusted
    /// unchecked. Decryption, the key lookup and the thumbprint check run as usual, with this
    /// receiver's keys and limits; notifications keep their index in the original body.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
    /// use graph_chat_notifications::inbound::{Payload, Receiver};
    /// # let read = |p: &str| std::fs::read(format!("tests/fixtures/{p}")).unwrap();
    /// let key = PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem"))?;
    /// let receiver = Receiver::builder()
    ///     .keys(KeyStore::new().with_key("graphsim-rsa2048", key)?)
    ///     .client_state("secretClientState")
    ///     .dangerous_skip_token_validation() // the fixture batch carries no tokens
    ///     .build()?;
    /// let body = read("batches/rsa2048.json");
    /// // On the request path: the checks without a private key, then store the record.
    /// let admission = receiver.receive(&body, std::time::SystemTime::now())?.admit();
    /// assert!(admission.refused().is_empty());
    /// let record: Vec<u8> = admission.into_record(); // ... committed to your inbox ...
    /// // On a worker, later: decrypt what was admitted.
    /// let batch = receiver.dangerous_open_admitted(&record)?;
    /// batch.open_each(&mut DecryptBuffer::new(), |opened| {
    ///     assert!(matches!(opened.unwrap().payload, Payload::Decrypted(_)));
    /// });
    /// # Ok(()) }
    /// ```
    pub fn dangerous_open_admitted<'r, 'a>(
        &'r self,
        record: &'a [u8],
    ) -> Result<Batch<'r, 'a>, BodyError> {
        Ok(Batch {
            receiver: self,
            keys: self.keys(),
            envelope: super::admission::read_record(record)?,
            tokens: Vec::new(),
            admitted: true,
        })
    }

    /// The checks of one notification that need no private key: on the webhook channel the
    /// tenant vouched for by a passing token, the tenants the receiver serves, and the
    /// `clientState` (constant time). Graph's validation message on an Event Hub passes.
    pub(super) fn check(
        &self,
        tokens: &[ValidatedToken],
        notification: &ChangeNotification<'_>,
    ) -> Result<(), ItemError> {
        let fail = |field, kind| ItemError::new(notification.index, field, kind);
        if self.delivery == Delivery::EventHubs && notification.is_validation_message() {
            return Ok(());
        }
        if !self.tenants.is_empty() {
            let tenant = notification
                .tenant_id
                .as_deref()
                .ok_or_else(|| fail("tenantId", ItemErrorKind::Missing))?;
            if !self.tenants.iter().any(|t| t.eq_ignore_ascii_case(tenant)) {
                return Err(fail("tenantId", ItemErrorKind::TenantNotAllowed));
            }
            if let Some(event) = &notification.cloud_event {
                let source_tenant = event
                    .source
                    .strip_prefix("/tenants/")
                    .and_then(|rest| rest.split('/').next());
                if !source_tenant.is_some_and(|t| t.eq_ignore_ascii_case(tenant)) {
                    return Err(fail("source", ItemErrorKind::TenantNotAllowed));
                }
            }
        }
        // Graph sends one token per (app, tenant) pair with items in the batch: a tenant that no
        // passing token names was not vouched for.
        if !tokens.is_empty() {
            let tenant = notification
                .tenant_id
                .as_deref()
                .ok_or_else(|| fail("tenantId", ItemErrorKind::Missing))?;
            if !tokens
                .iter()
                .any(|t| t.tenant_id.eq_ignore_ascii_case(tenant))
            {
                return Err(fail("tenantId", ItemErrorKind::TenantNotVouched));
            }
        }
        if !self.client_states.is_empty() {
            let sent = notification
                .client_state
                .as_deref()
                .ok_or_else(|| fail("clientState", ItemErrorKind::Missing))?;
            // Every expected value is compared, each over Graph's longest clientState, so the
            // time tells neither which one matched nor how long any is.
            if !crate::crypto::ct::client_state_matches(&self.client_states, sent.as_bytes()) {
                return Err(fail("clientState", ItemErrorKind::ClientStateMismatch));
            }
        }
        Ok(())
    }

    fn open<'c, 'a>(
        &self,
        keys: Option<&KeyStore>,
        tokens: &[ValidatedToken],
        admitted: bool,
        notification: &'c ChangeNotification<'a>,
        buf: &'c mut DecryptBuffer,
    ) -> Result<Opened<'c, 'a>, ItemError> {
        let fail = |field, kind| ItemError::new(notification.index, field, kind);
        if self.delivery == Delivery::EventHubs && notification.is_validation_message() {
            return Ok(Opened {
                notification,
                payload: Payload::ValidationMessage,
            });
        }
        if !admitted {
            self.check(tokens, notification)?;
        }
        let payload = if let Some(event) = notification.lifecycle_event() {
            Payload::Lifecycle(event)
        } else if let Some(content) = &notification.encrypted_content {
            let keys = keys.ok_or_else(|| fail("encryptedContent", ItemErrorKind::NoProvider))?;
            let json = decrypt(keys, &content.sealed(), self.limits.max_item_bytes(), buf)
                .map_err(|(field, kind)| fail(field, kind))?;
            Payload::Decrypted(Cow::Borrowed(json))
        } else {
            Payload::ResourceData(notification.resource_data.map(Cow::Borrowed))
        };
        Ok(Opened {
            notification,
            payload,
        })
    }
}

impl<'r, 'a> Batch<'r, 'a> {
    /// Number of notifications.
    pub fn len(&self) -> usize {
        self.envelope.len()
    }

    /// Whether the batch holds no notification.
    pub fn is_empty(&self) -> bool {
        self.envelope.is_empty()
    }

    /// The parsed notifications, or the error of each one that could not be parsed.
    pub fn notifications(&self) -> &[Result<ChangeNotification<'a>, ItemError>] {
        self.envelope.items()
    }

    /// The tokens that passed, one per (app, tenant) in the batch; empty without validation.
    pub fn validated_tokens(&self) -> &[ValidatedToken] {
        &self.tokens
    }

    /// Opens every notification in order and hands each result to `f`, reusing `buf`: the loop
    /// a worker runs, without index arithmetic. A failed notification is an `Err` naming it;
    /// the others are unaffected.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
    /// use graph_chat_notifications::inbound::{Payload, Receiver};
    /// # let read = |p: &str| std::fs::read(format!("tests/fixtures/{p}")).unwrap();
    /// let key = PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem"))?;
    /// let receiver = Receiver::builder()
    ///     .keys(KeyStore::new().with_key("graphsim-rsa2048", key)?)
    ///     .client_state("secretClientState")
    ///     .dangerous_skip_token_validation() // the fixture batch carries no tokens
    ///     .build()?;
    /// let body = read("batches/rsa2048.json");
    /// let batch = receiver.receive(&body, std::time::SystemTime::now())?;
    /// let mut resources = 0;
    /// batch.open_each(&mut DecryptBuffer::new(), |opened| {
    ///     if let Ok(opened) = opened {
    ///         resources += usize::from(matches!(opened.payload, Payload::Decrypted(_)));
    ///     }
    /// });
    /// assert_eq!(resources, batch.len());
    /// # Ok(()) }
    /// ```
    pub fn open_each<F>(&self, buf: &mut DecryptBuffer, mut f: F)
    where
        F: FnMut(Result<Opened<'_, 'a>, ItemError>),
    {
        #[cfg(feature = "tracing")]
        let _span = tracing::debug_span!(
            target: "graph_chat_notifications",
            "open_batch",
            notifications = self.len()
        )
        .entered();
        #[cfg(feature = "tracing")]
        let mut failed: Vec<(&'static str, usize)> = Vec::new();
        for index in 0..self.len() {
            let opened = self.open(index, buf);
            #[cfg(feature = "tracing")]
            if let Err(e) = &opened {
                let code = e.kind().code();
                match failed.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => failed.push((code, 1)),
                }
            }
            f(opened);
        }
        #[cfg(feature = "tracing")]
        {
            let refused: usize = failed.iter().map(|(_, n)| n).sum();
            tracing::debug!(
                target: "graph_chat_notifications",
                opened = self.len() - refused,
                refused,
                "batch opened"
            );
            for (kind, count) in failed {
                tracing::warn!(
                    target: "graph_chat_notifications",
                    kind,
                    count,
                    "notifications refused"
                );
            }
        }
    }

    /// Opens every notification and returns each one's result, owned: the batch's results as a
    /// worker hands them to a queue. Both sides serialize (an [`ItemError`] as its index,
    /// field, kind and message); neither holds `clientState` or ciphertext.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
    /// use graph_chat_notifications::inbound::Receiver;
    /// # let read = |p: &str| std::fs::read(format!("tests/fixtures/{p}")).unwrap();
    /// let key = PrivateKey::from_bytes(&read("keys/rsa2048/key.pkcs8.pem"))?;
    /// let receiver = Receiver::builder()
    ///     .keys(KeyStore::new().with_key("graphsim-rsa2048", key)?)
    ///     .client_state("secretClientState")
    ///     .dangerous_skip_token_validation() // the fixture batch carries no tokens
    ///     .build()?;
    /// let body = read("batches/rsa2048.json");
    /// let batch = receiver.receive(&body, std::time::SystemTime::now())?;
    /// let results = batch.open_all(&mut DecryptBuffer::new());
    /// assert_eq!(results.len(), batch.len());
    /// let json = serde_json::to_string(&results)?; // [{"Ok":{...}}, ...]
    /// # assert!(json.starts_with(r#"[{"Ok":{"index":0"#));
    /// # Ok(()) }
    /// ```
    pub fn open_all(&self, buf: &mut DecryptBuffer) -> Vec<Result<OwnedNotification, ItemError>> {
        let mut out = Vec::with_capacity(self.len());
        self.open_each(buf, |opened| out.push(opened.map(IntoOwned::into_owned)));
        out
    }

    /// Runs every check of every notification that needs no private key (parsing, the tenant
    /// a token vouched for, [`allowed_tenants`](ReceiverBuilder::allowed_tenants), `clientState`)
    /// and returns what passed as a record to store, with the refusals: admission, on the
    /// request path, before a webhook acknowledges the batch. The record holds each admitted
    /// notification's known members only (no `clientState`, no unknown members, nothing of the
    /// body around `value`), with its index in the body; read it back with
    /// [`Receiver::dangerous_open_admitted`]. No RSA work is done.
    pub fn admit(&self) -> Admission {
        let mut admitted = Vec::new();
        let mut refused = Vec::new();
        for item in self.envelope.items() {
            match item
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|n| self.receiver.check(&self.tokens, n).map(|()| n))
            {
                Ok(n) => admitted.push(n),
                Err(e) => refused.push(e),
            }
        }
        Admission::new(&admitted, refused)
    }

    /// The notifications as parsed, in order (each `Ok`, or the error that names its bad
    /// field), without opening them.
    pub fn iter(&self) -> std::slice::Iter<'_, Result<ChangeNotification<'a>, ItemError>> {
        self.envelope.items().iter()
    }

    /// Verifies notification `index` and opens its payload: `clientState` first (constant
    /// time), then, for resource data, key lookup and authenticated decryption into `buf`.
    /// Panics only if `index >= self.len()`.
    pub fn open<'c>(
        &'c self,
        index: usize,
        buf: &'c mut DecryptBuffer,
    ) -> Result<Opened<'c, 'a>, ItemError> {
        let opened = match &self.envelope.items()[index] {
            Ok(notification) => self.receiver.open(
                self.keys.as_deref(),
                &self.tokens,
                self.admitted,
                notification,
                buf,
            ),
            Err(e) => Err(e.clone()),
        };
        #[cfg(feature = "tracing")]
        if let Err(e) = &opened {
            tracing::debug!(
                target: "graph_chat_notifications",
                index = e.index(),
                field = e.field(),
                kind = e.kind().code(),
                "notification refused"
            );
        }
        opened
    }
}
