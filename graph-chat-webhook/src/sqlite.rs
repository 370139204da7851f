//! The default inbox: SQLite in WAL mode with full sync, commits grouped by one writer thread.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::inbox::{BatchId, Inbox, InboxError, InboxStats, NewBatch, Route, StoredBatch};
use crate::queue::Queue;

use crate::limits::{COMMIT_WAIT, INBOX_CAP_BYTES};
/// How long a statement waits for SQLite's lock held by another connection: 1.5 s, so that a
/// commit that cannot happen is answered 503 inside Graph's 3 s.
const BUSY_TIMEOUT: Duration = Duration::from_millis(1500);
/// Operations grouped into one transaction (one disk sync) at most: 256, enough to absorb a
/// burst of every worker's deletions and every request's commit at once.
const GROUP: usize = 256;
/// Operations waiting for the writer at most: 1,024. Past it (the disk has stalled), `put`
/// answers at once that the inbox cannot commit, instead of queueing records in memory.
const PENDING_OPS: usize = 1024;

enum Op {
    Put {
        route: Route,
        received_ms: i64,
        record: Vec<u8>,
        /// Set when the caller stopped waiting: the writer skips it if it has not written it.
        abandoned: Arc<AtomicBool>,
        reply: SyncSender<Result<u64, String>>,
    },
    Delete(u64),
}

/// An [`Inbox`] in a SQLite file: WAL mode, `synchronous=FULL` (a commit is on disk when
/// [`put`](Inbox::put) returns), one writer thread that groups the commits and deletions that
/// arrive together into one transaction and one sync, and readers that never block it. No lock
/// of the webhook is held across a sync. A restart on the same file hands out again every batch
/// not yet done.
///
/// ```no_run
/// use graph_chat_webhook::SqliteInbox;
/// let inbox = SqliteInbox::open("/var/lib/webhook/inbox.sqlite")?.with_cap_bytes(4 << 30);
/// # Ok::<(), graph_chat_webhook::InboxError>(())
/// ```
pub struct SqliteInbox {
    path: String,
    cap: u64,
    queue: Arc<Queue>,
    writer: Mutex<Option<SyncSender<Op>>>,
    /// Bytes of records sent to the writer and not yet committed or given up: they count
    /// against the cap too.
    queued: Arc<std::sync::atomic::AtomicU64>,
    commit_wait: Duration,
    writer_thread: Mutex<Option<thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteInbox")
            .field("path", &self.path)
            .field("cap", &self.cap)
            .field("stats", &self.stats())
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> InboxError {
    InboxError::Unavailable {
        reason: e.to_string(),
    }
}

fn connect(path: &str) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    configure(&db)?;
    Ok(db)
}

/// A reader: the same file, read-only, never created (a reader that opened another file would
/// find no batch, and a batch it cannot find must not be taken for done).
fn connect_reader(path: &str) -> rusqlite::Result<Connection> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    db.busy_timeout(BUSY_TIMEOUT)?;
    Ok(db)
}

fn configure(db: &Connection) -> rusqlite::Result<()> {
    db.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer. FULL: a commit is on disk when it returns.
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    // After a burst, the WAL file shrinks back to at most 64 MiB at the next checkpoint.
    db.pragma_update(None, "journal_size_limit", 64 << 20)?;
    // A done batch's bytes (its bodies hold the `clientState`) are overwritten, not left in the
    // file's free pages.
    db.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

impl SqliteInbox {
    /// Opens (or creates) the inbox at `path`; every batch stored there and not yet done is
    /// handed out again.
    ///
    /// The path must name a file: an in-memory database (`:memory:`, `""`, a `file:` URI) would
    /// not survive the process, and every reader would see another, empty one. It is made
    /// absolute, so that a later change of working directory changes nothing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, InboxError> {
        let given = path.as_ref();
        let text = given.to_string_lossy();
        if text.is_empty() || text == ":memory:" || text.starts_with("file:") {
            return Err(InboxError::Unavailable {
                reason: format!("{text:?} is not a file path: the inbox must be durable"),
            });
        }
        let db = connect(&text).map_err(unavailable)?;
        // The file exists now: name it absolutely.
        let path = std::fs::canonicalize(given)
            .map_err(unavailable)?
            .to_string_lossy()
            .into_owned();
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS admitted (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                received_ms INTEGER NOT NULL,
                route TEXT NOT NULL,
                record BLOB NOT NULL
            )",
        )
        .map_err(unavailable)?;
        let queue = Arc::new(Queue::default());
        {
            let mut rows = db
                .prepare("SELECT id, LENGTH(record) FROM admitted ORDER BY id")
                .map_err(unavailable)?;
            let found = rows
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(unavailable)?;
            for row in found {
                let (id, len) = row.map_err(unavailable)?;
                queue.stored(id as u64, len as u64);
            }
        }
        let (tx, rx) = mpsc::sync_channel(PENDING_OPS);
        let writer_queue = Arc::clone(&queue);
        let queued = Arc::new(AtomicU64::new(0));
        let writer_queued = Arc::clone(&queued);
        let writer_thread = thread::Builder::new()
            .name("inbox-writer".into())
            .spawn(move || write_loop(db, rx, &writer_queue, &writer_queued))
            .map_err(unavailable)?;
        Ok(Self {
            path,
            cap: INBOX_CAP_BYTES,
            queue,
            writer: Mutex::new(Some(tx)),
            queued,
            commit_wait: COMMIT_WAIT,
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Refuses batches past `cap` bytes of pending records (default [`INBOX_CAP_BYTES`]).
    pub fn with_cap_bytes(mut self, cap: u64) -> Self {
        self.cap = cap;
        self
    }

    /// How long [`put`](Inbox::put) waits for its commit before it gives up (default
    /// [`COMMIT_WAIT`]): keep it inside Graph's 3 s with the rest of a request's work.
    pub fn with_commit_wait(mut self, wait: Duration) -> Self {
        self.commit_wait = wait;
        self
    }

    fn send(&self, op: Op) -> Result<(), InboxError> {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        match writer.as_ref().ok_or(InboxError::Closed)?.try_send(op) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(InboxError::Unavailable {
                reason: format!("{PENDING_OPS} operations already wait for the disk"),
            }),
            Err(TrySendError::Disconnected(_)) => Err(InboxError::Closed),
        }
    }

    fn read(&self, id: u64) -> rusqlite::Result<Option<(Route, SystemTime, Vec<u8>)>> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let db = match pooled {
            Some(db) => db,
            None => connect_reader(&self.path)?,
        };
        let row = db
            .query_row(
                "SELECT route, received_ms, record FROM admitted WHERE id = ?1",
                params![id as i64],
                |r| {
                    let route: String = r.get(0)?;
                    let ms: i64 = r.get(1)?;
                    Ok((route, ms, r.get::<_, Vec<u8>>(2)?))
                },
            )
            .optional();
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(db);
        Ok(row?.map(|(route, ms, record)| {
            (
                Route::from_stored(&route).unwrap_or(Route::Notifications),
                UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64),
                record,
            )
        }))
    }
}

/// The writer: takes what has arrived, writes it in one transaction, answers.
fn write_loop(mut db: Connection, ops: Receiver<Op>, queue: &Queue, queued: &AtomicU64) {
    // Deletions whose transaction failed, tried again with the next one.
    let mut deletions: Vec<u64> = Vec::new();
    let mut wiped = std::time::Instant::now();
    while let Ok(first) = ops.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match ops.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let mut puts = Vec::new();
        let mut group_bytes = 0;
        for op in group {
            match op {
                Op::Delete(id) => deletions.push(id),
                Op::Put {
                    route,
                    received_ms,
                    record,
                    abandoned,
                    reply,
                } => {
                    group_bytes += record.len() as u64;
                    puts.push((route, received_ms, record, abandoned, reply));
                }
            }
        }
        let written = (|| -> rusqlite::Result<Vec<Option<(u64, u64)>>> {
            let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ids = Vec::with_capacity(puts.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO admitted (received_ms, route, record) VALUES (?1, ?2, ?3)",
                )?;
                for (route, received_ms, record, abandoned, _) in &puts {
                    // Looked at once the lock is held: a caller that gave up while the
                    // transaction waited for it has answered 503, so its batch is not written.
                    if abandoned.load(Ordering::SeqCst) {
                        ids.push(None);
                        continue;
                    }
                    insert.execute(params![received_ms, route.as_str(), record])?;
                    ids.push(Some((tx.last_insert_rowid() as u64, record.len() as u64)));
                }
                let mut delete = tx.prepare_cached("DELETE FROM admitted WHERE id = ?1")?;
                for id in &deletions {
                    delete.execute(params![*id as i64])?;
                }
            }
            tx.commit()?;
            Ok(ids)
        })();
        // Committed (now counted by the queue) or failed: no longer waiting.
        let release = |q: &AtomicU64| q.fetch_sub(group_bytes, Ordering::SeqCst);
        match written {
            Ok(ids) => {
                // Done batches leave the WAL too once nothing is held: their old pages would
                // stay in its frames until overwritten. At most once a second.
                if !deletions.is_empty()
                    && queue.held().0 == 0
                    && wiped.elapsed() >= Duration::from_secs(1)
                {
                    wipe_wal(&db);
                    wiped = std::time::Instant::now();
                }
                deletions.clear();
                for stored in ids.iter().flatten() {
                    queue.stored(stored.0, stored.1);
                }
                // Counted as stored, then no longer as waiting, and only then answered: a caller's
                // next put sees its batch counted once, not twice (which refused it as over the
                // cap while the two counts overlapped).
                release(queued);
                for (stored, (_, _, _, _, reply)) in ids.into_iter().zip(puts) {
                    if let Some((id, _)) = stored {
                        let _ = reply.send(Ok(id));
                    }
                }
            }
            Err(e) => {
                let reason = e.to_string();
                for (_, _, _, _, reply) in puts {
                    let _ = reply.send(Err(reason.clone()));
                }
                release(queued);
            }
        }
    }
    // Closing: nothing of a done batch stays in the WAL either.
    wipe_wal(&db);
}

/// Copies the WAL into the database and empties it. Best effort: with a reader in the middle of
/// a read, SQLite checkpoints what it can and the next wipe does the rest.
fn wipe_wal(db: &Connection) {
    let _ = db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

impl Inbox for SqliteInbox {
    fn put(&self, batch: NewBatch) -> Result<BatchId, InboxError> {
        let len = batch.record.len() as u64;
        // Counted before the check, so that concurrent puts cannot pass the cap together.
        let queued = self.queued.fetch_add(len, Ordering::SeqCst);
        let (_, held) = self.queue.held();
        let bytes = held + queued;
        if bytes + len > self.cap {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            return Err(InboxError::Full {
                bytes,
                cap: self.cap,
            });
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let abandoned = Arc::new(AtomicBool::new(false));
        let sent = self.send(Op::Put {
            route: batch.route,
            received_ms: batch
                .received
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            record: batch.record,
            abandoned: Arc::clone(&abandoned),
            reply,
        });
        if let Err(e) = sent {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            return Err(e);
        }
        match answer.recv_timeout(self.commit_wait) {
            Ok(Ok(id)) => Ok(BatchId(id)),
            Ok(Err(reason)) => Err(InboxError::Unavailable { reason }),
            Err(_) => {
                // If the writer has not written it yet, it never will; if it has, the batch is
                // stored although the caller answers 503: Graph's retry makes it a duplicate,
                // never a loss.
                abandoned.store(true, Ordering::SeqCst);
                Err(InboxError::Unavailable {
                    reason: format!("no commit within {:?}", self.commit_wait),
                })
            }
        }
    }

    fn claim(&self, wait: Duration) -> Option<StoredBatch> {
        let (id, attempts) = self.queue.take(wait)?;
        match self.read(id) {
            Ok(Some((route, received, record))) => Some(StoredBatch {
                id: BatchId(id),
                route,
                received,
                record,
                attempts,
            }),
            // Committed but not found: never taken for done. Kept, and offered again later.
            Ok(None) => {
                tracing::warn!(target: "graph_chat_webhook", batch = id, "a stored batch was not found; kept");
                self.queue.release(id, Duration::from_secs(5));
                None
            }
            Err(e) => {
                tracing::warn!(target: "graph_chat_webhook", batch = id, error = %e, "cannot read a stored batch");
                self.queue.release(id, Duration::from_secs(1));
                None
            }
        }
    }

    fn release(&self, id: BatchId, retry_in: Duration) {
        self.queue.release(id.0, retry_in);
    }

    fn done(&self, id: BatchId) -> Result<(), InboxError> {
        // Grouped with the next commit; a crash before it hands the batch out again (at least
        // once).
        match self.send(Op::Delete(id.0)) {
            Ok(()) => {
                self.queue.forget(id.0);
                Ok(())
            }
            Err(e) => {
                self.queue.release(id.0, Duration::from_secs(5));
                Err(e)
            }
        }
    }

    fn stats(&self) -> InboxStats {
        let (batches, bytes) = self.queue.held();
        InboxStats { batches, bytes }
    }

    fn close(&self) {
        self.queue.close();
    }
}

impl Drop for SqliteInbox {
    fn drop(&mut self) {
        // The writer finishes what was sent (pending deletions included), then ends.
        self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = t.join();
        }
    }
}
