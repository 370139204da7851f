//! Feature `http`: conversions to and from the `http` crate's types for outbound requests,
//! `Receiver::handle_http`, handshake replies and the keeper's outcomes.
#![cfg(all(feature = "rust-crypto", feature = "http"))]

use std::time::{Duration, SystemTime};

use graph_chat_notifications::inbound::{cloud_events_handshake_http, Inbound, Receiver};
use graph_chat_notifications::keeper::Outcome;
use graph_chat_notifications::model::ChangeType;
use graph_chat_notifications::outbound::{
    get_chat, list_subscriptions, renew, Resource, SubscriptionRequest,
};

#[test]
fn outbound_requests_convert_with_method_uri_headers_and_body() {
    let now = SystemTime::now();
    let create =
        SubscriptionRequest::builder(Resource::all_chat_messages(), "https://example.com/notify")
            .change_types([ChangeType::Created])
            .client_state("s3cr3t-state")
            .expires_in(now, Duration::from_secs(1800))
            .build()
            .unwrap();
    let method = create.method.as_str();
    let url = create.url.clone();
    let body = create.body.clone().unwrap();
    let request: http::Request<Vec<u8>> = create.try_into().unwrap();
    assert_eq!(request.method().as_str(), method);
    assert_eq!(request.uri().to_string(), url);
    assert_eq!(request.headers()["content-type"], "application/json");
    assert_eq!(request.body(), &body);

    for plain in [
        list_subscriptions(),
        get_chat("19:a@thread.v2").unwrap(),
        renew("sub-1", now, Duration::from_secs(600)).unwrap(),
    ] {
        let (method, url) = (plain.method, plain.url.clone());
        let request = http::Request::<Vec<u8>>::try_from(plain).unwrap();
        assert_eq!(request.method().as_str(), method.as_str());
        assert_eq!(request.uri().to_string(), url);
    }
}

#[test]
fn handle_http_answers_handshakes_and_reads_bodies() {
    let receiver = Receiver::builder()
        .client_state("state")
        .dangerous_skip_token_validation()
        .build()
        .unwrap();
    let handshake = http::Request::post("/notify?validationToken=Validation%3A+Testing")
        .body(Vec::new())
        .unwrap();
    let Ok(Inbound::Handshake(reply)) = receiver.handle_http(&handshake, SystemTime::now()) else {
        panic!("not a handshake")
    };
    let response: http::Response<String> = reply.into();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.body(), "Validation: Testing");

    let post = http::Request::post("/notify")
        .body(br#"{"value":[{"subscriptionId":"s","changeType":"deleted"}]}"#.to_vec())
        .unwrap();
    let Ok(Inbound::Notifications(batch)) = receiver.handle_http(&post, SystemTime::now()) else {
        panic!("not a batch")
    };
    assert_eq!(batch.len(), 1);
    let garbage = http::Request::post("/notify")
        .body(b"nope".to_vec())
        .unwrap();
    assert!(receiver.handle_http(&garbage, SystemTime::now()).is_err());
}

#[test]
fn event_grid_abuse_protection_from_headers() {
    let request = http::Request::options("/eventgrid")
        .header("WebHook-Request-Origin", "eventgrid.azure.net")
        .header("WebHook-Request-Rate", "120")
        .body(())
        .unwrap();
    let response: http::Response<()> = cloud_events_handshake_http(request.headers())
        .unwrap()
        .into();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["webhook-allowed-origin"],
        "eventgrid.azure.net"
    );
    assert_eq!(response.headers()["webhook-allowed-rate"], "*");
    let bad = http::HeaderMap::new();
    assert!(cloud_events_handshake_http(&bad).is_none());
    let mut opaque = http::HeaderMap::new();
    opaque.insert(
        "webhook-request-origin",
        http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
    );
    assert!(cloud_events_handshake_http(&opaque).is_none());
}

#[test]
fn keeper_outcomes_from_graph_responses() {
    let response = |status: u16, retry: Option<&str>, body: &str| {
        let mut b = http::Response::builder().status(status);
        if let Some(r) = retry {
            b = b.header("Retry-After", r);
        }
        Outcome::from_http_response(&b.body(body.as_bytes().to_vec()).unwrap())
    };
    let body = r#"{"id":"sub-1","resource":"/chats/getAllMessages","expirationDateTime":"2030-01-01T00:00:00Z"}"#;
    match response(200, None, body) {
        Outcome::Done(Some(s)) => assert_eq!(s.id, "sub-1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(response(204, None, ""), Outcome::Done(None));
    assert_eq!(response(201, None, "not json"), Outcome::Failed);
    assert_eq!(response(404, None, "{}"), Outcome::NotFound);
    assert_eq!(response(403, None, "{}"), Outcome::Forbidden);
    assert_eq!(
        response(429, Some("12"), ""),
        Outcome::Throttled {
            retry_after: Duration::from_secs(12)
        }
    );
    assert_eq!(
        response(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), ""),
        Outcome::Throttled {
            retry_after: Outcome::DEFAULT_RETRY_AFTER
        }
    );
    assert_eq!(response(500, None, ""), Outcome::Failed);
}
