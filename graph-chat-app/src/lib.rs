//! The Teams-embedding guide's app, end to end, on `graph-chat-notifications`: the server
//! component (subscribes, receives, verifies, decrypts, caches, renews, resyncs), the cache
//! (SQLite) and the chat UI (one page, live over Server-Sent Events). The `chat` example runs
//! it; `docs/manual/chat-app.md` in the repository walks the architecture, guide step by
//! guide step.
//!
//! ```text
//! Graph --POST--> /notifications (graph-chat-webhook: admitted, stored, then 202)
//!                   -> workers: decrypt, version rules -> cache (SQLite) -> event log -> SSE -> page
//! page --POST--> /api/chats/{id}/messages -> Graph (send) -> cache (the same message as its
//!                                                                   later notification)
//! timer / lifecycle -> keeper (renew, reauthorize, recreate) and reads from each watermark
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod actions;
pub mod demo;
pub mod keys;
pub mod options;
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
use graph_chat_webhook::{
    BatchContext, GraphClient, HandlerError, JwksSource, Refusal, SqliteInbox, Webhook, Workers,
};
use tokio::sync::watch;

use crate::keys::{AppKey, KeyError};
use crate::store::{Store, StoreError};
use crate::sync::{GraphSync, ResyncReason, Subscriber, SyncError};
use crate::view::Viewer;

/// How the app runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the page, the app's API and the webhook listen.
    pub listen: SocketAddr,
    /// The durable state: inbox, cache, subscriptions, watermarks, the app's key.
    pub data: PathBuf,
    /// How often every subscription is checked and every chat read from its watermark.
    pub resync_every: Duration,
    /// The Graph to call: `https://graph.microsoft.com`, or a simulator's base URL.
    pub graph: String,
    /// The bearer token for Graph (a delegated token for `user_id`; any for a simulator).
    pub token: String,
    /// The tenant.
    pub tenant_id: String,
    /// The app registration (the audience of validation tokens).
    pub app_id: String,
    /// The signed-in user.
    pub user_id: String,
    /// Where the identity platform's signing keys come from.
    pub jwks: JwksSource,
    /// The public URL Graph reaches the webhook at (`https://...`, through a tunnel or a
    /// proxy); without it, `http://` and the listening address (fine for a simulator).
    pub public_url: Option<String>,
    /// The encryption key (PEM, with its certificate) to use instead of the one the app makes
    /// under `data` on its first start.
    pub key_file: Option<PathBuf>,
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
    sync: Arc<GraphSync>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    workers: Option<Workers>,
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
    /// Starts the app: opens the cache and the inbox, serves the page, the API and the webhook,
    /// subscribes (before reading anything, so that nothing falls between), then reads every
    /// chat from its watermark. Returns once all of that is done.
    pub async fn start(config: Config) -> Result<App, AppError> {
        let (store, key, client_state) = open_state(&config).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(io(format!("cannot listen on {}", config.listen)))?;
        let addr = listener.local_addr().map_err(io("local address"))?;
        let subscriber = subscriber(&config, addr, &key, &client_state);
        let webhook = open_webhook(&config, key, client_state).await?;
        let graph = GraphClient::new(&config.graph, &config.token);
        let sync = Arc::new(GraphSync::new(
            graph,
            store,
            config.user_id.clone(),
            config.tenant_id.clone(),
            subscriber,
        ));
        let handler_sync = Arc::clone(&sync);
        let workers = webhook.start_workers(
            move |_: &BatchContext, batch: &Batch<'_, '_>, buf: &mut DecryptBuffer| {
                handle_batch(&handler_sync, batch, buf)
            },
        );

        let (stop, stopped) = watch::channel(false);
        let hosts = hosts(addr, config.public_url.as_deref());
        let router = web::router(Arc::clone(&sync), stopped.clone(), hosts).merge(webhook.router());
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

        // Subscribe first, then read: what changes in between arrives as a notification.
        let mut app = App {
            url: format!("http://{addr}/"),
            sync: Arc::clone(&sync),
            stop,
            server,
            tasks: Vec::new(),
            workers: Some(workers),
        };
        if let Err(e) = sync.resync_all(ResyncReason::Start).await {
            app.shutdown().await;
            return Err(e.into());
        }
        app.keep_current(config.resync_every);
        Ok(app)
    }

    /// Starts the keeper's loop and the periodic resync (at least one second apart).
    fn keep_current(&mut self, resync_every: Duration) {
        self.tasks.push(tokio::spawn(Arc::clone(&self.sync).keep()));
        let every = resync_every.max(Duration::from_secs(1));
        let periodic = Arc::clone(&self.sync);
        self.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                // A failure is logged by the resync; the next one reads it all.
                let _ = periodic.resync_all(ResyncReason::Periodic).await;
            }
        }));
    }

    /// The page's URL (`http://HOST:PORT/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The Graph side (subscriptions, reads, the client).
    pub fn sync(&self) -> &Arc<GraphSync> {
        &self.sync
    }

    /// The cache.
    pub fn store(&self) -> &Store {
        self.sync.store()
    }

    /// Stops serving (event streams end), lets the workers finish the batch in hand; what is
    /// still in the inbox stays there for the next start.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            task.abort();
        }
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

/// The durable state under `config.data`, off the async threads: the cache, the app's key (made
/// on the first start) and the `clientState` secret (likewise).
async fn open_state(config: &Config) -> Result<(Store, AppKey, String), AppError> {
    let config = config.clone();
    let opened = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&config.data)
            .map_err(io(format!("cannot create {}", config.data.display())))?;
        let viewer = Viewer {
            user_id: config.user_id.clone(),
            graph_base: config.graph.trim_end_matches('/').to_owned(),
        };
        let store = Store::open(&config.data.join("cache.sqlite"), viewer)?;
        let key = match &config.key_file {
            Some(path) => keys::load(path)?,
            None => keys::load_or_create(&config.data)?,
        };
        let client_state = match store.setting("clientState")? {
            Some(s) => s,
            None => {
                let s = keys::random_secret();
                store.set_setting("clientState", &s)?;
                s
            }
        };
        Ok((store, key, client_state))
    });
    opened
        .await
        .map_err(|_| AppError::Store(StoreError::Unavailable))?
}

/// Where Graph is to deliver, and what it encrypts for: the public URL, else this address
/// over `http://` (which only a local Graph reaches).
fn subscriber(config: &Config, addr: SocketAddr, key: &AppKey, client_state: &str) -> Subscriber {
    let public = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let public = public.trim_end_matches('/');
    Subscriber {
        notification_url: format!("{public}/notifications"),
        lifecycle_url: format!("{public}/lifecycle"),
        certificate_der: key.certificate.clone(),
        certificate_id: key.certificate_id.clone(),
        client_state: client_state.to_owned(),
        // Without a public URL the webhook is this address: only a local Graph reaches it.
        loopback_http: config.public_url.is_none(),
    }
}

/// The webhook: a receiver for the app's key, its `clientState` and the validation tokens of its
/// tenant and app, over the durable inbox.
async fn open_webhook(
    config: &Config,
    key: AppKey,
    client_state: String,
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
    let jwks = config.jwks.clone();
    // Opening the inbox and the first JWKS fetch block: off the async threads.
    tokio::task::spawn_blocking(move || {
        let inbox = SqliteInbox::open(&inbox_path).map_err(|e| e.to_string())?;
        Webhook::builder(receiver)
            .inbox(inbox)
            .jwks(jwks)
            .on_refusal(report_refusal)
            .build()
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| AppError::Webhook(e.to_string()))?
    .map_err(AppError::Webhook)
}

/// The `Host` names the page and its API answer to: the listening address and its loopback
/// names, and the public URL's host; any, when listening on every interface without one.
fn hosts(addr: SocketAddr, public_url: Option<&str>) -> web::Hosts {
    if addr.ip().is_unspecified() && public_url.is_none() {
        return web::Hosts::Any;
    }
    let port = addr.port();
    let mut names = vec![
        addr.to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    if let Some(host) = public_url
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
    {
        names.push(host);
    }
    web::Hosts::Only(names.into())
}

/// What the webhook refused: already a `tracing` event of the webhook's (target
/// `graph_chat_webhook`), which the program's subscriber shows or not; nothing is printed here
/// (a library does not write to stderr on its own).
fn report_refusal(_: &Refusal) {}

/// One stored batch: each notification opened (decrypted on this worker thread) and applied.
/// A notification that cannot be opened is refused alone; a cache that cannot write keeps the
/// batch for later.
fn handle_batch(
    sync: &GraphSync,
    batch: &Batch<'_, '_>,
    buf: &mut DecryptBuffer,
) -> Result<(), HandlerError> {
    let mut failure: Option<StoreError> = None;
    batch.open_each(buf, |result| match result {
        Err(e) => tracing::warn!(error = %e, "a notification was refused"),
        Ok(opened) => {
            if let Err(e) = apply(sync, &opened) {
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
        // A chat changed (its topic, its members, the user's viewpoint): its read for the user
        // is the truth now, whatever order its notifications come in.
        // Deleted too: the read answers 404 and the chat is forgotten.
        (_, Some(ResourcePath::Chat { chat_id })) => read_chat(sync, chat_id),
        // Anything else (a message without data, a channel's) is found by the next read.
        _ => {}
    }
    Ok(())
}

fn read_chat(sync: &GraphSync, chat_id: &str) {
    if let Err(e) = sync.read_chat_blocking(chat_id) {
        tracing::warn!(chat = %chat_id, error = %e, "cannot read a chat; the next resync will");
    }
}
