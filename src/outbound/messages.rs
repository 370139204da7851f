//! Messages in a chat: sending one (`POST /chats/{id}/messages`) with mentions and inline
//! images, editing it (`PATCH`), deleting and restoring it (`softDelete`, `undoSoftDelete`),
//! reacting to it (`setReaction`, `unsetReaction`), and the bytes of an inline image
//! (`hostedContents/{id}/$value`). Sending and editing are delegated calls: the user sends.

use base64::Engine as _;
use serde::Serialize;

use super::error::RequestError;
use super::http::{HttpRequest, Method, GRAPH};
use super::rules::{check_path_id, is_guid};
use crate::model::{ChatMessage, ChatOrMessage, ModelError, ResourceKind};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Mention {
    id: u32,
    text: String,
    user_id: String,
    display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Hosted {
    temporary_id: String,
    bytes: Vec<u8>,
    content_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentType {
    /// No `contentType`: Graph reads the content as text.
    Default,
    Text,
    Html,
}

/// A message to send to a chat (`POST /chats/{chatId}/messages`, `201 Created` with the message:
/// [`sent_message`] reads it) or an edit of one (`PATCH /chats/{chatId}/messages/{messageId}`, by
/// its sender). The body is text unless [`html`](Self::html) says otherwise; mentions and inline
/// images need HTML, and [`build`](Self::build) checks that the HTML carries each of them.
///
/// ```
/// use graph_chat_notifications::outbound::MessageRequest;
/// // The Teams-embedding guide's step 3.
/// let request = MessageRequest::send("19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2", "Hello World").build()?;
/// assert_eq!(request.url, "https://graph.microsoft.com/v1.0/chats/19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2/messages");
/// assert_eq!(request.body_text(), r#"{"body":{"content":"Hello World"}}"#);
///
/// // A mention is `<at id="0">` in the HTML and an entry of `mentions`.
/// let request = MessageRequest::send("19:abc@thread.v2", r#"Hello World <at id="0">Jane Smith</at>"#)
///     .html()
///     .mention(0, "Jane Smith", "ef1c916a-3135-4417-ba27-8eb7bd084193", "Jane Smith")
///     .build()?;
/// assert!(request.body_text().contains(r#""mentionText":"Jane Smith""#));
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct MessageRequest {
    chat_id: String,
    message_id: Option<String>,
    content: String,
    content_type: ContentType,
    mentions: Vec<Mention>,
    hosted: Vec<Hosted>,
}

impl std::fmt::Debug for MessageRequest {
    /// The content, mentions and images are what users wrote: only their sizes are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageRequest")
            .field("chat_id", &self.chat_id)
            .field("message_id", &self.message_id)
            .field("content_type", &self.content_type)
            .field("content_len", &self.content.len())
            .field("mentions", &self.mentions.len())
            .field("hosted_contents", &self.hosted.len())
            .finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageBody<'a> {
    body: ItemBody<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mentions: Vec<MentionBody<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hosted_contents: Vec<HostedBody<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'static str>,
    content: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MentionBody<'a> {
    id: u32,
    mention_text: &'a str,
    mentioned: Mentioned<'a>,
}

#[derive(Serialize)]
struct Mentioned<'a> {
    user: MentionedUser<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MentionedUser<'a> {
    display_name: &'a str,
    id: &'a str,
    user_identity_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HostedBody<'a> {
    #[serde(rename = "@microsoft.graph.temporaryId")]
    temporary_id: &'a str,
    content_bytes: String,
    content_type: &'a str,
}

impl MessageRequest {
    fn new(chat_id: String, message_id: Option<String>, content: String) -> Self {
        Self {
            chat_id,
            message_id,
            content,
            content_type: ContentType::Default,
            mentions: Vec::new(),
            hosted: Vec::new(),
        }
    }

    /// A new message in chat `chat_id` (`POST /chats/{chatId}/messages`).
    pub fn send(chat_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::new(chat_id.into(), None, content.into())
    }

    /// An edit of message `message_id` (`PATCH /chats/{chatId}/messages/{messageId}`): the new
    /// body, with its mentions and images.
    pub fn edit(
        chat_id: impl Into<String>,
        message_id: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Self::new(chat_id.into(), Some(message_id.into()), content.into())
    }

    /// `contentType: html`: the content is Teams HTML.
    pub fn html(mut self) -> Self {
        self.content_type = ContentType::Html;
        self
    }

    /// `contentType: text`, said explicitly (without it Graph reads text too).
    pub fn text(mut self) -> Self {
        self.content_type = ContentType::Text;
        self
    }

    /// Mentions user `user_id` (an object id) as `<at id="{id}">{mention_text}</at>`, which
    /// the HTML content must carry.
    pub fn mention(
        mut self,
        id: u32,
        mention_text: impl Into<String>,
        user_id: impl Into<String>,
        display_name: impl Into<String>,
    ) -> Self {
        self.mentions.push(Mention {
            id,
            text: mention_text.into(),
            user_id: user_id.into(),
            display_name: display_name.into(),
        });
        self
    }

    /// An inline image, sent base64-encoded as a `hostedContents` entry with
    /// `@microsoft.graph.temporaryId` `temporary_id`, which the HTML content references as
    /// `../hostedContents/{temporary_id}/$value` (in an `<img src>`).
    pub fn hosted_content(
        mut self,
        temporary_id: impl Into<String>,
        bytes: impl Into<Vec<u8>>,
        content_type: impl Into<String>,
    ) -> Self {
        self.hosted.push(Hosted {
            temporary_id: temporary_id.into(),
            bytes: bytes.into(),
            content_type: content_type.into(),
        });
        self
    }

    /// Checks the ids, the content, each mention and each image, and builds the request.
    pub fn build(&self) -> Result<HttpRequest, RequestError> {
        check_path_id("chat id", &self.chat_id)?;
        if let Some(message) = &self.message_id {
            check_path_id("message id", message)?;
        }
        if self.content.trim().is_empty() {
            return Err(RequestError::EmptyContent);
        }
        let html = self.content_type == ContentType::Html;
        if !self.mentions.is_empty() && !html {
            return Err(RequestError::NeedsHtml { what: "mentions" });
        }
        if !self.hosted.is_empty() && !html {
            return Err(RequestError::NeedsHtml {
                what: "hostedContents",
            });
        }
        let mut mentions = Vec::with_capacity(self.mentions.len());
        for (index, m) in self.mentions.iter().enumerate() {
            let bad = |reason| RequestError::BadMention {
                index,
                id: m.id,
                reason,
            };
            if self.mentions[..index].iter().any(|o| o.id == m.id) {
                return Err(bad("a second mention with this id"));
            }
            if !self.content.contains(&format!("<at id=\"{}\">", m.id)) {
                return Err(bad("the HTML body has no <at id=\"..\"> for it"));
            }
            if m.text.trim().is_empty() {
                return Err(bad("mentionText is empty"));
            }
            if !is_guid(&m.user_id) {
                return Err(bad("mentioned.user.id is not a user object id (a GUID)"));
            }
            mentions.push(MentionBody {
                id: m.id,
                mention_text: &m.text,
                mentioned: Mentioned {
                    user: MentionedUser {
                        display_name: &m.display_name,
                        id: &m.user_id,
                        user_identity_type: "aadUser",
                    },
                },
            });
        }
        let mut hosted_contents = Vec::with_capacity(self.hosted.len());
        for (index, h) in self.hosted.iter().enumerate() {
            let bad = |reason| RequestError::BadHostedContent { index, reason };
            let id = h.temporary_id.as_str();
            if id.is_empty() || id.chars().any(|c| c.is_whitespace() || "/\"'".contains(c)) {
                return Err(bad(
                    "the temporary id is empty or holds '/', quotes or white space",
                ));
            }
            if self.hosted[..index].iter().any(|o| o.temporary_id == id) {
                return Err(bad("a second image with this temporary id"));
            }
            if h.bytes.is_empty() {
                return Err(bad("no image bytes"));
            }
            let image = h
                .content_type
                .strip_prefix("image/")
                .is_some_and(|sub| !sub.is_empty() && !sub.contains(char::is_whitespace));
            if !image {
                return Err(bad("contentType must be an image type such as image/png"));
            }
            if !self
                .content
                .contains(&format!("../hostedContents/{id}/$value"))
            {
                return Err(bad(
                    "the HTML body does not reference ../hostedContents/{temporaryId}/$value",
                ));
            }
            hosted_contents.push(HostedBody {
                temporary_id: id,
                content_bytes: base64::engine::general_purpose::STANDARD.encode(&h.bytes),
                content_type: &h.content_type,
            });
        }
        let body = MessageBody {
            body: ItemBody {
                content_type: match self.content_type {
                    ContentType::Default => None,
                    ContentType::Text => Some("text"),
                    ContentType::Html => Some("html"),
                },
                content: &self.content,
            },
            mentions,
            hosted_contents,
        };
        let chat = &self.chat_id;
        Ok(match &self.message_id {
            None => HttpRequest::json(
                Method::Post,
                format!("{GRAPH}/v1.0/chats/{chat}/messages"),
                &body,
            ),
            Some(message) => HttpRequest::json(
                Method::Patch,
                format!("{GRAPH}/v1.0/chats/{chat}/messages/{message}"),
                &body,
            ),
        })
    }
}

/// The message Graph returned for a [`MessageRequest::send`] (`201 Created`), typed as a
/// [`ChatMessage`].
///
/// ```
/// use graph_chat_notifications::outbound::sent_message;
/// let body = br#"{"id": "1616991463150", "etag": "1616991463150", "messageType": "message",
///   "createdDateTime": "2021-03-29T04:17:43.15Z", "body": {"contentType": "text", "content": "Hello World"}}"#;
/// let message = sent_message(body)?;
/// assert_eq!(message.id.as_deref(), Some("1616991463150"));
/// # Ok::<(), graph_chat_notifications::model::ModelError>(())
/// ```
pub fn sent_message(body: &[u8]) -> Result<ChatMessage<'_>, ModelError> {
    let json = std::str::from_utf8(body).map_err(|_| ModelError::new("", "not UTF-8"))?;
    match crate::model::decode(json, Some(ResourceKind::ChatMessage))? {
        ChatOrMessage::ChatMessage(message) => Ok(*message),
        ChatOrMessage::Chat(_) => unreachable!("decoded as a message"),
    }
}

fn user_chat_message(
    user_id: &str,
    chat_id: &str,
    message_id: &str,
    action: &str,
) -> Result<HttpRequest, RequestError> {
    check_path_id("user id", user_id)?;
    check_path_id("chat id", chat_id)?;
    check_path_id("message id", message_id)?;
    Ok(HttpRequest::empty(
        Method::Post,
        format!("{GRAPH}/v1.0/users/{user_id}/chats/{chat_id}/messages/{message_id}/{action}"),
    ))
}

/// `POST /users/{userId}/chats/{chatId}/messages/{messageId}/softDelete`, no body, `204`: deletes
/// the message for everyone (delegated; the user is the sender). Notifications then carry the
/// message with `deletedDateTime` set.
///
/// ```
/// use graph_chat_notifications::outbound::soft_delete;
/// let request = soft_delete("8f98f01d-1a73-401a-b9e9-9fd1e6f5e5ar", "19:22273db3497f4b32bue61f6e82be21c5@thread.tacv2", "1649864053377")?;
/// assert!(request.url.ends_with("/messages/1649864053377/softDelete"));
/// assert!(request.body.is_none());
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
pub fn soft_delete(
    user_id: &str,
    chat_id: &str,
    message_id: &str,
) -> Result<HttpRequest, RequestError> {
    user_chat_message(user_id, chat_id, message_id, "softDelete")
}

/// `POST /users/{userId}/chats/{chatId}/messages/{messageId}/undoSoftDelete`, no body, `204`:
/// restores a soft-deleted message; a newer version without `deletedDateTime` follows.
pub fn undo_soft_delete(
    user_id: &str,
    chat_id: &str,
    message_id: &str,
) -> Result<HttpRequest, RequestError> {
    user_chat_message(user_id, chat_id, message_id, "undoSoftDelete")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReactionBody<'a> {
    reaction_type: &'a str,
}

fn reaction(
    chat_id: &str,
    message_id: &str,
    reaction_type: &str,
    action: &str,
) -> Result<HttpRequest, RequestError> {
    check_path_id("chat id", chat_id)?;
    check_path_id("message id", message_id)?;
    if reaction_type.trim().is_empty() {
        return Err(RequestError::EmptyReaction);
    }
    Ok(HttpRequest::json(
        Method::Post,
        format!("{GRAPH}/v1.0/chats/{chat_id}/messages/{message_id}/{action}"),
        &ReactionBody { reaction_type },
    ))
}

/// `POST /chats/{chatId}/messages/{messageId}/setReaction` `{"reactionType": "..."}`, `204`:
/// reacts with a Unicode emoji (`"💘"`; Graph also takes the legacy names `like`, `heart`...).
///
/// ```
/// use graph_chat_notifications::outbound::{set_reaction, RequestError};
/// let request = set_reaction("chatId", "messageId", "💘")?;
/// assert_eq!(request.url, "https://graph.microsoft.com/v1.0/chats/chatId/messages/messageId/setReaction");
/// assert_eq!(request.body_text(), r#"{"reactionType":"💘"}"#);
/// assert_eq!(set_reaction("chatId", "messageId", " "), Err(RequestError::EmptyReaction));
/// # Ok::<(), RequestError>(())
/// ```
pub fn set_reaction(
    chat_id: &str,
    message_id: &str,
    reaction_type: &str,
) -> Result<HttpRequest, RequestError> {
    reaction(chat_id, message_id, reaction_type, "setReaction")
}

/// `POST /chats/{chatId}/messages/{messageId}/unsetReaction` `{"reactionType": "..."}`, `204`:
/// removes the user's reaction.
pub fn unset_reaction(
    chat_id: &str,
    message_id: &str,
    reaction_type: &str,
) -> Result<HttpRequest, RequestError> {
    reaction(chat_id, message_id, reaction_type, "unsetReaction")
}

/// `GET /chats/{chatId}/messages/{messageId}/hostedContents/{hostedContentId}/$value`: the bytes
/// of an inline image (the response's `Content-Type` names its type). The URL needs the caller's
/// token, so a browser cannot load it from the message's `<img src>`: fetch it on the server and
/// serve it.
///
/// ```
/// use graph_chat_notifications::outbound::hosted_content_bytes;
/// let request = hosted_content_bytes("19:abc@thread.v2", "1615971548136", "aWQ9eF8w")?;
/// assert_eq!(
///     request.url,
///     "https://graph.microsoft.com/v1.0/chats/19:abc@thread.v2/messages/1615971548136/hostedContents/aWQ9eF8w/$value"
/// );
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
pub fn hosted_content_bytes(
    chat_id: &str,
    message_id: &str,
    hosted_content_id: &str,
) -> Result<HttpRequest, RequestError> {
    check_path_id("chat id", chat_id)?;
    check_path_id("message id", message_id)?;
    check_path_id("hosted content id", hosted_content_id)?;
    Ok(HttpRequest::empty(
        Method::Get,
        format!(
            "{GRAPH}/v1.0/chats/{chat_id}/messages/{message_id}/hostedContents/{hosted_content_id}/$value"
        ),
    ))
}

/// `GET /chats/{chatId}/messages/{messageId}`: one message as Graph holds it now (a
/// soft-deleted one with its `deletedDateTime`). The read that settles a deletion which came
/// without data: such a deletion carries no time of its own, so only Graph can say whether a
/// version seen after it is newer.
///
/// ```
/// use graph_chat_notifications::outbound::get_message;
/// let request = get_message("19:abc@thread.v2", "1615971548136")?;
/// assert_eq!(
///     request.url,
///     "https://graph.microsoft.com/v1.0/chats/19:abc@thread.v2/messages/1615971548136"
/// );
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
pub fn get_message(chat_id: &str, message_id: &str) -> Result<HttpRequest, RequestError> {
    check_path_id("chat id", chat_id)?;
    check_path_id("message id", message_id)?;
    Ok(HttpRequest::empty(
        Method::Get,
        format!("{GRAPH}/v1.0/chats/{chat_id}/messages/{message_id}"),
    ))
}
