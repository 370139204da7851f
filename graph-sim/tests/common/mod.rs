//! What the end-to-end tests share: a webhook on loopback (answering handshakes with the crate's
//! Receiver, collecting notifications, or misbehaving on purpose), an HTTP client that sends the
//! crate's request values, and a Receiver set up against a simulator.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use graph_chat_notifications::crypto::{DecryptBuffer, KeyStore, PrivateKey};
use graph_chat_notifications::inbound::{Inbound, Payload, Receiver};
use graph_chat_notifications::outbound::{HttpRequest, Subscription, SubscriptionRequest};
use graph_chat_notifications::tokens::TokenValidator;
use graph_sim::{Config, Simulator};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub const CLIENT_STATE: &str = "secretClientState";
/// Another member of the tests' chats.
pub const COLLEAGUE: &str = "82af01c5-f7cc-4a2e-a728-3a5df21afd9d";

/// The colleague, writing.
pub fn colleague() -> graph_sim::Sender {
    graph_sim::Sender {
        id: COLLEAGUE.into(),
        display_name: "Adele Vance".into(),
    }
}

/// Creates a chat through the simulator's API with the crate's request value; its id.
pub async fn create_chat(
    sim: &Simulator,
    request: graph_chat_notifications::outbound::CreateChat,
) -> String {
    let reply = send(&sim.base_url(), request.build().unwrap()).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    graph_chat_notifications::outbound::created_chat(&reply.body)
        .unwrap()
        .id
        .get()
        .unwrap()
        .as_str()
        .to_string()
}
pub const CERT_ID: &str = "cert-1";

/// The repository's RSA-2048 test key with its certificate.
pub fn key() -> PrivateKey {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/keys/rsa2048/key-and-cert.pem"
    );
    PrivateKey::from_bytes(&std::fs::read(path).expect("the fixture key")).expect("a key")
}

pub fn cert_der() -> Vec<u8> {
    key()
        .certificate()
        .expect("the PEM holds a certificate")
        .der()
        .to_vec()
}

pub async fn sim(config: Config) -> Simulator {
    Simulator::start(config)
        .await
        .expect("the simulator starts")
}

/// A simulator that accepts any bearer (as the configuration's user), for the tests that do not
/// exercise identity.
pub async fn default_sim() -> Simulator {
    sim(Config {
        retry_base: Duration::from_millis(100),
        accept_any_token: true,
        ..Default::default()
    })
    .await
}

/// A Receiver that decrypts with the test key and checks tokens against `sim`'s JWKS.
pub fn receiver(sim: &Simulator) -> Receiver {
    let id = sim.identity();
    let tokens = TokenValidator::new([id.app_id.as_str()], [id.tenant_id.as_str()]);
    tokens
        .update_jwks(&sim.jwks(), SystemTime::now())
        .expect("the JWKS loads");
    Receiver::builder()
        .keys(KeyStore::new().with_key(CERT_ID, key()).expect("the key"))
        .client_state(CLIENT_STATE)
        .tokens(tokens)
        .build()
        .expect("a receiver")
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "{} is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// The Graph error's code, asserting the shape `{"error": {"code", "message"}}`.
    pub fn error_code(&self) -> String {
        let v = self.json();
        assert!(v["error"]["message"].is_string(), "no error.message: {v}");
        v["error"]["code"].as_str().expect("error.code").to_string()
    }
    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// Sends one of the crate's request values to `base` (with a bearer token, as a client does).
pub async fn send(base: &str, request: HttpRequest) -> Reply {
    let request = request.with_base(base);
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(&request.url)
        .header("Authorization", "Bearer any-token");
    for (k, v) in &request.headers {
        builder = builder.header(*k, *v);
    }
    raw(builder
        .body(Full::new(Bytes::from(request.body.unwrap_or_default())))
        .expect("a request"))
    .await
}

/// Creates a subscription with the crate's request value, asserting 201; the subscription.
pub async fn subscribe(sim: &Simulator, request: SubscriptionRequest) -> Subscription {
    let reply = send(&sim.base_url(), request.build().unwrap()).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    Subscription::from_json(&reply.body).unwrap()
}

/// `GET /v1.0/subscriptions/{id}` (the core has no request value for it).
pub async fn get_sub(base: &str, id: &str) -> Reply {
    call("GET", &format!("{base}v1.0/subscriptions/{id}"), None, true).await
}

/// Any request (a nextLink, a control call).
pub async fn call(method: &str, url: &str, body: Option<&str>, auth: bool) -> Reply {
    // Spaces and quotes of OData queries, percent-encoded as a client sends them.
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'<')
        .add(b'>')
        .add(b'`');
    let url = percent_encoding::utf8_percent_encode(url, SET).to_string();
    let mut builder = hyper::Request::builder().method(method).uri(&url);
    if auth {
        builder = builder.header("Authorization", "Bearer any-token");
    }
    if body.is_some() {
        builder = builder.header("Content-Type", "application/json");
    }
    raw(builder
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .expect("a request"))
    .await
}

async fn raw(request: hyper::Request<Full<Bytes>>) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(request)
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// How the test webhook behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Answers handshakes with the Receiver and every notification 202.
    Good,
    /// Echoes something else than the token.
    WrongEcho,
    /// Never answers a handshake.
    Silent,
    /// Answers the first n notifications 500, then 202.
    FailFirst(usize),
}

/// One notification POST as received.
#[derive(Clone, Debug)]
pub struct Got {
    pub at: Instant,
    pub body: Vec<u8>,
    pub content_length: Option<usize>,
}

#[derive(Clone)]
struct HookState {
    mode: Mode,
    receiver: Option<Arc<Receiver>>,
    got: Arc<Mutex<Vec<Got>>>,
    handshakes: Arc<AtomicUsize>,
}

/// A webhook on 127.0.0.1:0.
pub struct Hook {
    pub url: String,
    got: Arc<Mutex<Vec<Got>>>,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hook {
    pub async fn start(mode: Mode, receiver: Option<Arc<Receiver>>) -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let state = HookState {
            mode,
            receiver,
            got: got.clone(),
            handshakes: handshakes.clone(),
        };
        let app = axum::Router::new().fallback(hook).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hook {
            url: format!("http://{addr}/notify"),
            got,
            handshakes,
            task,
        }
    }

    /// How many validation handshakes it answered (or ignored).
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` notifications came, for at most `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Got> {
        let until = Instant::now() + within;
        loop {
            let got = self.got();
            if got.len() >= n || Instant::now() > until {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn hook(State(s): State<HookState>, request: Request) -> Response {
    let query = request.uri().query().unwrap_or("").to_string();
    let content_length = request
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    if query.contains("validationToken=") {
        s.handshakes.fetch_add(1, Ordering::SeqCst);
        return match s.mode {
            Mode::WrongEcho => (
                StatusCode::OK,
                [("content-type", "text/plain")],
                "not-the-token",
            )
                .into_response(),
            Mode::Silent => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                StatusCode::OK.into_response()
            }
            Mode::Good | Mode::FailFirst(_) => {
                let reply = match s.receiver.as_ref() {
                    Some(r) => match r.handle(&query, b"", SystemTime::now()) {
                        Ok(Inbound::Handshake(reply)) => reply,
                        _ => return StatusCode::BAD_REQUEST.into_response(),
                    },
                    None => match graph_chat_notifications::inbound::handshake(&query) {
                        Some(reply) => reply,
                        None => return StatusCode::BAD_REQUEST.into_response(),
                    },
                };
                (
                    StatusCode::from_u16(reply.status()).unwrap(),
                    [("content-type", reply.content_type())],
                    Body::from(reply.body().to_string()),
                )
                    .into_response()
            }
        };
    }
    let n = {
        let mut got = s.got.lock().unwrap();
        got.push(Got {
            at: Instant::now(),
            body,
            content_length,
        });
        got.len()
    };
    match s.mode {
        Mode::FailFirst(k) if n <= k => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => StatusCode::ACCEPTED.into_response(),
    }
}

/// Checks `body` with the Receiver (tokens, clientState, HMAC) and returns each item's
/// decrypted JSON (or its lifecycle event, or `resourceData`), as JSON values.
pub fn open(receiver: &Receiver, body: &[u8]) -> Vec<serde_json::Value> {
    let batch = receiver
        .receive(body, SystemTime::now())
        .unwrap_or_else(|e| panic!("the receiver refuses the body: {e}"));
    let mut buf = DecryptBuffer::new();
    (0..batch.len())
        .map(|i| {
            let opened = batch
                .open(i, &mut buf)
                .unwrap_or_else(|e| panic!("item {i} does not open: {e}"));
            match opened.payload {
                Payload::Decrypted(json) => serde_json::from_str(&json).expect("JSON"),
                Payload::Lifecycle(event) => serde_json::json!({"lifecycleEvent": event.as_str()}),
                Payload::ResourceData(r) => r
                    .map(|r| serde_json::from_str(r.get()).expect("JSON"))
                    .unwrap_or(serde_json::Value::Null),
                other => panic!("unexpected payload {other:?}"),
            }
        })
        .collect()
}

/// The `value[]` items of a body, as JSON.
pub fn items(body: &[u8]) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("JSON");
    v["value"].as_array().cloned().unwrap_or_default()
}

/// Waits until no delivery is pending, for at most `within`.
pub async fn settle(sim: &Simulator, within: Duration) {
    let until = Instant::now() + within;
    while sim.deliveries().pending > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
