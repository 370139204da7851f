//! The connections the server holds, in two pools on one listener: the webhook's connection
//! pool (Graph's deliveries, and every other request), and the stream pool (long-lived
//! responses a handler marked with [`StreamSlot`]), each with its cap per source and in all.
//!
//! Past the connection cap a new connection is not turned away while a connection that has not
//! produced a request head in time holds a place: that one is shed for it (the source holding
//! the most first), so strangers holding half-sent heads from a few addresses cannot keep Graph
//! out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// What the pool knows of one connection while it runs: requests in hand, since when it has had
/// none, and the signal that sheds it.
pub(crate) struct ConnState {
    in_hand: AtomicUsize,
    /// Requests heads it has produced.
    heads: AtomicU64,
    /// When it last had no request in hand (opened, or answered its last), in milliseconds from
    /// the pool's epoch.
    idle_since: AtomicU64,
    shed: Notify,
}

impl ConnState {
    /// Resolves when the pool shed this connection for a new one.
    pub(crate) async fn shed(&self) {
        self.shed.notified().await;
    }
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

/// The two pools of one listener.
pub(crate) struct Pool {
    limits: ServerLimits,
    epoch: Instant,
    inner: Mutex<Inner>,
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
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A place for a new connection from `source`, shedding one that has not produced a request
    /// head in time when the pool is full.
    pub(crate) fn admit(self: &Arc<Self>, source: Source) -> Result<Admitted, Turned> {
        let mut inner = self.lock();
        if inner.connections.of(source) >= self.limits.connections_per_address() {
            return Err(Turned::SourceCap);
        }
        let mut shed = None;
        if inner.connections.total >= self.limits.max_connections() {
            let victim = self.victim(&inner).ok_or(Turned::TotalCap)?;
            if let Some(entry) = inner.entries.remove(&victim) {
                inner.connections.remove(entry.source);
                entry.state.shed.notify_one();
                shed = Some(entry.source);
            }
        }
        let id = inner.next;
        inner.next += 1;
        let state = Arc::new(ConnState {
            in_hand: AtomicUsize::new(0),
            heads: AtomicU64::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
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

    /// The connection to shed for a new one, among those with no request in hand: one idle for
    /// longer than the grace before one idle for less (a connection just opened has had no time
    /// to send its head), then one that never produced a head before one idle between
    /// requests, then one whose source holds the most, then the longest idle. A new connection
    /// from a source holding few is shed last, after every connection of the sources holding
    /// more.
    fn victim(&self, inner: &Inner) -> Option<u64> {
        let now = self.now_ms();
        let grace = u64::try_from(self.limits.shed_grace().as_millis()).unwrap_or(u64::MAX);
        inner
            .entries
            .iter()
            .filter(|(_, e)| !e.stream && e.state.in_hand.load(Ordering::Acquire) == 0)
            .map(|(id, e)| {
                let idle = now.saturating_sub(e.state.idle_since.load(Ordering::Acquire));
                let never_served = e.state.heads.load(Ordering::Acquire) == 0;
                let held = inner.connections.of(e.source);
                (*id, (idle > grace, never_served, held, idle))
            })
            .max_by_key(|(_, key)| *key)
            .map(|(id, _)| id)
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

    /// Marks a request in hand until the returned guard drops.
    pub(crate) fn request(&self) -> InHand {
        self.state.in_hand.fetch_add(1, Ordering::AcqRel);
        self.state.heads.fetch_add(1, Ordering::AcqRel);
        InHand {
            pool: Arc::clone(&self.pool),
            state: Arc::clone(&self.state),
        }
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

/// A request in hand on a connection: while one is, the connection is never shed.
pub(crate) struct InHand {
    pool: Arc<Pool>,
    state: Arc<ConnState>,
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.state
            .idle_since
            .store(self.pool.now_ms(), Ordering::Release);
        self.state.in_hand.fetch_sub(1, Ordering::AcqRel);
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
/// `503 Service Unavailable` and `Retry-After`, before the handler runs. The place is held until
/// the connection closes (a stream's connection serves nothing else meanwhile).
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
