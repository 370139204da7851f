//! Work done once however many copies of the app run: each person's subscriptions (created,
//! recreated), their renewals and reauthorizations, and their `--resync-every` reconcile are a
//! *job*, done by the one copy that holds it. Graph allows one chatMessage subscription per app
//! per chat: a second copy's create would be refused (403), and two copies renewing would only
//! double the writes Graph throttles.
//!
//! [`Jobs`] answers "does this copy hold job X now?":
//!
//! * One copy (SQLite, the default): always.
//! * Copies sharing a PostgreSQL database (`--database postgres://...`): a session-level
//!   advisory lock per job, all of a copy's on one connection of its own. A copy that does
//!   not hold a job tries again every [`RETRY_EVERY`]; the holder checks its connection as often.
//!   A copy killed (`kill -9`) loses its connection, and its locks with it, at once; one whose
//!   machine or network died is dropped by the server after its TCP keepalives go unanswered
//!   (set on the session: about [`SERVER_NOTICES_WITHIN`]); either way another copy takes the
//!   job within 15 s. A copy that loses its connection, or whose check goes unanswered within
//!   [`PING_WITHIN`], stops acting on its jobs at once (before the server could hand them to
//!   another copy).
//!
//! Reads on a person's visit and the processing of notifications are not jobs: any copy may
//! receive any notification through the public URL, and does its work. A lifecycle event
//! (`reauthorizationRequired`, `subscriptionRemoved`, `missed`) that reaches a copy which does
//! not hold the person's job is handed to the holder ([`Job::forward`]) with a `NOTIFY` on
//! [`CHANNEL`] (the job's key, the event and the subscription's id; nothing secret), which every
//! copy `LISTEN`s on. One sent while the holder is out of reach is lost: the holder's next
//! renewal finds a removed subscription (404) and renews with a fresh token, which reauthorizes.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch, Notify};
use tokio_postgres::Client;

/// The `LISTEN`/`NOTIFY` channel lifecycle events are handed to a job's holder on.
pub const CHANNEL: &str = "graph_chat_app_jobs";

/// A lifecycle event handed on to the holder of a job: the subscription's id and the event.
pub type Forwarded = (String, String);

/// How often a copy tries again for the jobs it does not hold, and checks its connection.
pub const RETRY_EVERY: Duration = Duration::from_secs(3);

/// How long the holder waits for the answer to its connection check before it stops acting on
/// its jobs.
pub const PING_WITHIN: Duration = Duration::from_secs(2);

/// The TCP keepalives asked of the server for each copy's connection (idle, interval, count):
/// a copy that vanished without closing its connection is dropped, and its locks released,
/// after about [`SERVER_NOTICES_WITHIN`].
const SERVER_KEEPALIVES: (u32, u32, u32) = (4, 2, 3);

/// How long the server takes at most to notice a copy that vanished (idle + interval x count).
pub const SERVER_NOTICES_WITHIN: Duration = Duration::from_secs(
    SERVER_KEEPALIVES.0 as u64 + SERVER_KEEPALIVES.1 as u64 * SERVER_KEEPALIVES.2 as u64,
);

/// Why the jobs' database could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// Not a PostgreSQL connection string (its text is not repeated: it may hold a password).
    #[error("not a PostgreSQL connection string (URL or key=value)")]
    BadUrl,
    /// The database could not be reached or refused.
    #[error("the jobs' database: {0}")]
    Database(String),
}

/// Which copy does each job. Cheap to clone; every clone is the same.
#[derive(Clone)]
pub struct Jobs {
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the connection string: it may hold a password.
        f.debug_struct("Jobs")
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// A job this copy wants, and whether it holds it. Dropping it gives the job up (another copy
/// takes it).
pub struct Job {
    held: watch::Receiver<bool>,
    /// Lifecycle events other copies handed on, while this copy holds the job.
    forwarded: Option<tokio::sync::Mutex<broadcast::Receiver<Forwarded>>>,
    _wanted: Option<Wanted>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("held", &self.is_held())
            .finish()
    }
}

/// One want of a job; the last one dropped gives it up.
struct Wanted {
    shared: Arc<Shared>,
    key: i64,
}

impl Drop for Wanted {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(entry) = state.jobs.get_mut(&self.key) {
            entry.wants = entry.wants.saturating_sub(1);
        }
        drop(state);
        self.shared.wake.notify_one();
    }
}

/// What the lock loop and the wants share.
struct Shared {
    config: tokio_postgres::Config,
    state: Mutex<State>,
    /// A job wanted or given up: the loop goes at once.
    wake: Notify,
    /// Bumped after each round of the loop.
    rounds: watch::Sender<u64>,
    /// Lifecycle events to hand to other copies (job key, payload), sent by the loop.
    outbox: Mutex<Vec<(i64, Forwarded)>>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<i64, Entry>,
    /// What the lock keys are made from with each job's name: the connection's `search_path`
    /// (copies of two deployments in two schemas of one database hold their own jobs).
    namespace: Option<String>,
}

struct Entry {
    held: watch::Sender<bool>,
    wants: usize,
    forwarded: broadcast::Sender<Forwarded>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every job is not held (the connection is gone).
    fn lose_all(&self) {
        let state = self.lock();
        for entry in state.jobs.values() {
            entry.held.send_if_modified(|h| std::mem::replace(h, false));
        }
    }
}

/// The advisory lock key of job `name` in `namespace`: the first 8 bytes of a SHA-256.
fn lock_key(namespace: &str, name: &str) -> i64 {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("graph-chat-app job\0{namespace}\0{name}").as_bytes(),
    );
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_ref()[..8]);
    i64::from_be_bytes(bytes)
}

impl Jobs {
    /// One copy: it holds every job, always.
    pub fn single() -> Self {
        Self { shared: None }
    }

    /// Copies sharing the PostgreSQL database `url` (libpq's URL or `key=value` form; TLS as
    /// `sslmode` says, as the webhook's inbox connects): connects once to check, then keeps a
    /// connection of its own holding this copy's jobs, on the current tokio runtime, for as
    /// long as a clone of the value lives.
    pub async fn postgres(url: &str) -> Result<Self, JobsError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|_| JobsError::BadUrl)?;
        config
            .application_name("graph-chat-app jobs")
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(u64::from(SERVER_KEEPALIVES.0)))
            .keepalives_interval(Duration::from_secs(u64::from(SERVER_KEEPALIVES.1)))
            .keepalives_retries(SERVER_KEEPALIVES.2);
        let (rounds, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            rounds,
            outbox: Mutex::new(Vec::new()),
        });
        // The first connection is made here, so that a wrong URL or a database that is down
        // stops the start rather than leaving every job unheld.
        let (notifications, heard) = mpsc::unbounded_channel();
        let first = connect(&shared, notifications.clone()).await?;
        tokio::spawn(run(
            Arc::downgrade(&shared),
            Some(first),
            notifications,
            heard,
        ));
        Ok(Self {
            shared: Some(shared),
        })
    }

    /// Whether jobs are shared with other copies (a database), rather than all this copy's.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Job `name` (a person's: `person:{user id}`), wanted by this copy from now until the
    /// returned value is dropped. Returns after one try to take it (or [`RETRY_EVERY`] at the
    /// most), so that of copies starting together, the one that holds it knows at once.
    pub async fn job(&self, name: &str) -> Job {
        let Some(shared) = &self.shared else {
            return Job::always();
        };
        let mut rounds = shared.rounds.subscribe();
        let start = *rounds.borrow_and_update();
        let (held, forwarded, key) = {
            let mut state = shared.lock();
            let namespace = state.namespace.clone().unwrap_or_default();
            let key = lock_key(&namespace, name);
            let entry = state.jobs.entry(key).or_insert_with(|| Entry {
                held: watch::channel(false).0,
                wants: 0,
                forwarded: broadcast::channel(64).0,
            });
            entry.wants += 1;
            (entry.held.subscribe(), entry.forwarded.subscribe(), key)
        };
        shared.wake.notify_one();
        // A round that began after the want was made: two bumps past `start`.
        let _ = tokio::time::timeout(RETRY_EVERY, rounds.wait_for(|r| r.wrapping_sub(start) >= 2))
            .await;
        Job {
            held,
            forwarded: Some(tokio::sync::Mutex::new(forwarded)),
            _wanted: Some(Wanted {
                shared: Arc::clone(shared),
                key,
            }),
        }
    }
}

impl Job {
    /// A job held for good (one copy).
    pub fn always() -> Self {
        Self {
            held: watch::channel(true).1,
            forwarded: None,
            _wanted: None,
        }
    }

    /// Hands a lifecycle event for one of the job's subscriptions to the copy that holds the
    /// job (when this one does not). Does not block: the event is sent by the jobs' loop.
    pub fn forward(&self, subscription_id: &str, event: &str) {
        let Some(wanted) = &self._wanted else {
            return;
        };
        let plain = |s: &str| {
            !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic() && b != b' ')
        };
        if !plain(subscription_id) || !plain(event) {
            return;
        }
        let mut outbox = wanted
            .shared
            .outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if outbox.len() < 1024 {
            outbox.push((wanted.key, (subscription_id.to_owned(), event.to_owned())));
        }
        drop(outbox);
        wanted.shared.wake.notify_one();
    }

    /// The next lifecycle event another copy handed on for this job (see [`Job::forward`]);
    /// never, for a job of one copy.
    pub async fn forwarded(&self) -> Forwarded {
        let Some(forwarded) = &self.forwarded else {
            return std::future::pending().await;
        };
        let mut forwarded = forwarded.lock().await;
        loop {
            match forwarded.recv().await {
                Ok(event) => return event,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    return std::future::pending().await;
                }
            }
        }
    }

    /// Whether the job is shared with other copies (through a database) rather than this
    /// copy's for good.
    pub fn is_shared(&self) -> bool {
        self._wanted.is_some()
    }

    /// Whether this copy holds the job now.
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// Whether the job is held, as it changes: `changed()` when it is taken or lost. Its sender
    /// is dropped (`changed()` fails) only when the jobs stop.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.held.clone()
    }
}

/// A connection for the locks, with the server's keepalives set, listening on [`CHANNEL`]
/// (what it hears goes to `notifications`); the `search_path` recorded.
async fn connect(
    shared: &Shared,
    notifications: mpsc::UnboundedSender<tokio_postgres::Notification>,
) -> Result<(Client, tokio::task::JoinHandle<()>), JobsError> {
    let database = |e: &dyn std::fmt::Display| JobsError::Database(e.to_string());
    let (client, connection) =
        graph_chat_webhook::connect_postgres(&shared.config, Some(notifications))
            .await
            .map_err(|e| database(&e))?;
    let (idle, interval, count) = SERVER_KEEPALIVES;
    let set = format!(
        "SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {interval}; \
         SET tcp_keepalives_count = {count}; LISTEN {CHANNEL}"
    );
    let setup = async {
        client.batch_execute(&set).await?;
        let row = client
            .query_one("SELECT current_setting('search_path')", &[])
            .await?;
        Ok::<String, tokio_postgres::Error>(row.get(0))
    };
    let namespace = tokio::time::timeout(Duration::from_secs(5), setup)
        .await
        .map_err(|_| JobsError::Database("no answer within 5 s".into()))?
        .map_err(|e| database(&e))?;
    let mut state = shared.lock();
    if state.namespace.is_none() {
        state.namespace = Some(namespace);
    }
    drop(state);
    Ok((client, connection))
}

/// Takes the jobs wanted and not held, gives up those no longer wanted, checks the
/// connection; every [`RETRY_EVERY`] or at once when a job is wanted or given up, until the
/// [`Jobs`] go. A lost connection loses every job at once, and is made again.
async fn run(
    shared: Weak<Shared>,
    mut connection: Option<(Client, tokio::task::JoinHandle<()>)>,
    notifications: mpsc::UnboundedSender<tokio_postgres::Notification>,
    mut heard: mpsc::UnboundedReceiver<tokio_postgres::Notification>,
) {
    let mut warned = false;
    loop {
        let Some(jobs) = shared.upgrade() else {
            return;
        };
        if connection
            .as_ref()
            .is_some_and(|(c, driver)| c.is_closed() || driver.is_finished())
        {
            connection = None;
            jobs.lose_all();
        }
        if connection.is_none() {
            match connect(&jobs, notifications.clone()).await {
                Ok(made) => {
                    if warned {
                        tracing::info!("the jobs' database is reachable again");
                    }
                    warned = false;
                    connection = Some(made);
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "cannot reach the jobs' database; this copy does none of its jobs until it can");
                    }
                    warned = true;
                }
            }
        }
        if let Some((client, _)) = &connection {
            let round = tokio::time::timeout(PING_WITHIN + RETRY_EVERY, one_round(&jobs, client));
            match round.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the jobs' connection failed; this copy stops its jobs");
                    connection = None;
                    jobs.lose_all();
                }
                Err(_) => {
                    tracing::warn!("the jobs' database did not answer; this copy stops its jobs");
                    connection = None;
                    jobs.lose_all();
                }
            }
        }
        jobs.rounds.send_modify(|r| *r = r.wrapping_add(1));
        let wake = Arc::clone(&jobs);
        drop(jobs);
        let notified = wake.wake.notified();
        tokio::pin!(notified);
        let sleep = tokio::time::sleep(RETRY_EVERY);
        tokio::pin!(sleep);
        loop {
            let heard_one = match &mut connection {
                Some((_, driver)) => {
                    tokio::select! {
                        _ = &mut sleep => None,
                        _ = &mut notified => None,
                        // The connection ended: its jobs are lost now, not at the next round.
                        _ = driver => None,
                        n = heard.recv() => n,
                    }
                }
                None => {
                    tokio::select! {
                        _ = &mut sleep => None,
                        _ = &mut notified => None,
                    }
                }
            };
            match heard_one {
                Some(n) => hand_on(&wake, n.payload()),
                None => break,
            }
        }
    }
}

/// A lifecycle event another copy sent: to this copy's want of that job, if it holds it.
fn hand_on(shared: &Shared, payload: &str) {
    let mut parts = payload.splitn(3, ' ');
    let (Some(key), Some(event), Some(subscription)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let Ok(key) = key.parse::<i64>() else {
        return;
    };
    let state = shared.lock();
    if let Some(entry) = state.jobs.get(&key) {
        if *entry.held.borrow() {
            let _ = entry
                .forwarded
                .send((subscription.to_owned(), event.to_owned()));
        }
    }
}

/// One round on a live connection: a check within [`PING_WITHIN`] (the holder stops at once
/// when the database is out of reach), then the jobs given up are unlocked and the jobs
/// wanted are tried.
async fn one_round(shared: &Shared, client: &Client) -> Result<(), tokio_postgres::Error> {
    let checked = tokio::time::timeout(PING_WITHIN, client.simple_query("SELECT 1")).await;
    match checked {
        Ok(answer) => {
            answer?;
        }
        Err(_) => {
            shared.lose_all();
            // The round's own deadline ends it; the caller drops the connection.
            std::future::pending::<()>().await;
        }
    }
    let (give_up, want): (Vec<i64>, Vec<i64>) = {
        let state = shared.lock();
        let give_up = state
            .jobs
            .iter()
            .filter(|(_, e)| e.wants == 0)
            .map(|(k, _)| *k)
            .collect();
        let want = state
            .jobs
            .iter()
            .filter(|(_, e)| e.wants > 0 && !*e.held.borrow())
            .map(|(k, _)| *k)
            .collect();
        (give_up, want)
    };
    for key in give_up {
        let was_held = {
            let mut state = shared.lock();
            match state.jobs.get(&key) {
                Some(e) if e.wants == 0 => {
                    state.jobs.remove(&key).is_some_and(|e| *e.held.borrow())
                }
                _ => continue,
            }
        };
        if was_held {
            client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await?;
        }
    }
    let outbox: Vec<(i64, Forwarded)> =
        std::mem::take(&mut *shared.outbox.lock().unwrap_or_else(|e| e.into_inner()));
    for (key, (subscription, event)) in outbox {
        // Checked plain (no spaces) when queued: the payload splits on spaces.
        let payload = format!("{key} {event} {subscription}");
        client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await?;
    }
    for key in want {
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await?
            .get(0);
        if !taken {
            continue;
        }
        let kept = {
            let state = shared.lock();
            match state.jobs.get(&key) {
                Some(e) if e.wants > 0 => {
                    e.held.send_replace(true);
                    true
                }
                _ => false,
            }
        };
        if !kept {
            // Given up while it was being taken.
            client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn a_jobs_key_depends_on_its_name_and_its_namespace() {
        assert_eq!(
            lock_key("public", "person:a"),
            lock_key("public", "person:a")
        );
        assert_ne!(
            lock_key("public", "person:a"),
            lock_key("public", "person:b")
        );
        assert_ne!(lock_key("one", "person:a"), lock_key("two", "person:a"));
    }
}
