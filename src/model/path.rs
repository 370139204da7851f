//! `resource` and `@odata.id` paths: `chats('..')/messages('..')` and friends, as typed ids.

use std::borrow::Cow;

use super::kind::ResourceKind;
use super::value::IntoOwned;

/// Why a resource path could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource path: {reason}")]
pub struct ResourcePathError {
    reason: &'static str,
}

/// A chat or message resource path, as notifications name it in `resource` and
/// `resourceData["@odata.id"]`.
///
/// ```
/// use graph_chat_notifications::model::ResourcePath;
/// let p = ResourcePath::parse("teams('fbe2bf47')/channels('19:4a95f7d8@thread.tacv2')/messages('1616965872395')/replies('1616989510408')")?;
/// assert_eq!(p, ResourcePath::ChannelReply {
///     team_id: "fbe2bf47".into(),
///     channel_id: "19:4a95f7d8@thread.tacv2".into(),
///     message_id: "1616965872395".into(),
///     reply_id: "1616989510408".into(),
/// });
/// assert_eq!(ResourcePath::parse("chats('19:a@thread.v2')")?.chat_id(), Some("19:a@thread.v2"));
/// # Ok::<(), graph_chat_notifications::model::ResourcePathError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResourcePath<'a> {
    /// `chats('{chatId}')`
    Chat {
        /// The chat id.
        chat_id: Cow<'a, str>,
    },
    /// `chats('{chatId}')/messages('{messageId}')`
    ChatMessage {
        /// The chat id.
        chat_id: Cow<'a, str>,
        /// The message id.
        message_id: Cow<'a, str>,
    },
    /// `teams('{teamId}')/channels('{channelId}')/messages('{messageId}')`
    ChannelMessage {
        /// The team id.
        team_id: Cow<'a, str>,
        /// The channel id.
        channel_id: Cow<'a, str>,
        /// The message id.
        message_id: Cow<'a, str>,
    },
    /// `teams('{teamId}')/channels('{channelId}')/messages('{messageId}')/replies('{replyId}')`
    ChannelReply {
        /// The team id.
        team_id: Cow<'a, str>,
        /// The channel id.
        channel_id: Cow<'a, str>,
        /// The parent message id.
        message_id: Cow<'a, str>,
        /// The reply id.
        reply_id: Cow<'a, str>,
    },
}

fn err(reason: &'static str) -> ResourcePathError {
    ResourcePathError { reason }
}

/// `name('id')` segments. Quotes inside ids are doubled, as OData writes them.
fn segments(path: &str) -> Result<Vec<(&str, Cow<'_, str>)>, ResourcePathError> {
    let mut rest = path.strip_prefix('/').unwrap_or(path);
    let mut out = Vec::new();
    while !rest.is_empty() {
        let open = rest.find("('").ok_or(err("expected name('id') segments"))?;
        let name = &rest[..open];
        if name.is_empty() || name.contains(['/', '(', ')', '\'']) {
            return Err(err("expected name('id') segments"));
        }
        let body = &rest[open + 2..];
        let mut id = String::new();
        let mut borrowed_end = None;
        let mut i = 0;
        let bytes = body.as_bytes();
        let end = loop {
            match bytes.get(i) {
                None => return Err(err("an id is not closed with ')")),
                Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => {
                    borrowed_end.get_or_insert(i);
                    id.push('\'');
                    i += 2;
                }
                Some(b'\'') => break i,
                Some(_) => {
                    let c = body[i..].chars().next().unwrap_or_default();
                    id.push(c);
                    i += c.len_utf8();
                }
            }
        };
        if body.as_bytes().get(end + 1) != Some(&b')') {
            return Err(err("an id is not closed with ')"));
        }
        if end == 0 {
            return Err(err("an id is empty"));
        }
        let value = match borrowed_end {
            None => Cow::Borrowed(&body[..end]),
            Some(_) => Cow::Owned(id),
        };
        out.push((name, value));
        rest = &body[end + 2..];
        if let Some(r) = rest.strip_prefix('/') {
            if r.is_empty() {
                return Err(err("a trailing '/'"));
            }
            rest = r;
        } else if !rest.is_empty() {
            return Err(err("segments must be separated by '/'"));
        }
    }
    Ok(out)
}

impl<'a> ResourcePath<'a> {
    /// Parses a path, with or without a leading `/`; segment names in any letter case.
    pub fn parse(path: &'a str) -> Result<Self, ResourcePathError> {
        let segs = segments(path)?;
        let names: Vec<String> = segs.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut ids = segs.into_iter().map(|(_, id)| id);
        let mut next = || ids.next().unwrap_or_default();
        Ok(match names.as_slice() {
            ["chats"] => Self::Chat { chat_id: next() },
            ["chats", "messages"] => Self::ChatMessage {
                chat_id: next(),
                message_id: next(),
            },
            ["teams", "channels", "messages"] => Self::ChannelMessage {
                team_id: next(),
                channel_id: next(),
                message_id: next(),
            },
            ["teams", "channels", "messages", "replies"] => Self::ChannelReply {
                team_id: next(),
                channel_id: next(),
                message_id: next(),
                reply_id: next(),
            },
            _ => {
                return Err(err(
                    "not a chat, chat message, channel message or reply path",
                ))
            }
        })
    }

    /// Whether the path names a chat or a message.
    pub fn kind(&self) -> ResourceKind {
        match self {
            Self::Chat { .. } => ResourceKind::Chat,
            _ => ResourceKind::ChatMessage,
        }
    }

    /// The chat id, for chats and chat messages.
    pub fn chat_id(&self) -> Option<&str> {
        match self {
            Self::Chat { chat_id } | Self::ChatMessage { chat_id, .. } => Some(chat_id),
            _ => None,
        }
    }

    /// The id of the message (or reply) the path names.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Self::ChatMessage { message_id, .. } | Self::ChannelMessage { message_id, .. } => {
                Some(message_id)
            }
            Self::ChannelReply { reply_id, .. } => Some(reply_id),
            Self::Chat { .. } => None,
        }
    }
}

impl IntoOwned for ResourcePath<'_> {
    type Owned = ResourcePath<'static>;
    /// The path without borrows.
    fn into_owned(self) -> ResourcePath<'static> {
        let o = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            Self::Chat { chat_id } => ResourcePath::Chat {
                chat_id: o(chat_id),
            },
            Self::ChatMessage {
                chat_id,
                message_id,
            } => ResourcePath::ChatMessage {
                chat_id: o(chat_id),
                message_id: o(message_id),
            },
            Self::ChannelMessage {
                team_id,
                channel_id,
                message_id,
            } => ResourcePath::ChannelMessage {
                team_id: o(team_id),
                channel_id: o(channel_id),
                message_id: o(message_id),
            },
            Self::ChannelReply {
                team_id,
                channel_id,
                message_id,
                reply_id,
            } => ResourcePath::ChannelReply {
                team_id: o(team_id),
                channel_id: o(channel_id),
                message_id: o(message_id),
                reply_id: o(reply_id),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_graph_sends() {
        assert_eq!(
            ResourcePath::parse(
                "chats('19:8ea0e38b-efb3_97f62344@unq.gbl.spaces')/messages('1612289992105')"
            )
            .unwrap(),
            ResourcePath::ChatMessage {
                chat_id: "19:8ea0e38b-efb3_97f62344@unq.gbl.spaces".into(),
                message_id: "1612289992105".into()
            }
        );
        assert_eq!(
            ResourcePath::parse("/Teams('t')/Channels('c')/Messages('m')")
                .unwrap()
                .message_id(),
            Some("m")
        );
        let quoted = ResourcePath::parse("chats('a''b')").unwrap();
        assert_eq!(quoted.chat_id(), Some("a'b"));
        for bad in [
            "",
            "chats",
            "chats('')",
            "chats('a'",
            "chats('a')/",
            "chats('a')x",
            "chats('a')/members('b')",
            "users('u')/chats('a')",
            "teams('t')/messages('m')",
        ] {
            assert!(ResourcePath::parse(bad).is_err(), "{bad}");
        }
    }
}
