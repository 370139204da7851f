//! Tokens and retries of `GraphClient`, against an identity platform and a Graph on loopback:
//! a small axum app that counts what it is asked, answers as scripted, and a raw listener that
//! loses its answers.

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use graph_chat_webhook::notifications::outbound::{self, HttpRequest};
use graph_chat_webhook::notifications::Cloud;
use graph_chat_webhook::tokens::{
    AccessToken, AppTokens, Authority, FixedToken, IdClaims, OAuthClient, PersonTokens,
    RefreshToken, TokenError, TokenSet, TokenSource,
};
use graph_chat_webhook::{ClientError, GraphClient, RetryPolicy};

const TENANT: &str = "tenant-1";
const CLIENT_ID: &str = "app-id";
const CLIENT_SECRET: &str = "app-secret-value";
const REDIRECT: &str = "http://127.0.0.1:9/auth/callback";

/// What the loopback identity platform and Graph have seen, and how they answer.
#[derive(Default)]
struct Sim {
    /// Refresh-token grants asked for (answered or not).
    refreshes: usize,
    /// Client-credentials grants asked for.
    app_grants: usize,
    /// Tokens issued so far (names them: `at-1`, `rt-1`, ...).
    issued: usize,
    /// Refresh tokens the platform refuses (`invalid_grant`).
    revoked: HashSet<String>,
    /// Access tokens Graph takes.
    valid: HashSet<String>,
    /// Codes not yet redeemed.
    codes: HashSet<String>,
    /// The nonce the next id_token carries.
    nonce: String,
    /// How long the token endpoint takes to answer a refresh.
    refresh_delay: Duration,
    /// Graph's next answers, before it looks at the bearer: (status, Retry-After).
    script: VecDeque<(u16, Option<String>)>,
    /// Graph calls: (method, path, bearer).
    calls: Vec<(String, String, String)>,
}

type Shared = Arc<Mutex<Sim>>;

fn unsigned_jwt(claims: serde_json::Value) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

fn json(status: u16, value: serde_json::Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn token_endpoint(sim: &Shared, body: &[u8]) -> Response {
    let form: std::collections::HashMap<String, String> = oauth2::url::form_urlencoded::parse(body)
        .into_owned()
        .collect();
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return json(400, serde_json::json!({"error": "unauthorized_client"}));
    }
    if form
        .get("client_secret")
        .is_some_and(|s| s != CLIENT_SECRET)
    {
        return json(401, serde_json::json!({"error": "invalid_client"}));
    }
    let delay = {
        let mut s = sim.lock().unwrap();
        match grant.as_str() {
            "refresh_token" => s.refreshes += 1,
            "client_credentials" => s.app_grants += 1,
            _ => {}
        }
        s.refresh_delay
    };
    if grant == "refresh_token" {
        std::thread::sleep(delay);
    }
    let mut s = sim.lock().unwrap();
    let ok = match grant.as_str() {
        "refresh_token" => !s.revoked.contains(&form["refresh_token"]),
        "authorization_code" => {
            form.get("code_verifier").is_some_and(|v| v.len() >= 43)
                && form.get("redirect_uri").map(String::as_str) == Some(REDIRECT)
                && s.codes.remove(&form["code"])
        }
        "client_credentials" => form.get("scope").map(String::as_str) == Some("graph/.default"),
        _ => false,
    };
    if !ok {
        return json(400, serde_json::json!({"error": "invalid_grant"}));
    }
    s.issued += 1;
    let n = s.issued;
    let access = format!("at-{n}");
    s.valid.insert(access.clone());
    let mut answer = serde_json::json!({
        "token_type": "Bearer",
        "expires_in": 3600,
        "access_token": access,
    });
    if grant != "client_credentials" {
        answer["refresh_token"] = format!("rt-{n}").into();
    }
    if grant == "authorization_code" {
        answer["id_token"] = unsigned_jwt(serde_json::json!({
            "oid": "user-1", "name": "Adele Vance", "preferred_username": "adele@contoso.test",
            "tid": TENANT, "nonce": s.nonce,
        }))
        .into();
    }
    json(200, answer)
}

async fn handle(
    State(sim): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == format!("/{TENANT}/oauth2/v2.0/token") {
        return tokio::task::spawn_blocking(move || token_endpoint(&sim, &body))
            .await
            .unwrap();
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let mut s = sim.lock().unwrap();
    s.calls
        .push((method.to_string(), uri.path().to_owned(), bearer.clone()));
    if let Some((status, retry_after)) = s.script.pop_front() {
        let mut answer = json(status, serde_json::json!({"error": {"code": "scripted"}}));
        if let Some(v) = retry_after {
            answer
                .headers_mut()
                .insert("retry-after", v.parse().unwrap());
        }
        return answer;
    }
    if s.valid.contains(&bearer) {
        json(200, serde_json::json!({"id": "user-1"}))
    } else {
        json(
            401,
            serde_json::json!({"error": {"code": "InvalidAuthenticationToken"}}),
        )
    }
}

/// The loopback identity platform and Graph, on one port.
struct Server {
    sim: Shared,
    base: String,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Self {
        let sim = Shared::default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(handle).with_state(sim.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            sim,
            base,
            _runtime: runtime,
        }
    }

    fn sim(&self) -> std::sync::MutexGuard<'_, Sim> {
        self.sim.lock().unwrap()
    }

    fn oauth(&self, secret: Option<&str>) -> Arc<OAuthClient> {
        let authority = Authority::new(&self.base, TENANT).unwrap();
        Arc::new(OAuthClient::new(authority, CLIENT_ID, secret, Some(REDIRECT)).unwrap())
    }

    /// A person whose access token `access` expires at `expires_at`, refreshed with `rt-0`.
    fn person(&self, access: &str, expires_at: SystemTime) -> PersonTokens {
        let set = TokenSet::new(
            AccessToken::new(access),
            Some(RefreshToken::new("rt-0")),
            expires_at,
        );
        PersonTokens::new(self.oauth(None), set)
    }

    /// A client with `tokens` whose waits are recorded, not slept.
    fn graph(&self, tokens: Arc<dyn TokenSource>) -> (GraphClient, Arc<Mutex<Vec<Duration>>>) {
        let waits = Arc::new(Mutex::new(Vec::new()));
        let recorded = waits.clone();
        let graph = GraphClient::with_token_source(&self.base, tokens)
            .with_sleeper(move |d| recorded.lock().unwrap().push(d));
        (graph, waits)
    }

    fn bearers(&self) -> Vec<String> {
        self.sim().calls.iter().map(|c| c.2.clone()).collect()
    }
}

/// A GET (of a chat, with a query).
fn me() -> HttpRequest {
    outbound::get_chat("19:abc@thread.v2").unwrap()
}

/// A POST with a body (a new message).
fn post() -> HttpRequest {
    outbound::MessageRequest::send("19:abc@thread.v2", "hello")
        .build()
        .unwrap()
}

fn hour() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

#[test]
fn a_fixed_token_is_sent_as_is_and_a_401_is_the_answer() {
    let server = Server::start();
    server.sim().valid.insert("fixed".into());
    let graph = GraphClient::new(&server.base, "fixed");
    assert_eq!(graph.send(&me()).unwrap().status, 200);
    assert_eq!(graph.send(&me()).unwrap().status, 200);
    assert_eq!(server.bearers(), ["fixed", "fixed"]);
    assert_eq!(server.sim().calls[0].1, "/v1.0/chats/19:abc@thread.v2");

    let stale = GraphClient::new(&server.base, "stale");
    assert_eq!(stale.send(&me()).unwrap().status, 401);
    assert_eq!(
        server.sim().calls.len(),
        3,
        "a 401 with a fixed token is not retried"
    );
    assert_eq!(server.sim().refreshes, 0);
}

#[test]
fn a_persons_token_is_refreshed_before_it_expires() {
    let server = Server::start();
    // Good for an hour: used as is.
    let fresh = server.person("at-old", hour());
    server.sim().valid.insert("at-old".into());
    assert_eq!(fresh.token().unwrap().secret(), "at-old");
    assert_eq!(server.sim().refreshes, 0);

    // Not expired yet, but within the margin: refreshed before it is used.
    let soon = server
        .person("at-old", SystemTime::now() + Duration::from_secs(240))
        .with_margin(Duration::from_secs(300));
    let (graph, _) = server.graph(Arc::new(soon));
    assert_eq!(graph.send(&me()).unwrap().status, 200);
    assert_eq!(server.sim().refreshes, 1);
    assert_eq!(server.bearers(), ["at-1"]);

    // Already expired (kept from before a restart): refreshed on first use.
    let expired = server.person("at-old", SystemTime::now() - Duration::from_secs(1));
    assert_eq!(expired.token().unwrap().secret(), "at-2");
    assert_eq!(expired.token().unwrap().secret(), "at-2");
    assert_eq!(server.sim().refreshes, 2);
    assert!(expired.expires_at() > SystemTime::now() + Duration::from_secs(3000));
}

#[test]
fn eight_callers_at_once_share_one_refresh() {
    let server = Server::start();
    server.sim().refresh_delay = Duration::from_millis(300);
    let person = Arc::new(server.person("at-old", SystemTime::now() - Duration::from_secs(1)));
    let barrier = Arc::new(Barrier::new(8));
    let tokens: Vec<String> = (0..8)
        .map(|_| {
            let (person, barrier) = (person.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                person.token().unwrap().secret().to_owned()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(server.sim().refreshes, 1);
    assert!(tokens.iter().all(|t| t == "at-1"), "{tokens:?}");
}

#[test]
fn a_401_gets_one_refresh_and_one_retry_and_a_second_401_is_the_answer() {
    let server = Server::start();
    // Graph no longer takes the token the person holds (revoked sessions, a clock skew).
    let person = Arc::new(server.person("at-old", hour()));
    let (graph, waits) = server.graph(person.clone());
    let answer = graph.send(&me()).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(server.bearers(), ["at-old", "at-1"]);
    assert_eq!(server.sim().refreshes, 1);
    assert!(waits.lock().unwrap().is_empty());

    // Graph refuses the new token too: one refresh, one retry, and its 401 comes back.
    server.sim().calls.clear();
    for _ in 0..3 {
        server.sim().script.push_back((401, None));
    }
    let answer = graph.send(&me()).unwrap();
    assert_eq!(answer.status, 401);
    assert_eq!(server.bearers(), ["at-1", "at-2"]);
    assert_eq!(server.sim().refreshes, 2);

    // A token another caller already replaced is not refreshed again.
    let before = server.sim().refreshes;
    let current = person.token().unwrap();
    let again = person.after_rejection(&AccessToken::new("at-1")).unwrap();
    assert_eq!(again, current);
    assert_eq!(server.sim().refreshes, before);
}

#[test]
fn invalid_grant_marks_the_person_revoked_for_good() {
    let server = Server::start();
    server.sim().revoked.insert("rt-0".into());
    let person = Arc::new(server.person("at-old", SystemTime::now() - Duration::from_secs(1)));
    assert!(!person.is_revoked());
    let (graph, _) = server.graph(person.clone());
    let err = graph.send(&me()).unwrap_err();
    assert!(
        matches!(err, ClientError::Token(TokenError::InvalidGrant)),
        "{err:?}"
    );
    assert!(person.is_revoked());
    assert!(
        server.sim().calls.is_empty(),
        "nothing sent to Graph without a token"
    );
    // Final: the platform is not asked again.
    assert_eq!(person.token().unwrap_err(), TokenError::InvalidGrant);
    assert_eq!(
        person
            .after_rejection(&AccessToken::new("at-old"))
            .unwrap_err(),
        TokenError::InvalidGrant
    );
    assert_eq!(server.sim().refreshes, 1);
}

#[test]
fn each_rotated_refresh_token_reaches_the_callback() {
    let server = Server::start();
    let stored = Arc::new(Mutex::new(Vec::new()));
    let sink = stored.clone();
    // A margin longer than a lifetime: every use refreshes.
    let person = server
        .person("at-old", SystemTime::now() - Duration::from_secs(1))
        .with_margin(Duration::from_secs(7200))
        .on_rotate(move |rt| sink.lock().unwrap().push(rt.secret().to_owned()));
    assert_eq!(person.token().unwrap().secret(), "at-1");
    assert_eq!(person.token().unwrap().secret(), "at-2");
    assert_eq!(*stored.lock().unwrap(), ["rt-1", "rt-2"]);
    // The second refresh spent the first rotated token: revoking it does not matter, the
    // source holds the newest.
    server.sim().revoked.insert("rt-1".into());
    assert_eq!(person.token().unwrap().secret(), "at-3");
}

#[test]
fn a_new_sign_in_replaces_a_revoked_persons_tokens() {
    let server = Server::start();
    server.sim().revoked.insert("rt-0".into());
    let stored = Arc::new(Mutex::new(Vec::new()));
    let sink = stored.clone();
    let person = server
        .person("at-old", SystemTime::now() - Duration::from_secs(1))
        .on_rotate(move |rt| sink.lock().unwrap().push(rt.secret().to_owned()));
    assert_eq!(person.token().unwrap_err(), TokenError::InvalidGrant);
    assert!(person.is_revoked());
    // The person signs in again: the source answers with that sign-in's tokens, and its
    // refresh token reaches the callback to be kept.
    person.replace(TokenSet::new(
        AccessToken::new("at-signed-in"),
        Some(RefreshToken::new("rt-signed-in")),
        hour(),
    ));
    assert!(!person.is_revoked());
    assert_eq!(person.token().unwrap().secret(), "at-signed-in");
    assert_eq!(*stored.lock().unwrap(), ["rt-signed-in"]);
    assert_eq!(
        server.sim().refreshes,
        1,
        "the revoked token is not tried again"
    );
}

#[test]
fn the_apps_token_is_cached_until_rejected() {
    let server = Server::start();
    let oauth = server.oauth(Some(CLIENT_SECRET));
    let oauth = Arc::try_unwrap(oauth).unwrap();
    let app = Arc::new(AppTokens::new(oauth, "graph/.default"));
    let (graph, _) = server.graph(app.clone());
    for _ in 0..3 {
        assert_eq!(graph.send(&me()).unwrap().status, 200);
    }
    assert_eq!(server.sim().app_grants, 1);
    assert_eq!(server.bearers(), ["at-1", "at-1", "at-1"]);
    // Rejected: a new one, once; an older rejected token does not ask again.
    let first = app.token().unwrap();
    let second = app.after_rejection(&first).unwrap();
    assert_eq!(second.secret(), "at-2");
    assert_eq!(app.after_rejection(&first).unwrap(), second);
    assert_eq!(server.sim().app_grants, 2);

    // A wrong secret: refused, with the status and the error code only.
    let wrong = OAuthClient::new(
        Authority::new(&server.base, TENANT).unwrap(),
        CLIENT_ID,
        Some("not-the-secret"),
        None,
    )
    .unwrap();
    let err = wrong.client_credentials("graph/.default").unwrap_err();
    assert_eq!(
        err,
        TokenError::Refused {
            status: 401,
            error: "invalid_client".into()
        }
    );
}

#[test]
fn a_sign_in_redeems_its_code_once_with_pkce_and_a_nonce() {
    let server = Server::start();
    let oauth = server.oauth(None);
    let sign_in = oauth.begin_sign_in(
        &["openid", "profile", "offline_access", "Chat.ReadWrite"],
        Some("adele@contoso.test"),
    );
    let url = oauth2::url::Url::parse(&sign_in.url).unwrap();
    assert_eq!(url.path(), format!("/{TENANT}/oauth2/v2.0/authorize"));
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(
        query["scope"],
        "openid profile offline_access Chat.ReadWrite"
    );
    assert_eq!(query["login_hint"], "adele@contoso.test");
    assert_eq!(query["state"], *sign_in.state);
    assert_eq!(query["nonce"], *sign_in.nonce);
    assert!(query["code_challenge"].len() >= 43);
    assert!(!query.values().any(|v| v == sign_in.pkce_verifier.secret()));
    // Each sign-in its own state, nonce and verifier.
    let other = oauth.begin_sign_in(&["openid"], None);
    assert_ne!(*other.state, *sign_in.state);
    assert_ne!(*other.nonce, *sign_in.nonce);
    assert_ne!(other.pkce_verifier, sign_in.pkce_verifier);
    assert!(!other.url.contains("login_hint"));

    server.sim().codes.insert("code-1".into());
    server.sim().nonce = sign_in.nonce.to_string();
    let set = oauth.redeem_code("code-1", &sign_in.pkce_verifier).unwrap();
    assert_eq!(set.access_token.secret(), "at-1");
    assert_eq!(set.refresh_token.as_ref().unwrap().secret(), "rt-1");
    let who = set.id_claims.unwrap();
    assert_eq!(who.oid, "user-1");
    assert_eq!(who.name.as_deref(), Some("Adele Vance"));
    assert_eq!(
        who.preferred_username.as_deref(),
        Some("adele@contoso.test")
    );
    assert_eq!(who.tid.as_deref(), Some(TENANT));
    who.check_nonce(&sign_in.nonce).unwrap();
    assert_eq!(
        who.check_nonce(&other.nonce).unwrap_err(),
        TokenError::NonceMismatch
    );
    // A code is good once.
    assert_eq!(
        oauth
            .redeem_code("code-1", &sign_in.pkce_verifier)
            .unwrap_err(),
        TokenError::InvalidGrant
    );
}

#[test]
fn authorities_per_cloud_and_only_https_off_this_machine() {
    let cases = [
        (Cloud::Global, "https://login.microsoftonline.com"),
        (Cloud::UsGovernment, "https://login.microsoftonline.us"),
        (Cloud::UsGovernmentDod, "https://login.microsoftonline.us"),
        (Cloud::China, "https://login.chinacloudapi.cn"),
    ];
    for (cloud, base) in cases {
        let a = Authority::for_cloud(cloud, "t");
        assert_eq!(a.authorize_url(), format!("{base}/t/oauth2/v2.0/authorize"));
        assert_eq!(a.token_url(), format!("{base}/t/oauth2/v2.0/token"));
    }
    assert!(Authority::new("http://127.0.0.1:8081/", "t").is_ok());
    assert!(Authority::new("https://login.example.com", "t").is_ok());
    for (base, tenant) in [
        ("http://login.example.com", "t"),
        ("ftp://127.0.0.1", "t"),
        ("http://127.0.0.1", "a/b"),
        ("http://127.0.0.1", ""),
    ] {
        assert!(
            matches!(Authority::new(base, tenant), Err(TokenError::Config { .. })),
            "{base} {tenant}"
        );
    }
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    let server = Server::start();
    server.sim().valid.insert("t".into());
    server.sim().script.push_back((429, Some("1".into())));
    let (graph, waits) = server.graph(Arc::new(FixedToken::new(AccessToken::new("t"))));
    let answer = graph.send(&me()).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(server.sim().calls.len(), 2);
    assert_eq!(*waits.lock().unwrap(), [Duration::from_secs(1)]);

    // A Retry-After longer than the policy's cap is not waited for: the 429 comes back.
    server.sim().script.push_back((429, Some("3600".into())));
    let answer = graph.send(&me()).unwrap();
    assert_eq!(answer.status, 429);
    assert_eq!(answer.retry_after.as_deref(), Some("3600"));
    assert_eq!(server.sim().calls.len(), 3);
    assert_eq!(waits.lock().unwrap().len(), 1);

    // A caller that queues its own retries gets the 429 at once.
    server.sim().script.push_back((429, Some("1".into())));
    let answer = graph
        .clone()
        .with_retry(RetryPolicy::none())
        .send(&me())
        .unwrap();
    assert_eq!(answer.status, 429);
    assert_eq!(server.sim().calls.len(), 4);
    assert_eq!(waits.lock().unwrap().len(), 1);
}

#[test]
fn a_503_without_retry_after_backs_off_within_the_attempts() {
    let server = Server::start();
    server.sim().valid.insert("t".into());
    for _ in 0..2 {
        server.sim().script.push_back((503, None));
    }
    let (graph, waits) = server.graph(Arc::new(FixedToken::new(AccessToken::new("t"))));
    assert_eq!(graph.send(&me()).unwrap().status, 200);
    assert_eq!(server.sim().calls.len(), 3);
    let recorded = waits.lock().unwrap().clone();
    assert_eq!(recorded.len(), 2);
    // Full jitter below a ceiling that doubles: 1 s, then 2 s.
    assert!(recorded[0] <= Duration::from_secs(1), "{recorded:?}");
    assert!(recorded[1] <= Duration::from_secs(2), "{recorded:?}");

    // Throttled past the attempts: the last 503 comes back after four sends.
    waits.lock().unwrap().clear();
    for _ in 0..10 {
        server.sim().script.push_back((503, None));
    }
    assert_eq!(graph.send(&me()).unwrap().status, 503);
    assert_eq!(server.sim().calls.len(), 3 + 4);
    assert_eq!(waits.lock().unwrap().len(), 3);
}

/// A listener that reads each request whole, counts it, and closes without answering.
fn answer_lost() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then the body its Content-Length announces.
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, seen)
}

#[test]
fn a_post_whose_answer_was_lost_is_not_sent_again() {
    let (addr, seen) = answer_lost();
    let waits = Arc::new(Mutex::new(Vec::new()));
    let recorded = waits.clone();
    let graph = GraphClient::new(&format!("http://{addr}"), "t")
        .with_sleeper(move |d| recorded.lock().unwrap().push(d));
    let send = post();
    let err = graph.send(&send).unwrap_err();
    assert!(
        matches!(err, ClientError::OutcomeUnknown { method: "POST", .. }),
        "{err:?}"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "exactly one request reached the server"
    );
    assert!(waits.lock().unwrap().is_empty());
    assert!(!err.to_string().contains("hello"));

    // A GET whose answer was lost is sent again, up to the policy's attempts.
    let err = graph.send(&me()).unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 1 + 4);
    assert_eq!(waits.lock().unwrap().len(), 3);
}

#[test]
fn a_post_that_never_left_is_retried() {
    // A port nobody listens on: the connection fails before anything is sent.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let waits = Arc::new(Mutex::new(Vec::new()));
    let recorded = waits.clone();
    let graph = GraphClient::new(&format!("http://{addr}"), "t")
        .with_sleeper(move |d| recorded.lock().unwrap().push(d));
    let send = post();
    let err = graph.send(&send).unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err:?}");
    assert_eq!(waits.lock().unwrap().len(), 3, "four attempts");
}

#[test]
fn no_secret_in_debug_or_display() {
    let server = Server::start();
    let oauth = server.oauth(Some(CLIENT_SECRET));
    let sign_in = oauth.begin_sign_in(&["openid"], None);
    let set = TokenSet::new(
        AccessToken::new("access-secret"),
        Some(RefreshToken::new("refresh-secret")),
        hour(),
    );
    let claims = IdClaims::from_id_token(&unsigned_jwt(
        serde_json::json!({"oid": "u", "nonce": "nonce-secret"}),
    ))
    .unwrap();
    let person = server.person("access-secret", hour());
    let app = AppTokens::new(
        OAuthClient::new(
            Authority::new(&server.base, TENANT).unwrap(),
            CLIENT_ID,
            Some(CLIENT_SECRET),
            None,
        )
        .unwrap(),
        "graph/.default",
    );
    let graph = GraphClient::new(&server.base, "access-secret");
    let errors = [
        TokenError::InvalidGrant,
        TokenError::Refused {
            status: 400,
            error: "invalid_scope".into(),
        },
        TokenError::Transport {
            reason: "refused".into(),
        },
        TokenError::Malformed { reason: "x" },
        TokenError::NonceMismatch,
    ];
    let mut shown = vec![
        format!("{:?}", AccessToken::new("access-secret")),
        format!("{:?}", RefreshToken::new("refresh-secret")),
        format!("{set:?}"),
        format!("{claims:?}"),
        format!("{sign_in:?}"),
        format!("{oauth:?}"),
        format!("{person:?}"),
        format!("{app:?}"),
        format!("{:?}", FixedToken::new(AccessToken::new("access-secret"))),
        format!("{graph:?}"),
    ];
    for e in errors {
        shown.push(format!("{e:?}"));
        shown.push(e.to_string());
        let e = ClientError::from(e);
        shown.push(format!("{e:?}"));
        shown.push(e.to_string());
    }
    let secrets = [
        "access-secret",
        "refresh-secret",
        "nonce-secret",
        CLIENT_SECRET,
        sign_in.pkce_verifier.secret(),
        sign_in.state.as_str(),
        sign_in.nonce.as_str(),
    ];
    for text in &shown {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    assert!(shown[0].contains("[redacted]"));
}
