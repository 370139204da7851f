//! What a person asked Graph to do, kept until Graph takes it (`GraphSync::write`).

/// A write a person asked for (`GraphSync::write`). Its `Debug` leaves the content out.
#[derive(Clone)]
#[non_exhaustive]
pub enum Write {
    /// A message sent to a chat. Its content is kept (in memory, for the write's life only) to
    /// find the message among the chat's newest when the send's answer was lost.
    Send {
        /// The chat.
        chat_id: String,
        /// What was sent (`body.content`).
        content: String,
    },
    /// `markChatReadForUser`.
    MarkRead {
        /// The chat.
        chat_id: String,
    },
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Send { chat_id, .. } => f
                .debug_struct("Send")
                .field("chat_id", chat_id)
                .finish_non_exhaustive(),
            Self::MarkRead { chat_id } => f
                .debug_struct("MarkRead")
                .field("chat_id", chat_id)
                .finish(),
        }
    }
}

impl Write {
    pub(crate) fn what(&self) -> &'static str {
        match self {
            Self::Send { .. } => "the send",
            Self::MarkRead { .. } => "markChatReadForUser",
        }
    }

    pub(crate) fn chat_id(&self) -> &str {
        match self {
            Self::Send { chat_id, .. } | Self::MarkRead { chat_id } => chat_id,
        }
    }
}

/// How a write a person asked for went (`GraphSync::write`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Written {
    /// Graph took it; for a send, the new message's id (the cache holds it).
    Done(Option<String>),
    /// Graph throttled it (or could not be reached): it is retried in the background until
    /// Graph takes it, and its result reaches the page as the cache's events.
    Waiting,
}
