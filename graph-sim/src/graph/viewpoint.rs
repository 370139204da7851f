//! Whose view: who the user of `/users/{id}/...` is, which chats a user sees, and the viewpoint
//! actions (mark read or unread, hide or unhide) that notify user-specific subscriptions.

use std::sync::Arc;

use serde_json::Value;

use super::body::json_object;
use super::caller::Caller;
use super::store::{Event, Graph, Store};
use crate::state::{Chat, Viewpoint};
use crate::util::{is_guid, now_ms, parse_ms, ApiError, ApiResult};

impl Graph {
    /// Whether `user` (an id, a principal name or `me`) sees `chat`: a member does; when any
    /// bearer is accepted, the configuration's user sees every chat (as before tokens were
    /// checked).
    pub(super) fn user_sees(&self, user: &str, chat: &Chat) -> bool {
        if self.config.accept_any_token {
            return self.is_me(user) || chat.has_member(user);
        }
        let id = if user.eq_ignore_ascii_case("me") {
            self.me()
        } else {
            self.find_user(user)
                .map_or_else(|| user.to_string(), |u| u.id.clone())
        };
        chat.has_member(&id)
    }

    /// Resolves the user of `/users/{user}/...` (or `me`).
    pub(super) fn viewer(&self, store: &Store, user: &str) -> ApiResult<String> {
        if self.is_me(user) {
            return Ok(self.me());
        }
        if let Some(u) = self.find_user(user) {
            return Ok(u.id.clone());
        }
        for c in &store.state.chats {
            if let Some(m) = c.members.iter().find(|m| {
                m.user_id.eq_ignore_ascii_case(user)
                    || m.email
                        .as_deref()
                        .is_some_and(|e| e.eq_ignore_ascii_case(user))
            }) {
                return Ok(m.user_id.clone());
            }
        }
        Err(ApiError::new(
            404,
            "Request_ResourceNotFound",
            format!("User '{user}' does not exist in this tenant."),
        ))
    }

    pub fn viewpoint_action(
        self: &Arc<Self>,
        chat: &str,
        action: &str,
        body: &[u8],
    ) -> ApiResult<()> {
        let body = json_object(body)?;
        let user = body
            .get("user")
            .and_then(|u| u.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("user.id is required"))?
            .to_string();
        if let Some(t) = body.get("user").and_then(|u| u.get("tenantId")) {
            if !t.as_str().is_some_and(is_guid) {
                return Err(ApiError::bad("user.tenantId must be a tenant id (a GUID)"));
            }
        }
        let last_read = match body.get("lastMessageReadDateTime") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if action == "markChatUnreadForUser" => {
                Some(parse_ms(s).ok_or_else(|| {
                    ApiError::bad(format!("lastMessageReadDateTime '{s}' is not a valid time"))
                })?)
            }
            Some(_) => {
                return Err(ApiError::bad(
                    "lastMessageReadDateTime is a time, and only for markChatUnreadForUser",
                ))
            }
        };
        if let Caller::User { oid, .. } = Self::caller() {
            if !self.names_user(&user, &oid) {
                return Err(ApiError::forbidden(
                    "A delegated token changes its own user's view only.",
                ));
            }
        }
        let user = if self.is_me(&user) {
            self.me()
        } else {
            user.to_ascii_lowercase()
        };
        self.mutate(|store, events| {
            let c = Self::chat_mut(store, chat)?;
            let latest = c.messages.iter().map(|m| m.created_ms).max();
            let vp = c
                .viewpoints
                .entry(user.clone())
                .or_insert_with(Viewpoint::default);
            match action {
                "markChatReadForUser" => vp.last_read_ms = Some(now_ms()),
                "markChatUnreadForUser" => {
                    vp.last_read_ms = last_read.or(latest.map(|t| t - 1)).or(vp.last_read_ms)
                }
                "hideForUser" => vp.is_hidden = true,
                "unhideForUser" => vp.is_hidden = false,
                _ => {
                    return Err(ApiError::not_found(format!(
                        "No action '{action}' on a chat"
                    )))
                }
            }
            events.push(Event::Viewpoint {
                chat: chat.to_string(),
                user,
            });
            Ok(())
        })
    }
}
