//! Fan-out: each change becomes a notification for every live subscription that matches it,
//! with resource data encrypted for the subscription's certificate and a validation token.

use std::time::{Duration, SystemTime};

use graph_chat_notifications::testing::Recipient;
use serde_json::{json, Map, Value};

use super::rules::{parse_resource, Parsed, Target};
use super::store::{Event, Graph, Store};
use crate::deliver::Outgoing;
use crate::state::{Chat, Message, Sub};
use crate::util::{fmt_ms7, now_ms};

/// How long one validation token is reused for.
const TOKEN_REUSE: Duration = Duration::from_secs(600);

/// The subscriptions that have not expired, each with its resource read.
fn live(subs: &[Sub], now: i64) -> impl Iterator<Item = (&Sub, Parsed)> {
    subs.iter()
        .filter(move |s| s.is_live(now))
        .filter_map(|s| parse_resource(&s.resource, &s.version).ok().map(|p| (s, p)))
}

impl Graph {
    pub(super) fn fan_out(&self, store: &mut Store, events: &[Event]) -> Vec<Outgoing> {
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
                            || !self.message_matches(&p, c, m, self.owner(sub))
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
                            || !self.chat_matches(&p, chat, self.owner(sub))
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
                        let mine = self.names_user(user, self.owner(sub));
                        let matches = p.user_specific
                            && match &p.target {
                                Target::Chat(id) => id == chat && mine,
                                Target::UserChats(u) => self.names_user(u, user),
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

    /// The user a subscription was created for: its creator, or the configuration's user.
    fn owner<'a>(&'a self, sub: &'a Sub) -> &'a str {
        sub.creator.as_deref().unwrap_or(&self.config.user_id)
    }

    fn message_matches(&self, p: &Parsed, chat: &Chat, m: &Message, owner: &str) -> bool {
        let scope = match &p.target {
            Target::ChatMessages(id) => id == &chat.id,
            Target::AllChatMessages => true,
            Target::MyChatMessages => self.user_sees(owner, chat),
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

    fn chat_matches(&self, p: &Parsed, chat: &Chat, owner: &str) -> bool {
        match &p.target {
            Target::AllChats => true,
            Target::MyChats => self.user_sees(owner, chat),
            Target::Chat(id) => id == &chat.id,
            Target::UserChats(u) => self.user_sees(u, chat),
            _ => false,
        }
    }
}
