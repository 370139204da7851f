//! The inbox several copies of the webhook share: PostgreSQL, batches claimed with leases.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tokio_postgres::{Client, Config};

use crate::inbox::{BatchId, Inbox, InboxError, InboxStats, NewBatch, Route, StoredBatch};
use crate::limits::{COMMIT_WAIT, INBOX_CAP_BYTES, INBOX_LEASE, INBOX_POLL};
use crate::pg_tls::{connect_with, RustlsConnect};

/// The schema this version of the crate writes; a database at a later version is refused.
const SCHEMA_VERSION: i32 = 1;
/// The advisory lock that makes concurrent opens migrate one at a time (any fixed number: the
/// bytes of "gcwinbox").
const MIGRATION_LOCK: i64 = 0x6763_7769_6e62_6f78;
/// Idle connections kept for the next call at most: the workers and the requests in flight
/// rarely need more at once; more are opened when they do, and closed after.
const IDLE_CONNECTIONS: usize = 16;

/// The tables, made by the first open: the batches, and one row of totals that every `put` and
/// `done` updates (so the byte cap holds across copies, and ids are taken in commit order).
const MIGRATION_1: &str = "
CREATE TABLE gcw_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_ms bigint NOT NULL,
    route text NOT NULL,
    record bytea NOT NULL,
    bytes bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    due timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    holder bigint
);
CREATE INDEX gcw_inbox_holder ON gcw_inbox (holder) WHERE holder IS NOT NULL;
CREATE TABLE gcw_inbox_totals (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    batches bigint NOT NULL,
    bytes bigint NOT NULL
);
INSERT INTO gcw_inbox_totals (batches, bytes) VALUES (0, 0);
CREATE SEQUENCE gcw_inbox_holders;
";

/// An [`Inbox`] in a PostgreSQL database, which several copies of the webhook share: each
/// batch is committed before [`put`](Inbox::put) returns (before the 2xx), and any copy's
/// workers may claim it.
///
/// * A claim takes the oldest batch due with `SELECT ... FOR UPDATE SKIP LOCKED` and writes a
///   lease on it (`lease_until`, [`INBOX_LEASE`] by default): no other copy takes it while the
///   lease runs. A thread renews this copy's leases every third of the lease, so a long batch
///   keeps its lease; a copy that dies (or whose connection is cut) stops renewing, and its
///   batches are taken over by another copy once their leases run out, with one more attempt
///   counted. A restarted copy is a new holder: it takes over its old leases the same way.
/// * [`release`](Inbox::release) gives a batch back to be due after its delay; a copy whose
///   lease was taken over cannot give back the batch another copy holds.
///   [`done`](Inbox::done) deletes its row.
/// * The byte cap ([`INBOX_CAP_BYTES`] by default) counts what every copy stored, through one
///   row of totals that each `put` and `done` updates in its transaction. A `put` takes that
///   row's lock before its id, so ids increase in commit order across copies; the price is that
///   puts commit one at a time (one WAL flush each), which is fine at Graph's batch rates.
/// * A waiting [`claim`](Inbox::claim) polls the database every [`INBOX_POLL`], and wakes at
///   once for a batch this copy stored. Not `LISTEN`/`NOTIFY`: a `NOTIFY` takes a lock for the
///   whole cluster at commit, which would serialise every put's commit on the path Graph waits
///   for; and no notification marks a lease running out or a delayed batch falling due, which
///   a poll finds anyway.
/// * [`stats`](Inbox::stats) are the database's: every copy's batches.
///
/// The tables (`gcw_inbox`, `gcw_inbox_totals`, `gcw_inbox_schema`) are made, or migrated, when
/// the inbox opens, in the connection's `search_path`: give each inbox its own schema with
/// `options=-c search_path=NAME` in the URL. The connection string is libpq's (URL or
/// `key=value`). `sslmode=require` connects with TLS (rustls on AWS-LC) and verifies the
/// server's certificate and name against the platform's certificate store, as the crate's
/// HTTPS calls do: stricter than libpq's `require`, which verifies nothing, and a connection
/// that cannot verify fails rather than going on in the clear. `sslmode=disable` and the
/// default `prefer` connect without TLS (over loopback, a Unix socket such as
/// `host=/run/postgresql`, or a private network).
///
/// PostgreSQL keeps a deleted row's bytes in its pages until `VACUUM` reuses them: unlike the
/// SQLite inbox, a done batch is not wiped from the disk at once.
///
/// ```no_run
/// use graph_chat_webhook::PgInbox;
/// let inbox = PgInbox::open("postgres://webhook@127.0.0.1/webhook")?.with_cap_bytes(4 << 30);
/// # Ok::<(), graph_chat_webhook::InboxError>(())
/// ```
pub struct PgInbox {
    shared: Arc<Shared>,
    cap: u64,
    commit_wait: Duration,
    renewer: Mutex<Option<thread::JoinHandle<()>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// What the inbox's calls and its lease renewer share.
struct Shared {
    config: Config,
    /// TLS for `sslmode=require`; none for `disable` and `prefer`.
    tls: Option<RustlsConnect>,
    runtime: tokio::runtime::Handle,
    idle: Mutex<Vec<Client>>,
    /// This copy's name in the `holder` column.
    holder: i64,
    lease: Mutex<Duration>,
    closed: AtomicBool,
    /// Bumped by each local put; claimers wait on it.
    stored: Mutex<u64>,
    wake: Condvar,
    /// Set when the inbox is dropped: the renewer stops.
    stop: Mutex<bool>,
    stop_wake: Condvar,
}

impl std::fmt::Debug for PgInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database's name and hosts only: never the user or the password.
        let hosts: Vec<String> = self
            .shared
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        f.debug_struct("PgInbox")
            .field("hosts", &hosts)
            .field("dbname", &self.shared.config.get_dbname())
            .field("cap", &self.cap)
            .field("lease", &self.shared.lease())
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> InboxError {
    InboxError::Unavailable {
        reason: e.to_string(),
    }
}

/// Why a call failed: the database's error, or no answer in time.
enum Failed {
    Db(tokio_postgres::Error),
    Late(Duration),
}

impl From<Failed> for InboxError {
    fn from(f: Failed) -> Self {
        match f {
            Failed::Db(e) => unavailable(e),
            Failed::Late(limit) => InboxError::Unavailable {
                reason: format!("no answer from the database within {limit:?}"),
            },
        }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => e.fmt(f),
            Self::Late(limit) => write!(f, "no answer within {limit:?}"),
        }
    }
}

impl Shared {
    fn lease(&self) -> Duration {
        *self.lease.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `op` on a connection (an idle one, or a new one), within `limit` for the connection
    /// and the work together. A connection comes back to the idle list only after a success: one
    /// that failed or was cut off may be in any state.
    fn run<T>(
        &self,
        limit: Duration,
        op: impl AsyncFnOnce(&mut Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, Failed> {
        let pooled = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|c| !c.is_closed());
            idle.pop()
        };
        let (config, tls) = (&self.config, &self.tls);
        let out = self.runtime.block_on(async {
            tokio::time::timeout(limit, async {
                let mut client = match pooled {
                    Some(c) => c,
                    None => connect_with(config, tls.as_ref(), None).await?.0,
                };
                let value = op(&mut client).await?;
                Ok::<_, tokio_postgres::Error>((client, value))
            })
            .await
        });
        match out {
            Ok(Ok((client, value))) => {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < IDLE_CONNECTIONS {
                    idle.push(client);
                }
                Ok(value)
            }
            Ok(Err(e)) => Err(Failed::Db(e)),
            Err(_) => Err(Failed::Late(limit)),
        }
    }

    /// Extends every lease this copy holds.
    fn renew(&self) -> Result<u64, Failed> {
        let (holder, secs) = (self.holder, self.lease().as_secs_f64());
        self.run(COMMIT_WAIT, async move |c: &mut Client| {
            c.execute(
                "UPDATE gcw_inbox SET lease_until = now() + make_interval(secs => $2)
                 WHERE holder = $1 AND lease_until IS NOT NULL",
                &[&holder, &secs],
            )
            .await
        })
    }
}

/// Every third of the lease, until the inbox is dropped.
fn renew_loop(shared: &Shared) {
    let mut stop = shared.stop.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let every = shared.lease() / 3;
        stop = shared
            .stop_wake
            .wait_timeout(stop, every)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if *stop {
            return;
        }
        drop(stop);
        if let Err(e) = shared.renew() {
            tracing::warn!(target: "graph_chat_webhook", error = %e, "cannot renew the inbox's leases");
        }
        stop = shared.stop.lock().unwrap_or_else(|p| p.into_inner());
    }
}

/// Makes or migrates the tables, one opener at a time; this copy's holder number.
async fn migrate(client: &mut Client) -> Result<Result<i64, String>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS gcw_inbox_schema (version integer NOT NULL)")
        .await?;
    let version: Option<i32> = tx
        .query_one("SELECT max(version) FROM gcw_inbox_schema", &[])
        .await?
        .get(0);
    let version = version.unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Ok(Err(format!(
            "the inbox's tables are at version {version}, made by a later release (this one knows {SCHEMA_VERSION})"
        )));
    }
    if version < 1 {
        tx.batch_execute(MIGRATION_1).await?;
    }
    if version < SCHEMA_VERSION {
        tx.execute("DELETE FROM gcw_inbox_schema", &[]).await?;
        tx.execute(
            "INSERT INTO gcw_inbox_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await?;
    }
    let holder: i64 = tx
        .query_one("SELECT nextval('gcw_inbox_holders')", &[])
        .await?
        .get(0);
    tx.commit().await?;
    Ok(Ok(holder))
}

impl PgInbox {
    /// Connects to the database `url` names (libpq's URL or `key=value` form), makes or migrates
    /// the inbox's tables, and starts renewing this copy's leases. Batches stored there and not
    /// yet done are handed out (those another copy holds once their leases run out).
    ///
    /// Call it off any async thread (like every call of the inbox): it blocks.
    pub fn open(url: &str) -> Result<Self, InboxError> {
        // The parser's message may quote the string, and the string may hold a password.
        let config = Config::from_str(url).map_err(|_| InboxError::Unavailable {
            reason: "not a PostgreSQL connection string (URL or key=value)".into(),
        })?;
        let tls = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer => {
                None
            }
            _ => Some(RustlsConnect::new().map_err(|e| InboxError::Unavailable {
                reason: format!("cannot set up TLS to the database: {e}"),
            })?),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("inbox-postgres")
            .enable_io()
            .enable_time()
            .build()
            .map_err(unavailable)?;
        let mut shared = Shared {
            config,
            tls,
            runtime: runtime.handle().clone(),
            idle: Mutex::new(Vec::new()),
            holder: 0,
            lease: Mutex::new(INBOX_LEASE),
            closed: AtomicBool::new(false),
            stored: Mutex::new(0),
            wake: Condvar::new(),
            stop: Mutex::new(false),
            stop_wake: Condvar::new(),
        };
        // Connecting and migrating get longer than a commit: a first open makes the tables.
        shared.holder = shared
            .run(COMMIT_WAIT * 5, migrate)
            .map_err(InboxError::from)?
            .map_err(|reason| InboxError::Unavailable { reason })?;
        let shared = Arc::new(shared);
        let renewing = Arc::clone(&shared);
        let renewer = thread::Builder::new()
            .name("inbox-leases".into())
            .spawn(move || renew_loop(&renewing))
            .map_err(unavailable)?;
        Ok(Self {
            shared,
            cap: INBOX_CAP_BYTES,
            commit_wait: COMMIT_WAIT,
            renewer: Mutex::new(Some(renewer)),
            runtime: Some(runtime),
        })
    }

    /// Refuses batches past `cap` bytes of pending records, counted over every copy (default
    /// [`INBOX_CAP_BYTES`]).
    pub fn with_cap_bytes(mut self, cap: u64) -> Self {
        self.cap = cap;
        self
    }

    /// How long [`put`](Inbox::put) waits for its commit before it gives up (default
    /// [`COMMIT_WAIT`]): keep it inside Graph's 3 s with the rest of a request's work.
    pub fn with_commit_wait(mut self, wait: Duration) -> Self {
        self.commit_wait = wait;
        self
    }

    /// How long a claimed batch stays with this copy without a renewal (default
    /// [`INBOX_LEASE`]): the time another copy waits before it takes over the batches of a copy
    /// that died. Renewed every third of it while this copy lives. At least 300 ms.
    pub fn with_lease(self, lease: Duration) -> Self {
        *self.shared.lease.lock().unwrap_or_else(|p| p.into_inner()) =
            lease.max(Duration::from_millis(300));
        self
    }

    fn try_claim(&self) -> Result<Option<StoredBatch>, Failed> {
        let (holder, secs) = (self.shared.holder, self.shared.lease().as_secs_f64());
        let row = self
            .shared
            .run(self.commit_wait, async move |c: &mut Client| {
                c.query_opt(
                    "UPDATE gcw_inbox SET
                    lease_until = now() + make_interval(secs => $2),
                    holder = $1,
                    attempts = attempts + CASE WHEN lease_until IS NULL THEN 0 ELSE 1 END
                 WHERE id = (
                    SELECT id FROM gcw_inbox
                    WHERE due <= now() AND (lease_until IS NULL OR lease_until <= now())
                    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, route, received_ms, record, attempts",
                    &[&holder, &secs],
                )
                .await
            })?;
        Ok(row.map(|row| {
            let route: String = row.get(1);
            let ms: i64 = row.get(2);
            let attempts: i32 = row.get(4);
            StoredBatch {
                id: BatchId(row.get::<_, i64>(0) as u64),
                route: Route::from_stored(&route).unwrap_or(Route::Notifications),
                received: UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64),
                record: row.get(3),
                attempts: attempts.max(0) as u32,
            }
        }))
    }
}

impl Inbox for PgInbox {
    fn put(&self, batch: NewBatch) -> Result<BatchId, InboxError> {
        // `close` stops claims, not commits (as for the other inboxes): requests in flight
        // during a shutdown still store what they were answered 2xx for.
        let len = batch.record.len() as i64;
        let cap = i64::try_from(self.cap).unwrap_or(i64::MAX);
        let received_ms = batch
            .received
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let route = batch.route.as_str();
        let record = batch.record;
        let stored = self
            .shared
            .run(self.commit_wait, async move |c: &mut Client| {
                let tx = c.transaction().await?;
                // The totals' lock first: the id below is taken under it, so ids increase in
                // commit order, and concurrent puts cannot pass the cap together.
                let counted = tx
                    .query_opt(
                        "UPDATE gcw_inbox_totals SET bytes = bytes + $1, batches = batches + 1
                         WHERE bytes + $1 <= $2 RETURNING bytes",
                        &[&len, &cap],
                    )
                    .await?;
                if counted.is_none() {
                    let bytes: i64 = tx
                        .query_one("SELECT bytes FROM gcw_inbox_totals", &[])
                        .await?
                        .get(0);
                    tx.rollback().await?;
                    return Ok(Err(bytes));
                }
                let id: i64 = tx
                    .query_one(
                        "INSERT INTO gcw_inbox (received_ms, route, record, bytes)
                         VALUES ($1, $2, $3, $4) RETURNING id",
                        &[&received_ms, &route, &record, &len],
                    )
                    .await?
                    .get(0);
                tx.commit().await?;
                Ok(Ok(id))
            });
        // Not answered in time: if the commit happened anyway, the batch is stored although the
        // caller answers 503: Graph's retry makes it a duplicate, never a loss.
        match stored? {
            Ok(id) => {
                *self.shared.stored.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                self.shared.wake.notify_one();
                Ok(BatchId(id as u64))
            }
            Err(bytes) => Err(InboxError::Full {
                bytes: bytes.max(0) as u64,
                cap: self.cap,
            }),
        }
    }

    fn claim(&self, wait: Duration) -> Option<StoredBatch> {
        let far = Duration::from_secs(365 * 24 * 3600);
        let deadline = Instant::now() + wait.min(far);
        loop {
            if self.shared.closed.load(Ordering::SeqCst) {
                return None;
            }
            let seen = *self.shared.stored.lock().unwrap_or_else(|p| p.into_inner());
            match self.try_claim() {
                Ok(Some(batch)) => return Some(batch),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(target: "graph_chat_webhook", error = %e, "cannot claim from the inbox")
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let until = (deadline - now).min(INBOX_POLL);
            let stored = self.shared.stored.lock().unwrap_or_else(|p| p.into_inner());
            let _ = self
                .shared
                .wake
                .wait_timeout_while(stored, until, |n| {
                    *n == seen && !self.shared.closed.load(Ordering::SeqCst)
                })
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn release(&self, id: BatchId, retry_in: Duration) {
        let (holder, secs) = (self.shared.holder, retry_in.as_secs_f64());
        let id = id.0 as i64;
        let released = self
            .shared
            .run(self.commit_wait, async move |c: &mut Client| {
                c.execute(
                    "UPDATE gcw_inbox SET lease_until = NULL, holder = NULL,
                        attempts = attempts + 1, due = now() + make_interval(secs => $3)
                     WHERE id = $1 AND holder = $2",
                    &[&id, &holder, &secs],
                )
                .await
            });
        // Not given back: its lease runs out, and it is handed out then.
        if let Err(e) = released {
            tracing::warn!(target: "graph_chat_webhook", batch = id, error = %e, "cannot give a batch back to the inbox; its lease will run out");
        }
    }

    fn done(&self, id: BatchId) -> Result<(), InboxError> {
        let id = id.0 as i64;
        self.shared
            .run(self.commit_wait, async move |c: &mut Client| {
                let tx = c.transaction().await?;
                let deleted = tx
                    .query_opt(
                        "DELETE FROM gcw_inbox WHERE id = $1 RETURNING bytes",
                        &[&id],
                    )
                    .await?;
                if let Some(row) = deleted {
                    let bytes: i64 = row.get(0);
                    tx.execute(
                        "UPDATE gcw_inbox_totals SET bytes = bytes - $1, batches = batches - 1",
                        &[&bytes],
                    )
                    .await?;
                }
                tx.commit().await
            })
            .map_err(InboxError::from)
    }

    fn stats(&self) -> InboxStats {
        let totals = self.shared.run(self.commit_wait, async |c: &mut Client| {
            c.query_one("SELECT batches, bytes FROM gcw_inbox_totals", &[])
                .await
        });
        match totals {
            Ok(row) => InboxStats {
                batches: row.get::<_, i64>(0).max(0) as usize,
                bytes: row.get::<_, i64>(1).max(0) as u64,
            },
            Err(e) => {
                tracing::warn!(target: "graph_chat_webhook", error = %e, "cannot read the inbox's totals");
                InboxStats::default()
            }
        }
    }

    fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let _guard = self.shared.stored.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.wake.notify_all();
    }
}

impl Drop for PgInbox {
    fn drop(&mut self) {
        // Leases are left as they are: what this copy held is handed out again when they run
        // out (a copy that dies could not give them back either).
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.stop_wake.notify_all();
        if let Some(t) = self
            .renewer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = t.join();
        }
        self.shared
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        // Not a blocking shutdown: the inbox may be dropped on an async thread.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
