//! The default inbox: SQLite in WAL mode with full sync, commits grouped by one writer thread.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::inbox::{BatchId, Inbox, InboxError, InboxStats, NewBatch, Route, StoredBatch};
use crate::queue::Queue;

use crate::limits::INBOX_CAP_BYTES;
/// How long a statement waits for SQLite's lock held by another connection: 1.5 s, so that a
/// commit that cannot happen is answered 503 inside Graph's 3 s.
const BUSY_TIMEOUT: Duration = Duration::from_millis(1500);
/// Operations grouped into one transaction (one disk sync) at most: 256, enough to absorb a
/// burst of every worker's deletions and every request's commit at once.
const GROUP: usize = 256;
/// How long `put` waits for the writer to answer before giving up (the caller's 503).
const PUT_WAIT: Duration = Duration::from_secs(2);

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
    writer: Mutex<Option<Sender<Op>>>,
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
    db.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer. FULL: a commit is on disk when it returns.
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    Ok(db)
}

impl SqliteInbox {
    /// Opens (or creates) the inbox at `path`; every batch stored there and not yet done is
    /// handed out again.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, InboxError> {
        let path = path.as_ref().to_string_lossy().into_owned();
        let db = connect(&path).map_err(unavailable)?;
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
        let (tx, rx) = mpsc::channel();
        let writer_queue = Arc::clone(&queue);
        let writer_thread = thread::Builder::new()
            .name("inbox-writer".into())
            .spawn(move || write_loop(db, rx, &writer_queue))
            .map_err(unavailable)?;
        Ok(Self {
            path,
            cap: INBOX_CAP_BYTES,
            queue,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Refuses batches past `cap` bytes of pending records (default [`INBOX_CAP_BYTES`]).
    pub fn with_cap_bytes(mut self, cap: u64) -> Self {
        self.cap = cap;
        self
    }

    fn send(&self, op: Op) -> Result<(), InboxError> {
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .ok_or(InboxError::Closed)?
            .send(op)
            .map_err(|_| InboxError::Closed)
    }

    fn read(&self, id: u64) -> rusqlite::Result<Option<(Route, SystemTime, Vec<u8>)>> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let db = match pooled {
            Some(db) => db,
            None => connect(&self.path)?,
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
fn write_loop(mut db: Connection, ops: Receiver<Op>, queue: &Queue) {
    // Deletions whose transaction failed, tried again with the next one.
    let mut deletions: Vec<u64> = Vec::new();
    while let Ok(first) = ops.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match ops.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let mut puts = Vec::new();
        for op in group {
            match op {
                Op::Delete(id) => deletions.push(id),
                Op::Put {
                    route,
                    received_ms,
                    record,
                    abandoned,
                    reply,
                } => puts.push((route, received_ms, record, abandoned, reply)),
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
        match written {
            Ok(ids) => {
                deletions.clear();
                for (stored, (_, _, _, _, reply)) in ids.into_iter().zip(puts) {
                    if let Some((id, len)) = stored {
                        queue.stored(id, len);
                        let _ = reply.send(Ok(id));
                    }
                }
            }
            Err(e) => {
                let reason = e.to_string();
                for (_, _, _, _, reply) in puts {
                    let _ = reply.send(Err(reason.clone()));
                }
            }
        }
    }
}

impl Inbox for SqliteInbox {
    fn put(&self, batch: NewBatch) -> Result<BatchId, InboxError> {
        let (_, bytes) = self.queue.held();
        let len = batch.record.len() as u64;
        if bytes + len > self.cap {
            return Err(InboxError::Full {
                bytes,
                cap: self.cap,
            });
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let abandoned = Arc::new(AtomicBool::new(false));
        self.send(Op::Put {
            route: batch.route,
            received_ms: batch
                .received
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            record: batch.record,
            abandoned: Arc::clone(&abandoned),
            reply,
        })?;
        match answer.recv_timeout(PUT_WAIT) {
            Ok(Ok(id)) => Ok(BatchId(id)),
            Ok(Err(reason)) => Err(InboxError::Unavailable { reason }),
            Err(_) => {
                // If the writer has not written it yet, it never will; if it has, the batch is
                // stored although the caller answers 503: Graph's retry makes it a duplicate,
                // never a loss.
                abandoned.store(true, Ordering::SeqCst);
                Err(InboxError::Unavailable {
                    reason: format!("no commit within {PUT_WAIT:?}"),
                })
            }
        }
    }

    fn claim(&self, wait: Duration) -> Option<StoredBatch> {
        loop {
            let (id, attempts) = self.queue.take(wait)?;
            match self.read(id) {
                Ok(Some((route, received, record))) => {
                    return Some(StoredBatch {
                        id: BatchId(id),
                        route,
                        received,
                        record,
                        attempts,
                    })
                }
                // Deleted meanwhile (done, then found again at start-up): nothing to hand out.
                Ok(None) => self.queue.forget(id),
                Err(e) => {
                    tracing::warn!(target: "graph_chat_webhook", batch = id, error = %e, "cannot read a stored batch");
                    self.queue.release(id, Duration::from_secs(1));
                    return None;
                }
            }
        }
    }

    fn release(&self, id: BatchId, retry_in: Duration) {
        self.queue.release(id.0, retry_in);
    }

    fn done(&self, id: BatchId) -> Result<(), InboxError> {
        self.queue.forget(id.0);
        // Grouped with the next commit; a crash before it hands the batch out again (at least
        // once).
        self.send(Op::Delete(id.0))
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
