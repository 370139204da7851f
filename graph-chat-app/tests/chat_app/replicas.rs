//! Several copies of the app on one PostgreSQL database (`--database`), in one test process:
//! what one copy commits reaches the other's live streams, a page's `Last-Event-ID` taken to
//! the other copy misses nothing, a session made on one is accepted by the other, copies
//! starting together on an empty database both come up, and a person's event ids are taken in
//! the order their changes commit, whichever copy writes.
//!
//! They run against the database `GCW_POSTGRES_URL` names; without one they are skipped (and
//! fail in CI): `common::pg`.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::pg::PgSchema;
use crate::common::*;
use graph_chat_app::store::{Database, Store};
use graph_chat_app::view::Viewer;
use graph_chat_app::{keys, secrets, App};
use serde_json::json;

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

/// Two copies run one person's Graph side, each refreshing their token; a refresh token is
/// good once, so a copy whose token another copy rotated starts again from the one the records
/// hold, rather than signing the person out.
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
