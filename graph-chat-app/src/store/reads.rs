//! What the page's views, its history pages and the reads by evidence ask of the cache, and the
//! app's own records in it (watermarks, subscriptions, settings).

use super::*;

impl Store {
    /// Whether the cache knows chat `id`.
    pub fn has_chat(&self, id: &str) -> Result<bool, StoreError> {
        self.read(|tx| has_chat(tx, id))
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
        self.read(|tx| {
            let items = tx
                .query("SELECT item FROM chats ORDER BY id", args![])?
                .iter()
                .map(|r| r.text(0))
                .collect::<Result<_, _>>()?;
            Ok((items, last_event_id(tx)?))
        })
    }

    /// The ids of the chats the cache knows.
    pub fn chat_ids(&self) -> Result<Vec<String>, StoreError> {
        self.read(|tx| {
            tx.query("SELECT id FROM chats ORDER BY id", args![])?
                .iter()
                .map(|r| r.text(0))
                .collect()
        })
    }

    /// A chat's messages, as `GET /api/chats/{id}/messages` answers it (`createdDateTime`
    /// order, ties by id as a number), with the last event id it reflects.
    pub fn messages(&self, chat_id: &str) -> Result<(Vec<MessageItem>, i64), StoreError> {
        let (items, last) = self.read(|tx| message_items(tx, chat_id))?;
        Ok((parse_items(&items)?, last))
    }

    /// A chat's messages, as `GET /api/chats/{id}/messages` sends them; `None` when the cache
    /// does not know the chat.
    pub fn messages_snapshot(&self, chat_id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.read(|tx| {
            if !has_chat(tx, chat_id)? {
                return Ok(None);
            }
            let (items, last_event) = message_items(tx, chat_id)?;
            Ok(Some(Snapshot {
                json: json_array(&items),
                last_event,
            }))
        })
    }

    /// One message's item, as the chat's messages list it.
    pub fn message(&self, chat_id: &str, id: &str) -> Result<Option<MessageItem>, StoreError> {
        let item = self.read(|tx| {
            tx.row(
                "SELECT item FROM messages WHERE chat_id = $1 AND id = $2",
                args![chat_id, id],
            )?
            .map(|r| r.text(0))
            .transpose()
        })?;
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let read = self.read(|tx| {
            if !has_chat(tx, chat_id)? {
                return Ok(None);
            }
            let items: Vec<String> = tx
                .query(
                    "SELECT item FROM messages WHERE chat_id = $1 AND ($2 IS NULL OR \
                     (created_key, id_key) < (SELECT created_key, id_key FROM messages \
                      WHERE chat_id = $1 AND id = $2)) \
                     ORDER BY created_key DESC, id_key DESC LIMIT $3",
                    args![chat_id, before, limit.saturating_add(1)],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect::<Result<_, _>>()?;
            Ok(Some((items, last_event_id(tx)?)))
        })?;
        let Some((mut items, last_event)) = read else {
            return Ok(None);
        };
        let older = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        items.reverse();
        Ok(Some(MessagePage {
            json: json_array(&items),
            count: items.len(),
            oldest: items.first().map(|i| parse_item(i)).transpose()?,
            older,
            last_event,
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
        let stored = self.read(|tx| {
            tx.row(
                "SELECT v_deleted FROM messages WHERE chat_id = $1 AND id = $2",
                args![chat_id, id],
            )?
            .map(|r| r.flag(0))
            .transpose()
        })?;
        Ok(stored == Some(deleted))
    }

    /// The ids of the messages of `chat_id` the cache holds created at `since` or later.
    pub fn message_ids_since(
        &self,
        chat_id: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        self.read(|tx| {
            tx.query(
                "SELECT id FROM messages WHERE chat_id = $1 AND created_key >= $2",
                args![chat_id, time_key(since)],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
        })
    }

    /// A chat's viewpoint as the cache holds it (`isHidden`, `lastMessageReadDateTime`);
    /// `None` when the cache does not know the chat.
    pub(super) fn viewpoint(tx: &mut dyn Tx, chat_id: &str) -> Result<Option<Value>, StoreError> {
        let json = tx
            .row("SELECT json FROM chats WHERE id = $1", args![chat_id])?
            .map(|r| r.text(0))
            .transpose()?;
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
        let Some(cached) = self.read(|tx| Self::viewpoint(tx, chat_id))? else {
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
        let read = self.read(|tx| {
            let Some(viewpoint) = Self::viewpoint(tx, chat_id)? else {
                return Ok(None);
            };
            let newest = tx
                .row(
                    "SELECT json FROM messages WHERE chat_id = $1 \
                     ORDER BY created_key DESC LIMIT 1",
                    args![chat_id],
                )?
                .map(|r| r.text(0))
                .transpose()?;
            let newest = newest.and_then(|json| {
                serde_json::from_str::<Value>(&json)
                    .ok()?
                    .get("createdDateTime")?
                    .as_str()
                    .map(str::to_owned)
            });
            Ok(Some((viewpoint, newest)))
        })?;
        let Some((viewpoint, newest)) = read else {
            return Ok(false);
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
        let at = self.read(|tx| {
            tx.row(
                "SELECT at FROM watermarks WHERE chat_id = $1",
                args![chat_id],
            )?
            .map(|r| r.text(0))
            .transpose()
        })?;
        Ok(at.as_deref().and_then(parse_time))
    }

    /// Moves a chat's watermark forward (never back).
    pub fn advance_watermark(&self, chat_id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO watermarks (chat_id, at) VALUES ($1, $2) \
                 ON CONFLICT(chat_id) DO UPDATE SET at = excluded.at \
                 WHERE excluded.at > watermarks.at",
                args![chat_id, time_key(at)],
            )?;
            Ok(((), Vec::new()))
        })
    }

    /// The id of the app's subscription of `kind`, if it has one.
    pub fn subscription_id(&self, kind: &str) -> Result<Option<String>, StoreError> {
        self.read(|tx| {
            tx.row("SELECT id FROM subscriptions WHERE kind = $1", args![kind])?
                .map(|r| r.text(0))
                .transpose()
        })
    }

    /// Records the app's subscription of `kind`: its id, and its JSON as Graph returned it.
    pub fn set_subscription(&self, kind: &str, id: &str, json: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO subscriptions (kind, id, json) VALUES ($1, $2, $3) \
                 ON CONFLICT(kind) DO UPDATE SET id = excluded.id, json = excluded.json",
                args![kind, id, json],
            )?;
            Ok(((), Vec::new()))
        })
    }

    /// A setting the app keeps (the demo chat's id, the client state).
    pub fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read(|tx| {
            tx.row("SELECT value FROM settings WHERE name = $1", args![name])?
                .map(|r| r.text(0))
                .transpose()
        })
    }

    /// Keeps a setting.
    pub fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2) \
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                args![name, value],
            )?;
            Ok(((), Vec::new()))
        })
    }
}
