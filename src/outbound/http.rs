//! [`HttpRequest`]: a request to Graph as plain values, for any HTTP client.

use std::fmt;

use serde::Serialize;

/// Where the builders address their requests: the global service's Graph host.
/// [`HttpRequest::in_cloud`] and [`HttpRequest::with_base`] move a request elsewhere.
pub(super) const GRAPH: &str = "https://graph.microsoft.com";

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// A request to send to Graph with your HTTP client, adding your `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The full URL.
    pub url: String,
    /// Headers other than `Authorization` (`Content-Type` when there is a body).
    pub headers: Vec<(&'static str, &'static str)>,
    /// The JSON body, if any.
    pub body: Option<Vec<u8>>,
}

impl fmt::Debug for HttpRequest {
    /// The body may hold the clientState: only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// The request as the `http` crate's type, for reqwest, hyper and tower clients (feature
/// `http`). Add the `Authorization` header before sending.
///
/// ```
/// # #[cfg(feature = "http")] {
/// use graph_chat_notifications::outbound::list_subscriptions;
/// let request: http::Request<Vec<u8>> = list_subscriptions().try_into().unwrap();
/// assert_eq!(request.method(), http::Method::GET);
/// assert_eq!(request.uri(), "https://graph.microsoft.com/v1.0/subscriptions");
/// # }
/// ```
#[cfg(feature = "http")]
impl TryFrom<HttpRequest> for ::http::Request<Vec<u8>> {
    type Error = ::http::Error;
    fn try_from(request: HttpRequest) -> Result<Self, ::http::Error> {
        let mut builder = ::http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        builder.body(request.body.unwrap_or_default())
    }
}

impl HttpRequest {
    pub(super) fn json(method: Method, url: String, body: &impl Serialize) -> Self {
        Self {
            method,
            url,
            headers: vec![("Content-Type", "application/json")],
            body: Some(serde_json::to_vec(body).expect("request bodies serialize")),
        }
    }

    pub(crate) fn empty(method: Method, url: String) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    /// The same request sent to `cloud`'s Graph host: every builder makes requests for the
    /// global service, and this moves one to a national cloud.
    ///
    /// ```
    /// use graph_chat_notifications::outbound::reauthorize;
    /// use graph_chat_notifications::Cloud;
    /// let request = reauthorize("7f105c7d")?.in_cloud(Cloud::China);
    /// assert_eq!(
    ///     request.url,
    ///     "https://microsoftgraph.chinacloudapi.cn/v1.0/subscriptions/7f105c7d/reauthorize"
    /// );
    /// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
    /// ```
    pub fn in_cloud(mut self, cloud: crate::Cloud) -> Self {
        if let Some(path) = self.url.strip_prefix(GRAPH) {
            self.url = format!("{}{path}", cloud.graph_url());
        }
        self
    }

    /// The same request sent to another Graph at `base` (scheme, host, port and an optional path
    /// prefix, with or without a trailing `/`): a local simulator such as `graph-sim`, or a
    /// proxy. Requests for a national cloud move too.
    ///
    /// ```
    /// use graph_chat_notifications::outbound::reauthorize;
    /// let request = reauthorize("7f105c7d")?.with_base("http://127.0.0.1:8081/");
    /// assert_eq!(request.url, "http://127.0.0.1:8081/v1.0/subscriptions/7f105c7d/reauthorize");
    /// # Ok::<(), graph_chat_notifications::outbound::RequestError>(())
    /// ```
    pub fn with_base(mut self, base: &str) -> Self {
        let base = base.trim_end_matches('/');
        for host in crate::Cloud::ALL.map(crate::Cloud::graph_url) {
            if let Some(path) = self.url.strip_prefix(host) {
                if path.is_empty() || path.starts_with('/') {
                    self.url = format!("{base}{path}");
                    break;
                }
            }
        }
        self
    }

    /// The body as JSON text (empty without a body).
    pub fn body_text(&self) -> &str {
        self.body
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}
