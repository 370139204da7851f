//! The router's handlers: Graph's routes, the Event Grid routes, and the admission of a body
//! on the request path.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use graph_chat_notifications::inbound::{cloud_events_handshake, handshake};

use crate::admit::{self, Verdict};
use crate::body::{self, HeldBody};
use crate::inbox::Route;
use crate::jwks::KeyVerdict;
use crate::refusal::Refusal;
use crate::source::Source;
use crate::state::Shared;

/// Where a request came from, when the server says: the webhook's own server hands every
/// request its [`Source`]; behind another, axum's `ConnectInfo` (when that server provides it).
struct Origin(Option<Source>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let source = parts.extensions.get::<Source>().copied().or_else(|| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| Source::of(info.0.ip()))
        });
        Ok(Self(source))
    }
}

/// Graph's routes, and the Event Grid routes when configured, over `shared`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new()
        .route(Route::Notifications.as_str(), post(notifications))
        .route(Route::Lifecycle.as_str(), post(lifecycle));
    if shared.event_grid.is_some() {
        router = router.route(
            Route::EventGrid.as_str(),
            post(event_grid).options(event_grid_options),
        );
    }
    router.with_state(shared)
}

async fn notifications(
    State(shared): State<Arc<Shared>>,
    Origin(source): Origin,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(shared, Route::Notifications, source, query, headers, body).await
}

async fn lifecycle(
    State(shared): State<Arc<Shared>>,
    Origin(source): Origin,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(shared, Route::Lifecycle, source, query, headers, body).await
}

async fn event_grid(
    State(shared): State<Arc<Shared>>,
    Origin(source): Origin,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(status) = check_bearer(&shared, &headers).await {
        return status.into_response();
    }
    receive(shared, Route::EventGrid, source, None, headers, body).await
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
    source: Option<Source>,
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
    let held = match body::read(
        body,
        declared,
        limit,
        source,
        &shared.budget,
        &shared.limits,
    )
    .await
    {
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
