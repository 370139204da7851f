//! The page and the app's API (`docs/contracts.md#the-chat-app`): the chat list, a chat's
//! messages, sending, marking read, inline images through the app, and the live event stream.
//!
//! Every failure answers with one [`ApiError`]: a status and a plain message for the page,
//! while what went wrong inside (SQLite's text, a connection's error) goes to the log only.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use futures_util::stream::Stream;
use graph_chat_webhook::notifications::outbound::{self, MessageRequest};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use crate::api::{known_chat, waiting, write_as_asked, ApiError, Person};
use crate::signin::{self, SignInState};
use crate::site::Site;
use crate::store::{Event, Snapshot, Store};
use crate::sync::{GraphSync, Write, Written};

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// Events read from the log at once when a stream catches up.
const REPLAY_BATCH: usize = 500;

/// The page runs only its own script: even a sanitizer miss could not run a sender's. No page
/// frames it, unless `--frame-ancestors` names the ones that may ([`Site::csp`]).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone)]
struct AppState {
    stopped: watch::Receiver<bool>,
    signin: Arc<SignInState>,
}

/// Every `/api` route answers 401 without a valid session; with one, the handler gets the
/// [`Person`] it is for (and only that person's cache).
async fn require_session(
    State(signin): State<Arc<SignInState>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if path != "/api" && !path.starts_with("/api/") {
        return next.run(request).await;
    }
    match signin.signed_in(request.headers()).await {
        Some((sync, display_name)) => {
            request
                .extensions_mut()
                .insert(Person { sync, display_name });
            next.run(request).await
        }
        None => ApiError::new(StatusCode::UNAUTHORIZED, "sign in first").into_response(),
    }
}

/// `GET /`: the chat page for a signed-in person, the sign-in page for anyone else. A page load
/// is when the person's chats are checked against Graph ([`GraphSync::page_loaded`]: at most
/// once a minute), in the background: what it finds reaches the page as events.
async fn home(State(signin): State<Arc<SignInState>>, headers: HeaderMap) -> Response {
    match signin.signed_in(&headers).await {
        Some((sync, _)) => {
            tokio::spawn(async move {
                if let Err(e) = sync.page_loaded().await {
                    tracing::warn!(error = %e, "the page load's read failed");
                }
            });
            let mut page = asset(PAGE, "text/html; charset=utf-8");
            page.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            page
        }
        None => signin::sign_in_page(),
    }
}

/// The page and its API answer only to the hosts they are served as, and take changes (POST)
/// only from their own page: a request another site's page makes (`Origin` elsewhere,
/// `Sec-Fetch-Site: cross-site`) is refused, so it cannot send or mark read for the user.
/// Which hosts and origins those are, behind a proxy too, is the [`Site`]'s; so is who may
/// frame the page (its `frame-ancestors`).
async fn same_origin(
    State(site): State<Site>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Err((status, why)) = site.check(request.method(), request.headers()) {
        return ApiError::new(status, why).into_response();
    }
    let mut response = next.run(request).await;
    let csp = response
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|csp| site.csp(csp));
    if let Some(csp) = csp {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The largest request body the API reads: 64 KiB (axum's default is 2 MB). A message the
/// page sends is a few KiB at most (Graph takes about 28 KiB of message content), and the
/// other changes carry no body.
const MAX_API_BODY: usize = 64 << 10;
/// A request body must have arrived whole within 5 s of its head: the page sends a few KiB at
/// once. The connection it comes on holds one of the places the server shares with the
/// webhook, so a body sent a byte at a time must not hold it.
const API_BODY_DEADLINE: Duration = Duration::from_secs(5);

/// Reads the request body whole, under [`MAX_API_BODY`] (the image route's own limit for it,
/// [`crate::images::body_limit`]) and [`API_BODY_DEADLINE`], before the handler runs: 413 past
/// the size, 408 past the deadline.
async fn bounded_body(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (limit, too_large) = crate::images::body_limit(request.method(), request.uri().path())
        .unwrap_or((MAX_API_BODY, "the request body is over 64 KiB"));
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(API_BODY_DEADLINE, axum::body::to_bytes(body, limit));
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, too_large).into_response()
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

pub(crate) fn router(
    signin: Arc<SignInState>,
    stopped: watch::Receiver<bool>,
    site: Site,
) -> Router {
    let pages = Router::new()
        .route("/", get(home))
        .with_state(Arc::clone(&signin));
    Router::new()
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
        .route("/api/people", get(crate::directory::search))
        .route("/api/chats", post(crate::directory::create))
        .route("/api/chats/{chat_id}/images", post(crate::images::send))
        .route(
            "/api/chats/{chat_id}",
            axum::routing::patch(crate::directory::rename),
        )
        .route(
            "/api/chats/{chat_id}/messages/{message_id}",
            axum::routing::patch(crate::actions::edit),
        )
        .route(
            "/api/chats/{chat_id}/messages/{message_id}/{action}",
            post(crate::actions::message_action),
        )
        .route(
            "/api/chats/{chat_id}/members",
            post(crate::directory::add_members),
        )
        .route(
            "/api/chats/{chat_id}/{action}",
            post(crate::actions::chat_action),
        )
        // Any other path of the API: 404, after the session check like the rest.
        .route(
            "/api/{*rest}",
            axum::routing::any(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") }),
        )
        .with_state(AppState {
            stopped,
            signin: Arc::clone(&signin),
        })
        .merge(pages)
        .merge(signin::routes(Arc::clone(&signin)))
        .layer(axum::middleware::from_fn(bounded_body))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY))
        // Before the body is read: a request without a session waits for nothing.
        .layer(axum::middleware::from_fn_with_state(
            signin,
            require_session,
        ))
        .layer(axum::middleware::from_fn_with_state(site, same_origin))
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

/// The signed-in person, for the page to tell their own messages.
async fn me(Extension(person): Extension<Person>) -> Response {
    Json(json!({ "id": person.sync.user_id(), "displayName": person.display_name })).into_response()
}

async fn chats(Extension(person): Extension<Person>) -> Result<Response, ApiError> {
    let chats = person
        .sync
        .store()
        .call(|store| store.chats_snapshot())
        .await?;
    Ok(snapshot(chats))
}

/// The cache's view of a chat; a chat opened is read from Graph in the background
/// ([`GraphSync::chat_opened`]: at most once per 5 minutes), what it finds reaching the page as
/// events.
async fn messages(
    Extension(person): Extension<Person>,
    Path(chat_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = chat_id.clone();
    let messages = person
        .sync
        .store()
        .call(move |store| store.messages_snapshot(&id))
        .await?;
    match messages {
        Some(messages) => {
            let sync = Arc::clone(&person.sync);
            tokio::spawn(async move {
                if let Err(e) = sync.chat_opened(&chat_id).await {
                    tracing::warn!(chat = %chat_id, error = %e, "reading an opened chat failed");
                }
            });
            Ok(snapshot(messages))
        }
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
/// later notification, so the two are one message on the page. Throttled: 202 at once, and the
/// send waits and is retried until Graph takes it ([`GraphSync::write`]); the message reaches
/// the page as an event.
async fn send(
    Extension(person): Extension<Person>,
    Path(chat_id): Path<String>,
    Json(compose): Json<Compose>,
) -> Result<Response, ApiError> {
    let content = compose.content.clone();
    let mut request = MessageRequest::send(chat_id.clone(), compose.content);
    match compose.content_type.as_deref() {
        None | Some("text") => request = request.text(),
        Some("html") => request = request.html(),
        Some(_) => return Err(ApiError::bad_request("contentType is \"text\" or \"html\"")),
    }
    let request = request
        .build()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    known_chat(&person, &chat_id).await?;
    let write = Write::send(chat_id.clone(), content, &request);
    let id = match write_as_asked(&person, write).await? {
        Written::Done(Some(id)) => id,
        Written::Waiting(write) => return Ok(waiting(write)),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "Graph's answer is not a message",
            ))
        }
    };
    let item = person
        .sync
        .store()
        .call(move |store| store.message(&chat_id, &id))
        .await?;
    match item {
        Some(item) => Ok((StatusCode::CREATED, Json(item)).into_response()),
        None => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "the sent message was not kept",
        )),
    }
}

/// `markChatReadForUser` through Graph, one call: the cache's viewpoint moves with it (read up
/// to the newest message it holds) and Graph's own time arrives with the chat's notification.
/// 204 once Graph took it; 202 while it waits out throttling.
async fn mark_read(
    Extension(person): Extension<Person>,
    Path(chat_id): Path<String>,
) -> Result<Response, ApiError> {
    outbound::mark_chat_read_for_user(&chat_id, person.sync.user_id(), person.sync.tenant_id())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    known_chat(&person, &chat_id).await?;
    let write = Write::MarkRead { chat_id };
    match write_as_asked(&person, write).await? {
        Written::Waiting(write) => Ok(waiting(write)),
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// An inline image: the browser has no token for Graph, so the app fetches it.
async fn hosted_content(
    Extension(person): Extension<Person>,
    Path((chat_id, message_id, hosted_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let request = outbound::hosted_content_bytes(&chat_id, &message_id, &hosted_id)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    known_chat(&person, &chat_id).await?;
    match person.sync.send(request).await {
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
    Extension(person): Extension<Person>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
    _stream: graph_chat_webhook::StreamSlot,
) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.after);
    let store = person.sync.store().clone();
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
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Every `Cookie` header, as the session check that let the stream in read them.
    let mut cookie = HeaderMap::new();
    for value in headers.get_all(header::COOKIE) {
        cookie.append(header::COOKIE, value.clone());
    }
    let stream = EventStream {
        store,
        live,
        after,
        replaying: resume.is_some_and(|r| r < last),
        backlog: VecDeque::new(),
        stopped: state.stopped.clone(),
        session: Session {
            signin: Arc::clone(&state.signin),
            cookie,
            sync: person.sync,
            recheck,
        },
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
    session: Session,
}

/// How often an open event stream checks that its session still lasts: a stream of a person
/// who signed out, or was signed out, ends within this (the page then finds itself signed out).
const SESSION_RECHECK: Duration = Duration::from_secs(5);

/// The session an event stream was opened with, and the Graph side it is for.
struct Session {
    signin: Arc<SignInState>,
    cookie: HeaderMap,
    sync: Arc<GraphSync>,
    recheck: tokio::time::Interval,
}

impl Session {
    /// Whether the session still lasts, for the same Graph side of its person.
    async fn lasts(&self) -> bool {
        self.signin
            .signed_in(&self.cookie)
            .await
            .is_some_and(|(sync, _)| Arc::ptr_eq(&sync, &self.sync))
    }
}

impl EventStream {
    /// The next event to send, or `None` when the app stops or the session ends.
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
            let recheck = tokio::select! {
                received = self.live.recv() => {
                    match received {
                        Ok(event) if event.id > self.after => self.backlog.push_back(event),
                        Ok(_) => {}
                        // Too slow a reader: catch up from the log, which holds everything.
                        Err(broadcast::error::RecvError::Lagged(_)) => self.replaying = true,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                    false
                }
                _ = self.stopped.wait_for(|s| *s) => return None,
                _ = self.session.recheck.tick() => true,
            };
            if recheck && !self.session.lasts().await {
                return None;
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
