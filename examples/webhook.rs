//! A production-shaped webhook on axum and tokio: nothing acknowledged is ever lost, nothing
//! forged is stored, and memory stays bounded whatever is POSTed. The crate does the checking
//! and decrypting; the server moves bytes.
//!
//! ```text
//! webhook --listen ADDR --key CERT_ID=KEY_FILE... --client-state S... --inbox PATH
//!         [--jwks FILE|URL --app-id ID... --tenant-id ID...] [--jwks-min-interval SECONDS]
//!         [--insecure-no-tokens]
//! ```
//!
//! * `POST /notifications?validationToken=T` and `POST /lifecycle?validationToken=T`: 200
//!   `text/plain` with `T` decoded (Graph's validation handshake), at once, whatever else is
//!   going on: handshakes never wait for a body slot.
//! * `POST /notifications` and `POST /lifecycle` with a batch: at most a few bodies are read at
//!   once, small ones (Graph's) in slots of their own so that a flood of large bodies does not
//!   hold them up (the rest wait briefly, then get 503), each within the body limit (413 past
//!   it). The
//!   cheap checks run first, off the async threads: size, JSON, every validation token (no RSA).
//!   A batch that passes is committed to the inbox and only then answered 202. A forged batch or
//!   garbage is answered 202 and stored nowhere (a line on stderr). A token naming a signing key
//!   not yet known asks the JWKS refresh policy: the JWKS is fetched (at most once per
//!   `--jwks-min-interval`), and the batch is answered 503 (Graph retries) until the policy has
//!   decided; never dropped before. 503 when the inbox cannot commit or is full.
//! * The inbox (`--inbox PATH`) is SQLite in WAL mode with full sync: a batch answered 2xx
//!   survives `kill -9`. Worker threads open each stored batch with the time it was received as
//!   `now` (its tokens were valid then), print one JSON line per notification on stdout exactly as
//!   the `decrypt` example does, then delete it. A crash between the two prints a batch again on
//!   restart (at least once), never loses one; a restart on the same PATH finishes what was
//!   accepted.
//! * `--jwks URL` (http or https) is fetched at start and when a token names an unknown key,
//!   under `tokens::JwksRefresh`; keys already known are kept across refreshes for batches still in
//!   the inbox. `--jwks FILE` reads a file (and reads it again on refresh). Without `--jwks` the
//!   webhook refuses to start unless `--insecure-no-tokens` says so.
//! * `OPTIONS /eventgrid` answers the CloudEvents abuse-protection handshake
//!   (`WebHook-Request-Origin` -> 200 with `WebHook-Allowed-Origin`, and `WebHook-Allowed-Rate`
//!   when a rate was asked for); `POST /eventgrid` takes one CloudEvent or a batch of them from
//!   an Event Grid partner topic, through the same inbox (Event Grid sends no validation tokens;
//!   lock the event subscription down and authenticate its deliveries).
//! * SIGTERM or Ctrl-C: stop accepting, let in-flight commits finish, let workers finish the batch
//!   in hand, exit 0. What is still in the inbox stays there for the next start.
//!
//! It prints `listening on ADDR` on stderr once it accepts connections (`--listen 127.0.0.1:0`
//! picks a free port).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver as Channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use graph_chat_notifications::crypto::DecryptBuffer;
use graph_chat_notifications::tokens::{JwksDecision, JwksRefresh, TokenValidator};
use graph_chat_notifications::webhook::{cloud_events_handshake, handshake, Delivery, Receiver};
use graph_chat_notifications::BodyError;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::Semaphore;

const USAGE: &str = "usage: webhook --listen ADDR --key CERT_ID=KEY_FILE... --client-state S... \
--inbox PATH [--jwks FILE|URL --app-id ID... --tenant-id ID...] [--jwks-min-interval SECONDS] \
[--insecure-no-tokens]";

/// Bodies of at most `SMALL_BODY` bytes (by their `Content-Length`) read and checked at once.
/// Graph's batches are small; a flood of large bodies waits for the large slots and does not
/// hold these up.
const SMALL_SLOTS: usize = 16;
const SMALL_BODY: usize = 1 << 20;
/// Larger bodies (up to the 16 MiB limit, or of unknown length) read and checked at once.
/// Together the slots bound what bodies in flight can hold: 16 x 1 MiB + 2 x 16 MiB.
const LARGE_SLOTS: usize = 2;
/// How long a POST waits for a body slot before it is answered 503 (Graph retries), well inside
/// Graph's 3 s.
const SLOT_WAIT: Duration = Duration::from_millis(1500);
/// How long a sender may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The inbox refuses (503) past this many bytes of pending bodies.
const INBOX_CAP_BYTES: i64 = 1 << 30;
/// How long a JWKS fetch may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document read.
const JWKS_MAX_BYTES: u64 = 1 << 20;

/// The durable inbox: accepted batches, until a worker has printed them.
struct Inbox {
    path: String,
    writer: Mutex<Connection>,
    pending_bytes: Mutex<i64>,
    /// Wakes the dispatcher when a batch is stored.
    stored: (Mutex<u64>, Condvar),
}

/// Why a batch could not be stored.
enum PutError {
    Full,
    Database(rusqlite::Error),
}

fn open_connection(path: &str) -> rusqlite::Result<Connection> {
    let db = Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(5))?;
    // WAL: readers never block the writer. FULL: a commit is on disk when it returns.
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    Ok(db)
}

impl Inbox {
    fn open(path: &str) -> rusqlite::Result<Self> {
        let db = open_connection(path)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS batches (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                received_ms INTEGER NOT NULL,
                route TEXT NOT NULL,
                body BLOB NOT NULL
            )",
        )?;
        let pending: i64 = db.query_row(
            "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM batches",
            [],
            |r| r.get(0),
        )?;
        Ok(Self {
            path: path.to_string(),
            writer: Mutex::new(db),
            pending_bytes: Mutex::new(pending),
            stored: (Mutex::new(0), Condvar::new()),
        })
    }

    /// Stores a batch; returns once the commit is durable.
    fn put(&self, received: SystemTime, route: &str, body: &[u8]) -> Result<(), PutError> {
        let len = body.len() as i64;
        {
            let pending = self.pending_bytes.lock().unwrap_or_else(|p| p.into_inner());
            if *pending + len > INBOX_CAP_BYTES {
                return Err(PutError::Full);
            }
        }
        let received_ms = received
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .execute(
                "INSERT INTO batches (received_ms, route, body) VALUES (?1, ?2, ?3)",
                params![received_ms, route, body],
            )
            .map_err(PutError::Database)?;
        *self.pending_bytes.lock().unwrap_or_else(|p| p.into_inner()) += len;
        let (count, wake) = &self.stored;
        *count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        wake.notify_all();
        Ok(())
    }

    /// Deletes a batch whose lines were printed.
    fn done(&self, id: i64, len: usize) {
        let deleted = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .execute("DELETE FROM batches WHERE id = ?1", params![id]);
        match deleted {
            Ok(_) => {
                *self.pending_bytes.lock().unwrap_or_else(|p| p.into_inner()) -= len as i64;
            }
            // Left in the inbox, it is printed again after a restart: at least once.
            Err(e) => eprintln!("webhook: cannot mark batch {id} done: {e}"),
        }
    }

    /// Waits until a batch is stored after `seen`, or `timeout`; returns the new count.
    fn wait_for_more(&self, seen: u64, timeout: Duration) -> u64 {
        let (count, wake) = &self.stored;
        let guard = count.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = wake
            .wait_timeout_while(guard, timeout, |c| *c == seen)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    fn wake(&self) {
        self.stored.1.notify_all();
    }
}

/// Where the JWKS comes from, and when to fetch it again.
struct Jwks {
    source: Option<String>,
    policy: JwksRefresh,
}

/// What the JWKS policy made of a token naming an unknown key.
enum KeyVerdict {
    /// The JWKS was fetched: check the batch again.
    Refreshed,
    /// Not decided yet: keep the batch (503) and let Graph retry.
    Pending,
    /// A fetch did not list the key: the token is forged.
    Forged,
}

impl Jwks {
    fn fetch(&self) -> Result<Vec<u8>, String> {
        let source = self.source.as_deref().ok_or("no --jwks")?;
        if source.starts_with("http://") || source.starts_with("https://") {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(JWKS_FETCH_TIMEOUT))
                .build()
                .into();
            let mut response = agent
                .get(source)
                .call()
                .map_err(|e| format!("GET {source}: {e}"))?;
            response
                .body_mut()
                .with_config()
                .limit(JWKS_MAX_BYTES)
                .read_to_vec()
                .map_err(|e| format!("GET {source}: {e}"))
        } else {
            std::fs::read(source).map_err(|e| format!("cannot read {source}: {e}"))
        }
    }

    /// At start-up: the first fetch must succeed.
    fn load(&self, validator: &TokenValidator) -> Result<usize, String> {
        let now = SystemTime::now();
        let fetch = self
            .policy
            .start(now)
            .ok_or("a JWKS fetch is already under way")?;
        let keys = validator
            .update_jwks(&self.fetch()?, now)
            .map_err(|e| e.to_string())?;
        fetch.succeeded();
        Ok(keys)
    }

    /// Asks the policy about an unknown `kid`, fetching when it says so (blocking).
    fn on_unknown_key(&self, validator: &TokenValidator, kid: &str) -> KeyVerdict {
        let now = SystemTime::now();
        match self.policy.on_unknown_key(kid, now) {
            JwksDecision::Fetch(fetch) => {
                match self.fetch().and_then(|bytes| {
                    validator
                        .update_jwks(&bytes, now)
                        .map_err(|e| e.to_string())
                }) {
                    Ok(_) => {
                        fetch.succeeded();
                        KeyVerdict::Refreshed
                    }
                    Err(e) => {
                        eprintln!("webhook: JWKS refresh failed: {e}");
                        KeyVerdict::Pending
                    }
                }
            }
            JwksDecision::Wait { .. } => KeyVerdict::Pending,
            JwksDecision::Unknown => KeyVerdict::Forged,
        }
    }
}

struct App {
    receiver: Receiver,
    /// The same keys and clientStates, for CloudEvents from an Event Grid partner topic.
    event_grid: Receiver,
    jwks: Jwks,
    inbox: Inbox,
    small_slots: Semaphore,
    large_slots: Semaphore,
    body_limit: usize,
}

/// What admission decided for one POST.
enum Admission {
    Stored,
    Refused(String),
    TooLarge,
    Unavailable(String),
}

impl App {
    /// The receiver for the bodies of a route.
    fn receiver_for(&self, route: &str) -> &Receiver {
        if route == "/eventgrid" {
            &self.event_grid
        } else {
            &self.receiver
        }
    }

    /// The cheap checks (no RSA), then the durable commit. Blocking: runs off the async threads.
    fn admit(&self, body: &[u8], received: SystemTime, route: &str) -> Admission {
        let receiver = self.receiver_for(route);
        for _ in 0..2 {
            match receiver.receive(body, received) {
                Ok(_) => {
                    return match self.inbox.put(received, route, body) {
                        Ok(()) => Admission::Stored,
                        Err(PutError::Full) => Admission::Unavailable("the inbox is full".into()),
                        Err(PutError::Database(e)) => {
                            Admission::Unavailable(format!("cannot commit to the inbox: {e}"))
                        }
                    }
                }
                Err(BodyError::TooLarge { .. }) => return Admission::TooLarge,
                Err(e) => {
                    let (Some(kid), Some(validator)) = (e.unknown_key(), receiver.tokens()) else {
                        return Admission::Refused(e.to_string());
                    };
                    match self.jwks.on_unknown_key(validator, kid) {
                        KeyVerdict::Refreshed => continue,
                        KeyVerdict::Pending => {
                            return Admission::Unavailable(format!("{e}; JWKS refresh pending"))
                        }
                        KeyVerdict::Forged => return Admission::Refused(e.to_string()),
                    }
                }
            }
        }
        Admission::Unavailable("signing key still unknown after a JWKS refresh".into())
    }
}

/// `POST /notifications`, `/lifecycle` and `/eventgrid`: one handler, told apart by the route.
async fn batch(
    State(app): State<Arc<App>>,
    uri: axum::http::Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let route = match uri.path() {
        "/lifecycle" => "/lifecycle",
        "/eventgrid" => "/eventgrid",
        _ => "/notifications",
    };
    receive(app, route, query, headers, body).await
}

/// The CloudEvents abuse-protection handshake Event Grid sends before it delivers.
async fn event_grid_options(headers: HeaderMap) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match cloud_events_handshake(
        header("WebHook-Request-Origin"),
        header("WebHook-Request-Rate"),
    ) {
        Some(reply) => {
            let mut response = status(StatusCode::OK);
            for (name, value) in reply.headers() {
                if let Ok(value) = header::HeaderValue::from_str(value) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        None => status(StatusCode::BAD_REQUEST),
    }
}

fn status(code: StatusCode) -> Response {
    code.into_response()
}

async fn receive(
    app: Arc<App>,
    route: &'static str,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The handshake needs no body slot: it is answered at once, even during a flood.
    if let Some(reply) = handshake(query.as_deref().unwrap_or("")).filter(|_| route != "/eventgrid")
    {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, reply.content_type())],
            reply.into_body(),
        )
            .into_response();
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > app.body_limit) {
        return status(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let (slots, limit) = match declared {
        Some(n) if n <= SMALL_BODY => (&app.small_slots, SMALL_BODY),
        _ => (&app.large_slots, app.body_limit),
    };
    let Ok(Ok(slot)) = tokio::time::timeout(SLOT_WAIT, slots.acquire()).await else {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    };
    let bytes: Bytes =
        match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => return status(StatusCode::PAYLOAD_TOO_LARGE),
            Err(_) => return status(StatusCode::REQUEST_TIMEOUT),
        };
    let received = SystemTime::now();
    let checker = Arc::clone(&app);
    let admitted =
        tokio::task::spawn_blocking(move || checker.admit(&bytes, received, route)).await;
    drop(slot);
    match admitted {
        Ok(Admission::Stored) => status(StatusCode::ACCEPTED),
        // A sender learns nothing: forged and malformed batches are answered like good ones.
        Ok(Admission::Refused(reason)) => {
            eprintln!("webhook: batch refused: {reason}");
            status(StatusCode::ACCEPTED)
        }
        Ok(Admission::TooLarge) => status(StatusCode::PAYLOAD_TOO_LARGE),
        Ok(Admission::Unavailable(reason)) => {
            eprintln!("webhook: batch not accepted (503, Graph retries): {reason}");
            status(StatusCode::SERVICE_UNAVAILABLE)
        }
        Err(e) => {
            eprintln!("webhook: admission failed: {e}");
            status(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

/// One stored batch handed to a worker.
struct Stored {
    id: i64,
    route: String,
    received: SystemTime,
    body: Vec<u8>,
}

/// Hands stored batches to the workers, oldest first, one at a time (a rendezvous, so no batch
/// waits in memory). Batches a worker is holding are not handed out again; one a worker gave
/// back (its key not yet known) is offered again on the next pass.
fn dispatcher(
    app: Arc<App>,
    to_workers: std::sync::mpsc::SyncSender<Stored>,
    in_hand: Arc<Mutex<HashSet<i64>>>,
    retry: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
) {
    let db = match open_connection(&app.inbox.path) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("webhook: cannot read the inbox: {e}");
            return;
        }
    };
    let mut cursor = 0i64;
    let mut seen = 0u64;
    while !stopping.load(Ordering::SeqCst) {
        if retry.swap(false, Ordering::SeqCst) {
            cursor = 0;
        }
        let next = db
            .query_row(
                "SELECT id, received_ms, route, body FROM batches WHERE id > ?1 ORDER BY id LIMIT 1",
                params![cursor],
                |r| {
                    let received_ms: i64 = r.get(1)?;
                    Ok(Stored {
                        id: r.get(0)?,
                        route: r.get(2)?,
                        received: UNIX_EPOCH + Duration::from_millis(received_ms.max(0) as u64),
                        body: r.get(3)?,
                    })
                },
            )
            .optional();
        match next {
            Ok(Some(stored)) => {
                cursor = stored.id;
                if !in_hand
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(stored.id)
                {
                    continue;
                }
                if to_workers.send(stored).is_err() {
                    return;
                }
            }
            Ok(None) => {
                seen = app.inbox.wait_for_more(seen, Duration::from_secs(1));
            }
            Err(e) => {
                eprintln!("webhook: cannot read the inbox: {e}");
                thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// Opens each batch with the time it was received, prints its lines, then deletes it.
fn worker(
    app: Arc<App>,
    batches: Arc<Mutex<Channel<Stored>>>,
    in_hand: Arc<Mutex<HashSet<i64>>>,
    retry: Arc<AtomicBool>,
) {
    let mut buf = DecryptBuffer::new();
    loop {
        let next = batches.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(stored) = next else { return };
        let receiver = app.receiver_for(&stored.route);
        let finished = match receiver.receive(&stored.body, stored.received) {
            Ok(batch) => {
                let mut out = std::io::stdout().lock();
                let printed = common::write_batch_lines(&mut out, &batch, &mut buf, false)
                    .and_then(|_| out.flush());
                match printed {
                    Ok(()) => true,
                    Err(e) => {
                        eprintln!("webhook: cannot write batch {}: {e}", stored.id);
                        false
                    }
                }
            }
            Err(e) => match (e.unknown_key(), receiver.tokens()) {
                // Admitted with keys since rotated away, or stored before a restart that has
                // not fetched them yet: ask the policy; keep the batch until it decides.
                (Some(kid), Some(validator)) => match app.jwks.on_unknown_key(validator, kid) {
                    KeyVerdict::Forged => {
                        eprintln!("webhook: batch refused: {e}");
                        true
                    }
                    KeyVerdict::Refreshed | KeyVerdict::Pending => false,
                },
                _ => {
                    eprintln!("webhook: batch refused: {e}");
                    true
                }
            },
        };
        if finished {
            app.inbox.done(stored.id, stored.body.len());
        } else {
            retry.store(true, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(500));
        }
        in_hand
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&stored.id);
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal sent right after `listening on` is never missed.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn configure() -> Result<(String, Arc<App>), String> {
    let options = common::Options::parse(
        std::env::args().skip(1),
        &[
            "--listen",
            "--key",
            "--client-state",
            "--inbox",
            "--jwks",
            "--app-id",
            "--tenant-id",
            "--jwks-min-interval",
        ],
        &["--insecure-no-tokens"],
    )?;
    let listen = options.one("--listen")?.ok_or("--listen is required")?;
    let inbox = options.one("--inbox")?.ok_or("--inbox is required")?;
    if options.all("--client-state").is_empty() {
        return Err("--client-state is required".into());
    }
    if options.all("--key").is_empty() {
        return Err("at least one --key is required".into());
    }
    if !options.positional.is_empty() {
        return Err("unexpected arguments".into());
    }
    let min_interval = match options.one("--jwks-min-interval")? {
        None => Duration::from_secs(300),
        Some(s) => Duration::from_secs(
            s.parse()
                .map_err(|_| format!("--jwks-min-interval takes whole seconds, got {s:?}"))?,
        ),
    };
    let validator = common::validator_from(&options)?;
    let jwks = Jwks {
        source: options.one("--jwks")?,
        policy: JwksRefresh::new().min_interval(min_interval),
    };
    match (&validator, options.flag("--insecure-no-tokens")) {
        (Some(v), false) => {
            let keys = jwks
                .load(v)
                .map_err(|e| format!("--jwks: cannot load the signing keys: {e}"))?;
            eprintln!("webhook: {keys} signing keys loaded");
        }
        (None, true) => {
            eprintln!("webhook: WARNING: validation tokens are not checked (--insecure-no-tokens)")
        }
        (Some(_), true) => return Err("--insecure-no-tokens contradicts --jwks".into()),
        (None, false) => {
            return Err(
                "--jwks is required to check validation tokens (or --insecure-no-tokens)".into(),
            )
        }
    }
    let receiver = common::receiver_from(&options, validator, Delivery::Webhook)?;
    let event_grid = common::receiver_from(&options, None, Delivery::EventGrid)?;
    let body_limit = receiver.limits().max_body_bytes();
    let inbox = Inbox::open(&inbox).map_err(|e| format!("--inbox {inbox}: {e}"))?;
    Ok((
        listen,
        Arc::new(App {
            receiver,
            event_grid,
            jwks,
            inbox,
            small_slots: Semaphore::new(SMALL_SLOTS),
            large_slots: Semaphore::new(LARGE_SLOTS),
            body_limit,
        }),
    ))
}

fn main() -> ExitCode {
    let (listen, app) = match configure() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("webhook: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // TLS for `--jwks https://...`: rustls on AWS-LC.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let stopping = Arc::new(AtomicBool::new(false));
    let in_hand = Arc::new(Mutex::new(HashSet::new()));
    let retry = Arc::new(AtomicBool::new(false));
    let (tx, rx) = sync_channel::<Stored>(0);
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..thread::available_parallelism().map_or(2, |n| n.get()))
        .map(|_| {
            let (app, rx, in_hand, retry) = (
                Arc::clone(&app),
                Arc::clone(&rx),
                Arc::clone(&in_hand),
                Arc::clone(&retry),
            );
            thread::spawn(move || worker(app, rx, in_hand, retry))
        })
        .collect();
    let dispatch = {
        let (app, stopping) = (Arc::clone(&app), Arc::clone(&stopping));
        thread::spawn(move || dispatcher(app, tx, in_hand, retry, stopping))
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("webhook: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let server_app = Arc::clone(&app);
    let served = runtime.block_on(async move {
        let stop = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("listening on {addr}");
        let router = Router::new()
            .route("/notifications", post(batch))
            .route("/lifecycle", post(batch))
            .route("/eventgrid", post(batch).options(event_grid_options))
            .with_state(server_app);
        axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
            .map_err(|e| e.to_string())
    });
    // The server is gone and its commits are done: stop handing out batches; workers finish the
    // one in hand. The rest stays in the inbox for the next start.
    runtime.shutdown_timeout(Duration::from_secs(5));
    stopping.store(true, Ordering::SeqCst);
    app.inbox.wake();
    let _ = dispatch.join();
    for w in workers {
        let _ = w.join();
    }
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhook: {e}");
            ExitCode::from(1)
        }
    }
}
