//! Reads a person's visit brings (a page load, a chat opened), and the writes a person asked
//! for, sent once and retried while Graph throttles them.

use super::*;

/// How one try of a write went.
enum Try {
    /// Graph took it; for a send, the new message's id.
    Done(Option<String>),
    /// To be tried again, after this `Retry-After` when Graph gave one.
    Again(Option<String>),
}

/// A message a send may have made, as a read lists it.
#[derive(Deserialize)]
struct Sent<'a> {
    #[serde(borrow)]
    id: Option<&'a str>,
    #[serde(borrow)]
    from: Option<SentFrom<'a>>,
    #[serde(borrow)]
    body: Option<SentBody<'a>>,
}

#[derive(Deserialize)]
struct SentFrom<'a> {
    #[serde(borrow)]
    user: Option<SentUser<'a>>,
}

#[derive(Deserialize)]
struct SentUser<'a> {
    #[serde(borrow)]
    id: Option<&'a str>,
}

#[derive(Deserialize)]
struct SentBody<'a> {
    #[serde(borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

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

    /// A write a person asked for (`request`, which does `write`): tried once at once; taken,
    /// its result goes into the cache ([`Written::Done`]). Throttled (429, 503) or unanswered,
    /// it is retried in the background, each time after `Retry-After` or a back-off with
    /// jitter, for up to [`WRITE_PATIENCE`] ([`Written::Waiting`]). A send whose answer was
    /// lost is never sent again blindly: the chat's newest messages are read first, and one
    /// from the person with the same content made since is the send's. Refused for another
    /// reason: [`SyncError::Status`].
    pub async fn write(
        self: &Arc<Self>,
        write: Write,
        request: HttpRequest,
    ) -> Result<Written, SyncError> {
        let started = OffsetDateTime::now_utc();
        let known = self.known_before(&write, started).await?;
        match self.attempt(&write, &request, &known, started).await? {
            Try::Done(done) => Ok(Written::Done(done)),
            Try::Again(retry_after) => {
                tracing::info!(chat = %write.chat_id(), what = write.what(), "Graph throttled a person's write: it waits and is retried");
                let this = Arc::clone(self);
                tokio::spawn(async move {
                    this.retry_write(write, request, known, started, retry_after)
                        .await;
                });
                Ok(Written::Waiting)
            }
        }
    }

    /// The ids the cache held, before a send, of the chat's messages made since a little before
    /// it: what a check after a lost answer must not take for the send's message.
    async fn known_before(
        &self,
        write: &Write,
        started: OffsetDateTime,
    ) -> Result<Vec<String>, SyncError> {
        let Write::Send { chat_id, .. } = write else {
            return Ok(Vec::new());
        };
        let chat = chat_id.clone();
        let since = started - SEND_CHECK_SLACK;
        Ok(self
            .store
            .call(move |store| store.message_ids_since(&chat, since))
            .await?)
    }

    /// One try of a write: done (the result applied), or to be tried again (after Graph's
    /// `Retry-After`, when it gave one).
    async fn attempt(
        &self,
        write: &Write,
        request: &HttpRequest,
        known: &[String],
        started: OffsetDateTime,
    ) -> Result<Try, SyncError> {
        match Self::send_with(self.once.clone(), request.clone()).await {
            Ok(answer) if answer.is_success() => {
                self.written(write, &answer.body).await.map(Try::Done)
            }
            Ok(answer) if matches!(answer.status, 429 | 503) => Ok(Try::Again(answer.retry_after)),
            Ok(answer) => Err(SyncError::Status {
                what: write.what().to_owned(),
                status: answer.status,
            }),
            Err(SyncError::Client(ClientError::OutcomeUnknown { .. })) => {
                match write {
                    Write::Send { chat_id, content } => {
                        match self.find_sent(chat_id, content, known, started).await {
                            Ok(Some(body)) => self.written(write, &body).await.map(Try::Done),
                            Ok(None) => Ok(Try::Again(None)),
                            // Not known either way: tried again after the check can be made.
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot check whether a send whose answer was lost was carried out");
                                Err(e)
                            }
                        }
                    }
                    // Marking read twice is marking read once.
                    Write::MarkRead { .. } => Ok(Try::Again(None)),
                }
            }
            Err(SyncError::Client(ClientError::Token(e))) => Err(ClientError::Token(e).into()),
            Err(SyncError::Client(_)) => Ok(Try::Again(None)),
            Err(e) => Err(e),
        }
    }

    /// The write's result into the cache: the sent message (its id), or the chat read.
    async fn written(&self, write: &Write, body: &[u8]) -> Result<Option<String>, SyncError> {
        let body = body.to_vec();
        let write = write.clone();
        self.store
            .call(move |store| match write {
                Write::Send { chat_id, .. } => {
                    let message: ChatMessage<'_> =
                        serde_json::from_slice(&body).map_err(|_| SyncError::Answer {
                            what: "the send".into(),
                            reason: "not a chatMessage".into(),
                        })?;
                    let id = message.id.as_deref().map(str::to_owned).ok_or_else(|| {
                        SyncError::Answer {
                            what: "the send".into(),
                            reason: "a message without an id".into(),
                        }
                    })?;
                    store.apply(&chat_id, &message, Origin::Read)?;
                    Ok(Some(id))
                }
                Write::MarkRead { chat_id } => {
                    store.mark_read_locally(&chat_id)?;
                    Ok(None)
                }
            })
            .await
    }

    /// After a send's answer was lost: the chat's newest messages, and among them one from the
    /// person with the same content, made since a little before the send and not in `known`.
    /// Its JSON when there is one.
    async fn find_sent(
        &self,
        chat_id: &str,
        content: &str,
        known: &[String],
        started: OffsetDateTime,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        let since = to_system_time(started - SEND_CHECK_SLACK);
        let request = MessagesRequest::user_chat(self.user_id.clone(), chat_id.to_owned())
            .changed_since(since)
            .build()?;
        let answer = self.read(&request).await?;
        expect_success("GET messages", &answer)?;
        let page: Page<'_> =
            serde_json::from_slice(&answer.body).map_err(|_| SyncError::Answer {
                what: "GET messages".into(),
                reason: "not a page of items".into(),
            })?;
        for item in page.value {
            let Ok(sent) = serde_json::from_str::<Sent<'_>>(item.get()) else {
                continue;
            };
            let mine = sent
                .from
                .and_then(|f| f.user)
                .and_then(|u| u.id)
                .is_some_and(|id| id == self.user_id);
            let same = sent
                .body
                .and_then(|b| b.content)
                .is_some_and(|c| c == content);
            let new = sent.id.is_some_and(|id| !known.iter().any(|k| k == id));
            if mine && same && new {
                return Ok(Some(item.get().as_bytes().to_vec()));
            }
        }
        Ok(None)
    }

    /// Retries a throttled write in the background until Graph takes or refuses it, or
    /// [`WRITE_PATIENCE`] has passed.
    async fn retry_write(
        &self,
        write: Write,
        request: HttpRequest,
        known: Vec<String>,
        started: OffsetDateTime,
        mut retry_after: Option<String>,
    ) {
        let began = Instant::now();
        let mut round = 0;
        loop {
            round += 1;
            tokio::time::sleep(throttle_wait(retry_after.as_deref(), round)).await;
            match self.attempt(&write, &request, &known, started).await {
                Ok(Try::Done(_)) => {
                    tracing::info!(chat = %write.chat_id(), what = write.what(), round, "a person's throttled write went through");
                    return;
                }
                Ok(Try::Again(after)) if began.elapsed() < WRITE_PATIENCE => retry_after = after,
                Ok(Try::Again(_)) => {
                    tracing::warn!(chat = %write.chat_id(), what = write.what(), "a person's write is still throttled after an hour: given up");
                    return;
                }
                Err(e) => {
                    tracing::warn!(chat = %write.chat_id(), what = write.what(), error = %e, "a person's write failed");
                    return;
                }
            }
        }
    }
}
