//! Starting a chat from the page (`docs/contracts.md#the-chat-app`): the people picker searches
//! the organisation's directory through Graph as the signed-in person (`GET /users?$search`),
//! and the chat is created through Graph (`POST /chats`) with the person as an owner. The same
//! picker adds people to a group chat (`POST /chats/{id}/members`).
//!
//! The new chat goes into the person's cache from Graph's answers at once, keyed by its id like
//! every chat, so the notification that follows it changes nothing the page shows twice.

use std::sync::Arc;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use graph_chat_webhook::notifications::outbound::{self, ChatMember, CreateChat};
use serde::{Deserialize, Serialize};

use crate::api::{send_as_asked, ApiError, Person};

/// The longest search the picker sends: a name, or the start of one.
const MAX_SEARCH_CHARS: usize = 64;

/// The most people one search answers with: a picker shows a few, the person types more.
const MAX_RESULTS: u32 = 10;

/// The most people a new chat starts with (the person adds more later in Teams); Graph's own
/// limit is far above, this keeps one request small.
const MAX_MEMBERS: usize = 50;

/// `?search=<the start of a name>`.
#[derive(Deserialize)]
pub(crate) struct PeopleQuery {
    search: String,
}

/// A person of the directory, as the picker shows them.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectoryUser {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
}

#[derive(Deserialize)]
struct UsersPage {
    #[serde(default)]
    value: Vec<DirectoryUser>,
}

/// The words of a search as Graph's `$search` clause takes them: no quote or backslash (they
/// would end the clause), no control characters, white space collapsed.
fn search_words(search: &str) -> String {
    search
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET /api/people?search=ad`: the people of the directory whose name has a word starting so
/// (Graph's `$search="displayName:ad"`, with `ConsistencyLevel: eventual`), the signed-in
/// person left out: `[{"id", "displayName", "userPrincipalName"}]`, at most 10.
pub(crate) async fn search(
    Extension(person): Extension<Person>,
    Query(query): Query<PeopleQuery>,
) -> Result<Response, ApiError> {
    let words = search_words(&query.search);
    if words.is_empty() {
        return Ok(Json(Vec::<DirectoryUser>::new()).into_response());
    }
    if words.chars().count() > MAX_SEARCH_CHARS {
        return Err(ApiError::bad_request("a search is at most 64 characters"));
    }
    let clause = format!("\"displayName:{words}\"");
    let clause = percent_encoding::utf8_percent_encode(&clause, percent_encoding::NON_ALPHANUMERIC);
    // The core has no request value for the directory: a checked GET on Graph's host.
    let link = format!(
        "https://graph.microsoft.com/v1.0/users?$search={clause}\
         &$select=id,displayName,userPrincipalName&$top={MAX_RESULTS}"
    );
    let mut request = outbound::follow_link(&link, "")
        .map_err(|_| ApiError::bad_request("not a search Graph would take"))?;
    request.headers.push(("ConsistencyLevel", "eventual"));
    let answer = send_as_asked(&person.sync, request, "the directory search").await?;
    let page: UsersPage = serde_json::from_slice(&answer.body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "Graph's answer is not a list of users",
        )
    })?;
    let me = person.sync.user_id();
    let people: Vec<DirectoryUser> = page
        .value
        .into_iter()
        .filter(|u| u.id != me)
        .take(MAX_RESULTS as usize)
        .collect();
    Ok(Json(people).into_response())
}

/// `{"members": [user ids], "topic"}`: a new chat with these people (the signed-in person
/// is added); a topic for a group only.
#[derive(Deserialize)]
pub(crate) struct NewChat {
    members: Vec<String>,
    #[serde(default)]
    topic: Option<String>,
}

/// `POST /api/chats` `{"members": [user ids], "topic"}`: creates the chat through Graph as the
/// signed-in person (`POST /chats`, every member an owner): `oneOnOne` with one other person,
/// `group` with two or more (with the topic, if one is given). The chat is kept from Graph's
/// answer and read back with its members; 201 with its item, as `GET /api/chats` lists it.
pub(crate) async fn create(
    Extension(person): Extension<Person>,
    Json(new): Json<NewChat>,
) -> Result<Response, ApiError> {
    let me = person.sync.user_id().to_owned();
    let others = picked(&person, new.members, "at most 50 people in a new chat")?;
    let topic = new
        .topic
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let request = if others.len() == 1 {
        CreateChat::one_on_one(ChatMember::owner(me.clone()), ChatMember::owner(&others[0]))
    } else {
        let chat = CreateChat::group(
            std::iter::once(ChatMember::owner(me.clone()))
                .chain(others.iter().map(ChatMember::owner)),
        );
        match topic {
            Some(topic) => chat.topic(topic),
            None => chat,
        }
    };
    // The builder's reasons (a bad id, a topic with ':') name only what the person typed.
    let request = request
        .build()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let answer = send_as_asked(&person.sync, request, "the new chat").await?;
    let sync = Arc::clone(&person.sync);
    let created = outbound::created_chat(&answer.body)
        .ok()
        .and_then(|chat| chat.id.as_deref().map(str::to_owned))
        .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "Graph's answer is not a chat"))?;
    let body = answer.body;
    sync.store()
        .call(move |store| {
            let json = std::str::from_utf8(&body).unwrap_or("{}");
            store.apply_chat(json)
        })
        .await?;
    // Its members and the person's viewpoint, for the list's name and counts; the chat is
    // already kept if this read fails.
    if let Err(e) = sync.read_chat(&created).await {
        tracing::warn!(error = %e, "the new chat was not read back");
    }
    let id = created.clone();
    let item = sync
        .store()
        .call(move |store| {
            let (chats, _) = store.chats()?;
            Ok::<_, ApiError>(chats.into_iter().find(|c| c.id == id))
        })
        .await?;
    match item {
        Some(item) => Ok((StatusCode::CREATED, Json(item)).into_response()),
        None => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "the new chat was not kept",
        )),
    }
}

/// `{"topic"}`: a group chat's new name.
#[derive(Deserialize)]
pub(crate) struct Rename {
    topic: String,
}

/// `PATCH /api/chats/{chatId}` `{"topic"}`: renames a group chat through Graph as the
/// signed-in person (`PATCH /chats/{chatId}`, 1 to 250 characters, no ':'), then reads the
/// chat back; 200 with its item.
pub(crate) async fn rename(
    Extension(person): Extension<Person>,
    axum::extract::Path(chat_id): axum::extract::Path<String>,
    Json(rename): Json<Rename>,
) -> Result<Response, ApiError> {
    let topic = rename.topic.trim();
    if topic.is_empty() {
        return Err(ApiError::bad_request("a chat's name is not empty"));
    }
    if topic.chars().count() > outbound::MAX_TOPIC_CHARS {
        return Err(ApiError::bad_request(
            "a chat's name is at most 250 characters",
        ));
    }
    if topic.contains(':') {
        return Err(ApiError::bad_request(
            "Graph does not allow ':' in a chat's name",
        ));
    }
    let sync = Arc::clone(&person.sync);
    if !is_group(&person, &chat_id).await? {
        return Err(ApiError::bad_request("only a group chat has a name"));
    }
    // The core has no request value for a chat's update: the chat's own URL, patched.
    let mut request =
        outbound::get_chat(&chat_id).map_err(|_| ApiError::bad_request("not a chat id"))?;
    request.method = outbound::Method::Patch;
    request.headers.push(("Content-Type", "application/json"));
    request.body = Some(
        serde_json::json!({ "topic": topic })
            .to_string()
            .into_bytes(),
    );
    send_as_asked(&person.sync, request, "the new name").await?;
    sync.read_chat(&chat_id)
        .await
        .map_err(|e| ApiError::graph("Graph did not return the chat", &e))?;
    let item = sync
        .store()
        .call(move |store| {
            let (chats, _) = store.chats()?;
            Ok::<_, ApiError>(chats.into_iter().find(|c| c.id == chat_id))
        })
        .await?;
    match item {
        Some(item) => Ok(Json(item).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such chat")),
    }
}

/// Whether `chat_id` is a group chat of the person's (404 when it is not theirs).
async fn is_group(person: &Person, chat_id: &str) -> Result<bool, ApiError> {
    crate::api::known_chat(person, chat_id).await?;
    let id = chat_id.to_owned();
    person
        .sync
        .store()
        .call(move |store| {
            let (chats, _) = store.chats()?;
            Ok::<_, ApiError>(
                chats
                    .into_iter()
                    .find(|c| c.id == id)
                    .is_some_and(|c| c.chat_type.as_deref() == Some("group")),
            )
        })
        .await
}

/// The people a person picked, each once and without themselves: at least one, at most
/// [`MAX_MEMBERS`] (else 400 with `too_many`).
fn picked(
    person: &Person,
    ids: Vec<String>,
    too_many: &'static str,
) -> Result<Vec<String>, ApiError> {
    let me = person.sync.user_id();
    let mut people: Vec<String> = Vec::new();
    for id in ids {
        if id != me && !people.contains(&id) {
            people.push(id);
        }
    }
    if people.is_empty() {
        return Err(ApiError::bad_request("pick at least one person"));
    }
    if people.len() > MAX_MEMBERS {
        return Err(ApiError::bad_request(too_many));
    }
    Ok(people)
}

/// `{"members": [user ids]}`: the people to add to a group chat.
#[derive(Deserialize)]
pub(crate) struct NewMembers {
    members: Vec<String>,
}

/// `POST /api/chats/{chatId}/members` `{"members": [user ids]}`: adds each person to a group
/// chat through Graph as the signed-in person (`POST /chats/{chatId}/members`, as owners, without
/// the chat's earlier history, as Teams does by default), then reads the chat back; 200 with its
/// item. Graph writes the system event ("Megan added Alex") into the chat, which arrives as its
/// notification. Not a group chat: 400.
pub(crate) async fn add_members(
    Extension(person): Extension<Person>,
    axum::extract::Path(chat_id): axum::extract::Path<String>,
    Json(new): Json<NewMembers>,
) -> Result<Response, ApiError> {
    let people = picked(&person, new.members, "at most 50 people at once")?;
    if !is_group(&person, &chat_id).await? {
        return Err(ApiError::bad_request(
            "people are added to a group chat only: start a new chat instead",
        ));
    }
    let mut requests = Vec::with_capacity(people.len());
    for id in &people {
        requests.push(
            outbound::add_chat_member(&chat_id, &ChatMember::owner(id), None)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
    }
    for request in requests {
        send_as_asked(&person.sync, request, "the new member").await?;
    }
    let sync = Arc::clone(&person.sync);
    sync.read_chat(&chat_id)
        .await
        .map_err(|e| ApiError::graph("Graph did not return the chat", &e))?;
    let item = sync
        .store()
        .call(move |store| {
            let (chats, _) = store.chats()?;
            Ok::<_, ApiError>(chats.into_iter().find(|c| c.id == chat_id))
        })
        .await?;
    match item {
        Some(item) => Ok(Json(item).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no such chat")),
    }
}
