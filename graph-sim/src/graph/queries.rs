//! List reads: `$top`, `$orderby`, `$filter` and paging with `@odata.nextLink`, as Graph accepts
//! them; the message listings and delta.

use serde_json::{json, Value};

use super::store::Graph;
use crate::state::Message;
use crate::util::{param, parse_ms, ApiError, ApiResult};

/// Pages hold at most this many items (Graph's `$top` limit for chat messages).
const MAX_TOP: usize = 50;

/// Where list reads come from.
pub(crate) enum Scope {
    Chat(String),
    UserChat(String, String),
    UserAll(String),
}

impl Graph {
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
                    return Err(ApiError::chat_not_found(c));
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
}

pub(super) fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn top(pairs: &[(String, String)]) -> ApiResult<usize> {
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
pub(super) fn page(
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
