//! Every bound the server applies, each a named default with the reason for its number;
//! [`ServerLimits`] carries them, changeable one by one.

use std::time::Duration;

/// Bytes of request bodies the server holds at once, over every connection: 256 MiB. Sixteen
/// bodies at Graph's 16 MiB limit, or thousands of Graph-sized batches (tens of KiB each); the
/// flood of 120 hostile 15 MiB bodies in the test suite stays far below 512 MiB of memory.
pub const BODY_BUDGET_BYTES: usize = 256 << 20;
/// Bytes of request bodies one source (an IPv4 address, an IPv6 /64) may hold at once: 32 MiB,
/// an eighth of [`BODY_BUDGET_BYTES`]. Graph spreads its deliveries over many addresses and
/// holds a few bodies at a time from each (tens of KiB each: hundreds of its batches fit), so
/// a few addresses holding megabytes for little progress spend only their own shares, never
/// the budget. A share counts the bytes received (two 10 MiB batches hold 20 MiB of it). Past
/// it the source's next body is answered 503.
pub const BODY_BYTES_PER_ADDRESS: usize = 32 << 20;
/// A body past 1 MiB is large: Graph's batches of rich notifications are tens of KiB, so only
/// floods and oversized batches are.
pub const LARGE_BODY_BYTES: usize = 1 << 20;
/// Large bodies read at once: 4, so that a flood of large bodies holds at most 64 MiB and never
/// the budget that Graph-sized batches need.
pub const LARGE_BODIES: usize = 4;
/// A body may start slowly for 2 s (TCP slow start, a busy sender) before the rate counts.
pub const BODY_GRACE: Duration = Duration::from_secs(2);
/// After the grace, a body must average 16 KiB/s since its first byte (the idea of Apache's
/// `mod_reqtimeout` `MinRate`): Graph sends from data centres at many MiB/s; a sender trickling
/// 2 bytes every 0.4 s is cut off after the grace.
pub const MIN_BODY_BYTES_PER_SECOND: u64 = 16 * 1024;
/// Past [`LARGE_BODY_BYTES`], a body must average 1 MiB/s since its first byte: only a few large
/// bodies are read at once, so holding a turn with a slow large body must cost a sender real
/// bandwidth (Graph's rare large batches arrive at many MiB/s).
pub const LARGE_MIN_BODY_BYTES_PER_SECOND: u64 = 1 << 20;
/// The minimum rates hold over every window of 2 s after the grace, not only on average since
/// the first byte: a body that sends 1 MB at once and then a byte every 3 s averages well above
/// 16 KiB/s for a minute, but its last 2 s hold a byte, so it is cut 2 s after its burst
/// (freeing its share of the budget). 2 s is the grace again: a sender that pauses for TCP or
/// a busy moment keeps its body. Past [`LARGE_BODY_BYTES`] a window need hold only half of
/// [`LARGE_MIN_BODY_BYTES_PER_SECOND`] (1 MiB): a batch of megabytes at 1.5 MB/s keeps its turn
/// through a second's stall of TCP, while the average since the first byte still holds it to
/// 1 MiB/s.
pub const BODY_RATE_WINDOW: Duration = Duration::from_secs(2);
/// At most 5 s between two pieces of a body (nginx's `client_body_timeout`, shorter).
pub const BODY_IDLE: Duration = Duration::from_secs(5);
/// A body must be complete within 60 s whatever its rate.
pub const BODY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a body waits for room in the budget (or a large-body turn) before it is answered
/// 503: 1 s, well inside Graph's 3 s.
pub const BUDGET_WAIT: Duration = Duration::from_secs(1);
/// A request head (request line and headers) must arrive within 10 s of the connection opening
/// (and, with hyper 1.12, of the previous response: an idle keep-alive connection then closes
/// after 10 s): Graph sends its head at once; a sender adding a header line every 2 s is cut
/// off.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// A connection with no byte in either direction for 30 s is closed, whatever it is waiting
/// for: the server's own bound, beside hyper's head deadline.
pub const IDLE_DEADLINE: Duration = Duration::from_secs(30);
/// Connections one source may hold open: 128. Graph spreads its deliveries over many addresses
/// and holds a few connections from each (it sends a batch and waits for the answer), so 128
/// is ample; it takes six sources to fill [`MAX_CONNECTIONS`], not three, and past the total
/// the connections not being answered are shed ([`SHED_GRACE`]). Connections past
/// it are closed as they are accepted. An IPv6 source counts by its /64 (one host holds a
/// whole /64, and an attacker controls one); an IPv4 source by its address, not its /24 (a /24
/// would put every loopback client, and the many senders behind one NAT, in one group).
pub const CONNECTIONS_PER_ADDRESS: usize = 128;
/// Connections held open at once in the webhook's connection pool, over every source: 768,
/// which with [`MAX_STREAMS`] stays under systemd's default of 1,024 open files with room for
/// the inbox, the JWKS fetch and the program (raise them together).
pub const MAX_CONNECTIONS: usize = 768;
/// At the connection cap, a new connection sheds one that is not being answered (no request in
/// hand, or a request whose body has not all arrived; never one whose whole request is being
/// answered), from a source holding at least two more connections than the new one's, the
/// source holding the most first; within it, one idle (or waiting for its body) past 1 s before
/// a younger one, then one that never produced a head. Graph sends a whole request as soon as
/// it connects and holds few connections per address, so it never loses one to strangers
/// holding many, and 1 s is ample for its head and body; strangers reopening what was shed
/// cannot shed each other's (they hold as many). Only when no such connection is left is the
/// new one closed.
pub const SHED_GRACE: Duration = Duration::from_secs(1);
/// Of [`MAX_CONNECTIONS`], the places only the webhook's routes (`/notifications`, `/lifecycle`,
/// `/eventgrid`, told by the path of each request head) may hold a request in: 256, a third.
/// The other routes of a program's router ([`Webhook::serve_router`](crate::Webhook::serve_router):
/// a page, its API, whose requests may wait on calls of their own) hold requests in the other
/// 512 at most; past that their request is answered 503 and its connection closed, so whatever
/// they wait on, Graph's deliveries and handshakes keep a third of the places. At most half of
/// the connection cap is kept, whatever this says.
pub const RESERVED_FOR_WEBHOOK: usize = 256;
/// Long-lived streams (the responses a handler marks with
/// [`StreamSlot`](crate::StreamSlot): Server-Sent Events) one source may hold: 16, a person's
/// browser tabs, or a small office behind one address; they are counted apart from
/// [`CONNECTIONS_PER_ADDRESS`], so they never take Graph's places.
pub const STREAMS_PER_ADDRESS: usize = 16;
/// Long-lived streams held at once, over every source: 128, beside [`MAX_CONNECTIONS`] under
/// 1,024 open files; past it a new stream is answered 503.
pub const MAX_STREAMS: usize = 128;
/// On shutdown, connections get 5 s to finish the request in hand; then they are closed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A JWKS fetch must be answered whole, head and body, within 5 s, whatever the endpoint sends
/// (a drip of a byte a second included): the identity platform answers its few KiB in well under
/// a second, start-up fails with a clear error instead of hanging, and a refresh cut by it is
/// over, so the next unknown key may ask again under the refresh policy.
pub const JWKS_DEADLINE: Duration = Duration::from_secs(5);
/// How long a request waits for a JWKS fetch it started (a token named an unknown key): 1 s;
/// past it the batch is answered 503 and the fetch goes on for Graph's retry.
pub const JWKS_WAIT: Duration = Duration::from_secs(1);
/// How long the SQLite inbox waits for a commit before the request is answered 503 (Graph
/// retries): 2 s, inside Graph's 3 s ([`SqliteInbox::with_commit_wait`](crate::SqliteInbox::with_commit_wait)).
pub const COMMIT_WAIT: Duration = Duration::from_secs(2);
/// A request head may hold at most 64 KiB (hyper's read buffer; its default grows to about
/// 400 KiB per connection, outside the body budget): Graph's heads are well under 2 KiB.
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// At most 64 header lines in a request head (Graph sends about ten).
pub const MAX_HEADERS: usize = 64;
/// Admissions (parsing and token checks, off the async threads) running at once: twice the
/// cores, so that a flood of cheap bodies cannot crowd the async threads out of the CPU; a body
/// that cannot start within [`BUDGET_WAIT`] is answered 503.
pub const ADMISSIONS_PER_CORE: usize = 2;

/// Past 1 GiB of pending records the SQLite inbox refuses new batches (503): the workers are far
/// behind, and Graph keeps retrying for hours
/// ([`SqliteInbox::with_cap_bytes`](crate::SqliteInbox::with_cap_bytes) changes it).
pub const INBOX_CAP_BYTES: u64 = 1 << 30;

/// How long a batch claimed from the PostgreSQL inbox stays with the copy that claimed it
/// without a renewal: 15 s, the longest a batch held by a copy that died waits for another.
/// A living copy renews its leases every third of it, so a slow batch is not taken over.
pub const INBOX_LEASE: Duration = Duration::from_secs(15);

/// How often a waiting claim of the PostgreSQL inbox asks the database again: 250 ms, so that a
/// batch another copy stored, a lease that ran out or a delayed batch that fell due is handed
/// out within a quarter of a second, for one indexed query per waiting worker (a batch this
/// copy stored wakes its claimers at once).
pub const INBOX_POLL: Duration = Duration::from_millis(250);

/// The server's bounds: [`Default`] is the constants of this module; each `with_*` changes one.
///
/// ```
/// use std::time::Duration;
/// use graph_chat_webhook::ServerLimits;
/// let limits = ServerLimits::default()
///     .with_connections_per_address(64)
///     .with_min_body_bytes_per_second(64 * 1024);
/// assert_eq!(limits.connections_per_address(), 64);
/// assert_eq!(limits.head_deadline(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    body_budget: usize,
    body_budget_per_address: usize,
    large_body: usize,
    large_bodies: usize,
    body_grace: Duration,
    min_body_rate: u64,
    large_min_body_rate: u64,
    body_rate_window: Duration,
    body_idle: Duration,
    body_deadline: Duration,
    budget_wait: Duration,
    head_deadline: Duration,
    idle_deadline: Duration,
    connections_per_address: usize,
    max_connections: usize,
    shed_grace: Duration,
    reserved_for_webhook: usize,
    streams_per_address: usize,
    max_streams: usize,
    shutdown_grace: Duration,
    jwks_wait: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            body_budget: BODY_BUDGET_BYTES,
            body_budget_per_address: BODY_BYTES_PER_ADDRESS,
            large_body: LARGE_BODY_BYTES,
            large_bodies: LARGE_BODIES,
            body_grace: BODY_GRACE,
            min_body_rate: MIN_BODY_BYTES_PER_SECOND,
            large_min_body_rate: LARGE_MIN_BODY_BYTES_PER_SECOND,
            body_rate_window: BODY_RATE_WINDOW,
            body_idle: BODY_IDLE,
            body_deadline: BODY_DEADLINE,
            budget_wait: BUDGET_WAIT,
            head_deadline: HEAD_DEADLINE,
            idle_deadline: IDLE_DEADLINE,
            connections_per_address: CONNECTIONS_PER_ADDRESS,
            max_connections: MAX_CONNECTIONS,
            shed_grace: SHED_GRACE,
            reserved_for_webhook: RESERVED_FOR_WEBHOOK,
            streams_per_address: STREAMS_PER_ADDRESS,
            max_streams: MAX_STREAMS,
            shutdown_grace: SHUTDOWN_GRACE,
            jwks_wait: JWKS_WAIT,
        }
    }
}

macro_rules! limit {
    ($($(#[$doc:meta])* $field:ident: $ty:ty, $with:ident;)*) => {
        impl ServerLimits {
            $(
                $(#[$doc])*
                pub fn $with(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }

                $(#[$doc])*
                pub fn $field(&self) -> $ty {
                    self.$field
                }
            )*
        }
    };
}

limit! {
    /// Bytes of bodies held at once ([`BODY_BUDGET_BYTES`]).
    body_budget: usize, with_body_budget;
    /// Bytes of bodies one source holds at once ([`BODY_BYTES_PER_ADDRESS`]).
    body_budget_per_address: usize, with_body_budget_per_address;
    /// Past this many bytes a body is large ([`LARGE_BODY_BYTES`]).
    large_body: usize, with_large_body;
    /// Large bodies read at once ([`LARGE_BODIES`]).
    large_bodies: usize, with_large_bodies;
    /// Time before the minimum rate counts ([`BODY_GRACE`]).
    body_grace: Duration, with_body_grace;
    /// Minimum average body rate after the grace, bytes per second ([`MIN_BODY_BYTES_PER_SECOND`]).
    min_body_rate: u64, with_min_body_bytes_per_second;
    /// Minimum average rate of a large body, bytes per second ([`LARGE_MIN_BODY_BYTES_PER_SECOND`]).
    large_min_body_rate: u64, with_large_min_body_bytes_per_second;
    /// The window over which the minimum rates hold ([`BODY_RATE_WINDOW`]).
    body_rate_window: Duration, with_body_rate_window;
    /// Longest pause inside a body ([`BODY_IDLE`]).
    body_idle: Duration, with_body_idle;
    /// Longest time for a whole body ([`BODY_DEADLINE`]).
    body_deadline: Duration, with_body_deadline;
    /// Longest wait for room in the budget ([`BUDGET_WAIT`]).
    budget_wait: Duration, with_budget_wait;
    /// Longest time for a request head ([`HEAD_DEADLINE`]).
    head_deadline: Duration, with_head_deadline;
    /// Longest silence on a connection ([`IDLE_DEADLINE`]).
    idle_deadline: Duration, with_idle_deadline;
    /// Connections per source address ([`CONNECTIONS_PER_ADDRESS`]).
    connections_per_address: usize, with_connections_per_address;
    /// Connections in all ([`MAX_CONNECTIONS`]).
    max_connections: usize, with_max_connections;
    /// Time a connection waits (idle, or for its body) after which it is shed first at the cap
    /// ([`SHED_GRACE`]).
    shed_grace: Duration, with_shed_grace;
    /// Places of the connection pool for the webhook's routes alone ([`RESERVED_FOR_WEBHOOK`]).
    reserved_for_webhook: usize, with_reserved_for_webhook;
    /// Long-lived streams per source address ([`STREAMS_PER_ADDRESS`]).
    streams_per_address: usize, with_streams_per_address;
    /// Long-lived streams in all ([`MAX_STREAMS`]).
    max_streams: usize, with_max_streams;
    /// Time connections get to finish on shutdown ([`SHUTDOWN_GRACE`]).
    shutdown_grace: Duration, with_shutdown_grace;
    /// Longest wait for a JWKS fetch a request started ([`JWKS_WAIT`]).
    jwks_wait: Duration, with_jwks_wait;
}

impl ServerLimits {
    /// When the next piece of a body must have arrived, `elapsed` into the body with `received`
    /// bytes so far and the last piece `since_last` ago: the earliest of the rate's deadline
    /// (after the grace), the idle deadline and the whole-body deadline, as a time from the
    /// body's start.
    pub(crate) fn next_piece_deadline(&self, received: u64, last_piece_at: Duration) -> Duration {
        let min_rate = if received > self.large_body as u64 {
            self.large_min_body_rate
        } else {
            self.min_body_rate
        };
        let rate = Duration::try_from_secs_f64(received as f64 / min_rate.max(1) as f64)
            .unwrap_or(Duration::MAX);
        self.body_grace
            .saturating_add(rate)
            .min(last_piece_at.saturating_add(self.body_idle))
            .min(self.body_deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_is_cut_after_the_grace_and_a_stall_after_the_idle_deadline() {
        let limits = ServerLimits::default();
        // 2 bytes received, the last 0.4 s in: the rate's deadline is just after the grace.
        let d = limits.next_piece_deadline(2, Duration::from_millis(400));
        assert!(
            d > BODY_GRACE && d < BODY_GRACE + Duration::from_millis(1),
            "{d:?}"
        );
        // 1 MiB in the first second, then silence: the idle deadline comes first.
        let d = limits.next_piece_deadline(1 << 20, Duration::from_secs(1));
        assert_eq!(d, Duration::from_secs(1) + BODY_IDLE);
        // A large body must keep up 1 MiB/s: 15 MiB by about 17 s.
        let d = limits.next_piece_deadline(15 << 20, Duration::from_secs(14));
        assert_eq!(d, BODY_GRACE + Duration::from_secs(15));
        // Past the whole-body deadline nothing is waited for.
        let d = limits.next_piece_deadline(15 << 20, Duration::from_secs(59));
        assert!(d <= BODY_DEADLINE);
    }
}
