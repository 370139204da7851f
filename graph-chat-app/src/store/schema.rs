//! The cache's tables, written once for both engines (`ddl`), and what older caches need.

/// The tables, for both engines ([`ddl`](super::db::ddl)): a table is added here once.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS chats (
    id {key} PRIMARY KEY,
    json TEXT NOT NULL,
    item TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    chat_id TEXT NOT NULL,
    id TEXT NOT NULL,
    created_key {key} NOT NULL,
    id_key {key} NOT NULL,
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
CREATE TABLE IF NOT EXISTS watermarks (chat_id TEXT PRIMARY KEY, at {key} NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (kind TEXT PRIMARY KEY, id TEXT NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id {serial},
    data TEXT NOT NULL,
    chat_id TEXT,
    message_id TEXT,
    at {int}
);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- The writes a person asked for that wait for Graph (writes.rs).
CREATE TABLE IF NOT EXISTS writes (
    id {serial},
    kind TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    message_id TEXT,
    content TEXT,
    reaction TEXT,
    body {blob},
    known TEXT NOT NULL,
    started_ms {int} NOT NULL,
    unsure {int} NOT NULL,
    due_ms {int} NOT NULL,
    rounds {int} NOT NULL
);
CREATE INDEX IF NOT EXISTS writes_due ON writes (due_ms);
";

/// What a cache written before the log knew its events' messages and times needs: the columns,
/// filled from the events themselves (their time: now).
pub(super) const EVENTS_MIGRATION: &str = "
ALTER TABLE events ADD COLUMN chat_id TEXT;
ALTER TABLE events ADD COLUMN message_id TEXT;
ALTER TABLE events ADD COLUMN at INTEGER;
UPDATE events SET chat_id = json_extract(data, '$.chatId'), message_id = json_extract(data, '$.id')
    WHERE json_extract(data, '$.kind') = 'message';
UPDATE events SET at = CAST(strftime('%s', 'now') AS INTEGER);
";

pub(super) const EVENTS_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS events_message ON events (chat_id, message_id);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
";
