//! Reading a request body under the byte budget and the minimum rate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::limits::ServerLimits;
use crate::source::Source;

/// The memory every body in flight draws from: bytes as they arrive, and turns for large bodies;
/// and the bytes each source holds, within its share.
pub(crate) struct Budget {
    bytes: Arc<Semaphore>,
    large: Arc<Semaphore>,
    per_source: Arc<Mutex<HashMap<Source, usize>>>,
}

impl Budget {
    pub(crate) fn new(limits: &ServerLimits) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(
                limits.body_budget().min(Semaphore::MAX_PERMITS),
            )),
            large: Arc::new(Semaphore::new(limits.large_bodies())),
            per_source: Arc::default(),
        }
    }
}

/// Bytes one body holds of its source's share, given back when dropped.
struct Share {
    per_source: Arc<Mutex<HashMap<Source, usize>>>,
    source: Source,
    bytes: usize,
}

impl Share {
    /// `more` bytes for this body, unless its source would pass `cap`.
    fn grow(&mut self, more: usize, cap: usize) -> bool {
        let mut held = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        let now = held.entry(self.source).or_default();
        if now.saturating_add(more) > cap {
            return false;
        }
        *now += more;
        self.bytes += more;
        true
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.per_source.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.source) {
            *n = n.saturating_sub(self.bytes);
            if *n == 0 {
                held.remove(&self.source);
            }
        }
    }
}

/// A body read whole, holding its share of the budget until dropped.
pub(crate) struct HeldBody {
    pub(crate) bytes: Vec<u8>,
    _bytes: Option<OwnedSemaphorePermit>,
    _share: Option<Share>,
    _large: Option<OwnedSemaphorePermit>,
}

/// Pieces closer together than this are one piece for the rate window: a body's history stays
/// a few dozen entries however it is framed.
const PIECE_GRAIN: Duration = Duration::from_millis(100);

/// The body's recent pieces, as (time from the body's start, bytes), oldest first, none older
/// than the rate window.
#[derive(Default)]
struct Recent(VecDeque<(Duration, u64)>);

impl Recent {
    fn add(&mut self, at: Duration, len: u64, window: Duration) {
        while self.0.front().is_some_and(|(t, _)| *t + window < at) {
            self.0.pop_front();
        }
        match self.0.back_mut() {
            Some((t, n)) if at.saturating_sub(*t) < PIECE_GRAIN => *n += len,
            _ => self.0.push_back((at, len)),
        }
    }

    /// Until when the last `window` holds at least `need` bytes with nothing more arriving (as
    /// a time from the body's start; the grace at least).
    fn deadline(&self, need: u64, window: Duration, grace: Duration) -> Duration {
        let mut newer = 0u64;
        for (at, len) in self.0.iter().rev() {
            newer += len;
            if newer >= need {
                return (*at + window).max(grace);
            }
        }
        grace
    }
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
/// `budget` (and on the share of `source`, when the server knows it) as bytes arrive, and
/// cutting it off under the minimum rate, on average and over every window.
pub(crate) async fn read(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    source: Option<Source>,
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
    let mut share = source.map(|source| Share {
        per_source: Arc::clone(&budget.per_source),
        source,
        bytes: 0,
    });
    let mut recent = Recent::default();
    let window = limits.body_rate_window();
    let mut bytes: Vec<u8> = Vec::new();
    // Bytes of capacity paid for from the budget.
    let mut charged = 0usize;
    let mut body = body;
    loop {
        let received = bytes.len() as u64;
        let min_rate = if received > limits.large_body() as u64 {
            limits.large_min_body_rate()
        } else {
            limits.min_body_rate()
        };
        // Over a window, a large body need only move at half its rate: one stall of TCP (a
        // second without a byte) must not cut an honest batch of megabytes.
        let windowed_rate = if received > limits.large_body() as u64 {
            min_rate / 2
        } else {
            min_rate
        };
        let need = (windowed_rate as f64 * window.as_secs_f64()) as u64;
        let over_window = recent.deadline(need, window, limits.body_grace());
        let deadline = start
            + limits
                .next_piece_deadline(received, last_piece)
                .min(over_window);
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
        // The source's share counts the bytes received.
        if let Some(share) = &mut share {
            if !share.grow(data.len(), limits.body_budget_per_address()) {
                return Err(busy("this address's share of the body budget is spent"));
            }
        }
        // The budget counts the buffer's capacity, not only its length: it grows by doubling
        // (up to the limit, and to the declared length when there is one: a 10 MiB body holds
        // 10 MiB, not 16), and each growth is paid for before it happens.
        if total > bytes.capacity() {
            let most = declared.map_or(limit, |n| usize::try_from(n).unwrap_or(limit).min(limit));
            let grown = total.max(bytes.capacity().saturating_mul(2).min(most));
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
        recent.add(last_piece, data.len() as u64, window);
    }
    Ok(HeldBody {
        bytes,
        _bytes: held,
        _share: share,
        _large: large,
    })
}

#[cfg(test)]
mod tests {
    use super::Recent;
    use std::time::Duration;

    #[test]
    fn a_burst_then_a_byte_every_three_seconds_loses_its_window() {
        let (window, grace) = (Duration::from_secs(2), Duration::from_secs(2));
        let need = 32 * 1024;
        let mut recent = Recent::default();
        recent.add(Duration::from_millis(10), 1_000_000, window);
        // The burst holds the window for 2 s after it, then nothing does.
        assert_eq!(
            recent.deadline(need, window, grace),
            Duration::from_millis(2010)
        );
        recent.add(Duration::from_secs(3), 1, window);
        assert_eq!(recent.deadline(need, window, grace), grace);
        // A steady 64 KiB/s keeps it alive, a window ahead of its last pieces.
        let mut steady = Recent::default();
        for tick in 0..40u64 {
            steady.add(Duration::from_millis(tick * 250), 16 * 1024, window);
        }
        let d = steady.deadline(need, window, grace);
        assert!(d > Duration::from_millis(39 * 250), "{d:?}");
        assert!(steady.0.len() <= 12, "{}", steady.0.len());
    }
}
