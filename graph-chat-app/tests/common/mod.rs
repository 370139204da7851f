//! The app and the simulator in one test process, on loopback, and a blocking HTTP client for the
//! test thread (the runtime runs on its own threads meanwhile).
#![allow(dead_code)]

#[path = "../../../tests/common/example.rs"]
mod example;
pub mod pg;
#[allow(unused_imports)]
pub use example::example_path;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use graph_chat_app::{demo, App, Config};
use graph_chat_webhook::JwksSource;
use graph_sim::{Sender, Simulator};
use serde_json::{json, Value};

/// How long a test waits for something Graph-paced to happen (a notification, a resync):
/// generous, since the machine may be busy; the wait ends as soon as it happens.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub const COLLEAGUE: (&str, &str) = ("5b7ac4a3-7c1c-4cd3-9a8e-2f5e0b6e1c01", "Adele Vance");

/// An access token of `user` (an id or a user principal name) for `sim`'s Graph, from its
/// identity platform (the code flow with `login_hint`, no browser).
pub fn token_for(sim: &Simulator, user: &str) -> String {
    let identity = sim.identity();
    demo::sign_in_as(&sim.base_url(), &identity.tenant_id, &identity.app_id, user)
        .unwrap()
        .access_token
        .secret()
        .to_owned()
}

/// Creates a group chat of the user and [`COLLEAGUE`] through `sim`'s Graph API, as the user;
/// its id.
pub fn create_chat(http: &ureq::Agent, sim: &Simulator, topic: &str) -> String {
    let user = sim.identity().user_id;
    create_chat_as(http, sim, &user, &[COLLEAGUE.0], topic)
}

/// Creates a group chat of `user` and `others` through `sim`'s Graph API, as `user`; its id.
pub fn create_chat_as(
    http: &ureq::Agent,
    sim: &Simulator,
    user: &str,
    others: &[&str],
    topic: &str,
) -> String {
    let member = |id: &str| {
        json!({"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"],
               "user@odata.bind": format!("https://graph.microsoft.com/v1.0/users('{id}')")})
    };
    let mut members = vec![member(user)];
    members.extend(others.iter().map(|id| member(id)));
    let body = json!({ "chatType": "group", "topic": topic, "members": members });
    let mut response = http
        .post(&format!("{}v1.0/chats", sim.base_url()))
        .header("Authorization", format!("Bearer {}", token_for(sim, user)))
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let chat: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    chat["id"].as_str().unwrap().to_owned()
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "chat_session";

/// The value of cookie `name` a response sets, if it sets one.
pub fn set_cookie(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// An agent that neither follows redirects nor keeps cookies: each step of a sign-in seen.
pub fn raw_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

/// The `Location` a response redirects to.
pub fn location(response: &ureq::http::Response<ureq::Body>) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in a {}", response.status()))
        .to_owned()
}

/// Signs `user` (an id or a user principal name) in to the app at `app` (its base URL) as a
/// browser does, with `login_hint`: `/auth/login`, the identity platform's redirect, the
/// callback with the login cookie. The session cookie's value.
pub fn sign_in_cookie(app: &str, user: &str) -> String {
    let raw = raw_agent();
    let login = raw
        .get(&format!("{app}auth/login?login_hint={}", encode(user)))
        .call()
        .unwrap();
    assert_eq!(login.status().as_u16(), 302);
    let pending = set_cookie(&login, "chat_login").expect("a login cookie");
    let authorize = raw.get(&location(&login)).call().unwrap();
    assert_eq!(
        authorize.status().as_u16(),
        302,
        "the authorize endpoint redirects"
    );
    let callback = raw
        .get(&location(&authorize))
        .header("Cookie", format!("chat_login={pending}"))
        .call()
        .unwrap();
    assert_eq!(callback.status().as_u16(), 302, "the callback redirects");
    assert_eq!(location(&callback), "/");
    set_cookie(&callback, SESSION_COOKIE).expect("a session cookie")
}

/// An agent like [`agent`] that sends `cookie` (the session's value) with every request.
pub fn agent_with_session(cookie: &str) -> ureq::Agent {
    let header = format!("{SESSION_COOKIE}={cookie}");
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .middleware(
            move |mut request: ureq::http::Request<ureq::SendBody>,
                  next: ureq::middleware::MiddlewareNext| {
                if let Ok(v) = ureq::http::HeaderValue::from_str(&header) {
                    request.headers_mut().insert("cookie", v);
                }
                next.handle(request)
            },
        )
        .build()
        .into()
}

/// Signs in to the app at `app` as a person does on the offline demo's page: `/auth/login`
/// without a hint, the identity platform's list of users, one click on the first. The
/// session cookie's value.
pub fn sign_in_from_list(app: &str) -> String {
    let raw = raw_agent();
    let login = raw.get(&format!("{app}auth/login")).call().unwrap();
    assert_eq!(login.status().as_u16(), 302);
    let pending = set_cookie(&login, "chat_login").expect("a login cookie");
    let authorize = location(&login);
    let mut list = raw.get(&authorize).call().unwrap();
    assert_eq!(list.status().as_u16(), 200, "a list of users");
    let page = list.body_mut().read_to_string().unwrap();
    let href = page
        .split("href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link per user")
        .replace("&amp;", "&");
    let origin = url::Url::parse(&authorize).unwrap();
    let user = origin.join(&href).unwrap();
    let picked = raw.get(user.as_str()).call().unwrap();
    assert_eq!(picked.status().as_u16(), 302, "one click signs in");
    let callback = raw
        .get(&location(&picked))
        .header("Cookie", format!("chat_login={pending}"))
        .call()
        .unwrap();
    assert_eq!(callback.status().as_u16(), 302);
    set_cookie(&callback, SESSION_COOKIE).expect("a session cookie")
}

/// An agent signed in to the app at `app` as `user`.
pub fn sign_in(app: &str, user: &str) -> ureq::Agent {
    agent_with_session(&sign_in_cookie(app, user))
}

/// The simulator's configuration for the tests: fast retries, seeded, tokens checked.
pub fn sim_config() -> graph_sim::Config {
    graph_sim::Config {
        retry_base: Duration::from_millis(100),
        seed: 7,
        ..graph_sim::Config::default()
    }
}

/// The `clientState` the app under `data` keeps (sealed; opened with the app's key).
pub fn client_state(data: &Path) -> String {
    let sealer = graph_chat_app::secrets::Sealer::load_or_create(data).unwrap();
    let accounts = graph_chat_app::accounts::Accounts::open(data, sealer).unwrap();
    accounts.client_state().unwrap().to_string()
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        // The process id alone is not unique: test runs in other sandboxes share `/tmp` and
        // may have the same one (and would remove this directory as theirs). The time and a
        // random number make the name this run's.
        let mut random = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "graph-chat-app-{tag}-{}-{}-{nanos}-{:016x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            u64::from_le_bytes(random)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// An answer's status and JSON body (null when empty or not JSON).
fn answer(mut response: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// GET `url`: the status and the JSON body (null when empty or not JSON).
pub fn get(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    answer(agent.get(url).call().unwrap())
}

/// POST `body` as JSON to `url`.
pub fn post(agent: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    answer(
        agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap(),
    )
}

/// `GET /api/chats` of the app at `app` (its base URL, ending in `/`).
pub fn chats(agent: &ureq::Agent, app: &str) -> Vec<Value> {
    let (status, chats) = get(agent, &format!("{app}api/chats"));
    assert_eq!(status, 200, "{chats}");
    chats.as_array().unwrap().clone()
}

/// `GET /api/chats/{chat}/messages` of the app at `app`.
pub fn messages(agent: &ureq::Agent, app: &str, chat: &str) -> Vec<Value> {
    let (status, items) = get(agent, &format!("{app}api/chats/{}/messages", encode(chat)));
    assert_eq!(status, 200, "{items}");
    items.as_array().unwrap().clone()
}

/// Waits until `probe` gives `Some`, or panics saying what did not happen.
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: Option<String>,
    pub data: Value,
}

/// Reads `GET /api/events` on a thread of its own.
pub struct Sse {
    events: mpsc::Receiver<SseEvent>,
}

impl Sse {
    /// `GET /api/events` of the app at `base` with the session `cookie` (its value).
    pub fn open(base: &str, cookie: &str, last_event_id: Option<i64>, after: Option<i64>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = match after {
            Some(a) => format!("{base}api/events?after={a}"),
            None => format!("{base}api/events"),
        };
        let mut request = agent
            .get(&url)
            .header("Cookie", format!("{SESSION_COOKIE}={cookie}"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.call().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let reader = std::io::BufReader::new(response.into_body().into_reader());
            let (mut id, mut event, mut data) = (None, None, String::new());
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if line.is_empty() {
                    if !data.is_empty() {
                        let parsed = serde_json::from_str(&data).unwrap_or(Value::Null);
                        if tx
                            .send(SseEvent {
                                id: id.take(),
                                event: event.take(),
                                data: parsed,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    data.clear();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
        });
        Self { events: rx }
    }

    /// The next event matching `want`, skipping others.
    pub fn until(&self, what: &str, want: impl Fn(&SseEvent) -> bool) -> SseEvent {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if want(&e) => return e,
                Ok(_) => {}
                Err(_) => panic!("no event: {what}"),
            }
        }
    }

    /// Whether the stream ends (the server closes it) within `within`; events on the way are
    /// skipped.
    pub fn ends_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// Every event that arrives within `within`.
    pub fn drain(&self, within: Duration) -> Vec<SseEvent> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        while let Ok(e) = self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.push(e);
        }
        out
    }
}

/// The simulator and the app, in this process.
pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub sim: Option<Simulator>,
    pub app: Option<App>,
    pub dir: TempDir,
    /// Sends the signed-in user's session with every request.
    pub http: ureq::Agent,
    /// The signed-in user's session (the cookie's value).
    pub session: String,
    pub resync_every: Duration,
    /// The app's `--database` (PostgreSQL), if any.
    pub database: Option<String>,
}

impl Harness {
    /// A simulator (fast retries, seeded, tokens checked) with one group chat the user and a
    /// colleague are in, and the app on it, the user signed in (`http` sends their session).
    pub fn start(resync_every: Duration) -> Self {
        Self::start_with(resync_every, sim_config())
    }

    /// The same on a simulator of `config`.
    pub fn start_with(resync_every: Duration, config: graph_sim::Config) -> Self {
        Self::start_on(resync_every, config, None)
    }

    /// The same, the app's records and caches in the PostgreSQL database at `database`.
    pub fn start_on(
        resync_every: Duration,
        config: graph_sim::Config,
        database: Option<String>,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = TempDir::new("e2e");
        let sim = runtime.block_on(Simulator::start(config)).unwrap();
        let mut harness = Self {
            runtime,
            sim: Some(sim),
            app: None,
            dir,
            http: agent(),
            session: String::new(),
            resync_every,
            database,
        };
        harness.create_chat("Project");
        harness.start_app();
        harness.session = sign_in_cookie(&harness.url(), &harness.user());
        harness.http = agent_with_session(&harness.session);
        harness
    }

    /// The URL a browser opens to sign in as the user (`login_hint`): it lands on the page.
    pub fn login_url(&self) -> String {
        format!(
            "{}auth/login?login_hint={}",
            self.url(),
            encode(&self.user())
        )
    }

    /// The `Cookie` header's value that carries the user's session.
    pub fn cookie(&self) -> String {
        format!("{SESSION_COOKIE}={}", self.session)
    }

    /// The user's event stream (`GET /api/events`).
    pub fn events(&self, last_event_id: Option<i64>, after: Option<i64>) -> Sse {
        Sse::open(&self.url(), &self.session, last_event_id, after)
    }

    /// The signed-in user's id (the simulator's first user).
    pub fn user(&self) -> String {
        self.sim().identity().user_id
    }

    pub fn sim(&self) -> &Simulator {
        self.sim.as_ref().unwrap()
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        self.app().url().to_owned()
    }

    /// Creates a group chat through the simulator's Graph API, as the user.
    pub fn create_chat(&self, topic: &str) -> String {
        create_chat(&self.http, self.sim(), topic)
    }

    pub fn config(&self) -> Config {
        let identity = self.sim().identity();
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data: self.dir.path().join("data"),
            resync_every: self.resync_every,
            graph: self.sim().base_url(),
            tenant_id: identity.tenant_id,
            client_id: identity.app_id.clone(),
            app_id: identity.app_id,
            client_secret: None,
            authority: self.sim().base_url().trim_end_matches('/').to_owned(),
            jwks: JwksSource::Url(identity.jwks_url),
            public_url: None,
            trust_proxy: false,
            frame_ancestors: None,
            event_retention: graph_chat_app::store::EVENT_RETENTION,
            key_file: None,
            renew_every: None,
            database: self.database.clone(),
        }
    }

    /// The signed-in user's Graph side in the app.
    pub fn person(&self) -> std::sync::Arc<graph_chat_app::sync::GraphSync> {
        self.app()
            .person(&self.user())
            .expect("the user is signed in")
    }

    pub fn start_app(&mut self) {
        let app = self.runtime.block_on(App::start(self.config())).unwrap();
        self.app = Some(app);
    }

    pub fn stop_app(&mut self) {
        if let Some(app) = self.app.take() {
            self.runtime.block_on(app.shutdown());
        }
    }

    pub fn chat_ids(&self) -> Vec<String> {
        chats(&self.http, &self.url())
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The first chat the app lists (the one `start` creates, unless a test made more).
    pub fn first_chat(&self) -> String {
        self.chat_ids()
            .into_iter()
            .next()
            .expect("the app lists the chat")
    }

    pub fn chat(&self, id: &str) -> Value {
        chats(&self.http, &self.url())
            .into_iter()
            .find(|c| c["id"] == id)
            .unwrap_or(Value::Null)
    }

    pub fn messages(&self, chat_id: &str) -> Vec<Value> {
        messages(&self.http, &self.url(), chat_id)
    }

    pub fn message(&self, chat_id: &str, id: &str) -> Option<Value> {
        self.messages(chat_id).into_iter().find(|m| m["id"] == id)
    }

    /// A call to the simulator's Graph API as the user: the status and the JSON answer (null
    /// when empty).
    pub fn graph(&self, method: &str, path: &str) -> (u16, Value) {
        let url = format!("{}{}", self.sim().base_url(), path.trim_start_matches('/'));
        let token = token_for(self.sim(), &self.user());
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        answer(self.http.run(request).unwrap())
    }

    /// The colleague writes `text`; the new message's id.
    pub fn says(&self, chat_id: &str, text: &str) -> String {
        self.colleague_writes(chat_id, text, "text")["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The colleague writes; the chatMessage the simulator returns.
    pub fn colleague_writes(&self, chat_id: &str, content: &str, content_type: &str) -> Value {
        self.sim()
            .colleague_writes(
                chat_id,
                Sender {
                    id: COLLEAGUE.0.into(),
                    display_name: COLLEAGUE.1.into(),
                },
                content,
                content_type,
            )
            .unwrap()
    }

    /// Waits until the app's view of `chat_id` matches Graph's truth.
    pub fn converged(&self, chat_id: &str) {
        self.converged_within(chat_id, self.resync_every + PATIENCE);
    }

    /// Waits, at most `within`, until the app's view of `chat_id` matches Graph's truth.
    pub fn converged_within(&self, chat_id: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let truth = expected_view(
                &self.sim().truth(chat_id).unwrap(),
                &self.sim().identity().user_id,
            );
            let seen = observed_view(&self.messages(chat_id));
            if truth == seen {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the view did not converge:\ntruth {truth:?}\nseen  {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop_app();
        if let Some(sim) = self.sim.take() {
            self.runtime.block_on(sim.shutdown());
        }
    }
}

pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What the page must show for Graph's messages, by the rules of
/// `docs/contracts.md#the-chat-app`, in order:
/// (id, state, content): the content of text messages as sent; of HTML ones, only whether
/// there is any (the page gets it sanitized).
pub fn expected_view(truth: &[Value], me: &str) -> Vec<(String, String, Option<String>)> {
    let mut messages: Vec<&Value> = truth.iter().collect();
    messages.sort_by_key(|m| {
        (
            m["createdDateTime"].as_str().unwrap_or("").to_owned(),
            m["id"].as_str().and_then(|s| s.parse::<u128>().ok()),
        )
    });
    messages
        .into_iter()
        .map(|m| {
            let id = m["id"].as_str().unwrap_or("").to_owned();
            let deleted = !m["deletedDateTime"].is_null();
            let blocked =
                m["policyViolation"]["dlpAction"] == "BlockAccess" && m["from"]["user"]["id"] != me;
            let state = if deleted {
                "deleted"
            } else if blocked {
                "blocked"
            } else if !m["lastEditedDateTime"].is_null() {
                "edited"
            } else {
                "visible"
            };
            let html = m["body"]["contentType"] == "html";
            let content = (state == "visible" || state == "edited").then(|| {
                if html {
                    "(html)".to_owned()
                } else {
                    m["body"]["content"].as_str().unwrap_or("").to_owned()
                }
            });
            (id, state.to_owned(), content)
        })
        .collect()
}

pub fn observed_view(items: &[Value]) -> Vec<(String, String, Option<String>)> {
    items
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or("").to_owned(),
                m["state"].as_str().unwrap_or("").to_owned(),
                m["content"].as_str().map(|c| {
                    if m["contentType"] == "html" {
                        "(html)".to_owned()
                    } else {
                        c.to_owned()
                    }
                }),
            )
        })
        .collect()
}

/// A `chat` process (the example) on the Graph `sim`, killed when dropped.
pub struct ChatProcess {
    child: std::process::Child,
    /// Its own URL (`http://127.0.0.1:PORT/`).
    pub app: String,
}

impl ChatProcess {
    /// Starts `chat` on `sim`, its state under `data`, with `args` besides; returns at once
    /// (see [`ChatProcess::ready`]) with the lines it prints.
    pub fn spawn(
        sim: &Simulator,
        data: &Path,
        args: &[&str],
    ) -> (std::process::Child, mpsc::Receiver<String>) {
        let identity = sim.identity();
        let mut child = std::process::Command::new(example_path("chat"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--data",
                data.to_str().unwrap(),
                "--graph",
                &sim.base_url(),
                "--tenant-id",
                &identity.tenant_id,
                "--app-id",
                &identity.app_id,
            ])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        (child, rx)
    }

    /// The process once it printed its `app:` line.
    pub fn ready(child: std::process::Child, lines: mpsc::Receiver<String>) -> Self {
        let app = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(90))
                .expect("chat printed its URL");
            if let Some(url) = line.strip_prefix("app: ") {
                break url.to_owned();
            }
        };
        Self { child, app }
    }

    /// [`ChatProcess::spawn`], then [`ChatProcess::ready`].
    pub fn start(sim: &Simulator, data: &Path, args: &[&str]) -> Self {
        let (child, lines) = Self::spawn(sim, data, args);
        Self::ready(child, lines)
    }

    /// Its address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.app
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap()
    }

    /// `kill -9`.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChatProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
