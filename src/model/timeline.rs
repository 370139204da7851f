//! The timeline rules of the Teams-embedding guidance, without I/O: notifications arrive at
//! least once, possibly out of order and duplicated; the view they build must not depend on that.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use time::OffsetDateTime;

use super::ChangeType;
use super::{ChatMessage, ChatViewpoint, DlpAction, EnumValue, IntoOwned};

/// What a metered (`model=B`) notification cost under the Teams-embedding guide's pricing:
/// $0.00075, in millionths of a dollar. A historical model: Microsoft stopped metering the Teams
/// APIs on 25 August 2025 (Graph's "Teams licenses" page), so current notifications cost nothing
/// extra; keep this for estimates against the old pricing.
pub const METERED_PRICE_MICRO_USD: u64 = 750;

/// The cost in US dollars of `notifications` metered notifications under the guide's historical
/// pricing ([`METERED_PRICE_MICRO_USD`]; metering ended on 25 August 2025). The guide's example:
/// 50 recipients x 20 senders x 300 messages a month is 300,000 notifications, $225 a month.
///
/// ```
/// use graph_chat_notifications::model::metered_cost_usd;
/// assert_eq!(metered_cost_usd(50 * 20 * 300), 225.0);
/// ```
pub fn metered_cost_usd(notifications: u64) -> f64 {
    (notifications as u128 * METERED_PRICE_MICRO_USD as u128) as f64 / 1e6
}

/// Whether a chat shows in the user's list: not hidden, or hidden but with a message created
/// after the user last read it. Graph sends no `isHidden: false` when that happens.
///
/// ```
/// use graph_chat_notifications::model::{chat_is_visible, ChatViewpoint};
/// let vp: ChatViewpoint = serde_json::from_str(
///     r#"{"isHidden": true, "lastMessageReadDateTime": "2024-04-23T10:00:00Z"}"#).unwrap();
/// let t = |s| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
/// assert!(!chat_is_visible(&vp, Some(t("2024-04-23T09:00:00Z"))));
/// assert!(chat_is_visible(&vp, Some(t("2024-04-23T10:00:01Z"))));
/// ```
pub fn chat_is_visible(
    viewpoint: &ChatViewpoint<'_>,
    newest_message_created: Option<OffsetDateTime>,
) -> bool {
    if viewpoint.is_hidden.get() != Some(&true) {
        return true;
    }
    match (
        newest_message_created,
        viewpoint.last_message_read_date_time.get(),
    ) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(newest), Some(read)) => newest > read.at(),
    }
}

/// One message of a [`ChatTimeline`]: its latest known version, or a deletion.
///
/// `Debug` shows the id, whether it is deleted, and the message as its model's `Debug` shows it
/// (ids, kinds, times and sizes), never its content.
#[derive(Clone, PartialEq)]
pub struct TimelineEntry {
    /// The message id.
    pub id: String,
    /// The latest version received, if any notification carried one.
    pub message: Option<ChatMessage<'static>>,
    /// Whether the message is deleted.
    pub deleted: bool,
    rank: Rank,
}

impl fmt::Debug for TimelineEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not `rank`: it holds the whole message as JSON, content included.
        f.debug_struct("TimelineEntry")
            .field("id", &self.id)
            .field("deleted", &self.deleted)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

impl TimelineEntry {
    /// The data loss prevention action on the latest version.
    pub fn dlp_action(&self) -> Option<&EnumValue<'static, DlpAction>> {
        self.message.as_ref().and_then(|m| m.dlp_action())
    }

    /// Whether data loss prevention hides the message from (some) recipients.
    pub fn dlp_blocked(&self) -> bool {
        self.dlp_action().is_some_and(EnumValue::blocks)
    }

    fn created(&self) -> Option<OffsetDateTime> {
        self.message
            .as_ref()
            .and_then(|m| m.created_date_time.get())
            .map(|t| t.at())
    }
}

/// Orders versions of one message; the greatest wins. A total order, so the view is the same
/// whatever the order and repetition of deliveries. No `Debug`: `json` is the message's content.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// The latest time the version carries (created, modified, edited or deleted).
    stamp: Option<OffsetDateTime>,
    /// A deletion beats a version with the same time.
    deleted: bool,
    /// `etag`, numerically when it is a number (Teams etags are millisecond times).
    etag: (u128, String),
    /// Last resort: the version's JSON, so equal-looking versions still order.
    json: String,
}

fn rank(message: Option<&ChatMessage<'_>>, deleted: bool) -> Rank {
    let Some(m) = message else {
        // A deletion without data is final.
        return Rank {
            stamp: Some(
                OffsetDateTime::from_unix_timestamp(253_402_300_799)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ),
            deleted: true,
            etag: (u128::MAX, String::new()),
            json: String::new(),
        };
    };
    let stamp = [
        &m.created_date_time,
        &m.last_modified_date_time,
        &m.last_edited_date_time,
        &m.deleted_date_time,
    ]
    .into_iter()
    .filter_map(|p| p.get().map(|t| t.at()))
    .max();
    let etag = m.etag.as_deref().unwrap_or("");
    Rank {
        stamp,
        deleted,
        etag: (etag.parse().unwrap_or(0), etag.to_string()),
        json: serde_json::to_string(m).unwrap_or_default(),
    }
}

/// The messages of one chat (or channel) as notifications describe them: duplicates and
/// out-of-order deliveries converge, the newest version of each message wins, deletes remove,
/// and messages are ordered by `createdDateTime`.
///
/// ```
/// use graph_chat_notifications::model::{ChatMessage, ChatTimeline};
/// use graph_chat_notifications::model::ChangeType;
/// let v1: ChatMessage = serde_json::from_str(r#"{"id":"1","createdDateTime":"2024-01-01T10:00:00Z","body":{"content":"helo"}}"#).unwrap();
/// let v2: ChatMessage = serde_json::from_str(r#"{"id":"1","createdDateTime":"2024-01-01T10:00:00Z","lastEditedDateTime":"2024-01-01T10:01:00Z","body":{"content":"hello"}}"#).unwrap();
/// let mut t = ChatTimeline::new();
/// t.apply(&ChangeType::Updated.into(), "1", Some(&v2));
/// t.apply(&ChangeType::Created.into(), "1", Some(&v1)); // late and older: ignored
/// assert_eq!(t.messages()[0].body.get().unwrap().content.as_deref(), Some("hello"));
/// t.apply(&ChangeType::Deleted.into(), "1", None);
/// assert!(t.messages().is_empty());
/// ```
///
/// `Debug` shows each entry by id, as [`TimelineEntry`]'s `Debug` does: no message content.
#[derive(Clone, Default, PartialEq)]
pub struct ChatTimeline {
    entries: HashMap<String, TimelineEntry>,
}

impl fmt::Debug for ChatTimeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By id, so the output does not depend on the map's order.
        let mut entries: Vec<&TimelineEntry> = self.entries.values().collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        f.debug_struct("ChatTimeline")
            .field("entries", &entries)
            .finish()
    }
}

impl ChatTimeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one notification about message `id`: its change type (as the notification
    /// carries it, [`ChangeNotification::change_type`](crate::inbound::ChangeNotification::change_type);
    /// `ChangeType::Deleted.into()` for a literal) and, when it carried resource data, the
    /// message. Returns whether the view changed.
    pub fn apply(
        &mut self,
        change: &EnumValue<'_, ChangeType>,
        id: &str,
        message: Option<&ChatMessage<'_>>,
    ) -> bool {
        let deleted =
            change.is(ChangeType::Deleted) || message.is_some_and(ChatMessage::is_deleted);
        if message.is_none() && !deleted {
            // A created/updated notification without data says nothing about the content.
            return false;
        }
        let incoming = rank(message, deleted);
        if let Some(existing) = self.entries.get(id) {
            if existing.rank >= incoming {
                return false;
            }
        }
        self.entries.insert(
            id.to_string(),
            TimelineEntry {
                id: id.to_string(),
                message: message.map(|m| m.clone().into_owned()),
                deleted,
                rank: incoming,
            },
        );
        true
    }

    /// The message with this id, deleted or not.
    pub fn get(&self, id: &str) -> Option<&TimelineEntry> {
        self.entries.get(id)
    }

    /// The messages that are not deleted, ordered by `createdDateTime` (then id).
    pub fn messages(&self) -> Vec<&ChatMessage<'static>> {
        self.entries()
            .into_iter()
            .filter_map(|e| e.message.as_ref())
            .collect()
    }

    /// The entries that are not deleted, ordered by `createdDateTime` (then id).
    pub fn entries(&self) -> Vec<&TimelineEntry> {
        let mut live: Vec<&TimelineEntry> = self
            .entries
            .values()
            .filter(|e| !e.deleted && e.message.is_some())
            .collect();
        live.sort_by(|a, b| match a.created().cmp(&b.created()) {
            Ordering::Equal => a.id.cmp(&b.id),
            o => o,
        });
        live
    }

    /// The newest `createdDateTime` among messages that are not deleted, for
    /// [`chat_is_visible`].
    pub fn newest_created(&self) -> Option<OffsetDateTime> {
        self.entries().iter().filter_map(|e| e.created()).max()
    }
}
