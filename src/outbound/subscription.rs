//! `POST /subscriptions` and what follows it: [`SubscriptionRequest`], [`renew`],
//! [`reauthorize`], [`get_subscription`], [`delete`] and when to renew ([`renew_at`]).

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::Serialize;

use super::error::RequestError;
use super::http::{HttpRequest, Method, GRAPH};
use super::resource::{ApiVersion, Model, Resource, Support};
use super::rules::{check_path_id, format_time, host_is_loopback, is_guid};
use crate::model::{ChangeType, GraphEnum as _};

/// Longest subscription Graph grants on chats and chat messages: 4,320 minutes (3 days).
pub const MAX_LIFETIME: Duration = Duration::from_secs(4_320 * 60);
/// Longest subscription that may go without a `lifecycleNotificationUrl`.
pub const MAX_LIFETIME_WITHOUT_LIFECYCLE_URL: Duration = Duration::from_secs(60 * 60);
/// Longest `clientState` and `encryptionCertificateId` Graph accepts, in characters.
pub const MAX_SECRET_CHARS: usize = 128;

/// `latestSupportedTlsVersion`: the newest TLS version the notification endpoint supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// `v1_0`
    V1_0,
    /// `v1_1`
    V1_1,
    /// `v1_2` (Graph's default)
    V1_2,
    /// `v1_3`
    V1_3,
}

impl TlsVersion {
    fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "v1_0",
            Self::V1_1 => "v1_1",
            Self::V1_2 => "v1_2",
            Self::V1_3 => "v1_3",
        }
    }
}

#[derive(Clone)]
enum Expiry {
    In(SystemTime, Duration),
    At(SystemTime, SystemTime),
}

/// Builds a `POST /subscriptions` request. Required parts come first; [`build`](Self::build)
/// checks every rule.
#[derive(Clone)]
pub struct SubscriptionRequest {
    resource: Resource,
    notification_url: String,
    change_types: Vec<ChangeType>,
    lifecycle_url: Option<String>,
    model: Option<Model>,
    search: Option<String>,
    mentions: Option<String>,
    user_specific: bool,
    certificate: Option<(Vec<u8>, String)>,
    expiry: Option<Expiry>,
    client_state: Option<String>,
    tls: Option<TlsVersion>,
    version: Option<ApiVersion>,
    loopback_http: bool,
}

impl fmt::Debug for SubscriptionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionRequest")
            .field("resource", &self.resource)
            .field("notification_url", &self.notification_url)
            .field("change_types", &self.change_types)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody<'a> {
    change_type: String,
    notification_url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle_notification_url: Option<&'a str>,
    resource: String,
    include_resource_data: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_certificate_id: Option<&'a str>,
    expiration_date_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_supported_tls_version: Option<&'static str>,
}

impl SubscriptionRequest {
    /// A request to watch `resource`, delivering to `notification_url`: an `https://` URL, or
    /// the `EventHub:https://...?tenantId=...` and `EventGrid:?azuresubscriptionid=...` forms.
    pub fn builder(resource: Resource, notification_url: impl Into<String>) -> Self {
        Self {
            resource,
            notification_url: notification_url.into(),
            change_types: Vec::new(),
            lifecycle_url: None,
            model: None,
            search: None,
            mentions: None,
            user_specific: false,
            certificate: None,
            expiry: None,
            client_state: None,
            tls: None,
            version: None,
            loopback_http: false,
        }
    }

    /// The changes to be notified of (`created`, `updated`, `deleted`).
    pub fn change_types(mut self, types: impl IntoIterator<Item = ChangeType>) -> Self {
        self.change_types = types.into_iter().collect();
        self
    }

    /// Where lifecycle notifications go (required past one hour of lifetime).
    pub fn lifecycle_url(mut self, url: impl Into<String>) -> Self {
        self.lifecycle_url = Some(url.into());
        self
    }

    /// `model=A` or `model=B`, where the resource is metered.
    pub fn model(mut self, model: Model) -> Self {
        self.model = Some(model);
        self
    }

    /// `$search`: only messages containing `keyword`.
    pub fn search(mut self, keyword: impl Into<String>) -> Self {
        self.search = Some(keyword.into());
        self
    }

    /// `$filter`: only messages that mention the user with this object id.
    pub fn mentions(mut self, user_id: impl Into<String>) -> Self {
        self.mentions = Some(user_id.into());
        self
    }

    /// `notifyOnUserSpecificProperties=true`: also notify on the subscribing user's own view of
    /// a chat (its `viewpoint`). Delegated access only; Graph takes it on the beta API.
    pub fn user_specific_properties(mut self) -> Self {
        self.user_specific = true;
        self
    }

    /// `includeResourceData: true`, with the certificate (its DER bytes) Graph encrypts for and
    /// the id you give it (1 to 128 characters; notifications name it as
    /// `encryptionCertificateId`).
    pub fn include_resource_data(
        mut self,
        certificate_der: impl Into<Vec<u8>>,
        certificate_id: impl Into<String>,
    ) -> Self {
        self.certificate = Some((certificate_der.into(), certificate_id.into()));
        self
    }

    /// Expires `lifetime` after `now`.
    pub fn expires_in(mut self, now: SystemTime, lifetime: Duration) -> Self {
        self.expiry = Some(Expiry::In(now, lifetime));
        self
    }

    /// Expires at `at`, judged from `now`.
    pub fn expires_at(mut self, now: SystemTime, at: SystemTime) -> Self {
        self.expiry = Some(Expiry::At(now, at));
        self
    }

    /// `clientState`: a secret (1 to 128 characters) Graph echoes in every notification.
    pub fn client_state(mut self, value: impl Into<String>) -> Self {
        self.client_state = Some(value.into());
        self
    }

    /// `latestSupportedTlsVersion` (Graph assumes `v1_2` without it).
    pub fn latest_supported_tls_version(mut self, version: TlsVersion) -> Self {
        self.tls = Some(version);
        self
    }

    /// Overrides the API version chosen from the resource and its options.
    pub fn api_version(mut self, version: ApiVersion) -> Self {
        self.version = Some(version);
        self
    }

    /// Also accept `http://` notification and lifecycle URLs on a loopback address
    /// (`127.0.0.0/8`, `[::1]`, `localhost`), for a local Graph such as `graph-sim`. Microsoft
    /// Graph itself delivers only to `https://` URLs and refuses these.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use graph_chat_notifications::model::ChangeType;
    /// use graph_chat_notifications::outbound::{RequestError, Resource, SubscriptionRequest};
    /// let request = SubscriptionRequest::builder(Resource::chat_messages("19:a@thread.v2"), "http://127.0.0.1:8080/notifications")
    ///     .change_types([ChangeType::Created])
    ///     .expires_in(SystemTime::now(), Duration::from_secs(1800));
    /// assert!(matches!(request.build(), Err(RequestError::BadUrl { .. })));
    /// assert!(request.allow_loopback_http().build().is_ok());
    /// ```
    pub fn allow_loopback_http(mut self) -> Self {
        self.loopback_http = true;
        self
    }

    /// The resource string with its query options, as the body's `resource` carries it.
    fn resource_string(&self, support: &Support) -> Result<String, RequestError> {
        let path = self.resource.path();
        let unsupported =
            |option: String, supported: &'static str| RequestError::UnsupportedQueryOption {
                resource: path.clone(),
                option,
                supported,
            };
        let mut options: Vec<String> = Vec::new();
        if let Some(model) = self.model {
            if !support.models.contains(&model) {
                let supported = match support.models {
                    [] => "no model",
                    [Model::B] => "model=B",
                    _ => "model=A, model=B",
                };
                return Err(unsupported(format!("model={}", model.as_str()), supported));
            }
            options.push(format!("model={}", model.as_str()));
        }
        if let Some(keyword) = &self.search {
            if !support.search {
                return Err(unsupported(
                    "$search".into(),
                    "channel and chat messages, and a user's chat messages",
                ));
            }
            if keyword.trim().is_empty() {
                return Err(RequestError::EmptySearch);
            }
            options.push(format!("$search={}", encode_query_value(keyword)));
        }
        if let Some(user) = &self.mentions {
            if !support.mentions_filter {
                return Err(unsupported(
                    "the mentions $filter".into(),
                    "channel and chat messages",
                ));
            }
            if !is_guid(user) {
                return Err(RequestError::BadMentionedUser(user.clone()));
            }
            options.push(format!(
                "$filter=mentions/any(u: u/mentioned/user/id eq '{user}')"
            ));
        }
        if self.user_specific {
            if !support.user_specific_properties {
                return Err(unsupported(
                    "notifyOnUserSpecificProperties".into(),
                    "a chat, a user's chats and /me/chats, with delegated access",
                ));
            }
            options.push("notifyOnUserSpecificProperties=true".into());
        }
        Ok(if options.is_empty() {
            path
        } else {
            format!("{path}?{}", options.join("&"))
        })
    }

    /// Checks every rule and returns the request.
    pub fn build(&self) -> Result<HttpRequest, RequestError> {
        for (what, id) in self.resource.ids() {
            check_path_id(what, id)?;
        }
        let change_type = change_type_list(&self.change_types)?;
        check_delivery_url(
            "notificationUrl",
            &self.notification_url,
            self.loopback_http,
        )?;
        if let Some(url) = &self.lifecycle_url {
            check_delivery_url("lifecycleNotificationUrl", url, self.loopback_http)?;
        }
        let support = self.resource.support();
        let resource = self.resource_string(&support)?;

        let (now, expires) = match self.expiry.clone().ok_or(RequestError::NoExpiration)? {
            Expiry::In(now, lifetime) => (
                now,
                now.checked_add(lifetime)
                    .ok_or(RequestError::TimeOutOfRange)?,
            ),
            Expiry::At(now, at) => (now, at),
        };
        let lifetime = check_lifetime(now, expires)?;
        if lifetime > MAX_LIFETIME_WITHOUT_LIFECYCLE_URL && self.lifecycle_url.is_none() {
            return Err(RequestError::LifecycleUrlRequired);
        }
        if let Some(state) = &self.client_state {
            crate::check_graph_id_len(state).map_err(RequestError::BadClientState)?;
        }
        let (certificate, certificate_id) = match &self.certificate {
            None => (None, None),
            Some((der, id)) => {
                let (c, i) = certificate_fields(der, id)?;
                (Some(c), Some(i))
            }
        };
        let version = self.version.unwrap_or(
            if self.user_specific && support.user_specific_properties_beta {
                ApiVersion::Beta
            } else {
                support.version
            },
        );
        let body = CreateBody {
            change_type,
            notification_url: &self.notification_url,
            lifecycle_notification_url: self.lifecycle_url.as_deref(),
            resource,
            include_resource_data: certificate.is_some(),
            encryption_certificate: certificate,
            encryption_certificate_id: certificate_id,
            expiration_date_time: format_time(expires)?,
            client_state: self.client_state.as_deref(),
            latest_supported_tls_version: self.tls.map(TlsVersion::as_str),
        };
        Ok(HttpRequest::json(
            Method::Post,
            format!("{GRAPH}/{version}/subscriptions"),
            &body,
        ))
    }
}

fn certificate_fields<'a>(der: &[u8], id: &'a str) -> Result<(String, &'a str), RequestError> {
    if der.is_empty() {
        return Err(RequestError::EmptyCertificate);
    }
    crate::check_graph_id_len(id).map_err(RequestError::BadCertificateId)?;
    Ok((base64::engine::general_purpose::STANDARD.encode(der), id))
}

fn change_type_list(types: &[ChangeType]) -> Result<String, RequestError> {
    let mut names: Vec<&'static str> = Vec::new();
    for t in types {
        let name = t.as_str();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(RequestError::NoChangeType);
    }
    Ok(names.join(","))
}

fn check_lifetime(now: SystemTime, expires: SystemTime) -> Result<Duration, RequestError> {
    let lifetime = expires
        .duration_since(now)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or(RequestError::ExpirationNotInFuture)?;
    if lifetime > MAX_LIFETIME {
        return Err(RequestError::ExpirationTooFar {
            minutes: lifetime.as_secs().div_ceil(60),
        });
    }
    Ok(lifetime)
}

fn subscription_url(id: &str, suffix: &str) -> Result<String, RequestError> {
    if id.is_empty()
        || id == "."
        || id == ".."
        || id.chars().any(|c| c.is_whitespace() || "/?#%".contains(c))
    {
        return Err(RequestError::BadSubscriptionId(id.to_string()));
    }
    Ok(format!("{GRAPH}/v1.0/subscriptions/{id}{suffix}"))
}

/// Everything but RFC 3986's unreserved characters.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_query_value(v: &str) -> Cow<'_, str> {
    percent_encoding::utf8_percent_encode(v, NOT_UNRESERVED).into()
}

fn check_delivery_url(
    field: &'static str,
    raw: &str,
    loopback_http: bool,
) -> Result<(), RequestError> {
    let bad = |reason| Err(RequestError::BadUrl { field, reason });
    if let Some(rest) = strip_prefix_ignore_case(raw, "EventHub:") {
        let Ok(url) = url::Url::parse(rest) else {
            return bad("the EventHub: form needs an https URL after the prefix");
        };
        if url.scheme() != "https" || url.host_str().is_none() {
            return bad("the EventHub: form needs an https URL after the prefix");
        }
        if !url
            .query_pairs()
            .any(|(k, v)| k == "tenantId" && !v.is_empty())
        {
            return bad("the EventHub: form needs a tenantId query parameter");
        }
        return Ok(());
    }
    if let Some(rest) = strip_prefix_ignore_case(raw, "EventGrid:") {
        let query = rest.strip_prefix('?').unwrap_or(rest);
        let keys: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        for needed in [
            "azuresubscriptionid",
            "resourcegroup",
            "partnertopic",
            "location",
        ] {
            if !keys.iter().any(|k| k == needed) {
                return bad("the EventGrid: form needs azuresubscriptionid, resourcegroup, partnertopic and location");
            }
        }
        return Ok(());
    }
    let Ok(url) = url::Url::parse(raw) else {
        return bad("not a URL");
    };
    let loopback = host_is_loopback(&url);
    if url.scheme() != "https" && !(loopback_http && loopback && url.scheme() == "http") {
        return bad("Graph delivers only to https URLs");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return bad("the URL has no host");
    }
    if url.fragment().is_some() {
        return bad("the URL must not have a fragment");
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix))
    .then(|| &s[prefix.len()..])
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RenewBody<'a> {
    expiration_date_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_certificate_id: Option<&'a str>,
}

/// `PATCH /subscriptions/{id}` with only `expirationDateTime`: extends a subscription to
/// `lifetime` after `now` (at most 4,320 minutes; past one hour the subscription must have been
/// created with a `lifecycleNotificationUrl`).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use graph_chat_notifications::outbound::renew;
/// let now = UNIX_EPOCH + Duration::from_secs(1_568_887_200); // 2019-09-19T10:00:00Z
/// let request = renew("7f105c7d-2dc5-4530-97cd-4e7ae6534c07", now, Duration::from_secs(3600))?;
/// assert_eq!(request.method.as_str(), "PATCH");
/// assert_eq!(request.url, "https://graph.microsoft.com/v1.0/subscriptions/7f105c7d-2dc5-4530-97cd-4e7ae6534c07");
/// assert_eq!(request.body_text(), r#"{"expirationDateTime":"2019-09-19T11:00:00.0000000Z"}"#);
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
pub fn renew(
    subscription_id: &str,
    now: SystemTime,
    lifetime: Duration,
) -> Result<HttpRequest, RequestError> {
    renew_body(subscription_id, now, lifetime, None)
}

/// [`renew`] that also rotates the encryption certificate: the PATCH carries the new
/// `encryptionCertificate` and `encryptionCertificateId`. Keep the old key until no notification
/// names the old id.
pub fn renew_with_certificate(
    subscription_id: &str,
    now: SystemTime,
    lifetime: Duration,
    certificate_der: &[u8],
    certificate_id: &str,
) -> Result<HttpRequest, RequestError> {
    renew_body(
        subscription_id,
        now,
        lifetime,
        Some((certificate_der, certificate_id)),
    )
}

fn renew_body(
    subscription_id: &str,
    now: SystemTime,
    lifetime: Duration,
    certificate: Option<(&[u8], &str)>,
) -> Result<HttpRequest, RequestError> {
    let url = subscription_url(subscription_id, "")?;
    let expires = now
        .checked_add(lifetime)
        .ok_or(RequestError::TimeOutOfRange)?;
    check_lifetime(now, expires)?;
    let (encryption_certificate, encryption_certificate_id) = match certificate {
        None => (None, None),
        Some((der, id)) => {
            let (c, i) = certificate_fields(der, id)?;
            (Some(c), Some(i))
        }
    };
    let body = RenewBody {
        expiration_date_time: format_time(expires)?,
        encryption_certificate,
        encryption_certificate_id,
    };
    Ok(HttpRequest::json(Method::Patch, url, &body))
}

/// `POST /subscriptions/{id}/reauthorize`, no body: the answer to a `reauthorizationRequired`
/// lifecycle notification.
pub fn reauthorize(subscription_id: &str) -> Result<HttpRequest, RequestError> {
    Ok(HttpRequest::empty(
        Method::Post,
        subscription_url(subscription_id, "/reauthorize")?,
    ))
}

/// `GET /subscriptions/{id}`: whether a subscription still exists (404 when it expired or was
/// removed; Graph says nothing else when that happens to a Teams subscription), and its expiry.
///
/// ```
/// use graph_chat_notifications::outbound::get_subscription;
/// let request = get_subscription("7f105c7d")?;
/// assert_eq!(request.url, "https://graph.microsoft.com/v1.0/subscriptions/7f105c7d");
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
pub fn get_subscription(subscription_id: &str) -> Result<HttpRequest, RequestError> {
    Ok(HttpRequest::empty(
        Method::Get,
        subscription_url(subscription_id, "")?,
    ))
}

/// `DELETE /subscriptions/{id}`.
pub fn delete(subscription_id: &str) -> Result<HttpRequest, RequestError> {
    Ok(HttpRequest::empty(
        Method::Delete,
        subscription_url(subscription_id, "")?,
    ))
}

/// When to renew a subscription: half-way through its lifetime, and never later than `margin`
/// before it expires. A 60-minute subscription renews after 30 minutes, as the Teams guidance
/// advises; a 3-day one renews after 36 hours.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use graph_chat_notifications::outbound::renew_at;
/// let issued = UNIX_EPOCH + Duration::from_secs(1_000_000);
/// let hour = Duration::from_secs(3600);
/// assert_eq!(renew_at(issued, issued + hour, Duration::from_secs(300)), issued + hour / 2);
/// assert_eq!(renew_at(issued, issued + Duration::from_secs(600), Duration::from_secs(500)), issued + Duration::from_secs(100));
/// ```
pub fn renew_at(issued_at: SystemTime, expires_at: SystemTime, margin: Duration) -> SystemTime {
    let lifetime = expires_at.duration_since(issued_at).unwrap_or_default();
    let half_way = issued_at + lifetime / 2;
    let before_margin = expires_at
        .checked_sub(margin)
        .unwrap_or(issued_at)
        .max(issued_at);
    half_way.min(before_margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("Hello"), "Hello");
        assert_eq!(encode_query_value("a b&c#d%é"), "a%20b%26c%23d%25%C3%A9");
    }
}
