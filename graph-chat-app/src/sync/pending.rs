//! The writes a person asked for (send, mark read, edit, delete and undo, react and unreact):
//! tried once at once, kept in the person's cache before the app answers 202 while Graph
//! throttles them, and retried by one background task per person ([`GraphSync::run_writes`])
//! until Graph takes or refuses them, after a restart too. Which writes may be sent twice and
//! which may not: `write.rs`.

use super::*;
use crate::store::{PendingWrite, TRYING};
use crate::view::{Change, WriteItem};

/// How one try of a write went.
enum Try {
    /// Graph took it; for a send, the new message's id.
    Done(Option<String>),
    /// To be tried again, after this `Retry-After` when Graph gave one; `unsure` when the try
    /// may have been carried out without the app learning of it (a send, checked for first).
    Again {
        retry_after: Option<String>,
        unsure: bool,
    },
}

impl Try {
    fn again() -> Self {
        Self::Again {
            retry_after: None,
            unsure: false,
        }
    }
}

fn epoch_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_epoch_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Why a write failed, as the page is told: Graph's status, or what else stopped it (never
/// what it said).
fn failure_reason(write: &Write, e: &SyncError) -> String {
    match e {
        SyncError::Status { status, .. } => format!("Graph answered {status} to {}", write.what()),
        SyncError::Client(ClientError::Token(_)) => "the person's sign-in has ended".into(),
        SyncError::Request(_) => "Graph would refuse this request".into(),
        SyncError::Store(_) => "the cache is unavailable".into(),
        _ => "Graph did not answer as expected".into(),
    }
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

impl GraphSync {
    /// A write a person asked for: kept in the cache, then tried once at once; taken, its
    /// result goes into the cache ([`Written::Done`]) and it is forgotten. Throttled (429,
    /// 503) or unanswered, it stays kept and is retried by [`GraphSync::run_writes`], each time
    /// after `Retry-After` or a back-off with jitter, for up to [`WRITE_PATIENCE`]
    /// ([`Written::Waiting`]); a `kill -9` meanwhile loses nothing (the next start resumes it).
    /// A send whose answer was lost is never sent again blindly: the chat's newest messages are
    /// read first, and one from the person with the same content made since is the send's.
    /// Refused for another reason: [`SyncError::Status`]. Writes to one chat go at most one a
    /// second ([`CHAT_GAP`]).
    pub async fn write(self: &Arc<Self>, write: Write) -> Result<Written, SyncError> {
        let request = write.request(&self.user_id, &self.tenant_id)?;
        let started = OffsetDateTime::now_utc();
        let known = self.known_before(&write, started).await?;
        let row = write.pending(known.clone(), epoch_ms(started));
        // Kept before it is sent: whatever happens to the process from here, it is resumed.
        let id = self.store.call(move |store| store.add_write(&row)).await?;
        match self.attempt(&write, &request, &known, started).await {
            Ok(Try::Done(done)) => {
                self.store
                    .call(move |store| store.remove_write(id, None))
                    .await?;
                Ok(Written::Done(done))
            }
            Ok(Try::Again {
                retry_after,
                unsure,
            }) => {
                tracing::info!(chat = %write.chat_id(), what = write.what(), "Graph throttled a person's write: it is kept, and retried");
                let due = epoch_ms(OffsetDateTime::now_utc())
                    + duration_ms(throttle_wait(retry_after.as_deref(), 1));
                let change = write_change(&write, id, "waiting", None);
                self.store
                    .call(move |store| {
                        store.reschedule_write(id, due, unsure, 1)?;
                        store.log_write(&change)
                    })
                    .await?;
                self.writes_wake.notify_one();
                Ok(Written::Waiting(id))
            }
            Err(e) => {
                self.store
                    .call(move |store| store.remove_write(id, None))
                    .await?;
                Err(e)
            }
        }
    }

    /// Retries the person's kept writes, the one due first first, until the person's Graph
    /// side stops: what [`GraphSync::write`] left waiting, and what a process that ended left
    /// in the cache (a send it may have made is looked for before it is sent again).
    pub async fn run_writes(self: Arc<Self>) {
        loop {
            let next = self.store.call(|store| store.next_write()).await;
            let wait = match next {
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the writes that wait");
                    Some(Duration::from_secs(5))
                }
                // Nothing waits, or only writes being tried right now.
                Ok(None) => None,
                Ok(Some(row)) if row.due_ms == TRYING => None,
                Ok(Some(row)) => {
                    let now = epoch_ms(OffsetDateTime::now_utc());
                    if row.due_ms > now {
                        Some(Duration::from_millis(
                            u64::try_from(row.due_ms - now).unwrap_or(0),
                        ))
                    } else {
                        self.retry_pending(row).await;
                        continue;
                    }
                }
            };
            match wait {
                None => self.writes_wake.notified().await,
                Some(wait) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.writes_wake.notified() => {}
                    }
                }
            }
        }
    }

    /// One more try of a kept write; it is forgotten once done, refused or given up.
    async fn retry_pending(&self, row: PendingWrite) {
        let id = row.id;
        let Some(write) = Write::from_pending(&row) else {
            tracing::warn!(write = id, kind = %row.kind, "a kept write cannot be made again: dropped");
            let _ = self
                .store
                .call(move |store| store.remove_write(id, None))
                .await;
            return;
        };
        let started = from_epoch_ms(row.started_ms);
        if OffsetDateTime::now_utc() - started > WRITE_PATIENCE {
            tracing::warn!(chat = %write.chat_id(), what = write.what(), "a person's write is still throttled after an hour: given up");
            let change = write_change(
                &write,
                id,
                "failed",
                Some("Graph kept throttling it for an hour".into()),
            );
            let _ = self
                .store
                .call(move |store| store.remove_write(id, Some(&change)))
                .await;
            return;
        }
        // A send is unsure from here until Graph answers: a kill during the try leaves it to be
        // looked for, not sent again.
        let unsure = row.unsure || matches!(write, Write::Send { .. });
        let due = row.due_ms;
        match self
            .store
            .call(move |store| store.claim_write(id, due, unsure))
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take a kept write");
                return;
            }
        }
        let result = match write.request(&self.user_id, &self.tenant_id) {
            Err(e) => Err(SyncError::from(e)),
            Ok(request) => {
                let checked = if row.unsure {
                    self.check_sent(&write, &row.known, started).await
                } else {
                    Ok(Try::again())
                };
                match checked {
                    Ok(Try::Again { unsure: false, .. }) => {
                        self.attempt(&write, &request, &row.known, started).await
                    }
                    other => other,
                }
            }
        };
        let rounds = row.rounds.saturating_add(1);
        let outcome = match result {
            Ok(Try::Done(_)) => {
                tracing::info!(chat = %write.chat_id(), what = write.what(), rounds, "a person's kept write went through");
                let change = write_change(&write, id, "done", None);
                self.store
                    .call(move |store| store.remove_write(id, Some(&change)))
                    .await
            }
            Ok(Try::Again {
                retry_after,
                unsure,
            }) => {
                let due = epoch_ms(OffsetDateTime::now_utc())
                    + duration_ms(throttle_wait(retry_after.as_deref(), rounds));
                self.store
                    .call(move |store| store.reschedule_write(id, due, unsure, rounds).map(|_| ()))
                    .await
            }
            Err(e) => {
                tracing::warn!(chat = %write.chat_id(), what = write.what(), error = %e, "a person's write failed");
                let change = write_change(&write, id, "failed", Some(failure_reason(&write, &e)));
                self.store
                    .call(move |store| store.remove_write(id, Some(&change)))
                    .await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "cannot record what became of a person's write");
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

    /// One try of a write (the chat's next write slot waited for first): done (the result
    /// applied), or to be tried again (after Graph's `Retry-After`, when it gave one).
    async fn attempt(
        &self,
        write: &Write,
        request: &HttpRequest,
        known: &[String],
        started: OffsetDateTime,
    ) -> Result<Try, SyncError> {
        self.pace_chat(Gate::Write, write.chat_id()).await;
        match Self::send_with(self.once.clone(), request.clone()).await {
            Ok(answer) if answer.is_success() => {
                self.written(write, &answer.body).await.map(Try::Done)
            }
            Ok(answer) if matches!(answer.status, 429 | 503) => Ok(Try::Again {
                retry_after: answer.retry_after,
                unsure: false,
            }),
            Ok(answer) => Err(SyncError::Status {
                what: write.what().to_owned(),
                status: answer.status,
            }),
            Err(SyncError::Client(ClientError::OutcomeUnknown { .. })) => {
                // Every write but a send leaves Graph the same when made twice: tried again.
                self.check_sent(write, known, started).await
            }
            Err(SyncError::Client(ClientError::Token(e))) => Err(ClientError::Token(e).into()),
            Err(SyncError::Client(_)) => Ok(Try::again()),
            Err(e) => Err(e),
        }
    }

    /// Whether a send that may have been carried out was: found among the chat's newest
    /// messages, it is done; not found, it may be sent again; not known (the read failed), it
    /// stays unsure and is looked for again later. Any other write: to be tried again.
    async fn check_sent(
        &self,
        write: &Write,
        known: &[String],
        started: OffsetDateTime,
    ) -> Result<Try, SyncError> {
        let Write::Send {
            chat_id, content, ..
        } = write
        else {
            return Ok(Try::again());
        };
        match self.find_sent(chat_id, content, known, started).await {
            Ok(Some(body)) => {
                tracing::info!(chat = %chat_id, "a send whose answer was lost was carried out: not sent again");
                self.written(write, &body).await.map(Try::Done)
            }
            Ok(None) => Ok(Try::again()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether a send whose answer was lost was carried out");
                Ok(Try::Again {
                    retry_after: None,
                    unsure: true,
                })
            }
        }
    }

    /// The write's result into the cache: the sent message (its id), the chat read, or the
    /// changed message read back (as its notification would bring it; a read that fails is
    /// left to that notification).
    async fn written(&self, write: &Write, body: &[u8]) -> Result<Option<String>, SyncError> {
        if let Some(message_id) = write.message_id() {
            if let Err(e) = self.read_back(write.chat_id(), message_id).await {
                tracing::warn!(chat = %write.chat_id(), error = %e, "cannot read back a changed message");
            }
            return Ok(None);
        }
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
                _ => Ok(None),
            })
            .await
    }

    /// Message `message_id` of `chat_id` read from Graph into the cache (one Graph no longer
    /// has is left as it is).
    async fn read_back(&self, chat_id: &str, message_id: &str) -> Result<(), SyncError> {
        let answer = self
            .read(&outbound::get_message(chat_id, message_id)?)
            .await?;
        if answer.status == 404 {
            return Ok(());
        }
        expect_success("GET message", &answer)?;
        let chat = chat_id.to_owned();
        self.store
            .call(move |store| {
                let message: ChatMessage<'_> =
                    serde_json::from_slice(&answer.body).map_err(|_| SyncError::Answer {
                        what: "GET message".into(),
                        reason: "not a chatMessage".into(),
                    })?;
                store.apply(&chat, &message, Origin::Read)?;
                Ok(())
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
}

/// The page's event for write `id`: `waiting`, `done` or `failed` (with why).
fn write_change(write: &Write, id: i64, state: &str, reason: Option<String>) -> Change {
    Change::Write {
        chat_id: write.chat_id().to_owned(),
        item: WriteItem {
            id,
            what: write.kind().to_owned(),
            message_id: write.message_id().map(str::to_owned),
            state: state.to_owned(),
            reason,
        },
    }
}
