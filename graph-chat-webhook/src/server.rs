//! The entry point: [`Webhook`], its builder, and the router's handlers.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use graph_chat_notifications::inbound::{cloud_events_handshake, handshake, Delivery, Receiver};
use graph_chat_notifications::tokens::{TokenValidator, EVENT_GRID_APP_ID};

use crate::admit::{self, Verdict};
use crate::body::{self, Budget, HeldBody};
use crate::inbox::{Inbox, Route};
use crate::jwks::{Jwks, JwksSource, KeyVerdict};
use crate::limits::ServerLimits;
use crate::refusal::{Refusal, Reporter};
use crate::workers::{Handler, Workers};

/// The default for [`WebhookBuilder::jwks_min_interval`]: 5 minutes, the core's policy default.
pub const JWKS_MIN_INTERVAL: Duration = Duration::from_secs(300);

type Report = dyn Fn(&Refusal) + Send + Sync;

/// What every request and worker shares.
pub(crate) struct Shared {
    pub(crate) receiver: Receiver,
    pub(crate) event_grid: Option<EventGrid>,
    pub(crate) inbox: Arc<dyn Inbox>,
    pub(crate) jwks: Option<Jwks>,
    pub(crate) budget: Budget,
    pub(crate) limits: ServerLimits,
    /// Admissions running at once ([`crate::limits::ADMISSIONS_PER_CORE`]).
    admissions: Arc<tokio::sync::Semaphore>,
    reporter: Reporter,
}

impl Shared {
    pub(crate) fn receiver_for(&self, route: Route) -> &Receiver {
        match (route, &self.event_grid) {
            (Route::EventGrid, Some(eg)) => &eg.receiver,
            _ => &self.receiver,
        }
    }

    /// Every validator that holds the identity platform's keys.
    pub(crate) fn validators(&self) -> impl Iterator<Item = &TokenValidator> {
        self.receiver
            .tokens()
            .into_iter()
            .chain(self.event_grid.as_ref().and_then(|eg| eg.bearer.as_deref()))
    }

    pub(crate) fn refreshes_jwks(&self) -> bool {
        self.jwks.is_some()
    }

    pub(crate) fn refuse(&self, refusal: Refusal) {
        self.reporter.report(refusal);
    }
}

/// The Event Grid routes' configuration: a receiver for CloudEvents, and the check of the
/// Microsoft Entra bearer token Event Grid sends with each delivery.
///
/// Event Grid sends no validation tokens. What a delivery to `/eventgrid` rests on: the bearer
/// token (issued by the identity platform for your app, to Event Grid's service principal: the
/// event subscription must be set to deliver to a Microsoft Entra protected webhook), the
/// tenants the receiver serves ([`ReceiverBuilder::allowed_tenants`](graph_chat_notifications::inbound::ReceiverBuilder::allowed_tenants):
/// each notification's `tenantId` and each CloudEvent's `source`), and `clientState`.
pub struct EventGrid {
    receiver: Receiver,
    bearer: Option<Box<TokenValidator>>,
}

impl fmt::Debug for EventGrid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventGrid")
            .field("receiver", &self.receiver)
            .field("bearer", &self.bearer)
            .finish()
    }
}

impl EventGrid {
    /// Event Grid deliveries read by `receiver` (built with [`Delivery::EventGrid`] and
    /// `allowed_tenants`), each request's bearer token checked by `bearer` (a validator whose
    /// publisher is [`EVENT_GRID_APP_ID`], for your app and tenants; its keys come from the
    /// webhook's JWKS source).
    pub fn new(receiver: Receiver, bearer: TokenValidator) -> Result<Self, BuildError> {
        if !bearer
            .configured_publisher()
            .eq_ignore_ascii_case(EVENT_GRID_APP_ID)
        {
            return Err(BuildError::EventGrid(
                "the bearer validator's publisher must be Event Grid's app (EVENT_GRID_APP_ID)",
            ));
        }
        Self::checked(receiver, Some(Box::new(bearer)))
    }

    /// Event Grid deliveries taken without a bearer token: anyone who learns the URL and a
    /// `clientState` can deliver. Only behind another proof of origin (a private network, a
    /// proxy that authenticates), or in tests.
    pub fn dangerous_without_bearer(receiver: Receiver) -> Result<Self, BuildError> {
        Self::checked(receiver, None)
    }

    fn checked(
        receiver: Receiver,
        bearer: Option<Box<TokenValidator>>,
    ) -> Result<Self, BuildError> {
        if receiver.delivery() != Delivery::EventGrid {
            return Err(BuildError::EventGrid(
                "the receiver must read Delivery::EventGrid",
            ));
        }
        if receiver.allowed_tenants().is_empty() {
            return Err(BuildError::EventGrid(
                "the receiver must name the tenants it serves (allowed_tenants)",
            ));
        }
        Ok(Self { receiver, bearer })
    }
}

/// Why [`WebhookBuilder::build`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No inbox was given.
    #[error("an inbox is required")]
    NoInbox,
    /// The receiver is not for the webhook channel.
    #[error("the receiver must read Delivery::Webhook")]
    NotWebhook,
    /// The receiver checks validation tokens but no JWKS source was given (or the reverse).
    #[error("{0}")]
    Jwks(String),
    /// The Event Grid configuration is refused.
    #[error("event grid: {0}")]
    EventGrid(&'static str),
}

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
        let mut router = Router::new()
            .route("/notifications", post(notifications))
            .route("/lifecycle", post(lifecycle));
        if self.shared.event_grid.is_some() {
            router = router.route("/eventgrid", post(event_grid).options(event_grid_options));
        }
        router.with_state(Arc::clone(&self.shared))
    }

    /// Serves [`router`](Self::router) on `listener` until `shutdown` resolves, with the
    /// connection bounds of [`ServerLimits`]: a deadline for each request head, an idle
    /// deadline, a cap on connections per source address and in all. On shutdown it stops
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
    /// connection bounds. A long-lived response (Server-Sent Events) must send something at
    /// least every [`ServerLimits::idle_deadline`] (a keep-alive comment), or the connection is
    /// closed as idle.
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

async fn notifications(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(shared, Route::Notifications, query, headers, body).await
}

async fn lifecycle(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(shared, Route::Lifecycle, query, headers, body).await
}

async fn event_grid(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    if let Err(status) = check_bearer(&shared, &headers).await {
        return status.into_response();
    }
    receive(shared, Route::EventGrid, None, headers, body).await
}

/// The CloudEvents abuse-protection handshake Event Grid sends before it delivers.
async fn event_grid_options(headers: HeaderMap) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match cloud_events_handshake(
        header("WebHook-Request-Origin"),
        header("WebHook-Request-Rate"),
    ) {
        Some(reply) => {
            let mut response = StatusCode::OK.into_response();
            for (name, value) in reply.headers() {
                if let Ok(value) = HeaderValue::from_str(value) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        None => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Checks Event Grid's `Authorization: Bearer` token, before the body is read; the status to
/// answer when it fails (the refusal already reported).
async fn check_bearer(shared: &Arc<Shared>, headers: &HeaderMap) -> Result<(), StatusCode> {
    if shared
        .event_grid
        .as_ref()
        .is_none_or(|eg| eg.bearer.is_none())
    {
        return Ok(());
    }
    let unauthorized = |reason: String| Err(refused(shared, Route::EventGrid, 401, reason));
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string())
    else {
        return unauthorized("no bearer token".into());
    };
    for _ in 0..2 {
        let checked = {
            let shared = Arc::clone(shared);
            let token = token.clone();
            // RS256 once per token (then cached): off the async threads all the same.
            tokio::task::spawn_blocking(move || {
                let bearer = shared.event_grid.as_ref().and_then(|eg| eg.bearer.as_ref());
                bearer.map(|b| b.validate(&token, SystemTime::now()))
            })
            .await
        };
        let error = match checked {
            Ok(Some(Ok(_))) | Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => e,
            Err(_) => {
                return unavailable(shared, Route::EventGrid, "the bearer check failed".into())
            }
        };
        let Some(kid) = error.unknown_key() else {
            return unauthorized(format!("bearer token: {error}"));
        };
        match resolve_unknown_key(shared, kid.to_string()).await {
            KeyVerdict::Refreshed => continue,
            KeyVerdict::Pending => {
                return unavailable(
                    shared,
                    Route::EventGrid,
                    format!("bearer token: {error}; JWKS refresh pending"),
                )
            }
            KeyVerdict::Forged => return unauthorized(format!("bearer token: {error}")),
        }
    }
    unauthorized("bearer token: signing key still unknown after a JWKS refresh".into())
}

fn unavailable<T>(shared: &Shared, route: Route, reason: String) -> Result<T, StatusCode> {
    Err(refused(shared, route, 503, reason))
}

/// Reports a refusal answered with `status`, and returns that status.
fn refused(shared: &Shared, route: Route, status: u16, reason: String) -> StatusCode {
    shared.refuse(Refusal::Answered {
        route,
        status,
        reason,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// Reports a refusal and makes its reply.
fn answer(shared: &Shared, route: Route, status: u16, reason: String) -> Response {
    refused(shared, route, status, reason).into_response()
}

/// The one rule for an unknown signing key, off the async threads, waiting at most
/// [`ServerLimits::jwks_wait`] for a fetch it starts (the fetch goes on for Graph's retry).
async fn resolve_unknown_key(shared: &Arc<Shared>, kid: String) -> KeyVerdict {
    let asking = Arc::clone(shared);
    let decided = tokio::task::spawn_blocking(move || admit::unknown_key(&asking, &kid));
    match tokio::time::timeout(shared.limits.jwks_wait(), decided).await {
        Ok(Ok(verdict)) => verdict,
        _ => KeyVerdict::Pending,
    }
}

async fn receive(
    shared: Arc<Shared>,
    route: Route,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The handshake needs no body and no budget: answered at once, even during a flood.
    if route != Route::EventGrid {
        if let Some(reply) = handshake(query.as_deref().unwrap_or("")) {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, reply.content_type())],
                reply.into_body(),
            )
                .into_response();
        }
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = shared.receiver_for(route).limits().max_body_bytes();
    let held = match body::read(body, declared, limit, &shared.budget, &shared.limits).await {
        Ok(held) => held,
        Err(refusal) => return answer(&shared, route, refusal.status(), refusal.reason()),
    };
    let received = SystemTime::now();
    // Admission is CPU work off the async threads: a few at a time, so that a flood of cheap
    // bodies cannot crowd out the threads that accept and answer.
    let Ok(Ok(_admitting)) = tokio::time::timeout(
        shared.limits.budget_wait(),
        Arc::clone(&shared.admissions).acquire_owned(),
    )
    .await
    else {
        return answer(&shared, route, 503, "too many admissions at once".into());
    };
    let mut held = Some(held);
    for _ in 0..2 {
        let Some(body) = held.take() else { break };
        let admitting = Arc::clone(&shared);
        let admitted = tokio::task::spawn_blocking(move || {
            let outcome = admit::admit(&admitting, route, &body.bytes, received);
            (outcome, body)
        })
        .await;
        let ((verdict, refused), body): ((Verdict, _), HeldBody) = match admitted {
            Ok(done) => done,
            Err(_) => return answer(&shared, route, 503, "admission failed".into()),
        };
        for error in refused {
            shared.refuse(Refusal::Notification { route, error });
        }
        match verdict {
            Verdict::Stored(id) => {
                tracing::debug!(target: "graph_chat_webhook", batch = %id, %route, "batch stored");
                return StatusCode::ACCEPTED.into_response();
            }
            // A sender learns nothing: forged and malformed batches are answered like good ones.
            Verdict::Dropped(error) => {
                shared.refuse(Refusal::Dropped { route, error });
                return StatusCode::ACCEPTED.into_response();
            }
            Verdict::NothingAdmitted => {
                shared.refuse(Refusal::NothingAdmitted { route });
                return StatusCode::ACCEPTED.into_response();
            }
            Verdict::NotCommitted(e) => return answer(&shared, route, 503, e.to_string()),
            // After a refresh, the policy decides again (a key the fetch did not list: forged).
            Verdict::UnknownKey(error) => {
                let kid = error.unknown_key().unwrap_or_default().to_string();
                match resolve_unknown_key(&shared, kid).await {
                    KeyVerdict::Refreshed => held = Some(body),
                    KeyVerdict::Pending => {
                        return answer(
                            &shared,
                            route,
                            503,
                            format!("{error}; JWKS refresh pending"),
                        )
                    }
                    KeyVerdict::Forged => {
                        shared.refuse(Refusal::Dropped { route, error });
                        return StatusCode::ACCEPTED.into_response();
                    }
                }
            }
        }
    }
    answer(
        &shared,
        route,
        503,
        "signing key still unknown after a JWKS refresh".into(),
    )
}
