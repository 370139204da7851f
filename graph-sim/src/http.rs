//! The HTTP face: Graph's API under `/v1.0/` and `/beta/`, the JWKS, and `/_sim/`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::graph::{Authorize, Graph, HostedAnswer, OAuthError, Scope, CALLER};
use crate::types::{Faults, Sender};
use crate::usage::Seen;
use crate::util::{fmt_ms, guid, now_ms, query_pairs, ApiError, ApiResult};

/// Request bodies larger than this are refused (413).
const BODY_LIMIT: usize = 4 * 1024 * 1024;
/// A body over [`BODY_LIMIT`] is still read (and thrown away) up to this many bytes in all before
/// the 413 goes out, so a client that writes its whole request before reading the answer gets
/// the answer rather than a broken pipe; past it the connection is closed after the answer.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
/// What a throttled call is told to wait, in seconds.
const RETRY_AFTER_SECS: u32 = 1;

pub(crate) fn serve(
    graph: Arc<Graph>,
    listener: tokio::net::TcpListener,
) -> tokio::task::JoinHandle<()> {
    let mut stop = graph.stop_tx.subscribe();
    let app = Router::new().fallback(handle).with_state(graph);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await;
    })
}

enum Answer {
    Json(u16, Value),
    NoContent,
    Empty(u16),
    Bytes(String, Vec<u8>),
}

fn error_response(e: &ApiError) -> Response {
    let request_id = guid();
    let body = json!({"error": {
        "code": e.code,
        "message": e.message,
        "innerError": {"date": fmt_ms(now_ms()), "request-id": request_id, "client-request-id": request_id},
    }});
    let mut r = (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = request_id.parse() {
        r.headers_mut().insert("request-id", v);
    }
    r
}

fn respond(a: ApiResult<Answer>) -> Response {
    match a {
        Err(e) => error_response(&e),
        Ok(Answer::Json(status, v)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Ok(Answer::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Ok(Answer::Empty(status)) => StatusCode::from_u16(status)
            .unwrap_or(StatusCode::OK)
            .into_response(),
        Ok(Answer::Bytes(ct, bytes)) => {
            ([(header::CONTENT_TYPE, ct)], Body::from(bytes)).into_response()
        }
    }
}

async fn handle(State(graph): State<Arc<Graph>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // Every answer, early ones (413, 401, 429) included, goes out only after the body is read.
    let body = match read_body(body).await {
        Some(b) => b,
        None => {
            return error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("The request body is over {BODY_LIMIT} bytes, or could not be read"),
            ))
        }
    };
    let raw_path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("");
    let mut segs: Vec<String> = raw_path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    while segs.len() > 1 && segs.last().is_some_and(String::is_empty) {
        segs.pop();
    }
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let pairs = query_pairs(query);
    let self_url = format!("{}{}", graph.base_url.trim_end_matches('/'), raw_path);
    let m = &parts.method;

    match segs.as_slice() {
        ["common", "discovery", "v2.0", "keys"] | ["common", "discovery", "keys"]
            if m == Method::GET =>
        {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                graph.jwks.clone(),
            )
                .into_response()
        }
        [tenant, "v2.0", ".well-known", "openid-configuration"]
            if m == Method::GET
                && (tenant.eq_ignore_ascii_case(&graph.config.tenant_id)
                    || ["common", "organizations"].contains(tenant)) =>
        {
            let id = graph.identity();
            let endpoint = |name: &str| format!("{}{tenant}/oauth2/v2.0/{name}", graph.base_url);
            return respond(Ok(Answer::Json(
                200,
                json!({
                    "issuer": format!("https://login.microsoftonline.com/{}/v2.0", id.tenant_id),
                    "jwks_uri": id.jwks_url,
                    "authorization_endpoint": endpoint("authorize"),
                    "token_endpoint": endpoint("token"),
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                    "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid", "profile", "email", "offline_access"],
                }),
            )));
        }
        [tenant, "oauth2", "v2.0", endpoint @ ("authorize" | "token")]
            if tenant.eq_ignore_ascii_case(&graph.config.tenant_id)
                || ["common", "organizations"].contains(tenant) =>
        {
            return match (*endpoint, m) {
                ("authorize", &Method::GET) => match graph.authorize(&pairs) {
                    Ok(Authorize::Redirect(to)) => (
                        StatusCode::FOUND,
                        [
                            (header::LOCATION, to),
                            (header::CACHE_CONTROL, "no-store".into()),
                        ],
                    )
                        .into_response(),
                    Ok(Authorize::Page(html)) => (
                        [
                            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                            (header::CACHE_CONTROL, "no-store"),
                        ],
                        html,
                    )
                        .into_response(),
                    Err(e) => oauth_error(&e),
                },
                ("token", &Method::POST) => match graph.token_endpoint(&body) {
                    Ok(v) => (
                        [
                            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
                            (header::CACHE_CONTROL, "no-store"),
                        ],
                        v.to_string(),
                    )
                        .into_response(),
                    Err(e) => oauth_error(&e),
                },
                _ => error_response(&ApiError::new(
                    405,
                    "MethodNotAllowed",
                    format!("{m} is not allowed on the {endpoint} endpoint"),
                )),
            };
        }
        ["_sim", rest @ ..] => return respond(control(&graph, m, rest, &body)),
        [version @ ("v1.0" | "beta"), rest @ ..] => {
            graph.seen(&Seen {
                method: m.as_str(),
                path: &raw_path,
                version,
                rest,
                query: &pairs,
                authorization: parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok()),
                now_ms: now_ms(),
            });
            let caller = match graph.authenticate(
                parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok()),
            ) {
                Ok(c) => c,
                Err(e) => return error_response(&e),
            };
            if graph.throttled() {
                let mut r = error_response(&ApiError::new(
                    429,
                    "TooManyRequests",
                    format!("Too many requests. Retry after {RETRY_AFTER_SECS} second(s)."),
                ));
                r.headers_mut()
                    .insert(header::RETRY_AFTER, RETRY_AFTER_SECS.into());
                return r;
            }
            if let Err(e) = graph.check_access(&caller, rest) {
                return error_response(&e);
            }
            let eventual = parts
                .headers
                .get("consistencylevel")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("eventual"));
            let call = Call {
                version,
                rest,
                body: &body,
                pairs: &pairs,
                self_url: &self_url,
                eventual,
            };
            let answer = CALLER.scope(caller, api(&graph, m, call)).await;
            if m != Method::GET && answer.is_ok() && graph.lose_answer() {
                // Carried out; the answer goes no further than its status line. A 204 has no
                // body to cut: its status line says 200, so that the client waits for a body
                // that never comes.
                let (mut parts, _) = respond(answer).into_parts();
                if parts.status == StatusCode::NO_CONTENT {
                    parts.status = StatusCode::OK;
                }
                return Response::from_parts(parts, Body::new(LostBody));
            }
            return respond(answer);
        }
        _ => {}
    }
    error_response(&ApiError::new(
        404,
        "UnknownError",
        format!("No such resource: {} {raw_path}", parts.method),
    ))
}

/// The body of an answer that is lost (the `loseAnswers` fault): it fails before its first
/// byte, and the server closes the connection.
struct LostBody;

impl axum::body::HttpBody for LostBody {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::other("the answer is lost"))))
    }
}

/// The body, or `None` when it is over [`BODY_LIMIT`] or cannot be read. An oversized body is
/// drained to its end first (up to [`DRAIN_LIMIT`] bytes in all, and only when its announced
/// length, if any, is within that), so the answer does not break the client's pipe.
async fn read_body(body: Body) -> Option<Vec<u8>> {
    use http_body_util::BodyExt as _;
    let announced = axum::body::HttpBody::size_hint(&body).exact();
    if announced.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return None;
    }
    let mut body = body;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return None };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_LIMIT {
            return None;
        }
        if seen <= BODY_LIMIT {
            kept.extend_from_slice(&data);
        }
    }
    (seen <= BODY_LIMIT).then_some(kept)
}

fn not_found(m: &Method, rest: &[&str]) -> ApiError {
    ApiError::new(
        404,
        "UnknownError",
        format!(
            "Resource not found for the segment: {m} /{}",
            rest.join("/")
        ),
    )
}

fn oauth_error(e: &OAuthError) -> Response {
    (
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        e.to_json().to_string(),
    )
        .into_response()
}

/// One call to Graph's API, read.
struct Call<'a> {
    version: &'a str,
    rest: &'a [&'a str],
    body: &'a [u8],
    pairs: &'a [(String, String)],
    self_url: &'a str,
    /// `ConsistencyLevel: eventual` was sent (needed by `$search` on users).
    eventual: bool,
}

async fn api(graph: &Arc<Graph>, m: &Method, call: Call<'_>) -> ApiResult<Answer> {
    use Answer::{Json, NoContent};
    let Call {
        version,
        rest,
        body,
        pairs,
        self_url,
        eventual,
    } = call;
    let get = m == Method::GET;
    let post = m == Method::POST;
    let patch = m == Method::PATCH;
    let delete = m == Method::DELETE;
    Ok(match rest {
        // subscriptions
        ["subscriptions"] if post => Json(201, graph.create_subscription(version, body).await?),
        ["subscriptions"] if get => Json(200, graph.list_subscriptions(version)),
        ["subscriptions", id] if get => Json(200, graph.get_subscription(id)?),
        ["subscriptions", id] if patch => Json(200, graph.renew(id, body)?),
        ["subscriptions", id] if delete => {
            graph.delete_subscription(id)?;
            NoContent
        }
        ["subscriptions", id, "reauthorize"] if post => {
            graph.reauthorize(id)?;
            Answer::Empty(200)
        }
        // chats
        ["chats"] if post => Json(201, graph.create_chat(body)?),
        ["chats"] if get => Json(200, graph.list_chats("me", pairs, self_url)?),
        ["chats", c] if get => Json(200, graph.get_chat(c, None, pairs)?),
        ["chats", c] if patch => {
            graph.patch_chat(c, body)?;
            NoContent
        }
        ["chats", c] if delete => {
            graph.delete_chat(c)?;
            NoContent
        }
        ["chats", c, "members"] if get => Json(200, graph.list_members(c, None)?),
        ["chats", c, "members"] if post => Json(201, graph.add_member(c, body)?),
        ["chats", c, "messages"] if get => Json(
            200,
            graph.list_messages(Scope::Chat(c.to_string()), pairs, self_url)?,
        ),
        ["chats", c, "messages"] if post => Json(201, graph.send_message(c, body)?),
        ["chats", c, action @ ("markChatReadForUser"
        | "markChatUnreadForUser"
        | "hideForUser"
        | "unhideForUser")]
            if post =>
        {
            graph.viewpoint_action(c, action, body)?;
            NoContent
        }
        ["chats", c, "messages", id] if get => Json(200, graph.get_message(c, id, None)?),
        ["chats", c, "messages", id] if patch => {
            graph.edit_message(c, id, body, true)?;
            NoContent
        }
        ["chats", c, "messages", id, action] if post => {
            message_action(graph, None, c, id, action, body, m, rest)?
        }
        ["chats", c, "messages", id, "hostedContents", more @ ..] if get => {
            hosted(graph, c, id, more, m, rest)?
        }
        // users, for a people picker
        ["me"] if get => Json(200, graph.me_json(version)?),
        ["users"] if get => Json(200, graph.list_users(pairs, eventual, version)?),
        ["users", u] if get => Json(200, graph.get_user(u, version)?),
        // a user's view
        [scope @ ("me" | "users"), tail @ ..] => {
            let (user, tail) = match (*scope, tail) {
                ("me", t) => ("me", t),
                (_, [u, t @ ..]) => (*u, t),
                _ => return Err(not_found(m, rest)),
            };
            match tail {
                ["chats"] if get => Json(200, graph.list_chats(user, pairs, self_url)?),
                ["chats", "getAllMessages"] if get => Json(
                    200,
                    graph.list_messages(Scope::UserAll(user.to_string()), pairs, self_url)?,
                ),
                ["chats", "getAllMessages", "delta"] if get => {
                    Json(200, graph.delta(user, pairs, self_url)?)
                }
                ["chats", c] if get => Json(200, graph.get_chat(c, Some(user), pairs)?),
                ["chats", c, "members"] if get => Json(200, graph.list_members(c, Some(user))?),
                ["chats", c, "messages"] if get => Json(
                    200,
                    graph.list_messages(
                        Scope::UserChat(user.to_string(), c.to_string()),
                        pairs,
                        self_url,
                    )?,
                ),
                ["chats", c, "messages", id] if get => {
                    Json(200, graph.get_message(c, id, Some(user))?)
                }
                ["chats", c, "messages", id, action] if post => {
                    message_action(graph, Some(user), c, id, action, body, m, rest)?
                }
                ["chats", c, "messages", id, "hostedContents", more @ ..] if get => {
                    hosted(graph, c, id, more, m, rest)?
                }
                _ => return Err(not_found(m, rest)),
            }
        }
        _ => return Err(not_found(m, rest)),
    })
}

#[allow(clippy::too_many_arguments)]
fn message_action(
    graph: &Arc<Graph>,
    user: Option<&str>,
    chat: &str,
    id: &str,
    action: &str,
    body: &[u8],
    m: &Method,
    rest: &[&str],
) -> ApiResult<Answer> {
    let by = Some(user.unwrap_or("me"));
    match action {
        "softDelete" => graph.soft_delete(chat, id, by, true)?,
        "undoSoftDelete" => graph.soft_delete(chat, id, by, false)?,
        "setReaction" if user.is_none() => graph.reaction(chat, id, body, true)?,
        "unsetReaction" if user.is_none() => graph.reaction(chat, id, body, false)?,
        _ => return Err(not_found(m, rest)),
    }
    Ok(Answer::NoContent)
}

fn hosted(
    graph: &Graph,
    chat: &str,
    id: &str,
    more: &[&str],
    m: &Method,
    rest: &[&str],
) -> ApiResult<Answer> {
    Ok(match more {
        [] => match graph.hosted(chat, id, None)? {
            HostedAnswer::List(v) => Answer::Json(200, json!({"value": v})),
            HostedAnswer::Bytes(..) => return Err(not_found(m, rest)),
        },
        [h] => match graph.hosted(chat, id, Some(h))? {
            HostedAnswer::Bytes(_, _, hid) => Answer::Json(
                200,
                json!({"id": hid, "contentBytes": null, "contentType": null}),
            ),
            HostedAnswer::List(_) => return Err(not_found(m, rest)),
        },
        [h, "$value"] => match graph.hosted(chat, id, Some(h))? {
            HostedAnswer::Bytes(ct, bytes, _) => Answer::Bytes(ct, bytes),
            HostedAnswer::List(_) => return Err(not_found(m, rest)),
        },
        _ => return Err(not_found(m, rest)),
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("The request body does not fit: {e}")))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ColleagueMessage {
    from: Sender,
    content: String,
    #[serde(default)]
    content_type: Option<String>,
}

#[derive(serde::Deserialize)]
struct Edit {
    content: String,
}

/// `{"user", "reactionType"}`: a colleague's reaction.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ColleagueReaction {
    user: String,
    reaction_type: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    dlp_action: String,
}

/// `/_sim/`: the controls and the truth.
fn control(graph: &Arc<Graph>, m: &Method, rest: &[&str], body: &[u8]) -> ApiResult<Answer> {
    use Answer::{Json, NoContent};
    let get = m == Method::GET;
    let post = m == Method::POST;
    Ok(match rest {
        ["chats"] if get => Json(200, json!({"value": graph.chat_ids()})),
        ["chats", c, "messages"] if post => {
            let b: ColleagueMessage = parse(body)?;
            let ct = b.content_type.unwrap_or_else(|| "text".into());
            Json(201, graph.colleague_writes(c, &b.from, &b.content, &ct)?)
        }
        ["chats", c, "messages"] if get => Json(200, json!({"value": graph.truth(c)?})),
        ["chats", c, "messages", id] if m == Method::PATCH => {
            let b: Edit = parse(body)?;
            graph.colleague_edits(c, id, &b.content)?;
            NoContent
        }
        ["chats", c, "messages", id] if m == Method::DELETE => {
            graph.soft_delete(c, id, None, true)?;
            NoContent
        }
        ["chats", c, "messages", id, action @ ("setReaction" | "unsetReaction")] if post => {
            let b: ColleagueReaction = parse(body)?;
            graph.colleague_reacts(c, id, &b.user, &b.reaction_type, *action == "setReaction")?;
            NoContent
        }
        ["chats", c, "messages", id, "policyViolation"] if post => {
            let b: Verdict = parse(body)?;
            graph.policy_violation(c, id, &b.dlp_action)?;
            NoContent
        }
        ["faults"] if post => {
            let f: Faults = parse(body)?;
            graph.set_faults(f)?;
            NoContent
        }
        ["faults"] if get => Json(
            200,
            serde_json::to_value(graph.faults()).unwrap_or_default(),
        ),
        ["subscriptions"] if get => Json(200, json!({"value": graph.subscription_ids()})),
        ["subscriptions", id, "expire"] if post => {
            graph.expire(id)?;
            NoContent
        }
        ["subscriptions", id, "remove"] if post => {
            graph.remove(id)?;
            NoContent
        }
        ["deliveries"] if get => Json(
            200,
            serde_json::to_value(graph.deliveries()).unwrap_or_default(),
        ),
        ["usage"] if get => Json(200, serde_json::to_value(graph.usage()).unwrap_or_default()),
        ["usage", "reset"] if post => {
            graph.reset_usage();
            NoContent
        }
        ["users"] if get => Json(
            200,
            json!({"value": serde_json::to_value(graph.users()).unwrap_or_default()}),
        ),
        ["users", id, "revoke"] if post => {
            graph.revoke(id)?;
            NoContent
        }
        ["identity"] if get => Json(
            200,
            serde_json::to_value(graph.identity()).unwrap_or_default(),
        ),
        _ => {
            return Err(ApiError::new(
                404,
                "UnknownError",
                format!("No control {m} /_sim/{}", rest.join("/")),
            ))
        }
    })
}
