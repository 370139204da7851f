//! An inbox in memory: for tests, and for programs that accept losing what was acknowledged when
//! the process dies.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::inbox::{BatchId, Inbox, InboxError, InboxStats, NewBatch, Route, StoredBatch};
use crate::queue::Queue;

/// The last id given, and each stored batch by id.
type Records = (u64, HashMap<u64, (Route, SystemTime, Vec<u8>)>);

/// An [`Inbox`] in memory, with a byte cap. It keeps the contract except durability: what it
/// holds is gone with the process. For tests (yours: it lets a test count what was stored) and
/// for consumers that do not need acknowledged batches to survive a crash.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use graph_chat_webhook::{Inbox, MemoryInbox, NewBatch, Route};
/// let inbox = MemoryInbox::new(1 << 20);
/// let id = inbox.put(NewBatch { route: Route::Notifications, received: SystemTime::now(), record: b"{}".to_vec() })?;
/// let batch = inbox.claim(Duration::ZERO).expect("stored");
/// assert_eq!(batch.id, id);
/// inbox.done(id)?;
/// assert_eq!(inbox.stats().batches, 0);
/// # Ok::<(), graph_chat_webhook::InboxError>(())
/// ```
pub struct MemoryInbox {
    cap: u64,
    records: Mutex<Records>,
    queue: Queue,
}

impl std::fmt::Debug for MemoryInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryInbox")
            .field("cap", &self.cap)
            .field("stats", &self.stats())
            .finish()
    }
}

impl MemoryInbox {
    /// An empty inbox that refuses batches past `cap_bytes` of records.
    pub fn new(cap_bytes: u64) -> Self {
        Self {
            cap: cap_bytes,
            records: Mutex::new((0, HashMap::new())),
            queue: Queue::default(),
        }
    }
}

impl Inbox for MemoryInbox {
    fn put(&self, batch: NewBatch) -> Result<BatchId, InboxError> {
        let len = batch.record.len() as u64;
        let (_, bytes) = self.queue.held();
        if bytes + len > self.cap {
            return Err(InboxError::Full {
                bytes,
                cap: self.cap,
            });
        }
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.0 += 1;
        let id = records.0;
        records
            .1
            .insert(id, (batch.route, batch.received, batch.record));
        drop(records);
        self.queue.stored(id, len);
        Ok(BatchId(id))
    }

    fn claim(&self, wait: Duration) -> Option<StoredBatch> {
        loop {
            let (id, attempts) = self.queue.take(wait)?;
            let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            let Some((route, received, record)) = records.1.get(&id).cloned() else {
                drop(records);
                self.queue.forget(id);
                continue;
            };
            return Some(StoredBatch {
                id: BatchId(id),
                route,
                received,
                record,
                attempts,
            });
        }
    }

    fn release(&self, id: BatchId, retry_in: Duration) {
        self.queue.release(id.0, retry_in);
    }

    fn done(&self, id: BatchId) -> Result<(), InboxError> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .remove(&id.0);
        self.queue.forget(id.0);
        Ok(())
    }

    fn stats(&self) -> InboxStats {
        let (batches, bytes) = self.queue.held();
        InboxStats { batches, bytes }
    }

    fn close(&self) {
        self.queue.close();
    }
}
