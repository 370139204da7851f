//! The validation handshake: Graph checks that the endpoint is yours before it subscribes.

use std::fmt;

/// The reply to a validation request: status 200, `Content-Type: text/plain; charset=utf-8`,
/// and the URL-decoded `validationToken` as the body. Graph expects it within 10 seconds.
///
/// The token is opaque and reflected back, so send it only as `text/plain`.
#[derive(Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    token: String,
}

impl fmt::Debug for HandshakeResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeResponse")
            .field("token_len", &self.token.len())
            .finish()
    }
}

impl HandshakeResponse {
    /// The HTTP status to reply with: 200.
    pub const STATUS: u16 = 200;
    /// The `Content-Type` to reply with.
    pub const CONTENT_TYPE: &'static str = "text/plain; charset=utf-8";

    /// The HTTP status: 200.
    pub fn status(&self) -> u16 {
        Self::STATUS
    }

    /// The `Content-Type` header value.
    pub fn content_type(&self) -> &'static str {
        Self::CONTENT_TYPE
    }

    /// The response body: the decoded token.
    pub fn body(&self) -> &str {
        &self.token
    }

    /// The response body, owned.
    pub fn into_body(self) -> String {
        self.token
    }
}

/// Answers a validation request, if the query string carries a `validationToken`: from
/// `validationToken=Validation%3A%20Testing...` it returns the decoded token to send back.
/// The same call serves the `notificationUrl` and the `lifecycleNotificationUrl`.
///
/// `query` is the URL's query, with or without the leading `?`. The token is decoded as a form
/// value (`%XX` escapes, `+` as a space), as Graph encodes it.
///
/// ```
/// use graph_chat_notifications::inbound::handshake;
/// let reply = handshake("?validationToken=Validation%3A%20Testing+reachability").unwrap();
/// assert_eq!(reply.status(), 200);
/// assert_eq!(reply.content_type(), "text/plain; charset=utf-8");
/// assert_eq!(reply.body(), "Validation: Testing reachability");
/// assert!(handshake("tenant=x").is_none());
/// ```
pub fn handshake(query: &str) -> Option<HandshakeResponse> {
    let query = query.strip_prefix('?').unwrap_or(query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name.eq_ignore_ascii_case("validationToken"))
        .map(|(_, value)| HandshakeResponse {
            token: value.into_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes_and_plus() {
        let r = handshake("validationToken=a%2Bb+c%26d%3D%F0%9F%8E%89&x=1").unwrap();
        assert_eq!(r.body(), "a+b c&d=🎉");
        assert_eq!(handshake("x=1&validationToken=").unwrap().body(), "");
        assert!(handshake("").is_none());
        assert!(handshake("validationTokens=1").is_none());
    }

    #[test]
    fn debug_does_not_echo_the_token() {
        let r = handshake("validationToken=%3Cscript%3E").unwrap();
        assert!(!format!("{r:?}").contains("script"));
    }
}

/// The reply to a CloudEvents abuse-protection request (how Event Grid checks a webhook before it
/// delivers to it): status 200 with `WebHook-Allowed-Origin` naming the requesting origin, and
/// `WebHook-Allowed-Rate` when a rate was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbuseProtectionResponse {
    origin: String,
    rate: Option<String>,
}

impl AbuseProtectionResponse {
    /// The HTTP status: 200.
    pub fn status(&self) -> u16 {
        200
    }

    /// The headers to send, name and value.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![("WebHook-Allowed-Origin", self.origin.as_str())];
        if let Some(rate) = &self.rate {
            headers.push(("WebHook-Allowed-Rate", rate.as_str()));
        }
        headers
    }
}

/// The reply as an `http` crate response (feature `http`): 200, `text/plain`, the token.
#[cfg(feature = "http")]
impl From<HandshakeResponse> for http::Response<String> {
    fn from(reply: HandshakeResponse) -> Self {
        let mut response = http::Response::new(reply.token);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(HandshakeResponse::CONTENT_TYPE),
        );
        response
    }
}

/// The reply as an `http` crate response (feature `http`): 200 with the `WebHook-Allowed-*`
/// headers.
#[cfg(feature = "http")]
impl From<AbuseProtectionResponse> for http::Response<()> {
    fn from(reply: AbuseProtectionResponse) -> Self {
        let mut response = http::Response::new(());
        for (name, value) in reply.headers() {
            // cloud_events_handshake admitted only visible ASCII, which is a valid header value.
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// [`cloud_events_handshake`] from the headers of an `http` crate request (feature `http`).
/// Header values that are not visible ASCII count as missing.
#[cfg(feature = "http")]
pub fn cloud_events_handshake_http(headers: &http::HeaderMap) -> Option<AbuseProtectionResponse> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    cloud_events_handshake(get("webhook-request-origin"), get("webhook-request-rate"))
}

/// Answers a CloudEvents abuse-protection request (an `OPTIONS` with `WebHook-Request-Origin`,
/// as Event Grid sends before delivering): pass the values of `WebHook-Request-Origin` and, if
/// present, `WebHook-Request-Rate`. Allows that origin, and any rate that was asked for (`*`).
/// `None` when the origin is missing or not a plain header value (it is reflected back, so it
/// must hold no control characters): answer such a request 400.
///
/// ```
/// use graph_chat_notifications::inbound::cloud_events_handshake;
/// let reply = cloud_events_handshake(Some("eventgrid.azure.net"), Some("120")).unwrap();
/// assert_eq!(reply.status(), 200);
/// assert_eq!(
///     reply.headers(),
///     [("WebHook-Allowed-Origin", "eventgrid.azure.net"), ("WebHook-Allowed-Rate", "*")]
/// );
/// assert!(cloud_events_handshake(Some("evil\r\nSet-Cookie: x"), None).is_none());
/// ```
pub fn cloud_events_handshake(
    request_origin: Option<&str>,
    request_rate: Option<&str>,
) -> Option<AbuseProtectionResponse> {
    let origin = request_origin?.trim();
    let plain =
        |v: &str| !v.is_empty() && v.len() <= 1024 && v.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !plain(origin) {
        return None;
    }
    Some(AbuseProtectionResponse {
        origin: origin.to_string(),
        rate: request_rate.map(|_| "*".to_string()),
    })
}
