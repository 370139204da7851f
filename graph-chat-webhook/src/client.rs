//! Sending the core's request values to Graph: a small blocking client over HTTPS (rustls on
//! AWS-LC, the platform's certificate store, no redirects), for the program's other half, the
//! calls it makes (subscriptions, chats, messages, reads). Run it off the async threads
//! (`tokio::task::spawn_blocking`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graph_chat_notifications::keeper::Outcome;
use graph_chat_notifications::outbound::HttpRequest;
use zeroize::Zeroizing;

/// The largest response body read by default: a page of 50 messages is well under it.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// The default time one call may take, from connecting to the last byte of the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The agent's configuration: TLS through rustls on AWS-LC, named here rather than installed
/// process-wide (no global state), verifying with the platform's certificate store, and never
/// following a redirect (a redirect could leave https, or the host that was trusted).
fn config(timeout: Duration) -> ureq::config::Config {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(0)
        // Graph's 4xx and 5xx carry bodies the caller reads (`Outcome::from_response`).
        .http_status_as_error(false)
        .tls_config(tls)
        .build()
}

/// An agent with [`config`]: its calls are bounded by ureq's own timeouts.
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    config(timeout).into()
}

/// An agent for calls that must all end within `within` of now, whatever the peer sends.
///
/// ureq's timeouts are not a deadline against a peer that drips: once one has passed, each
/// further wait for input is given a second (ureq 3.2's `NextTimeout::not_zero`), so an answer
/// sent a byte a second is never cut. Here every wait on the TCP socket is clamped to the time
/// left, and past the deadline the call fails with [`ureq::Timeout::Global`], head or body. The
/// clamp sits under TLS, on the socket itself: one read of TLS may wait on the socket many
/// times (a record dripped a byte at a time), and each of those waits ends by the deadline.
pub(crate) fn agent_until_deadline(within: Duration) -> ureq::Agent {
    use ureq::unversioned::resolver::DefaultResolver;
    use ureq::unversioned::transport::{
        ConnectProxyConnector, Connector, RustlsConnector, TcpConnector,
    };
    let deadline = Deadline(Instant::now() + within);
    // ureq's default chain (a CONNECT proxy, the socket, then TLS) with the deadline between
    // the socket and TLS.
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(deadline)
            .chain(RustlsConnector::default());
    ureq::Agent::with_parts(config(within), connector, DefaultResolver::default())
}

/// Wraps each connection's socket in [`Bounded`], all sharing one deadline.
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl<In: ureq::unversioned::transport::Transport> ureq::unversioned::transport::Connector<In>
    for Deadline
{
    type Out = Bounded;

    fn connect(
        &self,
        _: &ureq::unversioned::transport::ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Bounded>, ureq::Error> {
        Ok(chained.map(|inner| Bounded {
            inner: Box::new(inner),
            deadline: self.0,
        }))
    }
}

/// A connection whose every wait ends by the deadline.
#[derive(Debug)]
struct Bounded {
    inner: Box<dyn ureq::unversioned::transport::Transport>,
    deadline: Instant,
}

impl Bounded {
    /// `timeout`, or the time left when that is shorter; an error past the deadline.
    fn clamp(
        &self,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::transport::NextTimeout, ureq::Error> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ureq::Error::Timeout(ureq::Timeout::Global));
        }
        if *timeout.after <= left {
            return Ok(timeout);
        }
        Ok(ureq::unversioned::transport::NextTimeout {
            after: left.into(),
            reason: ureq::Timeout::Global,
        })
    }
}

impl ureq::unversioned::transport::Transport for Bounded {
    fn buffers(&mut self) -> &mut dyn ureq::unversioned::transport::Buffers {
        self.inner.buffers()
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<(), ureq::Error> {
        let timeout = self.clamp(timeout)?;
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(
        &mut self,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<bool, ureq::Error> {
        let timeout = self.clamp(timeout)?;
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No HTTP answer: the connection, TLS or the timeout failed (retry later).
    #[error("{method} {url}: {reason}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The URL (request values hold no secrets in their URLs).
        url: String,
        /// What failed.
        reason: String,
    },
    /// The answer was longer than the client's limit.
    #[error("{method} {url}: the answer is longer than {limit} bytes")]
    TooLarge {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
}

/// Graph's answer to one call.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphResponse {
    /// The status code.
    pub status: u16,
    /// `Retry-After`, as sent (seconds, on a 429 or 503).
    pub retry_after: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for GraphResponse {
    /// Bodies hold message content: only their length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphResponse")
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl GraphResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer as the keeper reads it.
    pub fn outcome(&self) -> Outcome {
        Outcome::from_response(self.status, self.retry_after.as_deref(), &self.body)
    }
}

/// Sends request values to one Graph, with one bearer token.
///
/// ```no_run
/// use graph_chat_webhook::GraphClient;
/// use graph_chat_webhook::notifications::outbound::list_subscriptions;
/// // A local graph-sim; for Graph itself, `GraphClient::new("https://graph.microsoft.com", token)`.
/// let graph = GraphClient::new("http://127.0.0.1:8081/", "any-token");
/// let answer = graph.send(&list_subscriptions())?;
/// assert!(answer.is_success());
/// # Ok::<(), graph_chat_webhook::ClientError>(())
/// ```
#[derive(Clone)]
pub struct GraphClient {
    agent: ureq::Agent,
    base: Arc<str>,
    authorization: Arc<Zeroizing<String>>,
    limit: u64,
}

impl fmt::Debug for GraphClient {
    /// Never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// A client for the Graph at `base` (`https://graph.microsoft.com`, a national cloud's
    /// host, or a local simulator), sending `token` as the bearer of every call.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            agent: agent(DEFAULT_TIMEOUT),
            base: base.trim_end_matches('/').into(),
            authorization: Arc::new(Zeroizing::new(format!("Bearer {token}"))),
            limit: MAX_RESPONSE_BYTES,
        }
    }

    /// The same client with another timeout per call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.agent = agent(timeout);
        self
    }

    /// The same client reading answers of at most `limit` bytes.
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// The Graph this client calls, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `request` (moved to this client's Graph with
    /// [`HttpRequest::with_base`]) and reads the whole answer. A 4xx or 5xx is an answer, not
    /// an error: read it with [`GraphResponse::outcome`] or its status.
    pub fn send(&self, request: &HttpRequest) -> Result<GraphResponse, ClientError> {
        let request = request.clone().with_base(&self.base);
        let method = request.method.as_str();
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(&request.url)
            .header("Authorization", self.authorization.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(*name, *value);
        }
        let transport = |reason: String| ClientError::Transport {
            method,
            url: request.url.clone(),
            reason,
        };
        let http_request = builder
            .body(request.body.clone().unwrap_or_default())
            .map_err(|e| transport(e.to_string()))?;
        let mut response = self
            .agent
            .run(http_request)
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .body_mut()
            .with_config()
            .limit(self.limit)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => ClientError::TooLarge {
                    method,
                    url: request.url.clone(),
                    limit: self.limit,
                },
                other => transport(other.to_string()),
            })?;
        Ok(GraphResponse {
            status,
            retry_after,
            body,
        })
    }
}
