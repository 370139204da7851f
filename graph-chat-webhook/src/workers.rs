//! Workers: open stored batches on every core and hand them to the program.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use graph_chat_notifications::crypto::DecryptBuffer;
use graph_chat_notifications::inbound::Batch;

use crate::inbox::{BatchId, Route};
use crate::state::Shared;

/// How long an idle worker waits for a batch before it looks at the stop flag again.
const CLAIM_WAIT: Duration = Duration::from_millis(200);
/// A batch the handler could not finish is offered again after 1 s, doubling per attempt up to
/// a minute: a failing output (a full disk, a database down) is retried, not hammered.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// What a handler is told about the batch it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchContext {
    /// The batch's id in the inbox.
    pub id: BatchId,
    /// Where it arrived.
    pub route: Route,
    /// When it arrived (the `now` its notifications were checked with).
    pub received: SystemTime,
    /// How many times it was handed out before (a handler that failed, a panic, a restart in
    /// between counts as none).
    pub attempts: u32,
}

/// Why a handler could not finish a batch: the batch is kept and handed out again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(String);

impl HandlerError {
    /// An error with a reason to log (no secret, no content).
    pub fn new(reason: impl fmt::Display) -> Self {
        Self(reason.to_string())
    }
}

impl From<std::io::Error> for HandlerError {
    fn from(e: std::io::Error) -> Self {
        Self::new(e)
    }
}

/// The program's part: what to do with each stored batch, on a worker thread. Open its
/// notifications with [`Batch::open_each`] (decryption happens there, on this thread, outside
/// any lock of the webhook's) and put the results where they go. `Ok` marks the batch done; an
/// `Err` (or a panic) keeps it, to be handed out again later. Delivery is at least once: a crash
/// between the two hands the batch out again after a restart, so make the output idempotent
/// ([`ChangeNotification::idempotency_key`](graph_chat_notifications::inbound::ChangeNotification::idempotency_key)).
///
/// Closures of the right shape are handlers.
pub trait Handler: Send + Sync + 'static {
    /// Handles one batch.
    fn handle(
        &self,
        context: &BatchContext,
        batch: &Batch<'_, '_>,
        buf: &mut DecryptBuffer,
    ) -> Result<(), HandlerError>;
}

impl<F> Handler for F
where
    F: Fn(&BatchContext, &Batch<'_, '_>, &mut DecryptBuffer) -> Result<(), HandlerError>
        + Send
        + Sync
        + 'static,
{
    fn handle(
        &self,
        context: &BatchContext,
        batch: &Batch<'_, '_>,
        buf: &mut DecryptBuffer,
    ) -> Result<(), HandlerError> {
        self(context, batch, buf)
    }
}

/// The running workers. [`shutdown`](Self::shutdown) stops them: each finishes the batch in
/// hand; what is still in the inbox stays there.
#[must_use = "dropping Workers leaves the threads running; call shutdown() to stop them"]
pub struct Workers {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl fmt::Debug for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl Workers {
    pub(crate) fn start(shared: Arc<Shared>, handler: Arc<dyn Handler>, threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads.max(1))
            .map(|i| {
                let (shared, handler, stop) =
                    (Arc::clone(&shared), Arc::clone(&handler), Arc::clone(&stop));
                thread::Builder::new()
                    .name(format!("webhook-worker-{i}"))
                    .spawn(move || work(&shared, &*handler, &stop))
                    .expect("a worker thread starts")
            })
            .collect();
        Self {
            stop,
            shared,
            threads,
        }
    }

    /// How many worker threads run.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Whether no worker runs: always `false`, since at least one starts (the pair of
    /// [`len`](Self::len), for callers that check it).
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Stops handing out batches, waits for each worker to finish the batch in hand, and closes
    /// the inbox's queue.
    pub fn shutdown(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.shared.inbox.close();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn retry_after(attempts: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << attempts.min(6))
        .min(LAST_RETRY)
}

fn work(shared: &Shared, handler: &dyn Handler, stop: &AtomicBool) {
    let mut buf = DecryptBuffer::new();
    while !stop.load(Ordering::SeqCst) {
        let Some(stored) = shared.inbox.claim(CLAIM_WAIT) else {
            continue;
        };
        let context = BatchContext {
            id: stored.id,
            route: stored.route,
            received: stored.received,
            attempts: stored.attempts,
        };
        let receiver = shared.receiver_for(stored.route);
        let handled = catch_unwind(AssertUnwindSafe(|| {
            match receiver.dangerous_open_admitted(&stored.record) {
                Ok(batch) => handler.handle(&context, &batch, &mut buf),
                Err(e) => Err(HandlerError::new(format!("the stored record: {e}"))),
            }
        }));
        let kept = match handled {
            Ok(Ok(())) => {
                if let Err(e) = shared.inbox.done(stored.id) {
                    tracing::warn!(target: "graph_chat_webhook", batch = %stored.id, error = %e, "cannot mark a batch done; it will be handed out again");
                }
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => {
                // What the panic left in the buffer is not trusted.
                buf = DecryptBuffer::new();
                "the handler panicked".to_string()
            }
        };
        let retry = retry_after(stored.attempts);
        tracing::warn!(target: "graph_chat_webhook", batch = %stored.id, reason = %kept, retry_in = ?retry, "batch kept for a later attempt");
        shared.inbox.release(stored.id, retry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_minute() {
        assert_eq!(retry_after(0), Duration::from_secs(1));
        assert_eq!(retry_after(3), Duration::from_secs(8));
        assert_eq!(retry_after(40), LAST_RETRY);
    }
}
