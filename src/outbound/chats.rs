//! Chats: creating one (`POST /chats`), listing a user's chats (`GET /me/chats`,
//! `GET /users/{id}/chats`) and a chat's members (`GET /chats/{id}/members`), checked at
//! [`build`](CreateChat::build) against what Graph's "Create chat", "List chats" and "List members
//! of a chat" pages accept.

use serde::Serialize;

use super::error::RequestError;
use super::http::{HttpRequest, Method, GRAPH};
use super::reads::{encode, MAX_TOP};
use super::rules::{check_path_id, is_guid};
use crate::model::{Chat, ChatOrMessage, ModelError, ResourceKind};

/// Longest topic Graph takes for a group chat, in characters ("Update chat").
pub const MAX_TOPIC_CHARS: usize = 250;

/// Longest user principal name Microsoft Entra ID takes, in characters.
const MAX_UPN_CHARS: usize = 113;

/// A member's role in a new chat: every member is an `owner` or a `guest` (in-tenant guest users
/// are `guest`s; users of other tenants are `owner`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberRole {
    /// `owner`
    Owner,
    /// `guest`
    Guest,
}

impl MemberRole {
    fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Guest => "guest",
        }
    }
}

/// A member of a chat to create: a user by object id or user principal name, with a role. Graph
/// binds it as `https://graph.microsoft.com/v1.0/users('{user}')`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMember {
    user: String,
    role: MemberRole,
}

impl ChatMember {
    /// A member with `role`; `user` is an object id (`8b081ef6-4792-4def-b2c9-c363a1bf41d5`) or a
    /// user principal name (`john.doe@contoso.com`).
    pub fn new(user: impl Into<String>, role: MemberRole) -> Self {
        Self {
            user: user.into(),
            role,
        }
    }

    /// An `owner`, the role of every member in Graph's examples.
    pub fn owner(user: impl Into<String>) -> Self {
        Self::new(user, MemberRole::Owner)
    }

    /// A `guest` (an in-tenant guest user).
    pub fn guest(user: impl Into<String>) -> Self {
        Self::new(user, MemberRole::Guest)
    }
}

/// A user principal name: `local@domain`, with nothing that would end `users('...')` or change
/// the URL.
fn is_upn(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && s.chars().count() <= MAX_UPN_CHARS
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/?#&'\"\\%()".contains(c))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OneOnOne,
    Group,
}

/// `POST /chats`: a new `oneOnOne` chat (exactly two members, no topic) or `group` chat (an
/// optional topic). Graph returns `201 Created` with the chat ([`created_chat`] reads it); for
/// two users who already have a one-on-one chat it returns that chat.
///
/// ```
/// use graph_chat_notifications::outbound::{ChatMember, CreateChat, RequestError};
/// let request = CreateChat::group([
///     ChatMember::owner("adams@contoso.com"),
///     ChatMember::owner("4562bcc8-c436-4f95-b7c0-4f8ce89dca5e"),
/// ])
/// .topic("Invoice 987654")
/// .build()?;
/// assert_eq!(request.url, "https://graph.microsoft.com/v1.0/chats");
/// assert!(request.body_text().contains(r#""user@odata.bind":"https://graph.microsoft.com/v1.0/users('adams@contoso.com')""#));
///
/// // A oneOnOne chat has exactly two members, and no topic.
/// let refused = CreateChat::one_on_one(ChatMember::owner("a@contoso.com"), ChatMember::owner("b@contoso.com"))
///     .member(ChatMember::owner("c@contoso.com"))
///     .build()
///     .unwrap_err();
/// assert!(matches!(refused, RequestError::MemberCount { got: 3, .. }));
/// # Ok::<(), RequestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateChat {
    kind: Kind,
    topic: Option<String>,
    members: Vec<ChatMember>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody<'a> {
    chat_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    members: Vec<MemberBody>,
}

#[derive(Serialize)]
struct MemberBody {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    roles: [&'static str; 1],
    #[serde(rename = "user@odata.bind")]
    user_bind: String,
}

impl CreateChat {
    /// A `oneOnOne` chat between two users (the signed-in user among them).
    pub fn one_on_one(a: ChatMember, b: ChatMember) -> Self {
        Self {
            kind: Kind::OneOnOne,
            topic: None,
            members: vec![a, b],
        }
    }

    /// A `group` chat of `members`, every participant included (the signed-in user too).
    pub fn group(members: impl IntoIterator<Item = ChatMember>) -> Self {
        Self {
            kind: Kind::Group,
            topic: None,
            members: members.into_iter().collect(),
        }
    }

    /// Adds a member.
    pub fn member(mut self, member: ChatMember) -> Self {
        self.members.push(member);
        self
    }

    /// `topic`: the title of a group chat (1 to 250 characters, no ':').
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Checks the members and the topic, and builds the `POST`.
    pub fn build(&self) -> Result<HttpRequest, RequestError> {
        let (chat_type, needed, fits) = match self.kind {
            Kind::OneOnOne => ("oneOnOne", "exactly 2", self.members.len() == 2),
            Kind::Group => ("group", "at least 1", !self.members.is_empty()),
        };
        if !fits {
            return Err(RequestError::MemberCount {
                chat_type,
                needed,
                got: self.members.len(),
            });
        }
        let mut members = Vec::with_capacity(self.members.len());
        for (index, member) in self.members.iter().enumerate() {
            let user = member.user.as_str();
            if !is_guid(user) && !is_upn(user) {
                return Err(RequestError::BadMember {
                    index,
                    user: user.to_string(),
                });
            }
            let seen = self.members[..index]
                .iter()
                .any(|m| m.user.eq_ignore_ascii_case(user));
            if seen {
                return Err(RequestError::DuplicateMember {
                    index,
                    user: user.to_string(),
                });
            }
            members.push(MemberBody {
                odata_type: "#microsoft.graph.aadUserConversationMember",
                roles: [member.role.as_str()],
                user_bind: format!("{GRAPH}/v1.0/users('{user}')"),
            });
        }
        if let Some(topic) = &self.topic {
            if self.kind != Kind::Group {
                return Err(RequestError::TopicNotAllowed);
            }
            let bad = |reason| Err(RequestError::BadTopic { reason });
            if topic.trim().is_empty() {
                return bad("the topic is empty; leave it out for a chat without a title");
            }
            if topic.chars().count() > MAX_TOPIC_CHARS {
                return bad("at most 250 characters");
            }
            if topic.contains(':') {
                return bad("Graph does not allow ':' in a chat topic");
            }
        }
        let body = CreateBody {
            chat_type,
            topic: self.topic.as_deref(),
            members,
        };
        Ok(HttpRequest::json(
            Method::Post,
            format!("{GRAPH}/v1.0/chats"),
            &body,
        ))
    }
}

#[derive(Serialize)]
struct AddMemberBody {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    roles: [&'static str; 1],
    #[serde(rename = "user@odata.bind")]
    user_bind: String,
    #[serde(
        rename = "visibleHistoryStartDateTime",
        skip_serializing_if = "Option::is_none"
    )]
    visible_history_start: Option<String>,
}

/// `POST /chats/{chatId}/members` (Graph's "Add member to a chat"): adds `member` to a group
/// chat (Graph refuses a `oneOnOne` one with 400), as the signed-in user. With
/// `visible_history_from`, the new member sees the chat's messages from then on; without it,
/// none from before they were added (Graph's default). Graph answers `201 Created` with the
/// `conversationMember`, and the chat shows a system event message (`membersAddedEventMessageDetail`).
///
/// ```
/// use graph_chat_notifications::outbound::{add_chat_member, ChatMember};
/// let request = add_chat_member(
///     "19:cf66807577b149cca1b7af0c32eaa1f9@thread.v2",
///     &ChatMember::owner("8b081ef6-4792-4def-b2c9-c363a1bf41d5"),
///     None,
/// )?;
/// assert_eq!(request.url, "https://graph.microsoft.com/v1.0/chats/19:cf66807577b149cca1b7af0c32eaa1f9@thread.v2/members");
/// let body: serde_json::Value = serde_json::from_slice(request.body.as_deref().unwrap()).unwrap();
/// assert_eq!(body["user@odata.bind"], "https://graph.microsoft.com/v1.0/users('8b081ef6-4792-4def-b2c9-c363a1bf41d5')");
/// assert_eq!(body["roles"][0], "owner");
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
pub fn add_chat_member(
    chat_id: &str,
    member: &ChatMember,
    visible_history_from: Option<std::time::SystemTime>,
) -> Result<HttpRequest, RequestError> {
    check_path_id("chat id", chat_id)?;
    let user = member.user.as_str();
    if !is_guid(user) && !is_upn(user) {
        return Err(RequestError::BadMember {
            index: 0,
            user: user.to_string(),
        });
    }
    let body = AddMemberBody {
        odata_type: "#microsoft.graph.aadUserConversationMember",
        roles: [member.role.as_str()],
        user_bind: format!("{GRAPH}/v1.0/users('{user}')"),
        visible_history_start: visible_history_from
            .map(super::rules::format_time)
            .transpose()?,
    };
    Ok(HttpRequest::json(
        Method::Post,
        format!("{GRAPH}/v1.0/chats/{chat_id}/members"),
        &body,
    ))
}

/// The chat Graph returned for a [`CreateChat`] (`201 Created`), or a [`get_chat`](super::get_chat)
/// or [`get_user_chat`](super::get_user_chat) (`200 OK`), typed as a [`Chat`].
///
/// ```
/// use graph_chat_notifications::outbound::created_chat;
/// let body = br#"{"id": "19:1c5b01696d2e4a179c292bc9cf04e63b@thread.v2", "topic": "Group chat title",
///   "createdDateTime": "2020-12-04T23:11:16.175Z", "chatType": "group"}"#;
/// let chat = created_chat(body)?;
/// assert_eq!(chat.topic.as_deref(), Some("Group chat title"));
/// # Ok::<(), graph_chat_notifications::model::ModelError>(())
/// ```
pub fn created_chat(body: &[u8]) -> Result<Chat<'_>, ModelError> {
    let json = std::str::from_utf8(body).map_err(|_| ModelError::new("", "not UTF-8"))?;
    match crate::model::decode(json, Some(ResourceKind::Chat))? {
        ChatOrMessage::Chat(chat) => Ok(*chat),
        ChatOrMessage::ChatMessage(_) => unreachable!("decoded as a chat"),
    }
}

/// `GET /me/chats/{chatId}`: the chat as the signed-in user sees it, with their `viewpoint`
/// (delegated; [`get_user_chat`](super::get_user_chat) names the user instead). Graph takes no
/// query options here.
///
/// ```
/// use graph_chat_notifications::outbound::get_my_chat;
/// let request = get_my_chat("19:b8577894a63548969c5c92bb9c80c5e1@thread.v2")?;
/// assert_eq!(request.url, "https://graph.microsoft.com/v1.0/me/chats/19:b8577894a63548969c5c92bb9c80c5e1@thread.v2");
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
pub fn get_my_chat(chat_id: &str) -> Result<HttpRequest, RequestError> {
    check_path_id("chat id", chat_id)?;
    Ok(HttpRequest::empty(
        Method::Get,
        format!("{GRAPH}/v1.0/me/chats/{chat_id}"),
    ))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Mine,
    User(String),
    Members(String),
    MyMembers(String),
    UserMembers(String, String),
}

/// A `GET` of chats or of a chat's members: a user's chats (`/me/chats`, `/users/{id}/chats`),
/// with the options "List chats" documents (`$expand` of `members` and `lastMessagePreview`,
/// `$top` up to 50, `$filter`, `$orderby=lastMessagePreview/createdDateTime desc`), or a chat's
/// members (`/chats/{id}/members`, `/me/chats/{id}/members`, `/users/{id}/chats/{id}/members`),
/// which take no options. [`build`](Self::build) refuses an option the path does not take.
/// Pages read with [`Page::chats`](super::Page::chats) and [`Page::members`](super::Page::members).
///
/// ```
/// use graph_chat_notifications::outbound::{ChatsRequest, RequestError};
/// let request = ChatsRequest::user("8b081ef6-4792-4def-b2c9-c363a1bf41d5").expand_members().build()?;
/// assert_eq!(request.url, "https://graph.microsoft.com/v1.0/users/8b081ef6-4792-4def-b2c9-c363a1bf41d5/chats?$expand=members");
///
/// let refused = ChatsRequest::members("19:abc@thread.v2").top(10).build().unwrap_err();
/// assert!(matches!(refused, RequestError::UnsupportedOption { option: "$top", .. }));
/// # Ok::<(), RequestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatsRequest {
    scope: Scope,
    expand_members: bool,
    expand_last_message: bool,
    top: Option<u32>,
    filter: Option<String>,
    order_by_last_message: bool,
}

impl ChatsRequest {
    fn new(scope: Scope) -> Self {
        Self {
            scope,
            expand_members: false,
            expand_last_message: false,
            top: None,
            filter: None,
            order_by_last_message: false,
        }
    }

    /// `GET /me/chats`: the signed-in user's chats (delegated).
    pub fn mine() -> Self {
        Self::new(Scope::Mine)
    }

    /// `GET /users/{user}/chats`: a user's chats, by object id or user principal name; each chat
    /// carries that user's `viewpoint`.
    pub fn user(user: impl Into<String>) -> Self {
        Self::new(Scope::User(user.into()))
    }

    /// `GET /chats/{chatId}/members`.
    pub fn members(chat_id: impl Into<String>) -> Self {
        Self::new(Scope::Members(chat_id.into()))
    }

    /// `GET /me/chats/{chatId}/members`.
    pub fn my_chat_members(chat_id: impl Into<String>) -> Self {
        Self::new(Scope::MyMembers(chat_id.into()))
    }

    /// `GET /users/{user}/chats/{chatId}/members`.
    pub fn user_chat_members(user: impl Into<String>, chat_id: impl Into<String>) -> Self {
        Self::new(Scope::UserMembers(user.into(), chat_id.into()))
    }

    /// `$expand=members`: each chat with its members (Graph returns at most 25 of them this
    /// way; list a chat's members for all).
    pub fn expand_members(mut self) -> Self {
        self.expand_members = true;
        self
    }

    /// `$expand=lastMessagePreview`: each chat with its newest message, briefly.
    pub fn expand_last_message_preview(mut self) -> Self {
        self.expand_last_message = true;
        self
    }

    /// `$top`: at most this many chats per page, 1 to 50.
    pub fn top(mut self, n: u32) -> Self {
        self.top = Some(n);
        self
    }

    /// `$filter`: an OData filter expression, such as `topic eq 'Fun Times'`, sent as given
    /// (percent-encoded).
    pub fn filter(mut self, expression: impl Into<String>) -> Self {
        self.filter = Some(expression.into());
        self
    }

    /// `$orderby=lastMessagePreview/createdDateTime desc`: the chats with the newest messages
    /// first (the only order Graph takes).
    pub fn order_by_last_message(mut self) -> Self {
        self.order_by_last_message = true;
        self
    }

    /// Checks the ids and the options, and builds the `GET`.
    pub fn build(&self) -> Result<HttpRequest, RequestError> {
        let path = match &self.scope {
            Scope::Mine => "me/chats".to_string(),
            Scope::User(user) => {
                check_path_id("user id", user)?;
                format!("users/{user}/chats")
            }
            Scope::Members(chat) => {
                check_path_id("chat id", chat)?;
                format!("chats/{chat}/members")
            }
            Scope::MyMembers(chat) => {
                check_path_id("chat id", chat)?;
                format!("me/chats/{chat}/members")
            }
            Scope::UserMembers(user, chat) => {
                check_path_id("user id", user)?;
                check_path_id("chat id", chat)?;
                format!("users/{user}/chats/{chat}/members")
            }
        };
        let lists_chats = matches!(self.scope, Scope::Mine | Scope::User(_));
        let given = [
            ("$expand", self.expand_members || self.expand_last_message),
            ("$top", self.top.is_some()),
            ("$filter", self.filter.is_some()),
            ("$orderby", self.order_by_last_message),
        ];
        if !lists_chats {
            if let Some(&(option, _)) = given.iter().find(|(_, on)| *on) {
                return Err(RequestError::UnsupportedOption {
                    option,
                    resource: path,
                });
            }
        }
        let mut query: Vec<String> = Vec::new();
        let expand: Vec<&str> = [
            (self.expand_members, "members"),
            (self.expand_last_message, "lastMessagePreview"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if !expand.is_empty() {
            query.push(format!("$expand={}", expand.join(",")));
        }
        if let Some(top) = self.top {
            if !(1..=MAX_TOP).contains(&top) {
                return Err(RequestError::TopOutOfRange(top));
            }
            query.push(format!("$top={top}"));
        }
        if let Some(filter) = &self.filter {
            if filter.trim().is_empty() {
                return Err(RequestError::EmptyFilter);
            }
            query.push(format!("$filter={}", encode(filter)));
        }
        if self.order_by_last_message {
            query.push(format!(
                "$orderby={}",
                encode("lastMessagePreview/createdDateTime desc")
            ));
        }
        let mut url = format!("{GRAPH}/v1.0/{path}");
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        Ok(HttpRequest::empty(Method::Get, url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_principal_names() {
        assert!(is_upn("john.doe@microsoft.com"));
        assert!(!is_upn("john.doe"));
        assert!(!is_upn("@microsoft.com"));
        assert!(!is_upn("a@b@c"));
        assert!(!is_upn("x')/y@z"));
        assert!(!is_upn("a b@c"));
    }
}
