//! The page and the app's API (`docs/contracts.md#the-chat-app`): the chat list, a chat's
//! messages, sending, marking read, inline images through the app, and the live event stream.
//!
//! Every failure answers with one [`ApiError`]: a status and a plain message for the page,
//! while what went wrong inside (SQLite's text, a connection's error) goes to the log only.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;
use graph_chat_webhook::notifications::model::ChatMessage;
use graph_chat_webhook::notifications::outbound::{self, MessageRequest};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::store::{Event, Origin, Snapshot, Store, StoreError};
use crate::sync::{GraphSync, SyncError};

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// Events read from the log at once when a stream catches up.
const REPLAY_BATCH: usize = 500;

/// The page runs only its own script: even a sanitizer miss could not run a sender's.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone)]
struct AppState {
    sync: Arc<GraphSync>,
    stopped: watch::Receiver<bool>,
}

/// The actions' handlers (`crate::actions`) take the Graph side alone.
impl axum::extract::FromRef<AppState> for Arc<GraphSync> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.sync)
    }
}

/// Which `Host` the page and its API answer to.
#[derive(Debug, Clone)]
pub(crate) enum Hosts {
    /// Only these (`127.0.0.1:8080`, `localhost:8080`, a public host): another name pointing
    /// here (DNS rebinding) gets nothing.
    Only(Arc<[String]>),
    /// Any: the app listens on every interface and no public URL names it.
    Any,
}

/// The page and its API answer only to the hosts they are served as, and take changes (POST)
/// only from their own page: a request another site's page makes (`Origin` elsewhere,
/// `Sec-Fetch-Site: cross-site`) is refused, so it cannot send or mark read for the user.
async fn same_origin(
    State(hosts): State<Hosts>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err((status, why)) = check_origin(&hosts, &request) {
        return ApiError::new(status, why).into_response();
    }
    next.run(request).await
}

fn check_origin(
    hosts: &Hosts,
    request: &axum::extract::Request,
) -> Result<(), (StatusCode, &'static str)> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let host = header("host");
    if let Hosts::Only(allowed) = hosts {
        if !allowed.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Err((
                StatusCode::MISDIRECTED_REQUEST,
                "not served under this host name",
            ));
        }
    }
    let reads = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !reads {
        let cross_site = header("sec-fetch-site").eq_ignore_ascii_case("cross-site");
        let origin = header("origin").trim_end_matches('/');
        let foreign_origin = !origin.is_empty()
            && origin != format!("http://{host}")
            && origin != format!("https://{host}");
        if cross_site || foreign_origin {
            return Err((StatusCode::FORBIDDEN, "only the app's own page may do this"));
        }
    }
    Ok(())
}

/// The largest request body the API reads: 64 KiB (axum's default is 2 MB). A message the
/// page sends is a few KiB at most (Graph takes about 28 KiB of message content), and the
/// other changes carry no body.
const MAX_API_BODY: usize = 64 << 10;
/// A request body must have arrived whole within 5 s of its head: the page sends a few KiB at
/// once. The connection it comes on holds one of the places the server shares with the
/// webhook, so a body sent a byte at a time must not hold it.
const API_BODY_DEADLINE: Duration = Duration::from_secs(5);

/// Reads the request body whole, under [`MAX_API_BODY`] and [`API_BODY_DEADLINE`], before the
/// handler runs: 413 past the size, 408 past the deadline.
async fn bounded_body(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(API_BODY_DEADLINE, axum::body::to_bytes(body, MAX_API_BODY));
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is over 64 KiB",
            )
            .into_response()
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            )
            .into_response()
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

pub(crate) fn router(sync: Arc<GraphSync>, stopped: watch::Receiver<bool>, hosts: Hosts) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(PAGE, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/api/me", get(me))
        .route("/api/chats", get(chats))
        .route("/api/chats/{chat_id}/messages", get(messages).post(send))
        .route("/api/chats/{chat_id}/read", post(mark_read))
        .route(
            "/api/chats/{chat_id}/messages/{message_id}/hostedContents/{hosted_id}",
            get(hosted_content),
        )
        .route("/api/events", get(events))
        .route("/api/chats/{chat_id}/history", get(crate::actions::history))
        .route(
            "/api/chats/{chat_id}/messages/{message_id}",
            axum::routing::patch(crate::actions::edit),
        )
        .route(
            "/api/chats/{chat_id}/messages/{message_id}/{action}",
            post(crate::actions::message_action),
        )
        .route(
            "/api/chats/{chat_id}/{action}",
            post(crate::actions::chat_action),
        )
        .with_state(AppState { sync, stopped })
        .layer(axum::middleware::from_fn(bounded_body))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY))
        .layer(axum::middleware::from_fn_with_state(hosts, same_origin))
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Why a request failed, as the page is told: a status and a plain message (`{"error": ...}`).
/// What went wrong inside is logged where the error is made, never sent.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The request itself is wrong (a bad id, a bad content type): the message says how.
    fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Graph did not do what was asked: 502, the reason logged.
    fn graph(what: &'static str, reason: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %reason, "{what}");
        Self::new(StatusCode::BAD_GATEWAY, what)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "a request could not use the cache");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the cache is unavailable",
        )
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Store(e) => e.into(),
            other => Self::graph("Graph did not answer as expected", &other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// A snapshot, with the last event it reflects: a page that opens the stream after it
/// (`/api/events?after=N`) misses nothing and replays nothing older.
fn snapshot(snapshot: Snapshot) -> Response {
    let mut response =
        ([(header::CONTENT_TYPE, "application/json")], snapshot.json).into_response();
    if let Ok(v) = HeaderValue::from_str(&snapshot.last_event.to_string()) {
        response.headers_mut().insert("x-last-event-id", v);
    }
    response
}

/// The signed-in user, for the page to tell its own messages.
async fn me(State(state): State<AppState>) -> Response {
    Json(json!({ "id": state.sync.user_id() })).into_response()
}

async fn chats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let chats = state
        .sync
        .store()
        .call(|store| store.chats_snapshot())
        .await?;
    Ok(snapshot(chats))
}

async fn messages(
    State(state): State<AppState>,
    Path(chat_id): Path<String>,
) -> Result<Response, ApiError> {
    let messages = state
        .sync
        .store()
        .call(move |store| store.messages_snapshot(&chat_id))
        .await?;
    match messages {
        Some(messages) => Ok(snapshot(messages)),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such chat")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Compose {
    content: String,
    #[serde(default)]
    content_type: Option<String>,
}

/// Sends through Graph; the 201's message goes into the cache under the same rules as its
/// later notification, so the two are one message on the page.
async fn send(
    State(state): State<AppState>,
    Path(chat_id): Path<String>,
    Json(compose): Json<Compose>,
) -> Result<Response, ApiError> {
    let mut request = MessageRequest::send(chat_id.clone(), compose.content);
    match compose.content_type.as_deref() {
        None | Some("text") => request = request.text(),
        Some("html") => request = request.html(),
        Some(_) => return Err(ApiError::bad_request("contentType is \"text\" or \"html\"")),
    }
    let request = request
        .build()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let answer = send_as_asked(&state, request, "the send").await?;
    let item = state
        .sync
        .store()
        .call(move |store| {
            let message: ChatMessage<'_> = serde_json::from_slice(&answer.body).map_err(|_| {
                ApiError::new(StatusCode::BAD_GATEWAY, "Graph's answer is not a message")
            })?;
            let Some(id) = message.id.as_deref() else {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "Graph's answer is not a message",
                ));
            };
            store.apply(&chat_id, &message, Origin::Read)?;
            Ok(store.message(&chat_id, id)?)
        })
        .await?;
    match item {
        Some(item) => Ok((StatusCode::CREATED, Json(item)).into_response()),
        None => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "the sent message was not kept",
        )),
    }
}

/// A request a person asked for, sent to Graph: its answer when Graph took it, else a 502 that
/// names `what` and Graph's status.
async fn send_as_asked(
    state: &AppState,
    request: outbound::HttpRequest,
    what: &str,
) -> Result<graph_chat_webhook::GraphResponse, ApiError> {
    let answer = state
        .sync
        .send(request)
        .await
        .map_err(|e| ApiError::graph("Graph could not be reached", &e))?;
    if !answer.is_success() {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("Graph answered {} to {what}", answer.status),
        ));
    }
    Ok(answer)
}

/// `markChatReadForUser` through Graph, then the chat read back for its new viewpoint.
async fn mark_read(
    State(state): State<AppState>,
    Path(chat_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let request =
        outbound::mark_chat_read_for_user(&chat_id, state.sync.user_id(), state.sync.tenant_id())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    send_as_asked(&state, request, "markChatReadForUser").await?;
    state.sync.read_chat(&chat_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An inline image: the browser has no token for Graph, so the app fetches it.
async fn hosted_content(
    State(state): State<AppState>,
    Path((chat_id, message_id, hosted_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let request = outbound::hosted_content_bytes(&chat_id, &message_id, &hosted_id)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    match state.sync.send(request).await {
        Ok(a) if a.is_success() => {
            let content_type = image_type(&a.body);
            Ok((
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
                    (header::CACHE_CONTROL, "private, max-age=3600"),
                ],
                a.body,
            )
                .into_response())
        }
        Ok(a) if a.status == 404 => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such hosted content",
        )),
        Ok(a) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("Graph answered {}", a.status),
        )),
        Err(e) => Err(ApiError::graph("Graph could not be reached", &e)),
    }
}

/// The image type from the bytes; anything else is served as opaque bytes, never as a
/// document the browser would run.
fn image_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "image/gif"
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "application/octet-stream"
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<i64>,
}

/// Server-Sent Events: every event after `Last-Event-ID` (the browser sends it when it
/// reconnects) or `?after=` (a page after its snapshot); without either, new events only.
/// The stream counts in the server's stream pool ([`StreamSlot`](graph_chat_webhook::StreamSlot)),
/// with its own caps per address and in all (503 past them), never in the connections the
/// webhook's routes need.
///
/// `StreamSlot` is the last extractor: a request the others reject (a malformed `?after=`)
/// never counts as a stream.
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
    _stream: graph_chat_webhook::StreamSlot,
) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.after);
    let store = state.sync.store().clone();
    let opened = store
        .call(|store| {
            let (live, last) = store.subscribe()?;
            let first = store.first_event_id()?;
            Ok::<_, ApiError>((live, last, first))
        })
        .await;
    let (live, last, first) = match opened {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let after = resume.unwrap_or(last).max(0);
    // Events the log no longer holds: the page must reload its snapshot.
    let reset = resume.is_some() && first > 0 && after + 1 < first;
    let stream = EventStream {
        store,
        live,
        after,
        replaying: resume.is_some_and(|r| r < last),
        backlog: VecDeque::new(),
        stopped: state.stopped.clone(),
    };
    let mut sse = Sse::new(stream.into_stream(reset))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    sse.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    sse
}

struct EventStream {
    store: Store,
    live: broadcast::Receiver<Event>,
    after: i64,
    replaying: bool,
    backlog: VecDeque<Event>,
    stopped: watch::Receiver<bool>,
}

impl EventStream {
    /// The next event to send, or `None` when the app stops.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                self.after = event.id;
                return Some(event);
            }
            if self.replaying {
                let after = self.after;
                let batch = match self
                    .store
                    .call(move |store| store.events_after(after, REPLAY_BATCH))
                    .await
                {
                    Ok(batch) => batch,
                    Err(e) => {
                        // The page reconnects with its Last-Event-ID and tries again.
                        tracing::warn!(error = %e, "cannot replay events; the stream ends");
                        return None;
                    }
                };
                self.replaying = batch.len() == REPLAY_BATCH;
                self.backlog.extend(batch);
                continue;
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(event) if event.id > self.after => self.backlog.push_back(event),
                    Ok(_) => {}
                    // Too slow a reader: catch up from the log, which holds everything.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.replaying = true,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.stopped.wait_for(|s| *s) => return None,
            }
        }
    }

    fn into_stream(self, reset: bool) -> impl Stream<Item = Result<SseEvent, Infallible>> {
        let first = reset.then(|| SseEvent::default().event("reset").data("{}"));
        futures_util::stream::unfold((self, first), |(mut stream, first)| async move {
            if let Some(reset) = first {
                return Some((Ok(reset), (stream, None)));
            }
            let event = stream.next().await?;
            let sse = SseEvent::default()
                .id(event.id.to_string())
                .data(event.data);
            Some((Ok(sse), (stream, None)))
        })
    }
}
