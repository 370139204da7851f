//! Reads by evidence, not by polling (`docs/contracts.md#the-chat-app`): counted by the
//! simulator's usage (`Simulator::usage`, what `GET /_sim/usage` answers), and throttling that
//! the app waits out rather than fails on.

use crate::common;

use std::time::Duration;

use crate::common::{sim_config, wait_for, Harness};
use graph_chat_app::options::{Options, DEFAULT_RESYNC_EVERY};
use graph_sim::{Faults, Usage};
use serde_json::json;

/// The default reconcile period: a day, as the app is run.
fn default_resync() -> Duration {
    let options = Options::parse(Vec::<String>::new()).unwrap();
    Duration::from_secs(options.resync_every)
}

/// The GETs of a chat's message list (any chat, or the one named) the simulator served.
fn message_reads(usage: &Usage, chat: Option<&str>) -> u64 {
    usage
        .calls
        .iter()
        .filter(|c| c.method == "GET" && c.route.ends_with("/messages"))
        .filter(|c| chat.is_none_or(|id| c.resource.contains(id)))
        .map(|c| c.count)
        .sum()
}

/// The GETs of a list of chats the simulator served.
fn chat_lists(usage: &Usage) -> u64 {
    usage
        .calls
        .iter()
        .filter(|c| c.method == "GET" && c.route.ends_with("/chats"))
        .map(|c| c.count)
        .sum()
}

/// Whether the person's cache holds message `id` of `chat`.
fn cached(h: &Harness, chat: &str, id: &str) -> bool {
    let (items, _) = h.person().store().messages(chat).unwrap();
    items.iter().any(|m| m.id == id)
}

#[test]
fn the_default_reconcile_is_daily() {
    assert_eq!(DEFAULT_RESYNC_EVERY, 86_400);
    assert_eq!(default_resync(), Duration::from_secs(86_400));
}

#[test]
fn a_steady_window_with_a_colleague_writing_reads_no_message_list() {
    let config = graph_sim::Config {
        poll_limit: 1,
        poll_window: Duration::from_secs(3600),
        ..sim_config()
    };
    let h = Harness::start_with(default_resync(), config);
    let chat = h.first_chat();
    h.sim().reset_usage();
    for n in 0..6 {
        let id = h.says(&chat, &format!("steady {n}"));
        wait_for("the notification", || cached(&h, &chat, &id).then_some(()));
    }
    let usage = h.sim().usage();
    assert_eq!(message_reads(&usage, None), 0, "{usage:?}");
    assert_eq!(chat_lists(&usage), 0, "{usage:?}");
    assert!(usage.polled.is_empty(), "{usage:?}");
    assert!(
        !usage
            .calls
            .iter()
            .any(|c| c.method == "GET" && c.route.contains("/subscriptions")),
        "subscriptions are kept by renewals, not GETs: {usage:?}"
    );
}

#[test]
fn a_page_load_reads_only_the_chat_that_changed() {
    let h = Harness::start(default_resync());
    let first = h.first_chat();
    let second = h.create_chat("Second");
    let third = h.create_chat("Third");
    let mut newest = Vec::new();
    for chat in [&first, &second, &third] {
        wait_for("the new chat", || {
            h.person().store().has_chat(chat).unwrap().then_some(())
        });
        let id = h.says(chat, "hello");
        wait_for("the notification", || cached(&h, chat, &id).then_some(()));
        newest.push(id);
    }
    // The next notification is lost; only the page load can find it.
    h.sim()
        .set_faults(Faults {
            drop: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let lost = h.says(&second, "lost on the way");
    h.sim().reset_usage();
    let (status, _) = common::get(&h.http, &h.url());
    assert_eq!(status, 200);
    wait_for("the page load's read", || {
        cached(&h, &second, &lost).then_some(())
    });
    let usage = h.sim().usage();
    assert_eq!(chat_lists(&usage), 1, "{usage:?}");
    assert_eq!(message_reads(&usage, Some(&second)), 1, "{usage:?}");
    assert_eq!(message_reads(&usage, None), 1, "{usage:?}");
    // A second load within the minute reads nothing.
    let (status, _) = common::get(&h.http, &h.url());
    assert_eq!(status, 200);
    let id = h.says(&third, "also lost");
    let (status, _) = common::get(&h.http, &h.url());
    assert_eq!(status, 200);
    assert!(!h.runtime.block_on(h.person().page_loaded()).unwrap());
    assert!(!cached(&h, &third, &id));
    assert_eq!(chat_lists(&h.sim().usage()), 1);
}

#[test]
fn a_throttled_send_is_accepted_then_delivered_exactly_once() {
    let h = Harness::start(default_resync());
    let chat = h.first_chat();
    h.sim()
        .set_faults(Faults {
            throttle: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let url = format!("{}api/chats/{}/messages", h.url(), common::encode(&chat));
    let (status, body) = common::post(
        &h.http,
        &url,
        &json!({"content": "sent while throttled", "contentType": "text"}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "waiting");
    h.sim().set_faults(Faults::default()).unwrap();
    let id = wait_for("the send to go through", || {
        let (items, _) = h.person().store().messages(&chat).unwrap();
        items
            .into_iter()
            .find(|m| m.content.as_deref() == Some("sent while throttled"))
            .map(|m| m.id)
    });
    let copies = h
        .sim()
        .truth(&chat)
        .unwrap()
        .into_iter()
        .filter(|m| m["body"]["content"] == "sent while throttled")
        .count();
    assert_eq!(copies, 1);
    assert!(cached(&h, &chat, &id));
}

#[test]
fn a_throttled_mark_read_is_one_call_and_waits_its_turn() {
    let h = Harness::start(default_resync());
    let chat = h.first_chat();
    let id = h.says(&chat, "unread");
    wait_for("the notification", || cached(&h, &chat, &id).then_some(()));
    wait_for("the unread count", || {
        (h.chat(&chat)["unreadCount"] == 1).then_some(())
    });
    h.sim().reset_usage();
    let url = format!("{}api/chats/{}/read", h.url(), common::encode(&chat));
    let (status, _) = common::post(&h.http, &url, &json!({}));
    assert_eq!(status, 204);
    assert_eq!(h.chat(&chat)["unreadCount"], 0);
    let usage = h.sim().usage();
    let calls: u64 = usage.calls.iter().map(|c| c.count).sum();
    assert_eq!(calls, 1, "{usage:?}");

    let id = h.says(&chat, "unread again");
    wait_for("the notification", || cached(&h, &chat, &id).then_some(()));
    h.sim()
        .set_faults(Faults {
            throttle: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let (status, _) = common::post(&h.http, &url, &json!({}));
    assert_eq!(status, 202);
    h.sim().set_faults(Faults::default()).unwrap();
    wait_for("the mark-read to go through", || {
        (h.chat(&chat)["unreadCount"] == 0).then_some(())
    });
}

#[test]
fn a_throttled_resync_completes() {
    let mut h = Harness::start(default_resync());
    let first = h.first_chat();
    let second = h.create_chat("Second");
    wait_for("the new chat", || {
        h.person().store().has_chat(&second).unwrap().then_some(())
    });
    h.stop_app();
    // Written while the app is down, every notification lost: only the restart's resync finds
    // them, under heavy throttling.
    h.sim()
        .set_faults(Faults {
            drop: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let mut written = Vec::new();
    for chat in [&first, &second] {
        for n in 0..3 {
            written.push((chat.clone(), h.says(chat, &format!("while down {n}"))));
        }
    }
    h.sim()
        .set_faults(Faults {
            drop: 1.0,
            throttle: 0.7,
            seed: Some(11),
            ..Faults::default()
        })
        .unwrap();
    // The start awaits its resync.
    h.start_app();
    h.sim().set_faults(Faults::default()).unwrap();
    for (chat, id) in &written {
        assert!(cached(&h, chat, id), "{id} of {chat} was not read");
    }
}

#[test]
fn the_first_read_of_a_chat_is_its_newest_two_pages() {
    let mut h = Harness::start(default_resync());
    h.stop_app();
    // A long chat the app has never read: made, and written to, while it is down.
    let long = h.create_chat("Long");
    h.sim()
        .set_faults(Faults {
            drop: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let ids: Vec<String> = (0..130)
        .map(|n| h.says(&long, &format!("history {n}")))
        .collect();
    h.sim().set_faults(Faults::default()).unwrap();
    h.sim().reset_usage();
    h.start_app();
    let usage = h.sim().usage();
    assert_eq!(message_reads(&usage, Some(&long)), 2, "{usage:?}");
    // The newest hundred are there; older history waits until a person pages back.
    assert!(ids[30..].iter().all(|id| cached(&h, &long, id)));
    assert!(!cached(&h, &long, &ids[0]));
}
