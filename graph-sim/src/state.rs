//! What the simulated Graph holds: chats, members, viewpoints, messages, hosted contents and
//! subscriptions, and how it is saved to and loaded from the state file.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::types::SimError;
use crate::util::fmt_ms;

/// Everything that survives a restart on the same state file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct State {
    /// The token signing key, PKCS#8 DER in base64 (a test key, never a real one).
    #[serde(default)]
    pub signing_key: String,
    #[serde(default)]
    pub chats: Vec<Chat>,
    #[serde(default)]
    pub subscriptions: Vec<Sub>,
    /// The refresh tokens in force, by the SHA-256 of the token (hex): the tokens themselves are
    /// never stored.
    #[serde(default)]
    pub refresh_tokens: BTreeMap<String, RefreshGrant>,
}

/// What a refresh token stands for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshGrant {
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub issued_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Chat {
    pub id: String,
    pub chat_type: String,
    pub topic: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub members: Vec<Member>,
    /// Each user's own view (`isHidden`, `lastMessageReadDateTime`), by user id.
    #[serde(default)]
    pub viewpoints: BTreeMap<String, Viewpoint>,
    #[serde(default)]
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Member {
    pub user_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Viewpoint {
    pub is_hidden: bool,
    pub last_read_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Message {
    /// The chatMessage as a GET returns it.
    pub json: Value,
    pub created_ms: i64,
    pub modified_ms: i64,
    #[serde(default)]
    pub hosted: Vec<Hosted>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Hosted {
    pub id: String,
    pub content_type: String,
    /// The bytes, base64.
    pub bytes: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Sub {
    pub id: String,
    pub resource: String,
    pub version: String,
    pub change_types: Vec<String>,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub expires_ms: i64,
    /// When the current lifetime began (creation or the last renewal).
    pub renewed_ms: i64,
    pub client_state: Option<String>,
    pub include_resource_data: bool,
    pub certificate: Option<String>,
    pub certificate_id: Option<String>,
    pub tls: String,
    /// Whether `reauthorizationRequired` went out in the current lifetime.
    #[serde(default)]
    pub reauth_sent: bool,
    /// The user whose token created it (the signed-in user when any bearer is accepted).
    #[serde(default)]
    pub creator: Option<String>,
    /// A delegated subscription's authorization: when the token it was last created, renewed
    /// or reauthorized with was issued and when it expires (milliseconds). `None` when any
    /// bearer is accepted or for an app token.
    #[serde(default)]
    pub authorized: Option<(i64, i64)>,
    /// Whether `reauthorizationRequired` went out for the current authorization.
    #[serde(default)]
    pub auth_reauth_sent: bool,
}

impl Message {
    pub fn id(&self) -> &str {
        self.json.get("id").and_then(Value::as_str).unwrap_or("")
    }
    pub fn sender_id(&self) -> Option<&str> {
        self.json.pointer("/from/user/id").and_then(Value::as_str)
    }
    pub fn is_deleted(&self) -> bool {
        self.json
            .get("deletedDateTime")
            .is_some_and(|d| !d.is_null())
    }
    /// The time of a change made now: later than the last one, by a millisecond at least, so
    /// that two changes in one millisecond are still two versions (Graph's `etag` and
    /// `lastModifiedDateTime` always move forward).
    pub fn next_change_ms(&self) -> i64 {
        crate::util::now_ms().max(self.modified_ms + 1)
    }

    /// Sets `lastModifiedDateTime` (and `etag`).
    pub fn touch(&mut self, ms: i64) {
        self.modified_ms = ms;
        self.json["lastModifiedDateTime"] = fmt_ms(ms).into();
        self.json["etag"] = ms.to_string().into();
    }
}

impl Chat {
    pub fn message_mut(&mut self, id: &str) -> Option<&mut Message> {
        self.messages.iter_mut().find(|m| m.id() == id)
    }
    pub fn message(&self, id: &str) -> Option<&Message> {
        self.messages.iter().find(|m| m.id() == id)
    }
    /// Whether `user` (an id or UPN) is a member.
    pub fn has_member(&self, user: &str) -> bool {
        self.members.iter().any(|m| {
            m.user_id.eq_ignore_ascii_case(user)
                || m.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(user))
        })
    }
    /// The chat as Graph returns it; with `viewpoint` when read for `viewer`.
    pub fn to_json(&self, tenant: &str, viewer: Option<&str>) -> Value {
        let mut v = json!({
            "id": self.id,
            "topic": self.topic,
            "createdDateTime": fmt_ms(self.created_ms),
            "lastUpdatedDateTime": fmt_ms(self.updated_ms),
            "chatType": self.chat_type,
            "webUrl": format!("https://teams.microsoft.com/l/chat/{}/0?tenantId={tenant}", self.id),
            "tenantId": tenant,
            "isHiddenForAllMembers": false,
            "onlineMeetingInfo": null,
        });
        if let Some(user) = viewer {
            v["viewpoint"] = self.viewpoint_json(user);
        }
        v
    }
    pub fn viewpoint_json(&self, user: &str) -> Value {
        let vp = self.viewpoints.get(user).cloned().unwrap_or_default();
        json!({
            "isHidden": vp.is_hidden,
            "lastMessageReadDateTime": vp.last_read_ms.map(fmt_ms),
        })
    }
    pub fn members_json(&self, tenant: &str) -> Vec<Value> {
        use base64::Engine as _;
        self.members
            .iter()
            .map(|m| {
                let id = base64::engine::general_purpose::STANDARD
                    .encode(format!("1#{}#{}", self.id, m.user_id));
                json!({
                    "@odata.type": "#microsoft.graph.aadUserConversationMember",
                    "id": id,
                    "roles": m.roles,
                    "displayName": m.display_name,
                    "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
                    "userId": m.user_id,
                    "email": m.email,
                    "tenantId": tenant,
                })
            })
            .collect()
    }
    /// The latest message, for `lastMessagePreview`.
    pub fn last_message_preview(&self) -> Value {
        match self.messages.iter().max_by_key(|m| m.created_ms) {
            None => Value::Null,
            Some(m) => json!({
                "id": m.id(),
                "createdDateTime": fmt_ms(m.created_ms),
                "isDeleted": m.is_deleted(),
                "messageType": m.json.get("messageType").cloned().unwrap_or(Value::Null),
                "eventDetail": null,
                "body": m.json.get("body").cloned().unwrap_or(Value::Null),
                "from": m.json.get("from").cloned().unwrap_or(Value::Null),
            }),
        }
    }
    /// When the chat last saw activity: its newest message, or its creation.
    pub fn activity_ms(&self) -> i64 {
        self.messages
            .iter()
            .map(|m| m.created_ms)
            .max()
            .unwrap_or(self.created_ms)
            .max(self.updated_ms)
    }
}

impl Sub {
    /// Whether it has not expired at `now_ms`: an expired subscription is gone (GET 404) and
    /// delivers nothing.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_ms > now_ms
    }

    /// Whether its deliveries are held at `now_ms`: a delegated subscription past its
    /// creator's token expiry, not reauthorized.
    pub fn is_paused(&self, now_ms: i64) -> bool {
        self.authorized.is_some_and(|(_, until)| until <= now_ms)
    }

    pub fn to_json(&self, app_id: &str, creator: &str, base: &str) -> Value {
        json!({
            "@odata.context": format!("{base}{}/$metadata#subscriptions/$entity", self.version),
            "id": self.id,
            "resource": self.resource,
            "applicationId": app_id,
            "changeType": self.change_types.join(","),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": crate::util::fmt_ms7(self.expires_ms),
            "creatorId": creator,
            "includeResourceData": self.include_resource_data,
            "latestSupportedTlsVersion": self.tls,
            "encryptionCertificate": self.certificate,
            "encryptionCertificateId": self.certificate_id,
            "notificationUrlAppId": null,
        })
    }
}

/// Reads the state file; `None` if it does not exist.
pub(crate) fn load(path: &Path) -> Result<Option<State>, SimError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            SimError::State(format!(
                "{}: not a graph-sim state file ({e})",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SimError::State(format!("{}: {e}", path.display()))),
    }
}

/// Writes the state file atomically: a temporary file beside it, then a rename. The file holds
/// the signing key, so it is created readable by its owner only.
pub(crate) fn save(path: &Path, state: &State) -> Result<(), SimError> {
    use std::io::Write as _;
    let bytes = serde_json::to_vec(state).map_err(|e| SimError::State(e.to_string()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let err = |e: std::io::Error| SimError::State(format!("{}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(&bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}
