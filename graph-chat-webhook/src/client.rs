//! Sending the core's request values to Graph: a small blocking client over HTTPS (rustls on
//! AWS-LC, the platform's certificate store, no redirects), for the program's other half, the
//! calls it makes (subscriptions, chats, messages, reads). Run it off the async threads
//! (`tokio::task::spawn_blocking`).
//!
//! Each call takes its bearer from a [`TokenSource`], and a 401 gets one new token and one
//! retry; throttling (429, 503) and connections that failed are retried under a
//! [`RetryPolicy`]; a request that may have been carried out is never sent twice unless its
//! method is idempotent.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graph_chat_notifications::keeper::Outcome;
use graph_chat_notifications::outbound::HttpRequest;
use zeroize::Zeroizing;

use crate::agent::{agent, Sent};
use crate::retry::RetryPolicy;
use crate::tokens::{AccessToken, FixedToken, TokenError, TokenSource};

/// The largest response body read by default: a page of 50 messages is well under it.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// The default time one call may take, from connecting to the last byte of the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

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
    ureq::Agent::with_parts(
        crate::agent::config(within),
        connector,
        DefaultResolver::default(),
    )
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
    /// A request that is not idempotent (a POST, a PATCH) was sent, in whole or in part, and
    /// its answer was lost (a reset, a timeout). Graph may have carried it out: it was not
    /// sent again. Check (read what it would have made) before sending it anew.
    #[error(
        "{method} {url}: sent, but the answer was lost ({reason}): it may have been carried out"
    )]
    OutcomeUnknown {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// No token for the call: the source could not get one (a person's access revoked, the
    /// identity platform unreachable). Nothing was sent to Graph.
    #[error("no token for the call: {0}")]
    Token(#[from] TokenError),
}

/// Waits between attempts (`std::thread::sleep` unless [`GraphClient::with_sleeper`]).
type Sleeper = Arc<dyn Fn(Duration) + Send + Sync>;

/// One send's failure, and whether the request had left.
struct Failed {
    error: ClientError,
    sent: bool,
}

/// Methods whose repetition has the effect of one (RFC 9110, 9.2.2): sent again after an
/// answer was lost.
fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS")
}

/// The path of a URL, without its query: what a log line names.
fn path_of(url: &str) -> &str {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    match without_query.find("://") {
        Some(scheme) => {
            let rest = &without_query[scheme + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        None => without_query,
    }
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

/// Sends request values to one Graph, with a bearer token from a [`TokenSource`].
///
/// Every call takes a token from the source; a 401 asks the source once for a new one
/// ([`TokenSource::after_rejection`]) and is retried once with it (a second 401 is the answer).
/// A 429 or 503 is sent again after its `Retry-After`, else after an exponential back-off with
/// full jitter, and so is a call whose connection failed before the request left; a GET, PUT or
/// DELETE whose answer was lost is sent again too, but a POST or PATCH is not
/// ([`ClientError::OutcomeUnknown`]). How often and how long: [`GraphClient::with_retry`].
/// Each retry and each failure is one `tracing` line (method, path without query, status,
/// attempt, wait), never a token or a body.
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
    tokens: Arc<dyn TokenSource>,
    limit: u64,
    retry: RetryPolicy,
    sleep: Sleeper,
}

impl fmt::Debug for GraphClient {
    /// Never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base)
            .field("limit", &self.limit)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// A client for the Graph at `base` (`https://graph.microsoft.com`, a national cloud's
    /// host, or a local simulator), sending `token` as the bearer of every call (a
    /// [`FixedToken`]).
    pub fn new(base: &str, token: &str) -> Self {
        Self::with_token_source(base, Arc::new(FixedToken::new(AccessToken::new(token))))
    }

    /// A client for the Graph at `base` taking each call's bearer from `tokens`: a person's
    /// ([`PersonTokens`](crate::tokens::PersonTokens)), the application's
    /// ([`AppTokens`](crate::tokens::AppTokens)), or your own.
    pub fn with_token_source(base: &str, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            agent: agent(DEFAULT_TIMEOUT),
            base: base.trim_end_matches('/').into(),
            tokens,
            limit: MAX_RESPONSE_BYTES,
            retry: RetryPolicy::default(),
            sleep: Arc::new(std::thread::sleep),
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

    /// The same client retrying under `policy` ([`RetryPolicy::none`] for callers that queue
    /// their own retries).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The same client waiting between attempts with `sleep` instead of
    /// `std::thread::sleep`: to record the waits in a test, or to count them.
    pub fn with_sleeper(mut self, sleep: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.sleep = Arc::new(sleep);
        self
    }

    /// The same client with another source of tokens.
    pub fn with_tokens(mut self, tokens: Arc<dyn TokenSource>) -> Self {
        self.tokens = tokens;
        self
    }

    /// The Graph this client calls, without a trailing `/`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The client's retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Sends `request` (moved to this client's Graph with
    /// [`HttpRequest::with_base`]) and reads the whole answer. A 4xx or 5xx is an answer, not
    /// an error: read it with [`GraphResponse::outcome`] or its status. A 429 or 503 comes
    /// back once the retry policy gives up on it.
    pub fn send(&self, request: &HttpRequest) -> Result<GraphResponse, ClientError> {
        let request = request.clone().with_base(&self.base);
        let method = request.method.as_str();
        let path = path_of(&request.url);
        let mut token = self.tokens.token()?;
        let mut renewed = false;
        let mut attempt = 0;
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            let (wait, status, retry_after) = match self.send_once(&request, &token) {
                Ok(answer) if answer.status == 401 && !renewed => {
                    renewed = true;
                    let fresh = self.tokens.after_rejection(&token)?;
                    if fresh == token {
                        return Ok(answer);
                    }
                    tracing::info!(
                        target: "graph_chat_webhook",
                        %method, %path, status = 401, attempt,
                        "Graph refused the token: retrying once with a new one"
                    );
                    token = fresh;
                    attempt -= 1;
                    continue;
                }
                Ok(answer) if matches!(answer.status, 429 | 503) => {
                    let wait = self
                        .retry
                        .wait(attempt, waited, answer.retry_after.as_deref());
                    let Some(wait) = wait else {
                        tracing::warn!(
                            target: "graph_chat_webhook",
                            %method, %path, status = answer.status, attempt,
                            retry_after = answer.retry_after.as_deref(),
                            "Graph throttled a call: not retried"
                        );
                        return Ok(answer);
                    };
                    (wait, Some(answer.status), answer.retry_after)
                }
                Ok(answer) => return Ok(answer),
                Err(Failed { error, sent }) => {
                    let retryable = !matches!(error, ClientError::TooLarge { .. });
                    if sent && !idempotent(method) {
                        let reason = match error {
                            ClientError::Transport { reason, .. } => reason,
                            other => other.to_string(),
                        };
                        tracing::warn!(
                            target: "graph_chat_webhook",
                            %method, %path, attempt, %reason,
                            "Graph call sent but its answer was lost: not sent again"
                        );
                        return Err(ClientError::OutcomeUnknown {
                            method,
                            url: request.url.clone(),
                            reason,
                        });
                    }
                    let wait = retryable
                        .then(|| self.retry.wait(attempt, waited, None))
                        .flatten();
                    let Some(wait) = wait else {
                        tracing::warn!(
                            target: "graph_chat_webhook",
                            %method, %path, attempt, error = %path_only(&error, &request.url, path),
                            "Graph call got no answer"
                        );
                        return Err(error);
                    };
                    (wait, None, None)
                }
            };
            tracing::info!(
                target: "graph_chat_webhook",
                %method, %path, status, attempt, retry_after = retry_after.as_deref(),
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "Graph call retried"
            );
            (self.sleep)(wait);
            waited += wait;
        }
    }

    /// One send, with `token`.
    fn send_once(
        &self,
        request: &HttpRequest,
        token: &AccessToken,
    ) -> Result<GraphResponse, Failed> {
        let method = request.method.as_str();
        let authorization = Zeroizing::new(format!("Bearer {}", token.secret()));
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(&request.url)
            .header("Authorization", authorization.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(*name, *value);
        }
        let failed = |reason: String, sent: bool| Failed {
            error: ClientError::Transport {
                method,
                url: request.url.clone(),
                reason,
            },
            sent,
        };
        let http_request = builder
            .body(request.body.clone().unwrap_or_default())
            .map_err(|e| failed(e.to_string(), false))?;
        Sent::start();
        let mut response = self
            .agent
            .run(http_request)
            .map_err(|e| failed(e.to_string(), Sent::any()))?;
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
                ureq::Error::BodyExceedsLimit(_) => Failed {
                    error: ClientError::TooLarge {
                        method,
                        url: request.url.clone(),
                        limit: self.limit,
                    },
                    sent: true,
                },
                other => failed(other.to_string(), true),
            })?;
        Ok(GraphResponse {
            status,
            retry_after,
            body,
        })
    }
}

/// An error's text for a log line: its URL cut to the path.
fn path_only(error: &ClientError, url: &str, path: &str) -> String {
    error.to_string().replace(url, path)
}
