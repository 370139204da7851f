//! A subscriber's whole life as typed requests and responses: the resync reads and the pages
//! Graph returns, and the keeper driven through simulated hours (renewals on time, removals
//! recreated and resynced, 429s honoured, thousands of subscriptions spread under the budget).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use graph_chat_notifications::keeper::{Keeper, KeeperConfig, Outcome, TaskKind};
use graph_chat_notifications::model::{ChangeType, EnumValue, LifecycleEvent};
use graph_chat_notifications::outbound::{
    format_time, get_chat, list_subscriptions, MessagesRequest, Model, OrderBy, Page, RequestError,
    Resource, Subscription, SubscriptionRequest,
};
use graph_chat_notifications::Cloud;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn message_reads_are_checked_and_encoded() {
    let chat = "19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2";
    let url = |r: MessagesRequest| r.build().map(|r| r.url);
    assert_eq!(
        url(MessagesRequest::chat(chat).top(50)).unwrap(),
        format!("https://graph.microsoft.com/v1.0/chats/{chat}/messages?$top=50")
    );
    assert_eq!(
        url(MessagesRequest::user_all("u1").model(Model::B).top(10)).unwrap(),
        "https://graph.microsoft.com/v1.0/users/u1/chats/getAllMessages?model=B&$top=10"
    );
    assert_eq!(
        url(MessagesRequest::user_all_delta("u1").modified_after(format_time(t0()).unwrap()))
            .unwrap(),
        "https://graph.microsoft.com/v1.0/users/u1/chats/getAllMessages/delta?$filter=lastModifiedDateTime%20gt%202027-01-15T08:00:00.0000000Z"
    );
    for (bad, expected) in [
        (
            MessagesRequest::chat(chat).top(0),
            RequestError::TopOutOfRange(0),
        ),
        (
            MessagesRequest::chat(chat).top(51),
            RequestError::TopOutOfRange(51),
        ),
        (
            MessagesRequest::chat(chat).modified_after("yesterday"),
            RequestError::BadTime("yesterday".into()),
        ),
    ] {
        assert_eq!(bad.build().unwrap_err(), expected);
    }
    assert!(matches!(
        MessagesRequest::user_all_delta("u")
            .order_by(OrderBy::CreatedDesc)
            .build(),
        Err(RequestError::UnsupportedOption {
            option: "$orderby",
            ..
        })
    ));
    assert!(matches!(
        MessagesRequest::chat(chat).model(Model::A).build(),
        Err(RequestError::UnsupportedOption {
            option: "model",
            ..
        })
    ));
    assert!(matches!(
        MessagesRequest::chat("a/b").build(),
        Err(RequestError::BadId { .. })
    ));
    // Reads move to a national cloud like every other request.
    assert_eq!(
        get_chat(chat).unwrap().in_cloud(Cloud::China).url,
        format!("https://microsoftgraph.chinacloudapi.cn/v1.0/chats/{chat}")
    );
    assert_eq!(list_subscriptions().method.as_str(), "GET");
}

#[test]
fn a_page_of_messages_is_typed_with_its_next_request() {
    // The shape of the guide's step 4 response: a page of chat messages and the link onward.
    let body = br#"{
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('87d349ed-44d7-43e1-9a83-5f2406dee5bd')/chats('19%3Ab1234aaa12345a123aa12aa12aaaa1a9%40thread.v2')/messages",
        "@odata.count": 2,
        "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/87d349ed-44d7-43e1-9a83-5f2406dee5bd/chats/19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2/messages?$top=2&$skiptoken=M2UyZDAwMDAwMDMxMzkzYTYyMzEzMjMzMzQ2MTYxNjEzMTMyMzMzNDM1NjEzMTMyMzM2MTYxMzEzMjYxNjEzMTMyNjE2MTYxNjE2MTMxNjEzOTQwNzQ2ODcyNjU2MTY0MmU3NjMyMDEwMDAwMDA%3d",
        "value": [
            {"id": "1673482643198", "replyToId": null, "etag": "1673482643198", "messageType": "message",
             "createdDateTime": "2023-01-12T00:17:23.198Z", "lastModifiedDateTime": "2023-01-12T00:17:23.198Z",
             "lastEditedDateTime": null, "deletedDateTime": null, "subject": null, "summary": null,
             "chatId": "19:b1234aaa12345a123aa12aa12aaaa1a9@thread.v2", "importance": "normal", "locale": "en-us",
             "webUrl": null, "channelIdentity": null, "policyViolation": null, "eventDetail": null,
             "from": {"application": null, "device": null, "user": {"id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "displayName": "John Smith", "userIdentityType": "aadUser"}},
             "body": {"contentType": "text", "content": "Hello world"}, "attachments": [], "mentions": [], "reactions": []},
            {"id": "1673482643199", "createdDateTime": "not a time"}
        ]
    }"#;
    let page = Page::messages(body).unwrap();
    assert_eq!(page.count, Some(2));
    let first = page.items[0].as_ref().unwrap();
    assert_eq!(first.id.as_deref(), Some("1673482643198"));
    assert_eq!(
        first.body.get().and_then(|b| b.content.as_deref()),
        Some("Hello world")
    );
    // One message that does not fit fails alone, naming its property.
    assert_eq!(
        page.items[1].as_ref().unwrap_err().path(),
        "createdDateTime"
    );
    let next = page.next_request().unwrap().unwrap();
    assert_eq!(next.method.as_str(), "GET");
    assert_eq!(next.url, page.next_link.as_deref().unwrap());
    assert!(page.delta_request().is_none());

    // A delta round's last page: no next link, a delta link.
    let last = br#"{"value": [], "@odata.deltaLink": "https://graph.microsoft.com/v1.0/users/u/chats/getAllMessages/delta?$deltatoken=abc"}"#;
    let page = Page::messages(last).unwrap();
    assert!(page.next_request().is_none());
    assert!(page
        .delta_request()
        .unwrap()
        .unwrap()
        .url
        .ends_with("$deltatoken=abc"));
    // A link elsewhere is not followed.
    for link in [
        "http://graph.microsoft.com/v1.0/x",
        "https://evil.example/v1.0/x",
        "nope",
    ] {
        let body = format!(r#"{{"value": [], "@odata.nextLink": "{link}"}}"#);
        let page = Page::messages(body.as_bytes()).unwrap();
        assert!(
            matches!(page.next_request(), Some(Err(RequestError::BadLink { .. }))),
            "{link}"
        );
    }
    assert!(Page::messages(b"[]").is_err());
}

#[test]
fn the_subscription_list_rebuilds_state() {
    let body = br#"{"value": [
        {"id": "s1", "resource": "/chats/getAllMessages", "changeType": "created,updated,deleted",
         "expirationDateTime": "2027-01-15T09:00:00Z", "clientState": "secret"},
        {"id": "s2", "resource": "/chats", "expirationDateTime": "2027-01-15T08:30:00Z"}
    ], "@odata.nextLink": "https://graph.microsoft.com/v1.0/subscriptions?$skiptoken=x"}"#;
    let page = Page::subscriptions(body).unwrap();
    let ids: Vec<&str> = page
        .items
        .iter()
        .map(|s| s.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids, ["s1", "s2"]);
    let mut keeper = Keeper::new(KeeperConfig::default());
    for s in page.items.into_iter().map(Result::unwrap) {
        keeper.track(s, template(), t0()).unwrap();
    }
    assert_eq!(keeper.subscriptions().count(), 2);
    assert!(!format!("{keeper:?}").contains("secret"));
}

fn template() -> SubscriptionRequest {
    SubscriptionRequest::builder(
        Resource::chat_messages("19:a@thread.v2"),
        "https://example.com/notifications",
    )
    .change_types([ChangeType::Created, ChangeType::Updated])
    .client_state("secret")
}

fn graph_subscription(id: &str, expires: SystemTime) -> Subscription {
    Subscription::from_json(
        format!(
            r#"{{"id":"{id}","resource":"/chats/19:a@thread.v2/messages","expirationDateTime":"{}"}}"#,
            format_time(expires).unwrap()
        )
        .as_bytes(),
    )
    .unwrap()
}

/// A fake Graph for the keeper: subscriptions by id with their expiry, and every write it saw.
struct Graph {
    expiry: HashMap<String, SystemTime>,
    writes: Vec<SystemTime>,
    next_id: u64,
}

/// Runs `keeper` from `from` to `until`, answering its tasks like Graph; `answer` may replace
/// Graph's answer, and `tasks_seen` sees every task. Checks at every step that no kept
/// subscription has reached its expiry at Graph.
fn simulate(
    keeper: &mut Keeper,
    graph: &mut Graph,
    from: SystemTime,
    until: SystemTime,
    mut answer: impl FnMut(SystemTime, &TaskKind) -> Option<Outcome>,
    mut tasks_seen: impl FnMut(SystemTime, &graph_chat_notifications::keeper::Task),
) {
    let mut now = from;
    while now < until {
        // Before anything is sent at `now`: no kept subscription has reached its expiry at Graph.
        for s in keeper.subscriptions() {
            let expires = graph.expiry[&s.id];
            assert!(
                expires > now,
                "{} expired at {expires:?}, now {now:?}",
                s.id
            );
        }
        for task in keeper.poll(now) {
            tasks_seen(now, &task);
            if !matches!(task.kind, TaskKind::Resync { .. }) {
                graph.writes.push(now);
            }
            let outcome = answer(now, &task.kind).unwrap_or_else(|| match &task.kind {
                TaskKind::Renew | TaskKind::Reauthorize => {
                    let expires = now + Duration::from_secs(3600);
                    graph.expiry.insert(task.subscription_id.clone(), expires);
                    Outcome::Done(Some(graph_subscription(&task.subscription_id, expires)))
                }
                TaskKind::Recreate => {
                    graph.next_id += 1;
                    let id = format!("re-{}", graph.next_id);
                    let expires = now + Duration::from_secs(3600);
                    graph.expiry.insert(id.clone(), expires);
                    Outcome::Done(Some(graph_subscription(&id, expires)))
                }
                _ => Outcome::Done(None),
            });
            keeper.complete(task.id, outcome, now);
        }
        let next = keeper.next_wake().unwrap_or(until);
        now = next.max(now + Duration::from_millis(200));
    }
}

#[test]
fn thousands_of_subscriptions_renew_on_time_under_the_write_budget() {
    let config = KeeperConfig::default();
    let rate = config.writes_per_second as usize;
    let mut keeper = Keeper::new(config);
    let mut graph = Graph {
        expiry: HashMap::new(),
        writes: Vec::new(),
        next_id: 0,
    };
    // 2,000 60-minute subscriptions, all created within 40 seconds.
    for i in 0..2000 {
        let created = t0() + Duration::from_millis(20 * i);
        let id = format!("s{i}");
        let expires = created + Duration::from_secs(3600);
        graph.expiry.insert(id.clone(), expires);
        keeper
            .track(graph_subscription(&id, expires), template(), created)
            .unwrap();
    }
    let mut renewals: HashMap<String, Vec<SystemTime>> = HashMap::new();
    simulate(
        &mut keeper,
        &mut graph,
        t0() + Duration::from_secs(60),
        t0() + Duration::from_secs(3 * 3600),
        |_, _| None,
        |now, task| {
            assert!(matches!(task.kind, TaskKind::Renew), "{:?}", task.kind);
            renewals
                .entry(task.subscription_id.clone())
                .or_default()
                .push(now);
        },
    );
    // Every subscription renewed about every 30 minutes for three hours.
    assert_eq!(renewals.len(), 2000);
    for times in renewals.values() {
        assert!((5..=7).contains(&times.len()), "{times:?}");
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]).unwrap();
            assert!(gap <= Duration::from_secs(31 * 60), "{gap:?}");
        }
    }
    // No one-second window holds more writes than the budget and its one-second burst.
    let w = &graph.writes;
    let mut start = 0;
    for end in 0..w.len() {
        while w[end].duration_since(w[start]).unwrap() >= Duration::from_secs(1) {
            start += 1;
        }
        assert!(
            end - start < 2 * rate,
            "{} writes within a second",
            end - start + 1
        );
    }
}

#[test]
fn a_renewal_failing_for_most_of_the_life_is_still_tried_before_the_expiry() {
    // Graph fails every renewal until the last minute of the subscription's life (an outage of
    // about half an hour): the backoff must not carry the next try to the expiry itself.
    let mut keeper = Keeper::new(KeeperConfig::default());
    let expires = t0() + Duration::from_secs(3600);
    keeper
        .track(graph_subscription("s1", expires), template(), t0())
        .unwrap();
    let mut tries = Vec::new();
    let mut now = keeper.next_wake().unwrap();
    let renewed = loop {
        assert!(
            now < expires,
            "no renewal tried before the expiry; tries at {tries:?} s"
        );
        let tasks = keeper.poll(now);
        let left = expires.duration_since(now).unwrap();
        let mut renewed = false;
        for task in tasks {
            assert_eq!(
                task.kind,
                TaskKind::Renew,
                "{} s before the expiry",
                left.as_secs()
            );
            tries.push(now.duration_since(t0()).unwrap().as_secs());
            let outcome = if left <= Duration::from_secs(60) {
                renewed = true;
                Outcome::Done(Some(graph_subscription(
                    "s1",
                    now + Duration::from_secs(3600),
                )))
            } else {
                Outcome::Failed
            };
            keeper.complete(task.id, outcome, now);
        }
        if renewed {
            break now;
        }
        now = keeper.next_wake().unwrap();
    };
    assert!(renewed < expires);
    // Renewed, it is kept under its id and renewed again half-way through its new life.
    assert_eq!(
        keeper
            .subscriptions()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["s1"]
    );
    assert_eq!(
        keeper.next_wake(),
        Some(renewed + Duration::from_secs(1800))
    );
}

#[test]
fn a_removed_subscription_is_recreated_then_resynced_from_when_it_last_delivered() {
    let mut keeper = Keeper::new(KeeperConfig::default());
    let expires = t0() + Duration::from_secs(3600);
    keeper
        .track(graph_subscription("s1", expires), template(), t0())
        .unwrap();
    let removed_at = t0() + Duration::from_secs(600);
    keeper.on_lifecycle(
        "s1",
        &LifecycleEvent::SubscriptionRemoved.into(),
        removed_at,
    );
    let tasks = keeper.poll(removed_at);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].kind, TaskKind::Recreate);
    let request = tasks[0].request.as_ref().unwrap();
    assert_eq!(
        (request.method.as_str(), request.url.as_str()),
        ("POST", "https://graph.microsoft.com/v1.0/subscriptions")
    );
    let new_expiry = removed_at + Duration::from_secs(3600);
    keeper.complete(
        tasks[0].id,
        Outcome::Done(Some(graph_subscription("s2", new_expiry))),
        removed_at,
    );
    let tasks = keeper.poll(removed_at);
    assert_eq!(tasks[0].subscription_id, "s2");
    assert_eq!(
        tasks[0].kind,
        TaskKind::Resync {
            resource: "/chats/19:a@thread.v2/messages".into(),
            since: t0()
        }
    );
    keeper.complete(tasks[0].id, Outcome::Done(None), removed_at);
    // Then the new subscription is renewed like any other.
    let next = keeper.next_wake().unwrap();
    assert_eq!(next, removed_at + Duration::from_secs(1800));
    let tasks = keeper.poll(next);
    assert_eq!(
        (tasks[0].subscription_id.as_str(), &tasks[0].kind),
        ("s2", &TaskKind::Renew)
    );

    // Reauthorization, a 404 on it, and `missed`.
    keeper.complete(tasks[0].id, Outcome::Done(None), next);
    keeper.on_lifecycle("s2", &LifecycleEvent::ReauthorizationRequired.into(), next);
    let tasks = keeper.poll(next);
    assert_eq!(tasks[0].kind, TaskKind::Reauthorize);
    assert!(tasks[0]
        .request
        .as_ref()
        .unwrap()
        .url
        .ends_with("/subscriptions/s2/reauthorize"));
    keeper.complete(tasks[0].id, Outcome::NotFound, next);
    assert_eq!(keeper.poll(next)[0].kind, TaskKind::Recreate);
    let mut other = Keeper::new(KeeperConfig::default());
    other
        .track(graph_subscription("m", expires), template(), t0())
        .unwrap();
    other.on_lifecycle("m", &LifecycleEvent::Missed.into(), removed_at);
    assert!(matches!(
        other.poll(removed_at)[0].kind,
        TaskKind::Resync { .. }
    ));
    // Unknown events and unknown subscriptions change nothing.
    other.on_lifecycle("m", &EnumValue::new("new"), removed_at);
    other.on_lifecycle(
        "nobody",
        &LifecycleEvent::SubscriptionRemoved.into(),
        removed_at,
    );
}

/// One `subscriptionRemoved`, followed to the subscription that replaced it.
struct Removal {
    /// The id Graph removed.
    id: String,
    at: SystemTime,
    /// The id that now stands for it: the removed one until it is recreated, then the new one
    /// (and, if that one is removed too before it was resynced, the next).
    current: String,
    recreated: bool,
    resynced: bool,
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// Random 429s, failures and removals over simulated hours, checked at every step: no write
    /// goes out during a 429's Retry-After, no subscription Graph holds for the keeper reaches
    /// its expiry, and every removal is recreated, then resynced from no later than the
    /// removal.
    #[test]
    fn throttling_failures_and_removals_are_survived(
        n in 1usize..40,
        events in proptest::collection::vec((0u64..10_800, 0u8..4, 1u64..300), 0..30),
    ) {
        let mut keeper = Keeper::new(KeeperConfig::default());
        // Graph's side: the expiry of every subscription it holds.
        let mut live: HashMap<String, SystemTime> = HashMap::new();
        let mut next_id = 0u64;
        for i in 0..n {
            let id = format!("s{i}");
            let expires = t0() + Duration::from_secs(3600);
            live.insert(id.clone(), expires);
            keeper.track(graph_subscription(&id, expires), template(), t0()).unwrap();
        }
        // At each event time: a 429 (with its Retry-After), a failure, or a removal.
        let mut schedule: Vec<(SystemTime, u8, Duration)> = events
            .iter()
            .map(|&(at, kind, wait)| (t0() + Duration::from_secs(at), kind, Duration::from_secs(wait)))
            .collect();
        schedule.sort();
        let mut paused_until = t0();
        let mut removals: Vec<Removal> = Vec::new();
        let mut now = t0();
        let until = t0() + Duration::from_secs(4 * 3600);
        let mut pending = schedule.into_iter().peekable();
        while now < until {
            // Before anything is sent at `now`: nothing Graph holds has reached its expiry.
            for (id, expires) in &live {
                prop_assert!(now < *expires, "{} expired at {:?}, now {:?}", id, expires, now);
            }
            while let Some(&(at, kind, _)) = pending.peek() {
                if at > now { break; }
                pending.next();
                if kind == 3 {
                    // Graph removes one of the subscriptions it holds, and says so.
                    let victim = keeper.subscriptions().map(|s| s.id.clone()).find(|id| live.contains_key(id));
                    if let Some(id) = victim {
                        live.remove(&id);
                        keeper.on_lifecycle(&id, &LifecycleEvent::SubscriptionRemoved.into(), now);
                        removals.push(Removal { current: id.clone(), id, at: now, recreated: false, resynced: false });
                    }
                }
            }
            let next_event = pending.peek().copied();
            // What poll hands out may not include a write while a reported 429 still holds.
            let known_pause = paused_until;
            for task in keeper.poll(now) {
                let write = !matches!(task.kind, TaskKind::Resync { .. });
                if write {
                    prop_assert!(now >= known_pause, "a write at {:?} during a 429 until {:?}", now, known_pause);
                }
                let id = task.subscription_id.clone();
                let outcome = match (&task.kind, next_event) {
                    (_, Some((at, 0, wait))) if write && at <= now + Duration::from_secs(1) => {
                        paused_until = paused_until.max(now + wait);
                        Outcome::Throttled { retry_after: wait }
                    }
                    (_, Some((at, 1, _))) if write && at <= now + Duration::from_secs(1) => Outcome::Failed,
                    (TaskKind::Recreate, _) => {
                        next_id += 1;
                        let new = format!("re-{next_id}");
                        let expires = now + Duration::from_secs(3600);
                        live.insert(new.clone(), expires);
                        for r in removals.iter_mut().filter(|r| r.current == id) {
                            r.current = new.clone();
                            r.recreated = true;
                        }
                        Outcome::Done(Some(graph_subscription(&new, expires)))
                    }
                    (TaskKind::Resync { since, .. }, _) => {
                        for r in removals.iter_mut().filter(|r| r.recreated && !r.resynced && r.current == id) {
                            prop_assert!(*since <= r.at, "{} resynced from {:?}, removed at {:?}", r.id, since, r.at);
                            r.resynced = true;
                        }
                        Outcome::Done(None)
                    }
                    (TaskKind::Renew, _) => match live.get_mut(&id) {
                        Some(expires) => {
                            *expires = now + Duration::from_secs(3600);
                            Outcome::Done(Some(graph_subscription(&id, *expires)))
                        }
                        None => Outcome::NotFound,
                    },
                    (other, _) => {
                        return Err(TestCaseError::fail(format!("{other:?} for {id}: nothing asked for it")));
                    }
                };
                keeper.complete(task.id, outcome, now);
            }
            now = keeper.next_wake().unwrap_or(until).max(now + Duration::from_millis(500));
        }
        // What the keeper keeps is what Graph holds, and every removal was made good.
        let mut kept: Vec<String> = keeper.subscriptions().map(|s| s.id.clone()).collect();
        let mut held: Vec<String> = live.keys().cloned().collect();
        kept.sort();
        held.sort();
        prop_assert_eq!(kept.len(), n);
        prop_assert_eq!(kept, held);
        for r in &removals {
            prop_assert!(r.recreated && r.resynced, "{} removed at {:?}: recreated {}, resynced {}", r.id, r.at, r.recreated, r.resynced);
        }
    }
}

#[test]
fn a_model_or_lifecycle_url_change_recreates_then_retires_the_old_subscription() {
    let mut keeper = Keeper::new(KeeperConfig::default());
    let all = |model: Option<Model>, lifecycle: bool| {
        let mut r = SubscriptionRequest::builder(
            Resource::all_chat_messages(),
            "https://example.com/notifications",
        )
        .change_types([ChangeType::Created])
        .client_state("secret");
        if let Some(m) = model {
            r = r.model(m);
        }
        if lifecycle {
            r = r.lifecycle_url("https://example.com/lifecycle");
        }
        r
    };
    let live = Subscription::from_json(
        br#"{"id": "old", "resource": "/chats/getAllMessages", "expirationDateTime": "2027-01-15T09:00:00Z"}"#,
    )
    .unwrap();
    keeper.track(live, all(None, false), t0()).unwrap();
    // The same resource and no lifecycle URL: nothing to recreate.
    assert!(!keeper
        .update_template("old", all(None, false), t0())
        .unwrap());
    assert!(keeper.poll(t0()).is_empty());
    // model=B cannot be PATCHed: recreate.
    assert!(keeper
        .update_template("old", all(Some(Model::B), false), t0())
        .unwrap());
    let tasks = keeper.poll(t0());
    assert_eq!(tasks[0].kind, TaskKind::Recreate);
    let body: serde_json::Value =
        serde_json::from_slice(tasks[0].request.as_ref().unwrap().body.as_deref().unwrap())
            .unwrap();
    assert_eq!(body["resource"], "/chats/getAllMessages?model=B");
    let created = Subscription::from_json(
        br#"{"id": "new", "resource": "/chats/getAllMessages?model=B", "expirationDateTime": "2027-01-15T09:00:00Z"}"#,
    )
    .unwrap();
    keeper.complete(tasks[0].id, Outcome::Done(Some(created)), t0());
    let mut kinds: Vec<(String, TaskKind)> = keeper
        .poll(t0())
        .into_iter()
        .map(|t| (t.subscription_id, t.kind))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(kinds[0].0, "new");
    assert!(matches!(kinds[0].1, TaskKind::Resync { .. }));
    assert_eq!(kinds[1], ("old".to_string(), TaskKind::Delete));
    // A lifecycle URL to add also needs a new subscription.
    let mut other = Keeper::new(KeeperConfig::default());
    let live = Subscription::from_json(
        br#"{"id": "x", "resource": "/chats/getAllMessages", "expirationDateTime": "2027-01-15T09:00:00Z"}"#,
    )
    .unwrap();
    other.track(live, all(None, false), t0()).unwrap();
    assert!(other.update_template("x", all(None, true), t0()).unwrap());
}

/// The resync read Graph honours: the filter and the order on `lastModifiedDateTime`, 50 a page;
/// the guide's step-4 pairing (filter on `lastModifiedDateTime`, order on `createdDateTime`) is
/// still built as documented, but it is not what `changed_since` makes.
#[test]
fn changed_since_filters_and_orders_on_the_same_property() {
    use graph_chat_notifications::outbound::{MessagesRequest, OrderBy};
    let since = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for request in [
        MessagesRequest::chat("19:a@thread.v2"),
        MessagesRequest::user_chat("87d349ed-44d7-43e1-9a83-5f2406dee5bd", "19:a@thread.v2"),
    ] {
        let url = request.changed_since(since).build().unwrap().url;
        let query = url.split_once('?').unwrap().1;
        let options: Vec<&str> = query.split('&').collect();
        assert_eq!(
            options,
            [
                "$top=50",
                "$filter=lastModifiedDateTime%20gt%202023-11-14T22:13:20.0000000Z",
                "$orderby=lastModifiedDateTime%20desc"
            ],
            "{url}"
        );
    }
    let guide = MessagesRequest::chat("19:a@thread.v2")
        .modified_after("2021-03-17T07:13:28.000z")
        .order_by(OrderBy::CreatedDesc)
        .build()
        .unwrap();
    assert!(guide.url.ends_with("$orderby=createdDateTime%20desc"));
    // A watermark Graph cannot write is refused at build, not sent.
    let far = std::time::UNIX_EPOCH + std::time::Duration::from_secs(400_000 * 365 * 86_400);
    assert!(MessagesRequest::chat("19:a@thread.v2")
        .changed_since(far)
        .build()
        .is_err());
}
