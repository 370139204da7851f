//! What every handler of the app's API shares: the signed-in [`Person`] a request is for, the
//! one error type the page is answered with ([`ApiError`]: internals go to the log, the page gets
//! a plain message), and the checks and calls every action makes.

use std::borrow::Cow;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use graph_chat_webhook::notifications::outbound;
use serde_json::json;

use crate::store::StoreError;
use crate::sync::{GraphSync, SyncError, Write, Written};

/// The signed-in person a request of the API comes from: their Graph side (and cache), and
/// their name.
#[derive(Clone)]
pub(crate) struct Person {
    pub(crate) sync: Arc<GraphSync>,
    pub(crate) display_name: String,
}

/// Why a request failed, as the page is told: a status and a plain message (`{"error": ...}`).
/// What went wrong inside is logged where the error is made, never sent.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: Cow<'static, str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The request itself is wrong (a bad id, a bad content type): the message says how.
    pub(crate) fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// Graph did not do what was asked: 502, the reason logged.
    pub(crate) fn graph(what: &'static str, reason: &dyn std::fmt::Display) -> Self {
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

/// A chat of the person's own (their cache knows it), else 404: the API never acts on, nor
/// tells of, another person's chat.
pub(crate) async fn known_chat(person: &Person, chat_id: &str) -> Result<(), ApiError> {
    let id = chat_id.to_owned();
    let known = person
        .sync
        .store()
        .call(move |store| store.has_chat(&id))
        .await?;
    if known {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "no such chat"))
    }
}

/// A request a person asked for, sent to Graph: its answer when Graph took it, else a 502 that
/// names `what` and Graph's status.
pub(crate) async fn send_as_asked(
    sync: &GraphSync,
    request: outbound::HttpRequest,
    what: &str,
) -> Result<graph_chat_webhook::GraphResponse, ApiError> {
    let answer = sync
        .send(request)
        .await
        .map_err(|e| ApiError::graph("Graph could not be reached", &e))?;
    if !answer.is_success() {
        tracing::warn!(status = answer.status, "Graph refused {what}");
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("Graph answered {} to {what}", answer.status),
        ));
    }
    Ok(answer)
}

/// 202: Graph throttled what the person asked for (write `id`, named so in its events); it is
/// kept and retried until Graph takes it.
pub(crate) fn waiting(id: i64) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "waiting",
            "write": id,
            "reason": "Graph is throttling: retried until it takes it",
        })),
    )
        .into_response()
}

/// A write a person asked for ([`GraphSync::write`]): a 502 naming what Graph refused and its
/// status (a 404 when Graph has no such message or chat); never an error for throttling.
pub(crate) async fn write_as_asked(person: &Person, write: Write) -> Result<Written, ApiError> {
    let what = write.what();
    let on_message = write.message_id().is_some();
    match person.sync.write(write).await {
        Ok(written) => Ok(written),
        Err(SyncError::Status { status: 404, .. }) if on_message => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such message or chat",
        )),
        Err(SyncError::Status { status, .. }) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("Graph answered {status} to {what}"),
        )),
        Err(SyncError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::graph("Graph could not be reached", &e)),
    }
}
