//! End to end over loopback: the crate's request values sent to the simulator, its notifications
//! received by a webhook and checked, decrypted and typed by the crate's Receiver.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::common::{
    call, colleague, items, open, receiver, send, settle, subscribe, Hook, Mode, CERT_ID,
    CLIENT_STATE, COLLEAGUE,
};
use graph_chat_notifications::model::ChangeType::{Created, Deleted, Updated};
use graph_chat_notifications::outbound::{
    self, sent_message, ChatMember, CreateChat, MessageRequest, Resource, Subscription,
    SubscriptionRequest,
};
use graph_sim::{Config, Faults, Simulator};

async fn new_chat(sim: &Simulator) -> String {
    let me = sim.identity().user_id;
    common::create_chat(
        sim,
        CreateChat::one_on_one(ChatMember::owner(&me), ChatMember::owner(COLLEAGUE)),
    )
    .await
}

fn rich(request: SubscriptionRequest) -> SubscriptionRequest {
    request
        .include_resource_data(common::cert_der(), CERT_ID)
        .client_state(CLIENT_STATE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_arrive_encrypted_with_tokens_the_receiver_accepts() {
    let sim = common::default_sim().await;
    let rx = Arc::new(receiver(&sim));
    let hook = Hook::start(Mode::Good, Some(rx.clone())).await;
    let chats_hook = Hook::start(Mode::Good, Some(rx.clone())).await;
    let base = sim.base_url();
    let me = sim.identity().user_id;
    let now = SystemTime::now();

    let all_chats = subscribe(
        &sim,
        rich(
            SubscriptionRequest::builder(Resource::all_chats(), &chats_hook.url)
                .allow_loopback_http(),
        )
        .change_types([Created])
        .expires_in(now, Duration::from_secs(1800)),
    )
    .await;
    assert_eq!(
        all_chats.application_id.as_deref(),
        Some(sim.identity().app_id.as_str())
    );
    assert_eq!(all_chats.creator_id.as_deref(), Some(me.as_str()));
    let chat = new_chat(&sim).await;
    let sub = subscribe(
        &sim,
        rich(
            SubscriptionRequest::builder(Resource::chat_messages(&chat), &hook.url)
                .allow_loopback_http(),
        )
        .change_types([Created, Updated, Deleted])
        .expires_in(now, Duration::from_secs(1800)),
    )
    .await;
    assert_eq!(hook.handshakes(), 1);

    // The chat's creation, decrypted.
    let got = chats_hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let chat_json = &open(&rx, &got[0].body)[0];
    assert_eq!(chat_json["id"], chat.as_str());
    assert_eq!(chat_json["chatType"], "oneOnOne");

    // The user sends, a colleague writes, the user edits and deletes.
    let reply = send(&base, MessageRequest::send(&chat, "Hello").build().unwrap()).await;
    assert_eq!(reply.status, 201);
    let mine = sent_message(&reply.body)
        .unwrap()
        .id
        .get()
        .unwrap()
        .as_str()
        .to_string();
    let theirs = sim
        .colleague_writes(&chat, colleague(), "Hi <b>there</b>", "html")
        .unwrap();
    let reply = send(
        &base,
        MessageRequest::edit(&chat, &mine, "Hello, edited")
            .build()
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 204);
    let reply = send(&base, outbound::soft_delete(&me, &chat, &mine).unwrap()).await;
    assert_eq!(reply.status, 204);

    let got = hook.wait_for(4, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 4);
    settle(&sim, Duration::from_secs(5)).await;
    assert_eq!(hook.got().len(), 4, "exactly once per change");
    let mut seen = Vec::new();
    for g in &got {
        assert_eq!(g.content_length, Some(g.body.len()));
        let item = &items(&g.body)[0];
        assert_eq!(item["subscriptionId"], sub.id.as_str());
        assert_eq!(item["clientState"], CLIENT_STATE);
        assert_eq!(item["tenantId"], sim.identity().tenant_id.as_str());
        let id = item["resourceData"]["id"].as_str().unwrap().to_string();
        assert_eq!(
            item["resource"],
            format!("chats('{chat}')/messages('{id}')")
        );
        let body: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(body["validationTokens"].as_array().unwrap().len(), 1);
        let message = &open(&rx, &g.body)[0];
        assert_eq!(message["id"], id.as_str());
        seen.push((
            item["changeType"].as_str().unwrap().to_string(),
            id,
            message.clone(),
        ));
    }
    seen.sort_by_key(|(change, id, m)| {
        (
            m["lastModifiedDateTime"].as_str().unwrap_or("").to_string(),
            change.clone(),
            id.clone(),
        )
    });
    let changes: Vec<&str> = seen.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(changes, ["created", "created", "updated", "deleted"]);
    assert_eq!(seen[0].1, mine);
    assert_eq!(seen[1].1, theirs["id"].as_str().unwrap());
    assert_eq!(seen[1].2["from"]["user"]["displayName"], "Adele Vance");
    assert!(seen[2].2["lastEditedDateTime"].is_string());
    assert_eq!(seen[2].2["body"]["content"], "Hello, edited");
    assert!(seen[3].2["deletedDateTime"].is_string());

    // The subscription reads back, and lists with the app's others.
    let reply = common::get_sub(&base, &sub.id).await;
    assert_eq!(reply.status, 200);
    assert_eq!(Subscription::from_json(&reply.body).unwrap().id, sub.id);
    let reply = send(&base, outbound::list_subscriptions()).await;
    assert_eq!(common::items(&reply.body).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewpoint_changes_go_only_where_user_specific_properties_were_asked_for() {
    let sim = common::default_sim().await;
    let rx = Arc::new(receiver(&sim));
    let specific = Hook::start(Mode::Good, Some(rx.clone())).await;
    let plain = Hook::start(Mode::Good, Some(rx.clone())).await;
    let id = sim.identity();
    let now = SystemTime::now();
    let chat = new_chat(&sim).await;
    subscribe(
        &sim,
        rich(
            SubscriptionRequest::builder(Resource::chat(&chat), &specific.url)
                .allow_loopback_http(),
        )
        .change_types([Updated])
        .user_specific_properties()
        .expires_in(now, Duration::from_secs(1800)),
    )
    .await;
    subscribe(
        &sim,
        rich(SubscriptionRequest::builder(Resource::my_chats(), &plain.url).allow_loopback_http())
            .change_types([Created, Updated, Deleted])
            .expires_in(now, Duration::from_secs(1800)),
    )
    .await;

    let base = sim.base_url();
    let read = outbound::mark_chat_read_for_user(&chat, &id.user_id, &id.tenant_id).unwrap();
    assert_eq!(send(&base, read).await.status, 204);
    let hide = outbound::hide_for_user(&chat, &id.user_id, &id.tenant_id).unwrap();
    assert_eq!(send(&base, hide).await.status, 204);
    let got = specific.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2);
    let views: Vec<serde_json::Value> = got.iter().map(|g| open(&rx, &g.body)[0].clone()).collect();
    assert!(views.iter().all(|v| v["id"] == chat.as_str()));
    assert!(views.iter().any(|v| v["viewpoint"]["isHidden"] == true));
    assert!(views
        .iter()
        .all(|v| v["viewpoint"]["lastMessageReadDateTime"].is_string()));

    // A colleague's newer message shows the hidden chat again, with no notification for that.
    tokio::time::sleep(Duration::from_millis(5)).await;
    sim.colleague_writes(&chat, colleague(), "ping", "text")
        .unwrap();
    settle(&sim, Duration::from_secs(5)).await;
    assert_eq!(specific.got().len(), 2);
    assert!(
        plain.got().is_empty(),
        "no viewpoint changes without notifyOnUserSpecificProperties"
    );
    let reply = send(&base, outbound::get_user_chat(&id.user_id, &chat).unwrap()).await;
    assert_eq!(reply.json()["viewpoint"]["isHidden"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_back_off_and_nothing_follows_a_2xx() {
    let base_wait = Duration::from_millis(150);
    let sim = common::sim(Config {
        retry_base: base_wait,
        accept_any_token: true,
        ..Default::default()
    })
    .await;
    let hook = Hook::start(Mode::FailFirst(2), None).await;
    let chat = new_chat(&sim).await;
    subscribe(
        &sim,
        SubscriptionRequest::builder(Resource::chat_messages(&chat), &hook.url)
            .allow_loopback_http()
            .change_types([Created])
            .expires_in(SystemTime::now(), Duration::from_secs(1800)),
    )
    .await;
    sim.colleague_writes(&chat, colleague(), "one", "text")
        .unwrap();
    let got = hook.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3);
    assert!(
        got[1].at - got[0].at >= base_wait,
        "first retry after the base"
    );
    assert!(
        got[2].at - got[1].at >= base_wait * 2,
        "second after twice the base"
    );
    assert_eq!(got[0].body, got[2].body, "the same notification each time");
    settle(&sim, Duration::from_secs(5)).await;
    tokio::time::sleep(base_wait * 4).await;
    assert_eq!(hook.got().len(), 3, "nothing after the 202");
    let d = sim.deliveries();
    assert_eq!(
        (d.attempted, d.retried, d.delivered, d.pending),
        (3, 2, 1, 0)
    );

    // failFirst: the next attempt fails as a network failure would, and is retried.
    sim.set_faults(Faults {
        fail_first: 1,
        ..Default::default()
    })
    .unwrap();
    sim.colleague_writes(&chat, colleague(), "two", "text")
        .unwrap();
    let got = hook.wait_for(4, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 4);
    settle(&sim, Duration::from_secs(5)).await;
    let d = sim.deliveries();
    assert_eq!((d.attempted, d.retried, d.delivered), (5, 3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_silent_and_the_subscription_is_gone() {
    let sim = common::default_sim().await;
    let hook = Hook::start(Mode::Good, None).await;
    let chat = new_chat(&sim).await;
    let base = sim.base_url();
    let short = subscribe(
        &sim,
        SubscriptionRequest::builder(Resource::chat_messages(&chat), &hook.url)
            .allow_loopback_http()
            .change_types([Created])
            .expires_in(SystemTime::now(), Duration::from_secs(2)),
    )
    .await;
    let mut status = 200;
    for _ in 0..40 {
        status = common::get_sub(&base, &short.id).await.status;
        if status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404);
    sim.colleague_writes(&chat, colleague(), "into the void", "text")
        .unwrap();

    // Expired on demand, over HTTP.
    let other = subscribe(
        &sim,
        SubscriptionRequest::builder(Resource::all_chat_messages(), &hook.url)
            .allow_loopback_http()
            .change_types([Created])
            .expires_in(SystemTime::now(), Duration::from_secs(1800)),
    )
    .await;
    let reply = call(
        "POST",
        &format!("{base}_sim/subscriptions/{}/expire", other.id),
        None,
        false,
    )
    .await;
    assert_eq!(reply.status, 204);
    assert_eq!(common::get_sub(&base, &other.id).await.status, 404);
    sim.colleague_writes(&chat, colleague(), "nobody listens", "text")
        .unwrap();
    settle(&sim, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        hook.got().is_empty(),
        "an expired subscription delivers nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_reauthorization_then_removal() {
    let sim = common::default_sim().await;
    let rx = Arc::new(receiver(&sim));
    let hook = Hook::start(Mode::Good, Some(rx.clone())).await;
    let chat = new_chat(&sim).await;
    let base = sim.base_url();
    // The same URL for both: validated twice. A 4 s lifetime: reauthorizationRequired when a
    // quarter is left.
    let sub = subscribe(
        &sim,
        rich(
            SubscriptionRequest::builder(Resource::chat_messages(&chat), &hook.url)
                .allow_loopback_http(),
        )
        .change_types([Created])
        .lifecycle_url(&hook.url)
        .expires_in(SystemTime::now(), Duration::from_secs(4)),
    )
    .await;
    assert_eq!(hook.handshakes(), 2);
    let got = hook.wait_for(1, Duration::from_secs(6)).await;
    assert_eq!(got.len(), 1);
    let item = &items(&got[0].body)[0];
    assert_eq!(item["lifecycleEvent"], "reauthorizationRequired");
    assert_eq!(item["subscriptionId"], sub.id.as_str());
    assert_eq!(
        open(&rx, &got[0].body)[0]["lifecycleEvent"],
        "reauthorizationRequired"
    );
    let reply = send(&base, outbound::reauthorize(&sub.id).unwrap()).await;
    assert_eq!(reply.status, 200);
    let renew = outbound::renew(&sub.id, SystemTime::now(), Duration::from_secs(3600)).unwrap();
    let reply = send(&base, renew).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );

    sim.remove_subscription(&sub.id).unwrap();
    assert_eq!(common::get_sub(&base, &sub.id).await.status, 404);
    let got = hook.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(
        items(&got[1].body)[0]["lifecycleEvent"],
        "subscriptionRemoved"
    );
    sim.colleague_writes(&chat, colleague(), "after removal", "text")
        .unwrap();
    settle(&sim, Duration::from_secs(3)).await;
    assert_eq!(hook.got().len(), 2, "nothing more after removal");
}

/// One run of a fixed schedule of writes under faults: which writes arrived, in order, and the
/// counts.
async fn faulty_run(seed: u64) -> (Vec<usize>, graph_sim::Deliveries) {
    let sim = common::sim(Config {
        seed,
        retry_base: Duration::from_millis(50),
        accept_any_token: true,
        ..Default::default()
    })
    .await;
    let hook = Hook::start(Mode::Good, None).await;
    let chat = new_chat(&sim).await;
    subscribe(
        &sim,
        SubscriptionRequest::builder(Resource::chat_messages(&chat), &hook.url)
            .allow_loopback_http()
            .change_types([Created])
            .expires_in(SystemTime::now(), Duration::from_secs(1800)),
    )
    .await;
    sim.set_faults(Faults {
        drop: 0.3,
        duplicate: 0.3,
        fail_first: 2,
        ..Default::default()
    })
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        let m = sim
            .colleague_writes(&chat, colleague(), &format!("m{i}"), "text")
            .unwrap();
        ids.push(m["id"].as_str().unwrap().to_string());
        settle(&sim, Duration::from_secs(5)).await;
    }
    let order = hook
        .got()
        .iter()
        .map(|g| {
            let id = items(&g.body)[0]["resourceData"]["id"]
                .as_str()
                .unwrap()
                .to_string();
            ids.iter().position(|x| *x == id).unwrap()
        })
        .collect();
    (order, sim.deliveries())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_replay_the_same_under_a_seed() {
    let (first, counts) = faulty_run(7).await;
    let (second, again) = faulty_run(7).await;
    assert_eq!(first, second);
    assert_eq!(counts, again);
    assert!(counts.dropped > 0 && counts.duplicated > 0, "{counts:?}");
    assert_eq!(counts.retried, 2);
    assert_eq!(first.len() as u64, counts.delivered);
}
