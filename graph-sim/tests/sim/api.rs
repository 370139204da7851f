//! Graph's API as the simulator serves it: subscription rules in their order, the documented
//! requests, listings, errors, throttling, hosted contents, the controls and the state file.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::common::{call, colleague, get_sub, items, send, Hook, Mode, COLLEAGUE};
use base64::Engine as _;
use graph_chat_notifications::model::ChangeType::Created;
use graph_chat_notifications::outbound::{
    self, format_time, hosted_content_bytes, sent_message, ChatMember, ChatsRequest, CreateChat,
    MessageRequest, MessagesRequest, OrderBy, Page, Resource, SubscriptionRequest,
};
use graph_sim::{Config, Faults, Simulator};
use serde_json::{json, Value};

const LIFECYCLE_TEXT: &str = "lifecycleNotificationUrl is a required property for subscription creation on this resource when the expirationDateTime value is set to greater than 1 hour";

async fn group_chat(sim: &Simulator) -> String {
    let me = sim.identity().user_id;
    common::create_chat(
        sim,
        CreateChat::group([ChatMember::owner(&me), ChatMember::owner(COLLEAGUE)]).topic("Planning"),
    )
    .await
}

fn in_minutes(m: u64) -> String {
    format_time(SystemTime::now() + Duration::from_secs(m * 60)).unwrap()
}

async fn create(sim: &Simulator, version: &str, body: &Value) -> common::Reply {
    let url = format!("{}{version}/subscriptions", sim.base_url());
    call("POST", &url, Some(&body.to_string()), true).await
}

fn cert_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(common::cert_der())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_checks_body_then_support_then_quota_then_handshake() {
    let sim = common::default_sim().await;
    let hook = Hook::start(Mode::Good, None).await;
    let chat = group_chat(&sim).await;
    let ok = |resource: &str, minutes: u64| {
        json!({"changeType": "created", "notificationUrl": hook.url, "resource": resource,
               "expirationDateTime": in_minutes(minutes)})
    };
    let first = create(&sim, "v1.0", &ok(&format!("/chats/{chat}/messages"), 30)).await;
    assert_eq!(first.status, 201);
    let created = first.json();
    assert!(created["id"].as_str().is_some_and(|id| id.len() == 36));
    assert_eq!(created["applicationId"], sim.identity().app_id.as_str());
    let handshakes = || hook.handshakes();
    assert_eq!(handshakes(), 1);

    // Same chat again (over quota), but each body also breaks a body rule: 400 first.
    let again = format!("/chats/{chat}/messages");
    let mut long = ok(&again, 61);
    let r = create(&sim, "v1.0", &long).await;
    assert_eq!((r.status, r.message()), (400, LIFECYCLE_TEXT.to_string()));
    long["lifecycleNotificationUrl"] = hook.url.clone().into();
    long["expirationDateTime"] = in_minutes(4321).into();
    assert_eq!(create(&sim, "v1.0", &long).await.status, 400);
    let mut rich = ok(&again, 30);
    rich["includeResourceData"] = true.into();
    assert_eq!(create(&sim, "v1.0", &rich).await.status, 400);
    rich["encryptionCertificate"] = cert_b64().into();
    rich["encryptionCertificateId"] = "x".repeat(129).into();
    assert_eq!(create(&sim, "v1.0", &rich).await.status, 400);
    let mut state = ok(&again, 30);
    state["clientState"] = "s".repeat(129).into();
    assert_eq!(create(&sim, "v1.0", &state).await.status, 400);
    let mut past = ok(&again, 30);
    past["expirationDateTime"] = "2019-09-19T11:00:00.0000000Z".into();
    assert_eq!(create(&sim, "v1.0", &past).await.status, 400);

    // The support matrix (400), before quotas.
    for (version, resource) in [
        (
            "v1.0",
            format!("/chats/{chat}?notifyOnUserSpecificProperties=true"),
        ),
        ("v1.0", "/me/chats".to_string()),
        ("v1.0", format!("/users/{}/chats", sim.identity().user_id)),
        ("v1.0", "/chats?$search=hello".to_string()),
        (
            "v1.0",
            "/chats/getAllMessages?notifyOnUserSpecificProperties=true".to_string(),
        ),
        ("v1.0", format!("{again}?model=B")),
        ("v1.0", "/users".to_string()),
        (
            "beta",
            format!("{again}?$filter=mentions/any(u: u/mentioned/user/id eq 'nobody')"),
        ),
    ] {
        let r = create(&sim, version, &ok(&resource, 30)).await;
        assert_eq!(
            r.status,
            400,
            "{version} {resource}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.error_code();
    }
    // Supported where the matrix says so.
    let r = create(
        &sim,
        "beta",
        &ok(
            &format!("/chats/{chat}?notifyOnUserSpecificProperties=true"),
            30,
        ),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = create(
        &sim,
        "beta",
        &ok("/me/chats?notifyOnUserSpecificProperties=true", 30),
    )
    .await;
    assert_eq!(r.status, 201);

    // Quotas (403) before the handshake: no handshake was made for them.
    let before = handshakes();
    let r = create(&sim, "v1.0", &ok(&again, 30)).await;
    assert_eq!(r.status, 403);
    r.error_code();
    let r = create(&sim, "v1.0", &ok(&format!("/chats/{chat}"), 30)).await;
    assert_eq!(r.status, 403, "one chat subscription per app per chat");
    assert_eq!(handshakes(), before);

    // Ten user-level subscriptions per user; the eleventh is refused.
    let user_level = format!("/users/{}/chats/getAllMessages", sim.identity().user_id);
    for _ in 0..9 {
        assert_eq!(create(&sim, "v1.0", &ok(&user_level, 30)).await.status, 201);
    }
    assert_eq!(create(&sim, "v1.0", &ok(&user_level, 30)).await.status, 403);

    // Handshakes: a wrong echo, then silence past the (shortened) deadline.
    let wrong = Hook::start(Mode::WrongEcho, None).await;
    let mut body = ok("/chats/getAllMessages", 30);
    body["notificationUrl"] = wrong.url.clone().into();
    let r = create(&sim, "v1.0", &body).await;
    assert_eq!(
        (r.status, r.error_code()),
        (400, "ValidationError".to_string())
    );
    let good_then_wrong = {
        let mut b = ok("/chats/getAllMessages", 120);
        b["lifecycleNotificationUrl"] = wrong.url.clone().into();
        b
    };
    assert_eq!(
        create(&sim, "v1.0", &good_then_wrong).await.status,
        400,
        "the lifecycle URL is validated too"
    );

    let impatient = common::sim(Config {
        handshake_timeout: Duration::from_millis(500),
        accept_any_token: true,
        ..Default::default()
    })
    .await;
    let silent = Hook::start(Mode::Silent, None).await;
    let mut body = ok("/chats/getAllMessages", 30);
    body["notificationUrl"] = silent.url.clone().into();
    let r = create(&impatient, "v1.0", &body).await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains("no answer"), "{}", r.message());
}

/// Every request body of the Graph docs stored in the repository is accepted, with its
/// placeholders filled in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_requests_are_accepted() {
    let sim = common::default_sim().await;
    let hook = Hook::start(Mode::Good, None).await;
    let base = sim.base_url();
    let me = sim.identity().user_id;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/documented/requests.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let png = base64::engine::general_purpose::STANDARD.encode(b"\x89PNG\r\n\x1a\n0000IHDR");

    let mut requests: Vec<Value> = doc["requests"].as_array().unwrap().clone();
    // Sends first (the later calls act on a sent message), then the rest in order.
    requests.sort_by_key(|r| !r["name"].as_str().unwrap_or("").starts_with("send"));
    let chat = group_chat(&sim).await;
    let mut message = String::new();
    let mut hosted = String::new();
    for r in &requests {
        let name = r["name"].as_str().unwrap();
        let method = r["method"].as_str().unwrap();
        let mut url = r["url"]
            .as_str()
            .unwrap()
            .replace("https://graph.microsoft.com/", &base);
        let mut body = r["body"].clone();
        if url.ends_with("/subscriptions") {
            // One chat of its own per subscription: one per app per chat.
            let own = group_chat(&sim).await;
            let text = body
                .to_string()
                .replace("{base64encodedCertificate}", &cert_b64())
                .replace("{customId}", common::CERT_ID)
                .replace("{chat-id}", &own)
                .replace("{id}", &own)
                .replace("{team-id}", "team-1")
                .replace("{channel-id}", "channel-1")
                .replace("{user-id}", &me);
            body = serde_json::from_str(&text).unwrap();
            body["notificationUrl"] = hook.url.clone().into();
            body["expirationDateTime"] = in_minutes(30).into();
        } else {
            // The docs' chat, message, user and hosted-content ids become ours.
            let mut parts: Vec<String> = url.split('/').map(str::to_string).collect();
            for i in 0..parts.len() {
                let prev = if i > 0 {
                    parts[i - 1].clone()
                } else {
                    String::new()
                };
                let p = parts[i].clone();
                let (seg, query) = match p.split_once('?') {
                    Some((s, q)) => (s.to_string(), format!("?{q}")),
                    None => (p.clone(), String::new()),
                };
                let replaced = match prev.as_str() {
                    "chats" if seg != "getAllMessages" => chat.clone(),
                    "messages" if !message.is_empty() => message.clone(),
                    "users" => me.clone(),
                    "hostedContents" if seg != "$value" => hosted.clone(),
                    _ => seg,
                };
                parts[i] = format!("{replaced}{query}");
            }
            url = parts.join("/");
            if let Some(h) = body.get_mut("hostedContents").and_then(Value::as_array_mut) {
                for h in h {
                    h["contentBytes"] = png.clone().into();
                }
            }
        }
        let text = (!body.is_null()).then(|| body.to_string());
        let reply = call(method, &url, text.as_deref(), true).await;
        assert!(
            (200..300).contains(&reply.status),
            "{name}: {method} {url} -> {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
        if name.starts_with("send") {
            let sent = reply.json();
            message = sent["id"].as_str().unwrap().to_string();
            let content = sent["body"]["content"].as_str().unwrap();
            if let Some(at) = content.find("/hostedContents/") {
                let rest = &content[at + "/hostedContents/".len()..];
                hosted = rest.split('/').next().unwrap().to_string();
                assert!(content.contains(&format!(
                    "{base}v1.0/chats/{chat}/messages/{message}/hostedContents/"
                )));
            }
        }
    }
    assert!(!hosted.is_empty(), "the inline image was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_order_and_filter_as_graph_does() {
    let sim = common::default_sim().await;
    let base = sim.base_url();
    let me = sim.identity().user_id;
    let chat = group_chat(&sim).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = sim
            .colleague_writes(&chat, colleague(), &format!("m{i}"), "text")
            .unwrap();
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    // Ids are epoch milliseconds of createdDateTime, unique in the chat.
    for (id, m) in ids.iter().zip(sim.truth(&chat).unwrap()) {
        let ms: i64 = id.parse().unwrap();
        assert_eq!(m["createdDateTime"].as_str().unwrap().len(), 24);
        assert!(m["createdDateTime"].as_str().unwrap().ends_with('Z'));
        assert!(ms > 1_600_000_000_000);
    }
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 5);
    // Editing the oldest makes it the most recently modified; deleting one keeps it listed.
    tokio::time::sleep(Duration::from_millis(5)).await;
    sim.colleague_edits(&chat, &ids[0], "m0 edited").unwrap();
    let watermark = sim.truth(&chat).unwrap()[0]["lastModifiedDateTime"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(5)).await;
    sim.colleague_deletes(&chat, &ids[2]).unwrap();

    // Pages of 2, by lastModifiedDateTime desc (the default), linked by absolute nextLinks.
    let reply = send(&base, MessagesRequest::chat(&chat).top(2).build().unwrap()).await;
    assert_eq!(reply.status, 200);
    let mut seen = Vec::new();
    let mut body = reply.body;
    loop {
        let page = Page::messages(&body).unwrap();
        assert!(page.items.len() <= 2);
        for m in &page.items {
            seen.push(m.as_ref().unwrap().id.get().unwrap().as_str().to_string());
        }
        let Some(next) = page.next_link.as_deref().map(str::to_string) else {
            break;
        };
        assert!(next.starts_with(&format!("{base}v1.0/chats/")), "{next}");
        body = call("GET", &next, None, true).await.body;
    }
    assert_eq!(
        seen,
        [
            ids[2].clone(),
            ids[0].clone(),
            ids[4].clone(),
            ids[3].clone(),
            ids[1].clone()
        ]
    );
    let all = items(
        &send(
            &base,
            MessagesRequest::user_chat(&me, &chat).build().unwrap(),
        )
        .await
        .body,
    );
    assert!(all
        .iter()
        .any(|m| m["id"] == ids[2].as_str() && m["deletedDateTime"].is_string()));

    // createdDateTime desc.
    let r = send(
        &base,
        MessagesRequest::chat(&chat)
            .order_by(OrderBy::CreatedDesc)
            .build()
            .unwrap(),
    )
    .await;
    let order: Vec<String> = items(&r.body)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(order, newest_first);

    // A filter on the $orderby property applies; on another property it is ignored.
    let r = send(&base, changed_since(&chat, &watermark)).await;
    assert_eq!(
        items(&r.body).len(),
        1,
        "only the deleted one changed after the edit"
    );
    let url = |q: &str| format!("{base}v1.0/chats/{chat}/messages?{q}");
    let ignored = call(
        "GET",
        &url(&format!(
            "$filter=lastModifiedDateTime gt {watermark}&$orderby=createdDateTime desc"
        )),
        None,
        true,
    )
    .await;
    assert_eq!(items(&ignored.body).len(), 5);
    let lt = call(
        "GET",
        &url(&format!(
            "$orderby=createdDateTime desc&$filter=createdDateTime lt {}",
            sim.truth(&chat).unwrap()[2]["createdDateTime"]
                .as_str()
                .unwrap()
        )),
        None,
        true,
    )
    .await;
    assert_eq!(items(&lt.body).len(), 2);

    // 400s: $top over 50, an ascending or unknown $orderby.
    for q in [
        "$top=51",
        "$top=0",
        "$orderby=createdDateTime asc",
        "$orderby=subject desc",
    ] {
        let r = call("GET", &url(q), None, true).await;
        assert_eq!(r.status, 400, "{q}");
        r.error_code();
    }
    assert_eq!(call("GET", &url("$top=50"), None, true).await.status, 200);

    // Delta: everything, then a deltaLink that returns only what changed since.
    let r = send(&base, MessagesRequest::user_all_delta(&me).build().unwrap()).await;
    let page = Page::messages(&r.body).unwrap();
    assert_eq!(page.items.len(), 5);
    let delta = page.delta_link.as_deref().unwrap().to_string();
    assert!(delta.starts_with(&base));
    let fresh = sim
        .colleague_writes(&chat, colleague(), "after", "text")
        .unwrap();
    let next = items(&call("GET", &delta, None, true).await.body);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["id"], fresh["id"]);

    // Chats: the user's, with members and viewpoint, paged.
    group_chat(&sim).await;
    let r = send(
        &base,
        ChatsRequest::mine()
            .top(1)
            .expand_members()
            .build()
            .unwrap(),
    )
    .await;
    let page = Page::chats(&r.body).unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next_link.is_some());
    let chat_json = &items(&r.body)[0];
    assert_eq!(chat_json["members"].as_array().unwrap().len(), 2);
    assert!(chat_json["viewpoint"].is_object());
    let r = send(&base, ChatsRequest::members(&chat).build().unwrap()).await;
    assert_eq!(Page::members(&r.body).unwrap().items.len(), 2);
}

/// The chat's messages modified after `watermark`, newest first, as a resync reads them.
fn changed_since(chat: &str, watermark: &str) -> outbound::HttpRequest {
    MessagesRequest::chat(chat)
        .top(50)
        .modified_after(watermark)
        .order_by(OrderBy::LastModifiedDesc)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_in_graph_shape_and_throttling_with_retry_after() {
    let sim = common::default_sim().await;
    let base = sim.base_url();
    let r = call("GET", &format!("{base}v1.0/no/such/thing"), None, true).await;
    assert_eq!(r.status, 404);
    r.error_code();
    let r = call("GET", &format!("{base}elsewhere"), None, false).await;
    assert_eq!(r.status, 404);
    r.error_code();
    let r = call("GET", &format!("{base}v1.0/me/chats"), None, false).await;
    assert_eq!(
        (r.status, r.error_code()),
        (401, "InvalidAuthenticationToken".to_string())
    );
    let r = call(
        "POST",
        &format!("{base}v1.0/chats"),
        Some("{not json"),
        true,
    )
    .await;
    assert_eq!(r.status, 400);
    r.error_code();
    let r = call(
        "GET",
        &format!("{base}v1.0/chats/19:nope@thread.v2/messages"),
        None,
        true,
    )
    .await;
    assert_eq!(r.status, 404);
    r.error_code();
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(5 * 1024 * 1024));
    let r = call("POST", &format!("{base}v1.0/chats"), Some(&big), true).await;
    assert_eq!(r.status, 413);
    r.error_code();

    // Throttled: API calls only.
    sim.set_faults(Faults {
        throttle: 1.0,
        ..Default::default()
    })
    .unwrap();
    let r = send(&base, ChatsRequest::mine().build().unwrap()).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.error_code(), "TooManyRequests");
    let after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(after >= 1);
    assert_eq!(
        call("GET", &sim.identity().jwks_url, None, false)
            .await
            .status,
        200
    );
    assert_eq!(
        call("GET", &format!("{base}_sim/deliveries"), None, false)
            .await
            .status,
        200
    );
    assert_eq!(
        call("POST", &format!("{base}_sim/faults"), Some("{}"), false)
            .await
            .status,
        204
    );
    assert_eq!(
        send(&base, ChatsRequest::mine().build().unwrap())
            .await
            .status,
        200
    );
    let r = call(
        "POST",
        &format!("{base}_sim/faults"),
        Some(r#"{"drop": 2}"#),
        false,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        "POST",
        &format!("{base}_sim/faults"),
        Some(r#"{"dorp": 0.1}"#),
        false,
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_contents_reactions_and_controls() {
    let sim = common::default_sim().await;
    let base = sim.base_url();
    let chat = group_chat(&sim).await;
    let png = b"\x89PNG\r\n\x1a\nnot really an image".to_vec();
    let request = MessageRequest::send(&chat, r#"<p><img src="../hostedContents/1/$value"></p>"#)
        .html()
        .hosted_content("1", png.clone(), "image/png")
        .build()
        .unwrap();
    let reply = send(&base, request).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let sent = reply.json();
    let id = sent_message(&reply.body)
        .unwrap()
        .id
        .get()
        .unwrap()
        .as_str()
        .to_string();
    let content = sent["body"]["content"].as_str().unwrap();
    let prefix = format!("{base}v1.0/chats/{chat}/messages/{id}/hostedContents/");
    let at = content
        .find(&prefix)
        .expect("the src is rewritten to the simulator");
    let hosted = content[at + prefix.len()..].split('/').next().unwrap();
    let r = send(&base, hosted_content_bytes(&chat, &id, hosted).unwrap()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, png);
    assert_eq!(r.headers["content-type"], "image/png");

    // Reactions.
    assert_eq!(
        send(&base, outbound::set_reaction(&chat, &id, "💘").unwrap())
            .await
            .status,
        204
    );
    let m = &sim.truth(&chat).unwrap()[0];
    assert_eq!(m["reactions"][0]["reactionType"], "💘");
    assert_eq!(
        send(&base, outbound::unset_reaction(&chat, &id, "💘").unwrap())
            .await
            .status,
        204
    );
    assert!(sim.truth(&chat).unwrap()[0]["reactions"]
        .as_array()
        .unwrap()
        .is_empty());

    // The controls over HTTP.
    let url = format!("{base}_sim/chats/{chat}/messages");
    let write = json!({"from": {"id": COLLEAGUE, "displayName": "Adele"}, "content": "hey", "contentType": "text"});
    let r = call("POST", &url, Some(&write.to_string()), false).await;
    assert_eq!(r.status, 201);
    let theirs = r.json()["id"].as_str().unwrap().to_string();
    let r = call(
        "PATCH",
        &format!("{url}/{theirs}"),
        Some(r#"{"content": "hey!"}"#),
        false,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        "POST",
        &format!("{url}/{theirs}/policyViolation"),
        Some(r#"{"dlpAction": "BlockAccess"}"#),
        false,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        "POST",
        &format!("{url}/{theirs}/policyViolation"),
        Some(r#"{"dlpAction": "Maybe"}"#),
        false,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        call("DELETE", &format!("{url}/{theirs}"), None, false)
            .await
            .status,
        204
    );
    let truth = call("GET", &url, None, false).await.json();
    let m = &truth["value"][1];
    assert_eq!(m["body"]["content"], "hey!");
    assert_eq!(m["policyViolation"]["dlpAction"], "BlockAccess");
    assert!(m["deletedDateTime"].is_string());
    // The user cannot edit or delete a colleague's message.
    let edit = MessageRequest::edit(&chat, &theirs, "mine now")
        .build()
        .unwrap();
    assert_eq!(send(&base, edit).await.status, 403);
    let identity = call("GET", &format!("{base}_sim/identity"), None, false)
        .await
        .json();
    assert_eq!(
        identity["jwksUrl"],
        format!("{base}common/discovery/v2.0/keys")
    );
    assert_eq!(identity["tenantId"], sim.identity().tenant_id.as_str());
    let d = call("GET", &format!("{base}_sim/deliveries"), None, false)
        .await
        .json();
    for k in ["attempted", "delivered", "dropped", "duplicated", "retried"] {
        assert!(d[k].is_u64(), "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_state_file_is_the_same_graph() {
    let path = std::env::temp_dir().join(format!("graph-sim-state-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let config = Config {
        state_path: Some(path.clone()),
        accept_any_token: true,
        ..Default::default()
    };
    let first = common::sim(config.clone()).await;
    let rx = Arc::new(common::receiver(&first));
    let hook = Hook::start(Mode::Good, Some(rx.clone())).await;
    let chat = group_chat(&first).await;
    let reply = send(
        &first.base_url(),
        MessageRequest::send(&chat, "kept").build().unwrap(),
    )
    .await;
    assert_eq!(reply.status, 201);
    let request = SubscriptionRequest::builder(Resource::chat_messages(&chat), &hook.url)
        .allow_loopback_http()
        .change_types([Created])
        .include_resource_data(common::cert_der(), common::CERT_ID)
        .client_state(common::CLIENT_STATE)
        .expires_in(SystemTime::now(), Duration::from_secs(1800));
    let sub = common::subscribe(&first, request).await;
    let truth = first.truth(&chat).unwrap();
    let jwks = first.jwks();
    first.shutdown().await;

    let second = common::sim(config).await;
    assert_eq!(second.chat_ids(), vec![chat.clone()]);
    assert_eq!(second.truth(&chat).unwrap(), truth);
    assert_eq!(second.jwks(), jwks, "the same signing key");
    assert_eq!(get_sub(&second.base_url(), &sub.id).await.status, 200);
    // It still delivers, with tokens the first run's JWKS validates.
    second
        .colleague_writes(&chat, colleague(), "after the restart", "text")
        .unwrap();
    let got = hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        common::open(&rx, &got[0].body)[0]["body"]["content"],
        "after the restart"
    );
    second.shutdown().await;
    let _ = std::fs::remove_file(&path);
}

/// `#[tokio::test]`'s default runtime has one thread: the simulator, its deliveries and the
/// test's webhook share it.
#[tokio::test]
async fn works_on_a_current_thread_runtime() {
    let sim = common::default_sim().await;
    let hook = Hook::start(Mode::Good, None).await;
    let chat = group_chat(&sim).await;
    let request = SubscriptionRequest::builder(Resource::chat_messages(&chat), &hook.url)
        .allow_loopback_http()
        .change_types([Created])
        .expires_in(SystemTime::now(), Duration::from_secs(600));
    common::subscribe(&sim, request).await;
    sim.colleague_writes(&chat, colleague(), "one thread", "text")
        .unwrap();
    assert_eq!(hook.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_in_one_millisecond_are_still_distinct_versions() {
    let sim = common::default_sim().await;
    let chat = group_chat(&sim).await;
    let m = sim
        .colleague_writes(&chat, colleague(), "v0", "text")
        .unwrap();
    let id = m["id"].as_str().unwrap().to_owned();
    for n in 1..=5 {
        sim.colleague_edits(&chat, &id, &format!("v{n}")).unwrap();
    }
    sim.policy_violation(&chat, &id, "BlockAccess").unwrap();
    sim.colleague_deletes(&chat, &id).unwrap();
    let truth = sim.truth(&chat).unwrap();
    let now = truth.iter().find(|m| m["id"] == id.as_str()).unwrap();
    // Seven changes, each at least a millisecond after the last: the etag moved every time.
    let created: i64 = id.parse().unwrap();
    let etag: i64 = now["etag"].as_str().unwrap().parse().unwrap();
    assert!(etag >= created + 7, "{now}");
    assert_eq!(now["etag"].as_str().unwrap(), etag.to_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_lost_answer_is_a_write_carried_out_whose_answer_never_arrives() {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let sim = common::default_sim().await;
    let chat = group_chat(&sim).await;
    let base = sim.base_url();
    sim.set_faults(Faults {
        lose_answers: 1,
        ..Default::default()
    })
    .unwrap();
    // A read is answered: only calls that change something lose their answer.
    let listed = send(&base, MessagesRequest::chat(&chat).build().unwrap()).await;
    assert_eq!(listed.status, 200);

    let request = MessageRequest::send(&chat, "made, unanswered")
        .build()
        .unwrap()
        .with_base(&base);
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(&request.url)
        .header("Authorization", "Bearer any-token");
    for (k, v) in &request.headers {
        builder = builder.header(*k, *v);
    }
    let client: Client<_, Full<axum::body::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let answer = client
        .request(
            builder
                .body(Full::new(request.body.unwrap_or_default().into()))
                .unwrap(),
        )
        .await;
    let lost = match answer {
        Err(_) => true,
        Ok(response) => response.into_body().collect().await.is_err(),
    };
    assert!(lost, "the answer arrived");
    let made = sim
        .truth(&chat)
        .unwrap()
        .into_iter()
        .filter(|m| m["body"]["content"] == "made, unanswered")
        .count();
    assert_eq!(made, 1, "the send was carried out once");

    // A write answered 204 loses its answer too.
    sim.set_faults(Faults {
        lose_answers: 1,
        ..Default::default()
    })
    .unwrap();
    let id = sim.truth(&chat).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = outbound::set_reaction(&chat, &id, "👍")
        .unwrap()
        .with_base(&base);
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(&request.url)
        .header("Authorization", "Bearer any-token");
    for (k, v) in &request.headers {
        builder = builder.header(*k, *v);
    }
    let answer = client
        .request(
            builder
                .body(Full::new(request.body.unwrap_or_default().into()))
                .unwrap(),
        )
        .await;
    let lost = match answer {
        Err(_) => true,
        Ok(response) => response.into_body().collect().await.is_err(),
    };
    assert!(lost, "the reaction's answer arrived");
    let reactions = sim.truth(&chat).unwrap()[0]["reactions"].clone();
    assert_eq!(reactions.as_array().map(Vec::len), Some(1), "{reactions}");

    // One answer lost each time: the next write is answered.
    let again = send(
        &base,
        MessageRequest::send(&chat, "answered").build().unwrap(),
    )
    .await;
    assert_eq!(again.status, 201);
}
