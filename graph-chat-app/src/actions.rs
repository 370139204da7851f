//! What a person does on the page beyond sending and marking read
//! (`docs/contracts.md#the-chat-app`): a chat's history, a page at a time, from the cache first
//! and from Graph past what it holds; editing, deleting and restoring their own messages;
//! reacting; marking a chat unread, hiding and unhiding it.
//!
//! Every call to Graph goes through [`GraphSync::send`], as the send and mark-read handlers'
//! do, and every failure answers `{"error": ...}` with a plain message; what went wrong inside
//! is logged, never sent.

use std::sync::Arc;

use axum::extract::{Path, Query};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use graph_chat_webhook::notifications::model::ChatMessage;
use graph_chat_webhook::notifications::outbound::{self, MessageRequest, MessagesRequest, OrderBy};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::api::{known_chat, send_as_asked, waiting, write_as_asked, ApiError, Person};
use crate::store::{MessagePage, Origin};
use crate::sync::{GraphSync, Write, Written};
use crate::view::MessageItem;

/// The most messages one history page holds (and Graph's own most per page, `$top=50`).
pub(crate) const PAGE_SIZE: usize = 50;

/// `?before=<message id>&limit=<n>`.
#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    before: Option<String>,
    limit: Option<usize>,
}

/// One page of Graph's listing: its items and whether another follows.
#[derive(Deserialize)]
struct GraphPage<'a> {
    #[serde(borrow, default)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// `GET /api/chats/{chatId}/history[?before=ID][&limit=N]`: the newest `N` messages (default
/// and most 50), or the `N` before message `ID`, oldest first, as
/// `{"messages": [...], "more": bool}` with `x-last-event-id` (as the chat's messages). The
/// newest page comes from the cache alone; for an older page the cache holds too little of,
/// the rest is read from Graph (`$orderby=createdDateTime desc` with
/// `$filter=createdDateTime lt ...`), kept, and shown: a person scrolling back is a person's
/// action, never a timer. `more` is false once Graph has nothing older.
pub(crate) async fn history(
    Extension(person): Extension<Person>,
    Path(chat_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    known_chat(&person, &chat_id).await?;
    let sync = Arc::clone(&person.sync);
    let limit = query.limit.unwrap_or(PAGE_SIZE).clamp(1, PAGE_SIZE);
    let read = {
        let (chat_id, before) = (chat_id.clone(), query.before.clone());
        let store = sync.store().clone();
        move || {
            let (chat_id, before, store) = (chat_id.clone(), before.clone(), store.clone());
            async move {
                store
                    .call(move |store| store.message_page(&chat_id, before.as_deref(), limit))
                    .await
            }
        }
    };
    let Some(mut page) = read().await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such chat"));
    };
    // The newest page comes from the cache alone: opening a chat reads nothing from Graph.
    // Past the cache's oldest, Graph may hold more: the person can ask (the page offers it).
    let mut more = page.older || page.count > 0;
    if !page.older && query.before.is_some() {
        // The cache holds nothing older: Graph may.
        let from = match (&page.oldest, &query.before) {
            (Some(oldest), _) => oldest.created_date_time.clone(),
            (None, Some(before)) => {
                let (chat, id) = (chat_id.clone(), before.clone());
                let item = sync
                    .store()
                    .call(move |store| store.message(&chat, &id))
                    .await?;
                match item {
                    Some(item) => item.created_date_time,
                    None => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such message")),
                }
            }
            (None, None) => None,
        };
        // Only what the page lacks.
        let missing = limit.saturating_sub(page.count).max(1);
        more = older_from_graph(&sync, &chat_id, from.as_deref(), missing).await?;
        if let Some(again) = read().await? {
            more |= again.older;
            page = again;
        }
    }
    Ok(history_answer(page, more))
}

/// Reads the `limit` messages created before `before` (or the newest) from Graph into the
/// cache; whether Graph holds more past them.
async fn older_from_graph(
    sync: &GraphSync,
    chat_id: &str,
    before: Option<&str>,
    limit: usize,
) -> Result<bool, ApiError> {
    let top = u32::try_from(limit).unwrap_or(50);
    let mut request = MessagesRequest::user_chat(sync.user_id().to_owned(), chat_id.to_owned())
        .top(top)
        .order_by(OrderBy::CreatedDesc)
        .build()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "not a chat id"))?;
    if let Some(time) = before {
        // Graph applies a createdDateTime filter when the order is on the same property.
        let filter = format!("createdDateTime lt {time}");
        let filter =
            percent_encoding::utf8_percent_encode(&filter, percent_encoding::NON_ALPHANUMERIC);
        request.url.push_str(&format!("&$filter={filter}"));
    }
    let answer = sync
        .send(request)
        .await
        .map_err(|e| ApiError::graph("Graph could not be reached", &e))?;
    if !answer.is_success() {
        tracing::warn!(status = answer.status, "Graph did not list older messages");
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "Graph did not list the older messages",
        ));
    }
    let chat = chat_id.to_owned();
    sync.store()
        .call(move |store| {
            let page: GraphPage<'_> = serde_json::from_slice(&answer.body).map_err(|_| {
                ApiError::new(StatusCode::BAD_GATEWAY, "Graph's answer is not a page")
            })?;
            for item in &page.value {
                match serde_json::from_str::<ChatMessage<'_>>(item.get()) {
                    Ok(message) => {
                        store.apply(&chat, &message, Origin::Read)?;
                    }
                    Err(_) => {
                        tracing::warn!(chat = %chat, "a message Graph listed is not a chatMessage")
                    }
                }
            }
            Ok(page.next_link.is_some())
        })
        .await
}

fn history_answer(page: MessagePage, more: bool) -> Response {
    let body = format!("{{\"messages\":{},\"more\":{more}}}", page.json);
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&page.last_event.to_string()) {
        response.headers_mut().insert("x-last-event-id", v);
    }
    response
}

/// Sends a request a person asked for through Graph (as [`GraphSync::send`] does for the send
/// and mark-read handlers): Graph's answer when it took it, else a 502 naming `what`.
async fn ask(
    sync: &GraphSync,
    request: graph_chat_webhook::notifications::outbound::HttpRequest,
    what: &'static str,
) -> Result<(), ApiError> {
    let answer = sync
        .send(request)
        .await
        .map_err(|e| ApiError::graph("Graph could not be reached", &e))?;
    if answer.status == 404 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no such message or chat",
        ));
    }
    if !answer.is_success() {
        tracing::warn!(status = answer.status, "Graph refused {what}");
        return Err(ApiError::new(StatusCode::BAD_GATEWAY, what));
    }
    Ok(())
}

/// Keeps a message Graph answered with under the version rules (as its notification would
/// be), and gives its item.
async fn keep_answered(
    sync: &GraphSync,
    chat_id: &str,
    body: Vec<u8>,
) -> Result<Option<MessageItem>, ApiError> {
    let chat = chat_id.to_owned();
    sync.store()
        .call(move |store| {
            let not_a_message =
                || ApiError::new(StatusCode::BAD_GATEWAY, "Graph's answer is not a message");
            let message: ChatMessage<'_> =
                serde_json::from_slice(&body).map_err(|_| not_a_message())?;
            let id = message.id.as_deref().ok_or_else(not_a_message)?;
            store.apply(&chat, &message, Origin::Read)?;
            Ok(store.message(&chat, id)?)
        })
        .await
}

/// `{"content"}`: an edit's new text.
#[derive(Deserialize)]
pub(crate) struct Edit {
    content: String,
}

/// `PATCH /api/chats/{chatId}/messages/{messageId}` `{"content"}`: edits the user's own message
/// through Graph (as text); 200 with its item, read back.
pub(crate) async fn edit(
    Extension(person): Extension<Person>,
    Path((chat_id, message_id)): Path<(String, String)>,
    Json(edit): Json<Edit>,
) -> Result<Response, ApiError> {
    known_chat(&person, &chat_id).await?;
    let write = Write::Edit {
        chat_id,
        message_id,
        content: edit.content,
    };
    write
        .request(person.sync.user_id(), person.sync.tenant_id())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Graph would refuse this edit"))?;
    changed(&person, write).await
}

/// A change to a message the person asked for ([`GraphSync::write`]): 200 with the message's
/// item once Graph took it (read back, kept under the version rules); 202 while Graph throttles
/// it (it is kept and retried; the page learns of it by events).
async fn changed(person: &Person, write: Write) -> Result<Response, ApiError> {
    let (chat_id, message_id) = (
        write.chat_id().to_owned(),
        write.message_id().unwrap_or_default().to_owned(),
    );
    match write_as_asked(person, write).await? {
        Written::Waiting(id) => Ok(waiting(id)),
        _ => {
            let item = person
                .sync
                .store()
                .call(move |store| store.message(&chat_id, &message_id))
                .await?;
            match item {
                Some(item) => Ok(Json(item).into_response()),
                None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such message")),
            }
        }
    }
}

/// `{"reactionType"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct React {
    reaction_type: Option<String>,
}

/// `POST /api/chats/{chatId}/messages/{messageId}/{action}`, one of `softDelete`,
/// `undoSoftDelete`, `setReaction` and `unsetReaction` (`{"reactionType"}`): done through Graph
/// as the user; 200 with the message's item, read back. `reply` (`{"content"}`) is [`reply`].
pub(crate) async fn message_action(
    Extension(person): Extension<Person>,
    Path((chat_id, message_id, action)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    known_chat(&person, &chat_id).await?;
    let sync = Arc::clone(&person.sync);
    let bad = |_| ApiError::new(StatusCode::BAD_REQUEST, "Graph would refuse this request");
    let reaction = || -> Result<String, ApiError> {
        serde_json::from_slice::<React>(&body)
            .ok()
            .and_then(|r| r.reaction_type)
            .ok_or(ApiError::new(
                StatusCode::BAD_REQUEST,
                "reactionType is required",
            ))
    };
    if action == "reply" {
        return reply(&person, &chat_id, &message_id, &body).await;
    }
    let (chat, message) = (chat_id.clone(), message_id.clone());
    let write = match action.as_str() {
        "softDelete" => Write::SoftDelete {
            chat_id: chat,
            message_id: message,
        },
        "undoSoftDelete" => Write::UndoSoftDelete {
            chat_id: chat,
            message_id: message,
        },
        "setReaction" => Write::SetReaction {
            chat_id: chat,
            message_id: message,
            reaction: reaction()?,
        },
        "unsetReaction" => Write::UnsetReaction {
            chat_id: chat,
            message_id: message,
            reaction: reaction()?,
        },
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such action")),
    };
    write
        .request(sync.user_id(), sync.tenant_id())
        .map_err(bad)?;
    changed(&person, write).await
}

/// `{"content"}`: a reply's text.
#[derive(Deserialize)]
struct Reply {
    content: String,
}

/// A reply to message `quoted` of `chat_id`, as Teams sends one in a chat: the text as HTML
/// after an `<attachment id>` naming the quoted message, with its `messageReference`
/// attachment (the quoted message's preview and sender).
fn reply_request(
    chat_id: &str,
    quoted: &crate::view::MessageItem,
    text: &str,
) -> Result<graph_chat_webhook::notifications::outbound::HttpRequest, ApiError> {
    let bad = |_| ApiError::new(StatusCode::BAD_REQUEST, "Graph would refuse this reply");
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let paragraphs: String = text
        .split('\n')
        .map(&escape)
        .collect::<Vec<_>>()
        .join("<br>");
    let html = format!(
        "<attachment id=\"{}\"></attachment><p>{paragraphs}</p>",
        escape(&quoted.id)
    );
    let mut request = MessageRequest::send(chat_id.to_owned(), html)
        .html()
        .build()
        .map_err(bad)?;
    let preview = crate::view::preview(quoted);
    let sender = quoted.from.as_ref().map(|f| {
        json!({"user": {"id": f.id, "displayName": f.display_name, "userIdentityType": "aadUser"}})
    });
    let reference = json!({
        "messageId": quoted.id,
        "messagePreview": preview.text,
        "messageSender": sender,
    });
    let mut body: serde_json::Value = request
        .body
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the reply could not be written",
        ))?;
    body["attachments"] = json!([{
        "id": quoted.id,
        "contentType": "messageReference",
        "content": reference.to_string(),
    }]);
    request.body = Some(body.to_string().into_bytes());
    Ok(request)
}

/// `POST /api/chats/{chatId}/messages/{messageId}/reply` `{"content"}`: sends the text through
/// Graph as a reply quoting that message; 201 with the new message's item (kept under the same
/// rules as its notification, so the two are one message on the page).
async fn reply(
    person: &Person,
    chat_id: &str,
    message_id: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let Ok(Reply { content }) = serde_json::from_slice::<Reply>(body) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a reply is {\"content\"}",
        ));
    };
    let (chat, id) = (chat_id.to_owned(), message_id.to_owned());
    let quoted = person
        .sync
        .store()
        .call(move |store| store.message(&chat, &id))
        .await?
        .ok_or(ApiError::new(StatusCode::NOT_FOUND, "no such message"))?;
    let request = reply_request(chat_id, &quoted, &content)?;
    send_kept(person, chat_id, request).await
}

/// Sends a new message through Graph ([`GraphSync::write`]: kept and retried while Graph
/// throttles it, never sent twice) and keeps Graph's answer under the same rules as its
/// notification (so the two are one message on the page); 201 with its item, or 202 while it
/// waits.
pub(crate) async fn send_kept(
    person: &Person,
    chat_id: &str,
    request: graph_chat_webhook::notifications::outbound::HttpRequest,
) -> Result<Response, ApiError> {
    let content = request
        .body
        .as_deref()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v["body"]["content"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let write = Write::send(chat_id, content, &request);
    let id = match write_as_asked(person, write).await? {
        Written::Waiting(id) => return Ok(waiting(id)),
        Written::Done(Some(id)) => id,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "Graph's answer is not a message",
            ))
        }
    };
    let chat = chat_id.to_owned();
    let item = person
        .sync
        .store()
        .call(move |store| store.message(&chat, &id))
        .await?;
    match item {
        Some(item) => Ok((StatusCode::CREATED, Json(item)).into_response()),
        None => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "the sent message was not kept",
        )),
    }
}

/// Sends a new message through Graph once (an image: its inline content is made anew by Graph,
/// so a lost answer cannot be checked for by content) and keeps Graph's answer under the same
/// rules as its notification (so the two are one message on the page); 201 with its item.
pub(crate) async fn send_and_keep(
    sync: &GraphSync,
    chat_id: &str,
    request: graph_chat_webhook::notifications::outbound::HttpRequest,
    what: &'static str,
) -> Result<Response, ApiError> {
    let answer = send_as_asked(sync, request, what).await?;
    match keep_answered(sync, chat_id, answer.body).await? {
        Some(item) => Ok((StatusCode::CREATED, Json(item)).into_response()),
        None => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "the sent message was not kept",
        )),
    }
}

/// A person mentioned: `{"userId", "displayName"}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mentioned {
    user_id: String,
    display_name: String,
}

/// `{"content", "mentions"}`: text where each mentioned person appears as `@` and their name.
#[derive(Deserialize)]
struct WithMentions {
    content: String,
    #[serde(default)]
    mentions: Vec<Mentioned>,
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The message as Teams sends a mention: the text as HTML, each `@Name` of a mentioned person
/// (in order) an `<at id="n">Name</at>` with its entry in `mentions`. A mention whose `@Name`
/// is not in the text is left out.
fn mention_request(
    chat_id: &str,
    message: &WithMentions,
) -> Result<graph_chat_webhook::notifications::outbound::HttpRequest, ApiError> {
    let mut html = String::new();
    let mut rest = message.content.as_str();
    let mut kept: Vec<&Mentioned> = Vec::new();
    for person in &message.mentions {
        let token = format!("@{}", person.display_name);
        if let Some(at) = rest.find(&token) {
            html.push_str(&escape_html(&rest[..at]));
            html.push_str(&format!(
                "<at id=\"{}\">{}</at>",
                kept.len(),
                escape_html(&person.display_name)
            ));
            rest = &rest[at + token.len()..];
            kept.push(person);
        }
    }
    html.push_str(&escape_html(rest));
    let html = format!("<p>{}</p>", html.replace('\n', "<br>"));
    let mut request = MessageRequest::send(chat_id.to_owned(), html).html();
    for (n, person) in kept.iter().enumerate() {
        request = request.mention(
            u32::try_from(n).unwrap_or(u32::MAX),
            person.display_name.clone(),
            person.user_id.clone(),
            person.display_name.clone(),
        );
    }
    request
        .build()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Graph would refuse this message"))
}

/// `POST /api/chats/{chatId}/{action}`, one of `unread` (`markChatUnreadForUser`), `hide`
/// (`hideForUser`) and `unhide` (`unhideForUser`), through Graph as the user; the chat is read
/// back for its new viewpoint; 204. `mention` (`{"content", "mentions": [{"userId",
/// "displayName"}]}`) sends a message with real mentions (`<at>` and `mentions`); 201 with its
/// item.
pub(crate) async fn chat_action(
    Extension(person): Extension<Person>,
    Path((chat_id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    known_chat(&person, &chat_id).await?;
    let sync = Arc::clone(&person.sync);
    if action == "mention" {
        let Ok(message) = serde_json::from_slice::<WithMentions>(&body) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "a message is {\"content\", \"mentions\"}",
            ));
        };
        let request = mention_request(&chat_id, &message)?;
        return send_kept(&person, &chat_id, request).await;
    }
    let bad = |_| ApiError::new(StatusCode::BAD_REQUEST, "not a chat id");
    let (user, tenant) = (sync.user_id().to_owned(), sync.tenant_id().to_owned());
    let (request, what) = match action.as_str() {
        "unread" => (
            outbound::MarkChatUnread::new(chat_id.clone(), user, tenant)
                .build()
                .map_err(bad)?,
            "Graph did not mark the chat unread",
        ),
        "hide" => (
            outbound::hide_for_user(&chat_id, &user, &tenant).map_err(bad)?,
            "Graph did not hide the chat",
        ),
        "unhide" => (
            outbound::unhide_for_user(&chat_id, &user, &tenant).map_err(bad)?,
            "Graph did not unhide the chat",
        ),
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such action")),
    };
    ask(&sync, request, what).await?;
    sync.read_chat(&chat_id)
        .await
        .map_err(|e| ApiError::graph("Graph did not return the chat", &e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
