//! What the server refused, for operators: one value per refused body, notification or
//! connection, reported as a `tracing` event and to the program's callback.

use std::fmt;
use std::net::IpAddr;

use graph_chat_notifications::{BodyError, ItemError};

use crate::inbox::Route;

/// Something the server refused. `Display` is one line, safe to log: it names the route, the
/// reply and the reason, never a secret, a token or message content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A whole body refused as forged or malformed: answered 202 (a sender learns nothing) and
    /// stored nowhere.
    Dropped {
        /// Where it arrived.
        route: Route,
        /// Why.
        error: BodyError,
    },
    /// A body in which no notification was admitted (an empty `value`, or every notification
    /// refused): answered 202, stored nowhere.
    NothingAdmitted {
        /// Where it arrived.
        route: Route,
    },
    /// One notification refused at admission (its neighbours were stored): not stored.
    Notification {
        /// Where it arrived.
        route: Route,
        /// Why, naming the notification and the field.
        error: ItemError,
    },
    /// A request answered with an error status (408, 413, 401, 503), so that Graph retries or
    /// gives up.
    Answered {
        /// Where it arrived.
        route: Route,
        /// The status sent.
        status: u16,
        /// Why.
        reason: String,
    },
    /// Connections closed by the server without a reply: over the per-address or total cap as
    /// they were accepted, or past the head or idle deadline. Counted, and reported at most once
    /// a second per reason.
    Connections {
        /// How many since the last report.
        count: u64,
        /// The address of the last one.
        peer: Option<IpAddr>,
        /// Why.
        reason: &'static str,
    },
    /// Refusals that came faster than they could be reported (the report queue was full): only
    /// counted, so that a flood of refusals cannot slow the server down.
    Unreported {
        /// How many.
        count: u64,
    },
}

impl Refusal {
    /// A stable name for counting refusals by kind: `dropped`, `nothingAdmitted`,
    /// `notification`, `answered`, `connections`, `unreported`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Dropped { .. } => "dropped",
            Self::NothingAdmitted { .. } => "nothingAdmitted",
            Self::Notification { .. } => "notification",
            Self::Answered { .. } => "answered",
            Self::Connections { .. } => "connections",
            Self::Unreported { .. } => "unreported",
        }
    }

    /// The HTTP status the request was answered with, when it was answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Dropped { .. } | Self::NothingAdmitted { .. } | Self::Notification { .. } => {
                Some(202)
            }
            Self::Answered { status, .. } => Some(*status),
            Self::Connections { .. } | Self::Unreported { .. } => None,
        }
    }

    /// Emits the refusal as a `tracing` event (target [`REFUSAL_TARGET`]): a warning, except
    /// connections closed for idling, which browsers' and proxies' spare keep-alive connections
    /// do all day (a debug event).
    pub(crate) fn trace(&self) {
        if matches!(self, Self::Connections { reason, .. } if *reason == IDLE_CLOSURE) {
            tracing::debug!(target: REFUSAL_TARGET, kind = self.code(), "{self}");
        } else {
            tracing::warn!(
                target: REFUSAL_TARGET,
                kind = self.code(),
                status = self.status(),
                "{self}"
            );
        }
    }
}

/// The `tracing` target of refusals, apart from the crate's other events, so that a program that
/// reports refusals itself ([`WebhookBuilder::on_refusal`](crate::WebhookBuilder::on_refusal))
/// can leave them out of its log (`RUST_LOG=info,graph_chat_webhook::refusal=off`).
pub const REFUSAL_TARGET: &str = "graph_chat_webhook::refusal";

/// The reason of [`Refusal::Connections`] for connections closed after idling past the deadline.
pub(crate) const IDLE_CLOSURE: &str = "idle past the deadline";

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dropped { route, error } => write!(f, "batch refused: {route}: {error}"),
            Self::NothingAdmitted { route } => {
                write!(f, "batch refused: {route}: no notification admitted")
            }
            Self::Notification { route, error } => {
                write!(f, "notification refused: {route}: {error}")
            }
            Self::Answered {
                route,
                status,
                reason,
            } => match status {
                503 => write!(
                    f,
                    "batch not accepted (503, Graph retries): {route}: {reason}"
                ),
                _ => write!(f, "batch not accepted ({status}): {route}: {reason}"),
            },
            Self::Connections {
                count,
                peer,
                reason,
            } => {
                write!(f, "{count} connection(s) closed: {reason}")?;
                if let Some(peer) = peer {
                    write!(f, " (last from {peer})")?;
                }
                Ok(())
            }
            Self::Unreported { count } => {
                write!(f, "{count} refusal(s) not reported: they came faster than the report queue drained")
            }
        }
    }
}

/// Reports refusals from one thread of its own, through a bounded queue: the request path only
/// queues (never blocks on a slow stderr or a slow callback), and what does not fit is counted.
pub(crate) struct Reporter {
    queue: std::sync::mpsc::SyncSender<Refusal>,
    unreported: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Refusals waiting to be reported at most.
const REPORT_QUEUE: usize = 4096;

impl Reporter {
    pub(crate) fn start(report: Box<dyn Fn(&Refusal) + Send + Sync>) -> Self {
        use std::sync::atomic::Ordering;
        let (queue, queued) = std::sync::mpsc::sync_channel::<Refusal>(REPORT_QUEUE);
        let unreported = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let missed = std::sync::Arc::clone(&unreported);
        let emit = move |refusal: &Refusal| {
            refusal.trace();
            // A callback that panics loses its own report, not the reporter.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| report(refusal)));
        };
        let spawned = std::thread::Builder::new()
            .name("webhook-refusals".into())
            .spawn(move || {
                for refusal in queued {
                    emit(&refusal);
                    let count = missed.swap(0, Ordering::Relaxed);
                    if count > 0 {
                        emit(&Refusal::Unreported { count });
                    }
                }
            });
        if spawned.is_err() {
            tracing::error!(target: "graph_chat_webhook", "cannot start the refusal reporter; refusals are counted only");
        }
        Self { queue, unreported }
    }

    /// Queues a refusal, or counts it when the queue is full.
    pub(crate) fn report(&self, refusal: Refusal) {
        if self.queue.try_send(refusal).is_err() {
            self.unreported
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
