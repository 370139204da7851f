//! A user's own view of a chat (its `viewpoint`): marking it read or unread, hiding and unhiding
//! it. Each is `POST /chats/{chatId}/{action}` with `{"user": {"id", "tenantId"}}` and answers
//! `204 No Content`; delegated only, and a user acts only for themselves. A hidden chat shows
//! again when a message is sent in it. Graph has no API for typing indicators or read receipts.

use serde::Serialize;

use super::error::RequestError;
use super::http::{HttpRequest, Method, GRAPH};
use super::rules::{check_path_id, is_guid};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserBody<'a> {
    user: TeamworkUser<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_message_read_date_time: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TeamworkUser<'a> {
    id: &'a str,
    tenant_id: &'a str,
}

fn for_user(
    chat_id: &str,
    action: &str,
    user_id: &str,
    tenant_id: &str,
    last_read: Option<&str>,
) -> Result<HttpRequest, RequestError> {
    check_path_id("chat id", chat_id)?;
    for (field, value) in [("user.id", user_id), ("user.tenantId", tenant_id)] {
        if !is_guid(value) {
            return Err(RequestError::NotAGuid {
                field,
                value: value.to_string(),
            });
        }
    }
    if let Some(time) = last_read {
        if crate::model::parse_time(time).is_none() {
            return Err(RequestError::BadTime(time.to_string()));
        }
    }
    let body = UserBody {
        user: TeamworkUser {
            id: user_id,
            tenant_id,
        },
        last_message_read_date_time: last_read,
    };
    Ok(HttpRequest::json(
        Method::Post,
        format!("{GRAPH}/v1.0/chats/{chat_id}/{action}"),
        &body,
    ))
}

/// `POST /chats/{chatId}/markChatReadForUser`: marks the chat read for user `user_id` (an object
/// id) of tenant `tenant_id`.
///
/// ```
/// use graph_chat_notifications::outbound::{mark_chat_read_for_user, RequestError};
/// let request = mark_chat_read_for_user(
///     "19:7d898072-792c-4006-bb10-5ca9f2590649_8ea0e38b-efb3-4757-924a-5f94061cf8c2@unq.gbl.spaces",
///     "d864e79f-a516-4d0f-9fee-0eeb4d61fdc2",
///     "2a690434-97d9-4eed-83a6-f5f13600199a",
/// )?;
/// assert!(request.url.ends_with("/markChatReadForUser"));
/// assert_eq!(
///     request.body_text(),
///     r#"{"user":{"id":"d864e79f-a516-4d0f-9fee-0eeb4d61fdc2","tenantId":"2a690434-97d9-4eed-83a6-f5f13600199a"}}"#
/// );
/// assert!(matches!(
///     mark_chat_read_for_user("19:a@thread.v2", "me", "2a690434-97d9-4eed-83a6-f5f13600199a"),
///     Err(RequestError::NotAGuid { field: "user.id", .. })
/// ));
/// # Ok::<(), RequestError>(())
/// ```
pub fn mark_chat_read_for_user(
    chat_id: &str,
    user_id: &str,
    tenant_id: &str,
) -> Result<HttpRequest, RequestError> {
    for_user(chat_id, "markChatReadForUser", user_id, tenant_id, None)
}

/// `POST /chats/{chatId}/hideForUser`: hides the chat for the user (until a message is sent in
/// it).
pub fn hide_for_user(
    chat_id: &str,
    user_id: &str,
    tenant_id: &str,
) -> Result<HttpRequest, RequestError> {
    for_user(chat_id, "hideForUser", user_id, tenant_id, None)
}

/// `POST /chats/{chatId}/unhideForUser`: shows a hidden chat to the user again.
pub fn unhide_for_user(
    chat_id: &str,
    user_id: &str,
    tenant_id: &str,
) -> Result<HttpRequest, RequestError> {
    for_user(chat_id, "unhideForUser", user_id, tenant_id, None)
}

/// `POST /chats/{chatId}/markChatUnreadForUser`: marks the chat unread for a user; with
/// [`last_message_read`](Self::last_message_read), every message after that time becomes unread,
/// without it the last message does.
///
/// ```
/// use graph_chat_notifications::outbound::MarkChatUnread;
/// let request = MarkChatUnread::new("19:a@thread.v2", "d864e79f-a516-4d0f-9fee-0eeb4d61fdc2", "2a690434-97d9-4eed-83a6-f5f13600199a")
///     .last_message_read("2021-05-27T22:13:01.577Z")
///     .build()?;
/// assert!(request.body_text().ends_with(r#""lastMessageReadDateTime":"2021-05-27T22:13:01.577Z"}"#));
/// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkChatUnread {
    chat_id: String,
    user_id: String,
    tenant_id: String,
    last_read: Option<String>,
}

impl MarkChatUnread {
    /// Marks chat `chat_id` unread for user `user_id` (an object id) of tenant `tenant_id`.
    pub fn new(
        chat_id: impl Into<String>,
        user_id: impl Into<String>,
        tenant_id: impl Into<String>,
    ) -> Self {
        Self {
            chat_id: chat_id.into(),
            user_id: user_id.into(),
            tenant_id: tenant_id.into(),
            last_read: None,
        }
    }

    /// `lastMessageReadDateTime`: messages after this time become unread (a time as Graph
    /// writes it, `2021-05-27T22:13:01.577Z`; `outbound::format_time` makes one).
    pub fn last_message_read(mut self, time: impl Into<String>) -> Self {
        self.last_read = Some(time.into());
        self
    }

    /// Checks the ids and the time, and builds the `POST`.
    pub fn build(&self) -> Result<HttpRequest, RequestError> {
        for_user(
            &self.chat_id,
            "markChatUnreadForUser",
            &self.user_id,
            &self.tenant_id,
            self.last_read.as_deref(),
        )
    }
}
