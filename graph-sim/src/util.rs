//! Times, ids and Graph's error answers.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::types::SimError;

/// An error as Graph answers it: status, `error.code`, `error.message`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NotFound", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    pub fn subscription_not_found(id: &str) -> Self {
        Self::new(
            404,
            "ResourceNotFound",
            format!("The object was not found: subscription '{id}'"),
        )
    }
    pub fn chat_not_found(id: &str) -> Self {
        Self::not_found(format!("Chat '{id}' was not found"))
    }
    pub fn message_not_found(id: &str) -> Self {
        Self::not_found(format!("Message '{id}' was not found in the chat"))
    }
}

impl From<ApiError> for SimError {
    fn from(e: ApiError) -> Self {
        match e.status {
            404 => SimError::NotFound { what: e.message },
            403 => SimError::Forbidden(e.message),
            _ => SimError::BadRequest(e.message),
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `2021-03-17T07:13:28.571Z`: UTC, milliseconds, as Graph writes message times.
pub(crate) fn fmt_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format).unwrap_or_default()
}

/// `2021-03-17T07:13:28.5710000Z`: seven fractional digits, as Graph writes subscription times.
pub(crate) fn fmt_ms7(ms: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    graph_chat_notifications::outbound::format_time(t).unwrap_or_else(|_| fmt_ms(ms))
}

/// A Graph timestamp (0-7 fractional digits, any offset, lower-case `t`/`z`) in epoch ms.
pub(crate) fn parse_ms(s: &str) -> Option<i64> {
    let t = graph_chat_notifications::model::parse_time(s.trim())?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A random GUID (version 4 layout).
pub(crate) fn guid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A GUID derived from a name (for users named by UPN), stable across runs.
pub(crate) fn guid_from(name: &str) -> String {
    // Two FNV-1a passes with different offsets: 128 bits, no cryptographic claim.
    let fnv = |offset: u64| {
        let mut h = offset;
        for b in name.to_ascii_lowercase().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
        h
    };
    let (a, b) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142));
    let h = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

/// Whether `s` looks like a GUID.
pub(crate) fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Query parameters of a URL, decoded.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A query parameter by name, OData names matched with or without `$` and in any case.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let bare = name.trim_start_matches('$');
    pairs
        .iter()
        .find(|(k, _)| k.trim_start_matches('$').eq_ignore_ascii_case(bare))
        .map(|(_, v)| v.as_str())
}
