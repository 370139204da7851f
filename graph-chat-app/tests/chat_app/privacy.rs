//! What a deleted or blocked message said is gone from every file the app keeps and from the
//! event log's replays, also after a restart; the files under `--data` are the app's user's
//! only; the page behind a reverse proxy, and framed by the pages `frame_ancestors` names.

use crate::common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{wait_for, Harness};
use graph_chat_app::{App, Config};
use serde_json::Value;

const DELETED_TEXT: &str = "zebra-quartz-7731 said once";
const BLOCKED_TEXT: &str = "orchid-lantern-4409 card 4111";
const IMAGE: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR-hygiene-image-5521-bytes";

/// Every file under `dir`, the simulator's `graph-sim*` aside.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("graph-sim") {
            continue;
        }
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The standard base64 of `bytes` (how Graph's JSON carries hosted contents).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// What must not be found anywhere: the two messages' texts, the image's bytes and their
/// base64 (its first 30 characters, which do not depend on what follows).
fn secrets() -> Vec<Vec<u8>> {
    vec![
        DELETED_TEXT.as_bytes().to_vec(),
        BLOCKED_TEXT.as_bytes().to_vec(),
        IMAGE.to_vec(),
        base64(IMAGE).as_bytes()[..30].to_vec(),
    ]
}

/// Searches every file under `data` byte-wise for the secrets.
fn assert_no_copy_in(data: &Path) {
    let all = files(data);
    // A person's cache (`cache-{userId}.sqlite`), or a cache on its own (`cache.sqlite`).
    assert!(
        all.iter().any(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            name.starts_with("cache") && name.ends_with(".sqlite")
        }),
        "{all:?}"
    );
    for file in all {
        let bytes = std::fs::read(&file).unwrap();
        for secret in secrets() {
            assert!(
                !contains(&bytes, &secret),
                "{} holds {:?}",
                file.display(),
                String::from_utf8_lossy(&secret)
            );
        }
    }
}

/// Replays `/api/events?after=0` up to the last event the app has logged: none carries a
/// secret.
fn assert_no_copy_in_replay(h: &Harness) {
    let mut response = h.http.get(&format!("{}api/chats", h.url())).call().unwrap();
    let last: i64 = response
        .headers()
        .get("x-last-event-id")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let _ = response.body_mut().read_to_string();
    assert!(last > 0);
    let seen = RefCell::new(Vec::new());
    let events = h.events(None, Some(0));
    events.until("the replay's last event", |e| {
        seen.borrow_mut().push(e.data.to_string());
        e.id.is_some_and(|id| id >= last)
    });
    let seen = seen.into_inner();
    assert!(seen.len() > 1, "{seen:?}");
    for data in seen {
        for secret in [DELETED_TEXT, BLOCKED_TEXT, &base64(IMAGE)[..30]] {
            assert!(!data.contains(secret), "a replayed event holds it: {data}");
        }
    }
}

#[test]
fn a_deleted_and_a_blocked_message_leave_no_copy_in_files_or_replays_also_after_a_restart() {
    let mut h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    // The user sends a message with an inline image, and the page shows the image.
    let request = graph_chat_webhook::notifications::outbound::MessageRequest::send(
        chat.clone(),
        format!(r#"<p>{DELETED_TEXT}</p><img src="../hostedContents/1/$value" alt="chart">"#),
    )
    .html()
    .hosted_content("1", IMAGE.to_vec(), "image/png")
    .build()
    .unwrap();
    let token = common::token_for(h.sim(), &h.user());
    let graph = graph_chat_webhook::GraphClient::new(&h.sim().base_url(), &token);
    let answer = graph.send(&request).unwrap();
    assert_eq!(answer.status, 201);
    let deleted = serde_json::from_slice::<Value>(&answer.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = wait_for("the message with an image", || h.message(&chat, &deleted));
    let content = m["content"].as_str().unwrap().to_owned();
    let start = content.find("src=\"").expect("an image") + 5;
    let src = &content[start..start + content[start..].find('"').unwrap()];
    let image = h
        .http
        .get(&format!("{}{}", h.url(), src.trim_start_matches('/')))
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap();
    assert_eq!(image, IMAGE);
    // A colleague's message a policy then blocks.
    let blocked = h.says(&chat, BLOCKED_TEXT);
    wait_for("the colleague's message", || {
        h.message(&chat, &blocked)
            .filter(|m| m["content"] == BLOCKED_TEXT)
    });
    // An edit of the first: two versions of it in the log.
    h.sim()
        .colleague_edits(&chat, &deleted, &format!("<p>{DELETED_TEXT} (edited)</p>"))
        .unwrap();
    wait_for("the edit", || {
        h.message(&chat, &deleted)
            .filter(|m| m["state"] == "edited")
    });

    h.sim()
        .policy_violation(&chat, &blocked, "BlockAccess")
        .unwrap();
    h.sim().colleague_deletes(&chat, &deleted).unwrap();
    wait_for("the verdict and the delete", || {
        let blocked = h.message(&chat, &blocked)?;
        let deleted = h.message(&chat, &deleted)?;
        (blocked["state"] == "blocked" && deleted["state"] == "deleted").then_some(())
    });
    // A later message: the app has moved on.
    let later = h.says(&chat, "later");
    wait_for("the later message", || h.message(&chat, &later));

    let data = h.dir.path().join("data");
    assert_no_copy_in(&data);
    assert_no_copy_in_replay(&h);

    h.stop_app();
    assert_no_copy_in(&data);
    h.start_app();
    assert_eq!(h.message(&chat, &deleted).unwrap()["content"], Value::Null);
    assert_eq!(h.message(&chat, &blocked).unwrap()["content"], Value::Null);
    assert_no_copy_in(&data);
    assert_no_copy_in_replay(&h);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
fn assert_private(data: &Path) {
    assert_eq!(mode(data), 0o700, "{}", data.display());
    let all = files(data);
    let person = |suffix: &str| {
        all.iter().any(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            name.starts_with("cache-") && name.ends_with(suffix)
        })
    };
    assert!(person(".sqlite") && person(".sqlite-wal"), "{all:?}");
    for name in [
        "inbox.sqlite",
        "app.sqlite",
        graph_chat_app::secrets::SEALING_KEY_FILE,
    ] {
        assert!(all.iter().any(|f| f.ends_with(name)), "{name}: {all:?}");
    }
    for file in all {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[cfg(unix)]
#[test]
fn files_under_data_are_the_users_only_and_made_so_again_on_start() {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Harness::start(Duration::from_secs(60));
    let data = h.dir.path().join("data");
    assert_private(&data);
    h.stop_app();
    // Left readable by everyone (an earlier version, a copy): private again on start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in files(&data) {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    h.start_app();
    assert_private(&data);
}

/// Sends `request` (a raw HTTP/1.1 request without its final blank line) to the app; the
/// answer's status.
fn status_of(app: &str, request: &str) -> u16 {
    let addr = app
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(format!("{request}Connection: close\r\nContent-Length: 0\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

/// Restarts the app of `h` with `change` applied to its configuration.
fn restart_with(h: &mut Harness, change: impl FnOnce(&mut Config)) {
    h.stop_app();
    let mut config = h.config();
    change(&mut config);
    let app: App = h.runtime.block_on(App::start(config)).unwrap();
    h.app = Some(app);
}

fn addr(h: &Harness) -> String {
    h.url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Marking the chat read, as the page does, with the headers a proxy sends.
fn mark_read(h: &Harness, chat: &str, headers: &str) -> u16 {
    status_of(
        &h.url(),
        &format!(
            "POST /api/chats/{}/read HTTP/1.1\r\nCookie: {}\r\n{headers}",
            common::encode(chat),
            h.cookie()
        ),
    )
}

#[test]
fn behind_nginx_or_caddy_the_page_answers_to_the_public_url() {
    let mut h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    restart_with(&mut h, |c| {
        c.public_url = Some("https://chat.example.com".into());
        c.trust_proxy = true;
    });
    let upstream = addr(&h);
    // nginx as the README sets it up: Host is the upstream (nginx's default), the browser's
    // host and scheme in X-Forwarded-Host and X-Forwarded-Proto.
    let nginx = format!(
        "Host: {upstream}\r\nX-Forwarded-Host: chat.example.com\r\nX-Forwarded-Proto: https\r\n\
         X-Forwarded-For: 203.0.113.7\r\nOrigin: https://chat.example.com\r\n"
    );
    assert_eq!(mark_read(&h, &chat, &nginx), 204);
    // Caddy's reverse_proxy: the browser's Host passed on, and its X-Forwarded-* headers.
    let caddy = "Host: chat.example.com\r\nX-Forwarded-Host: chat.example.com\r\n\
                 X-Forwarded-Proto: https\r\nX-Forwarded-For: 203.0.113.7\r\n\
                 Origin: https://chat.example.com\r\n";
    assert_eq!(mark_read(&h, &chat, caddy), 204);
    // RFC 7239's Forwarded.
    let forwarded = format!(
        "Host: {upstream}\r\nForwarded: for=203.0.113.7;host=chat.example.com;proto=https\r\n\
         Origin: https://chat.example.com\r\n"
    );
    assert_eq!(mark_read(&h, &chat, &forwarded), 204);
    // The public host with its default port.
    let with_port = "Host: chat.example.com:443\r\nOrigin: https://chat.example.com\r\n";
    assert_eq!(mark_read(&h, &chat, with_port), 204);
    // Another site's page is still refused, and another host name too.
    let foreign = format!(
        "Host: {upstream}\r\nX-Forwarded-Host: chat.example.com\r\nX-Forwarded-Proto: https\r\n\
         Origin: https://evil.example\r\n"
    );
    assert_eq!(mark_read(&h, &chat, &foreign), 403);
    let other_host = format!("Host: {upstream}\r\nX-Forwarded-Host: evil.example\r\n");
    assert_eq!(mark_read(&h, &chat, &other_host), 421);
}

#[test]
fn a_proxy_that_keeps_nginxs_default_host_and_sends_nothing_else_works_untrusted() {
    let mut h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    restart_with(&mut h, |c| {
        c.public_url = Some("https://chat.example.com/".into())
    });
    let upstream = addr(&h);
    let nginx_default = format!("Host: {upstream}\r\nOrigin: https://chat.example.com\r\n");
    assert_eq!(mark_read(&h, &chat, &nginx_default), 204);
    let with_port = "Host: chat.example.com:443\r\nOrigin: https://chat.example.com:443\r\n";
    assert_eq!(mark_read(&h, &chat, with_port), 204);
}

#[test]
fn an_untrusted_x_forwarded_host_is_ignored() {
    let mut h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    restart_with(&mut h, |c| {
        c.public_url = Some("https://chat.example.com".into())
    });
    let upstream = addr(&h);
    // Not trusted: Host decides; the forwarded host neither admits nor refuses.
    let claims_other = format!("Host: {upstream}\r\nX-Forwarded-Host: evil.example\r\n");
    assert_eq!(mark_read(&h, &chat, &claims_other), 204);
    let claims_public = "Host: evil.example\r\nX-Forwarded-Host: chat.example.com\r\n";
    assert_eq!(mark_read(&h, &chat, claims_public), 421);
    // Nor does a forwarded host make a foreign origin the app's own.
    let origin =
        "Host: evil.example\r\nForwarded: host=evil.example\r\nOrigin: http://evil.example\r\n";
    assert_eq!(mark_read(&h, &chat, origin), 421);
}

fn csp(h: &Harness) -> String {
    h.http
        .get(&h.url())
        .call()
        .unwrap()
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn frame_ancestors_names_the_pages_that_may_frame_the_app() {
    let mut h = Harness::start(Duration::from_secs(60));
    assert!(csp(&h).contains("frame-ancestors 'none'"), "{}", csp(&h));
    restart_with(&mut h, |c| {
        c.frame_ancestors = Some("https://a.example https://b.example".into());
    });
    let csp = csp(&h);
    assert!(
        csp.contains("frame-ancestors https://a.example https://b.example"),
        "{csp}"
    );
    assert!(!csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
}

mod store {
    //! The cache on its own: what it keeps of hidden messages, in caches of earlier versions
    //! too, and how long its log keeps events.

    use super::{assert_no_copy_in, contains, files, DELETED_TEXT};
    use crate::common::TempDir;
    use graph_chat_app::store::{Applied, Store};
    use graph_chat_app::view::Viewer;
    use serde_json::{json, Value};
    use std::path::Path;
    use std::time::Duration;

    const CHAT: &str = "19:demo@thread.v2";
    const OTHER: &str = "22222222-aaaa-4bbb-8ccc-000000000002";

    fn viewer() -> Viewer {
        Viewer {
            user_id: "11111111-aaaa-4bbb-8ccc-000000000001".into(),
            graph_base: "http://127.0.0.1:9".into(),
        }
    }

    fn message(id: &str, content: &str, modified: &str) -> Value {
        json!({
            "id": id, "chatId": CHAT, "messageType": "message", "etag": modified,
            "createdDateTime": "2026-11-30T10:00:00.000Z",
            "lastModifiedDateTime": modified,
            "from": {"user": {"id": OTHER, "displayName": "Someone"}},
            "body": {"contentType": "text", "content": content},
            "attachments": [{"id": "a", "contentType": "reference", "name": content}],
        })
    }

    fn deleted(v: &Value, at: &str) -> Value {
        let mut d = v.clone();
        d["deletedDateTime"] = at.into();
        d["lastModifiedDateTime"] = at.into();
        d["etag"] = at.into();
        d
    }

    /// The whole log, as text.
    fn log(store: &Store) -> String {
        store
            .events_after(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| e.data)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn file_holds(dir: &Path, text: &str) -> bool {
        files(dir)
            .iter()
            .any(|f| contains(&std::fs::read(f).unwrap(), text.as_bytes()))
    }

    #[test]
    fn a_hidden_versions_duplicate_changes_nothing_and_an_undo_needs_graphs_copy() {
        let dir = TempDir::new("hidden");
        let store = Store::open(&dir.path().join("cache.sqlite"), viewer()).unwrap();
        let v1 = message("1764496800000", DELETED_TEXT, "2026-11-30T10:00:00.000Z");
        let gone = deleted(&v1, "2026-11-30T10:01:00.000Z");
        store.apply_message(CHAT, &v1.to_string(), false).unwrap();
        assert!(log(&store).contains(DELETED_TEXT));
        assert_eq!(
            store.apply_message(CHAT, &gone.to_string(), true).unwrap(),
            Applied::Changed
        );
        assert!(!log(&store).contains(DELETED_TEXT), "{}", log(&store));
        assert_no_copy_in(dir.path());
        // The same deletion again, as a notification or a read: nothing new.
        assert_eq!(
            store.apply_message(CHAT, &gone.to_string(), true).unwrap(),
            Applied::Unchanged
        );
        assert_eq!(
            store.apply_read(CHAT, &gone.to_string()).unwrap(),
            Applied::Unchanged
        );
        // An undo comes with the content, from Graph.
        let mut undone = v1.clone();
        undone["lastModifiedDateTime"] = "2026-11-30T10:02:00.000Z".into();
        store.apply_read(CHAT, &undone.to_string()).unwrap();
        let (items, _) = store.messages(CHAT).unwrap();
        assert_eq!(items[0].content.as_deref(), Some(DELETED_TEXT));
    }

    #[test]
    fn a_deletion_without_data_keeps_no_content_either() {
        let dir = TempDir::new("deletion");
        let store = Store::open(&dir.path().join("cache.sqlite"), viewer()).unwrap();
        let v1 = message("1764496800000", DELETED_TEXT, "2026-11-30T10:00:00.000Z");
        store.apply_message(CHAT, &v1.to_string(), false).unwrap();
        assert_eq!(
            store.apply_deletion(CHAT, "1764496800000").unwrap(),
            Applied::Changed
        );
        assert!(!log(&store).contains(DELETED_TEXT), "{}", log(&store));
        assert_no_copy_in(dir.path());
    }

    #[test]
    fn a_cache_from_an_earlier_version_is_cleaned_on_open() {
        let dir = TempDir::new("earlier");
        let path = dir.path().join("cache.sqlite");
        let v1 = message("1764496800000", DELETED_TEXT, "2026-11-30T10:00:00.000Z");
        let gone = deleted(&v1, "2026-11-30T10:01:00.000Z");
        {
            // The earlier schema: a log of bare events; the deleted row still holding the text.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE messages (chat_id TEXT NOT NULL, id TEXT NOT NULL,
                   created_key TEXT NOT NULL, id_key TEXT NOT NULL, v_modified TEXT,
                   v_deleted INTEGER NOT NULL, v_etag TEXT, v_content TEXT NOT NULL,
                   json TEXT NOT NULL, item TEXT NOT NULL, counts INTEGER NOT NULL,
                   sender_id TEXT, PRIMARY KEY (chat_id, id));
                 CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL);",
            )
            .unwrap();
            let item = json!({"id": "1764496800000", "createdDateTime": null,
                "lastModifiedDateTime": null, "from": null, "contentType": "text",
                "content": null, "state": "deleted"});
            conn.execute(
                "INSERT INTO messages VALUES (?1, '1764496800000', '', '', NULL, 1, NULL, ?2, ?2, \
                 ?3, 0, NULL)",
                rusqlite::params![CHAT, gone.to_string(), item.to_string()],
            )
            .unwrap();
            let mut shown = item.clone();
            shown["content"] = DELETED_TEXT.into();
            shown["state"] = "visible".into();
            shown["kind"] = "message".into();
            shown["chatId"] = CHAT.into();
            for data in [shown, item] {
                conn.execute("INSERT INTO events (data) VALUES (?1)", [data.to_string()])
                    .unwrap();
            }
            // A row deleted before: its text left in a free page.
            conn.execute_batch(&format!(
                "CREATE TABLE scratch (t TEXT); INSERT INTO scratch VALUES ('{DELETED_TEXT} {}');
                 DELETE FROM scratch; PRAGMA wal_checkpoint(TRUNCATE);",
                "x".repeat(2000)
            ))
            .unwrap();
        }
        assert!(file_holds(dir.path(), DELETED_TEXT));
        let store = Store::open(&path, viewer()).unwrap();
        assert_no_copy_in(dir.path());
        // The deletion's own event stays; the one with the text is gone.
        let events = store.events_after(0, usize::MAX).unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].data.contains("\"deleted\""));
    }

    #[test]
    fn the_log_keeps_events_for_its_retention_only() {
        let dir = TempDir::new("retention");
        let path = dir.path().join("cache.sqlite");
        let store = Store::open(&path, viewer()).unwrap();
        let old = message("1764496800000", "old", "2026-11-30T10:00:00.000Z");
        store.apply_message(CHAT, &old.to_string(), false).unwrap();
        drop(store);
        {
            // Logged 8 days ago.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute(
                "UPDATE events SET at = CAST(strftime('%s', 'now') AS INTEGER) - 8 * 86400",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path, viewer()).unwrap();
        assert_eq!(store.events_after(0, usize::MAX).unwrap().len(), 1);
        let first = store.first_event_id().unwrap();
        let new = message("1764496800001", "new", "2026-11-30T10:00:01.000Z");
        store.apply_message(CHAT, &new.to_string(), false).unwrap();
        let events = store.events_after(0, usize::MAX).unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].data.contains("\"new\""));
        assert!(store.first_event_id().unwrap() > first);
        // A shorter retention: a day-old event goes with the next change.
        store.set_event_retention(Duration::from_secs(3600));
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute("UPDATE events SET at = at - 86400", [])
                .unwrap();
        }
        let newer = message("1764496800002", "newer", "2026-11-30T10:00:02.000Z");
        store
            .apply_message(CHAT, &newer.to_string(), false)
            .unwrap();
        let events = store.events_after(0, usize::MAX).unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].data.contains("\"newer\""));
    }
}
