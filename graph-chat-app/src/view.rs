//! What the page shows, computed from what Graph sent: a message's item (its state, its content
//! sanitized), a chat's item (unread count and hidden, by Graph's rules).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use graph_chat_webhook::notifications::model::{
    chat_is_visible, Chat, ChatMessage, DateTime, DlpAction, EventDetail, Identity, ItemBody, Prop,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Who is looking, and which Graph the messages' hosted-content links may point at.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The signed-in user's id.
    pub user_id: String,
    /// The Graph the app calls, without a trailing `/` (`https://graph.microsoft.com`, or a
    /// simulator's base URL): inline images on it are served through the app.
    pub graph_base: String,
}

/// A message's state on the page: the first that applies of `deleted`, `blocked`, `edited`,
/// `visible`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Neither deleted, blocked nor edited.
    Visible,
    /// `lastEditedDateTime` set.
    Edited,
    /// A data loss prevention policy blocks it (`BlockAccess`) and the viewer is not the sender.
    Blocked,
    /// `deletedDateTime` set, or a notification said `deleted`.
    Deleted,
}

/// Who sent a message, as the page shows it (`{"id", "displayName"}`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    /// The user's (or application's) id.
    pub id: Option<String>,
    /// Their name.
    pub display_name: Option<String>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A message as `GET /api/chats/{id}/messages` lists it. `Debug` shows its id and state, never
/// its content or its sender's name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageItem {
    /// The message id.
    pub id: String,
    /// `createdDateTime` as Graph sent it.
    pub created_date_time: Option<String>,
    /// `lastModifiedDateTime` as Graph sent it.
    pub last_modified_date_time: Option<String>,
    /// The sender: the user, else the application; `null` for neither (system messages).
    pub from: Option<Sender>,
    /// `body.contentType` as Graph sent it (`text` when there is none).
    pub content_type: String,
    /// The text, or the HTML sanitized; `null` when `deleted` or `blocked`.
    pub content: Option<String>,
    /// What the page shows.
    pub state: MessageState,
    /// What a policy did to the viewer's own message (Teams shows the same notice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// The reactions, one entry per reaction type, in the order Graph first lists them; left
    /// out when there are none (and for a deleted or blocked message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionItem>,
    /// The message this one replies to (a `messageReference` attachment), as Teams quotes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Quote>,
    /// A system event (`eventDetail`) as Teams words it ("Adele Vance added Alex Wilber"); the
    /// page shows it instead of the (empty) content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Who the message mentions (its `<at>` tags, shown highlighted), in the order of their
    /// `id`s; left out when it mentions no one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<MentionItem>,
    /// The files and cards attached (not a reply's quote), in Graph's order; left out when
    /// there are none (and for a deleted or blocked message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentItem>,
}

/// What an attachment is, as the page shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttachmentKind {
    /// A file (`reference`, or a file's own type): a link with its name.
    File,
    /// A card (`application/vnd.microsoft.card.*`): a labelled placeholder, never its JSON.
    Card,
}

/// An attachment: `{"kind", "name", "url"}`. A card carries neither name nor URL; its content
/// never leaves the app.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentItem {
    /// A file or a card.
    pub kind: AttachmentKind,
    /// A file's name, as Graph gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A file's `contentUrl`, only when it is an https URL (the page links to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl fmt::Debug for AttachmentItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachmentItem")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The files and cards of a message: every attachment but a reply's `messageReference`.
fn attachments(message: &ChatMessage<'_>) -> Vec<AttachmentItem> {
    let mut items = Vec::new();
    for attachment in message.attachments.get().into_iter().flatten() {
        let content_type = attachment.content_type.as_deref().unwrap_or("");
        if content_type.eq_ignore_ascii_case("messageReference") {
            continue;
        }
        if content_type
            .to_ascii_lowercase()
            .starts_with("application/vnd.microsoft.card.")
        {
            items.push(AttachmentItem {
                kind: AttachmentKind::Card,
                name: None,
                url: None,
            });
            continue;
        }
        let url = attachment
            .content_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .filter(|u| u.scheme() == "https")
            .map(String::from);
        let name = attachment
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map(str::to_owned)
            .or_else(|| {
                // No name: the last segment of its URL, as Teams falls back to.
                url.as_deref()
                    .and_then(|u| u.rsplit('/').find(|s| !s.is_empty()))
                    .map(|s| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
            });
        items.push(AttachmentItem {
            kind: AttachmentKind::File,
            name,
            url,
        });
    }
    items
}

/// A mention: `{"text", "userId", "me"}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MentionItem {
    /// The mention's text (`mentionText`), as the `<at>` tag shows it.
    pub text: String,
    /// The mentioned user's id, when a user is mentioned.
    pub user_id: Option<String>,
    /// Whether the signed-in user is the one mentioned.
    pub me: bool,
}

impl fmt::Debug for MentionItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MentionItem")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// A system event as Teams words it, from its `eventDetail`; `None` when there is none.
fn event_text(message: &ChatMessage<'_>) -> Option<String> {
    let detail = message.event_detail.get()?;
    let fields = detail.fields();
    let name = |identity: Option<&Identity<'_>>| {
        identity
            .and_then(|i| i.display_name.as_deref())
            .unwrap_or("Someone")
            .to_owned()
    };
    let initiator = fields.initiator.get().and_then(|i| {
        i.user
            .get()
            .or_else(|| i.application.get())
            .map(|who| name(Some(who)))
    });
    let who = initiator.unwrap_or_else(|| "Someone".to_owned());
    let members = || {
        let names: Vec<String> = fields
            .members
            .get()
            .into_iter()
            .flatten()
            .map(|m| name(Some(m)))
            .collect();
        if names.is_empty() {
            "someone".to_owned()
        } else {
            names.join(", ")
        }
    };
    Some(match detail {
        EventDetail::MembersAdded(_) => format!("{who} added {}", members()),
        EventDetail::MembersDeleted(_) => format!("{who} removed {}", members()),
        EventDetail::MembersJoined(_) => format!("{} joined", members()),
        EventDetail::MembersLeft(_) => format!("{} left", members()),
        EventDetail::ChatRenamed(_) => match fields.chat_display_name.as_deref() {
            Some(topic) => format!("{who} renamed the chat to \u{201c}{topic}\u{201d}"),
            None => format!("{who} removed the chat's name"),
        },
        EventDetail::CallStarted(_) => "Call started".to_owned(),
        EventDetail::CallEnded(_) => "Call ended".to_owned(),
        _ => "Something happened in the chat".to_owned(),
    })
}

/// A quoted message: `{"id", "preview", "from"}`, from the reply's `messageReference`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    /// The quoted message's id.
    pub id: String,
    /// Its text as the reply quotes it (`messagePreview`), markup removed.
    pub preview: Option<String>,
    /// Its sender's name (`messageSender`), when given.
    pub from: Option<String>,
}

impl fmt::Debug for Quote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quote")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The message a reply quotes: its first `messageReference` attachment.
fn quote(message: &ChatMessage<'_>) -> Option<Quote> {
    let reference = message.attachments.get()?.iter().find(|a| {
        a.content_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("messageReference"))
    })?;
    let id = reference.id.as_deref()?.to_owned();
    let content: serde_json::Value = reference
        .content
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let preview = content["messagePreview"].as_str().map(|p| {
        html_text(p)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    });
    let sender = &content["messageSender"];
    let from = ["user", "application"]
        .iter()
        .find_map(|k| sender[k]["displayName"].as_str())
        .map(str::to_owned);
    Some(Quote { id, preview, from })
}

/// One reaction type on a message, as the page shows it: `{"reactionType", "count", "users",
/// "mine"}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionItem {
    /// `reactionType`: an emoji, or a legacy name (`like`, `heart`...).
    pub reaction_type: String,
    /// How many reacted so.
    pub count: u64,
    /// Who reacted so (their ids; names when Graph gave them).
    pub users: Vec<Sender>,
    /// Whether the signed-in user is one of them.
    pub mine: bool,
}

impl fmt::Debug for ReactionItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactionItem")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for MessageItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageItem")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl MessageItem {
    /// The same message, deleted (a deletion that came without data): its place kept, its
    /// content and notice gone.
    pub fn into_deleted(self) -> Self {
        Self {
            content: None,
            state: MessageState::Deleted,
            notice: None,
            reactions: Vec::new(),
            reply_to: None,
            event: None,
            mentions: Vec::new(),
            attachments: Vec::new(),
            ..self
        }
    }
}

/// A chat as `GET /api/chats` lists it. `Debug` shows its id and counts, never its topic,
/// its members or its newest message.
///
/// The fields are declared in the order of their names, the order in which earlier versions
/// stored the item, and the newer ones are left out when empty: a cache written by them
/// compares equal, and sends no event for nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatItem {
    /// `chatType` as Graph sent it.
    pub chat_type: Option<String>,
    /// Whether the chat is hidden for the user (by its viewpoint, until a newer message).
    pub hidden: bool,
    /// The chat id.
    pub id: String,
    /// The newest message that counts (see [`counts`]), briefly: what the chat list shows
    /// under the chat's name, and orders the chats by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<Preview>,
    /// The other members (not the signed-in user), as Graph listed them with the chat: a chat
    /// without a topic is named after them, as Teams names it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Sender>,
    /// The chat's topic, if it has one.
    pub topic: Option<String>,
    /// Messages from others, not deleted, created after the user last read the chat.
    pub unread_count: u64,
}

impl fmt::Debug for ChatItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatItem")
            .field("id", &self.id)
            .field("unread_count", &self.unread_count)
            .field("hidden", &self.hidden)
            .finish_non_exhaustive()
    }
}

/// A chat's newest message, as the chat list shows it (`{"id", "createdDateTime", "from",
/// "text"}`): its text without markup, at most [`PREVIEW_CHARS`] characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// The message id.
    pub id: String,
    /// `createdDateTime` as Graph sent it.
    pub created_date_time: Option<String>,
    /// The sender, as the message's item names them.
    pub from: Option<Sender>,
    /// The text (HTML reduced to its text), shortened.
    pub text: String,
}

impl fmt::Debug for Preview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preview")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How much of a message the chat list shows under the chat's name.
pub const PREVIEW_CHARS: usize = 120;

/// A message's [`Preview`], from its item (its content already sanitized).
pub fn preview(item: &MessageItem) -> Preview {
    let content = item.content.as_deref().unwrap_or("");
    let text = if item.content_type.eq_ignore_ascii_case("html") {
        html_text(content)
    } else {
        content.to_owned()
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    };
    Preview {
        id: item.id.clone(),
        created_date_time: item.created_date_time.clone(),
        from: item.from.clone(),
        text,
    }
}

/// The text of HTML: every tag gone (an image says so), the entities the sanitizer writes
/// decoded. The page shows it as text, never as markup.
fn html_text(html: &str) -> String {
    let with_images = html.replace("<img", " [image] <img");
    let text = ammonia::Builder::empty().clean(&with_images).to_string();
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// One change to a view, as `GET /api/events` sends it in `data:`: the item with its `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Change {
    /// A message changed (or is new): `"kind": "message"`, its `chatId` and its item.
    Message {
        /// The chat it is in.
        #[serde(rename = "chatId")]
        chat_id: String,
        /// The message's item.
        #[serde(flatten)]
        item: MessageItem,
    },
    /// A chat changed: `"kind": "chat"` and its item; `"removed": true` when the user no
    /// longer has it.
    Chat {
        /// The chat's item.
        #[serde(flatten)]
        item: ChatItem,
        /// Whether the chat is gone for the user.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        removed: bool,
    },
    /// A write the person asked for that waited for Graph: `"kind": "write"`, its `chatId`
    /// and what became of it ([`WriteItem`]). Never what it said.
    Write {
        /// The chat it is in.
        #[serde(rename = "chatId")]
        chat_id: String,
        /// The write.
        #[serde(flatten)]
        item: WriteItem,
    },
}

/// A write the person asked for, as the page is told of it while it waits for Graph and once
/// it is done or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteItem {
    /// The write's id (the same in each of its events).
    pub id: i64,
    /// What it is: `send`, `markRead`, `edit`, `softDelete`, `undoSoftDelete`, `setReaction`
    /// or `unsetReaction`.
    pub what: String,
    /// The message it changes, when it changes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// `waiting` (Graph throttled it: it is tried again), `done` or `failed`.
    pub state: String,
    /// Why it failed: Graph's status, or what else stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The sender: the user, else the application.
fn sender_identity<'m, 'a>(message: &'m ChatMessage<'a>) -> Option<&'m Identity<'a>> {
    let from = message.from.get()?;
    from.user.get().or_else(|| from.application.get())
}

/// A message as `GET /api/chats/{id}/messages` lists it. `deleted` also when a notification
/// said so without a `deletedDateTime`.
pub fn message_item(message: &ChatMessage<'_>, deleted: bool, viewer: &Viewer) -> MessageItem {
    let deleted = deleted || message.is_deleted();
    let mine = sender_of(message) == Some(viewer.user_id.as_str());
    let dlp = message.dlp_action().and_then(|a| a.known());
    let edited = message.last_edited_date_time.get().is_some();
    let state = if deleted {
        MessageState::Deleted
    } else if dlp == Some(DlpAction::BlockAccess) && !mine {
        MessageState::Blocked
    } else if edited {
        MessageState::Edited
    } else {
        MessageState::Visible
    };
    let body: Option<&ItemBody<'_>> = message.body.get();
    let content_type = body
        .and_then(|b| b.content_type.get())
        .map_or("text", |t| t.as_str());
    let content = match state {
        MessageState::Deleted | MessageState::Blocked => None,
        MessageState::Visible | MessageState::Edited => {
            let raw = body.and_then(|b| b.content.as_deref()).unwrap_or("");
            Some(if content_type.eq_ignore_ascii_case("html") {
                let chat_id = message.chat_id.as_deref().unwrap_or("");
                let id = message.id.as_deref().unwrap_or("");
                sanitize(raw, viewer, chat_id, id)
            } else {
                raw.to_owned()
            })
        }
    };
    // The sender sees what a policy did to their message (Teams shows the same notice).
    let notice = match dlp {
        _ if !mine || deleted => None,
        Some(DlpAction::BlockAccess) => Some("Blocked by a policy: only you can see this message."),
        Some(DlpAction::NotifySender) => Some("This message may contain sensitive information."),
        _ => None,
    };
    let time = |t: &Prop<DateTime<'_>>| t.get().map(|t| t.as_str().to_owned());
    let mut reactions: Vec<ReactionItem> = Vec::new();
    if matches!(state, MessageState::Visible | MessageState::Edited) {
        for reaction in message.reactions.get().into_iter().flatten() {
            let Some(kind) = reaction.reaction_type.as_deref() else {
                continue;
            };
            let who = reaction.user.get().and_then(|u| u.user.get());
            let user = Sender {
                id: who.and_then(|w| w.id.as_deref()).map(str::to_owned),
                display_name: who
                    .and_then(|w| w.display_name.as_deref())
                    .map(str::to_owned),
            };
            let mine = user.id.as_deref() == Some(viewer.user_id.as_str());
            match reactions.iter_mut().find(|r| r.reaction_type == kind) {
                Some(entry) => {
                    entry.count += 1;
                    entry.mine |= mine;
                    entry.users.push(user);
                }
                None => reactions.push(ReactionItem {
                    reaction_type: kind.to_owned(),
                    count: 1,
                    users: vec![user],
                    mine,
                }),
            }
        }
    }
    MessageItem {
        id: message.id.as_deref().unwrap_or("").to_owned(),
        created_date_time: time(&message.created_date_time),
        last_modified_date_time: time(&message.last_modified_date_time),
        from: sender_identity(message).map(|identity| Sender {
            id: identity.id.as_deref().map(str::to_owned),
            display_name: identity.display_name.as_deref().map(str::to_owned),
        }),
        content_type: content_type.to_owned(),
        content,
        state,
        notice: notice.map(str::to_owned),
        reactions,
        reply_to: match state {
            MessageState::Visible | MessageState::Edited => quote(message),
            MessageState::Deleted | MessageState::Blocked => None,
        },
        event: event_text(message),
        attachments: match state {
            MessageState::Visible | MessageState::Edited => attachments(message),
            MessageState::Deleted | MessageState::Blocked => Vec::new(),
        },
        mentions: match state {
            MessageState::Visible | MessageState::Edited => {
                let mut all: Vec<(i64, MentionItem)> = message
                    .mentions
                    .get()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let user_id = m
                            .mentioned
                            .get()
                            .and_then(|w| w.user.get())
                            .and_then(|u| u.id.as_deref())
                            .map(str::to_owned);
                        let me = user_id.as_deref() == Some(viewer.user_id.as_str());
                        let item = MentionItem {
                            text: m.mention_text.as_deref().unwrap_or("").to_owned(),
                            user_id,
                            me,
                        };
                        (m.id.get().copied().unwrap_or(i64::MAX), item)
                    })
                    .collect();
                all.sort_by_key(|(id, _)| *id);
                all.into_iter().map(|(_, m)| m).collect()
            }
            MessageState::Deleted | MessageState::Blocked => Vec::new(),
        },
    }
}

/// Whether a message counts for a chat's unread count and for showing a hidden chat again:
/// a message (`messageType` `message`, or none given), not deleted.
pub fn counts(message: &ChatMessage<'_>, deleted: bool) -> bool {
    !deleted
        && !message.is_deleted()
        && message
            .message_type
            .get()
            .is_none_or(|t| t.as_str() == "message")
}

/// Who sent a message (the user's id, else the application's), for the unread count.
pub fn sender_of<'m>(message: &'m ChatMessage<'_>) -> Option<&'m str> {
    let from = message.from.get()?;
    let id = |identity: &'m Prop<Identity<'_>>| identity.get().and_then(|i| i.id.as_deref());
    id(&from.user).or_else(|| id(&from.application))
}

/// A chat's `lastMessageReadDateTime`, if its viewpoint has one.
pub fn last_read(chat: &Chat<'_>) -> Option<OffsetDateTime> {
    chat.viewpoint
        .get()
        .and_then(|v| v.last_message_read_date_time.get())
        .map(|t| t.at())
}

/// A chat as `GET /api/chats` lists it, from Graph's chat, its unread count (messages that
/// [`counts`] from others, created after the viewpoint's `lastMessageReadDateTime`) and the
/// creation time of its newest such message: a hidden chat shows again once a message is
/// created after the user last read it.
///
/// `last_message` is the newest message that counts, `viewer` the signed-in user (left out of
/// the members).
pub fn chat_item(
    chat: &Chat<'_>,
    unread: u64,
    newest: Option<OffsetDateTime>,
    last_message: Option<Preview>,
    viewer: &str,
) -> ChatItem {
    let members = chat
        .members
        .get()
        .map(|members| {
            members
                .iter()
                .filter(|m| m.user_id.as_deref() != Some(viewer))
                .map(|m| Sender {
                    id: m.user_id.as_deref().map(str::to_owned),
                    display_name: m.display_name.as_deref().map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    ChatItem {
        last_message,
        members,
        id: chat.id.as_deref().unwrap_or("").to_owned(),
        topic: chat.topic.as_deref().map(str::to_owned),
        chat_type: chat.chat_type.get().map(|t| t.as_str().to_owned()),
        unread_count: unread,
        hidden: chat
            .viewpoint
            .get()
            .is_some_and(|viewpoint| !chat_is_visible(viewpoint, newest)),
    }
}

/// Where the page loads a message's inline image from: the app fetches it from Graph with its
/// token (a browser has none).
pub fn hosted_content_path(chat_id: &str, message_id: &str, hosted_id: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "/api/chats/{}/messages/{}/hostedContents/{}",
        enc(chat_id),
        enc(message_id),
        enc(hosted_id)
    )
}

/// The (chat, message, hosted content) a Graph `$value` link names, if it is one on `base` or
/// on a Microsoft Graph host.
fn hosted_content_link(src: &str, viewer: &Viewer) -> Option<(String, String, String)> {
    let url = url::Url::parse(src).ok()?;
    let origin = url.origin().ascii_serialization();
    let graph_hosts = graph_api_hosts();
    let base = url::Url::parse(&viewer.graph_base).ok()?;
    // A local Graph's links name the port it had when the message was sent (a simulator restarted
    // on another port still holds them): on loopback, any port is that Graph.
    let local = is_loopback(&base) && is_loopback(&url) && url.scheme() == base.scheme();
    if origin != base.origin().ascii_serialization()
        && !graph_hosts.contains(origin.as_str())
        && !local
    {
        return None;
    }
    let segments: Vec<Cow<'_, str>> = url
        .path_segments()?
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
        .collect();
    // .../chats/{c}/messages/{m}/hostedContents/{h}/$value
    let n = segments.len();
    if n < 7 || segments[n - 1] != "$value" || segments[n - 3] != "hostedContents" {
        return None;
    }
    if segments[n - 5] != "messages" || segments[n - 7] != "chats" {
        return None;
    }
    Some((
        segments[n - 6].to_string(),
        segments[n - 4].to_string(),
        segments[n - 2].to_string(),
    ))
}

fn is_loopback(url: &url::Url) -> bool {
    graph_chat_webhook::notifications::outbound::is_loopback_url(url.as_str())
}

/// Microsoft Graph's API hosts, one per cloud (`https://graph.microsoft.com`...).
fn graph_api_hosts() -> HashSet<&'static str> {
    graph_chat_webhook::notifications::Cloud::ALL
        .iter()
        .map(|c| c.graph_url())
        .collect()
}

/// A relative URL kept by the sanitizer: only the app's inline-image paths, which the attribute
/// filter writes (it drops every relative URL a sender wrote).
fn app_path(url: &str) -> Option<Cow<'_, str>> {
    url.starts_with("/api/chats/").then_some(Cow::Borrowed(url))
}

/// Teams HTML made safe to show: formatting kept; scripts, styles, event handlers, frames,
/// forms and `javascript:` URLs gone; links absolute and opening outside the page; images only
/// from the message's own hosted contents (`chat_id`, `message_id`), through the app.
pub fn sanitize(html: &str, viewer: &Viewer, chat_id: &str, message_id: &str) -> String {
    let viewer = viewer.clone();
    let (own_chat, own_message) = (chat_id.to_owned(), message_id.to_owned());
    let tags: HashSet<&str> = [
        "p",
        "br",
        "div",
        "span",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "s",
        "strike",
        "del",
        "ins",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
        "blockquote",
        "pre",
        "code",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "table",
        "thead",
        "tbody",
        "tr",
        "td",
        "th",
        "a",
        "img",
        // Teams' mentions (`<at id="0">Name</at>`), kept without attributes: the page
        // highlights them.
        "at",
    ]
    .into_iter()
    .collect();
    let mut builder = ammonia::Builder::default();
    builder
        .tags(tags)
        .generic_attributes(HashSet::new())
        .tag_attributes(
            [
                ("a", ["href"].into_iter().collect()),
                ("img", ["src", "alt"].into_iter().collect()),
            ]
            .into_iter()
            .collect(),
        )
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        // Relative URLs only as the app's own inline-image paths (written below); a sender's
        // relative link is dropped.
        .url_relative(ammonia::UrlRelative::Custom(Box::new(app_path)))
        .attribute_filter(move |element, attribute, value| {
            if element == "img" && attribute == "src" {
                hosted_content_link(value, &viewer)
                    .filter(|(c, m, _)| *c == own_chat && *m == own_message)
                    .map(|(c, m, h)| Cow::Owned(hosted_content_path(&c, &m, &h)))
            } else if url::Url::parse(value).is_err() && (attribute == "href" || attribute == "src")
            {
                // A relative link of the sender's would point into this app.
                None
            } else {
                Some(Cow::Borrowed(value))
            }
        });
    builder.clean(html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_keep_a_name_and_only_an_https_link_and_cards_keep_nothing() {
        let message: ChatMessage<'_> = serde_json::from_str(
            r#"{"id": "1", "attachments": [
                {"id": "q", "contentType": "messageReference", "content": "{}"},
                {"id": "a", "contentType": "reference", "contentUrl": "https://contoso.sharepoint.com/Docs/Plan%20B.docx"},
                {"id": "b", "contentType": "reference", "contentUrl": "javascript:alert(1)", "name": "x.txt"},
                {"id": "c", "contentType": "application/vnd.microsoft.card.adaptive", "content": "{\"secret\": 1}"}
            ]}"#,
        )
        .unwrap();
        let items = attachments(&message);
        assert_eq!(items.len(), 3, "the quote is no attachment to show");
        assert_eq!(items[0].kind, AttachmentKind::File);
        assert_eq!(items[0].name.as_deref(), Some("Plan B.docx"));
        assert!(items[0].url.is_some());
        assert_eq!(items[1].url, None);
        assert_eq!(items[1].name.as_deref(), Some("x.txt"));
        assert_eq!(items[2].kind, AttachmentKind::Card);
        let json = serde_json::to_string(&items).unwrap();
        assert!(!json.contains("secret"), "{json}");
    }
}
