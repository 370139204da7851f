//! What the page's views, its history pages and the reads by evidence ask of the cache, and the
//! app's own records in it (watermarks, subscriptions, settings).

use super::*;

impl Store {
    /// Whether the cache knows chat `id`.
    pub fn has_chat(&self, id: &str) -> Result<bool, StoreError> {
        has_chat(&self.lock(), id)
    }

    /// The chat list, as `GET /api/chats` answers it, with the last event id it reflects.
    pub fn chats(&self) -> Result<(Vec<ChatItem>, i64), StoreError> {
        let (items, last) = self.chats_snapshot_parts()?;
        Ok((parse_items(&items)?, last))
    }

    /// The chat list, as `GET /api/chats` sends it.
    pub fn chats_snapshot(&self) -> Result<Snapshot, StoreError> {
        let (items, last_event) = self.chats_snapshot_parts()?;
        Ok(Snapshot {
            json: json_array(&items),
            last_event,
        })
    }

    pub(super) fn chats_snapshot_parts(&self) -> Result<(Vec<String>, i64), StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT item FROM chats ORDER BY id")?;
        let items = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
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
    pub fn messages(&self, chat_id: &str) -> Result<(Vec<MessageItem>, i64), StoreError> {
        let conn = self.lock();
        let (items, last) = message_items(&conn, chat_id)?;
        Ok((parse_items(&items)?, last))
    }

    /// A chat's messages, as `GET /api/chats/{id}/messages` sends them; `None` when the cache
    /// does not know the chat.
    pub fn messages_snapshot(&self, chat_id: &str) -> Result<Option<Snapshot>, StoreError> {
        let conn = self.lock();
        if !has_chat(&conn, chat_id)? {
            return Ok(None);
        }
        let (items, last_event) = message_items(&conn, chat_id)?;
        Ok(Some(Snapshot {
            json: json_array(&items),
            last_event,
        }))
    }

    /// One message's item, as the chat's messages list it.
    pub fn message(&self, chat_id: &str, id: &str) -> Result<Option<MessageItem>, StoreError> {
        let conn = self.lock();
        let item: Option<String> = conn
            .query_row(
                "SELECT item FROM messages WHERE chat_id = ?1 AND id = ?2",
                params![chat_id, id],
                |r| r.get(0),
            )
            .optional()?;
        item.as_deref().map(parse_item).transpose()
    }

    /// A page of a chat's messages, oldest first, as the chat's messages list them: the newest
    /// `limit`, or the `limit` just before message `before`; `None` when the cache does not
    /// know the chat.
    pub fn message_page(
        &self,
        chat_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Option<MessagePage>, StoreError> {
        let conn = self.lock();
        if !has_chat(&conn, chat_id)? {
            return Ok(None);
        }
        let mut stmt = conn.prepare_cached(
            "SELECT item FROM messages WHERE chat_id = ?1 AND (?2 IS NULL OR \
             (created_key, id_key) < (SELECT created_key, id_key FROM messages \
              WHERE chat_id = ?1 AND id = ?2)) \
             ORDER BY created_key DESC, id_key DESC LIMIT ?3",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut items: Vec<String> = stmt
            .query_map(params![chat_id, before, limit.saturating_add(1)], |r| {
                r.get(0)
            })?
            .collect::<Result<_, _>>()?;
        let older = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        items.reverse();
        Ok(Some(MessagePage {
            json: json_array(&items),
            count: items.len(),
            oldest: items.first().map(|i| parse_item(i)).transpose()?,
            older,
            last_event: last_event_id(&conn)?,
        }))
    }

    /// Whether the cache holds message `id` of `chat_id` as `deleted` or not: what a chat
    /// list's `lastMessagePreview` is compared with (a chat whose newest message the cache does
    /// not hold as Graph shows it is read; the others are not).
    pub fn holds_message(
        &self,
        chat_id: &str,
        id: &str,
        deleted: bool,
    ) -> Result<bool, StoreError> {
        let conn = self.lock();
        let stored: Option<bool> = conn
            .query_row(
                "SELECT v_deleted FROM messages WHERE chat_id = ?1 AND id = ?2",
                params![chat_id, id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(stored == Some(deleted))
    }

    /// The ids of the messages of `chat_id` the cache holds created at `since` or later.
    pub fn message_ids_since(
        &self,
        chat_id: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT id FROM messages WHERE chat_id = ?1 AND created_key >= ?2")?;
        let ids = stmt
            .query_map(params![chat_id, time_key(since)], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// A chat's viewpoint as the cache holds it (`isHidden`, `lastMessageReadDateTime`);
    /// `None` when the cache does not know the chat.
    pub(super) fn viewpoint(conn: &Connection, chat_id: &str) -> Result<Option<Value>, StoreError> {
        let json: Option<String> = conn
            .query_row("SELECT json FROM chats WHERE id = ?1", [chat_id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(json.map(|json| {
            serde_json::from_str::<Value>(&json)
                .ok()
                .and_then(|mut chat| chat.get_mut("viewpoint").map(Value::take))
                .unwrap_or(Value::Null)
        }))
    }

    /// Applies a viewpoint a notification carried (`{"isHidden", "lastMessageReadDateTime"}`)
    /// when it can only be newer than the cache's: the chat is known, hidden or not as before,
    /// read up to the same time or later. Returns `false` (nothing applied) otherwise: a
    /// notification that may be older than what the cache holds (they come in any order), or
    /// a chat marked unread, hidden or shown, is settled by reading the chat.
    pub fn apply_viewpoint_forward(
        &self,
        chat_id: &str,
        incoming: &Value,
    ) -> Result<bool, StoreError> {
        let Some(cached) = Self::viewpoint(&self.lock(), chat_id)? else {
            return Ok(false);
        };
        let hidden = |v: &Value| v.get("isHidden").and_then(Value::as_bool).unwrap_or(false);
        let read_at = |v: &Value| {
            v.get("lastMessageReadDateTime")
                .and_then(Value::as_str)
                .and_then(parse_time)
        };
        let forward = match (read_at(&cached), read_at(incoming)) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(before), Some(after)) => after >= before,
        };
        if hidden(&cached) != hidden(incoming) || !forward {
            return Ok(false);
        }
        let chat = serde_json::json!({ "id": chat_id, "viewpoint": incoming });
        self.apply_chat(&chat.to_string())?;
        Ok(true)
    }

    /// The viewpoint after `markChatReadForUser` succeeded, without reading the chat back: read
    /// up to its newest message the cache holds (not the app's clock, which may be ahead of
    /// Graph's: the notification of Graph's own time then moves it forward, never back).
    /// Returns whether the cache knows the chat.
    pub fn mark_read_locally(&self, chat_id: &str) -> Result<bool, StoreError> {
        let (viewpoint, newest) = {
            let conn = self.lock();
            let Some(viewpoint) = Self::viewpoint(&conn, chat_id)? else {
                return Ok(false);
            };
            let newest: Option<String> = conn
                .query_row(
                    "SELECT json FROM messages WHERE chat_id = ?1 \
                     ORDER BY created_key DESC LIMIT 1",
                    [chat_id],
                    |r| r.get(0),
                )
                .optional()?;
            let newest = newest.and_then(|json| {
                serde_json::from_str::<Value>(&json)
                    .ok()?
                    .get("createdDateTime")?
                    .as_str()
                    .map(str::to_owned)
            });
            (viewpoint, newest)
        };
        let Some(newest) = newest else {
            return Ok(true);
        };
        let before = viewpoint
            .get("lastMessageReadDateTime")
            .and_then(Value::as_str)
            .and_then(parse_time);
        if before.is_some_and(|b| parse_time(&newest).is_some_and(|n| n <= b)) {
            return Ok(true);
        }
        let mut viewpoint = match viewpoint {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        viewpoint.insert("lastMessageReadDateTime".into(), Value::String(newest));
        let chat = serde_json::json!({ "id": chat_id, "viewpoint": viewpoint });
        self.apply_chat(&chat.to_string())?;
        Ok(true)
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

    /// The id of the app's subscription of `kind`, if it has one.
    pub fn subscription_id(&self, kind: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock();
        Ok(conn
            .query_row(
                "SELECT id FROM subscriptions WHERE kind = ?1",
                [kind],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records the app's subscription of `kind`: its id, and its JSON as Graph returned it.
    pub fn set_subscription(&self, kind: &str, id: &str, json: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO subscriptions (kind, id, json) VALUES (?1, ?2, ?3) \
             ON CONFLICT(kind) DO UPDATE SET id = excluded.id, json = excluded.json",
            params![kind, id, json],
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
}
