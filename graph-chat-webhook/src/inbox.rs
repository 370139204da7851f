//! The seam to durable storage: the [`Inbox`] trait, and the values that cross it.

use std::fmt;
use std::time::{Duration, SystemTime};

/// Where a batch arrived, which says how its record is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// `POST /notifications`: change notifications (the webhook channel).
    Notifications,
    /// `POST /lifecycle`: lifecycle notifications (the webhook channel).
    Lifecycle,
    /// `POST /eventgrid`: CloudEvents from an Event Grid partner topic.
    EventGrid,
}

impl Route {
    /// The path the router serves it at, also the name an inbox stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notifications => "/notifications",
            Self::Lifecycle => "/lifecycle",
            Self::EventGrid => "/eventgrid",
        }
    }

    /// The route stored as [`as_str`](Self::as_str).
    pub fn from_stored(name: &str) -> Option<Self> {
        [Self::Notifications, Self::Lifecycle, Self::EventGrid]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inbox's name for a stored batch: increasing in the order batches were committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub u64);

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A batch that passed admission, to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewBatch {
    /// Where it arrived.
    pub route: Route,
    /// When it arrived: the `now` it is opened with later.
    pub received: SystemTime,
    /// Its admission record ([`Admission::into_record`](graph_chat_notifications::inbound::Admission::into_record)).
    pub record: Vec<u8>,
}

/// A stored batch, handed to a worker.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// Its name in the inbox.
    pub id: BatchId,
    /// Where it arrived.
    pub route: Route,
    /// When it arrived.
    pub received: SystemTime,
    /// Its admission record.
    pub record: Vec<u8>,
    /// How many times it was handed out before and given back (0 the first time).
    pub attempts: u32,
}

impl fmt::Debug for NewBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewBatch")
            .field("route", &self.route)
            .field("received", &self.received)
            .field("record_bytes", &self.record.len())
            .finish()
    }
}

impl fmt::Debug for StoredBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredBatch")
            .field("id", &self.id)
            .field("route", &self.route)
            .field("received", &self.received)
            .field("record_bytes", &self.record.len())
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// What an inbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InboxStats {
    /// Batches stored and not yet done (handed out or not).
    pub batches: usize,
    /// Their records' bytes.
    pub bytes: u64,
}

/// Why an inbox did not store a batch (the webhook answers 503, and Graph retries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboxError {
    /// Storing it would pass the inbox's byte cap: the workers are behind.
    #[error("the inbox is full ({bytes} bytes pending, cap {cap})")]
    Full {
        /// Bytes pending.
        bytes: u64,
        /// The cap.
        cap: u64,
    },
    /// The commit did not happen (the storage failed, or did not answer in time).
    #[error("cannot commit to the inbox: {reason}")]
    Unavailable {
        /// What the storage said.
        reason: String,
    },
    /// The inbox was closed.
    #[error("the inbox is closed")]
    Closed,
}

/// Durable storage for admitted batches: the seam between the webhook and the disk.
///
/// The contract, which `tests/inbox_contract.rs` checks against every implementation:
/// * [`put`](Self::put) returns only once the batch survives a crash of the process (and of
///   the machine, for a disk-backed inbox); it may refuse ([`InboxError`]), never store half a
///   batch. Ids increase in commit order.
/// * [`claim`](Self::claim) hands out each stored batch to one caller at a time, oldest first,
///   waiting up to `wait` for one; a batch handed out is not handed out again until it is
///   [`release`](Self::release)d (then again after `retry_in`, whatever else is stored
///   meanwhile) or, after a restart, if it was never [`done`](Self::done).
/// * [`done`](Self::done) removes it for good. A batch not yet done when the process dies is
///   handed out again after a restart (at least once).
/// * [`close`](Self::close) wakes every waiting `claim`, which then returns `None`.
///
/// Calls block; the webhook makes them off the async threads.
pub trait Inbox: Send + Sync + 'static {
    /// Stores a batch durably.
    fn put(&self, batch: NewBatch) -> Result<BatchId, InboxError>;
    /// The oldest batch not handed out, waiting up to `wait` for one.
    fn claim(&self, wait: Duration) -> Option<StoredBatch>;
    /// Gives a claimed batch back, to be handed out again after `retry_in`.
    fn release(&self, id: BatchId, retry_in: Duration);
    /// Removes a claimed batch for good.
    fn done(&self, id: BatchId) -> Result<(), InboxError>;
    /// What the inbox holds now.
    fn stats(&self) -> InboxStats;
    /// Wakes every waiting [`claim`](Self::claim); from now on it returns `None`.
    fn close(&self);
}
