//! The writes a person asked for that wait for Graph (a throttled send, edit, reaction, delete
//! or mark-read): kept in the person's cache before the app answers 202, so that a `kill -9`
//! loses none of them, and removed once Graph took or refused them.
//!
//! Plain SQL over one table (`writes`, created with the cache's other tables): what a row holds is what it takes to make the
//! request again ([`PendingWrite`]). A send's row keeps what it said until it is done, and
//! whether a try of it may have been carried out without an answer (`unsure`): such a send is
//! looked for among the chat's newest messages before it is sent again. Its words go with the
//! row (SQLite overwrites what it frees, `secure_delete`), and with the cache's file when the
//! person signs out or is revoked.

use super::*;
use crate::store::db::Row;

/// The `due_ms` of a write being tried right now: not for the background retries to take.
pub const TRYING: i64 = i64::MAX;

/// A write waiting for Graph, as the cache keeps it. Its `Debug` leaves what it says out.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingWrite {
    /// Its row.
    pub id: i64,
    /// What it is (the sync's name for it: `send`, `edit`, ...).
    pub kind: String,
    /// The chat.
    pub chat_id: String,
    /// The message it changes, when it changes one.
    pub message_id: Option<String>,
    /// A send's or an edit's text (`body.content`).
    pub content: Option<String>,
    /// A reaction's type.
    pub reaction: Option<String>,
    /// A send's request body, as first sent.
    pub body: Option<Vec<u8>>,
    /// The ids of the chat's messages the cache held before a send: not the send's.
    pub known: Vec<String>,
    /// When the person asked, in epoch milliseconds.
    pub started_ms: i64,
    /// Whether a try may have been carried out without the app learning of it.
    pub unsure: bool,
    /// When it is next tried, in epoch milliseconds ([`TRYING`] while it is being tried).
    pub due_ms: i64,
    /// How many tries Graph throttled (or left unanswered) so far.
    pub rounds: u32,
}

impl PendingWrite {
    /// A new write of `kind` on `chat_id`, asked for at `started_ms`, to be tried at once (by
    /// the caller: [`TRYING`]).
    pub fn new(kind: &str, chat_id: &str, started_ms: i64) -> Self {
        Self {
            id: 0,
            kind: kind.to_owned(),
            chat_id: chat_id.to_owned(),
            message_id: None,
            content: None,
            reaction: None,
            body: None,
            known: Vec::new(),
            started_ms,
            unsure: false,
            due_ms: TRYING,
            rounds: 0,
        }
    }
}

impl std::fmt::Debug for PendingWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingWrite")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("chat_id", &self.chat_id)
            .field("message_id", &self.message_id)
            .field("unsure", &self.unsure)
            .field("due_ms", &self.due_ms)
            .field("rounds", &self.rounds)
            .finish_non_exhaustive()
    }
}

fn pending_from_row(r: &Row) -> Result<PendingWrite, StoreError> {
    Ok(PendingWrite {
        id: r.int(0)?,
        kind: r.text(1)?,
        chat_id: r.text(2)?,
        message_id: r.opt_text(3)?,
        content: r.opt_text(4)?,
        reaction: r.opt_text(5)?,
        body: r.opt_blob(6)?,
        known: serde_json::from_str(&r.text(7)?).unwrap_or_default(),
        started_ms: r.int(8)?,
        unsure: r.flag(9)?,
        due_ms: r.int(10)?,
        rounds: u32::try_from(r.int(11)?).unwrap_or(u32::MAX),
    })
}

const COLUMNS: &str = "id, kind, chat_id, message_id, content, reaction, body, known, \
                       started_ms, unsure, due_ms, rounds";

impl Store {
    /// Keeps `write` (before it is first sent); its row's id.
    pub fn add_write(&self, write: &PendingWrite) -> Result<i64, StoreError> {
        let known = serde_json::to_string(&write.known).unwrap_or_else(|_| "[]".into());
        self.write(|tx| {
            let id = tx
                .one(
                    "INSERT INTO writes (kind, chat_id, message_id, content, reaction, body, \
                     known, started_ms, unsure, due_ms, rounds) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                    args![
                        &write.kind,
                        &write.chat_id,
                        write.message_id.as_deref(),
                        write.content.as_deref(),
                        write.reaction.as_deref(),
                        write.body.clone(),
                        known,
                        write.started_ms,
                        i64::from(write.unsure),
                        write.due_ms,
                        i64::from(write.rounds),
                    ],
                )?
                .int(0)?;
            Ok((id, Vec::new()))
        })
    }

    /// Sets when write `id` is tried next, whether a try of it may have been carried out, and
    /// its count of throttled tries. Whether it is still kept.
    pub fn reschedule_write(
        &self,
        id: i64,
        due_ms: i64,
        unsure: bool,
        rounds: u32,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE writes SET due_ms = $2, unsure = $3, rounds = $4 WHERE id = $1",
                args![id, due_ms, i64::from(unsure), i64::from(rounds)],
            )?;
            Ok((changed > 0, Vec::new()))
        })
    }

    /// Removes write `id` (Graph took it or refused it, or it was given up) and, when the page
    /// was told it waits, logs `change` (what became of it) for the page.
    pub fn remove_write(&self, id: i64, change: Option<&Change>) -> Result<(), StoreError> {
        let keep_for = self.retention_secs();
        self.write(|tx| {
            tx.execute("DELETE FROM writes WHERE id = $1", args![id])?;
            let events = match change {
                Some(change) => vec![log_event(tx, keep_for, change)?],
                None => Vec::new(),
            };
            Ok(((), events))
        })
    }

    /// Logs `change` (a write that waits) for the page.
    pub fn log_write(&self, change: &Change) -> Result<(), StoreError> {
        let keep_for = self.retention_secs();
        self.write(|tx| Ok(((), vec![log_event(tx, keep_for, change)?])))
    }

    /// The write to try next (the one due first), if any.
    pub fn next_write(&self) -> Result<Option<PendingWrite>, StoreError> {
        self.read(|tx| {
            tx.row(
                &format!("SELECT {COLUMNS} FROM writes ORDER BY due_ms, id LIMIT 1"),
                args![],
            )?
            .as_ref()
            .map(pending_from_row)
            .transpose()
        })
    }

    /// Takes write `id`, due at `due_ms`, for a try (its `due_ms` becomes [`TRYING`], and it is
    /// `unsure` as said) unless another took it.
    pub fn claim_write(&self, id: i64, due_ms: i64, unsure: bool) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE writes SET due_ms = $3, unsure = $4 WHERE id = $1 AND due_ms = $2",
                args![id, due_ms, TRYING, i64::from(unsure)],
            )?;
            Ok((changed > 0, Vec::new()))
        })
    }

    /// Every write kept, in the order they were asked for.
    pub fn pending_writes(&self) -> Result<Vec<PendingWrite>, StoreError> {
        self.read(|tx| {
            tx.query(
                &format!("SELECT {COLUMNS} FROM writes ORDER BY id"),
                args![],
            )?
            .iter()
            .map(pending_from_row)
            .collect()
        })
    }

    /// After a restart: the writes that were being tried when the process ended are due at
    /// once (a send among them is checked for before it is sent again: it stays `unsure`).
    /// How many writes wait.
    pub fn resume_writes(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE writes SET due_ms = $1 WHERE due_ms = $2",
                args![now_ms, TRYING],
            )?;
            let waiting = tx.one("SELECT COUNT(*) FROM writes", args![])?.int(0)?;
            Ok((usize::try_from(waiting).unwrap_or(0), Vec::new()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PendingWrite;

    #[test]
    fn a_kept_writes_debug_leaves_what_it_says_out() {
        let mut row = PendingWrite::new("send", "19:a@thread.v2", 0);
        row.content = Some("the figures are 31337".into());
        row.body = Some(br#"{"body":{"content":"the figures are 31337"}}"#.to_vec());
        let shown = format!("{row:?}");
        assert!(shown.contains("19:a@thread.v2"));
        assert!(!shown.contains("31337"));
    }
}
