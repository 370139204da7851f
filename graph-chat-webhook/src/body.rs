//! Reading a request body under the byte budget and the minimum rate.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::limits::ServerLimits;

/// The memory every body in flight draws from: bytes as they arrive, and turns for large bodies.
pub(crate) struct Budget {
    bytes: Arc<Semaphore>,
    large: Arc<Semaphore>,
}

impl Budget {
    pub(crate) fn new(limits: &ServerLimits) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(
                limits.body_budget().min(Semaphore::MAX_PERMITS),
            )),
            large: Arc::new(Semaphore::new(limits.large_bodies())),
        }
    }
}

/// A body read whole, holding its share of the budget until dropped.
pub(crate) struct HeldBody {
    pub(crate) bytes: Vec<u8>,
    _bytes: Option<OwnedSemaphorePermit>,
    _large: Option<OwnedSemaphorePermit>,
}

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyRefusal {
    /// Past the body limit: 413.
    TooLarge { limit: usize },
    /// Slower than the minimum rate, or a pause past the idle deadline: 408.
    TooSlow { received: u64, after: Duration },
    /// No room in the budget (or no large-body turn) in time: 503.
    Busy { reason: &'static str },
    /// The connection failed mid-body.
    Broken,
}

impl BodyRefusal {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::TooSlow { .. } => 408,
            Self::Busy { .. } => 503,
            Self::Broken => 400,
        }
    }

    pub(crate) fn reason(&self) -> String {
        match self {
            Self::TooLarge { limit } => format!("the body is over the limit of {limit} bytes"),
            Self::TooSlow { received, after } => format!(
                "the body came too slowly ({received} bytes in {:.1} s)",
                after.as_secs_f64()
            ),
            Self::Busy { reason } => (*reason).to_string(),
            Self::Broken => "the connection failed while sending the body".into(),
        }
    }
}

async fn take(
    semaphore: &Arc<Semaphore>,
    n: usize,
    wait: Duration,
) -> Result<OwnedSemaphorePermit, ()> {
    let n = u32::try_from(n).map_err(|_| ())?;
    match tokio::time::timeout(wait, Arc::clone(semaphore).acquire_many_owned(n)).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(()),
    }
}

/// Reads `body` (which declared `declared` bytes, if it said) up to `limit` bytes, drawing on
/// `budget` as bytes arrive and cutting it off under the minimum rate.
pub(crate) async fn read(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    budget: &Budget,
    limits: &ServerLimits,
) -> Result<HeldBody, BodyRefusal> {
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyRefusal::TooLarge { limit });
    }
    let busy = |reason| BodyRefusal::Busy { reason };
    let mut large = None;
    // A body that says it is large waits for its turn before its first byte is read.
    if declared.is_some_and(|n| n > limits.large_body() as u64) {
        large = Some(
            take(&budget.large, 1, limits.budget_wait())
                .await
                .map_err(|()| busy("too many large bodies at once"))?,
        );
    }
    let start = Instant::now();
    let mut last_piece = Duration::ZERO;
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut bytes: Vec<u8> = Vec::new();
    // Bytes of capacity paid for from the budget.
    let mut charged = 0usize;
    let mut body = body;
    loop {
        let deadline = start + limits.next_piece_deadline(bytes.len() as u64, last_piece);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(BodyRefusal::TooSlow {
                    received: bytes.len() as u64,
                    after: start.elapsed(),
                })
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyRefusal::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if data.is_empty() {
            continue;
        }
        let total = bytes.len() + data.len();
        if total > limit {
            return Err(BodyRefusal::TooLarge { limit });
        }
        if total > limits.large_body() && large.is_none() {
            large = Some(
                take(&budget.large, 1, limits.budget_wait())
                    .await
                    .map_err(|()| busy("too many large bodies at once"))?,
            );
        }
        // The budget counts the buffer's capacity, not only its length: it grows by doubling
        // (up to the limit), and each growth is paid for before it happens.
        if total > bytes.capacity() {
            let grown = total.max(bytes.capacity().saturating_mul(2).min(limit));
            let permit = take(&budget.bytes, grown - charged, limits.budget_wait())
                .await
                .map_err(|()| busy("the body budget is spent"))?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            bytes.reserve_exact(grown - bytes.len());
            charged = grown;
        }
        bytes.extend_from_slice(&data);
        last_piece = start.elapsed();
    }
    Ok(HeldBody {
        bytes,
        _bytes: held,
        _large: large,
    })
}
