//! The cache and the views, without a network: the timeline's version rules on stored rows,
//! the states and unread counts of `docs/contracts.md#the-chat-app`, and the sanitizer.

use crate::common::pg::PgSchema;
use crate::common::TempDir;
use graph_chat_app::store::{Applied, Database, PendingWrite, Store, TRYING};
use graph_chat_app::view::{sanitize, Viewer};
use serde_json::{json, Value};

const ME: &str = "11111111-aaaa-4bbb-8ccc-000000000001";
const OTHER: &str = "22222222-aaaa-4bbb-8ccc-000000000002";
const CHAT: &str = "19:demo@thread.v2";

fn viewer() -> Viewer {
    Viewer {
        user_id: ME.into(),
        graph_base: "http://127.0.0.1:9".into(),
    }
}

/// Where a test's cache lives: a SQLite file, or a schema of a PostgreSQL database (the same
/// tests run on both).
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A test's cache, which can be opened again.
enum Place {
    Sqlite(TempDir),
    Postgres(PgSchema),
}

impl Place {
    /// `None` for PostgreSQL when no database is given (outside CI; see `common::pg`).
    fn new(backend: Backend, test: &str) -> Option<Self> {
        Some(match backend {
            Backend::Sqlite => Place::Sqlite(TempDir::new("cache")),
            Backend::Postgres => Place::Postgres(PgSchema::new(test)?),
        })
    }

    fn open(&self) -> Store {
        match self {
            Place::Sqlite(dir) => Store::open(&dir.path().join("cache.sqlite"), viewer()).unwrap(),
            Place::Postgres(schema) => {
                let db = Database::open(schema.url()).unwrap();
                Store::open_postgres(&db, viewer()).unwrap()
            }
        }
    }
}

fn store(backend: Backend, test: &str) -> Option<(Place, Store)> {
    let place = Place::new(backend, test)?;
    let store = place.open();
    Some((place, store))
}

/// Each test of the store, on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Backend::Postgres) })*
        }
    };
}

on_both!(
    an_older_or_duplicate_version_never_replaces_a_newer_one,
    a_deletion_keeps_its_place_without_content_and_an_undo_restores,
    a_deletion_without_data_deletes_what_it_finds,
    messages_are_in_created_order_with_ties_broken_by_id_as_a_number,
    dlp_blocks_others_and_tells_the_sender_and_a_late_verdict_retracts,
    unread_counts_follow_the_viewpoint_and_hidden_chats_come_back,
    events_are_logged_in_order_and_replayed_after_an_id,
    the_cache_survives_a_reopen,
    a_read_settles_two_versions_notifications_cannot_order,
    items_and_events_keep_the_contracts_json,
    a_kept_write_survives_a_reopen_and_is_claimed_once,
);

fn message(id: &str, from: &str, content: &str, modified: &str) -> Value {
    json!({
        "id": id, "chatId": CHAT, "messageType": "message", "etag": modified,
        "createdDateTime": "2026-11-30T10:00:00.000Z",
        "lastModifiedDateTime": modified,
        "from": {"user": {"id": from, "displayName": "Someone"}},
        "body": {"contentType": "text", "content": content},
    })
}

fn chat(last_read: Option<&str>, hidden: bool) -> Value {
    json!({
        "id": CHAT, "topic": "Demo", "chatType": "group",
        "viewpoint": {"isHidden": hidden, "lastMessageReadDateTime": last_read},
    })
}

fn view(store: &Store) -> Vec<Value> {
    as_json(&store.messages(CHAT).unwrap().0)
}

/// Items as the API's JSON.
fn as_json<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .map(|i| serde_json::to_value(i).unwrap())
        .collect()
}

fn an_older_or_duplicate_version_never_replaces_a_newer_one(backend: Backend) {
    let Some((_place, store)) = store(
        backend,
        "an_older_or_duplicate_version_never_replaces_a_newer_one",
    ) else {
        return;
    };
    let v1 = message("1764496800000", OTHER, "first", "2026-11-30T10:00:00.000Z");
    let mut v2 = message("1764496800000", OTHER, "second", "2026-11-30T10:05:00.000Z");
    v2["lastEditedDateTime"] = "2026-11-30T10:05:00.000Z".into();
    assert_eq!(
        store.apply_message(CHAT, &v2.to_string(), false).unwrap(),
        Applied::Changed
    );
    assert_eq!(
        store.apply_message(CHAT, &v1.to_string(), false).unwrap(),
        Applied::Unchanged
    );
    assert_eq!(
        store.apply_message(CHAT, &v2.to_string(), false).unwrap(),
        Applied::Unchanged
    );
    let items = view(&store);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["content"], "second");
    assert_eq!(items[0]["state"], "edited");
}

fn a_deletion_keeps_its_place_without_content_and_an_undo_restores(backend: Backend) {
    let Some((_place, store)) = store(
        backend,
        "a_deletion_keeps_its_place_without_content_and_an_undo_restores",
    ) else {
        return;
    };
    let v1 = message("1764496800000", OTHER, "hello", "2026-11-30T10:00:00.000Z");
    let mut deleted = v1.clone();
    deleted["deletedDateTime"] = "2026-11-30T10:01:00.000Z".into();
    deleted["lastModifiedDateTime"] = "2026-11-30T10:01:00.000Z".into();
    let mut undone = v1.clone();
    undone["lastModifiedDateTime"] = "2026-11-30T10:02:00.000Z".into();
    store
        .apply_message(CHAT, &deleted.to_string(), true)
        .unwrap();
    store.apply_message(CHAT, &v1.to_string(), false).unwrap();
    let items = view(&store);
    assert_eq!(items[0]["state"], "deleted");
    assert_eq!(items[0]["content"], Value::Null);
    store
        .apply_message(CHAT, &undone.to_string(), false)
        .unwrap();
    assert_eq!(view(&store)[0]["state"], "visible");
    assert_eq!(view(&store)[0]["content"], "hello");
}

fn a_deletion_without_data_deletes_what_it_finds(backend: Backend) {
    let Some((_place, store)) = store(backend, "a_deletion_without_data_deletes_what_it_finds")
    else {
        return;
    };
    let v1 = message("1764496800000", OTHER, "hello", "2026-11-30T10:00:00.000Z");
    store.apply_message(CHAT, &v1.to_string(), false).unwrap();
    assert_eq!(
        store.apply_deletion(CHAT, "1764496800000").unwrap(),
        Applied::Changed
    );
    assert_eq!(view(&store)[0]["state"], "deleted");
    // Its duplicate changes nothing; an unknown message is left for the next read.
    assert_eq!(
        store.apply_deletion(CHAT, "1764496800000").unwrap(),
        Applied::Unchanged
    );
    assert_eq!(store.apply_deletion(CHAT, "1").unwrap(), Applied::Unchanged);
}

fn messages_are_in_created_order_with_ties_broken_by_id_as_a_number(backend: Backend) {
    let Some((_place, store)) = store(
        backend,
        "messages_are_in_created_order_with_ties_broken_by_id_as_a_number",
    ) else {
        return;
    };
    for id in ["900", "1000", "20"] {
        let mut m = message(id, OTHER, id, "2026-11-30T10:00:00.000Z");
        m["createdDateTime"] = "2026-11-30T09:00:00Z".into();
        store.apply_message(CHAT, &m.to_string(), false).unwrap();
    }
    let mut early = message("5000", OTHER, "early", "2026-11-30T10:00:00.000Z");
    early["createdDateTime"] = "2026-11-30T08:59:59.9999999+00:00".into();
    store
        .apply_message(CHAT, &early.to_string(), false)
        .unwrap();
    let ids: Vec<_> = view(&store)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["5000", "20", "900", "1000"]);
}

fn dlp_blocks_others_and_tells_the_sender_and_a_late_verdict_retracts(backend: Backend) {
    let Some((_place, store)) = store(
        backend,
        "dlp_blocks_others_and_tells_the_sender_and_a_late_verdict_retracts",
    ) else {
        return;
    };
    let theirs = message("100", OTHER, "secret", "2026-11-30T10:00:00.000Z");
    let mine = message("200", ME, "my secret", "2026-11-30T10:00:00.000Z");
    store
        .apply_message(CHAT, &theirs.to_string(), false)
        .unwrap();
    store.apply_message(CHAT, &mine.to_string(), false).unwrap();
    assert_eq!(view(&store)[0]["content"], "secret");
    for (m, id) in [(theirs, "100"), (mine, "200")] {
        let mut blocked = m.clone();
        blocked["policyViolation"] = json!({"dlpAction": "BlockAccess"});
        blocked["lastModifiedDateTime"] = "2026-11-30T10:03:00.000Z".into();
        store
            .apply_message(CHAT, &blocked.to_string(), false)
            .unwrap();
        let _ = id;
    }
    let items = view(&store);
    assert_eq!(items[0]["state"], "blocked");
    assert_eq!(items[0]["content"], Value::Null);
    assert_eq!(items[1]["state"], "visible");
    assert_eq!(items[1]["content"], "my secret");
    assert!(items[1]["notice"].as_str().unwrap().contains("policy"));
}

fn unread_counts_follow_the_viewpoint_and_hidden_chats_come_back(backend: Backend) {
    let Some((_place, store)) = store(
        backend,
        "unread_counts_follow_the_viewpoint_and_hidden_chats_come_back",
    ) else {
        return;
    };
    store
        .apply_chat(&chat(Some("2026-11-30T09:30:00Z"), true).to_string())
        .unwrap();
    let item = |store: &Store| as_json(&store.chats().unwrap().0)[0].clone();
    assert_eq!(item(&store)["hidden"], true);
    assert_eq!(item(&store)["unreadCount"], 0);
    // Others' messages after the read time count; mine, deleted ones and system events do not.
    store
        .apply_message(
            CHAT,
            &message("1", OTHER, "a", "2026-11-30T10:00:00Z").to_string(),
            false,
        )
        .unwrap();
    store
        .apply_message(
            CHAT,
            &message("2", ME, "b", "2026-11-30T10:00:00Z").to_string(),
            false,
        )
        .unwrap();
    let mut system = message("3", OTHER, "", "2026-11-30T10:00:00Z");
    system["messageType"] = "systemEventMessage".into();
    store
        .apply_message(CHAT, &system.to_string(), false)
        .unwrap();
    let mut gone = message("4", OTHER, "x", "2026-11-30T10:00:00Z");
    gone["deletedDateTime"] = "2026-11-30T10:01:00Z".into();
    store.apply_message(CHAT, &gone.to_string(), false).unwrap();
    assert_eq!(item(&store)["unreadCount"], 1);
    // A message created after the last read shows a hidden chat again.
    assert_eq!(item(&store)["hidden"], false);
    store
        .apply_chat(&chat(Some("2026-11-30T11:00:00Z"), true).to_string())
        .unwrap();
    assert_eq!(item(&store)["unreadCount"], 0);
    assert_eq!(item(&store)["hidden"], true);
}

fn events_are_logged_in_order_and_replayed_after_an_id(backend: Backend) {
    let Some((_place, store)) = store(
        backend,
        "events_are_logged_in_order_and_replayed_after_an_id",
    ) else {
        return;
    };
    let (mut live, last) = store.subscribe().unwrap();
    assert_eq!(last, 0);
    store.apply_chat(&chat(None, false).to_string()).unwrap();
    store
        .apply_message(
            CHAT,
            &message("1", OTHER, "a", "2026-11-30T10:00:00Z").to_string(),
            false,
        )
        .unwrap();
    let all = store.events_after(0, 100).unwrap();
    // The chat, the message, and the chat again (its unread count went up).
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    for expected in &all {
        assert_eq!(&live.try_recv().unwrap(), expected);
    }
    let kinds: Vec<Value> = all
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap()["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("chat"), json!("message"), json!("chat")]);
    assert_eq!(store.events_after(all[1].id, 100).unwrap(), all[2..]);
}

fn the_cache_survives_a_reopen(backend: Backend) {
    let Some(place) = Place::new(backend, "the_cache_survives_a_reopen") else {
        return;
    };
    {
        let store = place.open();
        store.apply_chat(&chat(None, false).to_string()).unwrap();
        store
            .apply_message(
                CHAT,
                &message("1", OTHER, "kept", "2026-11-30T10:00:00Z").to_string(),
                false,
            )
            .unwrap();
    }
    let store = place.open();
    assert_eq!(view(&store)[0]["content"], "kept");
    assert_eq!(store.events_after(0, 10).unwrap().len(), 3);
}

#[test]
fn teams_html_is_sanitized_formatting_kept() {
    let v = viewer();
    let clean = sanitize(
        r#"<p>Hi <b>there</b> <at id="0">Megan</at><script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a><a href="https://example.com/">ok</a><iframe src="https://evil.example/"></iframe><style>body{}</style><div onclick="alert(4)" style="color:red">d</div></p>"#,
        &v,
        CHAT,
        "1",
    );
    assert!(clean.contains("<b>there</b>"), "{clean}");
    assert!(clean.contains("Megan"), "{clean}");
    for bad in [
        "script",
        "alert",
        "onerror",
        "javascript:",
        "iframe",
        "style",
        "onclick",
    ] {
        assert!(!clean.contains(bad), "{bad} survived: {clean}");
    }
    assert!(clean.contains(r#"href="https://example.com/""#), "{clean}");
}

#[test]
fn inline_images_are_served_by_the_app_and_no_other_image_loads() {
    let v = viewer();
    let html = |port: u16, chat: &str, message: &str| {
        format!(
            r#"<p><img src="http://127.0.0.1:{port}/v1.0/chats/{chat}/messages/{message}/hostedContents/aWQ9MQ==/$value" alt="pic"><img src="https://tracker.example/pixel.gif"><a href="/api/chats/../../x">rel</a><img src="/api/chats/x"></p>"#
        )
    };
    let served = r#"src="/api/chats/19%3Ademo%40thread%2Ev2/messages/1764496800000/hostedContents/aWQ9MQ%3D%3D""#;
    // On the Graph the app calls, and on a local Graph restarted on another port.
    for port in [9, 40000] {
        let clean = sanitize(
            &html(port, CHAT, "1764496800000"),
            &v,
            CHAT,
            "1764496800000",
        );
        assert!(clean.contains(served), "{clean}");
        assert!(!clean.contains("tracker"), "{clean}");
        assert!(!clean.contains("../"), "{clean}");
        assert_eq!(clean.matches("/api/chats/").count(), 1, "{clean}");
    }
    // Another message's (or chat's) image is not this message's to show.
    let clean = sanitize(&html(9, CHAT, "1764496800000"), &v, CHAT, "5");
    assert!(!clean.contains("/api/chats/"), "{clean}");
    let clean = sanitize(
        &html(9, "19:other@thread.v2", "1764496800000"),
        &v,
        CHAT,
        "1764496800000",
    );
    assert!(!clean.contains("/api/chats/"), "{clean}");
}

fn a_read_settles_two_versions_notifications_cannot_order(backend: Backend) {
    let Some((_place, store)) = store(
        backend,
        "a_read_settles_two_versions_notifications_cannot_order",
    ) else {
        return;
    };
    // Two edits with the same time and etag (notifications cannot tell which is newer).
    let mut a = message("1", OTHER, "edit a", "2026-11-30T10:05:00.000Z");
    a["lastEditedDateTime"] = "2026-11-30T10:05:00.000Z".into();
    let mut b = a.clone();
    b["body"]["content"] = "edit b".into();
    // Whichever came last by notification, Graph's copy read afterwards wins.
    for (notified, read) in [(&a, &b), (&b, &a)] {
        store
            .apply_message(CHAT, &notified.to_string(), false)
            .unwrap();
        store.apply_read(CHAT, &read.to_string()).unwrap();
        assert_eq!(view(&store)[0]["content"], read["body"]["content"]);
    }
    // An older read still does not replace a newer version.
    let older = message("1", OTHER, "original", "2026-11-30T10:00:00.000Z");
    assert_eq!(
        store.apply_read(CHAT, &older.to_string()).unwrap(),
        Applied::Unchanged
    );
}

/// The JSON the API and the event stream give for each kind of item, field for field (the shapes of
/// `docs/contracts.md#the-chat-app`): pinned so that how the items are built may change and what the page
/// reads may not.
fn items_and_events_keep_the_contracts_json(backend: Backend) {
    let Some((_place, store)) = store(backend, "items_and_events_keep_the_contracts_json") else {
        return;
    };
    store
        .apply_chat(&chat(Some("2026-11-30T09:30:00Z"), false).to_string())
        .unwrap();
    let at = "2026-11-30T10:00:00.000Z";
    let later = "2026-11-30T10:05:00.000Z";
    let plain = message("1", OTHER, "hello", at);
    let mut html = message("2", OTHER, "<p>Hi <b>all</b><script>x()</script></p>", at);
    html["body"]["contentType"] = "html".into();
    let mut edited = message("3", OTHER, "better", later);
    edited["lastEditedDateTime"] = later.into();
    let mut deleted = message("4", OTHER, "gone", later);
    deleted["deletedDateTime"] = later.into();
    let mut blocked = message("5", OTHER, "secret", later);
    blocked["policyViolation"] = json!({"dlpAction": "BlockAccess"});
    let mut mine_blocked = message("6", ME, "my secret", later);
    mine_blocked["policyViolation"] = json!({"dlpAction": "BlockAccess"});
    let mut mine_notified = message("7", ME, "my card", later);
    mine_notified["policyViolation"] = json!({"dlpAction": "NotifySender"});
    let mut bot = message("8", OTHER, "from a bot", at);
    bot["from"] = json!({"user": null, "application": {"id": "bot-1", "displayName": "Bot"}});
    let mut system = message("9", OTHER, "", at);
    system["from"] = Value::Null;
    system["messageType"] = "systemEventMessage".into();
    let mut bare = json!({"id": "10", "createdDateTime": "2026-11-30T10:00:00Z"});
    bare["messageType"] = "message".into();
    for m in [
        &plain,
        &html,
        &edited,
        &deleted,
        &blocked,
        &mine_blocked,
        &mine_notified,
        &bot,
        &system,
        &bare,
    ] {
        store.apply_message(CHAT, &m.to_string(), false).unwrap();
    }
    let someone = json!({"id": OTHER, "displayName": "Someone"});
    let me = json!({"id": ME, "displayName": "Someone"});
    let item = |id: &str,
                modified: &str,
                from: &Value,
                content_type: &str,
                content: Value,
                state: &str| {
        json!({
            "id": id, "createdDateTime": at, "lastModifiedDateTime": modified, "from": from,
            "contentType": content_type, "content": content, "state": state,
        })
    };
    let mut mine_blocked_item = item("6", later, &me, "text", json!("my secret"), "visible");
    mine_blocked_item["notice"] = "Blocked by a policy: only you can see this message.".into();
    let mut mine_notified_item = item("7", later, &me, "text", json!("my card"), "visible");
    mine_notified_item["notice"] = "This message may contain sensitive information.".into();
    let expected = vec![
        item("1", at, &someone, "text", json!("hello"), "visible"),
        item(
            "2",
            at,
            &someone,
            "html",
            json!("<p>Hi <b>all</b></p>"),
            "visible",
        ),
        item("3", later, &someone, "text", json!("better"), "edited"),
        item("4", later, &someone, "text", Value::Null, "deleted"),
        item("5", later, &someone, "text", Value::Null, "blocked"),
        mine_blocked_item,
        mine_notified_item,
        item(
            "8",
            at,
            &json!({"id": "bot-1", "displayName": "Bot"}),
            "text",
            json!("from a bot"),
            "visible",
        ),
        item("9", at, &Value::Null, "text", json!(""), "visible"),
        json!({
            "id": "10", "createdDateTime": "2026-11-30T10:00:00Z", "lastModifiedDateTime": null,
            "from": null, "contentType": "text", "content": "", "state": "visible",
        }),
    ];
    let items = view(&store);
    assert_eq!(items.len(), expected.len());
    for (got, want) in items.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    // Unread: 1, 2, 3, 5, 8 and 10 (not mine, not deleted, messages, after the read time).
    // The newest message that counts, for the chat list: 10 (all at one time; the highest id).
    let newest =
        json!({"id": "10", "createdDateTime": "2026-11-30T10:00:00Z", "from": null, "text": ""});
    let mut chat_item = json!({
        "id": CHAT, "topic": "Demo", "chatType": "group", "unreadCount": 6, "hidden": false,
    });
    chat_item["lastMessage"] = newest.clone();
    assert_eq!(as_json(&store.chats().unwrap().0), vec![chat_item.clone()]);

    let events: Vec<Value> = store
        .events_after(0, 1000)
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    let mut first_chat = chat_item.clone();
    first_chat.as_object_mut().unwrap().remove("lastMessage");
    first_chat["unreadCount"] = 0.into();
    first_chat["kind"] = "chat".into();
    assert_eq!(events[0], first_chat);
    let mut first_message = expected[0].clone();
    first_message["kind"] = "message".into();
    first_message["chatId"] = CHAT.into();
    assert_eq!(events[1], first_message);
    let mut counted = chat_item.clone();
    counted["lastMessage"] = json!({
        "id": "1", "createdDateTime": at, "from": someone, "text": "hello",
    });
    counted["unreadCount"] = 1.into();
    counted["kind"] = "chat".into();
    assert_eq!(events[2], counted);

    // A deletion without data: the same item, deleted.
    store.apply_deletion(CHAT, "1").unwrap();
    let mut gone = expected[0].clone();
    gone["content"] = Value::Null;
    gone["state"] = "deleted".into();
    assert_eq!(view(&store)[0], gone);

    // A chat Graph no longer has: its last event.
    store.remove_chat(CHAT).unwrap();
    let last = store.events_after(0, 1000).unwrap().pop().unwrap();
    let removed: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(
        removed,
        json!({
            "id": CHAT, "topic": "Demo", "chatType": "group", "unreadCount": 0, "hidden": true,
            "removed": true, "kind": "chat", "lastMessage": newest,
        })
    );
}

fn a_kept_write_survives_a_reopen_and_is_claimed_once(backend: Backend) {
    let Some((place, store)) = store(
        backend,
        "a_kept_write_survives_a_reopen_and_is_claimed_once",
    ) else {
        return;
    };
    // Epoch milliseconds today overflow 32 bits: the columns must hold them.
    let asked = 1_796_000_000_000_i64;
    let mut send = PendingWrite::new("send", CHAT, asked);
    send.content = Some("the figures".into());
    send.body = Some(br#"{"body":{"content":"the figures"}}"#.to_vec());
    send.known = vec!["1764496800000".into()];
    let id = store.add_write(&send).unwrap();
    let mut edit = PendingWrite::new("edit", CHAT, asked + 1);
    edit.message_id = Some("1764496800000".into());
    edit.due_ms = asked + 5_000;
    let second = store.add_write(&edit).unwrap();
    assert!(second > id);
    drop(store);

    // A restart: the send that was being tried is due at once, and still what it was.
    let store = place.open();
    assert_eq!(store.resume_writes(asked + 10).unwrap(), 2);
    let next = store.next_write().unwrap().unwrap();
    assert_eq!(next.id, id);
    assert_eq!(next.due_ms, asked + 10);
    assert_eq!(next.content.as_deref(), Some("the figures"));
    assert_eq!(next.body, send.body);
    assert_eq!(next.known, send.known);
    assert_eq!(next.started_ms, asked);

    // Claimed once: a second claim of the same due time finds it taken.
    assert!(store.claim_write(id, asked + 10, true).unwrap());
    assert!(!store.claim_write(id, asked + 10, true).unwrap());
    assert!(store.reschedule_write(id, asked + 20_000, true, 3).unwrap());
    let kept = store.pending_writes().unwrap();
    assert_eq!(kept.len(), 2);
    assert!(kept[0].unsure);
    assert_eq!((kept[0].due_ms, kept[0].rounds), (asked + 20_000, 3));
    assert_ne!(kept[0].due_ms, TRYING);

    store.remove_write(id, None).unwrap();
    store.remove_write(second, None).unwrap();
    assert!(store.next_write().unwrap().is_none());
    assert!(!store.reschedule_write(id, 0, false, 0).unwrap());
}
