//! Chat messages: send (by the user or a colleague, with hosted contents), get, edit, soft-delete
//! and restore, reactions, DLP verdicts, and hosted contents' bytes.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::body::{array_field, content_type, json_object};
use super::store::{Event, Graph};
use crate::state::{Hosted, Message};
use crate::types::Sender;
use crate::util::{fmt_ms, now_ms, ApiError, ApiResult};

impl Graph {
    pub fn send_message(self: &Arc<Self>, chat: &str, body: &[u8]) -> ApiResult<Value> {
        let body = json_object(body)?;
        let item = body
            .get("body")
            .and_then(Value::as_object)
            .ok_or_else(|| ApiError::bad("body is required: {\"content\", \"contentType\"}"))?;
        let content = item
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("body.content is required"))?;
        let content_type = content_type(item.get("contentType"))?;
        let mut hosted = Vec::new();
        if let Some(h) = body.get("hostedContents") {
            let list = h
                .as_array()
                .ok_or_else(|| ApiError::bad("hostedContents must be an array"))?;
            for (i, h) in list.iter().enumerate() {
                let bad = |why: &str| ApiError::bad(format!("hostedContents[{i}]: {why}"));
                let tmp = h
                    .get("@microsoft.graph.temporaryId")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("@microsoft.graph.temporaryId is required"))?;
                let bytes = h
                    .get("contentBytes")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("contentBytes is required"))?;
                B64.decode(bytes)
                    .map_err(|_| bad("contentBytes is not base64"))?;
                let ct = h
                    .get("contentType")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("contentType is required"))?;
                hosted.push((tmp.to_string(), bytes.to_string(), ct.to_string()));
            }
        }
        let extra = Extra {
            mentions: array_field(&body, "mentions")?,
            attachments: array_field(&body, "attachments")?,
            subject: body
                .get("subject")
                .and_then(Value::as_str)
                .map(str::to_string),
            importance: match body.get("importance").and_then(Value::as_str) {
                None => "normal".into(),
                Some(i @ ("normal" | "high" | "urgent")) => i.into(),
                Some(other) => {
                    return Err(ApiError::bad(format!(
                        "importance '{other}': normal, high or urgent"
                    )))
                }
            },
        };
        let from = Sender {
            id: self.me(),
            display_name: self.my_name(),
        };
        self.new_message(chat, &from, content, content_type, extra, hosted)
    }

    pub fn colleague_writes(
        self: &Arc<Self>,
        chat: &str,
        from: &Sender,
        content: &str,
        content_type: &str,
    ) -> ApiResult<Value> {
        let ct = self::content_type(Some(&Value::String(content_type.into())))?;
        if from.id.trim().is_empty() {
            return Err(ApiError::bad("from.id is required"));
        }
        self.new_message(chat, from, content, ct, Extra::default(), Vec::new())
    }

    fn new_message(
        self: &Arc<Self>,
        chat: &str,
        from: &Sender,
        content: &str,
        content_type: &'static str,
        extra: Extra,
        hosted: Vec<(String, String, String)>,
    ) -> ApiResult<Value> {
        let tenant = self.config.tenant_id.clone();
        let base = self.base_url.clone();
        let mine = self.is_me(&from.id);
        self.mutate(|store, events| {
            let c = Self::chat_mut(store, chat)?;
            let mut ms = now_ms();
            while c.messages.iter().any(|m| m.created_ms == ms) {
                ms += 1;
            }
            let id = ms.to_string();
            let mut content = content.to_string();
            let mut stored = Vec::new();
            for (n, (tmp, bytes, ct)) in hosted.iter().enumerate() {
                let hid = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(format!("id=x_{id}-{n},type=1,tmp={tmp}"));
                let url = format!(
                    "{base}v1.0/chats/{}/messages/{id}/hostedContents/{hid}/$value",
                    c.id
                );
                content = content.replace(&format!("../hostedContents/{tmp}/$value"), &url);
                stored.push(Hosted {
                    id: hid,
                    content_type: ct.clone(),
                    bytes: bytes.clone(),
                });
            }
            let json = json!({
                "id": id,
                "replyToId": null,
                "etag": id,
                "messageType": "message",
                "createdDateTime": fmt_ms(ms),
                "lastModifiedDateTime": fmt_ms(ms),
                "lastEditedDateTime": null,
                "deletedDateTime": null,
                "subject": extra.subject,
                "summary": null,
                "chatId": c.id,
                "importance": extra.importance,
                "locale": "en-us",
                "webUrl": null,
                "channelIdentity": null,
                "policyViolation": null,
                "eventDetail": null,
                "from": {
                    "application": null,
                    "device": null,
                    "user": {
                        "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                        "id": from.id,
                        "displayName": from.display_name,
                        "userIdentityType": "aadUser",
                        "tenantId": tenant,
                    }
                },
                "body": {"contentType": content_type, "content": content},
                "attachments": extra.attachments.unwrap_or_default(),
                "mentions": extra.mentions.unwrap_or_default(),
                "reactions": [],
                "messageHistory": [],
            });
            c.messages.push(Message {
                json: json.clone(),
                created_ms: ms,
                modified_ms: ms,
                hosted: stored,
            });
            // A hidden chat shows again for whoever has not read this message yet (no
            // notification for that); the sender has read what they sent.
            for (user, vp) in c.viewpoints.iter_mut() {
                if vp.is_hidden && vp.last_read_ms.is_none_or(|r| ms > r) {
                    vp.is_hidden = false;
                }
                if mine && user == &from.id {
                    vp.last_read_ms = Some(ms);
                }
            }
            events.push(Event::Message {
                chat: c.id.clone(),
                id,
                change: "created",
            });
            let mut answer = json;
            answer["@odata.context"] =
                format!("{base}v1.0/$metadata#chats('{}')/messages/$entity", c.id).into();
            Ok(answer)
        })
    }

    pub fn get_message(&self, chat: &str, id: &str, user: Option<&str>) -> ApiResult<Value> {
        let store = self.lock();
        if let Some(u) = user {
            self.viewer(&store, u)?;
        }
        let c = Self::chat_ref(&store, chat)?;
        let m = c
            .message(id)
            .ok_or_else(|| ApiError::message_not_found(id))?;
        let mut v = m.json.clone();
        v["@odata.context"] = format!(
            "{}v1.0/$metadata#chats('{}')/messages/$entity",
            self.base_url, c.id
        )
        .into();
        Ok(v)
    }

    /// Edits a message: by the signed-in user through PATCH (`by_me`), or by a colleague.
    pub fn edit_message(
        self: &Arc<Self>,
        chat: &str,
        id: &str,
        body: &[u8],
        by_me: bool,
    ) -> ApiResult<()> {
        let body = json_object(body)?;
        let me = self.me();
        let mut new_body = None;
        if let Some(b) = body.get("body") {
            let b = b
                .as_object()
                .ok_or_else(|| ApiError::bad("body must be an object"))?;
            let content = b
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad("body.content is required"))?;
            new_body = Some(
                json!({"contentType": content_type(b.get("contentType"))?, "content": content}),
            );
        }
        let mentions = array_field(&body, "mentions")?;
        let attachments = array_field(&body, "attachments")?;
        let policy = body.get("policyViolation").cloned();
        if new_body.is_none() && mentions.is_none() && attachments.is_none() && policy.is_none() {
            return Err(ApiError::bad(
                "Nothing to update: body, mentions, attachments or policyViolation",
            ));
        }
        self.mutate(|store, events| {
            let c = Self::chat_mut(store, chat)?;
            let m = c
                .message_mut(id)
                .ok_or_else(|| ApiError::message_not_found(id))?;
            if by_me && !m.sender_id().is_some_and(|f| f.eq_ignore_ascii_case(&me)) {
                return Err(ApiError::forbidden("Only the sender can edit a message"));
            }
            let now = m.next_change_ms();
            if let Some(b) = new_body {
                m.json["body"] = b;
                m.json["lastEditedDateTime"] = fmt_ms(now).into();
            }
            if let Some(x) = mentions {
                m.json["mentions"] = x.into();
            }
            if let Some(x) = attachments {
                m.json["attachments"] = x.into();
            }
            if let Some(p) = policy {
                m.json["policyViolation"] = p;
            }
            m.touch(now);
            events.push(Event::Message {
                chat: chat.to_string(),
                id: id.to_string(),
                change: "updated",
            });
            Ok(())
        })
    }

    pub fn colleague_edits(self: &Arc<Self>, chat: &str, id: &str, content: &str) -> ApiResult<()> {
        let ct = {
            let store = self.lock();
            let c = Self::chat_ref(&store, chat)?;
            let m = c
                .message(id)
                .ok_or_else(|| ApiError::message_not_found(id))?;
            m.json
                .pointer("/body/contentType")
                .and_then(Value::as_str)
                .unwrap_or("text")
                .to_string()
        };
        let body = json!({"body": {"content": content, "contentType": ct}});
        self.edit_message(chat, id, body.to_string().as_bytes(), false)
    }

    /// Soft-deletes a message: by `by` (a user acting through the API, who must be the signed-in
    /// user and the sender) or by a colleague (`None`).
    pub fn soft_delete(
        self: &Arc<Self>,
        chat: &str,
        id: &str,
        by: Option<&str>,
        delete: bool,
    ) -> ApiResult<()> {
        if let Some(user) = by {
            if !self.is_me(user) {
                return Err(ApiError::forbidden(
                    "A user can delete only as themselves (delegated access)",
                ));
            }
        }
        let me = self.me();
        self.mutate(|store, events| {
            let c = Self::chat_mut(store, chat)?;
            let m = c
                .message_mut(id)
                .ok_or_else(|| ApiError::message_not_found(id))?;
            if by.is_some() && !m.sender_id().is_some_and(|f| f.eq_ignore_ascii_case(&me)) {
                return Err(ApiError::forbidden(
                    "Only the sender can delete or restore a message",
                ));
            }
            if m.is_deleted() == delete {
                return Ok(());
            }
            let now = m.next_change_ms();
            m.json["deletedDateTime"] = if delete {
                fmt_ms(now).into()
            } else {
                Value::Null
            };
            m.touch(now);
            events.push(Event::Message {
                chat: chat.to_string(),
                id: id.to_string(),
                change: if delete { "deleted" } else { "updated" },
            });
            Ok(())
        })
    }

    pub fn reaction(
        self: &Arc<Self>,
        chat: &str,
        id: &str,
        body: &[u8],
        set: bool,
    ) -> ApiResult<()> {
        let me = self.me();
        self.reaction_by(chat, id, body, set, me)
    }

    /// A colleague (`user`, a member of the chat) sets or unsets a reaction
    /// (`POST /_sim/chats/{c}/messages/{id}/setReaction` `{"user", "reactionType"}`); notifies
    /// `updated` as Graph does.
    pub fn colleague_reacts(
        self: &Arc<Self>,
        chat: &str,
        id: &str,
        user: &str,
        reaction_type: &str,
        set: bool,
    ) -> ApiResult<()> {
        let member = {
            let store = self.lock();
            let c = Self::chat_ref(&store, chat)?;
            c.members
                .iter()
                .find(|m| m.user_id.eq_ignore_ascii_case(user))
                .map(|m| m.user_id.clone())
        };
        let member = member.ok_or_else(|| ApiError::bad("the user is not a member of the chat"))?;
        let body = json!({ "reactionType": reaction_type }).to_string();
        self.reaction_by(chat, id, body.as_bytes(), set, member)
    }

    fn reaction_by(
        self: &Arc<Self>,
        chat: &str,
        id: &str,
        body: &[u8],
        set: bool,
        me: String,
    ) -> ApiResult<()> {
        let body = json_object(body)?;
        let kind = body
            .get("reactionType")
            .and_then(Value::as_str)
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| {
                ApiError::bad(
                    "reactionType is required: a Unicode emoji, or a legacy name such as like",
                )
            })?
            .to_string();
        let tenant = self.config.tenant_id.clone();
        self.mutate(|store, events| {
            let c = Self::chat_mut(store, chat)?;
            let m = c.message_mut(id).ok_or_else(|| ApiError::message_not_found(id))?;
            let now = m.next_change_ms();
            if !m.json["reactions"].is_array() {
                m.json["reactions"] = json!([]);
            }
            let Some(list) = m.json["reactions"].as_array_mut() else {
                return Ok(());
            };
            let mine = |r: &Value| {
                r.get("reactionType").and_then(Value::as_str) == Some(kind.as_str())
                    && r.pointer("/user/user/id").and_then(Value::as_str) == Some(me.as_str())
            };
            let changed = if set {
                if list.iter().any(mine) {
                    false
                } else {
                    list.push(json!({
                        "reactionType": kind,
                        "displayName": legacy_reaction_name(&kind),
                        "reactionContentUrl": null,
                        "createdDateTime": fmt_ms(now),
                        "user": {"application": null, "device": null, "user": {
                            "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                            "id": me, "displayName": null, "userIdentityType": "aadUser", "tenantId": tenant,
                        }},
                    }));
                    true
                }
            } else {
                let before = list.len();
                list.retain(|r| !mine(r));
                list.len() != before
            };
            if changed {
                m.touch(now);
                events.push(Event::Message {
                    chat: chat.to_string(),
                    id: id.to_string(),
                    change: "updated",
                });
            }
            Ok(())
        })
    }

    pub fn policy_violation(self: &Arc<Self>, chat: &str, id: &str, action: &str) -> ApiResult<()> {
        if !["None", "NotifySender", "BlockAccess", "BlockAccessExternal"].contains(&action) {
            return Err(ApiError::bad(format!(
                "dlpAction '{action}': None, NotifySender, BlockAccess or BlockAccessExternal"
            )));
        }
        let body = json!({"policyViolation": {
            "dlpAction": action,
            "justificationText": null,
            "policyTip": {"generalText": "This message was flagged by a data loss prevention policy.", "complianceUrl": null, "matchedConditionDescriptions": []},
            "userAction": "None",
            "verdictDetails": if action == "None" { "None" } else { "AllowOverrideWithoutJustification" },
        }});
        self.edit_message(chat, id, body.to_string().as_bytes(), false)
    }

    pub fn hosted(&self, chat: &str, id: &str, hosted: Option<&str>) -> ApiResult<HostedAnswer> {
        let store = self.lock();
        let c = Self::chat_ref(&store, chat)?;
        let m = c
            .message(id)
            .ok_or_else(|| ApiError::message_not_found(id))?;
        match hosted {
            None => Ok(HostedAnswer::List(
                m.hosted
                    .iter()
                    .map(|h| json!({"id": h.id, "contentBytes": null, "contentType": null}))
                    .collect(),
            )),
            Some(hid) => {
                let h = m.hosted.iter().find(|h| h.id == hid).ok_or_else(|| {
                    ApiError::not_found(format!("No hosted content '{hid}' in message {id}"))
                })?;
                let bytes = B64.decode(&h.bytes).unwrap_or_default();
                Ok(HostedAnswer::Bytes(
                    h.content_type.clone(),
                    bytes,
                    h.id.clone(),
                ))
            }
        }
    }
}

pub(crate) enum HostedAnswer {
    List(Vec<Value>),
    Bytes(String, Vec<u8>, String),
}

struct Extra {
    mentions: Option<Vec<Value>>,
    attachments: Option<Vec<Value>>,
    subject: Option<String>,
    importance: String,
}

impl Default for Extra {
    fn default() -> Self {
        Self {
            mentions: None,
            attachments: None,
            subject: None,
            importance: "normal".into(),
        }
    }
}

fn legacy_reaction_name(kind: &str) -> Value {
    match kind {
        "like" => "Like".into(),
        "heart" => "Heart".into(),
        "laugh" => "Laugh".into(),
        "surprised" => "Surprised".into(),
        "sad" => "Sad".into(),
        "angry" => "Angry".into(),
        _ => Value::Null,
    }
}
