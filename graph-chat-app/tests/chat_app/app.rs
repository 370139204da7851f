//! The app end to end over HTTP, against the simulator on loopback: its API
//! (`docs/contracts.md#the-chat-app`),
//! live events, and a view that matches Graph whatever the delivery does.

use crate::common;

use std::time::Duration;

use crate::common::{get, post, wait_for, Harness, COLLEAGUE};
use graph_sim::Faults;
use serde_json::{json, Value};

#[test]
fn the_api_lists_chats_and_messages_in_the_contract_shape() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    let item = h.chat(&chat);
    assert_eq!(item["topic"], "Project");
    assert_eq!(item["chatType"], "group");
    assert_eq!(item["hidden"], false);
    assert!(item["unreadCount"].is_u64());
    let sent = h.colleague_writes(&chat, "hello", "text");
    let id = sent["id"].as_str().unwrap().to_owned();
    let m = wait_for("the colleague's message", || h.message(&chat, &id));
    for key in [
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "from",
        "contentType",
        "content",
        "state",
    ] {
        assert!(m.get(key).is_some(), "{key} missing from {m}");
    }
    assert_eq!(
        m["from"],
        json!({"id": COLLEAGUE.0, "displayName": COLLEAGUE.1})
    );
    assert_eq!(m["state"], "visible");
    assert_eq!(m["content"], "hello");
    let (status, _) = get(
        &h.http,
        &format!("{}api/chats/19%3Anope%40thread.v2/messages", h.url()),
    );
    assert_eq!(status, 404);
}

#[test]
fn a_colleagues_message_is_pushed_live_and_the_event_names_it() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    let events = h.events(None, None);
    let sent = h.colleague_writes(&chat, "live one", "text");
    let id = sent["id"].as_str().unwrap();
    let event = events.until("the message event", |e| {
        e.data["kind"] == "message" && e.data["id"] == id
    });
    assert_eq!(event.data["chatId"], chat.as_str());
    assert_eq!(event.data["content"], "live one");
    assert!(event.id.is_some());
    // The chat's unread count changed with it: a chat event.
    let chat_event = events.until("the chat event", |e| {
        e.data["kind"] == "chat" && e.data["id"] == chat.as_str()
    });
    assert!(chat_event.data["unreadCount"].as_u64().unwrap() >= 1);
}

#[test]
fn a_message_sent_from_the_page_shows_once() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    let before = h.sim().deliveries().delivered;
    let (status, item) = post(
        &h.http,
        &format!("{}api/chats/{}/messages", h.url(), common::encode(&chat)),
        &json!({"content": "from the page", "contentType": "text"}),
    );
    assert_eq!(status, 201, "{item}");
    assert_eq!(item["content"], "from the page");
    assert_eq!(item["from"]["id"], h.sim().identity().user_id.as_str());
    // Its notification arrives too; still one message.
    wait_for("the sent message's notification", || {
        (h.sim().deliveries().delivered > before).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let same: Vec<Value> = h
        .messages(&chat)
        .into_iter()
        .filter(|m| m["content"] == "from the page")
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(same[0]["id"], item["id"]);
    // A message I sent is not unread.
    assert_eq!(h.chat(&chat)["unreadCount"], 0);
    let (status, _) = post(
        &h.http,
        &format!("{}api/chats/{}/messages", h.url(), common::encode(&chat)),
        &json!({"content": "x", "contentType": "markdown"}),
    );
    assert_eq!(status, 400);
}

#[test]
fn edits_deletes_and_dlp_verdicts_change_the_state_and_hide_content() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    let id = h.says(&chat, "draft");
    wait_for("the message", || h.message(&chat, &id));
    h.sim().colleague_edits(&chat, &id, "final").unwrap();
    let m = wait_for("the edit", || {
        h.message(&chat, &id).filter(|m| m["state"] == "edited")
    });
    assert_eq!(m["content"], "final");

    let blocked = h.says(&chat, "card number 4111");
    wait_for("the second message", || h.message(&chat, &blocked));
    h.sim()
        .policy_violation(&chat, &blocked, "BlockAccess")
        .unwrap();
    let m = wait_for("the DLP verdict", || {
        h.message(&chat, &blocked)
            .filter(|m| m["state"] == "blocked")
    });
    assert_eq!(m["content"], Value::Null);

    h.sim().colleague_deletes(&chat, &id).unwrap();
    let m = wait_for("the delete", || {
        h.message(&chat, &id).filter(|m| m["state"] == "deleted")
    });
    assert_eq!(m["content"], Value::Null);
    // Deleted messages keep their place.
    let ids: Vec<Value> = h.messages(&chat).iter().map(|m| m["id"].clone()).collect();
    assert_eq!(ids, [json!(id), json!(blocked)]);
}

#[test]
fn unread_counts_come_from_the_viewpoint_and_reading_goes_through_graph() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    h.colleague_writes(&chat, "one", "text");
    h.colleague_writes(&chat, "two", "text");
    wait_for("two unread", || {
        (h.chat(&chat)["unreadCount"] == 2).then_some(())
    });
    let (status, _) = post(
        &h.http,
        &format!("{}api/chats/{}/read", h.url(), common::encode(&chat)),
        &json!({}),
    );
    assert_eq!(status, 204);
    assert_eq!(h.chat(&chat)["unreadCount"], 0);
    // Graph holds the read too: a fresh app on the same Graph sees it.
    let user = h.sim().identity().user_id;
    let (_, graph_chat) = h.graph(
        "GET",
        &format!("v1.0/users/{user}/chats/{}", common::encode(&chat)),
    );
    assert!(
        graph_chat["viewpoint"]["lastMessageReadDateTime"].is_string(),
        "{graph_chat}"
    );
}

#[test]
fn teams_html_from_a_sender_is_sanitized() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    let id = h.colleague_writes(
        &chat,
        r#"<p>Hi <b>all</b><script>window.pwned=1</script><img src="x" onerror="window.pwned=2"><a href="javascript:alert(1)">c</a><iframe src="https://example.com"></iframe></p>"#,
        "html",
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = wait_for("the HTML message", || h.message(&chat, &id));
    let content = m["content"].as_str().unwrap();
    assert!(content.contains("<b>all</b>"), "{content}");
    for bad in ["<script", "pwned", "onerror", "javascript:", "<iframe"] {
        assert!(!content.contains(bad), "{bad} in {content}");
    }
    let (_, page) = (200, ureq_text(&h, "/"));
    assert!(page.contains("<form id=\"compose\""));
}

fn ureq_text(h: &Harness, path: &str) -> String {
    let mut r = h
        .http
        .get(&format!("{}{}", h.url(), path.trim_start_matches('/')))
        .call()
        .unwrap();
    let csp = r
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    r.body_mut().read_to_string().unwrap()
}

#[test]
fn a_stream_resumes_after_last_event_id_and_snapshots_say_where_they_stand() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    let mut response = h.http.get(&format!("{}api/chats", h.url())).call().unwrap();
    let mark: i64 = response
        .headers()
        .get("x-last-event-id")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let _ = response.body_mut().read_to_string();
    let a = h.says(&chat, "a");
    let b = h.says(&chat, "b");
    wait_for("both", || h.message(&chat, &b).and(h.message(&chat, &a)));
    // From the snapshot's mark: both messages (in the order the app took them in: deliveries
    // race), nothing older.
    let events = h.events(None, Some(mark));
    let first = events.until("a message", |e| e.data["kind"] == "message");
    let second = events.until("another message", |e| e.data["kind"] == "message");
    assert!(first.id.unwrap() > mark);
    assert!(second.id.unwrap() > first.id.unwrap());
    let mut got = [first.data["id"].clone(), second.data["id"].clone()];
    got.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(got, [json!(a), json!(b)]);
    // Last-Event-ID (what a browser sends when it reconnects) wins over ?after.
    let resumed = h.events(Some(first.id.unwrap()), Some(0));
    let next = resumed.until("after the first", |e| e.data["kind"] == "message");
    assert_eq!(next.data["id"], second.data["id"]);
    assert_eq!(next.id, second.id);
    // Without either, only new events.
    let fresh = h.events(None, None);
    assert!(fresh.drain(Duration::from_millis(300)).is_empty());
}

#[test]
fn a_dropped_notification_is_found_by_the_next_resync() {
    let h = Harness::start(Duration::from_secs(2));
    let chat = h.first_chat();
    h.sim()
        .set_faults(Faults {
            drop: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let dropped = h.sim().deliveries().dropped;
    let id = h.says(&chat, "lost in transit");
    // Every notification of it was dropped: only a read can find it.
    wait_for("the drops", || {
        (h.sim().deliveries().dropped > dropped).then_some(())
    });
    wait_for("the resync to read it", || h.message(&chat, &id));
    h.converged(&chat);
}

#[test]
fn a_silently_expired_subscription_is_recreated_and_the_gap_read() {
    let h = Harness::start(Duration::from_secs(2));
    let chat = h.first_chat();
    let before = h.sim().subscription_ids();
    assert_eq!(before.len(), 2, "{before:?}");
    for id in &before {
        h.sim().expire_subscription(id).unwrap();
    }
    let id = h.says(&chat, "while nobody listened");
    wait_for("new subscriptions", || {
        let now = h.sim().subscription_ids();
        (now.len() == 2 && now.iter().all(|s| !before.contains(s))).then_some(())
    });
    wait_for("the gap read", || h.message(&chat, &id));
    // And notifications flow again.
    let next = h.says(&chat, "after");
    wait_for("a live message", || h.message(&chat, &next));
}

#[test]
fn a_removed_subscription_is_recreated_on_subscription_removed() {
    let h = Harness::start(Duration::from_secs(60));
    let before = h.sim().subscription_ids();
    h.sim().remove_subscription(&before[0]).unwrap();
    wait_for("a new subscription", || {
        let now = h.sim().subscription_ids();
        (now.len() == 2 && !now.contains(&before[0])).then_some(())
    });
}

#[test]
fn duplicates_reorders_and_delays_converge_to_graphs_truth() {
    let h = Harness::start(Duration::from_secs(2));
    let chat = h.first_chat();
    h.sim()
        .set_faults(Faults {
            duplicate: 0.5,
            reorder: 0.5,
            delay_ms: Some([0, 200]),
            seed: Some(11),
            ..Faults::default()
        })
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(h.says(&chat, &format!("m{n}")));
    }
    h.sim()
        .colleague_edits(&chat, &ids[1], "m1 edited")
        .unwrap();
    h.sim()
        .colleague_edits(&chat, &ids[1], "m1 edited twice")
        .unwrap();
    h.sim().colleague_deletes(&chat, &ids[2]).unwrap();
    h.converged(&chat);
    let m1 = h.message(&chat, &ids[1]).unwrap();
    assert_eq!(m1["content"], "m1 edited twice");
}

#[test]
fn a_restart_shows_the_same_and_reads_what_came_meanwhile() {
    let mut h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    let id = h.says(&chat, "before");
    wait_for("the message", || h.message(&chat, &id));
    let seen = h.messages(&chat);
    h.stop_app();
    let meanwhile = h.says(&chat, "while the app was down");
    h.start_app();
    // On start it reads every chat from its watermark.
    assert!(h.message(&chat, &meanwhile).is_some());
    let after = h.messages(&chat);
    assert_eq!(after[..seen.len()], seen[..]);
    h.converged(&chat);
}

#[test]
fn a_deletion_without_data_is_settled_by_reading_the_message() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    // The app never hears of the message nor of its deletion with data.
    h.sim()
        .set_faults(Faults {
            drop: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let id = h.says(&chat, "gone before you saw it");
    h.sim().colleague_deletes(&chat, &id).unwrap();
    assert!(h.message(&chat, &id).is_none());
    // Then a deletion without resource data arrives (as from a subscription without it).
    let client_state = common::client_state(&h.dir.path().join("data"));
    let subscription = h.sim().subscription_ids()[0].clone();
    let body = json!({"value": [{
        "subscriptionId": subscription,
        "subscriptionExpirationDateTime": "2099-01-01T00:00:00Z",
        "changeType": "deleted",
        "clientState": client_state,
        "resource": format!("chats('{chat}')/messages('{id}')"),
        "resourceData": {"id": id, "@odata.type": "#Microsoft.Graph.chatMessage", "@odata.id": format!("chats('{chat}')/messages('{id}')")},
        "tenantId": h.sim().identity().tenant_id,
    }]});
    let (status, _) = post(&h.http, &format!("{}notifications", h.url()), &body);
    assert_eq!(status, 202);
    // It carries no time; Graph's copy says what it is: deleted, in its place, without content.
    let m = wait_for("the read after the deletion", || h.message(&chat, &id));
    assert_eq!(m["state"], "deleted");
    assert_eq!(m["content"], Value::Null);
}

#[test]
fn a_restart_on_another_address_moves_the_subscriptions_there() {
    // The resync period is long: only notifications can bring the message in time.
    let mut h = Harness::start(Duration::from_secs(3600));
    let chat = h.first_chat();
    let before = h.sim().subscription_ids();
    let old_url = h.url();
    h.stop_app();
    h.start_app(); // listens on a new free port
    assert_ne!(h.url(), old_url);
    let after = h.sim().subscription_ids();
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|s| !before.contains(s)),
        "{before:?} {after:?}"
    );
    let id = h.says(&chat, "to the new address");
    wait_for("the notification at the new address", || {
        h.message(&chat, &id)
    });
}

#[test]
fn inline_images_are_fetched_by_the_app_and_served_to_the_page() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR-a-tiny-test-image".to_vec();
    // The user sends an inline image through Graph (the guide's step 3 with hostedContents).
    let request = graph_chat_webhook::notifications::outbound::MessageRequest::send(
        chat.clone(),
        r#"<p>Look</p><img src="../hostedContents/1/$value" alt="chart">"#,
    )
    .html()
    .hosted_content("1", png.clone(), "image/png")
    .build()
    .unwrap();
    let token = common::token_for(h.sim(), &h.user());
    let graph = graph_chat_webhook::GraphClient::new(&h.sim().base_url(), &token);
    let answer = graph.send(&request).unwrap();
    assert_eq!(answer.status, 201);
    let id = serde_json::from_slice::<Value>(&answer.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = wait_for("the message", || h.message(&chat, &id));
    let content = m["content"].as_str().unwrap().to_owned();
    // The page gets a path on the app, never Graph's URL (the browser has no token for it).
    let start = content.find("src=\"").expect("an image") + 5;
    let src = &content[start..start + content[start..].find('"').unwrap()];
    assert!(src.starts_with("/api/chats/"), "{content}");
    assert!(!content.contains(&h.sim().base_url()), "{content}");
    let mut response = h
        .http
        .get(&format!("{}{}", h.url(), src.trim_start_matches('/')))
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        "image/png"
    );
    assert_eq!(response.body_mut().read_to_vec().unwrap(), png);
}

#[test]
fn a_chat_graph_deleted_leaves_the_list_and_its_messages_go() {
    let mut h = Harness::start(Duration::from_secs(2));
    let doomed = h.create_chat("Doomed");
    // A fresh start lists it (the resync reads the user's chats).
    h.stop_app();
    h.start_app();
    assert!(h.chat_ids().contains(&doomed));
    let events = h.events(None, None);
    let (status, _) = h.graph("DELETE", &format!("v1.0/chats/{}", common::encode(&doomed)));
    assert_eq!(status, 204);
    let gone = events.until("the chat's removal", |e| {
        e.data["kind"] == "chat" && e.data["id"] == doomed.as_str() && e.data["removed"] == true
    });
    assert_eq!(gone.data["hidden"], true);
    assert!(!h.chat_ids().contains(&doomed));
    let (status, _) = get(
        &h.http,
        &format!("{}api/chats/{}/messages", h.url(), common::encode(&doomed)),
    );
    assert_eq!(status, 404);
}

/// One raw HTTP/1.1 request (the Host header as given), the status code of its answer.
fn raw_status(base: &str, request: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

#[test]
fn only_the_apps_own_page_and_host_may_use_its_api() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = common::encode(&h.first_chat());
    let host = h
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let cookie = h.cookie();
    let read = |headers: &str| {
        raw_status(
            &h.url(),
            &format!("POST /api/chats/{chat}/read HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"),
        )
    };
    // Another site's page cannot mark the user's chats read (a form or a no-cors fetch).
    assert_eq!(read("Origin: http://evil.example\r\n"), 403);
    assert_eq!(read("Sec-Fetch-Site: cross-site\r\n"), 403);
    assert_eq!(
        read(&format!(
            "Origin: http://{host}\r\nSec-Fetch-Site: same-origin\r\n"
        )),
        204
    );
    assert_eq!(read(""), 204);
    // A name that is not this app's (DNS rebinding) reads nothing.
    let port = host.rsplit(':').next().unwrap();
    let list = |name: &str| {
        raw_status(
            &h.url(),
            &format!("GET /api/chats HTTP/1.1\r\nHost: {name}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"),
        )
    };
    assert_eq!(list(&format!("evil.example:{port}")), 421);
    assert_eq!(list(&format!("localhost:{port}")), 200);
    // The webhook still answers Graph, whatever name its public URL has.
    let handshake = raw_status(
        &h.url(),
        "POST /notifications?validationToken=abc HTTP/1.1\r\nHost: webhook.example.com\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(handshake, 200);
}

#[test]
fn a_cache_failure_answers_a_plain_message_and_no_sqlite_text() {
    let h = Harness::start(Duration::from_secs(60));
    let chat = h.first_chat();
    // The cache breaks under the running app: its table of chats is gone.
    let cache = rusqlite::Connection::open(graph_chat_app::people::cache_file(
        &h.dir.path().join("data"),
        &h.user(),
    ))
    .unwrap();
    cache.busy_timeout(Duration::from_secs(10)).unwrap();
    cache.execute_batch("DROP TABLE chats").unwrap();
    for path in [
        "api/chats".to_owned(),
        format!("api/chats/{}/messages", common::encode(&chat)),
    ] {
        let (status, body) = get(&h.http, &format!("{}{path}", h.url()));
        assert_eq!(status, 500, "{path}: {body}");
        let message = body["error"].as_str().expect("a message for the page");
        let lower = message.to_lowercase();
        for internal in ["sqlite", "table", "no such", "chats"] {
            assert!(!lower.contains(internal), "{path}: {message}");
        }
    }
}
