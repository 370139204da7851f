//! Subscriptions: create (rules, quotas, then handshakes), read, list, renew, reauthorize, delete,
//! expire and remove; and the tick that expires them and asks for reauthorization.

use std::sync::Arc;

use serde_json::{json, Value};

use super::body::json_object;
use super::caller::Caller;
use super::rules::{
    bad_certificate, check_id_len, check_lifetime, parse_certificate, parse_create, parse_resource,
    Parsed, Target,
};
use super::store::{Event, Graph, Store};
use crate::deliver::{self, Subscriptions};
use crate::state::Sub;
use crate::usage::Change;
use crate::util::{guid, now_ms, parse_ms, ApiError, ApiResult};

/// `reauthorizationRequired` goes out when the remaining lifetime falls under a quarter of the
/// lifetime, or under this, whichever comes later.
const REAUTH_AT_MOST_MS: i64 = 15 * 60 * 1000;

/// The most user-level subscriptions one user may have.
const USER_QUOTA: usize = 10;

impl Graph {
    pub async fn create_subscription(
        self: &Arc<Self>,
        version: &str,
        body: &[u8],
    ) -> ApiResult<Value> {
        let now = now_ms();
        let mut sub = parse_create(body, now, version)?;
        let parsed = parse_resource(&sub.resource, version)?;
        self.check_subscriber(&parsed)?;
        self.check_quota(&self.lock(), &parsed)?;
        deliver::handshake(&self.courier, &sub.notification_url).await?;
        if let Some(url) = sub.lifecycle_url.clone() {
            deliver::handshake(&self.courier, &url).await?;
        }
        sub.id = guid();
        sub.creator = Some(self.me());
        sub.authorized = Self::authorization();
        let cert = sub.certificate.as_deref().and_then(parse_certificate);
        self.mutate(|store, _| {
            self.check_quota(store, &parsed)?;
            if let Some(c) = cert {
                store.certs.insert(sub.id.clone(), c);
            }
            store.state.subscriptions.push(sub.clone());
            self.changed(Change::Subscription(&sub.id));
            Ok(())
        })?;
        Ok(self.sub_json(&sub))
    }

    fn sub_json(&self, sub: &Sub) -> Value {
        let creator = sub.creator.as_deref().unwrap_or(&self.config.user_id);
        sub.to_json(&self.config.app_id, creator, &self.base_url)
    }

    /// The authorization a delegated token gives a subscription it creates, renews or
    /// reauthorizes: when the token was issued and when it expires.
    fn authorization() -> Option<(i64, i64)> {
        match Self::caller() {
            Caller::User {
                issued_ms,
                expires_ms,
                ..
            } => Some((issued_ms, expires_ms)),
            Caller::Anyone | Caller::App => None,
        }
    }

    /// A renewal or reauthorization of `sub` with the caller's token: a delegated subscription
    /// takes its fresh expiry (403 for another user's token). Resumes held deliveries.
    fn reauthorized(&self, sub: &mut Sub) -> ApiResult<()> {
        if let Caller::User { oid, .. } = Self::caller() {
            if sub.authorized.is_some()
                && !sub
                    .creator
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&oid))
            {
                return Err(ApiError::forbidden(
                    "Only the user who created a subscription can renew or reauthorize it.",
                ));
            }
        }
        if let Some(fresh) = Self::authorization() {
            if sub.authorized.is_some() {
                sub.authorized = Some(fresh);
                sub.auth_reauth_sent = false;
            }
        }
        Ok(())
    }

    /// 403 when a delegated token subscribes to another user's chats, or to a chat its user is
    /// not a member of.
    fn check_subscriber(&self, p: &Parsed) -> ApiResult<()> {
        let Caller::User { oid, .. } = Self::caller() else {
            return Ok(());
        };
        match &p.target {
            Target::UserChats(u) | Target::UserChatMessages(u) if !self.names_user(u, &oid) => Err(
                ApiError::forbidden("A delegated token subscribes to its own user's chats only."),
            ),
            Target::Chat(c) | Target::ChatMessages(c) => {
                let store = self.lock();
                match store.state.chats.iter().find(|x| &x.id == c) {
                    Some(chat) if !chat.has_member(&oid) => Err(ApiError::forbidden(format!(
                        "The user is not a member of chat '{c}'."
                    ))),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn check_quota(&self, store: &Store, p: &Parsed) -> ApiResult<()> {
        let now = now_ms();
        let live: Vec<Target> = store
            .state
            .subscriptions
            .iter()
            .filter(|s| s.is_live(now))
            .filter_map(|s| parse_resource(&s.resource, &s.version).ok())
            .map(|p| p.target)
            .collect();
        let user_of = |t: &Target| -> Option<String> {
            match t {
                Target::UserChats(u) | Target::UserChatMessages(u) if !self.is_me(u) => {
                    Some(u.to_ascii_lowercase())
                }
                Target::UserChats(_)
                | Target::UserChatMessages(_)
                | Target::MyChats
                | Target::MyChatMessages => Some(self.me().to_ascii_lowercase()),
                _ => None,
            }
        };
        match &p.target {
            Target::ChatMessages(c) => {
                if live
                    .iter()
                    .any(|t| matches!(t, Target::ChatMessages(o) if o == c))
                {
                    return Err(ApiError::forbidden(format!(
                        "The app already has a chatMessage subscription for chat {c}: one per app per chat."
                    )));
                }
            }
            Target::Chat(c) => {
                if live.iter().any(|t| matches!(t, Target::Chat(o) if o == c)) {
                    return Err(ApiError::forbidden(format!(
                        "The app already has a chat subscription for chat {c}: one per app per chat."
                    )));
                }
            }
            t => {
                if let Some(user) = user_of(t) {
                    let n = live
                        .iter()
                        .filter(|o| user_of(o).as_deref() == Some(&user))
                        .count();
                    if n >= USER_QUOTA {
                        return Err(ApiError::forbidden(format!(
                            "User {user} already has {USER_QUOTA} user-level subscriptions, the most allowed."
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn get_subscription(&self, id: &str) -> ApiResult<Value> {
        let store = self.lock();
        let now = now_ms();
        live(&store.state.subscriptions, id, now).map(|s| self.sub_json(s))
    }

    pub fn list_subscriptions(&self, version: &str) -> Value {
        let store = self.lock();
        let now = now_ms();
        let value: Vec<Value> = store
            .state
            .subscriptions
            .iter()
            .filter(|s| s.is_live(now))
            .map(|s| self.sub_json(s))
            .collect();
        json!({
            "@odata.context": format!("{}{version}/$metadata#subscriptions", self.base_url),
            "value": value,
        })
    }

    pub fn renew(self: &Arc<Self>, id: &str, body: &[u8]) -> ApiResult<Value> {
        let body = json_object(body)?;
        let now = now_ms();
        for key in body.keys() {
            match key.as_str() {
                "expirationDateTime" | "encryptionCertificate" | "encryptionCertificateId" => {}
                "lifecycleNotificationUrl" => {
                    return Err(ApiError::bad(
                        "lifecycleNotificationUrl cannot be added to or changed on an existing subscription: create a new one",
                    ))
                }
                other => {
                    return Err(ApiError::bad(format!(
                        "Only expirationDateTime (and a new encryptionCertificate with its encryptionCertificateId) can be updated; got '{other}'"
                    )))
                }
            }
        }
        let expires = body
            .get("expirationDateTime")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad("expirationDateTime is required"))?;
        let expires = parse_ms(expires).ok_or_else(|| {
            ApiError::bad(format!(
                "expirationDateTime '{expires}' is not a valid time"
            ))
        })?;
        let cert = body.get("encryptionCertificate").map(|c| c.as_str());
        let cert_id = body.get("encryptionCertificateId").map(|c| c.as_str());
        let sub = self.mutate(|store, _| {
            let sub = live_mut(&mut store.state.subscriptions, id, now)?;
            check_lifetime(expires - now, sub.lifecycle_url.is_some())?;
            self.reauthorized(sub)?;
            let mut new_cert = None;
            match (cert, cert_id) {
                (None, None) => {}
                (Some(Some(c)), Some(Some(i))) => {
                    if !sub.include_resource_data {
                        return Err(ApiError::bad(
                            "encryptionCertificate applies only to subscriptions that include resource data",
                        ));
                    }
                    check_id_len("encryptionCertificateId", i)?;
                    let parsed = parse_certificate(c).ok_or_else(bad_certificate)?;
                    new_cert = Some((c.to_string(), i.to_string(), parsed));
                }
                _ => {
                    return Err(ApiError::bad(
                        "encryptionCertificate and encryptionCertificateId go together",
                    ))
                }
            }
            sub.expires_ms = expires;
            sub.renewed_ms = now;
            self.changed(Change::Subscription(id));
            sub.reauth_sent = false;
            let sub = if let Some((c, i, parsed)) = new_cert {
                sub.certificate = Some(c);
                sub.certificate_id = Some(i);
                let s = sub.clone();
                store.certs.insert(s.id.clone(), parsed);
                s
            } else {
                sub.clone()
            };
            Ok(sub)
        })?;
        self.courier.wake();
        Ok(self.sub_json(&sub))
    }

    pub fn reauthorize(self: &Arc<Self>, id: &str) -> ApiResult<()> {
        self.mutate(|store, _| {
            let now = now_ms();
            let sub = live_mut(&mut store.state.subscriptions, id, now)?;
            self.reauthorized(sub)
        })?;
        // Held deliveries flow again: the courier looks again at once.
        self.courier.wake();
        Ok(())
    }

    pub fn delete_subscription(self: &Arc<Self>, id: &str) -> ApiResult<()> {
        self.mutate(|store, _| {
            let now = now_ms();
            let before = store.state.subscriptions.len();
            store
                .state
                .subscriptions
                .retain(|s| !(s.id == id && s.is_live(now)));
            if store.state.subscriptions.len() == before {
                return Err(ApiError::subscription_not_found(id));
            }
            self.changed(Change::Subscription(id));
            store.certs.remove(id);
            Ok(())
        })
    }

    pub fn expire(self: &Arc<Self>, id: &str) -> ApiResult<()> {
        self.delete_subscription(id)
    }

    pub fn remove(self: &Arc<Self>, id: &str) -> ApiResult<()> {
        self.mutate(|store, events| {
            let now = now_ms();
            let at = store
                .state
                .subscriptions
                .iter()
                .position(|s| s.id == id && s.is_live(now))
                .ok_or_else(|| ApiError::subscription_not_found(id))?;
            let sub = store.state.subscriptions.remove(at);
            store.certs.remove(id);
            events.push(Event::Lifecycle {
                sub: Box::new(sub),
                event: "subscriptionRemoved",
            });
            Ok(())
        })
    }

    /// Expires what is due (silently) and sends `reauthorizationRequired` where it is time.
    pub(super) fn tick(self: &Arc<Self>) {
        let now = now_ms();
        let outgoing;
        {
            let mut store = self.lock();
            let mut events = Vec::new();
            let before = store.state.subscriptions.len();
            let gone: Vec<String> = store
                .state
                .subscriptions
                .iter()
                .filter(|s| s.expires_ms <= now)
                .map(|s| s.id.clone())
                .collect();
            store.state.subscriptions.retain(|s| s.is_live(now));
            for id in &gone {
                store.certs.remove(id);
                self.changed(Change::Subscription(id));
            }
            let mut changed = store.state.subscriptions.len() != before;
            for sub in store.state.subscriptions.iter_mut() {
                let lifetime = sub.expires_ms - sub.renewed_ms;
                let threshold = (lifetime / 4).min(REAUTH_AT_MOST_MS);
                // A delegated subscription: at three quarters of its token's lifetime.
                if let Some((from, until)) = sub.authorized {
                    if sub.lifecycle_url.is_some()
                        && !sub.auth_reauth_sent
                        && now >= from + (until - from) * 3 / 4
                    {
                        sub.auth_reauth_sent = true;
                        changed = true;
                        events.push(Event::Lifecycle {
                            sub: Box::new(sub.clone()),
                            event: "reauthorizationRequired",
                        });
                        continue;
                    }
                }
                if sub.lifecycle_url.is_some()
                    && !sub.reauth_sent
                    && sub.expires_ms - now <= threshold
                {
                    sub.reauth_sent = true;
                    changed = true;
                    events.push(Event::Lifecycle {
                        sub: Box::new(sub.clone()),
                        event: "reauthorizationRequired",
                    });
                }
            }
            if changed {
                self.persist(&store);
            }
            outgoing = self.fan_out(&mut store, &events);
        }
        for o in outgoing {
            self.courier.dispatch(self.clone(), o);
        }
    }
}

impl Subscriptions for Graph {
    fn is_live(&self, id: &str) -> bool {
        let now = now_ms();
        self.lock()
            .state
            .subscriptions
            .iter()
            .any(|s| s.id == id && s.is_live(now))
    }

    fn is_paused(&self, id: &str) -> bool {
        let now = now_ms();
        self.lock()
            .state
            .subscriptions
            .iter()
            .any(|s| s.id == id && s.is_paused(now))
    }
}

/// The live subscription `id`, or Graph's 404 for it.
fn live<'a>(subscriptions: &'a [Sub], id: &str, now: i64) -> ApiResult<&'a Sub> {
    subscriptions
        .iter()
        .find(|s| s.id == id && s.is_live(now))
        .ok_or_else(|| ApiError::subscription_not_found(id))
}

/// [`live`], to change.
fn live_mut<'a>(subscriptions: &'a mut [Sub], id: &str, now: i64) -> ApiResult<&'a mut Sub> {
    subscriptions
        .iter_mut()
        .find(|s| s.id == id && s.is_live(now))
        .ok_or_else(|| ApiError::subscription_not_found(id))
}
