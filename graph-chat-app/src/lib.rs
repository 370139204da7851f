//! The Teams-embedding guide's app, end to end, on `graph-chat-notifications`: the server
//! component (subscribes, receives, verifies, decrypts, caches, renews, resyncs), the cache
//! (SQLite) and the chat UI (one page, live over Server-Sent Events). The `chat` example runs
//! it; `docs/manual/chat-app.md` in the repository walks the architecture, guide step by
//! guide step.
//!
//! Each person signs in (`/auth/login`: the authorization code flow with PKCE) and gets a Graph
//! side of their own ([`people`]): their cache, their two subscriptions made with their token,
//! their reads; the page and the API show a person their own chats only.
//!
//! ```text
//! browser --/auth/login--> identity platform --/auth/callback--> session (app.sqlite) + person
//! Graph --POST--> /notifications (graph-chat-webhook: admitted, stored, then 202)
//!                   -> workers: decrypt, version rules -> cache (SQLite) -> event log -> SSE -> page
//! page --POST--> /api/chats/{id}/messages -> Graph (send) -> cache (the same message as its
//!                                                                   later notification)
//! timer / lifecycle -> keeper (renew, reauthorize, recreate) and the gap read from each watermark
//! GET / (at most once a minute) -> one chat list with lastMessagePreview -> reads of the chats
//!                                  the cache is behind on; a chat opened -> its read (5 min)
//! ```
//!
//! Reads come on evidence or a person's action, never on a short timer (polling is against
//! Microsoft's terms for the Teams APIs): `docs/contracts.md#the-chat-app` in the repository.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounts;
mod actions;
mod api;
pub mod demo;
mod directory;
mod files;
mod images;
pub mod jobs;
pub mod keys;
pub mod options;
pub mod people;
pub mod secrets;
mod signin;
mod site;
pub mod store;
pub mod sync;
pub mod view;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use graph_chat_webhook::notifications::crypto::{DecryptBuffer, KeyStore};
use graph_chat_webhook::notifications::inbound::{Batch, Opened, Payload, Receiver};
use graph_chat_webhook::notifications::model::{ChangeType, ResourcePath};
use graph_chat_webhook::notifications::tokens::TokenValidator;
use graph_chat_webhook::tokens::{Authority, OAuthClient};
use graph_chat_webhook::{
    BatchContext, HandlerError, JwksSource, PgInbox, Refusal, SqliteInbox, Webhook, Workers,
};
use tokio::sync::watch;

use crate::accounts::Accounts;
use crate::jobs::{Jobs, JobsError};
use crate::keys::{AppKey, KeyError};
use crate::people::{People, PeopleError, Setup};
use crate::secrets::Sealer;
use crate::signin::SignInState;
use crate::store::{Database, Store, StoreError};
use crate::sync::{GraphSync, ResyncReason, Subscriber, SyncError};

pub use crate::signin::SCOPES;

/// How the app runs. `Debug` leaves the client secret out.
#[derive(Clone)]
pub struct Config {
    /// Where the page, the app's API and the webhook listen.
    pub listen: SocketAddr,
    /// The durable state: inbox, cache, subscriptions, watermarks, the app's key; readable by
    /// the app's user only (`0700`, its files `0600`, set on every start).
    pub data: PathBuf,
    /// How often every subscription is checked and every chat read from its watermark (the
    /// daily reconcile by default; the other reads come on evidence or a person's action).
    pub resync_every: Duration,
    /// The Graph to call: `https://graph.microsoft.com`, or a simulator's base URL.
    pub graph: String,
    /// The tenant: its people sign in, its validation tokens are accepted.
    pub tenant_id: String,
    /// The app registration (the audience of validation tokens).
    pub app_id: String,
    /// The client people sign in to (`--client-id`; usually the same registration as
    /// `app_id`).
    pub client_id: String,
    /// The client's secret, for a confidential client (real Graph); `None` for a public one.
    pub client_secret: Option<String>,
    /// The identity platform's base URL (`https://login.microsoftonline.com`, or a simulator's
    /// base URL); the tenant is `tenant_id`.
    pub authority: String,
    /// Where the identity platform's signing keys come from.
    pub jwks: JwksSource,
    /// The public URL Graph reaches the webhook at (`https://...`, through a tunnel or a
    /// proxy, in front of one copy of the app or several; loopback `http://` for a proxy in
    /// front of a simulator on this machine); without it, `http://` and the listening address
    /// (fine for a simulator).
    pub public_url: Option<String>,
    /// Whether the reverse proxy in front is trusted to say which host and scheme the browser
    /// asked for (`Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto`): set only when every
    /// request comes through it. Otherwise those headers are ignored and `Host` decides.
    pub trust_proxy: bool,
    /// The pages that may frame the app's page: Content-Security-Policy `frame-ancestors`
    /// sources (`"https://a.example https://b.example"`); `None`: none may.
    pub frame_ancestors: Option<String>,
    /// How long the event log keeps an event for pages that resume
    /// ([`store::EVENT_RETENTION`] by default).
    pub event_retention: Duration,
    /// The encryption key (PEM, with its certificate) to use instead of the one the app makes
    /// under `data` on its first start.
    pub key_file: Option<PathBuf>,
    /// How often each person's subscriptions are renewed (`--renew-every`); `None`: half-way
    /// through a subscription's life.
    pub renew_every: Option<Duration>,
    /// A PostgreSQL URL (`postgres://...`): the app's records (sessions, people, secrets), every
    /// person's cache and event log in that database, shared with every other copy of the app
    /// given it (and each person's jobs are done by one copy: [`crate::jobs`]); `None`: SQLite files under `data`. Copies share a database only with the same
    /// sealing key and app key (the files under `data`, or `key_file`), which stay out of it.
    pub database: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data", &self.data)
            .field("graph", &self.graph)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority", &self.authority)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Why the app did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A file or the listener.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The key or certificate.
    #[error("{0}")]
    Key(String),
    /// The cache.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The webhook (its inbox, its JWKS).
    #[error("webhook: {0}")]
    Webhook(String),
    /// The first subscriptions or reads.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The people signed in before could not be resumed.
    #[error(transparent)]
    People(#[from] PeopleError),
    /// The identity platform's settings (`authority`, `client_id`).
    #[error("sign-in: {0}")]
    SignIn(String),
    /// The database copies share for their jobs.
    #[error(transparent)]
    Jobs(#[from] JobsError),
}

impl From<KeyError> for AppError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Io { what, source } => AppError::Io { what, source },
            KeyError::Invalid(message) => AppError::Key(message),
        }
    }
}

/// The running app.
pub struct App {
    url: String,
    people: People,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    workers: Option<Workers>,
    rereads: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AppError {
    let what = what.into();
    move |source| AppError::Io { what, source }
}

impl App {
    /// Starts the app: opens its records and the inbox, serves the page, the sign-in, the API
    /// and the webhook, and resumes the Graph side of everyone signed in before (their
    /// subscriptions, then their reads). Returns once all of that is done.
    pub async fn start(config: Config) -> Result<App, AppError> {
        let (accounts, key, client_state, database) = open_state(&config).await?;
        // Which copy does each person's subscriptions, renewals and reconciles.
        let jobs = match &config.database {
            Some(url) => Jobs::postgres(url).await?,
            None => Jobs::single(),
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(io(format!("cannot listen on {}", config.listen)))?;
        let addr = listener.local_addr().map_err(io("local address"))?;
        let public = public_base(&config, addr);
        let subscriber = subscriber(&config, addr, &key, &client_state);
        let refused = Arc::new(Refused::default());
        let webhook = open_webhook(&config, key, client_state.to_string(), &refused).await?;
        drop(client_state);
        let authority = Authority::new(&config.authority, &config.tenant_id)
            .map_err(|e| AppError::SignIn(e.to_string()))?;
        let oauth = Arc::new(
            OAuthClient::new(
                authority,
                &config.client_id,
                config.client_secret.as_deref(),
                Some(&format!("{public}/auth/callback")),
            )
            .map_err(|e| AppError::SignIn(e.to_string()))?,
        );
        let people = People::new(
            Setup {
                graph: config.graph.clone(),
                tenant_id: config.tenant_id.clone(),
                data: config.data.clone(),
                subscriber,
                resync_every: config.resync_every,
                event_retention: config.event_retention,
                renew_every: config.renew_every,
                jobs,
                database,
            },
            Arc::clone(&oauth),
            accounts.clone(),
        );
        let handler_people = people.clone();
        let handled = Arc::clone(&refused);
        let workers = webhook.start_workers(
            move |_: &BatchContext, batch: &Batch<'_, '_>, buf: &mut DecryptBuffer| {
                let result = handle_batch(&handler_people, batch, buf);
                match &result {
                    // Wakes a waiting reread only: a batch taken before a refusal says nothing.
                    Ok(()) => handled.taken.notify_waiters(),
                    // Kept in the inbox for later; meanwhile what it held is read.
                    Err(_) => handled.refused.notify_one(),
                }
                result
            },
        );
        let rereads = tokio::spawn(reread_after_refusals(people.clone(), refused));

        let (stop, stopped) = watch::channel(false);
        let site = hosts(addr, &config);
        let signin = Arc::new(SignInState::new(
            oauth,
            accounts,
            people.clone(),
            public.starts_with("https://"),
        ));
        let router = web::router(signin, stopped.clone(), site).merge(webhook.router());
        let mut server_stop = stopped.clone();
        // The webhook's own server for the whole router: head and idle deadlines, connection
        // caps per address; the event streams count in its stream pool, apart from the
        // webhook's connections (their keep-alive keeps them under the idle deadline).
        let webhook = Arc::new(webhook);
        let serving = Arc::clone(&webhook);
        let server = tokio::spawn(async move {
            serving
                .serve_router(router, listener, async move {
                    let _ = server_stop.wait_for(|s| *s).await;
                })
                .await
        });

        let app = App {
            url: format!("http://{addr}/"),
            people: people.clone(),
            stop,
            server,
            workers: Some(workers),
            rereads,
        };
        // Everyone signed in before: subscribed first, then read (what changes in between
        // arrives as a notification).
        if let Err(e) = people.resume().await {
            app.shutdown().await;
            return Err(e.into());
        }
        // Sharing a database: people who sign in on another copy are taken up here too.
        people.take_up_others();
        Ok(app)
    }

    /// The page's URL (`http://HOST:PORT/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Everyone signed in.
    pub fn people(&self) -> &People {
        &self.people
    }

    /// The Graph side of a signed-in person (their subscriptions, reads, cache).
    pub fn person(&self, user_id: &str) -> Option<Arc<GraphSync>> {
        self.people.get(user_id)
    }

    /// Stops serving (event streams end), lets the workers finish the batch in hand; what is
    /// still in the inbox stays there for the next start.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.rereads.abort();
        self.people.stop_all();
        let server = &mut self.server;
        if tokio::time::timeout(Duration::from_secs(5), &mut *server)
            .await
            .is_err()
        {
            server.abort();
        }
        if let Some(workers) = self.workers.take() {
            let _ = tokio::task::spawn_blocking(move || workers.shutdown()).await;
        }
    }
}

/// The durable state under `config.data` (or in `config.database`), off the async threads: the
/// app's records (sessions, people, secrets, sealed by its key, made on the first start), the
/// app's encryption key (likewise) and the `clientState` secret (likewise).
async fn open_state(
    config: &Config,
) -> Result<
    (
        Accounts,
        AppKey,
        zeroize::Zeroizing<String>,
        Option<Database>,
    ),
    AppError,
> {
    let config = config.clone();
    let opened = tokio::task::spawn_blocking(move || {
        files::private_dir(&config.data)
            .map_err(io(format!("cannot create {}", config.data.display())))?;
        remove_single_user_cache(&config.data)?;
        let sealer = Sealer::load_or_create(&config.data)?;
        let (accounts, database) = match &config.database {
            Some(url) => {
                let db = Database::open(url)?;
                (Accounts::open_postgres(&db, sealer)?, Some(db))
            }
            None => {
                let records = config.data.join(accounts::ACCOUNTS_FILE);
                files::create_private_file(&records)
                    .map_err(io(format!("cannot create {}", records.display())))?;
                (Accounts::open(&config.data, sealer)?, None)
            }
        };
        let key = match &config.key_file {
            Some(path) => keys::load(path)?,
            None => keys::load_or_create(&config.data)?,
        };
        let client_state = accounts.client_state()?;
        Ok((accounts, key, client_state, database))
    });
    opened
        .await
        .map_err(|_| AppError::Store(StoreError::Unavailable))?
}

/// The cache of the versions before people signed in (`cache.sqlite`, one user's): its
/// `clientState` was kept in clear, and each person's cache is read again from Graph when they
/// sign in. Removed, with its `-wal` and `-shm`.
pub const SINGLE_USER_CACHE: &str = "cache.sqlite";

fn remove_single_user_cache(data: &std::path::Path) -> Result<(), AppError> {
    for suffix in ["", "-wal", "-shm"] {
        let path = data.join(format!("{SINGLE_USER_CACHE}{suffix}"));
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "removed the single-user cache of an earlier version")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("cannot remove {}", path.display()))(e)),
        }
    }
    Ok(())
}

/// The app's public base URL, without a trailing `/`, where browsers come back to after
/// signing in: the public URL, else this address over `http://` (which only a browser on this
/// machine reaches).
fn public_base(config: &Config, addr: SocketAddr) -> String {
    config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", loopback(addr)))
        .trim_end_matches('/')
        .to_owned()
}

/// Where Graph is to deliver, and what it encrypts for: the public URL (a proxy or tunnel in
/// front of one or several copies of the app, so any copy may receive any notification), else
/// this address over `http://` (which only a local Graph reaches).
///
/// A loopback `http://` public URL is taken only with a Graph on this machine (a simulator,
/// which reaches it; real Graph requires https, and `options` holds it to that). With a
/// simulator on this machine an https public URL that is not loopback (the name browsers use,
/// `https://chat.example.com`) is not reachable from it: the simulator is given this address.
fn subscriber(config: &Config, addr: SocketAddr, key: &AppKey, client_state: &str) -> Subscriber {
    let local_graph = url::Url::parse(&config.graph).is_ok_and(|u| is_loopback_http(&u));
    let public = config.public_url.as_deref().filter(|public| {
        !local_graph || url::Url::parse(public).is_ok_and(|u| is_loopback_http(&u))
    });
    let (public, loopback_http) = match public {
        Some(url) => (url.to_owned(), local_graph),
        None => (format!("http://{}", loopback(addr)), true),
    };
    let public = public.trim_end_matches('/');
    Subscriber {
        notification_url: format!("{public}/notifications"),
        lifecycle_url: format!("{public}/lifecycle"),
        certificate_der: key.certificate.clone(),
        certificate_id: key.certificate_id.clone(),
        client_state: client_state.to_owned(),
        // A loopback `http://` webhook only for a Graph on this machine.
        loopback_http,
    }
}

/// Whether `url` is `http://` on this machine (`localhost`, `127.0.0.0/8`, `[::1]`).
fn is_loopback_http(u: &url::Url) -> bool {
    u.scheme() == "http"
        && match u.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

/// `addr`, or, when it is every interface (`0.0.0.0`, `[::]`), its loopback address.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// The webhook: a receiver for the app's key, its `clientState` and the validation tokens of its
/// tenant and app, over the durable inbox.
async fn open_webhook(
    config: &Config,
    key: AppKey,
    client_state: String,
    refused: &Arc<Refused>,
) -> Result<Webhook, AppError> {
    let tokens = TokenValidator::new([config.app_id.clone()], [config.tenant_id.clone()]);
    let keystore = KeyStore::new()
        .with_key(key.certificate_id.clone(), key.key)
        .map_err(|e| AppError::Key(format!("the app's key: {e}")))?;
    let receiver = Receiver::builder()
        .keys(keystore)
        .client_state(client_state)
        .tokens(tokens)
        .build()
        .map_err(|e| AppError::Webhook(e.to_string()))?;
    let inbox_path = config.data.join("inbox.sqlite");
    if config.database.is_none() {
        files::create_private_file(&inbox_path)
            .map_err(io(format!("cannot create {}", inbox_path.display())))?;
    }
    let jwks = config.jwks.clone();
    let refused = Arc::clone(refused);
    let database = config.database.clone();
    // Opening the inbox and the first JWKS fetch block: off the async threads.
    tokio::task::spawn_blocking(move || {
        let builder = Webhook::builder(receiver);
        // Sharing a database, the copies share the inbox too: a batch a copy stored is claimed
        // by any copy's workers, and one a dead copy held is taken over when its lease ends.
        let builder = match database {
            Some(url) => builder.inbox(PgInbox::open(&url).map_err(|e| e.to_string())?),
            None => builder.inbox(SqliteInbox::open(&inbox_path).map_err(|e| e.to_string())?),
        };
        builder
            .jwks(jwks)
            .on_refusal(move |refusal: &Refusal| {
                if could_not_take(refusal) {
                    refused.refused.notify_one();
                }
            })
            .build()
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| AppError::Webhook(e.to_string()))?
    .map_err(AppError::Webhook)
}

/// The `Host` names the page and its API answer to: the listening address and its loopback
/// names, and the public URL's host (with and without its default port); any, when listening on
/// every interface without one. Behind a trusted proxy, the host it forwards.
fn hosts(addr: SocketAddr, config: &Config) -> site::Site {
    site::Site::new(
        addr,
        config.public_url.as_deref(),
        config.trust_proxy,
        config.frame_ancestors.as_deref(),
    )
}

/// What the webhook refused is already a `tracing` event of the webhook's (target
/// `graph_chat_webhook`), which the program's subscriber shows or not; nothing is printed here
/// (a library does not write to stderr on its own). Whether it is a delivery the webhook could
/// not take (answered 429 or 5xx: its inbox full or failing, no room in its budget): Graph
/// retries it, for a while, and may give up; the chats are read once deliveries are taken again.
fn could_not_take(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::Answered {
            status: 429 | 500..=599,
            ..
        }
    )
}

/// How long after the webhook last could not take a delivery the chats are read, when no batch
/// has been taken since: the delivery Graph retries may be long in coming, or never come.
pub const REREAD_AFTER_REFUSAL: Duration = Duration::from_secs(10);

/// The webhook could not take a delivery (`refused`), or took a batch (`taken`).
#[derive(Default)]
struct Refused {
    refused: tokio::sync::Notify,
    taken: tokio::sync::Notify,
}

/// Whenever the webhook could not take deliveries (a 429 or 5xx answered to Graph, a batch the
/// cache could not keep), reads every signed-in person's chats from their watermarks once it
/// takes them again (a batch stored and handled), or [`REREAD_AFTER_REFUSAL`] after the last
/// refusal: what was refused is not known to be whose, and Graph may give the delivery up.
async fn reread_after_refusals(people: People, refused: Arc<Refused>) {
    loop {
        refused.refused.notified().await;
        loop {
            tokio::select! {
                _ = refused.refused.notified() => continue,
                _ = refused.taken.notified() => break,
                _ = tokio::time::sleep(REREAD_AFTER_REFUSAL) => break,
            }
        }
        tracing::info!(
            "the webhook could not take deliveries: the chats are read from their watermarks"
        );
        for user in people.user_ids() {
            if let Some(sync) = people.get(&user) {
                // Its failure is logged by the resync; the next trigger reads again.
                let _ = sync.resync_all(ResyncReason::DeliveriesRefused).await;
            }
        }
    }
}

/// One stored batch: each notification opened (decrypted on this worker thread) and applied
/// to the person whose subscription it came by (one of no one signed in is dropped). A
/// notification that cannot be opened is refused alone; a cache that cannot write keeps the
/// batch for later.
fn handle_batch(
    people: &People,
    batch: &Batch<'_, '_>,
    buf: &mut DecryptBuffer,
) -> Result<(), HandlerError> {
    let mut failure: Option<StoreError> = None;
    batch.open_each(buf, |result| match result {
        Err(e) => tracing::warn!(error = %e, "a notification was refused"),
        Ok(opened) => {
            let owner = opened
                .notification
                .subscription_id
                .as_deref()
                .and_then(|id| people.by_subscription(id));
            let Some(sync) = owner else {
                tracing::debug!("a notification for no one signed in was dropped");
                return;
            };
            if let Err(e) = apply(&sync, &opened) {
                failure.get_or_insert(e);
            }
        }
    });
    failure.map_or(Ok(()), |e| Err(HandlerError::new(e)))
}

fn apply(sync: &GraphSync, opened: &Opened<'_, '_>) -> Result<(), StoreError> {
    let notification = opened.notification;
    let deleted = notification
        .change_type()
        .is_some_and(|c| c.is(ChangeType::Deleted));
    let path = notification
        .resource
        .as_deref()
        .and_then(|r| ResourcePath::parse(r).ok());
    let store = sync.store();
    match (&opened.payload, &path) {
        (Payload::Lifecycle(event), _) => {
            if let Some(id) = notification.subscription_id.as_deref() {
                sync.on_lifecycle(id, event.as_str());
            }
        }
        (Payload::Decrypted(json), Some(ResourcePath::ChatMessage { chat_id, .. })) => {
            store.apply_message(chat_id, json, deleted)?;
            if !store.has_chat(chat_id)? {
                read_chat(sync, chat_id);
            }
        }
        (
            Payload::ResourceData(_),
            Some(ResourcePath::ChatMessage {
                chat_id,
                message_id,
            }),
        ) if deleted => {
            store.apply_deletion(chat_id, message_id)?;
            // A deletion without data has no time: a version delivered after it could be older
            // or newer. Graph's copy settles it.
            if let Err(e) = sync.read_message_blocking(chat_id, message_id) {
                tracing::warn!(chat = %chat_id, error = %e, "cannot read a deleted message; the next resync will");
            }
        }
        // The user's viewpoint moved forward (read further, as after a mark-read): applied as
        // it came, no read. One that may be older than the cache's (notifications come in any
        // order), or a chat marked unread, hidden or shown, is settled by reading the chat.
        (Payload::Decrypted(json), Some(ResourcePath::Chat { chat_id }))
            if !deleted && viewpoint_forward(store, chat_id, json)? =>
        {
            // Applied.
        }
        // A chat changed (its topic, its members): its read for the user is the truth now,
        // whatever order its notifications come in.
        // Deleted too: the read answers 404 and the chat is forgotten.
        (_, Some(ResourcePath::Chat { chat_id })) => read_chat(sync, chat_id),
        // A message named without its data that the cache does not know: read (that message
        // only, never the chat's list).
        (
            Payload::ResourceData(_),
            Some(ResourcePath::ChatMessage {
                chat_id,
                message_id,
            }),
        ) if store.message(chat_id, message_id)?.is_none() => {
            if let Err(e) = sync.read_message_blocking(chat_id, message_id) {
                tracing::warn!(chat = %chat_id, error = %e, "cannot read a message a notification named; the next read will");
            }
        }
        // Anything else (a known message without data, a channel's) is found by the next read.
        _ => {}
    }
    Ok(())
}

/// Whether a chat notification's data is only the user's viewpoint, moved forward, and was
/// applied.
fn viewpoint_forward(store: &Store, chat_id: &str, json: &str) -> Result<bool, StoreError> {
    let Ok(serde_json::Value::Object(chat)) = serde_json::from_str(json) else {
        return Ok(false);
    };
    let only_viewpoint = chat
        .keys()
        .all(|k| matches!(k.as_str(), "id" | "@odata.type" | "viewpoint"));
    match chat.get("viewpoint") {
        Some(viewpoint) if only_viewpoint && viewpoint.is_object() => {
            store.apply_viewpoint_forward(chat_id, viewpoint)
        }
        _ => Ok(false),
    }
}

fn read_chat(sync: &GraphSync, chat_id: &str) {
    if let Err(e) = sync.read_chat_blocking(chat_id) {
        tracing::warn!(chat = %chat_id, error = %e, "cannot read a chat; the next resync will");
    }
}
