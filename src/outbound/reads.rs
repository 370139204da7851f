//! The reads a subscriber needs to resync after an expiry, a `subscriptionRemoved`, a `missed`
//! event or a restart: a chat's messages, all of a user's chat messages (and their delta), the
//! chat itself with its viewpoint, and the subscriptions an app holds. Typed requests out, typed
//! pages in, with the next request derived from the page's links.

use std::borrow::Cow;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::RequestError;
use super::http::{HttpRequest, Method, GRAPH};
use super::resource::Model;
use super::returned::Subscription;
use super::rules::{check_path_id, format_time};
use crate::model::{Chat, ChatMessage, ConversationMember, ModelError};

/// What a query value keeps readable: everything but controls, white space and the characters
/// that would end or split the query. `$filter` and `$orderby` values then read as Graph's docs
/// write them once decoded (`lastModifiedDateTime gt 2021-03-17T07:13:28.000z`).
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// Graph's largest `$top` for chat messages.
pub const MAX_TOP: u32 = 50;

/// The order of a message listing (`$orderby`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OrderBy {
    /// `createdDateTime desc`: newest first, as a chat shows them.
    CreatedDesc,
    /// `lastModifiedDateTime desc`: most recently changed first (Graph's default order).
    LastModifiedDesc,
}

impl OrderBy {
    fn as_str(self) -> &'static str {
        match self {
            Self::CreatedDesc => "createdDateTime desc",
            Self::LastModifiedDesc => "lastModifiedDateTime desc",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Chat(String),
    UserChat(String, String),
    UserAll(String),
    UserAllDelta(String),
}

/// A `GET` of chat messages: one chat's (`/chats/{id}/messages`, or
/// `/users/{id}/chats/{chatId}/messages`), or every chat of a user's
/// (`/users/{id}/chats/getAllMessages`, and its `delta`). Options are checked at
/// [`build`](Self::build) against what Graph accepts.
///
/// ```
/// use graph_chat_notifications::outbound::{MessagesRequest, OrderBy};
/// // The Teams-embedding guide's step 4.
/// let request = MessagesRequest::user_chat("87d349ed-44d7-43e1-9a83-5f2406dee5bd", "19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2")
///     .top(2)
///     .modified_after("2021-03-17T07:13:28.000z")
///     .order_by(OrderBy::CreatedDesc)
///     .build()?;
/// assert_eq!(request.method.as_str(), "GET");
/// assert_eq!(
///     request.url,
///     "https://graph.microsoft.com/v1.0/users/87d349ed-44d7-43e1-9a83-5f2406dee5bd/chats/19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2/messages\
///      ?$top=2&$filter=lastModifiedDateTime%20gt%202021-03-17T07:13:28.000z&$orderby=createdDateTime%20desc"
/// );
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesRequest {
    scope: Scope,
    top: Option<u32>,
    modified_after: Option<String>,
    order_by: Option<OrderBy>,
    model: Option<Model>,
}

impl MessagesRequest {
    fn new(scope: Scope) -> Self {
        Self {
            scope,
            top: None,
            modified_after: None,
            order_by: None,
            model: None,
        }
    }

    /// `GET /chats/{chatId}/messages`.
    pub fn chat(chat_id: impl Into<String>) -> Self {
        Self::new(Scope::Chat(chat_id.into()))
    }

    /// `GET /users/{userId}/chats/{chatId}/messages`.
    pub fn user_chat(user_id: impl Into<String>, chat_id: impl Into<String>) -> Self {
        Self::new(Scope::UserChat(user_id.into(), chat_id.into()))
    }

    /// `GET /users/{userId}/chats/getAllMessages`: every chat of the user's (application
    /// permissions only).
    pub fn user_all(user_id: impl Into<String>) -> Self {
        Self::new(Scope::UserAll(user_id.into()))
    }

    /// `GET /users/{userId}/chats/getAllMessages/delta`: what changed since the `deltaLink` of the
    /// last round (Graph keeps the last 8 months); follow each page's `@odata.nextLink`, keep the
    /// final `@odata.deltaLink` for next time.
    pub fn user_all_delta(user_id: impl Into<String>) -> Self {
        Self::new(Scope::UserAllDelta(user_id.into()))
    }

    /// `$top`: at most this many messages per page, 1 to 50.
    pub fn top(mut self, n: u32) -> Self {
        self.top = Some(n);
        self
    }

    /// `$filter=lastModifiedDateTime gt {time}`: only messages changed after `time`, written as
    /// Graph writes times (`2021-03-17T07:13:28.000Z`; `outbound::format_time` makes one).
    ///
    /// Graph applies a message listing's `$filter` only when `$orderby` names the same property
    /// (the "List messages in a chat" page): with [`OrderBy::CreatedDesc`] this filter is
    /// **ignored** and every message comes back, newest first. The Teams-embedding guide's
    /// step-4 example pairs them so; it is reproduced as documented. To read what changed since
    /// a watermark, use [`changed_since`](Self::changed_since), which Graph honours.
    pub fn modified_after(mut self, time: impl Into<String>) -> Self {
        self.modified_after = Some(time.into());
        self
    }

    /// `$orderby`. Not for `delta`. See [`modified_after`](Self::modified_after) for the
    /// pairing Graph needs before it applies a filter.
    pub fn order_by(mut self, order: OrderBy) -> Self {
        self.order_by = Some(order);
        self
    }

    /// Everything that changed since `watermark`, as Graph honours it: `$top=50`,
    /// `$filter=lastModifiedDateTime gt {watermark}` and `$orderby=lastModifiedDateTime desc` (the
    /// filter and the order on the same property). Follow every page's `@odata.nextLink`
    /// ([`Page::next_request`]) to the end; then the newest `lastModifiedDateTime` seen (the first
    /// message of the first page) is the next watermark. This is the read the keeper's
    /// [`TaskKind::Resync`](crate::keeper::TaskKind::Resync) calls for, from its `since`.
    ///
    /// ```
    /// use graph_chat_notifications::outbound::MessagesRequest;
    /// let since = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    /// let request = MessagesRequest::chat("19:a@thread.v2").changed_since(since).build()?;
    /// assert_eq!(
    ///     request.url,
    ///     "https://graph.microsoft.com/v1.0/chats/19:a@thread.v2/messages?$top=50\
    ///      &$filter=lastModifiedDateTime%20gt%202023-11-14T22:13:20.0000000Z\
    ///      &$orderby=lastModifiedDateTime%20desc"
    /// );
    /// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
    /// ```
    pub fn changed_since(self, watermark: std::time::SystemTime) -> Self {
        // A time Graph cannot write fails at `build`, as any bad time does.
        let time = format_time(watermark).unwrap_or_else(|_| "(out of range)".into());
        self.top(MAX_TOP)
            .modified_after(time)
            .order_by(OrderBy::LastModifiedDesc)
    }

    /// `model=A` or `model=B` on `getAllMessages` (Graph's licensing and payment models).
    pub fn model(mut self, model: Model) -> Self {
        self.model = Some(model);
        self
    }

    /// Checks the options and builds the `GET`.
    pub fn build(&self) -> Result<HttpRequest, RequestError> {
        let path = match &self.scope {
            Scope::Chat(chat) => {
                check_path_id("chat id", chat)?;
                format!("chats/{chat}/messages")
            }
            Scope::UserChat(user, chat) => {
                check_path_id("user id", user)?;
                check_path_id("chat id", chat)?;
                format!("users/{user}/chats/{chat}/messages")
            }
            Scope::UserAll(user) => {
                check_path_id("user id", user)?;
                format!("users/{user}/chats/getAllMessages")
            }
            Scope::UserAllDelta(user) => {
                check_path_id("user id", user)?;
                format!("users/{user}/chats/getAllMessages/delta")
            }
        };
        let all_messages = matches!(self.scope, Scope::UserAll(_) | Scope::UserAllDelta(_));
        let mut query: Vec<String> = Vec::new();
        if let Some(model) = self.model {
            if !all_messages {
                return Err(RequestError::UnsupportedOption {
                    option: "model",
                    resource: path,
                });
            }
            query.push(format!("model={}", model.as_str()));
        }
        if let Some(top) = self.top {
            if !(1..=MAX_TOP).contains(&top) {
                return Err(RequestError::TopOutOfRange(top));
            }
            query.push(format!("$top={top}"));
        }
        if let Some(time) = &self.modified_after {
            if crate::model::parse_time(time).is_none() {
                return Err(RequestError::BadTime(time.clone()));
            }
            let filter = format!("lastModifiedDateTime gt {time}");
            query.push(format!("$filter={}", encode(&filter)));
        }
        if let Some(order) = self.order_by {
            if matches!(self.scope, Scope::UserAllDelta(_)) {
                return Err(RequestError::UnsupportedOption {
                    option: "$orderby",
                    resource: path,
                });
            }
            query.push(format!("$orderby={}", encode(order.as_str())));
        }
        let mut url = format!("{GRAPH}/v1.0/{path}");
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        Ok(HttpRequest::empty(Method::Get, url))
    }
}

pub(super) fn encode(value: &str) -> Cow<'_, str> {
    utf8_percent_encode(value, QUERY_VALUE).into()
}

/// `GET /chats/{chatId}`: the chat as the app sees it.
pub fn get_chat(chat_id: &str) -> Result<HttpRequest, RequestError> {
    check_path_id("chat id", chat_id)?;
    Ok(HttpRequest::empty(
        Method::Get,
        format!("{GRAPH}/v1.0/chats/{chat_id}"),
    ))
}

/// `GET /users/{userId}/chats/{chatId}`: the chat as one user sees it, with that user's
/// `viewpoint` (hidden, last read), as the Teams-embedding guide's step 9 reads it.
///
/// ```
/// use graph_chat_notifications::outbound::get_user_chat;
/// let request = get_user_chat("87d349ed-44d7-43e1-9a83-5f2406dee5bd", "19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2")?;
/// assert_eq!(request.url, "https://graph.microsoft.com/v1.0/users/87d349ed-44d7-43e1-9a83-5f2406dee5bd/chats/19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2");
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
pub fn get_user_chat(user_id: &str, chat_id: &str) -> Result<HttpRequest, RequestError> {
    check_path_id("user id", user_id)?;
    check_path_id("chat id", chat_id)?;
    Ok(HttpRequest::empty(
        Method::Get,
        format!("{GRAPH}/v1.0/users/{user_id}/chats/{chat_id}"),
    ))
}

/// `GET /subscriptions`: the subscriptions the app holds, paged (follow `@odata.nextLink`), so a
/// restarted service can rebuild its state.
pub fn list_subscriptions() -> HttpRequest {
    HttpRequest::empty(Method::Get, format!("{GRAPH}/v1.0/subscriptions"))
}

/// Why a page Graph returned could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PageError {
    /// Not a JSON object with a `value` array, or a link or count of the wrong type.
    #[error("not a collection page: {0}")]
    NotAPage(&'static str),
}

/// One page of a collection Graph returned: its items, each typed on its own (one that does not
/// fit its model fails alone), and its links. Borrows from the body.
///
/// ```
/// use graph_chat_notifications::outbound::Page;
/// let body = br#"{"@odata.count": 2, "@odata.nextLink": "https://graph.microsoft.com/v1.0/chats/19:a@thread.v2/messages?$skiptoken=abc",
///   "value": [{"id": "1", "messageType": "message"}, {"id": 2}]}"#;
/// let page = Page::messages(body)?;
/// assert_eq!(page.items[0].as_ref().unwrap().id.as_deref(), Some("1"));
/// assert!(page.items[1].is_err());
/// assert_eq!(page.count, Some(2));
/// let next = page.next_request().unwrap()?;
/// assert!(next.url.ends_with("$skiptoken=abc"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Page<'a, T> {
    /// The items of `value`, in order.
    pub items: Vec<Result<T, ModelError>>,
    /// `@odata.nextLink`: where the next page is.
    pub next_link: Option<Cow<'a, str>>,
    /// `@odata.deltaLink`: on the last page of a delta round, where the next round starts.
    pub delta_link: Option<Cow<'a, str>>,
    /// `@odata.count`, when asked for.
    pub count: Option<u64>,
}

#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink", borrow, default)]
    next_link: Option<Cow<'a, str>>,
    #[serde(rename = "@odata.deltaLink", borrow, default)]
    delta_link: Option<Cow<'a, str>>,
    #[serde(rename = "@odata.count", default)]
    count: Option<u64>,
}

impl<'a, T> Page<'a, T> {
    fn parse(
        body: &'a [u8],
        item: impl Fn(&'a RawValue) -> Result<T, ModelError>,
    ) -> Result<Self, PageError> {
        let raw: RawPage<'a> = serde_json::from_slice(body)
            .map_err(|_| PageError::NotAPage("expected {\"value\": [...]} with string links"))?;
        Ok(Self {
            items: raw.value.into_iter().map(item).collect(),
            next_link: raw.next_link,
            delta_link: raw.delta_link,
            count: raw.count,
        })
    }

    /// The `GET` of the next page, if there is one: its link, checked to be an https URL on a
    /// Microsoft Graph host.
    pub fn next_request(&self) -> Option<Result<HttpRequest, RequestError>> {
        self.next_link.as_deref().map(link_request)
    }

    /// The `GET` that starts the next delta round, if this is a delta round's last page.
    pub fn delta_request(&self) -> Option<Result<HttpRequest, RequestError>> {
        self.delta_link.as_deref().map(link_request)
    }

    /// [`next_request`](Self::next_request) for a page read from another Graph at `base` (a
    /// local simulator, a proxy; see [`HttpRequest::with_base`]): a link on `base` is taken as
    /// well as one on a Microsoft Graph host. The request names the global Graph host, so
    /// `with_base(base)` (or a client that applies it) sends it back to `base`.
    ///
    /// ```
    /// use graph_chat_notifications::outbound::Page;
    /// let body = br#"{"@odata.nextLink": "http://127.0.0.1:8081/v1.0/chats/19:a@thread.v2/messages?$skiptoken=2", "value": []}"#;
    /// let page = Page::messages(body)?;
    /// assert!(page.next_request().unwrap().is_err()); // not a Graph host
    /// let next = page.next_request_from("http://127.0.0.1:8081/").unwrap()?;
    /// assert_eq!(next.url, "https://graph.microsoft.com/v1.0/chats/19:a@thread.v2/messages?$skiptoken=2");
    /// assert_eq!(next.with_base("http://127.0.0.1:8081").url, "http://127.0.0.1:8081/v1.0/chats/19:a@thread.v2/messages?$skiptoken=2");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_request_from(&self, base: &str) -> Option<Result<HttpRequest, RequestError>> {
        self.next_link
            .as_deref()
            .map(|link| follow_link(link, base))
    }
}

impl<'a> Page<'a, ChatMessage<'a>> {
    /// A page of chat messages (a listing, `getAllMessages`, or a delta round).
    pub fn messages(body: &'a [u8]) -> Result<Self, PageError> {
        Self::parse(body, |raw| {
            match crate::model::decode(raw.get(), Some(crate::model::ResourceKind::ChatMessage))? {
                crate::model::ChatOrMessage::ChatMessage(m) => Ok(*m),
                crate::model::ChatOrMessage::Chat(_) => unreachable!("decoded as a message"),
            }
        })
    }
}

impl<'a> Page<'a, Chat<'a>> {
    /// A page of chats ([`ChatsRequest::mine`](super::ChatsRequest::mine),
    /// [`ChatsRequest::user`](super::ChatsRequest::user)), each with its `viewpoint` for the
    /// user, and its members or last message when expanded.
    ///
    /// ```
    /// use graph_chat_notifications::outbound::Page;
    /// let body = br#"{"value": [{"id": "19:561082c0f3f847a58069deb8eb300807@thread.v2", "chatType": "group",
    ///   "viewpoint": {"isHidden": false, "lastMessageReadDateTime": "2021-04-06T18:47:42.117Z"}}]}"#;
    /// let page = Page::chats(body)?;
    /// let chat = page.items[0].as_ref().unwrap();
    /// assert_eq!(chat.viewpoint.get().unwrap().is_hidden.get(), Some(&false));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn chats(body: &'a [u8]) -> Result<Self, PageError> {
        Self::parse(body, |raw| {
            match crate::model::decode(raw.get(), Some(crate::model::ResourceKind::Chat))? {
                crate::model::ChatOrMessage::Chat(c) => Ok(*c),
                crate::model::ChatOrMessage::ChatMessage(_) => unreachable!("decoded as a chat"),
            }
        })
    }
}

impl<'a> Page<'a, ConversationMember<'a>> {
    /// A page of a chat's members ([`ChatsRequest::members`](super::ChatsRequest::members)).
    pub fn members(body: &'a [u8]) -> Result<Self, PageError> {
        Self::parse(body, |raw| crate::model::read(raw.get()))
    }
}

impl<'a> Page<'a, Subscription> {
    /// A page of `GET /subscriptions`.
    pub fn subscriptions(body: &'a [u8]) -> Result<Self, PageError> {
        Self::parse(body, |raw| {
            Subscription::from_json(raw.get().as_bytes())
                .map_err(|e| ModelError::new("", &e.to_string()))
        })
    }
}

/// A `GET` of a link Graph returned, on any cloud's Graph host.
/// The `GET` of a page's `@odata.nextLink` or `@odata.deltaLink` read by your own parser, checked
/// as [`Page::next_request_from`] checks it: an https link on a Microsoft Graph host, or a link on
/// `base`, the Graph the page came from (pass `""` for Microsoft Graph only).
///
/// ```
/// use graph_chat_notifications::outbound::follow_link;
/// let next = follow_link("http://127.0.0.1:8081/v1.0/me/chats?$skiptoken=2", "http://127.0.0.1:8081")?;
/// assert_eq!(next.url, "https://graph.microsoft.com/v1.0/me/chats?$skiptoken=2");
/// assert!(follow_link("https://evil.example/v1.0/me/chats", "http://127.0.0.1:8081").is_err());
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
pub fn follow_link(link: &str, base: &str) -> Result<HttpRequest, RequestError> {
    let base = base.trim_end_matches('/');
    match link.strip_prefix(base) {
        Some(rest) if !base.is_empty() && rest.starts_with('/') => {
            link_request(&format!("{GRAPH}{rest}"))
        }
        _ => link_request(link),
    }
}

fn link_request(link: &str) -> Result<HttpRequest, RequestError> {
    let bad = |reason| RequestError::BadLink { reason };
    let url = url::Url::parse(link).map_err(|_| bad("not a URL"))?;
    if url.scheme() != "https" {
        return Err(bad("not https"));
    }
    let host = url.host_str().unwrap_or("");
    let graph_host = crate::Cloud::ALL
        .iter()
        .any(|c| c.graph_url().strip_prefix("https://") == Some(host));
    if !graph_host {
        return Err(bad("not a Microsoft Graph host"));
    }
    Ok(HttpRequest::empty(Method::Get, link.to_string()))
}
