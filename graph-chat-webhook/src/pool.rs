//! The connections the server holds, in two pools on one listener: the webhook's connection
//! pool (Graph's deliveries, and every other request), and the stream pool (long-lived
//! responses a handler marked with [`StreamSlot`]), each with its cap per source and in all.
//!
//! Past the connection cap a new connection is not turned away while a source holding at least
//! two more places than its own holds a connection that is not being answered (no request in
//! hand, or a request whose body has not all arrived): that one is shed for it (the source
//! holding the most first), so strangers holding half-sent heads or half-sent bodies from a
//! few addresses cannot keep Graph out. Requests on routes other than the webhook's hold at most
//! [`ServerLimits::max_connections`] less [`ServerLimits::reserved_for_webhook`] places.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::limits::ServerLimits;
use crate::source::Source;

/// Places held per source, and in all.
#[derive(Default)]
struct Tally {
    per_source: HashMap<Source, usize>,
    total: usize,
}

impl Tally {
    fn of(&self, source: Source) -> usize {
        self.per_source.get(&source).copied().unwrap_or(0)
    }

    fn add(&mut self, source: Source) {
        *self.per_source.entry(source).or_default() += 1;
        self.total += 1;
    }

    fn remove(&mut self, source: Source) {
        self.total -= 1;
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
    }
}

/// In [`ConnState::hand`]: the pool shed the connection; no request is taken on it any more.
const SHED: usize = 1 << (usize::BITS - 1);
/// In [`ConnState::hand`]: the request in hand has not received its whole body yet.
const BODY_PENDING: usize = 1 << (usize::BITS - 2);
/// In [`ConnState::hand`]: the requests in hand.
const COUNT: usize = BODY_PENDING - 1;

/// What the pool knows of one connection while it runs: requests in hand, since when it has had
/// none, and the signal that sheds it.
pub(crate) struct ConnState {
    /// The requests in hand ([`COUNT`]), whether the body of the one in hand is still arriving
    /// ([`BODY_PENDING`]) and whether the connection was shed ([`SHED`]), in one word: the pool
    /// sheds a connection only by a compare-and-swap from what it judged, and a request is taken
    /// only by one from a word without [`SHED`], so a head parsed while the pool chooses is
    /// either seen by it or refused.
    hand: AtomicUsize,
    /// Requests heads it has produced.
    heads: AtomicU64,
    /// When it last had no request in hand (opened, or answered its last), in milliseconds from
    /// the pool's epoch.
    idle_since: AtomicU64,
    /// When the head of the request in hand came, in milliseconds from the pool's epoch.
    head_at: AtomicU64,
    /// Whether the connection moved to the stream pool.
    stream: AtomicBool,
    shed: Notify,
}

impl ConnState {
    /// Resolves when the pool shed this connection for a new one.
    pub(crate) async fn shed(&self) {
        self.shed.notified().await;
    }

    /// The body of the request in hand has all arrived: from now on the connection is not shed
    /// until the request is answered.
    pub(crate) fn body_complete(&self) {
        self.hand.fetch_and(!BODY_PENDING, Ordering::AcqRel);
    }

    /// Whether a handler marked the connection as a stream ([`StreamSlot`]).
    pub(crate) fn is_stream(&self) -> bool {
        self.stream.load(Ordering::Acquire)
    }
}

/// Why a request head was not taken on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotTaken {
    /// The connection was shed at that moment.
    Shed,
    /// The routes other than the webhook's hold all the places they may.
    GeneralFull,
}

struct Entry {
    source: Source,
    stream: bool,
    state: Arc<ConnState>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    entries: HashMap<u64, Entry>,
    connections: Tally,
    streams: Tally,
}

/// How early a connection is shed: how many its source holds, whether it waited past the grace,
/// whether it never produced a head, how long it waited; the greatest first.
type ShedRank = (usize, bool, bool, u64);

/// The two pools of one listener.
pub(crate) struct Pool {
    limits: ServerLimits,
    epoch: Instant,
    inner: Mutex<Inner>,
    /// Requests in hand on routes other than the webhook's.
    general: AtomicUsize,
}

/// Why a connection was turned away at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turned {
    /// Its source holds its cap of connections.
    SourceCap,
    /// The pool is full of connections that each have a request in hand.
    TotalCap,
}

/// What admitting a connection did.
pub(crate) struct Admitted {
    /// Its place, given back when dropped.
    pub(crate) slot: Slot,
    /// The source of a connection shed to make room, if one was.
    pub(crate) shed: Option<Source>,
}

impl Pool {
    pub(crate) fn new(limits: &ServerLimits) -> Arc<Self> {
        Arc::new(Self {
            limits: limits.clone(),
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
            general: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A place for a new connection from `source`, shedding one that is not being answered (see
    /// [`victim`](Self::victim)) when the pool is full.
    pub(crate) fn admit(self: &Arc<Self>, source: Source) -> Result<Admitted, Turned> {
        let mut inner = self.lock();
        if inner.connections.of(source) >= self.limits.connections_per_address() {
            return Err(Turned::SourceCap);
        }
        let mut shed = None;
        if inner.connections.total >= self.limits.max_connections() {
            let victim = self.victim(&inner, source).ok_or(Turned::TotalCap)?;
            if let Some(entry) = inner.entries.remove(&victim) {
                inner.connections.remove(entry.source);
                entry.state.shed.notify_one();
                shed = Some(entry.source);
            }
        }
        let id = inner.next;
        inner.next += 1;
        let now = self.now_ms();
        let state = Arc::new(ConnState {
            hand: AtomicUsize::new(0),
            heads: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            head_at: AtomicU64::new(now),
            stream: AtomicBool::new(false),
            shed: Notify::new(),
        });
        inner.entries.insert(
            id,
            Entry {
                source,
                stream: false,
                state: Arc::clone(&state),
            },
        );
        inner.connections.add(source);
        Ok(Admitted {
            slot: Slot {
                pool: Arc::clone(self),
                id,
                source,
                state,
            },
            shed,
        })
    }

    /// The connection to shed for a new one from `newcomer`, marked shed (see [`ConnState::hand`]).
    ///
    /// Only a source holding at least two places more than the newcomer's gives one up: a
    /// source with few connections (Graph's, spread over many addresses) never loses one to a
    /// stranger holding many, and sources at the same count cannot take places from each other
    /// (strangers reopening what was shed would otherwise shed each other's, and keep every
    /// connection young). Among those, a connection that is not being answered: one with no
    /// request in hand, or one whose request's body has not all arrived (a request whose body is
    /// complete is never shed). Ordered by how many its source holds (most first), then one past
    /// the grace ([`ServerLimits::shed_grace`]: idle that long, or its head that old) before one
    /// within it, then one that never produced a head before one idle between requests, then
    /// the longest waiting.
    fn victim(&self, inner: &Inner, newcomer: Source) -> Option<u64> {
        let now = self.now_ms();
        let grace = u64::try_from(self.limits.shed_grace().as_millis()).unwrap_or(u64::MAX);
        let floor = inner.connections.of(newcomer).saturating_add(2);
        let mut candidates: Vec<(u64, usize, ShedRank)> = inner
            .entries
            .iter()
            .filter(|(_, e)| !e.stream)
            .filter_map(|(id, e)| {
                let held = inner.connections.of(e.source);
                if held < floor {
                    return None;
                }
                let hand = e.state.hand.load(Ordering::Acquire);
                if hand & SHED != 0 {
                    return None;
                }
                let since = if hand & COUNT == 0 {
                    e.state.idle_since.load(Ordering::Acquire)
                } else if hand & BODY_PENDING != 0 {
                    e.state.head_at.load(Ordering::Acquire)
                } else {
                    return None; // a whole request in hand
                };
                let waiting = now.saturating_sub(since);
                let never_served = e.state.heads.load(Ordering::Acquire) == 0;
                Some((*id, hand, (held, waiting > grace, never_served, waiting)))
            })
            .collect();
        candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.2));
        candidates.into_iter().find_map(|(id, hand, _)| {
            let entry = inner.entries.get(&id)?;
            entry
                .state
                .hand
                .compare_exchange(hand, hand | SHED, Ordering::AcqRel, Ordering::Acquire)
                .ok()
                .map(|_| id)
        })
    }

    /// Moves connection `id` to the stream pool; `Err` with the reason when its source, or the
    /// pool, holds its cap of streams.
    fn to_stream(&self, id: u64) -> Result<(), &'static str> {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get(&id) else {
            return Ok(()); // shed meanwhile: it is closing
        };
        if entry.stream {
            return Ok(());
        }
        let source = entry.source;
        if inner.streams.of(source) >= self.limits.streams_per_address() {
            return Err("this address holds its cap of event streams");
        }
        if inner.streams.total >= self.limits.max_streams() {
            return Err("the server holds its cap of event streams");
        }
        if let Some(entry) = inner.entries.get_mut(&id) {
            entry.stream = true;
            entry.state.stream.store(true, Ordering::Release);
        }
        inner.connections.remove(source);
        inner.streams.add(source);
        Ok(())
    }
}

/// One connection's place in the pool, given back when the connection ends.
pub(crate) struct Slot {
    pool: Arc<Pool>,
    id: u64,
    source: Source,
    state: Arc<ConnState>,
}

impl Slot {
    pub(crate) fn state(&self) -> &Arc<ConnState> {
        &self.state
    }

    pub(crate) fn source(&self) -> Source {
        self.source
    }

    /// The handle a request carries as an extension, for [`StreamSlot`].
    pub(crate) fn handle(&self) -> ConnHandle {
        ConnHandle {
            pool: Arc::clone(&self.pool),
            id: self.id,
        }
    }

    /// Marks a request in hand until the returned guard drops: one on the webhook's routes
    /// (`webhook`) or on the others (which hold at most their share of the places), whose body
    /// is still to come unless `body_complete`. Refused when the connection was shed, or when
    /// the other routes hold their share.
    pub(crate) fn request(&self, webhook: bool, body_complete: bool) -> Result<InHand, NotTaken> {
        let general = !webhook;
        if general {
            let max = self.pool.limits.max_connections();
            let cap = max - self.pool.limits.reserved_for_webhook().min(max / 2);
            self.pool
                .general
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < cap).then_some(n + 1)
                })
                .map_err(|_| NotTaken::GeneralFull)?;
        }
        self.state
            .head_at
            .store(self.pool.now_ms(), Ordering::Release);
        let pending = if body_complete { 0 } else { BODY_PENDING };
        let taken = self
            .state
            .hand
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |hand| {
                (hand & SHED == 0).then_some(((hand & COUNT) + 1) | pending)
            });
        if taken.is_err() {
            if general {
                self.pool.general.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(NotTaken::Shed);
        }
        self.state.heads.fetch_add(1, Ordering::AcqRel);
        Ok(InHand {
            pool: Arc::clone(&self.pool),
            state: Arc::clone(&self.state),
            general,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.pool.lock();
        if let Some(entry) = inner.entries.remove(&self.id) {
            if entry.stream {
                inner.streams.remove(entry.source);
            } else {
                inner.connections.remove(entry.source);
            }
        }
    }
}

/// A request in hand on a connection: once its body has all arrived, the connection is never
/// shed while it is answered.
pub(crate) struct InHand {
    pool: Arc<Pool>,
    state: Arc<ConnState>,
    general: bool,
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.state
            .idle_since
            .store(self.pool.now_ms(), Ordering::Release);
        let _ = self
            .state
            .hand
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |hand| {
                Some((hand & SHED) | (hand & COUNT).saturating_sub(1))
            });
        if self.general {
            self.pool.general.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Carried by each request served under [`Webhook::serve`](crate::Webhook::serve): which
/// connection of which pool it came on.
#[derive(Clone)]
pub(crate) struct ConnHandle {
    pool: Arc<Pool>,
    id: u64,
}

/// Marks the request's connection as a long-lived stream (Server-Sent Events, a long poll):
/// take it as an extractor in the handler that answers with the stream.
///
/// Under [`Webhook::serve_router`](crate::Webhook::serve_router), the connection then leaves
/// the webhook's connection pool, so that it never holds a place Graph's deliveries need, and
/// counts in the stream pool instead: at most
/// [`ServerLimits::streams_per_address`] per source address (an IPv6 /64) and
/// [`ServerLimits::max_streams`] in all. Past either, the extractor rejects the request with
/// `503 Service Unavailable` and `Retry-After`, before the handler runs. The response closes the
/// connection when it ends (`Connection: close`), whatever it is (an error answered after the
/// extractor ran included), so the place is held only while that response lasts: take
/// `StreamSlot` as the handler's last extractor, so that a request another extractor rejects
/// is not counted at all.
///
/// Behind another server (the router mounted with [`Webhook::router`](crate::Webhook::router)
/// in your own), nothing is counted: the extractor always succeeds, and bounding streams is
/// that server's to do.
///
/// ```
/// use axum::{routing::get, Router};
/// use graph_chat_webhook::StreamSlot;
///
/// // The handler answers with its Server-Sent Events; the extractor ran first.
/// async fn events(_stream: StreamSlot) -> &'static str {
///     "data: hello\n\n"
/// }
/// let app: Router = Router::new().route("/api/events", get(events));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct StreamSlot;

impl<S: Send + Sync> FromRequestParts<S> for StreamSlot {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(handle) = parts.extensions.get::<ConnHandle>() else {
            return Ok(Self);
        };
        match handle.pool.to_stream(handle.id) {
            Ok(()) => Ok(Self),
            Err(reason) => {
                let mut response = (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_STREAM_AFTER),
                );
                Err(response)
            }
        }
    }
}

/// `Retry-After` on a stream refused at its cap, in seconds.
const RETRY_STREAM_AFTER: &str = "5";

#[cfg(test)]
mod tests {
    use super::{NotTaken, Pool, Turned};
    use crate::limits::ServerLimits;
    use crate::source::Source;

    fn source(ip: &str) -> Source {
        Source::of(ip.parse().unwrap())
    }

    fn limits(max: usize) -> ServerLimits {
        ServerLimits::default()
            .with_max_connections(max)
            .with_connections_per_address(max)
    }

    /// A brand-new connection (no head yet) from a source holding few is not shed ahead of
    /// those of a source holding more, even when theirs have just been answered.
    #[test]
    fn a_new_connection_of_a_source_holding_few_is_kept_over_a_strangers() {
        let pool = Pool::new(&limits(3));
        let stranger = source("127.0.0.2");
        let a = pool.admit(stranger).unwrap().slot;
        let b = pool.admit(stranger).unwrap().slot;
        for slot in [&a, &b] {
            drop(slot.request(true, true).unwrap());
        }
        let graph = pool.admit(source("127.0.0.1")).unwrap().slot;
        let newcomer = pool.admit(source("127.0.0.3")).unwrap();
        assert_eq!(newcomer.shed, Some(stranger));
        drop(graph);
    }

    /// A connection whose whole request is in hand is never shed; one whose body is still to
    /// come is; a shed connection takes no further request.
    #[test]
    fn only_requests_whose_body_is_still_to_come_are_shed() {
        let pool = Pool::new(&limits(2));
        let stranger = source("127.0.0.2");
        let whole = pool.admit(stranger).unwrap().slot;
        let pending = pool.admit(stranger).unwrap().slot;
        let _answered = whole.request(true, true).unwrap();
        let waiting = pending.request(true, false).unwrap();
        let graph = pool.admit(source("127.0.0.1")).unwrap();
        assert_eq!(graph.shed, Some(stranger));
        drop(waiting);
        assert_eq!(pending.request(true, true).err(), Some(NotTaken::Shed));
        // The stranger holds one, as few as a newcomer would: nothing more is shed.
        assert_eq!(
            pool.admit(source("127.0.0.3")).err(),
            Some(Turned::TotalCap)
        );
    }

    /// Routes other than the webhook's hold at most the places not kept for it.
    #[test]
    fn other_routes_leave_the_webhooks_places() {
        let pool = Pool::new(&limits(4).with_reserved_for_webhook(2));
        let slots: Vec<_> = (2..6)
            .map(|i| pool.admit(source(&format!("127.0.0.{i}"))).unwrap().slot)
            .collect();
        let first = slots[0].request(false, true).unwrap();
        let _second = slots[1].request(false, true).unwrap();
        assert_eq!(
            slots[2].request(false, true).err(),
            Some(NotTaken::GeneralFull)
        );
        let _webhook = slots[2].request(true, true).unwrap();
        drop(first);
        let _again = slots[3].request(false, true).unwrap();
    }
}
