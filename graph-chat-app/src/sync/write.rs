//! What a person asked Graph to do, kept until Graph takes it (`GraphSync::write`).
//!
//! Which writes may be sent twice: a `PATCH` of a message's content sets it (the same content
//! twice is the same message); `setReaction` and `unsetReaction` set or clear one person's
//! reaction of one type (a second is a no-op); `softDelete` and `undoSoftDelete` set or clear
//! `deletedDateTime`; `markChatReadForUser` moves the person's read mark to now. Each of them
//! repeated leaves Graph as one would, so a try whose answer was lost is simply tried again.
//! A send is the one that is not: each `POST .../messages` makes a new message. A send whose
//! answer was lost (or that was in flight when the process died) is looked for among the
//! chat's newest messages before it is sent again, and found, it is done.

use graph_chat_webhook::notifications::outbound::{self, HttpRequest, MessageRequest};

use crate::store::PendingWrite;

/// A write a person asked for (`GraphSync::write`). Its `Debug` leaves the content out.
#[derive(Clone)]
#[non_exhaustive]
pub enum Write {
    /// A message sent to a chat. Its content is kept (in the cache, for the write's life only)
    /// to find the message among the chat's newest when the send's answer was lost.
    Send {
        /// The chat.
        chat_id: String,
        /// What was sent (`body.content`).
        content: String,
        /// The request's body as sent (the message, with its mentions or attachments).
        body: Vec<u8>,
    },
    /// `markChatReadForUser`.
    MarkRead {
        /// The chat.
        chat_id: String,
    },
    /// A `PATCH` of the person's own message, as text.
    Edit {
        /// The chat.
        chat_id: String,
        /// The message.
        message_id: String,
        /// Its new text.
        content: String,
    },
    /// `softDelete` of the person's own message.
    SoftDelete {
        /// The chat.
        chat_id: String,
        /// The message.
        message_id: String,
    },
    /// `undoSoftDelete` of the person's own message.
    UndoSoftDelete {
        /// The chat.
        chat_id: String,
        /// The message.
        message_id: String,
    },
    /// `setReaction`.
    SetReaction {
        /// The chat.
        chat_id: String,
        /// The message.
        message_id: String,
        /// The reaction (a Unicode emoji, or a legacy name).
        reaction: String,
    },
    /// `unsetReaction`.
    UnsetReaction {
        /// The chat.
        chat_id: String,
        /// The message.
        message_id: String,
        /// The reaction.
        reaction: String,
    },
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("kind", &self.kind())
            .field("chat_id", &self.chat_id())
            .field("message_id", &self.message_id())
            .finish_non_exhaustive()
    }
}

impl Write {
    /// A send of `request` (a `POST /chats/{id}/messages` the core built) whose `body.content`
    /// is `content`.
    pub fn send(
        chat_id: impl Into<String>,
        content: impl Into<String>,
        request: &HttpRequest,
    ) -> Self {
        Self::Send {
            chat_id: chat_id.into(),
            content: content.into(),
            body: request.body.clone().unwrap_or_default(),
        }
    }

    /// How the write is named in the cache and to the page.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::MarkRead { .. } => "markRead",
            Self::Edit { .. } => "edit",
            Self::SoftDelete { .. } => "softDelete",
            Self::UndoSoftDelete { .. } => "undoSoftDelete",
            Self::SetReaction { .. } => "setReaction",
            Self::UnsetReaction { .. } => "unsetReaction",
        }
    }

    pub(crate) fn what(&self) -> &'static str {
        match self {
            Self::Send { .. } => "the send",
            Self::MarkRead { .. } => "markChatReadForUser",
            Self::Edit { .. } => "the edit",
            Self::SoftDelete { .. } => "the delete",
            Self::UndoSoftDelete { .. } => "the undo of the delete",
            Self::SetReaction { .. } => "the reaction",
            Self::UnsetReaction { .. } => "the removal of the reaction",
        }
    }

    /// The chat.
    pub fn chat_id(&self) -> &str {
        match self {
            Self::Send { chat_id, .. }
            | Self::MarkRead { chat_id }
            | Self::Edit { chat_id, .. }
            | Self::SoftDelete { chat_id, .. }
            | Self::UndoSoftDelete { chat_id, .. }
            | Self::SetReaction { chat_id, .. }
            | Self::UnsetReaction { chat_id, .. } => chat_id,
        }
    }

    /// The message it changes, when it changes one.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Self::Send { .. } | Self::MarkRead { .. } => None,
            Self::Edit { message_id, .. }
            | Self::SoftDelete { message_id, .. }
            | Self::UndoSoftDelete { message_id, .. }
            | Self::SetReaction { message_id, .. }
            | Self::UnsetReaction { message_id, .. } => Some(message_id),
        }
    }

    /// The request to Graph, as `user_id` of `tenant_id`.
    pub fn request(
        &self,
        user_id: &str,
        tenant_id: &str,
    ) -> Result<HttpRequest, outbound::RequestError> {
        Ok(match self {
            Self::Send {
                chat_id,
                content,
                body,
            } => {
                let mut request = MessageRequest::send(chat_id.clone(), content.clone()).build()?;
                request.body = Some(body.clone());
                request
            }
            Self::MarkRead { chat_id } => {
                outbound::mark_chat_read_for_user(chat_id, user_id, tenant_id)?
            }
            Self::Edit {
                chat_id,
                message_id,
                content,
            } => MessageRequest::edit(chat_id.clone(), message_id.clone(), content.clone())
                .text()
                .build()?,
            Self::SoftDelete {
                chat_id,
                message_id,
            } => outbound::soft_delete(user_id, chat_id, message_id)?,
            Self::UndoSoftDelete {
                chat_id,
                message_id,
            } => outbound::undo_soft_delete(user_id, chat_id, message_id)?,
            Self::SetReaction {
                chat_id,
                message_id,
                reaction,
            } => outbound::set_reaction(chat_id, message_id, reaction)?,
            Self::UnsetReaction {
                chat_id,
                message_id,
                reaction,
            } => outbound::unset_reaction(chat_id, message_id, reaction)?,
        })
    }

    /// The write as the cache keeps it while it waits.
    pub(crate) fn pending(&self, known: Vec<String>, started_ms: i64) -> PendingWrite {
        let mut row = PendingWrite::new(self.kind(), self.chat_id(), started_ms);
        row.message_id = self.message_id().map(str::to_owned);
        row.known = known;
        match self {
            Self::Send { content, body, .. } => {
                row.content = Some(content.clone());
                row.body = Some(body.clone());
                // Until Graph answers, it may have been carried out.
                row.unsure = true;
            }
            Self::Edit { content, .. } => row.content = Some(content.clone()),
            Self::SetReaction { reaction, .. } | Self::UnsetReaction { reaction, .. } => {
                row.reaction = Some(reaction.clone());
            }
            _ => {}
        }
        row
    }

    /// The write a row of the cache keeps; `None` for a row it cannot make a request of.
    pub(crate) fn from_pending(row: &PendingWrite) -> Option<Self> {
        let chat_id = row.chat_id.clone();
        let message_id = || row.message_id.clone();
        Some(match row.kind.as_str() {
            "send" => Self::Send {
                chat_id,
                content: row.content.clone()?,
                body: row.body.clone()?,
            },
            "markRead" => Self::MarkRead { chat_id },
            "edit" => Self::Edit {
                chat_id,
                message_id: message_id()?,
                content: row.content.clone()?,
            },
            "softDelete" => Self::SoftDelete {
                chat_id,
                message_id: message_id()?,
            },
            "undoSoftDelete" => Self::UndoSoftDelete {
                chat_id,
                message_id: message_id()?,
            },
            "setReaction" => Self::SetReaction {
                chat_id,
                message_id: message_id()?,
                reaction: row.reaction.clone()?,
            },
            "unsetReaction" => Self::UnsetReaction {
                chat_id,
                message_id: message_id()?,
                reaction: row.reaction.clone()?,
            },
            _ => return None,
        })
    }
}

/// How a write a person asked for went (`GraphSync::write`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Written {
    /// Graph took it; for a send, the new message's id (the cache holds it).
    Done(Option<String>),
    /// Graph throttled it (or could not be reached): it is kept in the cache and retried in
    /// the background until Graph takes or refuses it, and what becomes of it reaches the page
    /// as the cache's events (`"kind": "write"`, then the message's or chat's own).
    Waiting(i64),
}
