//! The simulated Graph: its state behind one lock, every operation of the API and of `/_sim/`,
//! and the fan-out of each change to the subscriptions that match it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use graph_chat_notifications::crypto::{Certificate, PrivateKey};
use graph_chat_notifications::testing::{generate_private_key, GraphSimulator, Recipient};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::deliver::{self, Counters, Outgoing};
use crate::state::{self, Chat, Hosted, Member, Message, State, Sub, Viewpoint};
use crate::util::{
    fmt_ms, fmt_ms7, guid, guid_from, is_guid, now_ms, param, parse_ms, ApiError, ApiResult,
};
use crate::types::{Config, Deliveries, Faults, Identity, Sender, SimError};

/// The longest lifetime of a chat or chatMessage subscription: 4,320 minutes.
const MAX_LIFETIME_MS: i64 = 4320 * 60 * 1000;
/// Past one hour a subscription needs a lifecycleNotificationUrl.
const LIFECYCLE_NEEDED_MS: i64 = 60 * 60 * 1000;
/// `reauthorizationRequired` goes out when the remaining lifetime falls under a quarter of the
/// lifetime, or under this, whichever comes later.
const REAUTH_AT_MOST_MS: i64 = 15 * 60 * 1000;
/// Pages hold at most this many items (Graph's `$top` limit for chat messages).
pub(crate) const MAX_TOP: usize = 50;
/// The text Graph answers when a long subscription has no lifecycleNotificationUrl.
const LIFECYCLE_REQUIRED: &str = "lifecycleNotificationUrl is a required property for subscription creation on this resource when the expirationDateTime value is set to greater than 1 hour";
/// What Graph answers when a handshake fails.
pub(crate) const VALIDATION_FAILED: &str = "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.";
/// The most user-level subscriptions one user may have.
const USER_QUOTA: usize = 10;

/// The simulated Microsoft Graph: who it is, what it holds (behind one lock), and how it delivers.
pub(crate) struct Graph {
    pub config: Config,
    pub base_url: String,
    pub crypto: GraphSimulator,
    pub jwks: Vec<u8>,
    pub store: Mutex<Store>,
    pub counters: Counters,
    pub fail_first: AtomicU64,
    pub client: deliver::Client,
    pub stop_tx: watch::Sender<bool>,
    pub handle: tokio::runtime::Handle,
}

/// What the Graph holds under its lock: the saved state, and what it derives from it at run time
/// (parsed certificates, the faults in force, the delivery sequence, the validation token).
pub(crate) struct Store {
    pub state: State,
    certs: HashMap<String, Certificate>,
    faults: Faults,
    seed: u64,
    seq: u64,
    api_rng: ChaCha8Rng,
    /// The validation token in use, and when it was minted.
    token: Option<(String, SystemTime)>,
}

/// How long one validation token is reused for.
const TOKEN_REUSE: Duration = Duration::from_secs(600);

/// The subscriptions that have not expired, each with its resource read.
fn live(subs: &[Sub], now: i64) -> impl Iterator<Item = (&Sub, Parsed)> {
    subs.iter()
        .filter(move |s| s.expires_ms > now)
        .filter_map(|s| parse_resource(&s.resource, &s.version).ok().map(|p| (s, p)))
}

/// A change to notify about.
enum Event {
    Message {
        chat: String,
        id: String,
        change: &'static str,
    },
    Chat {
        chat: Box<Chat>,
        change: &'static str,
    },
    Viewpoint {
        chat: String,
        user: String,
    },
    Lifecycle {
        sub: Box<Sub>,
        event: &'static str,
    },
}

/// A subscription's resource, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    AllChats,
    Chat(String),
    UserChats(String),
    MyChats,
    AllChatMessages,
    ChatMessages(String),
    UserChatMessages(String),
    MyChatMessages,
    /// Resources the simulator accepts but holds nothing for (channels, app installations).
    Elsewhere,
}

#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub target: Target,
    search: Option<String>,
    mentions: Option<String>,
    user_specific: bool,
}

/// Where list reads come from.
pub(crate) enum Scope {
    Chat(String),
    UserChat(String, String),
    UserAll(String),
}

impl Graph {
    pub fn new(config: Config, addr: SocketAddr) -> Result<Arc<Self>, SimError> {
        let loaded = match &config.state_path {
            Some(p) => state::load(p)?,
            None => None,
        };
        let mut state = loaded.unwrap_or_default();
        let key = if state.signing_key.is_empty() {
            let key = generate_private_key(2048);
            state.signing_key = B64.encode(key.expose_secret_pkcs8_der());
            key
        } else {
            let der = B64
                .decode(&state.signing_key)
                .map_err(|_| SimError::State("the signing key is not base64".into()))?;
            PrivateKey::from_pkcs8_der(&der)
                .map_err(|e| SimError::State(format!("the signing key does not load: {e}")))?
        };
        let crypto =
            GraphSimulator::with_signing_key(&key, "graph-sim", &config.app_id, &config.tenant_id);
        let jwks = crypto.jwks();
        let mut certs = HashMap::new();
        for sub in &state.subscriptions {
            if let Some(c) = sub.certificate.as_deref().and_then(parse_certificate) {
                certs.insert(sub.id.clone(), c);
            }
        }
        let host = if addr.ip().is_unspecified() {
            SocketAddr::new([127, 0, 0, 1].into(), addr.port())
        } else {
            addr
        };
        let base_url = format!("http://{host}/");
        let (stop_tx, _) = watch::channel(false);
        let seed = config.seed;
        let graph = Arc::new(Self {
            base_url,
            crypto,
            jwks,
            store: Mutex::new(Store {
                state,
                certs,
                faults: Faults::default(),
                seed,
                seq: 0,
                api_rng: ChaCha8Rng::seed_from_u64(seed),
                token: None,
            }),
            counters: Counters::default(),
            fail_first: AtomicU64::new(0),
            client: deliver::client(),
            stop_tx,
            handle: tokio::runtime::Handle::current(),
            config,
        });
        graph.persist(&graph.lock());
        Ok(graph)
    }

    pub fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic elsewhere while holding the lock leaves the state as it was: keep serving.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stop(&self) {
        self.stop_tx.send_replace(true);
    }

    pub fn identity(&self) -> Identity {
        Identity {
            tenant_id: self.config.tenant_id.clone(),
            app_id: self.config.app_id.clone(),
            user_id: self.config.user_id.clone(),
            jwks_url: format!("{}common/discovery/v2.0/keys", self.base_url),
        }
    }

    fn me(&self) -> &str {
        &self.config.user_id
    }

    fn is_me(&self, user: &str) -> bool {
        user.eq_ignore_ascii_case(&self.config.user_id) || user.eq_ignore_ascii_case("me")
    }

    fn persist(&self, store: &Store) {
        if let Some(path) = &self.config.state_path {
            if let Err(e) = state::save(path, &store.state) {
                eprintln!("graph-sim: {e}");
            }
        }
    }

    /// Runs a change under the lock, saves the state, and sends what it notifies.
    fn mutate<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store, &mut Vec<Event>) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let mut events = Vec::new();
        let outgoing;
        let result;
        {
            let mut store = self.lock();
            result = f(&mut store, &mut events)?;
            self.persist(&store);
            outgoing = self.fan_out(&mut store, &events);
        }
        for o in outgoing {
            deliver::dispatch(self.clone(), o);
        }
        Ok(result)
    }

    /// Answers 429 when the `throttle` fault says so.
    pub fn throttled(&self) -> bool {
        let mut store = self.lock();
        let p = store.faults.throttle;
        p > 0.0 && store.api_rng.gen::<f64>() < p
    }

    // ---- fan-out ----------------------------------------------------------------------------

    fn fan_out(&self, store: &mut Store, events: &[Event]) -> Vec<Outgoing> {
        let now = now_ms();
        let mut out = Vec::new();
        for event in events {
            let mut targets: Vec<(Sub, Value, Option<Value>)> = Vec::new();
            match event {
                Event::Message { chat, id, change } => {
                    let Some(c) = store.state.chats.iter().find(|c| &c.id == chat) else {
                        continue;
                    };
                    let Some(m) = c.message(id) else { continue };
                    for (sub, p) in live(&store.state.subscriptions, now) {
                        if !sub.change_types.iter().any(|t| t == change)
                            || !self.message_matches(&p, c, m)
                        {
                            continue;
                        }
                        let path = format!("chats('{}')/messages('{}')", c.id, m.id());
                        let item =
                            self.item(sub, change, &path, m.id(), "#Microsoft.Graph.chatMessage");
                        targets.push((sub.clone(), item, Some(m.json.clone())));
                    }
                }
                Event::Chat { chat, change } => {
                    for (sub, p) in live(&store.state.subscriptions, now) {
                        if !sub.change_types.iter().any(|t| t == change)
                            || !self.chat_matches(&p, chat)
                        {
                            continue;
                        }
                        let path = format!("chats('{}')", chat.id);
                        let item = self.item(sub, change, &path, &chat.id, "#Microsoft.Graph.chat");
                        targets.push((
                            sub.clone(),
                            item,
                            Some(chat.to_json(&self.config.tenant_id, None)),
                        ));
                    }
                }
                Event::Viewpoint { chat, user } => {
                    let Some(c) = store.state.chats.iter().find(|c| &c.id == chat) else {
                        continue;
                    };
                    for (sub, p) in live(&store.state.subscriptions, now) {
                        let mine = self.is_me(user);
                        let matches = p.user_specific
                            && match &p.target {
                                Target::Chat(id) => id == chat && mine,
                                Target::UserChats(u) => {
                                    u.eq_ignore_ascii_case(user) || (self.is_me(u) && mine)
                                }
                                Target::MyChats => mine,
                                _ => false,
                            };
                        if !matches || !sub.change_types.iter().any(|t| t == "updated") {
                            continue;
                        }
                        let path = format!("chats('{}')", c.id);
                        let item = self.item(sub, "updated", &path, &c.id, "#Microsoft.Graph.chat");
                        let data = json!({
                            "@odata.type": "#microsoft.graph.chat",
                            "id": c.id,
                            "viewpoint": c.viewpoint_json(user),
                        });
                        targets.push((sub.clone(), item, Some(data)));
                    }
                }
                Event::Lifecycle { sub, event } => {
                    let Some(url) = &sub.lifecycle_url else {
                        continue;
                    };
                    let item = json!({
                        "subscriptionId": sub.id,
                        "subscriptionExpirationDateTime": fmt_ms7(sub.expires_ms),
                        "tenantId": self.config.tenant_id,
                        "clientState": sub.client_state,
                        "lifecycleEvent": event,
                    });
                    let body = json!({ "value": [item] });
                    store.seq += 1;
                    out.push(Outgoing {
                        sub_id: None,
                        url: url.clone(),
                        body: serde_json::to_vec(&body).unwrap_or_default(),
                        seq: store.seq,
                        seed: store.seed,
                        faults: store.faults.clone(),
                    });
                    continue;
                }
            }
            for (sub, mut item, data) in targets {
                let mut body = Map::new();
                if sub.include_resource_data {
                    let (Some(cert), Some(cert_id)) =
                        (store.certs.get(&sub.id), sub.certificate_id.as_deref())
                    else {
                        continue;
                    };
                    let plaintext =
                        serde_json::to_vec(&data.unwrap_or(Value::Null)).unwrap_or_default();
                    item["encryptedContent"] =
                        self.crypto
                            .encrypt(Recipient::Certificate(cert), cert_id, &plaintext);
                    body.insert("value".into(), json!([item]));
                    body.insert("validationTokens".into(), json!([self.token(store)]));
                } else {
                    body.insert("value".into(), json!([item]));
                }
                store.seq += 1;
                out.push(Outgoing {
                    sub_id: Some(sub.id.clone()),
                    url: sub.notification_url.clone(),
                    body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
                    seq: store.seq,
                    seed: store.seed,
                    faults: store.faults.clone(),
                });
            }
        }
        out
    }

    /// A validation token for the batch: minted again only when the one in hand is more than
    /// ten minutes old (Graph's are valid for an hour; a receiver verifies each once).
    fn token(&self, store: &mut Store) -> String {
        let now = SystemTime::now();
        match &store.token {
            Some((token, minted))
                if now.duration_since(*minted).unwrap_or_default() < TOKEN_REUSE =>
            {
                token.clone()
            }
            _ => {
                let token = self.crypto.token(now);
                store.token = Some((token.clone(), now));
                token
            }
        }
    }

    fn item(&self, sub: &Sub, change: &str, path: &str, id: &str, odata_type: &str) -> Value {
        let mut item = json!({
            "subscriptionId": sub.id,
            "changeType": change,
            "subscriptionExpirationDateTime": fmt_ms7(sub.expires_ms),
            "resource": path,
            "resourceData": {"id": id, "@odata.type": odata_type, "@odata.id": path},
            "tenantId": self.config.tenant_id,
        });
        if let Some(cs) = &sub.client_state {
            item["clientState"] = cs.clone().into();
        }
        item
    }

    fn user_sees(&self, user: &str, chat: &Chat) -> bool {
        self.is_me(user) || chat.has_member(user)
    }

    fn message_matches(&self, p: &Parsed, chat: &Chat, m: &Message) -> bool {
        let scope = match &p.target {
            Target::ChatMessages(id) => id == &chat.id,
            Target::AllChatMessages | Target::MyChatMessages => true,
            Target::UserChatMessages(u) => self.user_sees(u, chat),
            _ => false,
        };
        if !scope {
            return false;
        }
        if let Some(keyword) = &p.search {
            let content = m
                .json
                .pointer("/body/content")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !content.to_lowercase().contains(&keyword.to_lowercase()) {
                return false;
            }
        }
        if let Some(user) = &p.mentions {
            let mentioned = m
                .json
                .get("mentions")
                .and_then(Value::as_array)
                .is_some_and(|ms| {
                    ms.iter().any(|x| {
                        x.pointer("/mentioned/user/id")
                            .and_then(Value::as_str)
                            .is_some_and(|id| id.eq_ignore_ascii_case(user))
                    })
                });
            if !mentioned {
                return false;
            }
        }
        true
    }

    fn chat_matches(&self, p: &Parsed, chat: &Chat) -> bool {
        match &p.target {
            Target::AllChats | Target::MyChats => true,
            Target::Chat(id) => id == &chat.id,
            Target::UserChats(u) => self.user_sees(u, chat),
            _ => false,
        }
    }

    // ---- subscriptions ----------------------------------------------------------------------

    pub async fn create_subscription(
        self: &Arc<Self>,
        version: &str,
        body: &[u8],
    ) -> ApiResult<Value> {
        let now = now_ms();
        let mut sub = parse_create(body, now, version)?;
        let parsed = parse_resource(&sub.resource, version)?;
        self.check_quota(&self.lock(), &parsed)?;
        deliver::handshake(self, &sub.notification_url).await?;
        if let Some(url) = sub.lifecycle_url.clone() {
            deliver::handshake(self, &url).await?;
        }
        sub.id = guid();
        let cert = sub.certificate.as_deref().and_then(parse_certificate);
        self.mutate(|store, _| {
            self.check_quota(store, &parsed)?;
            if let Some(c) = cert {
                store.certs.insert(sub.id.clone(), c);
            }
            store.state.subscriptions.push(sub.clone());
            Ok(())
        })?;
        Ok(self.sub_json(&sub))
    }

    fn sub_json(&self, sub: &Sub) -> Value {
        sub.to_json(&self.config.app_id, self.me(), &self.base_url)
    }

    fn check_quota(&self, store: &Store, p: &Parsed) -> ApiResult<()> {
        let now = now_ms();
        let live: Vec<Target> = store
            .state
            .subscriptions
            .iter()
            .filter(|s| s.expires_ms > now)
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
        store
            .state
            .subscriptions
            .iter()
            .find(|s| s.id == id && s.expires_ms > now)
            .map(|s| self.sub_json(s))
            .ok_or_else(|| sub_not_found(id))
    }

    pub fn list_subscriptions(&self, version: &str) -> Value {
        let store = self.lock();
        let now = now_ms();
        let value: Vec<Value> = store
            .state
            .subscriptions
            .iter()
            .filter(|s| s.expires_ms > now)
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
            let sub = store
                .state
                .subscriptions
                .iter_mut()
                .find(|s| s.id == id && s.expires_ms > now)
                .ok_or_else(|| sub_not_found(id))?;
            check_lifetime(expires - now, sub.lifecycle_url.is_some())?;
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
        Ok(self.sub_json(&sub))
    }

    pub fn reauthorize(&self, id: &str) -> ApiResult<()> {
        let store = self.lock();
        let now = now_ms();
        store
            .state
            .subscriptions
            .iter()
            .any(|s| s.id == id && s.expires_ms > now)
            .then_some(())
            .ok_or_else(|| sub_not_found(id))
    }

    pub fn delete_subscription(self: &Arc<Self>, id: &str) -> ApiResult<()> {
        self.mutate(|store, _| {
            let now = now_ms();
            let before = store.state.subscriptions.len();
            store
                .state
                .subscriptions
                .retain(|s| !(s.id == id && s.expires_ms > now));
            if store.state.subscriptions.len() == before {
                return Err(sub_not_found(id));
            }
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
                .position(|s| s.id == id && s.expires_ms > now)
                .ok_or_else(|| sub_not_found(id))?;
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
    fn tick(self: &Arc<Self>) {
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
            store.state.subscriptions.retain(|s| s.expires_ms > now);
            for id in &gone {
                store.certs.remove(id);
            }
            let mut changed = store.state.subscriptions.len() != before;
            for sub in store.state.subscriptions.iter_mut() {
                let lifetime = sub.expires_ms - sub.renewed_ms;
                let threshold = (lifetime / 4).min(REAUTH_AT_MOST_MS);
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
            deliver::dispatch(self.clone(), o);
        }
    }

    // ---- chats ------------------------------------------------------------------------------

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
            (
                self.me().to_string(),
                self.config.user_display_name.clone(),
                None,
            )
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

    fn chat_ref<'a>(store: &'a Store, id: &str) -> ApiResult<&'a Chat> {
        store
            .state
            .chats
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| chat_not_found(id))
    }

    fn chat_mut<'a>(store: &'a mut Store, id: &str) -> ApiResult<&'a mut Chat> {
        store
            .state
            .chats
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| chat_not_found(id))
    }

    /// Resolves the user of `/users/{user}/...` (or `me`).
    fn viewer(&self, store: &Store, user: &str) -> ApiResult<String> {
        if self.is_me(user) {
            return Ok(self.me().to_string());
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

    pub fn get_chat(
        &self,
        chat: &str,
        user: Option<&str>,
        pairs: &[(String, String)],
    ) -> ApiResult<Value> {
        let store = self.lock();
        let viewer = match user {
            Some(u) => self.viewer(&store, u)?,
            None => self.me().to_string(),
        };
        let c = Self::chat_ref(&store, chat)?;
        if !self.user_sees(&viewer, c) {
            return Err(chat_not_found(chat));
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
                .ok_or_else(|| chat_not_found(chat))?;
            let c = store.state.chats.remove(at);
            events.push(Event::Chat {
                chat: Box::new(c),
                change: "deleted",
            });
            Ok(())
        })
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
        let user = if self.is_me(&user) {
            self.me().to_string()
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

    // ---- messages ---------------------------------------------------------------------------

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
            id: self.me().to_string(),
            display_name: self.config.user_display_name.clone(),
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
        let m = c.message(id).ok_or_else(|| message_not_found(id))?;
        let mut v = m.json.clone();
        v["@odata.context"] = format!(
            "{}v1.0/$metadata#chats('{}')/messages/$entity",
            self.base_url, c.id
        )
        .into();
        Ok(v)
    }

    pub fn list_messages(
        &self,
        scope: Scope,
        pairs: &[(String, String)],
        self_url: &str,
    ) -> ApiResult<Value> {
        let top = top(pairs)?;
        let store = self.lock();
        let msgs: Vec<&Message> = match &scope {
            Scope::Chat(c) => Self::chat_ref(&store, c)?.messages.iter().collect(),
            Scope::UserChat(u, c) => {
                let viewer = self.viewer(&store, u)?;
                let chat = Self::chat_ref(&store, c)?;
                if !self.user_sees(&viewer, chat) {
                    return Err(chat_not_found(c));
                }
                chat.messages.iter().collect()
            }
            Scope::UserAll(u) => {
                let viewer = self.viewer(&store, u)?;
                store
                    .state
                    .chats
                    .iter()
                    .filter(|c| self.user_sees(&viewer, c))
                    .flat_map(|c| c.messages.iter())
                    .collect()
            }
        };
        let items = order_and_filter(msgs, pairs)?;
        drop(store);
        page(items, pairs, top, self_url, "messages", &self.base_url)
    }

    pub fn delta(
        &self,
        user: &str,
        pairs: &[(String, String)],
        self_url: &str,
    ) -> ApiResult<Value> {
        let top = top(pairs)?;
        let since = match param(pairs, "$deltatoken") {
            None => None,
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| ApiError::bad("$deltatoken is not one this Graph issued"))?,
            ),
        };
        let store = self.lock();
        let viewer = self.viewer(&store, user)?;
        let mut msgs: Vec<&Message> = store
            .state
            .chats
            .iter()
            .filter(|c| self.user_sees(&viewer, c))
            .flat_map(|c| c.messages.iter())
            .filter(|m| since.is_none_or(|s| m.modified_ms > s))
            .collect();
        msgs.sort_by_key(|m| (m.modified_ms, m.created_ms));
        let watermark = msgs.last().map(|m| m.modified_ms).or(since).unwrap_or(0);
        let items: Vec<Value> = msgs.into_iter().map(|m| m.json.clone()).collect();
        drop(store);
        let mut v = page(items, pairs, top, self_url, "messages", &self.base_url)?;
        if v.get("@odata.nextLink").is_none() {
            let path = self_url.split('?').next().unwrap_or(self_url);
            v["@odata.deltaLink"] = format!("{path}?$deltatoken={watermark}").into();
        }
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
        let me = self.me().to_string();
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
            let m = c.message_mut(id).ok_or_else(|| message_not_found(id))?;
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
            let m = c.message(id).ok_or_else(|| message_not_found(id))?;
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
        let me = self.me().to_string();
        self.mutate(|store, events| {
            let c = Self::chat_mut(store, chat)?;
            let m = c.message_mut(id).ok_or_else(|| message_not_found(id))?;
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
        let me = self.me().to_string();
        let tenant = self.config.tenant_id.clone();
        self.mutate(|store, events| {
            let c = Self::chat_mut(store, chat)?;
            let m = c.message_mut(id).ok_or_else(|| message_not_found(id))?;
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
        let m = c.message(id).ok_or_else(|| message_not_found(id))?;
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

    // ---- truth and controls ------------------------------------------------------------------

    pub fn truth(&self, chat: &str) -> ApiResult<Vec<Value>> {
        let store = self.lock();
        let c = Self::chat_ref(&store, chat)?;
        Ok(c.messages.iter().map(|m| m.json.clone()).collect())
    }

    pub fn chat_ids(&self) -> Vec<String> {
        self.lock()
            .state
            .chats
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }

    pub fn subscription_ids(&self) -> Vec<String> {
        let now = now_ms();
        self.lock()
            .state
            .subscriptions
            .iter()
            .filter(|s| s.expires_ms > now)
            .map(|s| s.id.clone())
            .collect()
    }

    pub fn deliveries(&self) -> Deliveries {
        self.counters.snapshot()
    }

    pub fn set_faults(&self, faults: Faults) -> ApiResult<()> {
        for (name, p) in [
            ("drop", faults.drop),
            ("duplicate", faults.duplicate),
            ("reorder", faults.reorder),
            ("throttle", faults.throttle),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ApiError::bad(format!(
                    "{name} is a probability, 0 to 1; got {p}"
                )));
            }
        }
        if let Some([lo, hi]) = faults.delay_ms {
            if lo > hi || hi > 600_000 {
                return Err(ApiError::bad(
                    "delayMs is [min, max] with min <= max <= 600000",
                ));
            }
        }
        let mut store = self.lock();
        store.seed = faults.seed.unwrap_or(self.config.seed);
        store.seq = 0;
        store.api_rng = ChaCha8Rng::seed_from_u64(store.seed);
        store.api_rng.set_stream(u64::MAX);
        self.fail_first.store(faults.fail_first, Ordering::SeqCst);
        store.faults = faults;
        Ok(())
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn sub_alive(&self, id: &str) -> bool {
        let now = now_ms();
        self.lock()
            .state
            .subscriptions
            .iter()
            .any(|s| s.id == id && s.expires_ms > now)
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

pub(crate) fn spawn_ticker(graph: Arc<Graph>) -> tokio::task::JoinHandle<()> {
    let mut stop = graph.stop_tx.subscribe();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = every.tick() => graph.tick(),
                _ = stop.changed() => return,
            }
        }
    })
}

// ---- request reading ------------------------------------------------------------------------

fn json_object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("The request needs a JSON body"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad("The request body must be a JSON object")),
        Err(e) => Err(ApiError::bad(format!(
            "The request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

fn array_field(body: &Map<String, Value>, name: &str) -> ApiResult<Option<Vec<Value>>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.clone())),
        Some(_) => Err(ApiError::bad(format!("{name} must be an array"))),
    }
}

fn content_type(v: Option<&Value>) -> ApiResult<&'static str> {
    match v {
        None | Some(Value::Null) => Ok("text"),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("text") => Ok("text"),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("html") => Ok("html"),
        Some(other) => Err(ApiError::bad(format!("contentType {other}: text or html"))),
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

fn parse_certificate(b64: &str) -> Option<Certificate> {
    let der = B64.decode(b64.trim()).ok()?;
    Certificate::from_der(&der).ok()
}

fn bad_certificate() -> ApiError {
    ApiError::new(
        400,
        "ValidationError",
        "encryptionCertificate must be the base64 of an X.509 certificate's DER",
    )
}

fn check_id_len(name: &str, value: &str) -> ApiResult<()> {
    if value.is_empty() || value.chars().count() > 128 {
        return Err(ApiError::new(
            400,
            "ValidationError",
            format!("{name} must be 1 to 128 characters"),
        ));
    }
    Ok(())
}

fn check_lifetime(lifetime: i64, has_lifecycle: bool) -> ApiResult<()> {
    if lifetime <= 0 {
        return Err(ApiError::new(
            400,
            "ValidationError",
            "expirationDateTime must be in the future",
        ));
    }
    if lifetime > MAX_LIFETIME_MS {
        return Err(ApiError::new(
            400,
            "ValidationError",
            "Subscription expiration can only be 0-4320 minutes in the future for chat and chatMessage resources",
        ));
    }
    if lifetime > LIFECYCLE_NEEDED_MS && !has_lifecycle {
        return Err(ApiError::new(400, "ValidationError", LIFECYCLE_REQUIRED));
    }
    Ok(())
}

fn check_delivery_url(name: &str, url: &str) -> ApiResult<()> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ if url.starts_with("EventHub:") || url.starts_with("EventGrid:") => Err(ApiError::new(
            400,
            "ValidationError",
            format!("{name}: graph-sim delivers only to http:// and https:// URLs, not Event Hubs or Event Grid"),
        )),
        _ => Err(ApiError::new(
            400,
            "ValidationError",
            format!("{name} must be an absolute http:// or https:// URL"),
        )),
    }
}

/// The body rules and lifetimes of a subscription request (400s), in that order.
fn parse_create(body: &[u8], now: i64, version: &str) -> ApiResult<Sub> {
    let body = json_object(body)?;
    const KNOWN: &[&str] = &[
        "changeType",
        "notificationUrl",
        "lifecycleNotificationUrl",
        "resource",
        "expirationDateTime",
        "clientState",
        "includeResourceData",
        "encryptionCertificate",
        "encryptionCertificateId",
        "latestSupportedTlsVersion",
        "notificationQueryOptions",
        "notificationUrlAppId",
        "@odata.type",
    ];
    if let Some(k) = body.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad(format!(
            "Property '{k}' does not exist on type 'microsoft.graph.subscription'"
        )));
    }
    let string = |name: &str| -> ApiResult<Option<String>> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad(format!("{name} must be a string"))),
        }
    };
    let required = |name: &str| -> ApiResult<String> {
        string(name)?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::new(400, "ValidationError", format!("{name} is required")))
    };
    let change = required("changeType")?;
    let mut change_types: Vec<String> = Vec::new();
    for t in change.split(',').map(str::trim) {
        let t = t.to_ascii_lowercase();
        if !["created", "updated", "deleted"].contains(&t.as_str()) {
            return Err(ApiError::new(
                400,
                "ValidationError",
                format!("changeType '{t}' is not one of created, updated, deleted"),
            ));
        }
        if !change_types.contains(&t) {
            change_types.push(t);
        }
    }
    let notification_url = required("notificationUrl")?;
    check_delivery_url("notificationUrl", &notification_url)?;
    let lifecycle_url = string("lifecycleNotificationUrl")?;
    if let Some(u) = &lifecycle_url {
        check_delivery_url("lifecycleNotificationUrl", u)?;
    }
    let resource = required("resource")?;
    let expires_text = required("expirationDateTime")?;
    let expires = parse_ms(&expires_text).ok_or_else(|| {
        ApiError::new(
            400,
            "ValidationError",
            format!("expirationDateTime '{expires_text}' is not an ISO 8601 time"),
        )
    })?;
    check_lifetime(expires - now, lifecycle_url.is_some())?;
    let include = match body.get("includeResourceData") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad("includeResourceData must be true or false")),
    };
    let certificate = string("encryptionCertificate")?;
    let certificate_id = string("encryptionCertificateId")?;
    if include {
        let (Some(c), Some(i)) = (&certificate, &certificate_id) else {
            return Err(ApiError::new(
                400,
                "ValidationError",
                "encryptionCertificate and encryptionCertificateId are required when includeResourceData is true",
            ));
        };
        check_id_len("encryptionCertificateId", i)?;
        parse_certificate(c).ok_or_else(bad_certificate)?;
    }
    let client_state = string("clientState")?;
    if let Some(cs) = &client_state {
        if cs.chars().count() > 128 {
            return Err(ApiError::new(
                400,
                "ValidationError",
                "clientState is at most 128 characters",
            ));
        }
    }
    let tls = string("latestSupportedTlsVersion")?.unwrap_or_else(|| "v1_2".into());
    if !["v1_0", "v1_1", "v1_2", "v1_3"].contains(&tls.as_str()) {
        return Err(ApiError::new(
            400,
            "ValidationError",
            "latestSupportedTlsVersion is v1_0, v1_1, v1_2 or v1_3",
        ));
    }
    Ok(Sub {
        id: String::new(),
        resource,
        version: version.to_string(),
        change_types,
        notification_url,
        lifecycle_url,
        expires_ms: expires,
        renewed_ms: now,
        client_state,
        include_resource_data: include,
        certificate: if include { certificate } else { None },
        certificate_id: if include { certificate_id } else { None },
        tls,
        reauth_sent: false,
    })
}

/// Reads a subscription resource and checks it against the support matrix (400s).
pub(crate) fn parse_resource(resource: &str, version: &str) -> ApiResult<Parsed> {
    let unsupported = |why: String| ApiError::new(400, "ValidationError", why);
    let (path, query) = match resource.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (resource, None),
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // (target, beta only, models, $search, mentions $filter, user-specific, user-specific on beta only)
    let (target, beta_only, models, search_ok, mentions_ok, user_ok, user_beta): (Target, bool, &[&str], bool, bool, bool, bool) =
        match segs.as_slice() {
            ["chats"] => (Target::AllChats, false, &[], false, false, false, false),
            ["chats", "getAllMessages"] => (Target::AllChatMessages, false, &["A", "B"], false, false, false, false),
            ["chats", c] => (Target::Chat(c.to_string()), false, &[], false, false, true, true),
            ["chats", c, "messages"] => (Target::ChatMessages(c.to_string()), false, &[], true, true, false, false),
            ["users", u, "chats"] => (Target::UserChats(u.to_string()), true, &["B"], false, false, true, false),
            ["me", "chats"] => (Target::MyChats, true, &["B"], false, false, true, false),
            ["users", u, "chats", "getAllMessages"] => (Target::UserChatMessages(u.to_string()), false, &["B"], true, false, false, false),
            ["me", "chats", "getAllMessages"] => (Target::MyChatMessages, false, &["B"], true, false, false, false),
            ["teams", "getAllMessages"] => (Target::Elsewhere, false, &["A", "B"], false, false, false, false),
            ["teams", _, "channels", _, "messages"] => (Target::Elsewhere, false, &[], true, true, false, false),
            ["appCatalogs", "teamsApps", _, "installedToChats"] => (Target::Elsewhere, false, &["B"], false, false, false, false),
            ["appCatalogs", "teamsApps", _, "installedToChats", "getAllMessages"] => (Target::Elsewhere, false, &["B"], false, false, false, false),
            _ => {
                return Err(unsupported(format!(
                    "Resource '{path}' is not supported for change notifications here: /chats, /chats/{{id}}, /chats/{{id}}/messages, /chats/getAllMessages, /users/{{id}}/chats, /me/chats, /users/{{id}}/chats/getAllMessages, /teams/..., /appCatalogs/teamsApps/{{id}}/installedToChats[/getAllMessages]"
                )))
            }
        };
    if segs.iter().any(|s| s.is_empty()) {
        return Err(unsupported(format!(
            "Resource '{path}' has an empty segment"
        )));
    }
    if beta_only && version != "beta" {
        return Err(unsupported(format!(
            "Resource '{path}' is available on beta only"
        )));
    }
    let mut parsed = Parsed {
        target,
        search: None,
        mentions: None,
        user_specific: false,
    };
    for option in query.unwrap_or("").split('&').filter(|o| !o.is_empty()) {
        let (k, v) = option.split_once('=').unwrap_or((option, ""));
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "$search" if search_ok && !v.trim().is_empty() => {
                parsed.search = Some(v.trim_matches('"').to_string())
            }
            "$filter" if mentions_ok => {
                let user = v
                    .strip_prefix("mentions/any(u: u/mentioned/user/id eq '")
                    .and_then(|r| r.strip_suffix("')"))
                    .filter(|u| is_guid(u))
                    .ok_or_else(|| unsupported(format!(
                        "$filter '{v}' is not supported: mentions/any(u: u/mentioned/user/id eq '{{userId}}')"
                    )))?;
                parsed.mentions = Some(user.to_string());
            }
            "model" if models.contains(&v.as_str()) => {}
            "notifyOnUserSpecificProperties" if user_ok => {
                if user_beta && version != "beta" {
                    return Err(unsupported(format!(
                        "notifyOnUserSpecificProperties on '{path}' is available on beta only"
                    )));
                }
                parsed.user_specific = v.eq_ignore_ascii_case("true");
            }
            other => {
                return Err(unsupported(format!(
                    "Query option '{other}' is not supported on resource '{path}'"
                )))
            }
        }
    }
    Ok(parsed)
}

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn top(pairs: &[(String, String)]) -> ApiResult<usize> {
    match param(pairs, "$top") {
        None => Ok(MAX_TOP),
        Some(t) => match t.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(format!(
                "Invalid page size requested: $top is 1 to {MAX_TOP}; got '{t}'"
            ))),
        },
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Key {
    Modified,
    Created,
}

fn order_and_filter(mut msgs: Vec<&Message>, pairs: &[(String, String)]) -> ApiResult<Vec<Value>> {
    let order = param(pairs, "$orderby").map(normalize);
    let key = match order.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("lastmodifieddatetime desc") => Key::Modified,
        Some("createddatetime desc") => Key::Created,
        Some(_) => {
            return Err(ApiError::bad(format!(
                "$orderby '{}' is not supported: lastModifiedDateTime desc or createdDateTime desc",
                order.unwrap_or_default()
            )))
        }
    };
    let mut bounds: Vec<(Key, &'static str, i64)> = Vec::new();
    if let Some(filter) = param(pairs, "$filter") {
        for clause in split_and(filter) {
            let parts: Vec<&str> = clause.split_whitespace().collect();
            let [prop, op, value] = parts.as_slice() else {
                return Err(ApiError::bad(format!(
                    "$filter clause '{clause}' is not 'property op time'"
                )));
            };
            let k = match prop.to_ascii_lowercase().as_str() {
                "lastmodifieddatetime" => Key::Modified,
                "createddatetime" => Key::Created,
                _ => {
                    return Err(ApiError::bad(format!(
                    "$filter on '{prop}' is not supported: lastModifiedDateTime or createdDateTime"
                )))
                }
            };
            let op: &'static str = match op.to_ascii_lowercase().as_str() {
                "gt" => "gt",
                "lt" => "lt",
                _ => {
                    return Err(ApiError::bad(format!(
                        "$filter operator '{op}' is not supported: gt or lt"
                    )))
                }
            };
            let t = parse_ms(value.trim_matches('\''))
                .ok_or_else(|| ApiError::bad(format!("$filter time '{value}' is not valid")))?;
            if k == key {
                if k == Key::Created && op == "gt" {
                    return Err(ApiError::bad(
                        "createdDateTime supports only the lt operator in $filter",
                    ));
                }
                bounds.push((k, op, t));
            }
        }
    }
    let value = |m: &Message, k: Key| {
        if k == Key::Modified {
            m.modified_ms
        } else {
            m.created_ms
        }
    };
    msgs.retain(|m| {
        bounds.iter().all(|(k, op, t)| match *op {
            "gt" => value(m, *k) > *t,
            _ => value(m, *k) < *t,
        })
    });
    msgs.sort_by_key(|m| std::cmp::Reverse((value(m, key), m.created_ms)));
    Ok(msgs.into_iter().map(|m| m.json.clone()).collect())
}

fn split_and(filter: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for w in filter.split_whitespace() {
        if w.eq_ignore_ascii_case("and") {
            out.push(current.join(" "));
            current.clear();
        } else {
            current.push(w);
        }
    }
    out.push(current.join(" "));
    out
}

/// One page of `items`, with `@odata.nextLink` on the simulator's base URL when more follow.
fn page(
    items: Vec<Value>,
    pairs: &[(String, String)],
    top: usize,
    self_url: &str,
    what: &str,
    base: &str,
) -> ApiResult<Value> {
    let skip = match param(pairs, "$skiptoken") {
        None => 0,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| ApiError::bad("$skiptoken is not one this Graph issued"))?,
    };
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(top).collect();
    let mut v = json!({
        "@odata.context": format!("{base}v1.0/$metadata#{what}"),
        "@odata.count": value.len(),
        "value": value,
    });
    if skip + top < total {
        let path = self_url.split('?').next().unwrap_or(self_url);
        // Keys as Graph writes them (`$top`, `$skiptoken`), values form-encoded.
        let mut q: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| !k.trim_start_matches('$').eq_ignore_ascii_case("skiptoken"))
            .map(|(k, val)| {
                format!(
                    "{k}={}",
                    form_urlencoded::byte_serialize(val.as_bytes()).collect::<String>()
                )
            })
            .collect();
        q.push(format!("$skiptoken={}", skip + top));
        v["@odata.nextLink"] = format!("{path}?{}", q.join("&")).into();
    }
    Ok(v)
}

fn sub_not_found(id: &str) -> ApiError {
    ApiError::new(
        404,
        "ResourceNotFound",
        format!("The object was not found: subscription '{id}'"),
    )
}

fn chat_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Chat '{id}' was not found"))
}

fn message_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Message '{id}' was not found in the chat"))
}
