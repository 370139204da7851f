//! `GET /_sim/usage`: what the simulator served of Graph's API, and which resources were polled.

use crate::common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use graph_chat_notifications::outbound::{ChatMember, CreateChat};
use graph_sim::{Config, Simulator};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A JWT-shaped bearer token whose payload carries `oid` (the simulator does not verify it).
fn token_for(oid: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"oid":"{oid}","tid":"t"}}"#));
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

/// One request with the given bearer token (none if `None`); the status and the JSON body.
async fn request(method: &str, url: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut builder = hyper::Request::builder().method(method).uri(url);
    if let Some(t) = bearer {
        builder = builder.header("Authorization", format!("Bearer {t}"));
    }
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(builder.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Two group chats made through the API, then the usage reset: their ids.
async fn two_chats(sim: &Simulator) -> (String, String) {
    let me = sim.identity().user_id;
    let mut ids = Vec::new();
    for topic in ["Planning", "Lunch"] {
        let request =
            CreateChat::group([ChatMember::owner(&me), ChatMember::owner(common::COLLEAGUE)])
                .topic(topic);
        ids.push(common::create_chat(sim, request).await);
    }
    sim.reset_usage();
    (ids[0].clone(), ids[1].clone())
}

async fn usage_over_http(sim: &Simulator) -> Value {
    let (status, v) = request("GET", &format!("{}_sim/usage", sim.base_url()), None).await;
    assert_eq!(status, 200);
    v
}

fn calls_of<'a>(usage: &'a Value, resource: &str) -> Vec<&'a Value> {
    usage["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["resource"] == resource)
        .collect()
}

fn polled_of<'a>(usage: &'a Value, resource: &str) -> Option<&'a Value> {
    usage["polled"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["resource"] == resource)
}

#[tokio::test]
async fn calls_are_counted_by_route_resource_and_user() {
    let sim = common::default_sim().await;
    let base = sim.base_url();
    let (chat, _) = two_chats(&sim).await;
    let user = sim.identity().user_id;
    let token = token_for(&user);

    let resource = format!("/v1.0/users/{user}/chats/{chat}/messages");
    for _ in 0..2 {
        let (status, _) = request(
            "GET",
            &format!("{base}{}?$top=5", &resource[1..]),
            Some(&token),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = request(
        "GET",
        &format!("{base}beta/subscriptions/no-such-one"),
        Some("not-a-jwt"),
    )
    .await;
    assert_eq!(status, 404);
    // Not Graph's API: not counted.
    request("GET", &sim.identity().jwks_url, None).await;
    request("GET", &format!("{base}_sim/identity"), None).await;

    let usage = usage_over_http(&sim).await;
    assert_eq!(serde_json::to_value(sim.usage()).unwrap(), usage);
    let calls = usage["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{usage}");
    let c = calls_of(&usage, &resource);
    assert_eq!(c.len(), 1, "{usage}");
    assert_eq!(c[0]["method"], "GET");
    assert_eq!(c[0]["route"], "/v1.0/users/{id}/chats/{id}/messages");
    assert_eq!(c[0]["user"], user.as_str());
    assert_eq!(c[0]["count"], 2);
    for t in ["first", "last"] {
        assert!(c[0][t].as_str().unwrap().ends_with('Z'), "{}", c[0][t]);
    }
    assert!(c[0]["first"].as_str() <= c[0]["last"].as_str());
    let s = calls_of(&usage, "/beta/subscriptions/no-such-one");
    assert_eq!(s[0]["route"], "/beta/subscriptions/{id}");
    assert_eq!(s[0]["user"], Value::Null);
    assert_eq!(s[0]["count"], 1);
    // Two reads are within the default limit.
    assert_eq!(usage["polled"], serde_json::json!([]));

    // Reset clears both, over HTTP and on the library.
    request("GET", &format!("{base}{}", &resource[1..]), Some(&token)).await;
    assert!(polled_of(&usage_over_http(&sim).await, &resource).is_some());
    let (status, _) = request("POST", &format!("{base}_sim/usage/reset"), None).await;
    assert_eq!(status, 204);
    assert_eq!(
        usage_over_http(&sim).await,
        serde_json::json!({"calls": [], "polled": []})
    );
    request("GET", &format!("{base}{}", &resource[1..]), Some(&token)).await;
    assert_eq!(sim.usage().calls.len(), 1);
    sim.reset_usage();
    assert_eq!(sim.usage(), graph_sim::Usage::default());
}

#[tokio::test]
async fn a_resource_read_past_the_limit_without_a_change_is_polled() {
    let sim = common::default_sim().await;
    let base = sim.base_url();
    let (chat, other) = two_chats(&sim).await;
    let token = token_for("reader-1");
    let resource = format!("/v1.0/chats/{chat}/messages");
    let url = format!("{base}{}", &resource[1..]);
    let get = || request("GET", &url, Some(&token));

    // Two reads, a change in that chat, two more: never more than two without a change.
    get().await;
    get().await;
    sim.colleague_writes(&chat, common::colleague(), "hello", "text")
        .unwrap();
    get().await;
    get().await;
    let usage = sim.usage();
    assert!(usage.polled.is_empty(), "{usage:?}");
    assert_eq!(
        calls_of(&serde_json::to_value(&usage).unwrap(), &resource)[0]["count"],
        4
    );

    // A change elsewhere (another chat's message, a subscription) does not reset the run.
    sim.colleague_writes(&other, common::colleague(), "elsewhere", "text")
        .unwrap();
    // A page followed through nextLink is part of one read, not another.
    request("GET", &format!("{url}?$top=1&$skiptoken=1"), Some(&token)).await;
    assert!(sim.usage().polled.is_empty());
    get().await;
    let usage = serde_json::to_value(sim.usage()).unwrap();
    let p = polled_of(&usage, &resource).expect("polled");
    assert_eq!(p["route"], "/v1.0/chats/{id}/messages");
    assert_eq!(p["user"], "reader-1");
    assert_eq!(p["count"], 3);
    assert_eq!(p["windowSeconds"], 3600);
    get().await;
    assert_eq!(
        polled_of(&serde_json::to_value(sim.usage()).unwrap(), &resource).unwrap()["count"],
        4
    );
    // Another user's reads of the same resource are their own.
    request("GET", &url, Some(&token_for("reader-2"))).await;
    assert_eq!(sim.usage().polled.len(), 1);
    // An edit in the chat resets the run; the entry stays with its most reads until reset.
    let id = sim.truth(&chat).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    sim.colleague_edits(&chat, &id, "hello again").unwrap();
    get().await;
    get().await;
    get().await;
    assert_eq!(
        polled_of(&serde_json::to_value(sim.usage()).unwrap(), &resource).unwrap()["count"],
        4
    );
}

#[tokio::test]
async fn the_poll_limit_and_window_are_configurable_and_checked() {
    let sim = common::sim(Config {
        poll_limit: 0,
        poll_window: std::time::Duration::from_secs(60),
        accept_any_token: true,
        ..Default::default()
    })
    .await;
    let base = sim.base_url();
    request("GET", &format!("{base}v1.0/subscriptions"), Some("t")).await;
    let usage = serde_json::to_value(sim.usage()).unwrap();
    let p = polled_of(&usage, "/v1.0/subscriptions").expect("polled at once");
    assert_eq!(
        (p["count"].clone(), p["windowSeconds"].clone()),
        (1.into(), 60.into())
    );
    assert!(p["user"].is_null());
    // POSTs are counted but never polled.
    request(
        "POST",
        &format!("{base}v1.0/chats/x/markChatReadForUser"),
        Some("t"),
    )
    .await;
    assert_eq!(sim.usage().polled.len(), 1);

    for bad in [
        Config {
            poll_limit: graph_sim::MAX_POLL_LIMIT + 1,
            ..Default::default()
        },
        Config {
            poll_window: std::time::Duration::ZERO,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            Simulator::start(bad).await,
            Err(graph_sim::SimError::BadRequest(_))
        ));
    }
}
