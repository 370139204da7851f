//! What a person asks for survives throttling, lost answers and a stopped app
//! (`docs/contracts.md#the-chat-app`): each write is kept in the person's cache until Graph
//! takes it, retried, and carried out once; the app's calls on one chat are paced under Graph's
//! Teams limit; a delivery the webhook could not take is made up for by a read.

use crate::common;

use std::time::Duration;

use crate::common::{encode, sim_config, wait_for, Harness};
use graph_chat_app::people::cache_file;
use graph_chat_app::store::{PendingWrite, Store};
use graph_chat_app::view::Viewer;
use graph_chat_webhook::notifications::outbound::MessageRequest;
use graph_sim::{Faults, Usage};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A reconcile that never comes within a test.
const DAILY: Duration = Duration::from_secs(86_400);

fn throttle(h: &Harness, p: f64) {
    h.sim()
        .set_faults(Faults {
            throttle: p,
            ..Faults::default()
        })
        .unwrap();
}

fn calm(h: &Harness) {
    h.sim().set_faults(Faults::default()).unwrap();
}

/// A request of the app's API with a JSON body: its status and JSON answer.
fn call(h: &Harness, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", h.url()))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .unwrap();
    let mut response = h.http.run(request).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The person sends `text` to `chat` (Graph not throttled): the message's id.
fn send(h: &Harness, chat: &str, text: &str) -> String {
    let (status, item) = call(
        h,
        "POST",
        &format!("api/chats/{}/messages", encode(chat)),
        &json!({"content": text, "contentType": "text"}),
    );
    assert_eq!(status, 201, "{item}");
    item["id"].as_str().unwrap().to_owned()
}

/// Graph's message `id` of `chat` as the simulator holds it.
fn truth(h: &Harness, chat: &str, id: &str) -> Value {
    h.sim()
        .truth(chat)
        .unwrap()
        .into_iter()
        .find(|m| m["id"] == id)
        .unwrap_or(Value::Null)
}

/// How many of Graph's messages of `chat` say `text`.
fn copies(h: &Harness, chat: &str, text: &str) -> usize {
    h.sim()
        .truth(chat)
        .unwrap()
        .into_iter()
        .filter(|m| m["body"]["content"] == text)
        .count()
}

/// How many of the page's messages of `chat` say `text`.
fn shown(h: &Harness, chat: &str, text: &str) -> usize {
    h.messages(chat)
        .into_iter()
        .filter(|m| m["content"] == text)
        .count()
}

/// The writes the person's cache keeps.
fn kept(h: &Harness) -> usize {
    h.person().store().pending_writes().unwrap().len()
}

fn at(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap()
}

/// The calls of `method` whose resource ends with `tail` and names `chat`.
fn calls<'u>(
    usage: &'u Usage,
    method: &str,
    chat: &str,
    tail: &str,
) -> Vec<&'u graph_sim::CallCount> {
    usage
        .calls
        .iter()
        .filter(|c| c.method == method && c.resource.contains(chat) && c.resource.ends_with(tail))
        .collect()
}

#[test]
fn a_throttled_edit_reaction_and_delete_wait_then_are_each_carried_out_once() {
    let h = Harness::start(DAILY);
    let chat = h.first_chat();
    let edited = send(&h, &chat, "before the edit");
    let reacted = send(&h, &chat, "to react to");
    let deleted = send(&h, &chat, "to delete");
    let events = h.events(None, None);
    throttle(&h, 1.0);
    let path = |id: &str, tail: &str| format!("api/chats/{}/messages/{id}{tail}", encode(&chat));
    let (status, body) = call(
        &h,
        "PATCH",
        &path(&edited, ""),
        &json!({"content": "after"}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "waiting");
    let (status, _) = call(
        &h,
        "POST",
        &path(&reacted, "/setReaction"),
        &json!({"reactionType": "👍"}),
    );
    assert_eq!(status, 202);
    let (status, _) = call(&h, "POST", &path(&deleted, "/softDelete"), &json!({}));
    assert_eq!(status, 202);
    // Each is kept while it waits, and the page is told.
    assert_eq!(kept(&h), 3);
    events.until("the edit waits", |e| {
        e.data["kind"] == "write" && e.data["what"] == "edit" && e.data["state"] == "waiting"
    });
    calm(&h);
    events.until("the delete is done", |e| {
        e.data["kind"] == "write" && e.data["what"] == "softDelete" && e.data["state"] == "done"
    });
    wait_for("every write to be done", || (kept(&h) == 0).then_some(()));
    assert_eq!(truth(&h, &chat, &edited)["body"]["content"], "after");
    let reactions = truth(&h, &chat, &reacted)["reactions"].clone();
    assert_eq!(reactions.as_array().unwrap().len(), 1, "{reactions}");
    assert!(truth(&h, &chat, &deleted)["deletedDateTime"].is_string());
    // The page shows each, as Graph has it.
    wait_for("the page to show them", || {
        let edit = h.message(&chat, &edited)?;
        let gone = h.message(&chat, &deleted)?;
        (edit["content"] == "after" && gone["state"] == "deleted").then_some(())
    });
    // Taken once each: one 2xx each, whatever the 429s before it.
    let usage = h.sim().usage();
    assert_eq!(calls(&usage, "PATCH", &chat, &edited).len(), 1);
}

#[test]
fn a_write_graph_refuses_is_failed_with_graphs_reason() {
    let h = Harness::start(DAILY);
    let chat = h.first_chat();
    let mine = send(&h, &chat, "mine");
    let events = h.events(None, None);
    throttle(&h, 1.0);
    // Throttled first, then refused: the colleague deleted nothing, but a message that is not
    // there cannot be reacted to.
    let (status, _) = call(
        &h,
        "POST",
        &format!("api/chats/{}/messages/{mine}9/setReaction", encode(&chat)),
        &json!({"reactionType": "👍"}),
    );
    assert_eq!(status, 202);
    calm(&h);
    let failed = events.until("the reaction to fail", |e| {
        e.data["kind"] == "write" && e.data["state"] == "failed"
    });
    assert_eq!(failed.data["what"], "setReaction");
    assert!(
        failed.data["reason"].as_str().unwrap().contains("404"),
        "{failed:?}"
    );
    assert_eq!(kept(&h), 0);
}

#[test]
fn a_queued_send_survives_the_app_stopping_and_is_made_once_after_the_restart() {
    let mut h = Harness::start(DAILY);
    let chat = h.first_chat();
    throttle(&h, 1.0);
    let (status, body) = call(
        &h,
        "POST",
        &format!("api/chats/{}/messages", encode(&chat)),
        &json!({"content": "kept across a restart", "contentType": "text"}),
    );
    assert_eq!(status, 202, "{body}");
    h.stop_app();
    calm(&h);
    assert_eq!(copies(&h, &chat, "kept across a restart"), 0);
    h.start_app();
    wait_for("the kept send to be made", || {
        (copies(&h, &chat, "kept across a restart") == 1).then_some(())
    });
    wait_for("the page to show it", || {
        (shown(&h, &chat, "kept across a restart") == 1).then_some(())
    });
    wait_for("the write to be forgotten", || {
        (kept(&h) == 0).then_some(())
    });
    assert_eq!(copies(&h, &chat, "kept across a restart"), 1);
}

#[test]
fn a_send_in_flight_when_the_process_died_is_looked_for_not_sent_again() {
    let mut h = Harness::start(DAILY);
    let chat = h.first_chat();
    let user = h.user();
    h.stop_app();
    // What a process killed mid-send leaves: the send made in Graph, its row unsure.
    let text = "made just before the kill";
    let sent = MessageRequest::send(chat.clone(), text)
        .text()
        .build()
        .unwrap();
    let request = sent.clone();
    let started = OffsetDateTime::now_utc();
    let token = common::token_for(h.sim(), &user);
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(format!(
            "{}v1.0/chats/{}/messages",
            h.sim().base_url(),
            encode(&chat)
        ))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(String::from_utf8(request.body.clone().unwrap()).unwrap())
        .unwrap();
    let made = h.http.run(request).unwrap();
    assert_eq!(made.status().as_u16(), 201);
    {
        let viewer = Viewer {
            user_id: user.clone(),
            graph_base: h.sim().base_url().trim_end_matches('/').to_owned(),
        };
        let store = Store::open(&cache_file(&h.config().data, &user), viewer).unwrap();
        let mut row = PendingWrite::new(
            "send",
            &chat,
            i64::try_from(started.unix_timestamp_nanos() / 1_000_000).unwrap(),
        );
        row.content = Some(text.to_owned());
        row.body = sent.body.clone();
        row.unsure = true;
        row.due_ms = graph_chat_app::store::TRYING;
        store.add_write(&row).unwrap();
    }
    h.start_app();
    wait_for("the kept send to be settled", || {
        (kept(&h) == 0).then_some(())
    });
    assert_eq!(copies(&h, &chat, text), 1);
    wait_for("the page to show it", || {
        (shown(&h, &chat, text) == 1).then_some(())
    });
}

#[test]
fn a_send_whose_answer_was_lost_is_in_graph_once_and_on_the_page_once() {
    let h = Harness::start(DAILY);
    let chat = h.first_chat();
    h.sim()
        .set_faults(Faults {
            lose_answers: 1,
            ..Faults::default()
        })
        .unwrap();
    let text = "its answer was lost";
    let (status, item) = call(
        &h,
        "POST",
        &format!("api/chats/{}/messages", encode(&chat)),
        &json!({"content": text, "contentType": "text"}),
    );
    // Found among the chat's newest messages: the send is done, with Graph's message.
    assert_eq!(status, 201, "{item}");
    assert_eq!(item["content"], text);
    calm(&h);
    assert_eq!(copies(&h, &chat, text), 1);
    wait_for("the page to show it", || {
        (shown(&h, &chat, text) == 1).then_some(())
    });
    assert_eq!(copies(&h, &chat, text), 1);
    assert_eq!(kept(&h), 0);
}

#[test]
fn an_edit_whose_answer_was_lost_is_tried_again_and_lands_once() {
    let h = Harness::start(DAILY);
    let chat = h.first_chat();
    let id = send(&h, &chat, "first words");
    h.sim()
        .set_faults(Faults {
            lose_answers: 1,
            ..Faults::default()
        })
        .unwrap();
    let (status, body) = call(
        &h,
        "PATCH",
        &format!("api/chats/{}/messages/{id}", encode(&chat)),
        &json!({"content": "second words"}),
    );
    // A PATCH made twice is made once: tried again in the background.
    assert_eq!(status, 202, "{body}");
    wait_for("the edit to be settled", || (kept(&h) == 0).then_some(()));
    assert_eq!(truth(&h, &chat, &id)["body"]["content"], "second words");
    wait_for("the page to show it", || {
        (h.message(&chat, &id)?["content"] == "second words").then_some(())
    });
}

#[test]
fn reads_and_writes_of_one_chat_are_a_second_apart_and_other_chats_do_not_wait() {
    let h = Harness::start(DAILY);
    let busy = h.first_chat();
    let other = h.create_chat("Other");
    wait_for("the other chat", || {
        h.person().store().has_chat(&other).unwrap().then_some(())
    });
    h.sim().reset_usage();
    let person = h.person();
    let user = h.user();
    h.runtime.block_on(async {
        let read = |chat: &str| {
            graph_chat_webhook::notifications::outbound::MessagesRequest::user_chat(
                user.clone(),
                chat.to_owned(),
            )
            .top(1)
            .build()
            .unwrap()
        };
        let mut reads = Vec::new();
        for _ in 0..3 {
            let person = std::sync::Arc::clone(&person);
            let request = read(&busy);
            reads.push(tokio::spawn(async move { person.send(request).await }));
        }
        let person = std::sync::Arc::clone(&person);
        let request = read(&other);
        reads.push(tokio::spawn(async move { person.send(request).await }));
        for read in reads {
            assert_eq!(read.await.unwrap().unwrap().status, 200);
        }
    });
    let usage = h.sim().usage();
    let busy_reads = calls(&usage, "GET", &busy, "/messages");
    assert_eq!(busy_reads.len(), 1, "{usage:?}");
    assert_eq!(busy_reads[0].count, 3);
    let spread = at(&busy_reads[0].last) - at(&busy_reads[0].first);
    assert!(spread >= time::Duration::milliseconds(1900), "{spread}");
    let other_reads = calls(&usage, "GET", &other, "/messages");
    assert_eq!(other_reads[0].count, 1);
    // The other chat's read went while the busy chat's waited.
    assert!(at(&other_reads[0].first) < at(&busy_reads[0].last));

    // Two sends to one chat: a second apart.
    h.sim().reset_usage();
    send(&h, &busy, "one");
    send(&h, &busy, "two");
    let usage = h.sim().usage();
    let sends = calls(&usage, "POST", &busy, "/messages");
    assert_eq!(sends[0].count, 2, "{usage:?}");
    let spread = at(&sends[0].last) - at(&sends[0].first);
    assert!(spread >= time::Duration::milliseconds(950), "{spread}");
}

#[test]
fn the_chats_are_read_once_the_webhook_takes_deliveries_again() {
    let h = Harness::start_with(DAILY, sim_config());
    let chat = h.first_chat();
    h.sim().reset_usage();
    // The inbox cannot commit: the webhook answers Graph 503 until it can.
    let inbox = rusqlite::Connection::open(h.config().data.join("inbox.sqlite")).unwrap();
    inbox.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let id = h.says(&chat, "while the webhook could not take it");
    std::thread::sleep(Duration::from_secs(3));
    // Graph's retries are lost from here on: only a read brings the message.
    h.sim()
        .set_faults(Faults {
            drop: 1.0,
            ..Faults::default()
        })
        .unwrap();
    inbox.execute_batch("ROLLBACK").unwrap();
    drop(inbox);
    // The cache is asked directly: the page's API would read the chat when it is opened.
    wait_for("the chat to be read", || {
        let usage = h.sim().usage();
        (!calls(&usage, "GET", &chat, "/messages").is_empty()).then_some(())
    });
    wait_for("the message to be kept", || {
        let (items, _) = h.person().store().messages(&chat).unwrap();
        items.iter().any(|m| m.id == id).then_some(())
    });
}
