//! Several copies of the app on one PostgreSQL database (`--database`): what one copy commits
//! reaches the other's live streams, a page's `Last-Event-ID` taken to the other copy misses
//! nothing, a session made on one is accepted by the other, copies starting together on an
//! empty database both come up, a person's event ids are taken in the order their changes
//! commit, whichever copy writes, and a person signed in or out on one copy is run or stopped by
//! every copy.
//!
//! Copies behind one public URL (`docs/contracts.md#several-copies`): a small round-robin TCP
//! proxy on loopback, written here, is the `--public-url`; Graph delivers to it, so any copy may
//! receive any notification, and a person's requests may reach any copy. The three-copy check
//! runs three `chat` processes behind it, kills one with `kill -9` mid-run and moves a live
//! stream to another copy with `Last-Event-ID`.
//!
//! The tests of copies on a database run against the one `GCW_POSTGRES_URL` names; without one
//! they are skipped (and fail in CI): `common::pg`. Everything runs on loopback, bounded in
//! count and time.

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::pg::PgSchema;
use crate::common::*;
use graph_chat_app::store::{Database, Store};
use graph_chat_app::view::Viewer;
use graph_chat_app::{keys, people, secrets, App, Config};
use graph_chat_webhook::JwksSource;
use graph_sim::{Sender, Simulator};
use serde_json::{json, Value};

/// The files every copy is given alike: the sealing key and the app's key and certificate.
fn share_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in [
        secrets::SEALING_KEY_FILE,
        keys::KEY_FILE,
        keys::CERTIFICATE_FILE,
    ] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

/// A second copy of the harness's app: its own address and `--data` (with the same key files),
/// the same database.
fn second_copy(h: &Harness, dir: &TempDir) -> App {
    let data = dir.path().join("data");
    share_keys(&h.dir.path().join("data"), &data);
    let mut config = h.config();
    config.data = data;
    h.runtime.block_on(App::start(config)).unwrap()
}

#[test]
fn two_copies_share_sessions_live_events_and_last_event_id() {
    let Some(db) = PgSchema::new("two_copies") else {
        return;
    };
    let h = Harness::start_on(
        Duration::from_secs(3600),
        sim_config(),
        Some(db.url().to_owned()),
    );
    let chat = h.first_chat();
    let dir = TempDir::new("replica");
    let b = second_copy(&h, &dir);
    let b_url = b.url().to_owned();

    // A session made on the first copy is accepted by the second.
    let on_b = agent_with_session(&h.session);
    let (status, me) = get(&on_b, &format!("{b_url}api/me"));
    assert_eq!(status, 200);
    assert_eq!(me["id"], h.user());
    let (status, _) = get(&agent(), &format!("{b_url}api/me"));
    assert_eq!(status, 401, "without a session, still refused");

    // What the first copy receives (Graph delivers to it) reaches the second copy's stream.
    let live_b = Sse::open(&b_url, &h.session, None, None);
    let first = h.says(&chat, "one");
    let seen = live_b.until("the message on the other copy's stream", |e| {
        e.data["kind"] == "message" && e.data["id"] == first.as_str()
    });
    let resume_from = seen.id.expect("an event id");

    // A page that read up to there on one copy resumes on the other and misses nothing.
    let second = h.says(&chat, "two");
    let third = h.says(&chat, "three");
    // Both committed (Graph may deliver them in either order): seen on the first copy.
    let live_a = h.events(Some(resume_from), None);
    let mut on_a = Vec::new();
    while !(on_a.contains(&second) && on_a.contains(&third)) {
        let e = live_a.until("the messages on the first copy", |e| {
            e.data["kind"] == "message"
        });
        on_a.push(e.data["id"].as_str().unwrap().to_owned());
    }
    let resumed = Sse::open(&b_url, &h.session, Some(resume_from), None);
    let mut ids = Vec::new();
    let mut messages = Vec::new();
    while !(messages.contains(&second) && messages.contains(&third)) {
        let e = resumed.until("the replay on the other copy", |_| true);
        ids.push(e.id.expect("an event id"));
        if e.data["kind"] == "message" {
            messages.push(e.data["id"].as_str().unwrap().to_owned());
        }
    }
    // The same events, in the same order, as the first copy's replay.
    assert_eq!(messages, on_a);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    assert!(ids[0] > resume_from);
    // The second copy's view is the same as the first's.
    assert_eq!(messages_of(&on_b, &b_url, &chat), h.messages(&chat));

    h.runtime.block_on(b.shutdown());
}

/// A login cookie is good once across copies: brought again to another copy's callback, it
/// is refused as one this browser did not start (not tried with the identity platform).
#[test]
fn a_login_cookie_brought_to_one_copy_is_refused_by_another() {
    let Some(db) = PgSchema::new("spent") else {
        return;
    };
    let h = Harness::start_on(
        Duration::from_secs(3600),
        sim_config(),
        Some(db.url().to_owned()),
    );
    let dir = TempDir::new("spent");
    let b = second_copy(&h, &dir);
    let raw = raw_agent();
    let login = raw
        .get(&format!(
            "{}auth/login?login_hint={}",
            h.url(),
            encode(&h.user())
        ))
        .call()
        .unwrap();
    let pending = set_cookie(&login, "chat_login").expect("a login cookie");
    let authorize = raw.get(&location(&login)).call().unwrap();
    let callback = location(&authorize);
    let on_a = raw
        .get(&callback)
        .header("Cookie", format!("chat_login={pending}"))
        .call()
        .unwrap();
    assert_eq!(
        on_a.status().as_u16(),
        302,
        "the first copy signs the person in"
    );
    let query = callback.split_once('?').unwrap().1;
    let mut again = raw
        .get(&format!("{}auth/callback?{query}", b.url()))
        .header("Cookie", format!("chat_login={pending}"))
        .call()
        .unwrap();
    assert_eq!(again.status().as_u16(), 400);
    let body = again.body_mut().read_to_string().unwrap();
    assert!(body.contains("did not start a sign-in"), "{body}");
    h.runtime.block_on(b.shutdown());
}

fn messages_of(agent: &ureq::Agent, base: &str, chat: &str) -> Vec<serde_json::Value> {
    common::messages(agent, base, chat)
}

#[test]
fn two_copies_starting_together_on_an_empty_database_both_come_up() {
    let Some(db) = PgSchema::new("together") else {
        return;
    };
    let h = Harness::start_on(
        Duration::from_secs(3600),
        sim_config(),
        Some(db.url().to_owned()),
    );
    // Two more copies on a database of their own, empty, started at once.
    let Some(empty) = PgSchema::new("together_empty") else {
        return;
    };
    let dirs = [TempDir::new("together"), TempDir::new("together")];
    let configs: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let data = dir.path().join("data");
            share_keys(&h.dir.path().join("data"), &data);
            let mut config = h.config();
            config.data = data;
            config.database = Some(empty.url().to_owned());
            config
        })
        .collect();
    let [one, two]: [_; 2] = configs.try_into().unwrap();
    let (one, two) = h
        .runtime
        .block_on(async { tokio::join!(App::start(one), App::start(two)) });
    let (one, two) = (one.unwrap(), two.unwrap());
    // Both answer, from the same records: a person signed in on one is signed in on the other.
    let session = sign_in_cookie(one.url(), &h.user());
    // The other copy takes the person up on its own (a notification for them may come to it).
    wait_for("the other copy runs the person too", || {
        two.person(&h.user()).map(|_| ())
    });
    let (status, me) = get(
        &agent_with_session(&session),
        &format!("{}api/me", two.url()),
    );
    assert_eq!(status, 200);
    assert_eq!(me["id"], h.user());
    h.runtime.block_on(async {
        one.shutdown().await;
        two.shutdown().await;
    });
}

/// The next event on a live channel, waiting at most [`PATIENCE`].
fn next_event(
    live: &mut tokio::sync::broadcast::Receiver<graph_chat_app::store::Event>,
) -> graph_chat_app::store::Event {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { tokio::time::timeout(PATIENCE, live.recv()).await })
        .expect("an event within the patience")
        .unwrap()
}

fn viewer() -> Viewer {
    Viewer {
        user_id: "11111111-aaaa-4bbb-8ccc-000000000001".into(),
        graph_base: "http://127.0.0.1:9".into(),
    }
}

fn message(id: usize, content: &str) -> String {
    json!({
        "id": (1_000_000 + id).to_string(), "chatId": "19:c@thread.v2", "messageType": "message",
        "etag": "1", "createdDateTime": "2026-11-30T10:00:00.000Z",
        "lastModifiedDateTime": "2026-11-30T10:00:00.000Z",
        "from": {"user": {"id": "someone", "displayName": "Someone"}},
        "body": {"contentType": "text", "content": content},
    })
    .to_string()
}

#[test]
fn a_change_on_one_copy_reaches_the_other_copys_live_channel() {
    let Some(db) = PgSchema::new("live") else {
        return;
    };
    let one = Store::open_postgres(&Database::open(db.url()).unwrap(), viewer()).unwrap();
    let two = Store::open_postgres(&Database::open(db.url()).unwrap(), viewer()).unwrap();
    let (mut live, last) = two.subscribe().unwrap();
    assert_eq!(last, 0);
    assert_eq!(
        two.first_event_id().unwrap(),
        0,
        "a log that never had an event"
    );
    one.apply_message("19:c@thread.v2", &message(1, "hello"), false)
        .unwrap();
    let written = one.events_after(0, 10).unwrap();
    assert_eq!(written.len(), 1);
    let received = next_event(&mut live);
    assert_eq!(received, written[0]);
    assert_eq!(two.first_event_id().unwrap(), written[0].id);
}

/// Writers on two copies at once, and a reader that follows the log as a resuming page does
/// (everything after the last id it saw): had an event committed after a later-numbered one,
/// the reader would have passed its id before it was visible, and missed it.
#[test]
fn a_reader_following_the_log_misses_nothing_two_copies_write() {
    let Some(db) = PgSchema::new("order") else {
        return;
    };
    let copies = [
        Store::open_postgres(&Database::open(db.url()).unwrap(), viewer()).unwrap(),
        Store::open_postgres(&Database::open(db.url()).unwrap(), viewer()).unwrap(),
    ];
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = copies[1].clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let (mut after, mut seen) = (0, BTreeSet::new());
            loop {
                let finished = done.load(Ordering::SeqCst);
                for e in store.events_after(after, 1000).unwrap() {
                    after = e.id;
                    seen.insert(e.id);
                }
                if finished {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = copies[w % 2].clone();
            std::thread::spawn(move || {
                for n in 0..40 {
                    store
                        .apply_message("19:c@thread.v2", &message(w * 100 + n, "x"), false)
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    let all: BTreeSet<i64> = copies[0]
        .events_after(0, 10_000)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len(), 160);
    assert_eq!(seen, all, "the reader missed an event that committed late");
}

/// A copy whose listening connection is cut reconnects, and its live channel catches up from
/// the log with what it missed meanwhile.
#[test]
fn a_lost_listening_connection_reconnects_and_catches_up() {
    let Some(db) = PgSchema::new("relisten") else {
        return;
    };
    let one = Store::open_postgres(&Database::open(db.url()).unwrap(), viewer()).unwrap();
    let two = Store::open_postgres(&Database::open(db.url()).unwrap(), viewer()).unwrap();
    let (mut live, _) = two.subscribe().unwrap();
    // Every copy's listening connection in the cluster is cut (other tests' reconnect too).
    db.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN graph_chat_app_events%' AND pid <> pg_backend_pid()",
    );
    one.apply_message("19:c@thread.v2", &message(7, "while cut"), false)
        .unwrap();
    let written = one.events_after(0, 10).unwrap();
    let received = next_event(&mut live);
    assert_eq!(received, written[0]);
}

/// Two copies run one person's Graph side, each refreshing their token from the same stored
/// refresh token (which the identity platform does not revoke when it is used): neither signs
/// the person out, whichever refreshed first.
#[test]
fn a_person_run_by_two_copies_stays_signed_in_across_token_lifetimes() {
    const LIFETIME: u64 = 4;
    let Some(db) = PgSchema::new("rotation") else {
        return;
    };
    let h = Harness::start_on(
        Duration::from_secs(600),
        graph_sim::Config {
            token_lifetime: Duration::from_secs(LIFETIME),
            ..sim_config()
        },
        Some(db.url().to_owned()),
    );
    let chat = h.first_chat();
    let dir = TempDir::new("rotation");
    let b = second_copy(&h, &dir);
    let b_url = b.url().to_owned();
    let on_b = agent_with_session(&h.session);
    for round in 0..3 {
        // A token lifetime and the watch: each copy has refreshed since.
        std::thread::sleep(Duration::from_secs(LIFETIME + 3));
        for (copy, agent, url) in [("a", &h.http, h.url()), ("b", &on_b, b_url.clone())] {
            let (status, _) = get(agent, &format!("{url}api/chats"));
            assert_eq!(
                status, 200,
                "round {round}: copy {copy} still serves the person"
            );
        }
    }
    let live_b = Sse::open(&b_url, &h.session, None, None);
    let id = h.says(&chat, "still here");
    live_b.until("a message after the rotations", |e| {
        e.data["id"] == id.as_str()
    });
    h.runtime.block_on(b.shutdown());
}

/// Copies on one database each run every person: one who signs in on one copy is run by the
/// other without visiting it (so the job holder for them may be either, and a takeover covers
/// them), and one signed out for good on one copy (their record gone) stops on the other.
#[test]
fn a_person_signed_in_or_out_on_one_copy_is_run_or_stopped_by_every_copy() {
    let Some(db) = PgSchema::new("every_copy") else {
        return;
    };
    let h = Harness::start_on(
        Duration::from_secs(3600),
        sim_config(),
        Some(db.url().to_owned()),
    );
    let dir = TempDir::new("every_copy");
    let b = second_copy(&h, &dir);
    // The colleague signs in on the first copy only; no request of theirs reaches the second.
    let colleague = COLLEAGUE.0;
    assert!(b.person(colleague).is_none());
    sign_in_cookie(&h.url(), colleague);
    let within = people::TAKE_UP_EVERY * 2 + PATIENCE;
    let deadline = Instant::now() + within;
    while b.person(colleague).is_none() {
        assert!(
            Instant::now() < deadline,
            "the second copy runs the colleague within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Signed out for good on another copy (their record and sessions gone): both copies stop
    // their Graph side, without waiting for their token to be refused.
    let sealer = secrets::Sealer::load_or_create(&h.dir.path().join("data")).unwrap();
    let records = Database::open(db.url()).unwrap();
    graph_chat_app::accounts::Accounts::open_postgres(&records, sealer)
        .unwrap()
        .forget_person(colleague)
        .unwrap();
    let deadline = Instant::now() + within;
    while b.person(colleague).is_some() || h.app().person(colleague).is_some() {
        assert!(
            Instant::now() < deadline,
            "both copies stop the colleague within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The person signed in before runs on both still.
    assert!(b.person(&h.user()).is_some() && h.app().person(&h.user()).is_some());
    h.runtime.block_on(b.shutdown());
}

/// A round-robin TCP proxy on loopback: each connection it accepts goes to the next of its
/// backends that accepts one (a backend that refuses, a copy killed, is skipped), bytes copied
/// both ways until either side closes.
struct Proxy {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    /// Connections taken by each backend, by address.
    taken: Arc<Mutex<Vec<(SocketAddr, usize)>>>,
}

impl Proxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let backends: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let taken: Arc<Mutex<Vec<(SocketAddr, usize)>>> = Arc::default();
        let next = Arc::new(AtomicUsize::new(0));
        let (b, t) = (Arc::clone(&backends), Arc::clone(&taken));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (b, t, next) = (Arc::clone(&b), Arc::clone(&t), Arc::clone(&next));
                std::thread::spawn(move || {
                    let all = b.lock().unwrap().clone();
                    let start = next.fetch_add(1, Ordering::Relaxed);
                    let upstream = (0..all.len()).find_map(|i| {
                        let backend = all[(start + i) % all.len()];
                        TcpStream::connect_timeout(&backend, Duration::from_secs(2))
                            .ok()
                            .map(|s| (backend, s))
                    });
                    let Some((backend, upstream)) = upstream else {
                        return;
                    };
                    {
                        let mut t = t.lock().unwrap();
                        match t.iter_mut().find(|(a, _)| *a == backend) {
                            Some((_, n)) => *n += 1,
                            None => t.push((backend, 1)),
                        }
                    }
                    pipe(client, upstream);
                });
            }
        });
        Self {
            addr,
            backends,
            taken,
        }
    }

    /// The public URL: `http://127.0.0.1:PORT/`.
    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn set_backends(&self, backends: Vec<SocketAddr>) {
        *self.backends.lock().unwrap() = backends;
    }

    /// Connections backend `addr` took.
    fn taken_by(&self, addr: SocketAddr) -> usize {
        self.taken
            .lock()
            .unwrap()
            .iter()
            .find(|(a, _)| *a == addr)
            .map_or(0, |(_, n)| *n)
    }
}

/// Copies bytes both ways; when one side ends, the other is shut down.
fn pipe(client: TcpStream, upstream: TcpStream) {
    let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let up = std::thread::spawn(move || copy_then_close(c2, u2));
    copy_then_close(upstream, client);
    let _ = up.join();
}

fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// The address an app listens at, from its URL.
fn addr_of(app: &App) -> SocketAddr {
    app.url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// The app's configuration against `sim`, its state under `data`, behind `public_url`.
fn config(sim: &Simulator, data: std::path::PathBuf, public_url: Option<String>) -> Config {
    let identity = sim.identity();
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data,
        resync_every: Duration::from_secs(86_400),
        graph: sim.base_url(),
        tenant_id: identity.tenant_id,
        client_id: identity.app_id.clone(),
        app_id: identity.app_id,
        client_secret: None,
        authority: sim.base_url().trim_end_matches('/').to_owned(),
        jwks: JwksSource::Url(identity.jwks_url),
        public_url,
        trust_proxy: false,
        frame_ancestors: None,
        event_retention: graph_chat_app::store::EVENT_RETENTION,
        key_file: None,
        renew_every: None,
        database: None,
    }
}

/// Graph's live subscriptions of `user`'s, as it lists them.
fn subscriptions(sim: &Simulator, user: &str) -> Vec<Value> {
    let token = common::token_for(sim, user);
    let mut answer = common::agent()
        .get(&format!("{}v1.0/subscriptions", sim.base_url()))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    let body: Value = serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
    body["value"].as_array().unwrap().clone()
}

#[test]
fn against_a_local_simulator_a_loopback_public_url_is_where_graph_delivers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = runtime.block_on(Simulator::start(sim_config())).unwrap();
    let user = sim.identity().user_id;
    let chat = common::create_chat(&common::agent(), &sim, "Project");
    let dir = TempDir::new("public");
    let proxy = Proxy::start();
    let app = runtime
        .block_on(App::start(config(
            &sim,
            dir.path().join("data"),
            Some(proxy.url()),
        )))
        .unwrap();
    proxy.set_backends(vec![addr_of(&app)]);

    // Signed in through the public URL (the browser comes back there from the identity platform).
    let agent = agent_with_session(&sign_in_cookie(&proxy.url(), &user));
    wait_for("the person's two subscriptions", || {
        let all = subscriptions(&sim, &user);
        (all.len() == 2).then_some(all)
    });
    for s in subscriptions(&sim, &user) {
        assert_eq!(
            s["notificationUrl"],
            format!("{}notifications", proxy.url()).as_str(),
            "{s}"
        );
        assert_eq!(
            s["lifecycleNotificationUrl"],
            format!("{}lifecycle", proxy.url()).as_str(),
            "{s}"
        );
    }
    // A colleague's message comes to the page through the proxy: Graph knows no other address.
    let before = proxy.taken_by(addr_of(&app));
    let said = sim
        .colleague_writes(
            &chat,
            Sender {
                id: common::COLLEAGUE.0.into(),
                display_name: common::COLLEAGUE.1.into(),
            },
            "through the proxy",
            "text",
        )
        .unwrap();
    let id = said["id"].as_str().unwrap().to_owned();
    wait_for("the message on the page", || {
        common::messages(&agent, &proxy.url(), &chat)
            .iter()
            .any(|m| m["id"] == id.as_str())
            .then_some(())
    });
    assert!(proxy.taken_by(addr_of(&app)) > before);
    runtime.block_on(app.shutdown());
    runtime.block_on(sim.shutdown());
}

/// `GET /api/events` read on a thread of its own, each event with the time it arrived; the
/// channel closes when the stream ends.
struct Stream {
    events: mpsc::Receiver<(Instant, SseEvent)>,
}

impl Stream {
    fn open(base: &str, session: &str, last_event_id: Option<i64>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent
            .get(&format!("{base}api/events"))
            .header("Cookie", format!("{}={session}", common::SESSION_COOKIE));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.call().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let reader = std::io::BufReader::new(response.into_body().into_reader());
            let (mut id, mut data) = (None, String::new());
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if line.is_empty() {
                    if !data.is_empty() {
                        let parsed = serde_json::from_str(&data).unwrap_or(Value::Null);
                        let event = SseEvent {
                            id: id.take(),
                            event: None,
                            data: parsed,
                        };
                        if tx.send((Instant::now(), event)).is_err() {
                            return;
                        }
                    }
                    data.clear();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
        });
        Self { events: rx }
    }

    /// Every event that arrived so far.
    fn take(&self) -> Vec<SseEvent> {
        self.take_timed().into_iter().map(|(_, e)| e).collect()
    }

    /// Every event that arrived so far, with the time it arrived.
    fn take_timed(&self) -> Vec<(Instant, SseEvent)> {
        self.events.try_iter().collect()
    }

    /// The events until the stream ends, waiting at most `within`; whether it ended.
    fn until_end(&self, within: Duration) -> (Vec<SseEvent>, bool) {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((_, e)) => out.push(e),
                Err(mpsc::RecvTimeoutError::Disconnected) => return (out, true),
                Err(mpsc::RecvTimeoutError::Timeout) => return (out, false),
            }
        }
    }
}

/// The ids of the message events among `events`.
fn message_ids(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.data["kind"] == "message")
        .filter_map(|e| e.data["id"].as_str().map(str::to_owned))
        .collect()
}

/// Graph, PostgreSQL and `n` `chat` processes behind the proxy, one person signed in through
/// it, served by every copy.
struct Deployment {
    runtime: tokio::runtime::Runtime,
    sim: Option<Simulator>,
    proxy: Proxy,
    processes: Vec<ChatProcess>,
    session: String,
    chat: String,
    _db: PgSchema,
    _dir: TempDir,
}

impl Deployment {
    fn start(n: usize, db: PgSchema) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sim = runtime.block_on(Simulator::start(sim_config())).unwrap();
        let user = sim.identity().user_id;
        let chat = common::create_chat(&common::agent(), &sim, "Project");
        let dir = TempDir::new("copies");
        // One sealing key and one app key and certificate, given to every copy alike.
        let first = dir.path().join("data0");
        std::fs::create_dir_all(&first).unwrap();
        graph_chat_app::secrets::Sealer::load_or_create(&first).unwrap();
        graph_chat_app::keys::load_or_create(&first).unwrap();
        for i in 1..n {
            share_keys(&first, &dir.path().join(format!("data{i}")));
        }
        let proxy = Proxy::start();
        let spawned: Vec<_> = (0..n)
            .map(|i| {
                ChatProcess::spawn(
                    &sim,
                    &dir.path().join(format!("data{i}")),
                    &[
                        "--renew-every",
                        "5",
                        "--database",
                        db.url(),
                        "--public-url",
                        &proxy.url(),
                    ],
                )
            })
            .collect();
        let processes: Vec<ChatProcess> = spawned
            .into_iter()
            .map(|(child, lines)| ChatProcess::ready(child, lines))
            .collect();
        proxy.set_backends(processes.iter().map(ChatProcess::addr).collect());
        // Signed in through the public URL; every copy serves the person.
        let session = sign_in_cookie(&proxy.url(), &user);
        let agent = agent_with_session(&session);
        for p in &processes {
            wait_for("each copy lists the person's chat", || {
                common::chats(&agent, &p.app)
                    .iter()
                    .any(|c| c["id"] == chat.as_str())
                    .then_some(())
            });
        }
        let deployment = Self {
            runtime,
            sim: Some(sim),
            proxy,
            processes,
            session,
            chat,
            _db: db,
            _dir: dir,
        };
        wait_for("one set of subscriptions, to the public URL", || {
            deployment.one_set().then_some(())
        });
        deployment
    }

    fn sim(&self) -> &Simulator {
        self.sim.as_ref().unwrap()
    }

    /// Whether Graph holds one set of the person's subscriptions (their messages, their
    /// chats), both delivering to the public URL.
    fn one_set(&self) -> bool {
        let all = subscriptions(self.sim(), &self.sim().identity().user_id);
        let url = format!("{}notifications", self.proxy.url());
        all.len() == 2 && all.iter().all(|s| s["notificationUrl"] == url.as_str())
    }

    /// The colleague writes `text` in the chat; the message's id.
    fn colleague_says(&self, text: &str) -> String {
        self.sim()
            .colleague_writes(
                &self.chat,
                Sender {
                    id: common::COLLEAGUE.0.into(),
                    display_name: common::COLLEAGUE.1.into(),
                },
                text,
                "text",
            )
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits until copy `i`'s view of the chat is Graph's truth.
    fn converged(&self, i: usize, within: Duration) {
        let agent = agent_with_session(&self.session);
        let me = self.sim().identity().user_id;
        let deadline = Instant::now() + within;
        loop {
            let truth = common::expected_view(&self.sim().truth(&self.chat).unwrap(), &me);
            let seen = common::observed_view(&common::messages(
                &agent,
                &self.processes[i].app,
                &self.chat,
            ));
            if truth == seen {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "copy {i}'s view is not Graph's:\ntruth {truth:?}\nseen  {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.processes.clear();
        if let Some(sim) = self.sim.take() {
            self.runtime.block_on(sim.shutdown());
        }
    }
}

/// Messages the colleague writes in the three-copy check, one every [`PACE`].
const MESSAGES: usize = 60;
/// The colleague's pace: 20 messages a second.
const PACE: Duration = Duration::from_millis(50);
/// A batch or a job a killed copy held is another's within this (the contract's 15 s), plus
/// the time for Graph's retries and the reads.
const TAKEOVER: Duration = Duration::from_secs(15);

#[test]
fn three_chat_processes_behind_one_url_lose_nothing_when_one_is_killed() {
    let Some(db) = PgSchema::new("three_procs") else {
        return;
    };
    let mut d = Deployment::start(3, db);
    let victim = 0;
    // A live stream on the copy that will be killed.
    let first = Stream::open(&d.processes[victim].app, &d.session, None);
    let mut before_kill = Vec::new();
    let mut written = Vec::new();
    for i in 0..MESSAGES {
        if i == MESSAGES / 3 {
            // Once the stream has shown something ...
            wait_for("an event on the first stream", || {
                before_kill.extend(first.take());
                (!before_kill.is_empty()).then_some(())
            });
        }
        written.push(d.colleague_says(&format!("message {i}")));
        if i == MESSAGES / 3 {
            // ... the copy is killed mid-run, with this message's notifications on their way
            // (to it, or to another copy that may have handed it nothing yet).
            d.processes[victim].kill_9();
        }
        std::thread::sleep(PACE);
    }
    let (rest, ended) = first.until_end(Duration::from_secs(10));
    assert!(ended, "the killed copy's stream ended");
    before_kill.extend(rest);
    let last = before_kill.iter().filter_map(|e| e.id).max().unwrap();

    // The page moves to another copy (through the proxy, which skips the dead one) with
    // Last-Event-ID, and gets every message once.
    let moved = Stream::open(&d.proxy.url(), &d.session, Some(last));
    let mut after = Vec::new();
    let deadline = Instant::now() + TAKEOVER + common::PATIENCE;
    loop {
        after.extend(moved.take());
        let mut seen = message_ids(&before_kill);
        seen.extend(message_ids(&after));
        if written.iter().all(|w| seen.contains(w)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lost: {:?}",
            written
                .iter()
                .filter(|w| !seen.contains(w))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The move carried the stream: messages on both sides of the kill.
    assert!(!message_ids(&before_kill).is_empty() && !message_ids(&after).is_empty());
    eprintln!(
        "the stream showed {} messages before the kill, {} after the move",
        message_ids(&before_kill).len(),
        message_ids(&after).len()
    );
    // Nothing twice: each message once, the ids increasing across the move.
    let mut all = before_kill.clone();
    all.extend(after);
    let ids: Vec<i64> = all.iter().filter_map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, once: {ids:?}"
    );
    let messages = message_ids(&all);
    for w in &written {
        assert_eq!(
            messages.iter().filter(|m| *m == w).count(),
            1,
            "message {w} on the stream once"
        );
    }
    // Every surviving copy shows Graph's truth, and Graph holds one set.
    for i in (0..d.processes.len()).filter(|i| *i != victim) {
        d.converged(i, common::PATIENCE);
    }
    assert!(d.one_set(), "one set of subscriptions");
}

/// The `p`-th percentile of `sorted` (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The colleague writes `count` messages, one every `pace` (as fast as Graph takes them with
/// `Duration::ZERO`), while `stream` shows them; each message's time from Graph to the screen,
/// and the time from the first write to the last message shown. With `kill_at`, the first
/// copy is killed (`kill -9`) before the message of that index.
fn measure(
    d: &mut Deployment,
    stream: &Stream,
    count: usize,
    pace: Duration,
    kill_at: Option<usize>,
) -> (Vec<Duration>, Duration) {
    let mut sent: Vec<(String, Instant)> = Vec::new();
    let mut shown: std::collections::HashMap<String, Instant> = std::collections::HashMap::new();
    let collect = |shown: &mut std::collections::HashMap<String, Instant>| {
        for got in stream.take_timed() {
            if got.1.data["kind"] == "message" {
                if let Some(id) = got.1.data["id"].as_str() {
                    shown.entry(id.to_owned()).or_insert(got.0);
                }
            }
        }
    };
    let started = Instant::now();
    for i in 0..count {
        if kill_at == Some(i) {
            d.processes[0].kill_9();
        }
        let at = Instant::now();
        sent.push((d.colleague_says(&format!("bench {i}")), at));
        collect(&mut shown);
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
    }
    let deadline = Instant::now() + TAKEOVER + common::PATIENCE;
    while !sent.iter().all(|(id, _)| shown.contains_key(id)) {
        assert!(Instant::now() < deadline, "messages not shown");
        std::thread::sleep(Duration::from_millis(20));
        collect(&mut shown);
    }
    let mut latencies: Vec<Duration> = sent
        .iter()
        .map(|(id, at)| shown[id].saturating_duration_since(*at))
        .collect();
    latencies.sort();
    let last = sent.iter().map(|(id, _)| shown[id]).max().unwrap();
    (latencies, last.saturating_duration_since(started))
}

/// Messages per second through three copies against one, and Graph -> screen p99 with a copy
/// killed mid-run: `BENCHMARKS.md` has the command and the figures. Needs `GCW_POSTGRES_URL`.
#[test]
#[ignore = "a benchmark: prints figures (BENCHMARKS.md)"]
fn copies_throughput_and_latency_with_a_copy_killed() {
    const BURST: usize = 300;
    const STEADY: usize = 300;
    for n in [1, 3] {
        let Some(db) = PgSchema::new(&format!("bench{n}")) else {
            return;
        };
        let mut d = Deployment::start(n, db);
        let stream = Stream::open(&d.proxy.url(), &d.session, None);
        let (latencies, took) = measure(&mut d, &stream, BURST, Duration::ZERO, None);
        println!(
            "copies={n}: {BURST} messages in {:.2} s = {:.0} messages/s through the copies; \
             Graph -> screen p50 {:?} p99 {:?}",
            took.as_secs_f64(),
            BURST as f64 / took.as_secs_f64(),
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
        );
    }
    let Some(db) = PgSchema::new("bench_kill") else {
        return;
    };
    let mut d = Deployment::start(3, db);
    // The screen: a stream on a copy that lives.
    let stream = Stream::open(&d.processes[1].app, &d.session, None);
    let (latencies, took) = measure(&mut d, &stream, STEADY, PACE, Some(STEADY / 3));
    println!(
        "copies=3, one killed with kill -9 after {} of {STEADY} messages at 20/s ({:.1} s): \
         Graph -> screen p50 {:?} p99 {:?} max {:?}",
        STEADY / 3,
        took.as_secs_f64(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().unwrap(),
    );
}
