//! The entry point: [`Webhook`] and its builder.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use graph_chat_notifications::inbound::{Delivery, Receiver};
use graph_chat_notifications::tokens::TokenValidator;

use crate::body::Budget;
use crate::inbox::Inbox;
use crate::jwks::{Jwks, JwksSource};
use crate::limits::ServerLimits;
use crate::refusal::{Refusal, Reporter};
use crate::state::{BuildError, EventGrid, Shared};
use crate::workers::{Handler, Workers};

/// The default for [`WebhookBuilder::jwks_min_interval`]: 5 minutes, the core's policy default.
pub const JWKS_MIN_INTERVAL: Duration = Duration::from_secs(300);

type Report = dyn Fn(&Refusal) + Send + Sync;

/// Builds a [`Webhook`].
#[must_use]
pub struct WebhookBuilder {
    receiver: Receiver,
    event_grid: Option<EventGrid>,
    inbox: Option<Arc<dyn Inbox>>,
    jwks: Option<JwksSource>,
    jwks_min_interval: Duration,
    limits: ServerLimits,
    report: Box<Report>,
}

impl fmt::Debug for WebhookBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookBuilder")
            .field("receiver", &self.receiver)
            .field("jwks", &self.jwks)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl WebhookBuilder {
    /// The durable inbox batches are committed to before the 2xx.
    pub fn inbox(mut self, inbox: impl Inbox) -> Self {
        self.inbox = Some(Arc::new(inbox));
        self
    }

    /// An inbox shared with other code (a test that counts what was stored, say).
    pub fn shared_inbox(mut self, inbox: Arc<dyn Inbox>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Where the identity platform's JWKS comes from: fetched once by
    /// [`build`](Self::build), and again when a token names an unknown key, at most once per
    /// [`jwks_min_interval`](Self::jwks_min_interval). Required when the receiver checks tokens.
    pub fn jwks(mut self, source: JwksSource) -> Self {
        self.jwks = Some(source);
        self
    }

    /// The least time between two JWKS fetches (default [`JWKS_MIN_INTERVAL`]).
    pub fn jwks_min_interval(mut self, interval: Duration) -> Self {
        self.jwks_min_interval = interval;
        self
    }

    /// Serves `OPTIONS /eventgrid` (the CloudEvents abuse-protection handshake) and
    /// `POST /eventgrid`, through the same inbox. Off unless called.
    pub fn event_grid(mut self, event_grid: EventGrid) -> Self {
        self.event_grid = Some(event_grid);
        self
    }

    /// The server's bounds (default [`ServerLimits::default`]).
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Called for every [`Refusal`], after its `tracing` event (default: a line on stderr,
    /// `webhook: <refusal>`), on a thread of its own: refusals queue for it (4,096 at most; past
    /// that they are counted and reported as [`Refusal::Unreported`]), so a slow callback never
    /// slows a request.
    pub fn on_refusal(mut self, report: impl Fn(&Refusal) + Send + Sync + 'static) -> Self {
        self.report = Box::new(report);
        self
    }

    /// Checks the configuration and, with a JWKS source, fetches the JWKS once (blocking).
    pub fn build(self) -> Result<Webhook, BuildError> {
        let inbox = self.inbox.ok_or(BuildError::NoInbox)?;
        if self.receiver.delivery() != Delivery::Webhook {
            return Err(BuildError::NotWebhook);
        }
        let needs_keys = self.receiver.tokens().is_some()
            || self
                .event_grid
                .as_ref()
                .is_some_and(|eg| eg.bearer.is_some());
        let jwks = match (self.jwks, needs_keys) {
            (Some(source), true) => {
                source.check().map_err(BuildError::Jwks)?;
                Some(Jwks::new(source, self.jwks_min_interval))
            }
            (None, true) => {
                return Err(BuildError::Jwks(
                    "tokens are checked, so a JWKS source is required".into(),
                ))
            }
            (Some(_), false) => {
                return Err(BuildError::Jwks(
                    "a JWKS source is given, but no token is checked".into(),
                ))
            }
            (None, false) => None,
        };
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let shared = Shared {
            receiver: self.receiver,
            event_grid: self.event_grid,
            inbox,
            jwks,
            budget: Budget::new(&self.limits),
            limits: self.limits,
            admissions: Arc::new(tokio::sync::Semaphore::new(
                cores * crate::limits::ADMISSIONS_PER_CORE,
            )),
            reporter: Reporter::start(self.report),
        };
        if let Some(jwks) = &shared.jwks {
            let validators: Vec<&TokenValidator> = shared.validators().collect();
            jwks.load(&validators)
                .map_err(|e| BuildError::Jwks(format!("cannot load the signing keys: {e}")))?;
        }
        Ok(Webhook {
            shared: Arc::new(shared),
        })
    }
}

/// The webhook: Graph's three routes as an axum [`Router`], the hardened server
/// ([`serve`](Self::serve)) and the workers ([`start_workers`](Self::start_workers)).
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Webhook {
    shared: Arc<Shared>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("receiver", &self.shared.receiver)
            .field("event_grid", &self.shared.event_grid.is_some())
            .field("inbox", &self.shared.inbox.stats())
            .field("limits", &self.shared.limits)
            .finish()
    }
}

impl Webhook {
    /// A builder around the receiver for `POST /notifications` and `POST /lifecycle` (built
    /// for [`Delivery::Webhook`], with its keys, `clientState`s and token validator).
    pub fn builder(receiver: Receiver) -> WebhookBuilder {
        WebhookBuilder {
            receiver,
            event_grid: None,
            inbox: None,
            jwks: None,
            jwks_min_interval: JWKS_MIN_INTERVAL,
            limits: ServerLimits::default(),
            report: Box::new(|r: &Refusal| eprintln!("webhook: {r}")),
        }
    }

    /// The routes: `POST /notifications` and `POST /lifecycle` (validation handshakes, then
    /// batches), and with [`WebhookBuilder::event_grid`], `OPTIONS` and `POST /eventgrid`.
    /// Mount it (`Router::nest`, `merge`) in your own server, or run [`serve`](Self::serve).
    pub fn router(&self) -> Router {
        crate::routes::router(Arc::clone(&self.shared))
    }

    /// Serves [`router`](Self::router) on `listener` until `shutdown` resolves, with the
    /// connection bounds of [`ServerLimits`]: a deadline for each request head, an idle
    /// deadline, a cap on connections per source address and in all (past which a connection
    /// not being answered, no request in hand or a body not all arrived, is shed for the new
    /// one from a source holding at least two more: see [`ServerLimits::shed_grace`]), places
    /// kept for the webhook's routes ([`ServerLimits::reserved_for_webhook`]), and each body's
    /// share of the body budget per source address. On shutdown it stops
    /// accepting, lets requests in hand finish (their commits included) for
    /// [`ServerLimits::shutdown_grace`], then closes what is left, half-sent requests included.
    pub async fn serve<F>(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: F,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        crate::conn::serve(Arc::clone(&self.shared), self.router(), listener, shutdown).await
    }

    /// [`serve`](Self::serve) for a program's own router, which holds [`router`](Self::router)
    /// beside its other routes (`app.merge(webhook.router())`): one listener, under the same
    /// connection bounds.
    ///
    /// A handler answering with a long-lived response (Server-Sent Events) takes a
    /// [`StreamSlot`](crate::StreamSlot): its connection then counts in the stream pool, with
    /// caps of its own ([`ServerLimits::streams_per_address`], [`ServerLimits::max_streams`]),
    /// instead of holding one of the places Graph's deliveries need. A long-lived response must
    /// send something at least every [`ServerLimits::idle_deadline`] (a keep-alive comment), or
    /// the connection is closed as idle.
    pub async fn serve_router<F>(
        &self,
        router: Router,
        listener: tokio::net::TcpListener,
        shutdown: F,
    ) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send,
    {
        crate::conn::serve(Arc::clone(&self.shared), router, listener, shutdown).await
    }

    /// Starts one worker thread per core, each handing stored batches to `handler`.
    pub fn start_workers(&self, handler: impl Handler) -> Workers {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        self.start_workers_with(handler, threads)
    }

    /// Starts `threads` workers (at least one).
    pub fn start_workers_with(&self, handler: impl Handler, threads: usize) -> Workers {
        Workers::start(Arc::clone(&self.shared), Arc::new(handler), threads)
    }

    /// The inbox batches are committed to.
    pub fn inbox(&self) -> &Arc<dyn Inbox> {
        &self.shared.inbox
    }

    /// The limits in force.
    pub fn limits(&self) -> &ServerLimits {
        &self.shared.limits
    }
}
