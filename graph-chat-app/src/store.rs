//! The cache, in SQLite: chats with their viewpoints, messages under the timeline's version
//! rules ([`MessageVersion`]), per-chat watermarks, the app's subscriptions, and the event log the
//! page resumes from (`Last-Event-ID`).
//!
//! Every change is one transaction, and the events it causes are numbered, stored and published
//! inside it, under the store's lock: a page sees events in the order their changes committed,
//! and a replay from the log and the live channel never disagree.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use graph_chat_webhook::notifications::model::{parse_time, ChatMessage, MessageVersion};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::view::{self, Viewer};

/// How many events the log keeps; a page that resumes from an older one reloads.
const EVENTS_KEPT: i64 = 100_000;

/// Why the cache could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed (the file, the disk, a lock).
    #[error("cache: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A resource that is not the JSON object it should be (nothing of its content is kept in
    /// the message).
    #[error("cache: {what} is not a valid {kind}")]
    Invalid {
        /// Which resource (its id, or where it came from).
        what: String,
        /// What it should have been.
        kind: &'static str,
    },
}

/// One change to a view, as the page receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its place in the log: increasing.
    pub id: i64,
    /// The JSON item with its `kind`.
    pub data: String,
}

/// What a message change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The version was newer: the message changed (or is new).
    Changed,
    /// A duplicate, or an older or late version: nothing changed.
    Unchanged,
}

/// The cache. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    events: broadcast::Sender<Event>,
    viewer: Viewer,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chats (
    id TEXT PRIMARY KEY,
    json TEXT NOT NULL,
    item TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    chat_id TEXT NOT NULL,
    id TEXT NOT NULL,
    created_key TEXT NOT NULL,
    id_key TEXT NOT NULL,
    v_modified TEXT,
    v_deleted INTEGER NOT NULL,
    v_etag TEXT,
    v_content TEXT NOT NULL,
    json TEXT NOT NULL,
    item TEXT NOT NULL,
    counts INTEGER NOT NULL,
    sender_id TEXT,
    PRIMARY KEY (chat_id, id)
);
CREATE INDEX IF NOT EXISTS messages_order ON messages (chat_id, created_key, id_key);
CREATE INDEX IF NOT EXISTS messages_unread ON messages (chat_id, counts, created_key);
CREATE TABLE IF NOT EXISTS watermarks (chat_id TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (kind TEXT PRIMARY KEY, id TEXT NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// A time as a key that sorts as the time does: UTC, nine fractional digits (years 1 to 9999).
pub(crate) fn time_key(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

/// Message ids compared as numbers (Graph's are epoch milliseconds); any other id after them,
/// as text.
fn id_key(id: &str) -> String {
    match id.parse::<u128>() {
        Ok(n) => format!("{n:040}"),
        Err(_) => format!("~{id}"),
    }
}

impl Store {
    /// Opens (or creates) the cache at `path`, for the signed-in user `viewer`.
    pub fn open(path: &Path, viewer: Viewer) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // WAL: a committed change survives the process (kill -9 included). `NORMAL` sync: a
        // power cut may take the last commits back, but never half of one, and what they held
        // is not lost: the inbox (fully synced) held every acknowledged notification until its
        // change was committed here, and a power cut takes the watermarks back with the
        // messages, so the reads on start fetch those changes from Graph again. One fsync per
        // checkpoint instead of one per message.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let (events, _) = broadcast::channel(4096);
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                events,
                viewer,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user the views are for.
    pub fn viewer(&self) -> &Viewer {
        &self.inner.viewer
    }

    /// A receiver of every event committed from now on, and the id of the last one committed
    /// before it (taken together, under the lock: nothing falls between).
    pub fn subscribe(&self) -> Result<(broadcast::Receiver<Event>, i64), StoreError> {
        let conn = self.lock();
        let last = last_event_id(&conn)?;
        Ok((self.inner.events.subscribe(), last))
    }

    /// Events after `after`, at most `limit`, in order.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT id, data FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok(Event {
                id: r.get(0)?,
                data: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The oldest event still in the log (0 when it is empty).
    pub fn first_event_id(&self) -> Result<i64, StoreError> {
        let conn = self.lock();
        Ok(conn.query_row("SELECT COALESCE(MIN(id), 0) FROM events", [], |r| r.get(0))?)
    }

    /// Applies one version of a message of `chat_id` (its JSON as Graph sent it; `deleted` when
    /// the notification said `deleted`) under the version rules. Returns whether it changed.
    pub fn apply_message(
        &self,
        chat_id: &str,
        json: &str,
        deleted: bool,
    ) -> Result<Applied, StoreError> {
        self.apply_version(chat_id, json, deleted, false)
    }

    /// Applies a message as a read of Graph returned it (a listing, a `GET`, the answer to a
    /// send): the same rules, and on a tie of time, deletion and `etag` with a different
    /// version, Graph's copy at the time of the read wins (notifications alone cannot order
    /// such a pair; the read can).
    pub fn apply_read(&self, chat_id: &str, json: &str) -> Result<Applied, StoreError> {
        self.apply_version(chat_id, json, false, true)
    }

    fn apply_version(
        &self,
        chat_id: &str,
        json: &str,
        deleted: bool,
        read: bool,
    ) -> Result<Applied, StoreError> {
        let message: ChatMessage<'_> =
            serde_json::from_str(json).map_err(|_| StoreError::Invalid {
                what: format!("a message of chat {chat_id}"),
                kind: "chatMessage",
            })?;
        let id = message
            .id
            .as_deref()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Invalid {
                what: format!("a message of chat {chat_id} without an id"),
                kind: "chatMessage",
            })?;
        let version = MessageVersion::of(&message, deleted);
        let value: Value = serde_json::from_str(json).map_err(|_| StoreError::Invalid {
            what: format!("message {id}"),
            kind: "chatMessage",
        })?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let stored = stored_version(&tx, chat_id, &id)?;
        if let Some((old, _)) = &stored {
            let tie = version.last_modified == old.last_modified
                && version.deleted == old.deleted
                && version.etag == old.etag
                && version.content != old.content;
            if !(version.supersedes(old) || (read && tie)) {
                return Ok(Applied::Unchanged);
            }
        }
        let item = view::message_item(&value, version.deleted, &self.inner.viewer);
        let created = value
            .get("createdDateTime")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .map(time_key)
            .unwrap_or_default();
        write_message(&tx, chat_id, &id, &created, &version, (json, &value), &item)?;
        let events = self.after_message_change(&tx, chat_id, &item)?;
        tx.commit()?;
        self.publish(events);
        Ok(Applied::Changed)
    }

    /// A deletion that came without data: the version it finds is deleted (and a newer version
    /// restores it). Unknown messages are left for the next read.
    pub fn apply_deletion(&self, chat_id: &str, id: &str) -> Result<Applied, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let Some((old, json)) = stored_version(&tx, chat_id, id)? else {
            return Ok(Applied::Unchanged);
        };
        let version = old.deletion();
        if !version.supersedes(&old) {
            return Ok(Applied::Unchanged);
        }
        let value: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
        let item = view::message_item(&value, true, &self.inner.viewer);
        let created: String = tx.query_row(
            "SELECT created_key FROM messages WHERE chat_id = ?1 AND id = ?2",
            params![chat_id, id],
            |r| r.get(0),
        )?;
        write_message(&tx, chat_id, id, &created, &version, (&json, &value), &item)?;
        let events = self.after_message_change(&tx, chat_id, &item)?;
        tx.commit()?;
        self.publish(events);
        Ok(Applied::Changed)
    }

    /// Applies a chat as Graph returned it for the user (with its `viewpoint`): a read of it is
    /// the truth at that moment, so it replaces what was known, except properties it leaves
    /// out (kept from before).
    pub fn apply_chat(&self, json: &Value) -> Result<bool, StoreError> {
        let Some(id) = json.get("id").and_then(Value::as_str) else {
            return Err(StoreError::Invalid {
                what: "a chat without an id".into(),
                kind: "chat",
            });
        };
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let old: Option<String> = tx
            .query_row("SELECT json FROM chats WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        let mut merged = old
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or_else(|| json!({}));
        if let (Some(into), Some(from)) = (merged.as_object_mut(), json.as_object()) {
            for (k, v) in from {
                into.insert(k.clone(), v.clone());
            }
        }
        let text = merged.to_string();
        tx.execute(
            "INSERT INTO chats (id, json, item) VALUES (?1, ?2, '') \
             ON CONFLICT(id) DO UPDATE SET json = excluded.json",
            params![id, text],
        )?;
        let events = self.refresh_chat_item(&tx, id)?;
        tx.commit()?;
        let changed = !events.is_empty();
        self.publish(events);
        Ok(changed)
    }

    /// Forgets a chat Graph no longer has for the user (deleted, or the user left it), with its
    /// messages and watermark. Its last event says so: the chat's item, `hidden`, with
    /// `"removed": true`.
    pub fn remove_chat(&self, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let item: Option<String> = tx
            .query_row("SELECT item FROM chats WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        let Some(item) = item else {
            return Ok(false);
        };
        tx.execute("DELETE FROM chats WHERE id = ?1", [id])?;
        tx.execute("DELETE FROM messages WHERE chat_id = ?1", [id])?;
        tx.execute("DELETE FROM watermarks WHERE chat_id = ?1", [id])?;
        let mut data: Value = serde_json::from_str(&item).unwrap_or_else(|_| json!({ "id": id }));
        data["id"] = id.into();
        data["hidden"] = true.into();
        data["unreadCount"] = 0.into();
        data["removed"] = true.into();
        data["kind"] = "chat".into();
        let event = log_event(&tx, &data)?;
        tx.commit()?;
        self.publish(vec![event]);
        Ok(true)
    }

    /// Whether the cache knows chat `id`.
    pub fn has_chat(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.lock();
        Ok(conn
            .query_row("SELECT 1 FROM chats WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The chat list, as `GET /api/chats` answers it, with the last event id it reflects.
    pub fn chats(&self) -> Result<(Vec<Value>, i64), StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT item FROM chats ORDER BY id")?;
        let items = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .filter_map(|r| r.ok())
            .filter_map(|s| serde_json::from_str(&s).ok())
            .collect();
        Ok((items, last_event_id(&conn)?))
    }

    /// The ids of the chats the cache knows.
    pub fn chat_ids(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT id FROM chats ORDER BY id")?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// A chat's messages, as `GET /api/chats/{id}/messages` answers it (`createdDateTime`
    /// order, ties by id as a number), with the last event id it reflects.
    pub fn messages(&self, chat_id: &str) -> Result<(Vec<Value>, i64), StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT item FROM messages WHERE chat_id = ?1 ORDER BY created_key, id_key",
        )?;
        let items = stmt
            .query_map([chat_id], |r| r.get::<_, String>(0))?
            .filter_map(|r| r.ok())
            .filter_map(|s| serde_json::from_str(&s).ok())
            .collect();
        Ok((items, last_event_id(&conn)?))
    }

    /// A message as Graph last sent it (for its hosted contents).
    pub fn message_json(&self, chat_id: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let conn = self.lock();
        let json: Option<String> = conn
            .query_row(
                "SELECT json FROM messages WHERE chat_id = ?1 AND id = ?2",
                params![chat_id, id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(json.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Where the last complete read of a chat's messages left off.
    pub fn watermark(&self, chat_id: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        let conn = self.lock();
        let at: Option<String> = conn
            .query_row(
                "SELECT at FROM watermarks WHERE chat_id = ?1",
                [chat_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(at.as_deref().and_then(parse_time))
    }

    /// Moves a chat's watermark forward (never back).
    pub fn advance_watermark(&self, chat_id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO watermarks (chat_id, at) VALUES (?1, ?2) \
             ON CONFLICT(chat_id) DO UPDATE SET at = MAX(at, excluded.at)",
            params![chat_id, time_key(at)],
        )?;
        Ok(())
    }

    /// The app's subscription of `kind`, as Graph returned it.
    pub fn subscription(&self, kind: &str) -> Result<Option<Value>, StoreError> {
        let conn = self.lock();
        let json: Option<String> = conn
            .query_row(
                "SELECT json FROM subscriptions WHERE kind = ?1",
                [kind],
                |r| r.get(0),
            )
            .optional()?;
        Ok(json.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Records the app's subscription of `kind`.
    pub fn set_subscription(&self, kind: &str, json: &Value) -> Result<(), StoreError> {
        let id = json.get("id").and_then(Value::as_str).unwrap_or("");
        let conn = self.lock();
        conn.execute(
            "INSERT INTO subscriptions (kind, id, json) VALUES (?1, ?2, ?3) \
             ON CONFLICT(kind) DO UPDATE SET id = excluded.id, json = excluded.json",
            params![kind, id, json.to_string()],
        )?;
        Ok(())
    }

    /// A setting the app keeps (the demo chat's id, the client state).
    pub fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock();
        Ok(conn
            .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Keeps a setting.
    pub fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO settings (name, value) VALUES (?1, ?2) \
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }

    fn publish(&self, events: Vec<Event>) {
        // Called with the connection's lock still held: events go out in the order their
        // changes committed, and `subscribe` cannot fall between a commit and its send.
        for event in events {
            // No receiver is not an error: nobody is watching.
            let _ = self.inner.events.send(event);
        }
    }

    /// Logs the message's event and, when the chat's item changed with it (unread count,
    /// hidden), the chat's.
    fn after_message_change(
        &self,
        tx: &rusqlite::Transaction<'_>,
        chat_id: &str,
        item: &Value,
    ) -> Result<Vec<Event>, StoreError> {
        let mut data = item.clone();
        data["kind"] = "message".into();
        data["chatId"] = chat_id.into();
        let mut events = vec![log_event(tx, &data)?];
        events.extend(self.refresh_chat_item(tx, chat_id)?);
        Ok(events)
    }

    /// Recomputes a chat's item from its JSON and its messages; logs an event if it changed.
    fn refresh_chat_item(
        &self,
        tx: &rusqlite::Transaction<'_>,
        chat_id: &str,
    ) -> Result<Vec<Event>, StoreError> {
        let row: Option<(String, String)> = tx
            .query_row(
                "SELECT json, item FROM chats WHERE id = ?1",
                [chat_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((json, old_item)) = row else {
            // Messages of a chat not yet read: its item comes with the chat.
            return Ok(Vec::new());
        };
        let chat: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
        // Counted in SQL over the rows' own columns: a chat of any length costs one indexed
        // scan, not a parse of every message.
        let after = view::last_read(&chat).map(time_key).unwrap_or_default();
        let (unread, newest): (i64, Option<String>) = tx.query_row(
            "SELECT \
               (SELECT COUNT(*) FROM messages WHERE chat_id = ?1 AND counts = 1 \
                  AND created_key > ?2 AND sender_id IS NOT ?3), \
               (SELECT MAX(created_key) FROM messages WHERE chat_id = ?1 AND counts = 1)",
            params![chat_id, after, self.inner.viewer.user_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let newest = newest.as_deref().and_then(parse_time);
        let item = view::chat_item(&chat, u64::try_from(unread).unwrap_or(0), newest);
        let text = item.to_string();
        if text == old_item {
            return Ok(Vec::new());
        }
        tx.execute(
            "UPDATE chats SET item = ?2 WHERE id = ?1",
            params![chat_id, text],
        )?;
        let mut data = item;
        data["kind"] = "chat".into();
        Ok(vec![log_event(tx, &data)?])
    }
}

fn last_event_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?)
}

fn log_event(tx: &rusqlite::Transaction<'_>, data: &Value) -> Result<Event, StoreError> {
    let text = data.to_string();
    tx.execute("INSERT INTO events (data) VALUES (?1)", [&text])?;
    let id = tx.last_insert_rowid();
    if id % 1000 == 0 {
        tx.execute("DELETE FROM events WHERE id <= ?1", [id - EVENTS_KEPT])?;
    }
    Ok(Event { id, data: text })
}

/// A message row's version fields and JSON: modified, deleted, etag, content, json.
type StoredRow = (Option<String>, bool, Option<String>, String, String);

fn stored_version(
    tx: &rusqlite::Transaction<'_>,
    chat_id: &str,
    id: &str,
) -> Result<Option<(MessageVersion, String)>, StoreError> {
    let row: Option<StoredRow> = tx
        .query_row(
            "SELECT v_modified, v_deleted, v_etag, v_content, json FROM messages \
             WHERE chat_id = ?1 AND id = ?2",
            params![chat_id, id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    Ok(row.map(|(modified, deleted, etag, content, json)| {
        (
            MessageVersion::new(
                modified.as_deref().and_then(parse_time),
                deleted,
                etag,
                content,
            ),
            json,
        )
    }))
}

fn write_message(
    tx: &rusqlite::Transaction<'_>,
    chat_id: &str,
    id: &str,
    created: &str,
    version: &MessageVersion,
    (json, value): (&str, &Value),
    item: &Value,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO messages (chat_id, id, created_key, id_key, v_modified, v_deleted, v_etag, \
         v_content, json, item, counts, sender_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT(chat_id, id) DO UPDATE SET created_key = excluded.created_key, \
         v_modified = excluded.v_modified, v_deleted = excluded.v_deleted, \
         v_etag = excluded.v_etag, v_content = excluded.v_content, json = excluded.json, \
         item = excluded.item, counts = excluded.counts, sender_id = excluded.sender_id",
        params![
            chat_id,
            id,
            created,
            id_key(id),
            version.last_modified.map(time_key),
            version.deleted,
            version.etag,
            version.content,
            json,
            item.to_string(),
            view::counts(value, version.deleted),
            view::sender_of(value),
        ],
    )?;
    Ok(())
}
