//! Chats: create, get (with the reader's `viewpoint`), list, members, update and delete.

use std::sync::Arc;

use serde_json::{json, Value};

use super::body::json_object;
use super::queries::{normalize, page, top};
use super::store::{Event, Graph, Store};
use crate::state::{Chat, Member, Message};
use crate::util::{fmt_ms, guid, guid_from, is_guid, now_ms, param, ApiError, ApiResult};

impl Graph {
    pub fn create_chat(self: &Arc<Self>, body: &[u8]) -> ApiResult<Value> {
        let body = json_object(body)?;
        let chat_type = body
            .get("chatType")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("chatType is required: oneOnOne or group"))?;
        let chat_type = match chat_type {
            t if t.eq_ignore_ascii_case("oneOnOne") => "oneOnOne",
            t if t.eq_ignore_ascii_case("group") => "group",
            other => {
                return Err(ApiError::bad(format!(
                    "chatType '{other}' cannot be created: oneOnOne or group"
                )))
            }
        };
        let topic = match body.get("topic") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => return Err(ApiError::bad("topic must be a string")),
        };
        if topic.is_some() && chat_type == "oneOnOne" {
            return Err(ApiError::bad("A oneOnOne chat has no topic"));
        }
        let raw_members = body
            .get("members")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::bad("members is required"))?;
        let mut members: Vec<Member> = Vec::new();
        for (i, m) in raw_members.iter().enumerate() {
            let member = self.member_from(i, m)?;
            if members.iter().any(|o| o.user_id == member.user_id) {
                return Err(ApiError::bad(format!("members[{i}] is listed twice")));
            }
            members.push(member);
        }
        match chat_type {
            "oneOnOne" if members.len() != 2 => {
                return Err(ApiError::bad(format!(
                    "A oneOnOne chat has exactly 2 members; got {}",
                    members.len()
                )))
            }
            "group" if members.is_empty() => {
                return Err(ApiError::bad("A group chat needs members"))
            }
            _ => {}
        }
        let tenant = self.config.tenant_id.clone();
        let chat = self.mutate(|store, events| {
            let now = now_ms();
            let id = if chat_type == "oneOnOne" {
                let mut ids = [members[0].user_id.clone(), members[1].user_id.clone()];
                ids.sort();
                format!("19:{}_{}@unq.gbl.spaces", ids[0], ids[1])
            } else {
                format!("19:{}@thread.v2", guid().replace('-', ""))
            };
            if let Some(existing) = store.state.chats.iter().find(|c| c.id == id) {
                return Ok(existing.clone());
            }
            let chat = Chat {
                id,
                chat_type: chat_type.into(),
                topic: topic.clone(),
                created_ms: now,
                updated_ms: now,
                members: members.clone(),
                viewpoints: Default::default(),
                messages: Vec::new(),
            };
            store.state.chats.push(chat.clone());
            events.push(Event::Chat {
                chat: Box::new(chat.clone()),
                change: "created",
            });
            Ok(chat)
        })?;
        let mut v = chat.to_json(&tenant, None);
        v["@odata.context"] = format!("{}v1.0/$metadata#chats/$entity", self.base_url).into();
        Ok(v)
    }

    fn member_from(&self, i: usize, m: &Value) -> ApiResult<Member> {
        let bad = |why: &str| ApiError::bad(format!("members[{i}]: {why}"));
        let odata_type = m.get("@odata.type").and_then(Value::as_str).unwrap_or("");
        if !odata_type
            .to_ascii_lowercase()
            .ends_with("aaduserconversationmember")
        {
            return Err(bad(
                "@odata.type must be #microsoft.graph.aadUserConversationMember",
            ));
        }
        let roles: Vec<String> = match m.get("roles") {
            None | Some(Value::Null) => vec!["owner".into()],
            Some(Value::Array(r)) => r
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("roles must be strings"))
                })
                .collect::<ApiResult<_>>()?,
            Some(_) => return Err(bad("roles must be an array")),
        };
        let bind = m
            .get("user@odata.bind")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("user@odata.bind is required"))?;
        let user = bind_user(bind).ok_or_else(|| {
            bad("user@odata.bind must name a user: https://graph.microsoft.com/v1.0/users('{id or UPN}')")
        })?;
        let (user_id, display_name, email) = if self.is_me(&user) {
            (self.me(), self.my_name(), None)
        } else if let Some(u) = self.find_user(&user) {
            (u.id.clone(), u.display_name.clone(), None)
        } else if is_guid(&user) {
            (
                user.to_ascii_lowercase(),
                format!("User {}", &user[..8]),
                None,
            )
        } else if user.contains('@') {
            let local = user.split('@').next().unwrap_or("");
            let name = local
                .split(['.', '_', '-'])
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let mut c = p.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" ");
            (guid_from(&user), name, Some(user.clone()))
        } else {
            return Err(bad(
                "the user is neither an object id (GUID) nor a user principal name",
            ));
        };
        Ok(Member {
            user_id,
            display_name,
            email,
            roles,
        })
    }

    pub(super) fn chat_ref<'a>(store: &'a Store, id: &str) -> ApiResult<&'a Chat> {
        store
            .state
            .chats
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| ApiError::chat_not_found(id))
    }

    pub(super) fn chat_mut<'a>(store: &'a mut Store, id: &str) -> ApiResult<&'a mut Chat> {
        store
            .state
            .chats
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| ApiError::chat_not_found(id))
    }

    pub fn get_chat(
        &self,
        chat: &str,
        user: Option<&str>,
        pairs: &[(String, String)],
    ) -> ApiResult<Value> {
        let store = self.lock();
        let viewer = match user {
            Some(u) => self.viewer(&store, u)?,
            None => self.me(),
        };
        let c = Self::chat_ref(&store, chat)?;
        if !self.user_sees(&viewer, c) {
            return Err(ApiError::chat_not_found(chat));
        }
        let mut v = self.chat_view(c, &viewer, pairs)?;
        v["@odata.context"] = format!("{}v1.0/$metadata#chats/$entity", self.base_url).into();
        Ok(v)
    }

    fn chat_view(&self, c: &Chat, viewer: &str, pairs: &[(String, String)]) -> ApiResult<Value> {
        let mut v = c.to_json(&self.config.tenant_id, Some(viewer));
        if let Some(expand) = param(pairs, "$expand") {
            for e in expand.split(',').map(str::trim) {
                match e {
                    "members" => v["members"] = c.members_json(&self.config.tenant_id).into(),
                    "lastMessagePreview" => v["lastMessagePreview"] = c.last_message_preview(),
                    other => {
                        return Err(ApiError::bad(format!(
                            "$expand '{other}' is not supported: members or lastMessagePreview"
                        )))
                    }
                }
            }
        }
        Ok(v)
    }

    pub fn list_chats(
        &self,
        user: &str,
        pairs: &[(String, String)],
        self_url: &str,
    ) -> ApiResult<Value> {
        let top = top(pairs)?;
        let store = self.lock();
        let viewer = self.viewer(&store, user)?;
        let mut chats: Vec<&Chat> = store
            .state
            .chats
            .iter()
            .filter(|c| self.user_sees(&viewer, c))
            .collect();
        match param(pairs, "$orderby").map(normalize) {
            None => chats.sort_by_key(|c| std::cmp::Reverse(c.activity_ms())),
            Some(o) if o.eq_ignore_ascii_case("lastMessagePreview/createdDateTime desc") => {
                chats.sort_by_key(|c| std::cmp::Reverse(c.activity_ms()))
            }
            Some(o) => {
                return Err(ApiError::bad(format!(
                    "$orderby '{o}' is not supported: lastMessagePreview/createdDateTime desc"
                )))
            }
        }
        let items = chats
            .into_iter()
            .map(|c| self.chat_view(c, &viewer, pairs))
            .collect::<ApiResult<Vec<_>>>()?;
        drop(store);
        page(items, pairs, top, self_url, "chats", &self.base_url)
    }

    pub fn list_members(&self, chat: &str, user: Option<&str>) -> ApiResult<Value> {
        let store = self.lock();
        if let Some(u) = user {
            self.viewer(&store, u)?;
        }
        let c = Self::chat_ref(&store, chat)?;
        let members = c.members_json(&self.config.tenant_id);
        Ok(json!({
            "@odata.context": format!("{}v1.0/$metadata#chats('{}')/members", self.base_url, c.id),
            "@odata.count": members.len(),
            "value": members,
        }))
    }

    /// `POST /chats/{id}/members`: adds a member (an `aadUserConversationMember` with
    /// `user@odata.bind`, `roles`, optional `visibleHistoryStartDateTime`) to a group chat, as
    /// the caller; 201 with the member. A oneOnOne chat cannot take one (400), nor can a user
    /// already in the chat (409). The chat notifies `updated`, and a system event message
    /// (`membersAddedEventMessageDetail`, the caller as initiator) is created in it, as Teams
    /// does.
    pub fn add_member(self: &Arc<Self>, chat: &str, body: &[u8]) -> ApiResult<Value> {
        let body = json_object(body)?;
        let member_body = Value::Object(body.clone());
        let member = self
            .member_from(0, &member_body)
            .map_err(|e| ApiError::bad(e.message.replacen("members[0]: ", "", 1)))?;
        let visible_from = match body.get("visibleHistoryStartDateTime") {
            None | Some(Value::Null) => "0001-01-01T00:00:00Z".to_owned(),
            Some(Value::String(t))
                if time::OffsetDateTime::parse(
                    t,
                    &time::format_description::well_known::Rfc3339,
                )
                .is_ok() =>
            {
                t.clone()
            }
            Some(_) => {
                return Err(ApiError::bad(
                    "visibleHistoryStartDateTime must be a date and time (ISO 8601, UTC)",
                ))
            }
        };
        let (me, my_name) = (self.me(), self.my_name());
        let tenant = self.config.tenant_id.clone();
        let base = self.base_url.clone();
        self.mutate(|store, events| {
            let c = Self::chat_mut(store, chat)?;
            if c.chat_type != "group" {
                return Err(ApiError::bad(
                    "Members cannot be added to a oneOnOne chat: start a group chat instead",
                ));
            }
            if c.members
                .iter()
                .any(|m| m.user_id.eq_ignore_ascii_case(&member.user_id))
            {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    "The user is already a member of the chat",
                ));
            }
            c.members.push(member.clone());
            let mut ms = now_ms();
            while c.messages.iter().any(|m| m.created_ms == ms) {
                ms += 1;
            }
            c.updated_ms = ms;
            let id = ms.to_string();
            let json = json!({
                "id": id,
                "replyToId": null,
                "etag": id,
                "messageType": "systemEventMessage",
                "createdDateTime": fmt_ms(ms),
                "lastModifiedDateTime": fmt_ms(ms),
                "lastEditedDateTime": null,
                "deletedDateTime": null,
                "subject": null,
                "summary": null,
                "chatId": c.id,
                "importance": "normal",
                "locale": "en-us",
                "webUrl": null,
                "channelIdentity": null,
                "policyViolation": null,
                "eventDetail": {
                    "@odata.type": "#microsoft.graph.membersAddedEventMessageDetail",
                    "visibleHistoryStartDateTime": visible_from,
                    "members": [{
                        "id": member.user_id,
                        "displayName": member.display_name,
                        "userIdentityType": "aadUser",
                        "tenantId": tenant,
                    }],
                    "initiator": {
                        "application": null,
                        "device": null,
                        "user": {
                            "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                            "id": me,
                            "displayName": my_name,
                            "userIdentityType": "aadUser",
                            "tenantId": tenant,
                        }
                    }
                },
                "from": null,
                "body": {"contentType": "html", "content": "<systemEventMessage/>"},
                "attachments": [],
                "mentions": [],
                "reactions": [],
                "messageHistory": [],
            });
            c.messages.push(Message {
                json,
                created_ms: ms,
                modified_ms: ms,
                hosted: Vec::new(),
            });
            let mut answer = c
                .members_json(&tenant)
                .into_iter()
                .find(|m| m["userId"] == member.user_id.as_str())
                .unwrap_or(Value::Null);
            answer["visibleHistoryStartDateTime"] = visible_from.clone().into();
            answer["@odata.context"] =
                format!("{base}v1.0/$metadata#chats('{}')/members/$entity", c.id).into();
            events.push(Event::Chat {
                chat: Box::new(c.clone()),
                change: "updated",
            });
            events.push(Event::Message {
                chat: c.id.clone(),
                id,
                change: "created",
            });
            Ok(answer)
        })
    }

    pub fn patch_chat(self: &Arc<Self>, chat: &str, body: &[u8]) -> ApiResult<()> {
        let body = json_object(body)?;
        self.mutate(|store, events| {
            let c = Self::chat_mut(store, chat)?;
            for (k, v) in &body {
                match (k.as_str(), v) {
                    ("topic", Value::String(t)) if c.chat_type == "group" => {
                        c.topic = Some(t.clone())
                    }
                    ("topic", Value::Null) if c.chat_type == "group" => c.topic = None,
                    ("topic", _) => {
                        return Err(ApiError::bad(
                            "Only a group chat's topic can be set, to a string",
                        ))
                    }
                    (other, _) => {
                        return Err(ApiError::bad(format!(
                            "'{other}' cannot be updated: only topic"
                        )))
                    }
                }
            }
            c.updated_ms = now_ms();
            events.push(Event::Chat {
                chat: Box::new(c.clone()),
                change: "updated",
            });
            Ok(())
        })
    }

    pub fn delete_chat(self: &Arc<Self>, chat: &str) -> ApiResult<()> {
        self.mutate(|store, events| {
            let at = store
                .state
                .chats
                .iter()
                .position(|c| c.id == chat)
                .ok_or_else(|| ApiError::chat_not_found(chat))?;
            let c = store.state.chats.remove(at);
            events.push(Event::Chat {
                chat: Box::new(c),
                change: "deleted",
            });
            Ok(())
        })
    }
}

/// The user of `https://graph.microsoft.com/v1.0/users('{id or UPN}')` (or `.../users/{id}`).
fn bind_user(bind: &str) -> Option<String> {
    let at = bind.rfind("users")?;
    let rest = &bind[at + "users".len()..];
    let user = if let Some(r) = rest.strip_prefix("('") {
        r.strip_suffix("')")?
    } else {
        rest.strip_prefix('/')?
    };
    (!user.is_empty() && !user.contains(['/', '\'', '(', ')'])).then(|| user.to_string())
}
