//! The cache, in SQLite (or in PostgreSQL, shared by several copies of the app: [`Database`]): chats with their viewpoints, messages under the timeline's version
//! rules ([`MessageVersion`]), per-chat watermarks, the app's subscriptions, and the event log the
//! page resumes from (`Last-Event-ID`).
//!
//! Every change is one transaction, and the events it causes are numbered, stored and published
//! inside it, under the store's lock: a page sees events in the order their changes committed,
//! and a replay from the log and the live channel never disagree.
//!
//! What a deleted or blocked message said is not kept: its row holds the message without its
//! body, attachments, hosted contents or mentions, the events that carried its earlier versions
//! are dropped from the log, SQLite overwrites what it frees (`secure_delete`), and the
//! write-ahead log is emptied after such a change, so no copy stays in the files. The log keeps
//! at most [`EVENTS_KEPT`] events, for at most the retention set with
//! [`Store::set_event_retention`] (7 days by default).
//!
//! On PostgreSQL each person's cache is a schema of its own (the same tables and the same SQL
//! as SQLite's file; a person forgotten is a schema dropped). A write takes that schema's
//! advisory lock for its transaction before it logs anything, so one person's events take their
//! ids (from the log's one sequence, which every copy shares) in the order they commit: a page
//! resuming with `Last-Event-ID` on any copy reads every event after it, and none commits later
//! with a smaller id. A commit that logged events notifies every copy (`NOTIFY`: the person's
//! schema and the last id, never content); each copy's store then publishes what its live
//! streams have not seen, read from the log. PostgreSQL keeps a deleted row's bytes until
//! `VACUUM` reuses them: unlike the SQLite file, a deleted message's old row is not wiped from
//! the disk at once (the database's own files are the operator's to protect).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use graph_chat_webhook::notifications::model::{parse_time, Chat, ChatMessage, MessageVersion};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::files;
use crate::view::{self, Change, ChatItem, MessageItem, MessageState, Viewer};

pub(crate) mod db;
mod reads;
mod schema;
mod writes;

pub use writes::{PendingWrite, TRYING};

pub(crate) use db::{args, ddl, Backend, Tx};
pub use db::{is_postgres_url, Database, StoreError};
use db::{Feed, SqliteTx, EVENTS_CHANNEL};
use schema::{EVENTS_INDEXES, EVENTS_MIGRATION, SCHEMA};

/// How many events the log keeps at most; a page that resumes from an older one reloads.
pub const EVENTS_KEPT: i64 = 100_000;

/// How long the log keeps an event unless [`Store::set_event_retention`] says otherwise: 7 days.
pub const EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// One change to a view, as the page receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its place in the log: increasing.
    pub id: i64,
    /// The [`Change`], serialized once when it was logged: what the stream sends as `data:`.
    pub data: String,
}

/// A view as the API answers it: the items' JSON array, put together from their stored JSON
/// without parsing it again, and the last event it reflects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The JSON array of items.
    pub json: String,
    /// The id of the last event committed before it was read.
    pub last_event: i64,
}

/// A page of a chat's messages ([`Store::message_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePage {
    /// The JSON array of items, oldest first.
    pub json: String,
    /// How many items it holds.
    pub count: usize,
    /// The oldest item of the page.
    pub oldest: Option<MessageItem>,
    /// Whether the cache holds older messages of the chat.
    pub older: bool,
    /// The id of the last event committed before it was read.
    pub last_event: i64,
}

/// Where a version of a message comes from, which decides a tie the version rules cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A notification; `deleted` when its change type said so.
    Notification {
        /// Whether the notification said `deleted`.
        deleted: bool,
    },
    /// A read of Graph (a listing, a `GET`, the answer to a send): on a tie of time, deletion
    /// and `etag` with a different version, Graph's copy at the time of the read wins.
    Read,
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
    backend: Backend,
    events: broadcast::Sender<Event>,
    viewer: Viewer,
    /// How long the log keeps an event, in seconds.
    retention: AtomicU64,
    /// PostgreSQL: the last event published on `events` (the log is read past it).
    published: Mutex<i64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The properties of a deleted or blocked message the cache keeps: what orders its versions
/// and places it, never what it said (its body's text, subject, summary, attachments, hosted
/// contents, mentions, reactions).
const KEPT_WHEN_HIDDEN: [&str; 12] = [
    "id",
    "replyToId",
    "etag",
    "messageType",
    "createdDateTime",
    "lastModifiedDateTime",
    "lastEditedDateTime",
    "deletedDateTime",
    "chatId",
    "from",
    "importance",
    "locale",
];

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
    ///
    /// The file (and SQLite's `-wal` and `-shm` beside it, which take its mode) is readable by
    /// the app's user only. What a deleted or blocked message said in a cache written by an
    /// earlier version is removed on open.
    pub fn open(path: &Path, viewer: Viewer) -> Result<Self, StoreError> {
        files::create_private_file(path).map_err(StoreError::File)?;
        let conn = Connection::open(path)?;
        // First: the process before a restart may still hold the file for a moment, and the
        // pragmas below wait for it only with a busy timeout set.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // What SQLite frees (a deleted row, an overwritten value) is overwritten with zeros,
        // not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        // WAL: a committed change survives the process (kill -9 included). `NORMAL` sync: a
        // power cut may take the last commits back, but never half of one, and what they held
        // is not lost: the inbox (fully synced) held every acknowledged notification until its
        // change was committed here, and a power cut takes the watermarks back with the
        // messages, so the reads on start fetch those changes from Graph again. One fsync per
        // checkpoint instead of one per message.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let migrate = has_table(&conn, "events")? && !has_column(&conn, "events", "message_id")?;
        conn.execute_batch(&ddl(SCHEMA, false))?;
        if migrate {
            conn.execute_batch(&format!("BEGIN; {EVENTS_MIGRATION} COMMIT;"))?;
        }
        conn.execute_batch(EVENTS_INDEXES)?;
        let store = Self::with_backend(Backend::Sqlite(Mutex::new(conn)), viewer, 0);
        store.purge_hidden()?;
        if migrate {
            // Written before SQLite overwrote what it freed: its free pages may hold anything
            // deleted then. Rewritten whole, once.
            if let Some(conn) = store.inner.backend.sqlite() {
                conn.execute_batch("VACUUM")?;
                empty_wal(&conn)?;
            }
        }
        Ok(store)
    }

    /// Opens (or creates) the cache of the signed-in user `viewer` in `db`, shared with every
    /// copy of the app on it: their schema, made (or migrated) under the database's migration
    /// lock, so copies opening it at once do not race. Blocking: call it off the async threads.
    pub fn open_postgres(db: &Database, viewer: Viewer) -> Result<Self, StoreError> {
        let schema = db.person_schema(&viewer.user_id);
        db.migrate(Some(&schema), &(ddl(SCHEMA, true) + EVENTS_INDEXES))?;
        let backend = Backend::Pg {
            db: db.clone(),
            schema: Some(schema.clone()),
        };
        let last = backend.read(last_event_id)?;
        let store = Self::with_backend(backend, viewer, last);
        let feed: Weak<dyn Feed> = Arc::downgrade(&store.inner) as Weak<Inner>;
        db.register(&schema, feed);
        Ok(store)
    }

    /// Drops the cache of `user_id` from `db` (their schema, under the migration lock): for a
    /// person signed out for good. Blocking: call it off the async threads.
    pub fn remove_postgres(db: &Database, user_id: &str) -> Result<(), StoreError> {
        db.drop_schema(&db.person_schema(user_id))
    }

    fn with_backend(backend: Backend, viewer: Viewer, published: i64) -> Self {
        let (events, _) = broadcast::channel(4096);
        Self {
            inner: Arc::new(Inner {
                backend,
                events,
                viewer,
                retention: AtomicU64::new(EVENT_RETENTION.as_secs()),
                published: Mutex::new(published),
            }),
        }
    }

    /// How long the log keeps an event (at least a second); a page that resumes from an older
    /// one reloads. Events older than that go with the next change.
    pub fn set_event_retention(&self, retention: Duration) {
        self.inner
            .retention
            .store(retention.as_secs().max(1), Ordering::Relaxed);
    }

    /// Removes what deleted or blocked messages said from every row and event that still holds
    /// it (a cache from an earlier version), then empties the write-ahead log (which a crash
    /// between a purge and its checkpoint may have left holding it).
    fn purge_hidden(&self) -> Result<(), StoreError> {
        let Some(mut conn) = self.inner.backend.sqlite() else {
            return Ok(());
        };
        let tx = conn.transaction()?;
        let rows: Vec<(String, String, String, String)> = {
            let mut stmt = tx.prepare(
                "SELECT chat_id, id, v_content, json FROM messages \
                 WHERE json_extract(item, '$.state') IN ('deleted', 'blocked')",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (chat_id, id, v_content, json) in rows {
            let (kept_version, kept_json) = (redact(&v_content), redact(&json));
            if kept_version != v_content || kept_json != json {
                tx.execute(
                    "UPDATE messages SET v_content = ?3, json = ?4 WHERE chat_id = ?1 AND id = ?2",
                    params![chat_id, id, kept_version, kept_json],
                )?;
            }
            tx.execute(
                "DELETE FROM events WHERE chat_id = ?1 AND message_id = ?2 \
                 AND json_extract(data, '$.content') IS NOT NULL",
                params![chat_id, id],
            )?;
        }
        tx.commit()?;
        // Always: a purge whose checkpoint a crash interrupted left the old pages in the WAL.
        empty_wal(&conn)?;
        Ok(())
    }

    fn retention_secs(&self) -> i64 {
        i64::try_from(self.inner.retention.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
    }

    /// Runs `f` on one consistent view of the cache.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.inner.backend.read(f)
    }

    /// Runs `f` as one change: its events are published in the order changes commit (on
    /// SQLite under the lock; on PostgreSQL from the log, after a `NOTIFY` every copy hears).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<(T, Vec<Event>), StoreError>,
    ) -> Result<T, StoreError> {
        let schema = match &self.inner.backend {
            Backend::Pg { schema, .. } => schema.clone(),
            Backend::Sqlite(_) => None,
        };
        let (value, events) = self.inner.backend.write(
            |tx| {
                let (value, events) = f(tx)?;
                if let (Some(schema), Some(last)) = (&schema, events.last()) {
                    // Delivered at the commit, to every copy (this one included).
                    tx.execute(
                        "SELECT pg_notify($1, $2)",
                        args![EVENTS_CHANNEL, format!("{schema} {}", last.id)],
                    )?;
                }
                Ok((value, events))
            },
            |(_, events)| {
                if schema.is_none() {
                    // Still under the lock: `subscribe` cannot fall between a commit and its
                    // send.
                    for event in events {
                        // No receiver is not an error: nobody is watching.
                        let _ = self.inner.events.send(event.clone());
                    }
                }
            },
        )?;
        if schema.is_some() && !events.is_empty() {
            self.inner.catch_up();
        }
        Ok(value)
    }

    /// After a change that dropped what a message said: SQLite's write-ahead log is emptied.
    fn empty_wal(&self) -> Result<(), StoreError> {
        match self.inner.backend.sqlite() {
            Some(conn) => empty_wal(&conn),
            None => Ok(()),
        }
    }

    /// Runs `f` on the store on tokio's blocking threads: the one way async code reaches the
    /// cache, so that no SQLite call (a write, a lock wait, an fsync) ever holds an async
    /// thread. Threads that may block (the webhook's workers, tests) call the store directly.
    pub async fn call<T, E>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable.into()))
    }

    /// A receiver of every event committed from now on, and the id of the last one committed
    /// before it (taken together, under the lock: nothing falls between).
    pub fn subscribe(&self) -> Result<(broadcast::Receiver<Event>, i64), StoreError> {
        if let Some(conn) = self.inner.backend.sqlite() {
            let last = last_event_id(&mut SqliteTx(&conn))?;
            return Ok((self.inner.events.subscribe(), last));
        }
        // PostgreSQL: what is published is what the log held up to `published`; what commits
        // later is published after it, to this receiver too.
        self.inner.catch_up_now()?;
        let published = db::lock(&self.inner.published);
        Ok((self.inner.events.subscribe(), *published))
    }

    /// Events after `after`, at most `limit`, in order.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read(|tx| events_after(tx, after, limit))
    }

    /// The oldest event still in the log (0 when it never had one; the next id when all have
    /// expired).
    pub fn first_event_id(&self) -> Result<i64, StoreError> {
        // An empty log (everything in it expired) starts after the last id it gave.
        self.read(|tx| {
            let sql = if tx.postgres() {
                "SELECT COALESCE((SELECT MIN(id) FROM events), \
                   (SELECT last_value + 1 FROM events_id_seq WHERE is_called), 0)"
            } else {
                "SELECT COALESCE(MIN(id), \
                   (SELECT seq + 1 FROM sqlite_sequence WHERE name = 'events'), 0) FROM events"
            };
            tx.one(sql, args![])?.int(0)
        })
    }

    /// Applies one version of a message of `chat_id` (its JSON as Graph sent it; `deleted` when
    /// the notification said `deleted`) under the version rules. Returns whether it changed.
    pub fn apply_message(
        &self,
        chat_id: &str,
        json: &str,
        deleted: bool,
    ) -> Result<Applied, StoreError> {
        self.apply(
            chat_id,
            &parse_message(chat_id, json)?,
            Origin::Notification { deleted },
        )
    }

    /// Applies a message as a read of Graph returned it (a listing, a `GET`, the answer to a
    /// send): the same rules, and on a tie of time, deletion and `etag` with a different
    /// version, Graph's copy at the time of the read wins (notifications alone cannot order
    /// such a pair; the read can).
    pub fn apply_read(&self, chat_id: &str, json: &str) -> Result<Applied, StoreError> {
        self.apply(chat_id, &parse_message(chat_id, json)?, Origin::Read)
    }

    /// Applies one version of a message of `chat_id`, parsed, under the version rules (see
    /// [`Origin`]). Returns whether it changed.
    pub fn apply(
        &self,
        chat_id: &str,
        message: &ChatMessage<'_>,
        origin: Origin,
    ) -> Result<Applied, StoreError> {
        let Some(id) = message.id.as_deref() else {
            return Err(StoreError::Invalid {
                what: format!("a message of chat {chat_id} without an id"),
                kind: "chatMessage",
            });
        };
        let (deleted, read) = match origin {
            Origin::Notification { deleted } => (deleted, false),
            Origin::Read => (false, true),
        };
        let mut version = MessageVersion::of(message, deleted);
        let viewer = &self.inner.viewer;
        let (applied, forgot) = self.write(|tx| {
            let old = stored_version(tx, chat_id, id)?;
            let same_but_content = |version: &MessageVersion, old: &MessageVersion| {
                version.last_modified == old.last_modified
                    && version.deleted == old.deleted
                    && version.etag == old.etag
            };
            if let Some(old) = &old {
                // Decided without the content (an older or newer version), or the same version
                // again (a duplicate of a shown message): no need to make its item.
                let decided = !same_but_content(&version, old) || version.content == old.content;
                if decided && !version.supersedes(old) {
                    return Ok(((Applied::Unchanged, false), Vec::new()));
                }
            }
            let item = view::message_item(message, version.deleted, viewer);
            let hidden = is_hidden(&item);
            if hidden {
                // Versions of a hidden message compare by what is kept of them.
                version.content = redact(&version.content);
            }
            if let Some(old) = &old {
                let tie = same_but_content(&version, old) && version.content != old.content;
                if !(version.supersedes(old) || (read && tie)) {
                    return Ok(((Applied::Unchanged, false), Vec::new()));
                }
            }
            let created = message
                .created_date_time
                .get()
                .map(|t| time_key(t.at()))
                .unwrap_or_default();
            let item_json = to_json(&item);
            tx.execute(
                "INSERT INTO messages (chat_id, id, created_key, id_key, v_modified, v_deleted, \
                 v_etag, v_content, json, item, counts, sender_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT(chat_id, id) DO UPDATE SET created_key = excluded.created_key, \
                 v_modified = excluded.v_modified, v_deleted = excluded.v_deleted, \
                 v_etag = excluded.v_etag, v_content = excluded.v_content, json = excluded.json, \
                 item = excluded.item, counts = excluded.counts, sender_id = excluded.sender_id",
                args![
                    chat_id,
                    id,
                    created,
                    id_key(id),
                    version.last_modified.map(time_key),
                    version.deleted,
                    version.etag.clone(),
                    version.content.clone(),
                    // The message as the version rules read it: the model serializes what it
                    // was read from, unknown properties included.
                    version.content.clone(),
                    item_json,
                    view::counts(message, version.deleted),
                    view::sender_of(message),
                ],
            )?;
            // Earlier versions of a hidden message leave the log; the file is emptied of them
            // too.
            let forgot = hidden && {
                let dropped = forget_events(tx, chat_id, id)?;
                dropped || old.is_some()
            };
            let events = self.after_message_change(tx, chat_id, item)?;
            Ok(((Applied::Changed, forgot), events))
        })?;
        if forgot {
            self.empty_wal()?;
        }
        Ok(applied)
    }

    /// A deletion that came without data: the version it finds is deleted (and a newer version
    /// restores it). Unknown messages are left for the next read.
    pub fn apply_deletion(&self, chat_id: &str, id: &str) -> Result<Applied, StoreError> {
        let applied = self.write(|tx| {
            let Some(old) = stored_version(tx, chat_id, id)? else {
                return Ok((Applied::Unchanged, Vec::new()));
            };
            let mut version = old.deletion();
            if !version.supersedes(&old) {
                return Ok((Applied::Unchanged, Vec::new()));
            }
            version.content = redact(&version.content);
            let row = tx.one(
                "SELECT item, json FROM messages WHERE chat_id = $1 AND id = $2",
                args![chat_id, id],
            )?;
            let (item, json) = (row.text(0)?, row.text(1)?);
            let item = parse_item::<MessageItem>(&item)?.into_deleted();
            tx.execute(
                "UPDATE messages SET v_modified = $3, v_deleted = $4, v_etag = $5, v_content = $6, \
                 item = $7, counts = 0, json = $8 WHERE chat_id = $1 AND id = $2",
                args![
                    chat_id,
                    id,
                    version.last_modified.map(time_key),
                    version.deleted,
                    version.etag,
                    version.content,
                    to_json(&item),
                    redact(&json),
                ],
            )?;
            forget_events(tx, chat_id, id)?;
            let events = self.after_message_change(tx, chat_id, item)?;
            Ok((Applied::Changed, events))
        })?;
        if applied == Applied::Changed {
            self.empty_wal()?;
        }
        Ok(applied)
    }

    /// Applies a chat as Graph returned it for the user (its JSON, with its `viewpoint`): a read
    /// of it is the truth at that moment, so it replaces what was known, except properties it
    /// leaves out (kept from before). Returns whether the chat's item changed.
    pub fn apply_chat(&self, json: &str) -> Result<bool, StoreError> {
        let invalid = |what: &str| StoreError::Invalid {
            what: what.to_owned(),
            kind: "chat",
        };
        let mut incoming: Map<String, Value> =
            serde_json::from_str(json).map_err(|_| invalid("a chat Graph returned"))?;
        let Some(id) = incoming
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(invalid("a chat without an id"));
        };
        self.write(|tx| {
            let old = tx.row("SELECT json, item FROM chats WHERE id = $1", args![&id])?;
            let (merged, old_item) = match old {
                Some(row) => {
                    let (old, item) = (row.text(0)?, row.text(1)?);
                    let mut merged: Map<String, Value> =
                        serde_json::from_str(&old).unwrap_or_default();
                    merged.append(&mut incoming);
                    (Value::Object(merged).to_string(), item)
                }
                None => (json.to_owned(), String::new()),
            };
            let chat: Chat<'_> =
                serde_json::from_str(&merged).map_err(|_| invalid(&format!("chat {id}")))?;
            tx.execute(
                "INSERT INTO chats (id, json, item) VALUES ($1, $2, $3) \
                 ON CONFLICT(id) DO UPDATE SET json = excluded.json",
                args![&id, &merged, &old_item],
            )?;
            let events = self.refresh_chat_item(tx, &id, &chat, &old_item)?;
            Ok((!events.is_empty(), events))
        })
    }

    /// Forgets a chat Graph no longer has for the user (deleted, or the user left it), with its
    /// messages and watermark. Its last event says so: the chat's item, `hidden`, with
    /// `"removed": true`.
    pub fn remove_chat(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(row) = tx.row("SELECT item FROM chats WHERE id = $1", args![id])? else {
                return Ok((false, Vec::new()));
            };
            let item = row.text(0)?;
            tx.execute("DELETE FROM chats WHERE id = $1", args![id])?;
            tx.execute("DELETE FROM messages WHERE chat_id = $1", args![id])?;
            tx.execute("DELETE FROM watermarks WHERE chat_id = $1", args![id])?;
            let item = serde_json::from_str::<ChatItem>(&item).unwrap_or_else(|_| ChatItem {
                chat_type: None,
                hidden: true,
                id: id.to_owned(),
                last_message: None,
                members: Vec::new(),
                topic: None,
                unread_count: 0,
            });
            let event = log_event(
                tx,
                self.retention_secs(),
                &Change::Chat {
                    item: ChatItem {
                        id: id.to_owned(),
                        hidden: true,
                        unread_count: 0,
                        ..item
                    },
                    removed: true,
                },
            )?;
            Ok((true, vec![event]))
        })
    }

    /// Logs the message's event and, when the chat's item changed with it (unread count,
    /// hidden), the chat's.
    fn after_message_change(
        &self,
        tx: &mut dyn Tx,
        chat_id: &str,
        item: MessageItem,
    ) -> Result<Vec<Event>, StoreError> {
        let change = Change::Message {
            chat_id: chat_id.to_owned(),
            item,
        };
        let mut events = vec![log_event(tx, self.retention_secs(), &change)?];
        let row = tx.row("SELECT json, item FROM chats WHERE id = $1", args![chat_id])?;
        // Messages of a chat not yet read: its item comes with the chat.
        if let Some(row) = row {
            let (json, old_item) = (row.text(0)?, row.text(1)?);
            let chat: Chat<'_> = serde_json::from_str(&json).map_err(|_| StoreError::Invalid {
                what: format!("the stored chat {chat_id}"),
                kind: "chat",
            })?;
            events.extend(self.refresh_chat_item(tx, chat_id, &chat, &old_item)?);
        }
        Ok(events)
    }

    /// Recomputes a chat's item from the chat and its messages; logs an event if it changed.
    fn refresh_chat_item(
        &self,
        tx: &mut dyn Tx,
        chat_id: &str,
        chat: &Chat<'_>,
        old_item: &str,
    ) -> Result<Vec<Event>, StoreError> {
        // Counted in SQL over the rows' own columns: a chat of any length costs one indexed
        // scan, not a parse of every message.
        let after = view::last_read(chat).map(time_key).unwrap_or_default();
        let row = tx.one(
            "SELECT \
               (SELECT COUNT(*) FROM messages WHERE chat_id = $1 AND counts = 1 \
                  AND created_key > $2 AND sender_id IS DISTINCT FROM $3), \
               (SELECT MAX(created_key) FROM messages WHERE chat_id = $1 AND counts = 1)",
            args![chat_id, after, &self.inner.viewer.user_id],
        )?;
        let (unread, newest) = (row.int(0)?, row.opt_text(1)?);
        let newest_item = tx
            .row(
                "SELECT item FROM messages WHERE chat_id = $1 AND counts = 1 \
                 ORDER BY created_key DESC, id_key DESC LIMIT 1",
                args![chat_id],
            )?
            .map(|r| r.text(0))
            .transpose()?;
        let last_message = newest_item
            .as_deref()
            .map(parse_item::<MessageItem>)
            .transpose()?
            .map(|item| view::preview(&item));
        let newest = newest.as_deref().and_then(parse_time);
        let item = view::chat_item(
            chat,
            u64::try_from(unread).unwrap_or(0),
            newest,
            last_message,
            &self.inner.viewer.user_id,
        );
        let text = to_json(&item);
        if text == old_item {
            return Ok(Vec::new());
        }
        tx.execute(
            "UPDATE chats SET item = $2 WHERE id = $1",
            args![chat_id, text],
        )?;
        let change = Change::Chat {
            item,
            removed: false,
        };
        Ok(vec![log_event(tx, self.retention_secs(), &change)?])
    }
}

impl Inner {
    /// Publishes what the log holds past what was published (PostgreSQL), in order.
    fn catch_up_now(&self) -> Result<(), StoreError> {
        const BATCH: usize = 1000;
        let mut published = db::lock(&self.published);
        loop {
            let after = *published;
            let batch = self.backend.read(|tx| events_after(tx, after, BATCH))?;
            let full = batch.len() == BATCH;
            for event in batch {
                *published = event.id;
                // No receiver is not an error: nobody is watching.
                let _ = self.events.send(event);
            }
            if !full {
                return Ok(());
            }
        }
    }
}

impl Feed for Inner {
    fn catch_up(&self) {
        if let Err(e) = self.catch_up_now() {
            tracing::warn!(error = %e, "cannot read the event log; the next change catches up");
        }
    }
}

fn parse_message<'a>(chat_id: &str, json: &'a str) -> Result<ChatMessage<'a>, StoreError> {
    serde_json::from_str(json).map_err(|_| StoreError::Invalid {
        what: format!("a message of chat {chat_id}"),
        kind: "chatMessage",
    })
}

/// An item or an event as JSON (a struct of strings, numbers and booleans always serializes).
fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Stored items, as JSON texts, into one JSON array.
fn json_array(items: &[String]) -> String {
    let mut json = String::with_capacity(2 + items.iter().map(|i| i.len() + 1).sum::<usize>());
    json.push('[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            json.push(',');
        }
        json.push_str(item);
    }
    json.push(']');
    json
}

/// A stored item, typed; an error names the type it should have been.
fn parse_item<T: serde::de::DeserializeOwned>(item: &str) -> Result<T, StoreError> {
    serde_json::from_str(item).map_err(|_| StoreError::Invalid {
        what: "a stored item".into(),
        kind: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("item"),
    })
}

fn parse_items<T: serde::de::DeserializeOwned>(items: &[String]) -> Result<Vec<T>, StoreError> {
    items.iter().map(|s| parse_item(s)).collect()
}

fn has_chat(tx: &mut dyn Tx, id: &str) -> Result<bool, StoreError> {
    Ok(tx
        .row("SELECT 1 FROM chats WHERE id = $1", args![id])?
        .is_some())
}

fn message_items(tx: &mut dyn Tx, chat_id: &str) -> Result<(Vec<String>, i64), StoreError> {
    let items = tx
        .query(
            "SELECT item FROM messages WHERE chat_id = $1 ORDER BY created_key, id_key",
            args![chat_id],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<_, _>>()?;
    Ok((items, last_event_id(tx)?))
}

fn last_event_id(tx: &mut dyn Tx) -> Result<i64, StoreError> {
    tx.one("SELECT COALESCE(MAX(id), 0) FROM events", args![])?
        .int(0)
}

fn events_after(tx: &mut dyn Tx, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
    tx.query(
        "SELECT id, data FROM events WHERE id > $1 ORDER BY id LIMIT $2",
        args![after, i64::try_from(limit).unwrap_or(i64::MAX)],
    )?
    .iter()
    .map(|r| {
        Ok(Event {
            id: r.int(0)?,
            data: r.text(1)?,
        })
    })
    .collect()
}

/// Logs `change`, and drops the events past the log's count or older than `keep_for` seconds.
fn log_event(tx: &mut dyn Tx, keep_for: i64, change: &Change) -> Result<Event, StoreError> {
    let data = to_json(change);
    let (chat_id, message_id) = match change {
        Change::Message { chat_id, item } => (Some(chat_id.as_str()), Some(item.id.as_str())),
        // A chat's item shows its newest message's preview: the event is that message's too,
        // so that it goes with the message's other events once it is deleted or blocked.
        Change::Chat { item, .. } => (
            Some(item.id.as_str()),
            item.last_message.as_ref().map(|m| m.id.as_str()),
        ),
        Change::Write { chat_id, item } => (Some(chat_id.as_str()), item.message_id.as_deref()),
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let id = tx
        .one(
            "INSERT INTO events (data, chat_id, message_id, at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
            args![&data, chat_id, message_id, now],
        )?
        .int(0)?;
    if id % 1000 == 0 {
        tx.execute("DELETE FROM events WHERE id <= $1", args![id - EVENTS_KEPT])?;
    }
    tx.execute(
        "DELETE FROM events WHERE at < $1",
        args![now.saturating_sub(keep_for)],
    )?;
    Ok(Event { id, data })
}

/// Drops the events that carried a message's earlier versions: a replay never shows what it
/// said once it is deleted or blocked. Whether there were any.
fn forget_events(tx: &mut dyn Tx, chat_id: &str, id: &str) -> Result<bool, StoreError> {
    let dropped = tx.execute(
        "DELETE FROM events WHERE chat_id = $1 AND message_id = $2",
        args![chat_id, id],
    )?;
    Ok(dropped > 0)
}

/// Writes the write-ahead log into the database and empties it: the old versions of the pages
/// a purge overwrote are no longer on disk.
fn empty_wal(conn: &Connection) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Whether the page is shown nothing of what a message said: deleted, or blocked for the viewer.
fn is_hidden(item: &MessageItem) -> bool {
    matches!(item.state, MessageState::Deleted | MessageState::Blocked)
}

/// A message's JSON with only what orders and places it ([`KEPT_WHEN_HIDDEN`]; of its body,
/// the content type; of a policy's verdict, the action). The same JSON gives the same text.
fn redact(json: &str) -> String {
    let Ok(Value::Object(message)) = serde_json::from_str::<Value>(json) else {
        return "{}".to_owned();
    };
    let mut kept = Map::new();
    for (name, value) in message {
        if KEPT_WHEN_HIDDEN.contains(&name.as_str()) {
            kept.insert(name, value);
        } else if name == "body" {
            let mut body = Map::new();
            if let Some(t) = value.get("contentType") {
                body.insert("contentType".into(), t.clone());
            }
            kept.insert(name, Value::Object(body));
        } else if name == "policyViolation" {
            let mut verdict = Map::new();
            if let Some(a) = value.get("dlpAction") {
                verdict.insert("dlpAction".into(), a.clone());
            }
            kept.insert(name, Value::Object(verdict));
        }
    }
    Value::Object(kept).to_string()
}

fn has_table(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn stored_version(
    tx: &mut dyn Tx,
    chat_id: &str,
    id: &str,
) -> Result<Option<MessageVersion>, StoreError> {
    let Some(row) = tx.row(
        "SELECT v_modified, v_deleted, v_etag, v_content FROM messages \
         WHERE chat_id = $1 AND id = $2",
        args![chat_id, id],
    )?
    else {
        return Ok(None);
    };
    Ok(Some(MessageVersion::new(
        row.opt_text(0)?.as_deref().and_then(parse_time),
        row.flag(1)?,
        row.opt_text(2)?,
        row.text(3)?,
    )))
}
