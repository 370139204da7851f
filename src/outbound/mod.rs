//! Subscription requests for Teams chats and chat messages, checked against what Graph accepts,
//! as plain request values: the crate sends nothing.
//!
//! Graph refuses a wrong subscription with a 400, often only after the validation handshake.
//! [`SubscriptionRequest::build`] refuses the same combinations up front, with a reason.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use graph_chat_notifications::outbound::{Resource, SubscriptionRequest};
//! use graph_chat_notifications::outbound::ChangeType;
//!
//! let now = SystemTime::now(); // injected: the crate reads no clock
//! let request = SubscriptionRequest::builder(
//!     Resource::chat_messages("19:abc@thread.v2"),
//!     "https://webhook.example.com/api/notifications",
//! )
//! .change_types([ChangeType::Created, ChangeType::Updated])
//! .search("Hello")
//! .client_state("a-secret-you-choose")
//! .expires_in(now, Duration::from_secs(45 * 60))
//! .build()?;
//! assert_eq!(request.method.as_str(), "POST");
//! assert_eq!(request.url, "https://graph.microsoft.com/v1.0/subscriptions");
//!
//! // More than an hour needs a lifecycle URL, and Graph's limit is 4,320 minutes.
//! let refused = SubscriptionRequest::builder(Resource::all_chats(), "https://webhook.example.com/n")
//!     .change_types([ChangeType::Created])
//!     .expires_in(now, Duration::from_secs(2 * 3600))
//!     .build()
//!     .unwrap_err();
//! assert!(refused.to_string().contains("lifecycleNotificationUrl"));
//! # Ok::<(), graph_chat_notifications::outbound::SubscriptionError>(())
//! ```

mod chats;
mod messages;
mod reads;
mod resource;
mod returned;
mod viewpoint;

pub use chats::{
    created_chat, get_my_chat, ChatMember, ChatsRequest, CreateChat, MemberRole, MAX_TOPIC_CHARS,
};
pub use messages::{
    get_message, hosted_content_bytes, sent_message, set_reaction, soft_delete, undo_soft_delete,
    unset_reaction, MessageRequest,
};
pub use reads::{
    follow_link, get_chat, get_user_chat, list_subscriptions, MessagesRequest, OrderBy, Page,
};
pub use resource::{ApiVersion, Model, Permissions, Resource, Support};
pub use returned::{Subscription, SubscriptionParseError};
pub use viewpoint::{hide_for_user, mark_chat_read_for_user, unhide_for_user, MarkChatUnread};

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::model::GraphEnum as _;
use base64::Engine as _;
use serde::Serialize;
use time::OffsetDateTime;

/// Where Graph lives.
/// Where the builders address their requests; [`HttpRequest::in_cloud`] moves them.
const GRAPH: &str = "https://graph.microsoft.com";
/// Longest subscription Graph grants on chats and chat messages: 4,320 minutes (3 days).
pub const MAX_LIFETIME: Duration = Duration::from_secs(4_320 * 60);
/// Longest subscription that may go without a `lifecycleNotificationUrl`.
pub const MAX_LIFETIME_WITHOUT_LIFECYCLE_URL: Duration = Duration::from_secs(60 * 60);
/// Longest `clientState` and `encryptionCertificateId` Graph accepts, in characters.
pub const MAX_SECRET_CHARS: usize = 128;

/// A change a subscription asks to be told about (`changeType`): the closed
/// [`model::ChangeType`](crate::model::ChangeType), the same type notifications carry as an
/// [`EnumValue`](crate::model::EnumValue). Only its members can be asked for.
pub use crate::model::ChangeType;

/// Why a request was refused: what Graph would have refused, said so a user can act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// No change type was given.
    #[error("changeType: give at least one of created, updated, deleted")]
    NoChangeType,
    /// An id in the resource path is empty, a dot segment, or holds characters that would change
    /// the path.
    #[error(
        "resource: the {what} {id:?} is empty, '.' or '..', or holds '/', '?', '#', '&', '%', quotes or white space"
    )]
    BadId {
        /// Which id (`chat id`, `team id`...).
        what: &'static str,
        /// The id as given.
        id: String,
    },
    /// The resource does not take this query option.
    #[error(
        "resource {resource}: {option} is not supported on this resource (supported: {supported})"
    )]
    UnsupportedQueryOption {
        /// The resource path.
        resource: String,
        /// The option (`model=B`, `$search`...).
        option: String,
        /// What the resource supports instead.
        supported: &'static str,
    },
    /// `$search` was given an empty keyword.
    #[error("$search: the keyword is empty")]
    EmptySearch,
    /// The mentions filter needs a user's object id (a GUID).
    #[error("$filter: {0:?} is not a user object id (a GUID)")]
    BadMentionedUser(String),
    /// A URL is not one Graph delivers to.
    #[error("{field}: {reason}")]
    BadUrl {
        /// `notificationUrl` or `lifecycleNotificationUrl`.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// No expiration was given.
    #[error("expirationDateTime: required; use expires_in(now, lifetime) or expires_at(time)")]
    NoExpiration,
    /// The expiration is not in the future.
    #[error("expirationDateTime: must be after now")]
    ExpirationNotInFuture,
    /// The expiration is past Graph's maximum for these resources.
    #[error("expirationDateTime: {minutes} minutes ahead is over the maximum of 4320 minutes for chat and chatMessage subscriptions")]
    ExpirationTooFar {
        /// Minutes ahead of now.
        minutes: u64,
    },
    /// More than an hour ahead without a lifecycle URL.
    #[error("lifecycleNotificationUrl is a required property for subscription creation on this resource when the expirationDateTime value is set to greater than 1 hour")]
    LifecycleUrlRequired,
    /// `clientState` is empty or too long.
    #[error("clientState: must be 1 to 128 characters, got {0}")]
    BadClientState(usize),
    /// `encryptionCertificateId` is empty or too long.
    #[error("encryptionCertificateId: must be 1 to 128 characters, got {0}")]
    BadCertificateId(usize),
    /// The certificate bytes are empty.
    #[error("encryptionCertificate: no certificate bytes")]
    EmptyCertificate,
    /// A subscription id is empty or holds characters that would change the URL.
    #[error(
        "subscription id {0:?} is empty, '.' or '..', or holds '/', '?', '#', '%' or white space"
    )]
    BadSubscriptionId(String),
    /// The time cannot be written as a date (out of range).
    #[error("expirationDateTime: the time is out of range")]
    TimeOutOfRange,
    /// A read option the endpoint does not take.
    #[error("{option} is not accepted on {resource}")]
    UnsupportedOption {
        /// The option (`model`, `$orderby`).
        option: &'static str,
        /// The endpoint's path.
        resource: String,
    },
    /// `$top` outside 1 to 50.
    #[error("$top: {0} is outside 1 to 50")]
    TopOutOfRange(u32),
    /// A time that is not one (for the `lastModifiedDateTime` filter).
    #[error("$filter: {0:?} is not a time such as 2021-03-17T07:13:28.000Z")]
    BadTime(String),
    /// A link Graph returned that is not one to follow.
    #[error("@odata link: {reason}")]
    BadLink {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A chat's members do not fit its type: a `oneOnOne` chat has exactly two, a `group` chat
    /// at least two (Graph: "Create chat").
    #[error("members: a {chat_type} chat needs {needed} members, got {got}")]
    MemberCount {
        /// `oneOnOne` or `group`.
        chat_type: &'static str,
        /// What the type needs (`exactly 2`, `at least 2`).
        needed: &'static str,
        /// How many were given.
        got: usize,
    },
    /// The same user was given twice as a member.
    #[error("members[{index}]: {user:?} is already a member of the chat")]
    DuplicateMember {
        /// The position of the second occurrence in `members`.
        index: usize,
        /// The user id or UPN.
        user: String,
    },
    /// A member's user is neither an object id nor a user principal name, or holds characters
    /// that would break `users('{id}')`.
    #[error("members[{index}]: {user:?} is not a user id (a GUID) or a user principal name (name@domain)")]
    BadMember {
        /// The position in `members`.
        index: usize,
        /// The user as given.
        user: String,
    },
    /// A topic was given for a chat that is not a group chat.
    #[error("topic: only a group chat has a topic; remove it from the oneOnOne chat")]
    TopicNotAllowed,
    /// A group chat's topic is empty, too long or holds a ':' (Graph: "Update chat").
    #[error("topic: {reason}")]
    BadTopic {
        /// What is wrong.
        reason: &'static str,
    },
    /// A message body with no content.
    #[error("body.content: the message is empty")]
    EmptyContent,
    /// Mentions or inline images in a message whose body is not HTML.
    #[error("body.contentType: {what} need an html body; call .html()")]
    NeedsHtml {
        /// `mentions` or `hostedContents`.
        what: &'static str,
    },
    /// A mention that the HTML body does not carry as `<at id="{id}">`, or a second mention with
    /// the same id.
    #[error("mentions[{index}]: {reason} (id {id})")]
    BadMention {
        /// The position in `mentions`.
        index: usize,
        /// The mention's id.
        id: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// An inline image that is empty, has no image content type, repeats a temporary id, or is
    /// not referenced by the body as `../hostedContents/{id}/$value`.
    #[error("hostedContents[{index}]: {reason}")]
    BadHostedContent {
        /// The position in `hostedContents`.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// `reactionType` is empty or white space.
    #[error("reactionType: give the reaction, such as a Unicode emoji")]
    EmptyReaction,
    /// An id that must be an object id (a GUID) is not one.
    #[error("{field}: {value:?} is not an object id (a GUID)")]
    NotAGuid {
        /// The property (`user.id`, `user.tenantId`).
        field: &'static str,
        /// The value as given.
        value: String,
    },
    /// A `$filter` expression that is empty.
    #[error("$filter: the expression is empty")]
    EmptyFilter,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// A request to send to Graph with your HTTP client, adding your `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The full URL.
    pub url: String,
    /// Headers other than `Authorization` (`Content-Type` when there is a body).
    pub headers: Vec<(&'static str, &'static str)>,
    /// The JSON body, if any.
    pub body: Option<Vec<u8>>,
}

impl fmt::Debug for HttpRequest {
    /// The body may hold the clientState: only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// The request as the `http` crate's type, for reqwest, hyper and tower clients (feature
/// `http`). Add the `Authorization` header before sending.
///
/// ```
/// # #[cfg(feature = "http")] {
/// use graph_chat_notifications::outbound::list_subscriptions;
/// let request: http::Request<Vec<u8>> = list_subscriptions().try_into().unwrap();
/// assert_eq!(request.method(), http::Method::GET);
/// assert_eq!(request.uri(), "https://graph.microsoft.com/v1.0/subscriptions");
/// # }
/// ```
#[cfg(feature = "http")]
impl TryFrom<HttpRequest> for http::Request<Vec<u8>> {
    type Error = http::Error;
    fn try_from(request: HttpRequest) -> Result<Self, http::Error> {
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        builder.body(request.body.unwrap_or_default())
    }
}

impl HttpRequest {
    fn json(method: Method, url: String, body: &impl Serialize) -> Self {
        Self {
            method,
            url,
            headers: vec![("Content-Type", "application/json")],
            body: Some(serde_json::to_vec(body).expect("request bodies serialize")),
        }
    }

    pub(crate) fn empty(method: Method, url: String) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    /// The same request sent to `cloud`'s Graph host: every builder makes requests for the
    /// global service, and this moves one to a national cloud.
    ///
    /// ```
    /// use graph_chat_notifications::outbound::reauthorize;
    /// use graph_chat_notifications::Cloud;
    /// let request = reauthorize("7f105c7d")?.in_cloud(Cloud::China);
    /// assert_eq!(
    ///     request.url,
    ///     "https://microsoftgraph.chinacloudapi.cn/v1.0/subscriptions/7f105c7d/reauthorize"
    /// );
    /// # Ok::<(), graph_chat_notifications::outbound::SubscriptionError>(())
    /// ```
    pub fn in_cloud(mut self, cloud: crate::Cloud) -> Self {
        if let Some(path) = self.url.strip_prefix(GRAPH) {
            self.url = format!("{}{path}", cloud.graph_url());
        }
        self
    }

    /// The same request sent to another Graph at `base` (scheme, host, port and an optional path
    /// prefix, with or without a trailing `/`): a local simulator such as `graph-sim`, or a
    /// proxy. Requests for a national cloud move too.
    ///
    /// ```
    /// use graph_chat_notifications::outbound::reauthorize;
    /// let request = reauthorize("7f105c7d")?.with_base("http://127.0.0.1:8081/");
    /// assert_eq!(request.url, "http://127.0.0.1:8081/v1.0/subscriptions/7f105c7d/reauthorize");
    /// # Ok::<(), graph_chat_notifications::outbound::SubscriptionError>(())
    /// ```
    pub fn with_base(mut self, base: &str) -> Self {
        let base = base.trim_end_matches('/');
        for host in crate::Cloud::ALL.map(crate::Cloud::graph_url) {
            if let Some(path) = self.url.strip_prefix(host) {
                if path.is_empty() || path.starts_with('/') {
                    self.url = format!("{base}{path}");
                    break;
                }
            }
        }
        self
    }

    /// The body as JSON text (empty without a body).
    pub fn body_text(&self) -> &str {
        self.body
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

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
    /// use graph_chat_notifications::outbound::{ChangeType, Resource, SubscriptionError, SubscriptionRequest};
    /// let request = SubscriptionRequest::builder(Resource::chat_messages("19:a@thread.v2"), "http://127.0.0.1:8080/notifications")
    ///     .change_types([ChangeType::Created])
    ///     .expires_in(SystemTime::now(), Duration::from_secs(1800));
    /// assert!(matches!(request.build(), Err(SubscriptionError::BadUrl { .. })));
    /// assert!(request.allow_loopback_http().build().is_ok());
    /// ```
    pub fn allow_loopback_http(mut self) -> Self {
        self.loopback_http = true;
        self
    }

    /// The resource string with its query options, as the body's `resource` carries it.
    fn resource_string(&self, support: &Support) -> Result<String, SubscriptionError> {
        let path = self.resource.path();
        let unsupported =
            |option: String, supported: &'static str| SubscriptionError::UnsupportedQueryOption {
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
                return Err(SubscriptionError::EmptySearch);
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
                return Err(SubscriptionError::BadMentionedUser(user.clone()));
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
    pub fn build(&self) -> Result<HttpRequest, SubscriptionError> {
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

        let (now, expires) = match self.expiry.clone().ok_or(SubscriptionError::NoExpiration)? {
            Expiry::In(now, lifetime) => (
                now,
                now.checked_add(lifetime)
                    .ok_or(SubscriptionError::TimeOutOfRange)?,
            ),
            Expiry::At(now, at) => (now, at),
        };
        let lifetime = check_lifetime(now, expires)?;
        if lifetime > MAX_LIFETIME_WITHOUT_LIFECYCLE_URL && self.lifecycle_url.is_none() {
            return Err(SubscriptionError::LifecycleUrlRequired);
        }
        if let Some(state) = &self.client_state {
            crate::check_graph_id_len(state).map_err(SubscriptionError::BadClientState)?;
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

fn certificate_fields<'a>(der: &[u8], id: &'a str) -> Result<(String, &'a str), SubscriptionError> {
    if der.is_empty() {
        return Err(SubscriptionError::EmptyCertificate);
    }
    crate::check_graph_id_len(id).map_err(SubscriptionError::BadCertificateId)?;
    Ok((base64::engine::general_purpose::STANDARD.encode(der), id))
}

fn change_type_list(types: &[ChangeType]) -> Result<String, SubscriptionError> {
    let mut names: Vec<&'static str> = Vec::new();
    for t in types {
        let name = t.as_str();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(SubscriptionError::NoChangeType);
    }
    Ok(names.join(","))
}

fn check_lifetime(now: SystemTime, expires: SystemTime) -> Result<Duration, SubscriptionError> {
    let lifetime = expires
        .duration_since(now)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or(SubscriptionError::ExpirationNotInFuture)?;
    if lifetime > MAX_LIFETIME {
        return Err(SubscriptionError::ExpirationTooFar {
            minutes: lifetime.as_secs().div_ceil(60),
        });
    }
    Ok(lifetime)
}

/// ISO 8601 in UTC with seven fractional digits, as Graph writes it: `2019-09-19T11:00:00.0000000Z`.
pub fn format_time(t: SystemTime) -> Result<String, SubscriptionError> {
    // `OffsetDateTime::from(SystemTime)` panics past year 9999: convert with a checked add.
    let t = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => time::Duration::try_from(after)
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d)),
        Err(before) => time::Duration::try_from(before.duration())
            .ok()
            .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_sub(d)),
    }
    .ok_or(SubscriptionError::TimeOutOfRange)?;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
    );
    t.format(&format)
        .map_err(|_| SubscriptionError::TimeOutOfRange)
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_path_id(what: &'static str, id: &str) -> Result<(), SubscriptionError> {
    // `.` and `..` are dot segments, which URL parsers remove (`chats/../members` is `members`),
    // and a `%` would let the server decode a `/` or a `..` out of the id.
    let bad = id.is_empty()
        || id == "."
        || id == ".."
        || id
            .chars()
            .any(|c| c.is_whitespace() || "/?#&%'\"\\".contains(c));
    if bad {
        return Err(SubscriptionError::BadId {
            what,
            id: id.to_string(),
        });
    }
    Ok(())
}

fn subscription_url(id: &str, suffix: &str) -> Result<String, SubscriptionError> {
    if id.is_empty()
        || id == "."
        || id == ".."
        || id.chars().any(|c| c.is_whitespace() || "/?#%".contains(c))
    {
        return Err(SubscriptionError::BadSubscriptionId(id.to_string()));
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
) -> Result<(), SubscriptionError> {
    let bad = |reason| Err(SubscriptionError::BadUrl { field, reason });
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
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
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
/// # Ok::<(), graph_chat_notifications::outbound::SubscriptionError>(())
/// ```
pub fn renew(
    subscription_id: &str,
    now: SystemTime,
    lifetime: Duration,
) -> Result<HttpRequest, SubscriptionError> {
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
) -> Result<HttpRequest, SubscriptionError> {
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
) -> Result<HttpRequest, SubscriptionError> {
    let url = subscription_url(subscription_id, "")?;
    let expires = now
        .checked_add(lifetime)
        .ok_or(SubscriptionError::TimeOutOfRange)?;
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
pub fn reauthorize(subscription_id: &str) -> Result<HttpRequest, SubscriptionError> {
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
/// # Ok::<(), graph_chat_notifications::outbound::SubscriptionError>(())
/// ```
pub fn get_subscription(subscription_id: &str) -> Result<HttpRequest, SubscriptionError> {
    Ok(HttpRequest::empty(
        Method::Get,
        subscription_url(subscription_id, "")?,
    ))
}

/// `DELETE /subscriptions/{id}`.
pub fn delete(subscription_id: &str) -> Result<HttpRequest, SubscriptionError> {
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
    fn times_have_seven_fractional_digits() {
        let t = std::time::UNIX_EPOCH + Duration::new(1_568_890_800, 123_456_789);
        assert_eq!(format_time(t).unwrap(), "2019-09-19T11:00:00.1234567Z");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("Hello"), "Hello");
        assert_eq!(encode_query_value("a b&c#d%é"), "a%20b%26c%23d%25%C3%A9");
    }

    #[test]
    fn guids() {
        assert!(is_guid("9a6eb4d1-826b-48b1-9627-b50836c8fee9"));
        assert!(!is_guid("9a6eb4d1-826b-48b1-9627-b50836c8fee"));
        assert!(!is_guid(
            "9a6eb4d1-826b-48b1-9627-b50836c8fee9') or true or ('"
        ));
    }
}
