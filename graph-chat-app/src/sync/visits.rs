//! Reads a person's visit brings (a page load, a chat opened).

use super::*;

/// A chat of a list read with `$expand=lastMessagePreview`: its id and its newest message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Previewed {
    id: Option<String>,
    last_message_preview: Option<Preview>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Preview {
    id: Option<String>,
    #[serde(default)]
    is_deleted: bool,
}

impl GraphSync {
    /// A signed-in person loaded the page (`GET /`): at most once per [`PAGE_LOAD_EVERY`], one
    /// list of their chats with `$expand=lastMessagePreview`, then a read of only the chats
    /// whose newest message the cache does not hold as Graph shows it. A chat that differs is
    /// evidence notifications were lost: the subscriptions are checked too. Returns whether it
    /// read (`false`: a page load less than a minute ago did).
    pub async fn page_loaded(&self) -> Result<bool, SyncError> {
        {
            let mut last = self.page_loaded.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < PAGE_LOAD_EVERY) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        let request = ChatsRequest::user(self.user_id.clone())
            .expand_last_message_preview()
            .top(50)
            .build()?;
        let listed = self
            .read_pages("GET chats", request, MAX_PAGES, |store, chat| {
                let previewed: Previewed = serde_json::from_str(chat.get()).ok()?;
                let id = previewed.id?;
                // The preview holds what the newest message says: never kept (a deleted or
                // blocked message's words must not outlive it here).
                let mut kept: serde_json::Map<String, Value> =
                    serde_json::from_str(chat.get()).ok()?;
                kept.remove("lastMessagePreview");
                if let Err(e) = store.apply_chat(&Value::Object(kept).to_string()) {
                    tracing::warn!(error = %e, "a chat Graph listed was not kept");
                }
                let behind = match previewed.last_message_preview {
                    Some(Preview {
                        id: Some(newest),
                        is_deleted,
                    }) => !store
                        .holds_message(&id, &newest, is_deleted)
                        .unwrap_or(false),
                    _ => false,
                };
                Some((id, behind))
            })
            .await?;
        let listed: HashMap<String, bool> = listed.into_iter().flatten().collect();
        for id in self.store.call(|store| store.chat_ids()).await? {
            if !listed.contains_key(&id) {
                if let Err(e) = self.read_chat(&id).await {
                    tracing::warn!(chat = %id, error = %e, "cannot read a chat the list left out");
                }
            }
        }
        let mut behind: Vec<&String> = listed
            .iter()
            .filter(|(_, behind)| **behind)
            .map(|(id, _)| id)
            .collect();
        behind.sort();
        if behind.is_empty() {
            return Ok(true);
        }
        tracing::info!(
            chats = behind.len(),
            "a page load found chats the cache is behind on: reading them"
        );
        if let Err(e) = self.ensure_subscriptions().await {
            tracing::warn!(error = %e, "cannot check the subscriptions");
        }
        let mut first_error = None;
        for chat_id in behind {
            if let Err(e) = self.read_messages(chat_id).await {
                tracing::warn!(chat = %chat_id, error = %e, "reading a chat's messages failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(true), Err)
    }

    /// A person opened chat `chat_id` (`GET /api/chats/{id}/messages`): its messages read from
    /// its watermark, at most once per [`OPEN_CHAT_EVERY`]. Returns whether it read.
    pub async fn chat_opened(&self, chat_id: &str) -> Result<bool, SyncError> {
        {
            let mut opened = self.opened.lock().unwrap_or_else(|e| e.into_inner());
            if opened
                .get(chat_id)
                .is_some_and(|at| at.elapsed() < OPEN_CHAT_EVERY)
            {
                return Ok(false);
            }
            opened.retain(|_, at| at.elapsed() < OPEN_CHAT_EVERY);
            opened.insert(chat_id.to_owned(), Instant::now());
        }
        self.read_messages(chat_id).await?;
        Ok(true)
    }
}
