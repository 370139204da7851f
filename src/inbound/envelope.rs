//! The notification collection Graph POSTs to a webhook, parsed without copying.

use std::borrow::Cow;
use std::fmt;

use serde_json::value::RawValue;

use super::BodyError;
use crate::error::{ItemError, ItemErrorKind};
use crate::json::{self, Kind};
use crate::model::{ChangeType, EnumValue, LifecycleEvent};

/// Bounds on what one POST may make the crate do. Every bound has a documented default and can be
/// changed.
///
/// ```
/// use graph_chat_notifications::inbound::Limits;
/// let limits = Limits::default().with_max_items(200).with_max_item_bytes(1 << 20);
/// assert_eq!(limits.max_items(), 200);
/// assert_eq!(Limits::default().max_body_bytes(), 16 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    max_body_bytes: usize,
    max_items: usize,
    max_item_bytes: usize,
    max_depth: usize,
    max_tokens: usize,
}

impl Default for Limits {
    /// Body 16 MiB, 1,000 notifications, 4 MiB of decrypted data per notification, nesting 64
    /// levels deep, 100 validation tokens.
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            max_items: 1_000,
            max_item_bytes: 4 * 1024 * 1024,
            max_depth: 64,
            max_tokens: 100,
        }
    }
}

impl Limits {
    /// Largest body accepted, in bytes (default 16 MiB). Larger bodies are refused unread.
    pub fn with_max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }
    /// Most notifications accepted in one body (default 1,000).
    pub fn with_max_items(mut self, n: usize) -> Self {
        self.max_items = n;
        self
    }
    /// Largest decrypted resource accepted per notification, in bytes (default 4 MiB). Checked
    /// from the length of `data` before it is decoded.
    pub fn with_max_item_bytes(mut self, n: usize) -> Self {
        self.max_item_bytes = n;
        self
    }
    /// Deepest nesting of arrays and objects accepted in the body (default 64).
    pub fn with_max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }
    /// Most `validationTokens` accepted in one body (default 100).
    pub fn with_max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n;
        self
    }
    /// The body size limit in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
    /// The notification count limit.
    pub fn max_items(&self) -> usize {
        self.max_items
    }
    /// The per-notification decrypted size limit in bytes.
    pub fn max_item_bytes(&self) -> usize {
        self.max_item_bytes
    }
    /// The nesting depth limit.
    pub fn max_depth(&self) -> usize {
        self.max_depth
    }
    /// The validation token count limit.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }
}

/// A parsed notification collection, borrowing from the request body.
///
/// Parsing splits failures in two: the body as a whole ([`BodyError`]) and each notification on
/// its own ([`ItemError`], in [`Envelope::items`]), so one malformed notification never hides the
/// others.
///
/// ```
/// use graph_chat_notifications::inbound::{Envelope, Limits};
/// let body = br#"{"value":[
///   {"subscriptionId":"s1","changeType":"created","resource":"chats('19:a@thread.v2')",
///    "clientState":"secret","resourceData":{"id":"19:a@thread.v2"}},
///   {"subscriptionId":42}
/// ]}"#;
/// let envelope = Envelope::parse(body, &Limits::default())?;
/// assert_eq!(envelope.len(), 2);
/// let first = envelope.items()[0].as_ref().unwrap();
/// assert_eq!(first.resource.as_deref(), Some("chats('19:a@thread.v2')"));
/// let second = envelope.items()[1].as_ref().unwrap_err();
/// assert_eq!(second.to_string(), "notification 1: subscriptionId: expected a string");
/// # Ok::<(), graph_chat_notifications::BodyError>(())
/// ```
pub struct Envelope<'a> {
    items: Vec<Result<ChangeNotification<'a>, ItemError>>,
    validation_tokens: Option<Vec<Cow<'a, str>>>,
    encrypted: bool,
}

impl fmt::Debug for Envelope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("items", &self.items)
            .field(
                "validation_tokens",
                &self.validation_tokens.as_ref().map(|t| Redacted(t.len())),
            )
            .finish()
    }
}

/// Prints how many secrets there are, never what they are.
struct Redacted(usize);
impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} redacted]", self.0)
    }
}

impl<'a> Envelope<'a> {
    /// Parses a POST body. Bytes, so that invalid UTF-8 is a typed error rather than the caller's
    /// problem.
    pub fn parse(body: &'a [u8], limits: &Limits) -> Result<Self, BodyError> {
        let text = checked_text(body, limits)?;
        let not_json = |e: serde_json::Error| match e.classify() {
            serde_json::error::Category::Data if text.trim_start().starts_with('[') => {
                BodyError::NotACollection {
                    reason: "the body is a JSON array, not an object (CloudEvents? \
                             set the receiver to the Event Grid delivery channel)",
                }
            }
            serde_json::error::Category::Data => BodyError::NotACollection {
                reason: "the body is not a JSON object",
            },
            _ => syntax_error(&e),
        };
        // The root's members stream past one at a time; only `value` and `validationTokens` are
        // kept (raw, borrowed), so memory does not follow how many members a body has.
        let mut value = None;
        let mut tokens = None;
        json::for_each_member(text, |key, raw| {
            let slot = if key.eq_ignore_ascii_case("value") {
                &mut value
            } else if key.eq_ignore_ascii_case("validationTokens") {
                &mut tokens
            } else {
                return Ok(());
            };
            match slot.replace(raw) {
                None => Ok(()),
                Some(_) if key.eq_ignore_ascii_case("value") => Err(BodyError::NotACollection {
                    reason: "`value` appears more than once",
                }),
                Some(_) => Err(BodyError::BadValidationTokens {
                    reason: "appears more than once",
                }),
            }
        })
        .map_err(|e| match e {
            json::Walk::Stopped(e) => e,
            json::Walk::Shape(e) => not_json(e),
        })?;
        let value: &'a RawValue = value.ok_or(BodyError::NotACollection {
            reason: "it has no `value` array",
        })?;
        if json::kind(value) != Kind::Array {
            return Err(BodyError::NotACollection {
                reason: "`value` is not an array",
            });
        }
        let validation_tokens = match tokens {
            None => None,
            Some(raw) if json::kind(raw) == Kind::Null => None,
            Some(raw) => Some(parse_tokens(raw, limits)?),
        };
        // Each notification is parsed as the array streams past; the count stops at the limit.
        let mut items = Vec::new();
        let mut encrypted = false;
        json::for_each_element(value.get(), |raw| {
            if items.len() == limits.max_items {
                return Err(BodyError::TooManyItems {
                    limit: limits.max_items,
                });
            }
            let item = ChangeNotification::parse(items.len(), raw);
            encrypted |= match &item {
                Ok(n) => n.encrypted_content.is_some(),
                Err(_) => carries_encrypted_content(raw),
            };
            items.push(item);
            Ok(())
        })
        .map_err(|e| match e {
            json::Walk::Stopped(e) => e,
            // Already read once as a raw value: it is an array of JSON values.
            json::Walk::Shape(_) => BodyError::NotACollection {
                reason: "`value` is not an array",
            },
        })?;
        Ok(Self {
            items,
            validation_tokens,
            encrypted,
        })
    }

    /// An envelope of already parsed items, without tokens (Event Grid).
    pub(super) fn from_items(items: Vec<Result<ChangeNotification<'a>, ItemError>>) -> Self {
        let encrypted = items
            .iter()
            .any(|n| n.as_ref().is_ok_and(|n| n.encrypted_content.is_some()));
        Self {
            items,
            validation_tokens: None,
            encrypted,
        }
    }

    /// Every notification in `value`, in order: parsed, or the error that names its bad field.
    pub fn items(&self) -> &[Result<ChangeNotification<'a>, ItemError>] {
        &self.items
    }

    /// Takes the notifications out of the envelope.
    pub fn into_items(self) -> Vec<Result<ChangeNotification<'a>, ItemError>> {
        self.items
    }

    /// Number of notifications in `value`.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether `value` is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `validationTokens` array: `None` when the body has none, `Some(&[])` when it is empty.
    pub fn validation_tokens(&self) -> Option<&[Cow<'a, str>]> {
        self.validation_tokens.as_deref()
    }

    /// Whether any notification carries `encryptedContent` (and so needs validation tokens),
    /// counting notifications too malformed to parse: a body is not spared the token check
    /// because its encrypted items are broken.
    pub fn has_encrypted_content(&self) -> bool {
        self.encrypted
    }
}

/// The body as text, after the checks every channel shares: size, UTF-8 (a byte order mark
/// dropped), not empty, nesting depth.
pub(super) fn checked_text<'a>(body: &'a [u8], limits: &Limits) -> Result<&'a str, BodyError> {
    if body.len() > limits.max_body_bytes {
        return Err(BodyError::TooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| BodyError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    // A UTF-8 byte order mark is not JSON, but some senders write one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(BodyError::Empty);
    }
    if json::nests_deeper_than(text.as_bytes(), limits.max_depth) {
        return Err(BodyError::TooDeep {
            limit: limits.max_depth,
        });
    }
    Ok(text)
}

pub(super) fn syntax_error(e: &serde_json::Error) -> BodyError {
    BodyError::NotJson {
        line: e.line(),
        column: e.column(),
    }
}

/// Whether a notification that failed to parse has an `encryptedContent` member (any case, not
/// `null`).
fn carries_encrypted_content(raw: &RawValue) -> bool {
    kind_is_object(raw)
        && json::for_each_member(raw.get(), |k, v| {
            if k.eq_ignore_ascii_case("encryptedContent") && json::kind(v) != Kind::Null {
                Err(())
            } else {
                Ok(())
            }
        })
        .is_err_and(|e| matches!(e, json::Walk::Stopped(())))
}

fn kind_is_object(raw: &RawValue) -> bool {
    json::kind(raw) == Kind::Object
}

fn parse_tokens<'a>(raw: &'a RawValue, limits: &Limits) -> Result<Vec<Cow<'a, str>>, BodyError> {
    let not_strings = BodyError::BadValidationTokens {
        reason: "expected an array of strings",
    };
    if json::kind(raw) != Kind::Array {
        return Err(not_strings);
    }
    let mut tokens = Vec::new();
    json::for_each_element(raw.get(), |r| {
        if tokens.len() == limits.max_tokens {
            return Err(BodyError::BadValidationTokens {
                reason: "more tokens than the configured limit",
            });
        }
        tokens.push(json::string(r).ok_or_else(|| not_strings.clone())?);
        Ok(())
    })
    .map_err(|e| match e {
        json::Walk::Stopped(e) => e,
        json::Walk::Shape(_) => not_strings.clone(),
    })?;
    Ok(tokens)
}

/// One item of `value`: a change notification, with or without resource data, or a lifecycle
/// notification. Fields keep Graph's names in snake case; absent and `null` are both `None`.
///
/// Field names are matched regardless of letter case, since Graph's own samples use both
/// `encryptedContent` and `EncryptedContent`. `Debug` redacts `clientState`.
#[non_exhaustive]
pub struct ChangeNotification<'a> {
    /// Position in `value`.
    pub index: usize,
    /// `id` of the notification.
    pub id: Option<Cow<'a, str>>,
    /// `subscriptionId`.
    pub subscription_id: Option<Cow<'a, str>>,
    /// `subscriptionExpirationDateTime`, as sent.
    pub subscription_expiration_date_time: Option<Cow<'a, str>>,
    /// `changeType` as sent (`created`, `updated`, `deleted`, in any case); see
    /// [`ChangeNotification::change_type`].
    pub change_type: Option<Cow<'a, str>>,
    /// `clientState` as sent. A secret shared with Graph: never logged.
    pub client_state: Option<Cow<'a, str>>,
    /// `resource`, for example `chats('19:...@thread.v2')/messages('1616...')`.
    pub resource: Option<Cow<'a, str>>,
    /// `resourceData`, untouched (any JSON value).
    pub resource_data: Option<&'a RawValue>,
    /// `tenantId`.
    pub tenant_id: Option<Cow<'a, str>>,
    /// `lifecycleEvent` as sent; see [`ChangeNotification::lifecycle_event`].
    pub lifecycle_event: Option<Cow<'a, str>>,
    /// `encryptedContent`, present when the subscription includes resource data.
    pub encrypted_content: Option<EncryptedContent<'a>>,
    /// The whole notification as it appeared in the body (for Event Grid, the event's `data`).
    pub raw: &'a RawValue,
    /// The CloudEvent that carried the notification, when it came through Event Grid.
    pub cloud_event: Option<CloudEvent<'a>>,
}

/// The CloudEvents 1.0 attributes of an event Event Grid delivered: the notification itself is
/// the event's `data`.
///
/// Serializes with the CloudEvents attribute names and deserializes into owned strings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct CloudEvent<'a> {
    /// `id`: unique per event from its source.
    pub id: Cow<'a, str>,
    /// `type`, such as `Microsoft.Graph.ChatMessageCreated` or
    /// `Microsoft.Graph.SubscriptionReauthorizationRequired`. Read the change from the
    /// notification (`changeType`, `lifecycleEvent`), not only from here.
    #[serde(rename = "type")]
    pub event_type: Cow<'a, str>,
    /// `source`: `/tenants/{tenantId}/applications/{appId}`.
    pub source: Cow<'a, str>,
    /// `subject`: the notification's `resource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Cow<'a, str>>,
    /// `time`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Cow<'a, str>>,
}

impl crate::model::IntoOwned for CloudEvent<'_> {
    type Owned = CloudEvent<'static>;
    fn into_owned(self) -> CloudEvent<'static> {
        let o = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        CloudEvent {
            id: o(self.id),
            event_type: o(self.event_type),
            source: o(self.source),
            subject: self.subject.map(o),
            time: self.time.map(o),
        }
    }
}

impl fmt::Debug for ChangeNotification<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeNotification")
            .field("index", &self.index)
            .field("id", &self.id)
            .field("subscription_id", &self.subscription_id)
            .field("change_type", &self.change_type)
            .field(
                "client_state",
                &self.client_state.as_ref().map(|_| Redacted(1)),
            )
            .field("resource", &self.resource)
            .field("tenant_id", &self.tenant_id)
            .field("lifecycle_event", &self.lifecycle_event)
            .field("encrypted_content", &self.encrypted_content)
            .field("cloud_event", &self.cloud_event)
            .finish_non_exhaustive()
    }
}

impl<'a> ChangeNotification<'a> {
    /// The typed `changeType`, if present: the member it names (in any letter case), or a
    /// value newer than the crate, kept as sent.
    pub fn change_type(&self) -> Option<EnumValue<'_, ChangeType>> {
        self.change_type.as_deref().map(EnumValue::new)
    }

    /// The typed `lifecycleEvent`, if this is a lifecycle notification (an event newer than
    /// the crate is kept as sent, never an error).
    pub fn lifecycle_event(&self) -> Option<EnumValue<'_, LifecycleEvent>> {
        self.lifecycle_event.as_deref().map(EnumValue::new)
    }

    /// Whether this is the validation message Graph drops into an Event Hub when a subscription
    /// is created there: `subscriptionId` `"NA"` and a `changeType` that begins `Validation:`.
    pub fn is_validation_message(&self) -> bool {
        self.subscription_id.as_deref() == Some("NA")
            && self.change_type.as_deref().is_some_and(|c| {
                c.get(..11)
                    .is_some_and(|p| p.eq_ignore_ascii_case("validation:"))
            })
    }

    /// Which resource the notification is about: from its `resourceData`'s `@odata.type`, else
    /// its `resource` path.
    pub fn resource_kind(&self) -> Option<crate::model::ResourceKind> {
        crate::model::resource_kind(self.resource_data, self.resource.as_deref())
    }

    /// A key that is the same each time this notification is delivered (Graph retries send it
    /// unchanged), for dropping redeliveries: a consumer that remembers the keys it has processed
    /// (for longer than Graph retries, 4 hours) drops the duplicates. It needs no decryption and
    /// holds no secret, so it is made of what the notification says in clear: its subscription,
    /// tenant, change type and resource, and then
    ///
    /// * with encrypted content: the signature of its ciphertext. Each notification has its own
    ///   symmetric key, so two notifications never share a key.
    /// * for a lifecycle notification: the event, the subscription's expiry, and the
    ///   notification's `id` when Graph sends one. Without an `id`, two events of the same kind
    ///   for the same subscription and expiry (a second `reauthorizationRequired` before you
    ///   reauthorized, a second `missed`) share a key: act on the event when you process it, not
    ///   on the delivery.
    /// * otherwise: the notification's `id` when Graph sends one, and its `resourceData` as sent
    ///   (without white space). Without an `id`, two notifications of the same change to the same
    ///   resource with the same `resourceData` (two `updated` notifications without resource data
    ///   for one message edited twice) share a key: nothing in them tells them apart. Such a key
    ///   says "this resource changed"; read the resource's current state (a GET) when you process
    ///   it, rather than treating a second delivery as already applied.
    ///
    /// ```
    /// use graph_chat_notifications::inbound::{Envelope, Limits};
    /// let body = br#"{"value":[
    ///   {"subscriptionId":"s1","changeType":"updated","resource":"chats('19:a@thread.v2')"},
    ///   {"subscriptionId":"s1","changeType":"updated","resource":"chats('19:a@thread.v2')"},
    ///   {"subscriptionId":"s1","changeType":"deleted","resource":"chats('19:a@thread.v2')"}
    /// ]}"#;
    /// let envelope = Envelope::parse(body, &Limits::default())?;
    /// let key = |i: usize| envelope.items()[i].as_ref().unwrap().idempotency_key();
    /// assert_eq!(key(0), key(1)); // nothing tells these two apart
    /// assert_ne!(key(0), key(2));
    /// # Ok::<(), graph_chat_notifications::BodyError>(())
    /// ```
    pub fn idempotency_key(&self) -> String {
        let part = |v: &Option<Cow<'_, str>>| v.as_deref().unwrap_or("").to_string();
        let carried = match (&self.encrypted_content, &self.lifecycle_event) {
            (Some(content), _) => format!("sig:{}", content.data_signature),
            (None, Some(event)) => serde_json::to_string(&[
                "lifecycle",
                event.as_ref(),
                self.subscription_expiration_date_time
                    .as_deref()
                    .unwrap_or(""),
                self.id.as_deref().unwrap_or(""),
            ])
            .expect("strings serialize"),
            (None, None) => {
                let data = self.resource_data.map(|r| crate::json::compact(r.get()));
                serde_json::to_string(&[
                    "id",
                    self.id.as_deref().unwrap_or(""),
                    data.as_deref().unwrap_or(""),
                ])
                .expect("strings serialize")
            }
        };
        // Each part is JSON-quoted, so no separator inside a part can make two keys collide.
        serde_json::to_string(&[
            part(&self.subscription_id),
            part(&self.tenant_id),
            part(&self.change_type).to_ascii_lowercase(),
            part(&self.resource),
            carried,
        ])
        .expect("strings serialize")
    }

    pub(super) fn parse(index: usize, raw: &'a RawValue) -> Result<Self, ItemError> {
        let err = |field, kind| ItemError::new(index, field, kind);
        let mut fields = Fields::new(&ITEM_FIELDS);
        fields
            .collect(raw, "", "a notification object")
            .map_err(|(f, k)| err(f, k))?;
        let s = |i: usize| fields.string(i).map_err(|(f, k)| err(f, k));
        let encrypted_content = match fields.get(ENCRYPTED_CONTENT) {
            None => None,
            Some(raw) => Some(EncryptedContent::parse(raw).map_err(|(f, k)| err(f, k))?),
        };
        Ok(Self {
            index,
            id: s(0)?,
            subscription_id: s(1)?,
            subscription_expiration_date_time: s(2)?,
            change_type: s(3)?,
            client_state: s(4)?,
            resource: s(5)?,
            tenant_id: s(6)?,
            lifecycle_event: s(7)?,
            resource_data: fields.get(RESOURCE_DATA),
            encrypted_content,
            raw,
            cloud_event: None,
        })
    }
}

const ITEM_FIELDS: [&str; 10] = [
    "id",
    "subscriptionId",
    "subscriptionExpirationDateTime",
    "changeType",
    "clientState",
    "resource",
    "tenantId",
    "lifecycleEvent",
    "resourceData",
    "encryptedContent",
];
const RESOURCE_DATA: usize = 8;
const ENCRYPTED_CONTENT: usize = 9;

/// `encryptedContent` of a notification with resource data: the wrapped key, the ciphertext and
/// its signature, all still base64 as sent. `Debug` shows the certificate id and thumbprint only.
#[non_exhaustive]
pub struct EncryptedContent<'a> {
    /// `data`: base64 of the AES-256-CBC ciphertext.
    pub data: Cow<'a, str>,
    /// `dataKey`: base64 of the RSA-OAEP-wrapped symmetric key.
    pub data_key: Cow<'a, str>,
    /// `dataSignature`: base64 of HMAC-SHA256 over the ciphertext.
    pub data_signature: Cow<'a, str>,
    /// `encryptionCertificateId`: which key unwraps `dataKey`.
    pub encryption_certificate_id: Cow<'a, str>,
    /// `encryptionCertificateThumbprint`: uppercase hex SHA-1 of the certificate's DER.
    pub encryption_certificate_thumbprint: Option<Cow<'a, str>>,
}

impl fmt::Debug for EncryptedContent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedContent")
            .field("data_len", &self.data.len())
            .field("encryption_certificate_id", &self.encryption_certificate_id)
            .field(
                "encryption_certificate_thumbprint",
                &self.encryption_certificate_thumbprint,
            )
            .finish_non_exhaustive()
    }
}

const ENC_FIELDS: [&str; 5] = [
    "encryptedContent.data",
    "encryptedContent.dataKey",
    "encryptedContent.dataSignature",
    "encryptedContent.encryptionCertificateId",
    "encryptedContent.encryptionCertificateThumbprint",
];

impl EncryptedContent<'_> {
    /// The fields the decrypt core reads, borrowed.
    pub fn sealed(&self) -> crate::crypto::Sealed<'_> {
        crate::crypto::Sealed {
            data: &self.data,
            data_key: &self.data_key,
            data_signature: &self.data_signature,
            certificate_id: &self.encryption_certificate_id,
            certificate_thumbprint: self.encryption_certificate_thumbprint.as_deref(),
        }
    }
}

impl<'a> EncryptedContent<'a> {
    fn parse(raw: &'a RawValue) -> Result<Self, (&'static str, ItemErrorKind)> {
        let mut fields = Fields::new(&ENC_FIELDS);
        fields.collect(raw, "encryptedContent", "an object")?;
        let required = |i: usize| {
            fields
                .string(i)?
                .ok_or((ENC_FIELDS[i], ItemErrorKind::Missing))
        };
        Ok(Self {
            data: required(0)?,
            data_key: required(1)?,
            data_signature: required(2)?,
            encryption_certificate_id: required(3)?,
            encryption_certificate_thumbprint: fields.string(4)?,
        })
    }
}

/// Known members of one object, matched by name in any letter case. `names` are the error paths;
/// the part after the last `.` is the JSON key.
pub(super) struct Fields<'a, 'n, const N: usize> {
    names: &'n [&'static str; N],
    values: [Option<&'a RawValue>; N],
}

impl<'a, 'n, const N: usize> Fields<'a, 'n, N> {
    pub(super) fn new(names: &'n [&'static str; N]) -> Self {
        Self {
            names,
            values: [None; N],
        }
    }

    /// Reads the members of the object `raw`, keeping the known ones. When `raw` is not an
    /// object, the error names `whole` (the object's own path) as the field and says it expected
    /// `expected`.
    pub(super) fn collect(
        &mut self,
        raw: &'a RawValue,
        whole: &'static str,
        expected: &'static str,
    ) -> Result<(), (&'static str, ItemErrorKind)> {
        let not_object = (whole, ItemErrorKind::WrongType { expected });
        if !kind_is_object(raw) {
            return Err(not_object);
        }
        json::for_each_member(raw.get(), |key, value| {
            let found = self.names.iter().position(|path| {
                let name = path.rsplit('.').next().unwrap_or(path);
                name.eq_ignore_ascii_case(&key)
            });
            match found {
                Some(i) if self.values[i].replace(value).is_some() => {
                    Err((self.names[i], ItemErrorKind::Duplicate))
                }
                _ => Ok(()),
            }
        })
        .map_err(|e| match e {
            json::Walk::Stopped(e) => e,
            // Already read once as a raw value: it is an object.
            json::Walk::Shape(_) => not_object.clone(),
        })?;
        // `null` means absent, as Graph writes `"clientState": null` for subscriptions without one.
        for v in &mut self.values {
            if matches!(v, Some(raw) if json::kind(raw) == Kind::Null) {
                *v = None;
            }
        }
        Ok(())
    }

    pub(super) fn get(&self, i: usize) -> Option<&'a RawValue> {
        self.values[i]
    }

    pub(super) fn string(
        &self,
        i: usize,
    ) -> Result<Option<Cow<'a, str>>, (&'static str, ItemErrorKind)> {
        match self.values[i] {
            None => Ok(None),
            Some(raw) => json::string(raw).map(Some).ok_or((
                self.names[i],
                ItemErrorKind::WrongType {
                    expected: "a string",
                },
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Envelope<'_>, BodyError> {
        Envelope::parse(body.as_bytes(), &Limits::default())
    }

    #[test]
    fn body_level_refusals_are_typed() {
        assert_eq!(parse("").unwrap_err(), BodyError::Empty);
        assert!(matches!(parse("{").unwrap_err(), BodyError::NotJson { .. }));
        assert!(matches!(
            parse("[]").unwrap_err(),
            BodyError::NotACollection { .. }
        ));
        assert!(matches!(
            parse("{}").unwrap_err(),
            BodyError::NotACollection { .. }
        ));
        assert!(matches!(
            parse(r#"{"value":{}}"#).unwrap_err(),
            BodyError::NotACollection { .. }
        ));
        assert!(matches!(
            parse(r#"{"value":[],"Value":[]}"#).unwrap_err(),
            BodyError::NotACollection { .. }
        ));
        assert!(matches!(
            parse(r#"{"value":[],"validationTokens":"x"}"#).unwrap_err(),
            BodyError::BadValidationTokens { .. }
        ));
        assert!(matches!(
            parse(r#"{"value":[],"validationTokens":["a",1]}"#).unwrap_err(),
            BodyError::BadValidationTokens { .. }
        ));
        assert!(matches!(
            Envelope::parse(b"{\"value\":[\xff]}", &Limits::default()).unwrap_err(),
            BodyError::NotUtf8 { offset: 10 }
        ));
        let deep = format!("{{\"value\":[{}{}]}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse(&deep).unwrap_err(), BodyError::TooDeep { limit: 64 });
        let limits = Limits::default().with_max_items(1).with_max_body_bytes(40);
        assert!(matches!(
            Envelope::parse(br#"{"value":[{},{}]}"#, &limits).unwrap_err(),
            BodyError::TooManyItems { limit: 1 }
        ));
        assert!(matches!(
            Envelope::parse(&[b' '; 41], &limits).unwrap_err(),
            BodyError::TooLarge {
                size: 41,
                limit: 40
            }
        ));
    }

    #[test]
    fn item_errors_name_index_and_field() {
        let env = parse(
            r#"{"value":[
                {"changeType":"created"},
                3,
                {"clientState":7},
                {"encryptedContent":{"data":"a","dataKey":"b","dataSignature":"c"}},
                {"encryptedContent":{"data":"a","dataKey":"b","dataSignature":"c","encryptionCertificateId":"x","Data":"d"}},
                {"encryptedContent":[]},
                {"changeType":"created","ChangeType":"updated"}
            ]}"#,
        )
        .unwrap();
        let errs: Vec<String> = env
            .items()
            .iter()
            .map(|r| match r {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            errs,
            [
                "ok",
                "notification 1: expected a notification object",
                "notification 2: clientState: expected a string",
                "notification 3: encryptedContent.encryptionCertificateId: missing",
                "notification 4: encryptedContent.data: appears more than once",
                "notification 5: encryptedContent: expected an object",
                "notification 6: changeType: appears more than once",
            ]
        );
    }

    #[test]
    fn both_casings_and_nulls() {
        let env = parse(
            r#"{"Value":[{"ChangeType":"Created","EncryptedContent":{"Data":"QQ==","DataKey":"Qg==",
            "DataSignature":"Qw==","EncryptionCertificateId":"c1","encryptionCertificateThumbprint":null},
            "clientState":null,"lifecycleEvent":null}],"ValidationTokens":["t"]}"#,
        )
        .unwrap();
        let n = env.items()[0].as_ref().unwrap();
        assert_eq!(
            n.change_type().and_then(|c| c.known()),
            Some(ChangeType::Created)
        );
        assert_eq!(n.change_type().unwrap().as_str(), "Created");
        assert!(n.client_state.is_none());
        let ec = n.encrypted_content.as_ref().unwrap();
        assert_eq!(ec.data, "QQ==");
        assert_eq!(ec.encryption_certificate_id, "c1");
        assert!(ec.encryption_certificate_thumbprint.is_none());
        assert_eq!(env.validation_tokens().unwrap().len(), 1);
        assert!(env.has_encrypted_content());
    }

    #[test]
    fn malformed_encrypted_items_still_count_as_encrypted_content() {
        let broken =
            parse(r#"{"value":[{"EncryptedContent":{"data":"QQ=="}},{"changeType":"updated"}]}"#)
                .unwrap();
        assert!(broken.items()[0].is_err());
        assert!(broken.has_encrypted_content());
        let plain =
            parse(r#"{"value":[{"encryptedContent":null,"id":5},{"changeType":"updated"}]}"#)
                .unwrap();
        assert!(plain.items()[0].is_err());
        assert!(!plain.has_encrypted_content());
    }

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        let body = r#"{"value":[
            {"subscriptionId":"s","changeType":"created","resource":"r","encryptedContent":{"data":"QQ==","dataKey":"Qg==","dataSignature":"c2lnMQ==","encryptionCertificateId":"c"}},
            {"subscriptionId":"s","changeType":"Created","resource":"r","encryptedContent":{"data":"QQ==","dataKey":"Qg==","dataSignature":"c2lnMg==","encryptionCertificateId":"c"}},
            {"subscriptionId":"s","lifecycleEvent":"reauthorizationRequired","subscriptionExpirationDateTime":"2026-01-01T00:00:00Z"},
            {"subscriptionId":"s","lifecycleEvent":"reauthorizationRequired","subscriptionExpirationDateTime":"2026-01-02T00:00:00Z"},
            {"subscriptionId":"s|x","resource":"r"},
            {"subscriptionId":"s","resource":"x|r"}
        ]}"#;
        let keys = |text: &str| -> Vec<String> {
            parse(text)
                .unwrap()
                .items()
                .iter()
                .map(|n| n.as_ref().unwrap().idempotency_key())
                .collect()
        };
        let first = keys(body);
        // The same delivery again (a Graph retry, or a reprint after a crash): the same keys.
        assert_eq!(first, keys(body));
        let unique: std::collections::HashSet<_> = first.iter().collect();
        assert_eq!(unique.len(), first.len(), "{first:?}");
        // No secret in it.
        assert!(!first.iter().any(|k| k.contains("Qg==")));
    }

    /// What tells two notifications apart goes into the key: an `id` when sent, and the
    /// `resourceData` (an `@odata.etag`, say); what cannot is documented as shared.
    #[test]
    fn idempotency_keys_include_what_tells_notifications_apart() {
        let body = r#"{"value":[
            {"subscriptionId":"s","changeType":"updated","resource":"r","resourceData":{"id":"1","@odata.etag":"W/\"1\""}},
            {"subscriptionId":"s","changeType":"updated","resource":"r","resourceData":{"id":"1","@odata.etag":"W/\"2\""}},
            {"subscriptionId":"s","changeType":"updated","resource":"r","resourceData":{"id":"1"}},
            {"subscriptionId":"s","changeType":"updated","resource":"r"},
            {"subscriptionId":"s","changeType":"updated","resource":"r","id":"n1"},
            {"subscriptionId":"s","changeType":"updated","resource":"r","id":"n2"},
            {"subscriptionId":"s","lifecycleEvent":"missed","subscriptionExpirationDateTime":"2026-01-01T00:00:00Z","id":"l1"},
            {"subscriptionId":"s","lifecycleEvent":"missed","subscriptionExpirationDateTime":"2026-01-01T00:00:00Z","id":"l2"}
        ]}"#;
        let keys: Vec<String> = parse(body)
            .unwrap()
            .items()
            .iter()
            .map(|n| n.as_ref().unwrap().idempotency_key())
            .collect();
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
        // White space inside `resourceData` is not part of what it says.
        let spaced = r#"{"value":[{"subscriptionId":"s","changeType":"updated","resource":"r","resourceData":{ "id" : "1" }}]}"#;
        assert_eq!(
            parse(spaced).unwrap().items()[0]
                .as_ref()
                .unwrap()
                .idempotency_key(),
            keys[2]
        );
        // Nothing tells these apart: they share a key, as documented.
        let same = r#"{"value":[
            {"subscriptionId":"s","lifecycleEvent":"reauthorizationRequired","subscriptionExpirationDateTime":"2026-01-01T00:00:00Z"},
            {"subscriptionId":"s","lifecycleEvent":"reauthorizationRequired","subscriptionExpirationDateTime":"2026-01-01T00:00:00Z"}
        ]}"#;
        let env = parse(same).unwrap();
        let key = |i: usize| env.items()[i].as_ref().unwrap().idempotency_key();
        assert_eq!(key(0), key(1));
    }

    #[test]
    fn debug_hides_client_state_and_tokens() {
        let env = parse(
            r#"{"value":[{"clientState":"topsecretvalue"}],"validationTokens":["eyJtokenvalue"]}"#,
        )
        .unwrap();
        let dbg = format!("{env:?}");
        assert!(!dbg.contains("topsecretvalue"), "{dbg}");
        assert!(!dbg.contains("eyJtokenvalue"), "{dbg}");
    }

    #[test]
    fn lifecycle_events_parse_and_unknown_ones_are_kept() {
        let env = parse(
            r#"{"value":[{"lifecycleEvent":"reauthorizationRequired"},{"lifecycleEvent":"SubscriptionRemoved"},
            {"lifecycleEvent":"missed"},{"lifecycleEvent":"somethingNew"},{"changeType":"created"}]}"#,
        )
        .unwrap();
        let events: Vec<_> = env
            .items()
            .iter()
            .map(|n| n.as_ref().unwrap().lifecycle_event())
            .collect();
        let known: Vec<_> = events
            .iter()
            .map(|e| e.as_ref().map(|e| e.known()))
            .collect();
        assert_eq!(
            known,
            [
                Some(Some(LifecycleEvent::ReauthorizationRequired)),
                Some(Some(LifecycleEvent::SubscriptionRemoved)),
                Some(Some(LifecycleEvent::Missed)),
                Some(None),
                None,
            ]
        );
        assert_eq!(events[3].as_ref().unwrap().as_str(), "somethingNew");
    }
}
