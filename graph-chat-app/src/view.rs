//! What the page shows, computed from what Graph sent: a message's item (its state, its content
//! sanitized), a chat's item (unread count and hidden, by Graph's rules).

use std::borrow::Cow;
use std::collections::HashSet;

use graph_chat_webhook::notifications::model::{chat_is_visible, parse_time, ChatViewpoint};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// Who is looking, and which Graph the messages' hosted-content links may point at.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The signed-in user's id.
    pub user_id: String,
    /// The Graph the app calls, without a trailing `/` (`https://graph.microsoft.com`, or a
    /// simulator's base URL): inline images on it are served through the app.
    pub graph_base: String,
}

fn str_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

fn time_at(value: &Value, key: &str) -> Option<OffsetDateTime> {
    value.get(key).and_then(Value::as_str).and_then(parse_time)
}

/// The sender: the user, else the application, as `{"id", "displayName"}`.
fn sender(message: &Value) -> Value {
    let from = message.get("from").unwrap_or(&Value::Null);
    for kind in ["user", "application"] {
        if let Some(identity) = from.get(kind).filter(|v| v.is_object()) {
            return json!({
                "id": identity.get("id").cloned().unwrap_or(Value::Null),
                "displayName": identity.get("displayName").cloned().unwrap_or(Value::Null),
            });
        }
    }
    Value::Null
}

fn sender_id(message: &Value) -> Option<&str> {
    str_at(message, &["from", "user", "id"])
        .or_else(|| str_at(message, &["from", "application", "id"]))
}

fn dlp_action(message: &Value) -> Option<&str> {
    str_at(message, &["policyViolation", "dlpAction"])
}

/// A message as `GET /api/chats/{id}/messages` lists it. `deleted` also when a notification
/// said so without a `deletedDateTime`.
pub fn message_item(message: &Value, deleted: bool, viewer: &Viewer) -> Value {
    let deleted = deleted || message.get("deletedDateTime").is_some_and(|v| !v.is_null());
    let mine = sender_id(message) == Some(viewer.user_id.as_str());
    let dlp = dlp_action(message);
    let blocked_for_others = dlp.is_some_and(|a| a.eq_ignore_ascii_case("BlockAccess"));
    let edited = message
        .get("lastEditedDateTime")
        .is_some_and(|v| !v.is_null());
    let state = if deleted {
        "deleted"
    } else if blocked_for_others && !mine {
        "blocked"
    } else if edited {
        "edited"
    } else {
        "visible"
    };
    let content_type = str_at(message, &["body", "contentType"]).unwrap_or("text");
    let content = match state {
        "deleted" | "blocked" => Value::Null,
        _ => {
            let raw = str_at(message, &["body", "content"]).unwrap_or("");
            if content_type.eq_ignore_ascii_case("html") {
                let chat_id = str_at(message, &["chatId"]).unwrap_or("");
                let id = str_at(message, &["id"]).unwrap_or("");
                Value::String(sanitize(raw, viewer, chat_id, id))
            } else {
                Value::String(raw.to_owned())
            }
        }
    };
    let mut item = json!({
        "id": message.get("id").cloned().unwrap_or(Value::Null),
        "createdDateTime": message.get("createdDateTime").cloned().unwrap_or(Value::Null),
        "lastModifiedDateTime": message.get("lastModifiedDateTime").cloned().unwrap_or(Value::Null),
        "from": sender(message),
        "contentType": content_type,
        "content": content,
        "state": state,
    });
    // The sender sees what a policy did to their message (Teams shows the same notice).
    if mine && !deleted {
        match dlp {
            Some(a) if a.eq_ignore_ascii_case("BlockAccess") => {
                item["notice"] = "Blocked by a policy: only you can see this message.".into()
            }
            Some(a) if a.eq_ignore_ascii_case("NotifySender") => {
                item["notice"] = "This message may contain sensitive information.".into()
            }
            _ => {}
        }
    }
    item
}

/// Whether a message counts for a chat's unread count and for showing a hidden chat again:
/// a message (`messageType` `message`, or none given), not deleted.
pub fn counts(message: &Value, deleted: bool) -> bool {
    !deleted
        && message.get("deletedDateTime").is_none_or(Value::is_null)
        && str_at(message, &["messageType"]).is_none_or(|t| t == "message")
}

/// Who sent a message (the user, else the application), for the unread count.
pub fn sender_of(message: &Value) -> Option<&str> {
    sender_id(message)
}

/// A chat's `lastMessageReadDateTime`, if its viewpoint has one.
pub fn last_read(chat: &Value) -> Option<OffsetDateTime> {
    chat.get("viewpoint")
        .and_then(|v| time_at(v, "lastMessageReadDateTime"))
}

/// A chat as `GET /api/chats` lists it, from its JSON, its unread count (messages that
/// [`counts`] from others, created after the viewpoint's `lastMessageReadDateTime`) and the
/// creation time of its newest such message: a hidden chat shows again once a message is
/// created after the user last read it.
pub fn chat_item(chat: &Value, unread: u64, newest: Option<OffsetDateTime>) -> Value {
    let viewpoint = chat.get("viewpoint").cloned().unwrap_or(Value::Null);
    let hidden = serde_json::to_string(&viewpoint)
        .ok()
        .and_then(|text| {
            serde_json::from_str::<ChatViewpoint<'_>>(&text)
                .ok()
                .map(|vp| !chat_is_visible(&vp, newest))
        })
        .unwrap_or(false);
    json!({
        "id": chat.get("id").cloned().unwrap_or(Value::Null),
        "topic": chat.get("topic").cloned().unwrap_or(Value::Null),
        "chatType": chat.get("chatType").cloned().unwrap_or(Value::Null),
        "unreadCount": unread,
        "hidden": hidden,
    })
}

/// Where the page loads a message's inline image from: the app fetches it from Graph with its
/// token (a browser has none).
pub fn hosted_content_path(chat_id: &str, message_id: &str, hosted_id: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "/api/chats/{}/messages/{}/hostedContents/{}",
        enc(chat_id),
        enc(message_id),
        enc(hosted_id)
    )
}

/// The (chat, message, hosted content) a Graph `$value` link names, if it is one on `base` or
/// on a Microsoft Graph host.
fn hosted_content_link(src: &str, viewer: &Viewer) -> Option<(String, String, String)> {
    let url = url::Url::parse(src).ok()?;
    let origin = url.origin().ascii_serialization();
    let graph_hosts = graph_webhook_hosts();
    let base = url::Url::parse(&viewer.graph_base).ok()?;
    // A local Graph's links name the port it had when the message was sent (a simulator restarted
    // on another port still holds them): on loopback, any port is that Graph.
    let local = is_loopback(&base) && is_loopback(&url) && url.scheme() == base.scheme();
    if origin != base.origin().ascii_serialization()
        && !graph_hosts.contains(origin.as_str())
        && !local
    {
        return None;
    }
    let segments: Vec<Cow<'_, str>> = url
        .path_segments()?
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
        .collect();
    // .../chats/{c}/messages/{m}/hostedContents/{h}/$value
    let n = segments.len();
    if n < 7 || segments[n - 1] != "$value" || segments[n - 3] != "hostedContents" {
        return None;
    }
    if segments[n - 5] != "messages" || segments[n - 7] != "chats" {
        return None;
    }
    Some((
        segments[n - 6].to_string(),
        segments[n - 4].to_string(),
        segments[n - 2].to_string(),
    ))
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn graph_webhook_hosts() -> HashSet<&'static str> {
    graph_chat_webhook::notifications::Cloud::ALL
        .iter()
        .map(|c| c.graph_url())
        .collect()
}

/// A relative URL kept by the sanitizer: only the app's inline-image paths, which the attribute
/// filter writes (it drops every relative URL a sender wrote).
fn app_path(url: &str) -> Option<Cow<'_, str>> {
    url.starts_with("/api/chats/").then_some(Cow::Borrowed(url))
}

/// Teams HTML made safe to show: formatting kept; scripts, styles, event handlers, frames,
/// forms and `javascript:` URLs gone; links absolute and opening outside the page; images only
/// from the message's own hosted contents (`chat_id`, `message_id`), through the app.
pub fn sanitize(html: &str, viewer: &Viewer, chat_id: &str, message_id: &str) -> String {
    let viewer = viewer.clone();
    let (own_chat, own_message) = (chat_id.to_owned(), message_id.to_owned());
    let tags: HashSet<&str> = [
        "p",
        "br",
        "div",
        "span",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "s",
        "strike",
        "del",
        "ins",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
        "blockquote",
        "pre",
        "code",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "table",
        "thead",
        "tbody",
        "tr",
        "td",
        "th",
        "a",
        "img",
    ]
    .into_iter()
    .collect();
    let mut builder = ammonia::Builder::default();
    builder
        .tags(tags)
        .generic_attributes(HashSet::new())
        .tag_attributes(
            [
                ("a", ["href"].into_iter().collect()),
                ("img", ["src", "alt"].into_iter().collect()),
            ]
            .into_iter()
            .collect(),
        )
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        // Relative URLs only as the app's own inline-image paths (written below); a sender's
        // relative link is dropped.
        .url_relative(ammonia::UrlRelative::Custom(Box::new(app_path)))
        .attribute_filter(move |element, attribute, value| {
            if element == "img" && attribute == "src" {
                hosted_content_link(value, &viewer)
                    .filter(|(c, m, _)| *c == own_chat && *m == own_message)
                    .map(|(c, m, h)| Cow::Owned(hosted_content_path(&c, &m, &h)))
            } else if url::Url::parse(value).is_err() && (attribute == "href" || attribute == "src")
            {
                // A relative link of the sender's would point into this app.
                None
            } else {
                Some(Cow::Borrowed(value))
            }
        });
    builder.clean(html).to_string()
}
