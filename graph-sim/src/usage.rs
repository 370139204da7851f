//! What the simulator serves of Graph's API, counted (`GET /_sim/usage`): every call by method,
//! route template, concrete resource and user, and every resource read over and over without a
//! change in between (polling).
//!
//! The rules:
//! - Counted: every request under `/v1.0/` and `/beta/`, whatever its answer (401, 404 and 429
//!   included); never `/_sim/`, the JWKS or the identity platform's paths.
//! - `route` is the path with each id replaced by `{id}` (a segment after `subscriptions`,
//!   `chats`, `messages`, `users`, `members` or `hostedContents`, unless it is one of Graph's
//!   function names such as `getAllMessages` or `delta`); `resource` is the path as sent, without
//!   its query; `user` is the `oid` of the bearer token when it is a JWT carrying one (its payload
//!   is read, not verified), else `null`.
//! - Polling: a GET of one resource by one user more than the poll limit times within the poll
//!   window, with no change to that resource in between. A page followed through
//!   `@odata.nextLink` (`$skiptoken` in the query) is part of the read that began it and does not
//!   count again. A change is any write that alters what the GET returns:
//!   - a chat's messages (`.../chats/{id}/messages`): a message of that chat created, edited,
//!     deleted or undeleted, reacted to, or given a DLP verdict;
//!   - one message (`.../messages/{id}` and its hosted contents): a write to that message;
//!   - a chat (`.../chats/{id}`) and its members: a change to the chat or its members, or to a
//!     viewpoint on it; with `$expand=lastMessagePreview`, also a message change in that chat;
//!   - a list of chats: any chat, member or viewpoint change; with `lastMessagePreview`
//!     expanded, also any message change;
//!   - `getAllMessages` and its `delta`: any message change;
//!   - a subscription: its creation, renewal, deletion, expiry or removal; the list of
//!     subscriptions: any of those on any subscription;
//!   - any other path (one that answers 404): nothing, ever.
//!
//!   An entry in `polled` stays until reset, with the most GETs seen in one window.
//! - Memory is bounded: at most [`MAX_KEYS`] distinct calls, [`MAX_KEYS`] distinct GETs followed
//!   for polling and [`MAX_CHANGED`] changed resources are held; calls to keys past the cap are
//!   not counted (keys already held still are), and past [`MAX_CHANGED`] the record of changes
//!   starts over as if everything had just changed. A GET run holds at most
//!   `max(poll limit + 1, 256)` times (the poll limit is capped at [`MAX_POLL_LIMIT`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;

use crate::util::fmt_ms;

/// The most distinct call keys (and, apart, the most GET keys followed for polling) held.
pub(crate) const MAX_KEYS: usize = 10_000;
/// The most changed resources remembered before the record of changes starts over.
pub(crate) const MAX_CHANGED: usize = 100_000;
/// The highest `--poll-limit`: it sizes what each GET run holds.
pub const MAX_POLL_LIMIT: u32 = 1_000;
/// What a GET run holds at least, so `count` says how far past the limit a poller went.
const MIN_RUN: usize = 256;
/// The longest bearer token whose payload is read for its `oid`.
const MAX_TOKEN: usize = 16 * 1024;

/// One counted call shape: `GET /_sim/usage`'s `calls` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallCount {
    /// The HTTP method.
    pub method: String,
    /// The path template, e.g. `/v1.0/chats/{id}/messages`.
    pub route: String,
    /// The path as sent, without its query.
    pub resource: String,
    /// The bearer token's `oid`, if it was a JWT carrying one.
    pub user: Option<String>,
    /// How many times.
    pub count: u64,
    /// The first time (UTC, `Z`).
    pub first: String,
    /// The last time (UTC, `Z`).
    pub last: String,
}

/// A resource read over and over without a change: `GET /_sim/usage`'s `polled` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolledResource {
    /// The path template.
    pub route: String,
    /// The path as sent, without its query.
    pub resource: String,
    /// The bearer token's `oid`, if it was a JWT carrying one.
    pub user: Option<String>,
    /// The most GETs seen within one window without a change in between.
    pub count: u64,
    /// The poll window, in seconds.
    pub window_seconds: u64,
}

/// What the simulator served of Graph's API (`GET /_sim/usage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Every call, by method, route, resource and user, in the order first seen.
    pub calls: Vec<CallCount>,
    /// Every resource GET more than the poll limit times within the poll window without a
    /// change in between.
    pub polled: Vec<PolledResource>,
}

/// A write, named by what it changes.
pub(crate) enum Change<'a> {
    /// A message of a chat.
    Message { chat: &'a str, id: &'a str },
    /// A chat, its members, or a viewpoint on it.
    Chat(&'a str),
    /// A subscription.
    Subscription(&'a str),
}

/// One request, as counted.
pub(crate) struct Seen<'a> {
    pub method: &'a str,
    /// The path as sent, without its query.
    pub path: &'a str,
    /// The decoded segments after the version (`v1.0`/`beta`), the version being `version`.
    pub version: &'a str,
    pub rest: &'a [&'a str],
    pub query: &'a [(String, String)],
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    pub now_ms: i64,
}

type Key = (String, String, Option<String>);

struct Count {
    method: String,
    route: String,
    resource: String,
    user: Option<String>,
    count: u64,
    first: i64,
    last: i64,
    order: u64,
}

#[derive(Default)]
struct Run {
    /// The change mark of what the GET depends on, at its last GET.
    mark: u64,
    times: VecDeque<i64>,
}

/// The counters, behind the Graph's usage lock.
pub(crate) struct Counter {
    limit: u32,
    window_ms: i64,
    calls: HashMap<(String, Key), Count>,
    order: u64,
    runs: HashMap<Key, Run>,
    polled: HashMap<Key, u64>,
    /// Each changed resource (see [`deps`]) and the mark of its last change.
    changed: HashMap<String, u64>,
    /// Marks every change; `floor` is where the record of changes last started over.
    mark: u64,
    floor: u64,
}

impl Counter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.min(MAX_POLL_LIMIT),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            calls: HashMap::new(),
            order: 0,
            runs: HashMap::new(),
            polled: HashMap::new(),
            changed: HashMap::new(),
            mark: 0,
            floor: 0,
        }
    }

    /// Forgets every call and every poll (changes are kept: they are the Graph's history).
    pub fn reset(&mut self) {
        self.calls.clear();
        self.runs.clear();
        self.polled.clear();
        self.order = 0;
    }

    /// Records a write.
    pub fn changed(&mut self, change: Change<'_>) {
        if self.changed.len() + 3 > MAX_CHANGED {
            self.changed.clear();
            self.floor = self.mark + 1;
        }
        self.mark += 1;
        let mark = self.mark;
        let names = match change {
            Change::Message { chat, id } => {
                vec![
                    "M".to_string(),
                    format!("m:{chat}"),
                    format!("m:{chat}/{id}"),
                ]
            }
            Change::Chat(chat) => vec!["C".to_string(), format!("c:{chat}")],
            Change::Subscription(id) => vec!["S".to_string(), format!("s:{id}")],
        };
        for n in names {
            self.changed.insert(n, mark);
        }
    }

    /// Counts one request under `/v1.0/` or `/beta/`.
    pub fn seen(&mut self, s: &Seen<'_>) {
        let route = route(s.version, s.rest);
        let user = s.authorization.and_then(oid);
        let key: Key = (route, s.path.to_string(), user);
        let call_key = (s.method.to_string(), key.clone());
        if let Some(c) = self.calls.get_mut(&call_key) {
            c.count += 1;
            c.last = s.now_ms;
        } else if self.calls.len() < MAX_KEYS {
            self.order += 1;
            self.calls.insert(
                call_key,
                Count {
                    method: s.method.to_string(),
                    route: key.0.clone(),
                    resource: key.1.clone(),
                    user: key.2.clone(),
                    count: 1,
                    first: s.now_ms,
                    last: s.now_ms,
                    order: self.order,
                },
            );
        }
        let continued = s
            .query
            .iter()
            .any(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case("skiptoken"));
        if s.method != "GET" || continued {
            return;
        }
        let preview = s.query.iter().any(|(k, v)| {
            k.trim_start_matches('$').eq_ignore_ascii_case("expand")
                && v.to_ascii_lowercase().contains("lastmessagepreview")
        });
        let mark = deps(s.rest, preview)
            .iter()
            .filter_map(|d| self.changed.get(d).copied())
            .fold(self.floor, u64::max);
        if !self.runs.contains_key(&key) && self.runs.len() >= MAX_KEYS {
            return;
        }
        let cap = (self.limit as usize + 1).max(MIN_RUN);
        let run = self.runs.entry(key.clone()).or_default();
        if run.mark != mark {
            run.times.clear();
            run.mark = mark;
        }
        while run
            .times
            .front()
            .is_some_and(|t| s.now_ms.saturating_sub(*t) >= self.window_ms)
        {
            run.times.pop_front();
        }
        if run.times.len() >= cap {
            run.times.pop_front();
        }
        run.times.push_back(s.now_ms);
        let n = run.times.len() as u64;
        if n > u64::from(self.limit) {
            let most = self.polled.entry(key).or_insert(0);
            *most = (*most).max(n);
        }
    }

    /// What `GET /_sim/usage` answers.
    pub fn usage(&self) -> Usage {
        let mut calls: Vec<&Count> = self.calls.values().collect();
        calls.sort_by_key(|c| c.order);
        let mut polled: Vec<PolledResource> = self
            .polled
            .iter()
            .map(|((route, resource, user), count)| PolledResource {
                route: route.clone(),
                resource: resource.clone(),
                user: user.clone(),
                count: *count,
                window_seconds: u64::try_from(self.window_ms / 1000).unwrap_or(0),
            })
            .collect();
        polled.sort_by(|a, b| (&a.resource, &a.user).cmp(&(&b.resource, &b.user)));
        Usage {
            calls: calls
                .into_iter()
                .map(|c| CallCount {
                    method: c.method.clone(),
                    route: c.route.clone(),
                    resource: c.resource.clone(),
                    user: c.user.clone(),
                    count: c.count,
                    first: fmt_ms(c.first),
                    last: fmt_ms(c.last),
                })
                .collect(),
            polled,
        }
    }
}

/// The path template: `/{version}/` and each segment, ids as `{id}`.
fn route(version: &str, rest: &[&str]) -> String {
    const COLLECTIONS: [&str; 6] = [
        "subscriptions",
        "chats",
        "messages",
        "users",
        "members",
        "hostedContents",
    ];
    const FUNCTIONS: [&str; 3] = ["getAllMessages", "getAllRetainedMessages", "delta"];
    let mut out = format!("/{version}");
    let mut previous = "";
    for seg in rest {
        out.push('/');
        if COLLECTIONS.contains(&previous) && !FUNCTIONS.contains(seg) && !seg.is_empty() {
            out.push_str("{id}");
        } else {
            out.push_str(seg);
        }
        previous = seg;
    }
    out
}

/// The changed resources a GET of `rest` depends on (names as [`Counter::changed`] writes them).
fn deps(rest: &[&str], preview: bool) -> Vec<String> {
    let rest = match rest {
        ["me", tail @ ..] => tail,
        ["users", _, tail @ ..] => tail,
        other => other,
    };
    let mut d = match rest {
        ["subscriptions"] => vec!["S".to_string()],
        ["subscriptions", id, ..] => vec![format!("s:{id}")],
        ["chats"] => vec!["C".to_string()],
        ["chats", "getAllMessages", ..] => vec!["M".to_string()],
        ["chats", c] => vec![format!("c:{c}")],
        ["chats", c, "members", ..] => vec![format!("c:{c}")],
        ["chats", c, "messages"] => vec![format!("m:{c}")],
        ["chats", c, "messages", id, ..] => vec![format!("m:{c}/{id}")],
        _ => return Vec::new(),
    };
    if preview {
        match rest {
            ["chats"] => d.push("M".to_string()),
            ["chats", c] => d.push(format!("m:{c}")),
            _ => {}
        }
    }
    d
}

/// The `oid` claim of a bearer JWT, its payload read without verifying it.
fn oid(authorization: &str) -> Option<String> {
    let (scheme, token) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.len() > MAX_TOKEN {
        return None;
    }
    let payload = token.trim().split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("oid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_template_ids_and_keep_function_names() {
        let r = |rest: &[&str]| route("v1.0", rest);
        assert_eq!(
            r(&["chats", "19:a@thread.v2", "messages"]),
            "/v1.0/chats/{id}/messages"
        );
        assert_eq!(
            r(&["users", "u", "chats", "c", "messages"]),
            "/v1.0/users/{id}/chats/{id}/messages"
        );
        assert_eq!(r(&["subscriptions", "s"]), "/v1.0/subscriptions/{id}");
        assert_eq!(r(&["me", "chats"]), "/v1.0/me/chats");
        assert_eq!(
            r(&["users", "u", "chats", "getAllMessages", "delta"]),
            "/v1.0/users/{id}/chats/getAllMessages/delta"
        );
        assert_eq!(
            r(&[
                "chats",
                "c",
                "messages",
                "m",
                "hostedContents",
                "h",
                "$value"
            ]),
            "/v1.0/chats/{id}/messages/{id}/hostedContents/{id}/$value"
        );
    }

    #[test]
    fn oid_comes_from_a_jwt_payload_only() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"oid":"u-1","tid":"t"}"#);
        assert_eq!(
            oid(&format!("Bearer h.{payload}.s")).as_deref(),
            Some("u-1")
        );
        assert_eq!(oid("Bearer any-token"), None);
        assert_eq!(oid("Bearer a.!!!.c"), None);
        let no_oid = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        assert_eq!(oid(&format!("Bearer h.{no_oid}.s")), None);
        assert_eq!(oid(&format!("Basic h.{payload}.s")), None);
    }
}
