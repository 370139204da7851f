//! Graph's rules for a subscription request: the body, its lifetime, its URLs and certificate
//! (400s, in that order), and the resource's support matrix.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use graph_chat_notifications::crypto::Certificate;
use serde_json::Value;

use super::body::json_object;
use crate::state::Sub;
use crate::util::{is_guid, parse_ms, ApiError, ApiResult};

/// The longest lifetime of a chat or chatMessage subscription: 4,320 minutes.
const MAX_LIFETIME_MS: i64 = 4320 * 60 * 1000;
/// Past one hour a subscription needs a lifecycleNotificationUrl.
const LIFECYCLE_NEEDED_MS: i64 = 60 * 60 * 1000;
/// The text Graph answers when a long subscription has no lifecycleNotificationUrl.
const LIFECYCLE_REQUIRED: &str = "lifecycleNotificationUrl is a required property for subscription creation on this resource when the expirationDateTime value is set to greater than 1 hour";

/// A subscription's resource, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
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

/// A subscription's resource and query options (`$search`, a mentions `$filter`,
/// `notifyOnUserSpecificProperties`), read.
#[derive(Debug, Clone)]
pub(super) struct Parsed {
    pub target: Target,
    pub search: Option<String>,
    pub mentions: Option<String>,
    pub user_specific: bool,
}

pub(super) fn parse_certificate(b64: &str) -> Option<Certificate> {
    let der = B64.decode(b64.trim()).ok()?;
    Certificate::from_der(&der).ok()
}

pub(super) fn bad_certificate() -> ApiError {
    ApiError::new(
        400,
        "ValidationError",
        "encryptionCertificate must be the base64 of an X.509 certificate's DER",
    )
}

pub(super) fn check_id_len(name: &str, value: &str) -> ApiResult<()> {
    if value.is_empty() || value.chars().count() > 128 {
        return Err(ApiError::new(
            400,
            "ValidationError",
            format!("{name} must be 1 to 128 characters"),
        ));
    }
    Ok(())
}

pub(super) fn check_lifetime(lifetime: i64, has_lifecycle: bool) -> ApiResult<()> {
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
pub(super) fn parse_create(body: &[u8], now: i64, version: &str) -> ApiResult<Sub> {
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
        creator: None,
        authorized: None,
        auth_reauth_sent: false,
    })
}

/// Reads a subscription resource and checks it against the support matrix (400s).
pub(super) fn parse_resource(resource: &str, version: &str) -> ApiResult<Parsed> {
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
