//! The timeline rules of the Teams-embedding guidance, without I/O: notifications arrive at
//! least once, possibly out of order and duplicated; the view they build must not depend on that.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use time::OffsetDateTime;

use super::change::ChangeType;
use super::chat::ChatViewpoint;
use super::enums::EnumValue;
use super::message::{ChatMessage, DlpAction};
use super::value::IntoOwned;

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
    version: MessageVersion,
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

    /// The version the entry holds, as [`MessageVersion`] orders it: what a durable cache stores
    /// beside the row to apply the same rules later.
    pub fn version(&self) -> &MessageVersion {
        &self.version
    }

    fn created(&self) -> Option<OffsetDateTime> {
        self.message
            .as_ref()
            .and_then(|m| m.created_date_time.get())
            .map(|t| t.at())
    }
}

/// What orders two versions of one message, so that a view built from notifications delivered
/// in any order, any number of times, is the same: the newest version wins, a deletion beats a
/// version of the same time, and a late or older version never overwrites a newer one. A newer
/// version without `deletedDateTime` (what follows an `undoSoftDelete`) restores a deleted
/// message. [`ChatTimeline`] applies exactly this order; a durable cache stores a row's version
/// (its four fields) and keeps an incoming version only if it [`supersedes`](Self::supersedes)
/// the stored one.
///
/// The order, field by field: `last_modified`, then `deleted` (a deletion wins a tie), then
/// `etag` (numerically when it is a number, as Teams etags are millisecond times, then as text),
/// then `content`.
///
/// ```
/// use graph_chat_notifications::model::{ChatMessage, MessageVersion};
/// let sent: ChatMessage = serde_json::from_str(r#"{"id":"1","etag":"1","createdDateTime":"2024-01-01T10:00:00Z"}"#).unwrap();
/// let deleted: ChatMessage = serde_json::from_str(r#"{"id":"1","etag":"2","createdDateTime":"2024-01-01T10:00:00Z","deletedDateTime":"2024-01-01T10:05:00Z"}"#).unwrap();
/// let restored: ChatMessage = serde_json::from_str(r#"{"id":"1","etag":"3","createdDateTime":"2024-01-01T10:00:00Z","lastModifiedDateTime":"2024-01-01T10:09:00Z"}"#).unwrap();
/// let (v1, v2, v3) = (MessageVersion::of(&sent, false), MessageVersion::of(&deleted, false), MessageVersion::of(&restored, false));
/// assert!(v2.deleted && v2.supersedes(&v1));
/// assert!(!v1.supersedes(&v2)); // late and older
/// assert!(v3.supersedes(&v2)); // the undo restores
/// assert!(v1.deletion().supersedes(&v1)); // a deletion without data beats the version it deletes
/// ```
///
/// `Debug` shows the times, the etag and the size of `content`, never `content` itself (it is
/// the message's JSON).
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MessageVersion {
    /// The latest time the version carries: the greatest of `createdDateTime`,
    /// `lastModifiedDateTime`, `lastEditedDateTime` and `deletedDateTime` (`None` without any).
    pub last_modified: Option<OffsetDateTime>,
    /// Whether the version is a deletion (`deletedDateTime` set, or a `deleted` notification).
    pub deleted: bool,
    /// `etag`, if the version carried one.
    pub etag: Option<String>,
    /// The last resort between versions with the same times and etag, so that they still order
    /// the same everywhere: [`MessageVersion::of`] puts the version's JSON here; a cache may
    /// store it, or any digest it computes the same way for every row.
    pub content: String,
}

impl std::fmt::Debug for MessageVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageVersion")
            .field("last_modified", &self.last_modified)
            .field("deleted", &self.deleted)
            .field("etag", &self.etag)
            .field("content_bytes", &self.content.len())
            .finish()
    }
}

impl MessageVersion {
    /// A version from its fields, as a cache stored them.
    pub fn new(
        last_modified: Option<OffsetDateTime>,
        deleted: bool,
        etag: Option<String>,
        content: String,
    ) -> Self {
        Self {
            last_modified,
            deleted,
            etag,
            content,
        }
    }

    /// The version of `message`; `deleted` also when the notification said so (a `deleted`
    /// change type) though the message has no `deletedDateTime`.
    pub fn of(message: &ChatMessage<'_>, deleted: bool) -> Self {
        let last_modified = [
            &message.created_date_time,
            &message.last_modified_date_time,
            &message.last_edited_date_time,
            &message.deleted_date_time,
        ]
        .into_iter()
        .filter_map(|p| p.get().map(|t| t.at()))
        .max();
        Self {
            last_modified,
            deleted: deleted || message.is_deleted(),
            etag: message.etag.as_deref().map(str::to_string),
            content: serde_json::to_string(message).unwrap_or_default(),
        }
    }

    /// A deletion of this version, for a deletion that came without data: it carries no time of
    /// its own, so it takes this version's, and beats it; any newer version restores the
    /// message.
    ///
    /// Such a deletion cannot be ordered against a version that arrives after it: one created
    /// later (a reorder) wins, though Graph deleted it. No rule over the notifications alone can
    /// tell, so read the message back after a deletion without data
    /// ([`outbound::get_message`](crate::outbound::get_message)): Graph's copy (with its
    /// `deletedDateTime`) then supersedes whatever came in between. With resource data a deletion
    /// carries its `deletedDateTime` and needs no read.
    pub fn deletion(&self) -> Self {
        Self {
            deleted: true,
            ..self.clone()
        }
    }

    /// Whether this version replaces `other`: it is strictly greater in the order above. Equal
    /// versions (a duplicate delivery) replace nothing.
    pub fn supersedes(&self, other: &Self) -> bool {
        self > other
    }

    fn etag_key(&self) -> (u128, &str) {
        let etag = self.etag.as_deref().unwrap_or("");
        (etag.parse().unwrap_or(0), etag)
    }
}

impl Ord for MessageVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.last_modified
            .cmp(&other.last_modified)
            .then(self.deleted.cmp(&other.deleted))
            .then_with(|| self.etag_key().cmp(&other.etag_key()))
            .then_with(|| self.content.cmp(&other.content))
    }
}

impl PartialOrd for MessageVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
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
        let existing = self.entries.get(id);
        let incoming = match (message, existing) {
            (Some(m), _) => MessageVersion::of(m, deleted),
            // Without data a deletion deletes the version it finds; with none known, it is a
            // deletion of no time, which any version carrying a time supersedes.
            (None, Some(e)) => e.version.deletion(),
            (None, None) => MessageVersion::new(None, true, None, String::new()),
        };
        if existing.is_some_and(|e| !incoming.supersedes(&e.version)) {
            return false;
        }
        self.entries.insert(
            id.to_string(),
            TimelineEntry {
                id: id.to_string(),
                message: message.map(|m| m.clone().into_owned()),
                deleted: incoming.deleted,
                version: incoming,
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
