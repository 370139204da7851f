//! The subscription resource Graph returns from `POST /subscriptions` (201) and `PATCH`.

use std::fmt;
use std::time::SystemTime;

use serde::Deserialize;

/// Why a subscription body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionParseError {
    /// Not JSON, or a field of the wrong type (the message names the field, never a value).
    #[error("not a subscription resource: {0}")]
    Invalid(String),
    /// `id` is missing.
    #[error("the subscription has no id")]
    NoId,
}

/// A subscription as Graph returns it. Unknown properties are kept in `other`. `Debug` hides the
/// `clientState`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Subscription {
    /// The subscription id: what renew, reauthorize and delete take.
    #[serde(default)]
    pub id: String,
    /// The resource, as sent.
    pub resource: Option<String>,
    /// The app that created the subscription.
    pub application_id: Option<String>,
    /// The change types, comma-separated.
    pub change_type: Option<String>,
    /// The clientState, if one was set.
    pub client_state: Option<String>,
    /// Where notifications go.
    pub notification_url: Option<String>,
    /// Where lifecycle notifications go.
    pub lifecycle_notification_url: Option<String>,
    /// When it expires, as sent; see [`Subscription::expires_at`].
    pub expiration_date_time: Option<String>,
    /// The user or app that created it.
    pub creator_id: Option<String>,
    /// Whether notifications carry resource data.
    pub include_resource_data: Option<bool>,
    /// The certificate id notifications will name.
    pub encryption_certificate_id: Option<String>,
    /// The TLS version Graph will use.
    pub latest_supported_tls_version: Option<String>,
    /// Every other property, unchanged.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("resource", &self.resource)
            .field("change_type", &self.change_type)
            .field("expiration_date_time", &self.expiration_date_time)
            .field(
                "client_state",
                &self
                    .client_state
                    .as_ref()
                    .map(|_| format_args!("[1 redacted]")),
            )
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Reads the body of Graph's `201 Created` (or `200` to a PATCH).
    ///
    /// ```
    /// use graph_chat_notifications::outbound::Subscription;
    /// let s = Subscription::from_json(br#"{"id":"7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
    ///   "resource":"/chats","changeType":"created,updated","clientState":"s",
    ///   "expirationDateTime":"2019-09-19T11:00:00.0000000Z","newProperty":1}"#).unwrap();
    /// assert_eq!(s.id, "7f105c7d-2dc5-4530-97cd-4e7ae6534c07");
    /// assert!(s.expires_at().is_some());
    /// assert_eq!(s.other["newProperty"], 1);
    /// assert!(!format!("{s:?}").contains("\"s\""));
    /// ```
    pub fn from_json(body: &[u8]) -> Result<Self, SubscriptionParseError> {
        let s: Self = serde_json::from_slice(body).map_err(|e| {
            // serde's messages can quote values (a clientState); keep only the position.
            SubscriptionParseError::Invalid(format!("line {}, column {}", e.line(), e.column()))
        })?;
        if s.id.is_empty() {
            return Err(SubscriptionParseError::NoId);
        }
        Ok(s)
    }

    /// `expirationDateTime` as a time, if it is a valid RFC 3339 timestamp.
    pub fn expires_at(&self) -> Option<SystemTime> {
        let t = self.expiration_date_time.as_deref()?;
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(SystemTime::from)
    }
}
