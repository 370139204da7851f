//! Subscription requests: the documented examples built and compared as JSON, and every
//! combination Graph refuses refused at `build()` with its reason.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use graph_chat_notifications::model::ChangeType::{self, Created, Deleted, Updated};
use graph_chat_notifications::outbound::{
    self, renew_at, ApiVersion, Model, RequestError as E, Resource, Subscription,
    SubscriptionRequest, TlsVersion,
};
use serde_json::{json, Value};

const URL: &str = "https://webhook.azurewebsites.net/api/resourceNotifications";
const USER: &str = "9a6eb4d1-826b-48b1-9627-b50836c8fee9";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_568_887_200) // 2019-09-19T10:00:00Z
}

fn cert() -> Vec<u8> {
    common::read("keys/rsa2048/cert.der")
}

fn cert_b64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(cert())
}

fn base(resource: Resource, changes: &[ChangeType]) -> SubscriptionRequest {
    SubscriptionRequest::builder(resource, URL)
        .change_types(changes.iter().cloned())
        .expires_in(now(), Duration::from_secs(3600))
        .client_state("{secretClientState}")
}

fn rich(r: SubscriptionRequest) -> SubscriptionRequest {
    r.include_resource_data(cert(), "{customId}")
}

fn body(r: &SubscriptionRequest) -> (String, Value) {
    let req = r.build().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(req.method.as_str(), "POST");
    assert_eq!(req.headers, [("Content-Type", "application/json")]);
    (
        req.url.clone(),
        serde_json::from_slice(req.body.as_ref().unwrap()).unwrap(),
    )
}

/// A documented body: `resource`, change types, with or without resource data.
fn documented(resource: &str, change_type: &str, resource_data: bool) -> Value {
    let mut v = json!({
        "changeType": change_type,
        "notificationUrl": URL,
        "resource": resource,
        "includeResourceData": resource_data,
        "expirationDateTime": "2019-09-19T11:00:00.0000000Z",
        "clientState": "{secretClientState}",
    });
    if resource_data {
        v["encryptionCertificate"] = cert_b64().into();
        v["encryptionCertificateId"] = "{customId}".into();
    }
    v
}

const V1: &str = "https://graph.microsoft.com/v1.0/subscriptions";
const BETA: &str = "https://graph.microsoft.com/beta/subscriptions";

#[test]
fn documented_chat_requests() {
    let cu = &[Created, Updated];
    let cases = [
        (
            rich(base(Resource::all_chats(), cu)),
            V1,
            documented("/chats", "created,updated", true),
        ),
        (
            rich(base(Resource::chat("{id}"), cu)),
            V1,
            documented("/chats/{id}", "created,updated", true),
        ),
        (
            rich(base(Resource::chat("{id}"), cu)).user_specific_properties(),
            BETA,
            documented(
                "/chats/{id}?notifyOnUserSpecificProperties=true",
                "created,updated",
                true,
            ),
        ),
        (
            rich(base(Resource::user_chats("{id}"), cu)),
            BETA,
            documented("/users/{id}/chats", "created,updated", true),
        ),
        (
            rich(base(Resource::user_chats("{id}"), cu)).user_specific_properties(),
            BETA,
            documented(
                "/users/{id}/chats?notifyOnUserSpecificProperties=true",
                "created,updated",
                true,
            ),
        ),
        (
            rich(base(Resource::my_chats(), cu)),
            BETA,
            documented("/me/chats", "created,updated", true),
        ),
        (
            rich(base(Resource::app_installed_chats("{id}"), cu)),
            V1,
            documented(
                "/appCatalogs/teamsApps/{id}/installedToChats",
                "created,updated",
                true,
            ),
        ),
    ];
    for (request, url, expected) in cases {
        assert_eq!(body(&request), (url.to_string(), expected));
    }
}

#[test]
fn documented_message_requests() {
    let cu = &[Created, Updated];
    let cud = &[Created, Updated, Deleted];
    let channel = || Resource::channel_messages("{id}", "{id}");
    let chat = || Resource::chat_messages("{id}");
    let mention = format!("$filter=mentions/any(u: u/mentioned/user/id eq '{USER}')");
    let cases = [
        (
            rich(base(Resource::all_channel_messages(), cu)),
            documented("/teams/getAllMessages", "created,updated", true),
        ),
        (
            rich(base(Resource::all_chat_messages(), cud)),
            documented("/chats/getAllMessages", "created,updated,deleted", true),
        ),
        (
            rich(base(Resource::all_chat_messages(), cud)).model(Model::B),
            documented(
                "/chats/getAllMessages?model=B",
                "created,updated,deleted",
                true,
            ),
        ),
        (
            rich(base(channel(), cu)),
            documented(
                "/teams/{id}/channels/{id}/messages",
                "created,updated",
                true,
            ),
        ),
        (
            rich(base(channel(), cu)).search("Hello"),
            documented(
                "/teams/{id}/channels/{id}/messages?$search=Hello",
                "created,updated",
                true,
            ),
        ),
        (
            base(channel(), cu),
            documented(
                "/teams/{id}/channels/{id}/messages",
                "created,updated",
                false,
            ),
        ),
        (
            base(channel(), cu).mentions(USER),
            documented(
                &format!("/teams/{{id}}/channels/{{id}}/messages?{mention}"),
                "created,updated",
                false,
            ),
        ),
        (
            rich(base(chat(), cu)),
            documented("/chats/{id}/messages", "created,updated", true),
        ),
        (
            rich(base(chat(), cu)).search("Hello"),
            documented(
                "/chats/{id}/messages?$search=Hello",
                "created,updated",
                true,
            ),
        ),
        (
            base(chat(), cu),
            documented("/chats/{id}/messages", "created,updated", false),
        ),
        (
            base(chat(), cu).mentions(USER),
            documented(
                &format!("/chats/{{id}}/messages?{mention}"),
                "created,updated",
                false,
            ),
        ),
        (
            rich(base(Resource::user_chat_messages("{id}"), cud)).model(Model::B),
            documented(
                "/users/{id}/chats/getAllMessages?model=B",
                "created,updated,deleted",
                true,
            ),
        ),
        (
            rich(base(Resource::app_installed_chat_messages("{id}"), cud)),
            documented(
                "/appCatalogs/teamsApps/{id}/installedToChats/getAllMessages",
                "created,updated,deleted",
                true,
            ),
        ),
    ];
    for (request, expected) in cases {
        assert_eq!(body(&request), (V1.to_string(), expected));
    }
}

#[test]
fn options_combine_in_one_query_and_values_are_encoded() {
    let (_, v) = body(
        &base(Resource::chat_messages("19:abc@thread.v2"), &[Created])
            .search("a b&c")
            .mentions(USER),
    );
    assert_eq!(
        v["resource"],
        format!("/chats/19:abc@thread.v2/messages?$search=a%20b%26c&$filter=mentions/any(u: u/mentioned/user/id eq '{USER}')")
    );
    let (_, v) = body(
        &base(Resource::user_chat_messages("u"), &[Created])
            .model(Model::B)
            .search("x"),
    );
    assert_eq!(
        v["resource"],
        "/users/u/chats/getAllMessages?model=B&$search=x"
    );
    // Duplicated change types are sent once, in the order given.
    let (_, v) = body(&base(Resource::all_chats(), &[Updated, Created, Updated]));
    assert_eq!(v["changeType"], "updated,created");
}

#[test]
fn lifecycle_url_tls_and_version_override() {
    let r = rich(base(Resource::all_chats(), &[Created]))
        .lifecycle_url("https://webhook.example.com/lifecycle")
        .expires_in(now(), Duration::from_secs(4_320 * 60))
        .latest_supported_tls_version(TlsVersion::V1_3)
        .api_version(ApiVersion::Beta);
    let (url, v) = body(&r);
    assert_eq!(url, BETA);
    assert_eq!(
        v["lifecycleNotificationUrl"],
        "https://webhook.example.com/lifecycle"
    );
    assert_eq!(v["expirationDateTime"], "2019-09-22T10:00:00.0000000Z");
    assert_eq!(v["latestSupportedTlsVersion"], "v1_3");
    // Without resource data neither certificate field is sent.
    let (_, v) = body(&base(Resource::all_chats(), &[Created]));
    assert!(v.get("encryptionCertificate").is_none() && v.get("encryptionCertificateId").is_none());
    assert_eq!(v["includeResourceData"], false);
}

fn refused(r: SubscriptionRequest) -> E {
    r.build().expect_err("must be refused")
}

#[test]
fn query_options_only_where_graph_takes_them() {
    let cu = &[Created, Updated];
    for (r, option) in [
        (base(Resource::all_chats(), cu).model(Model::B), "model=B"),
        (base(Resource::chat("c"), cu).model(Model::A), "model=A"),
        (
            base(Resource::user_chats("u"), cu).model(Model::A),
            "model=A",
        ),
        (
            base(Resource::user_chat_messages("u"), cu).model(Model::A),
            "model=A",
        ),
        (
            base(Resource::chat_messages("c"), cu).model(Model::B),
            "model=B",
        ),
        (
            base(Resource::all_chat_messages(), cu).search("x"),
            "$search",
        ),
        (base(Resource::all_chats(), cu).search("x"), "$search"),
        (
            base(Resource::app_installed_chat_messages("a"), cu).search("x"),
            "$search",
        ),
        (
            base(Resource::user_chat_messages("u"), cu).mentions(USER),
            "the mentions $filter",
        ),
        (
            base(Resource::all_channel_messages(), cu).mentions(USER),
            "the mentions $filter",
        ),
        (
            base(Resource::chat_messages("c"), cu).user_specific_properties(),
            "notifyOnUserSpecificProperties",
        ),
        (
            base(Resource::all_chats(), cu).user_specific_properties(),
            "notifyOnUserSpecificProperties",
        ),
        (
            base(Resource::app_installed_chats("a"), cu).user_specific_properties(),
            "notifyOnUserSpecificProperties",
        ),
    ] {
        match refused(r) {
            E::UnsupportedQueryOption { option: o, .. } => assert_eq!(o, option),
            other => panic!("{option}: {other:?}"),
        }
    }
    assert_eq!(
        refused(base(Resource::chat_messages("c"), cu).search("  ")),
        E::EmptySearch
    );
    for bad in [
        "alice@contoso.com",
        "9a6eb4d1-826b-48b1-9627-b50836c8fee9') or (1 eq 1",
        "",
    ] {
        assert_eq!(
            refused(base(Resource::chat_messages("c"), cu).mentions(bad)),
            E::BadMentionedUser(bad.into())
        );
    }
    let e = refused(base(Resource::all_chats(), cu).model(Model::B));
    assert!(e.to_string().contains("no model"), "{e}");
}

#[test]
fn expiry_rules_at_their_edges() {
    let at = |secs: u64, lifecycle: bool| {
        let mut r =
            base(Resource::all_chats(), &[Created]).expires_in(now(), Duration::from_secs(secs));
        if lifecycle {
            r = r.lifecycle_url("https://webhook.example.com/lifecycle");
        }
        r.build()
    };
    assert!(at(3600, false).is_ok());
    assert_eq!(at(3601, false).unwrap_err(), E::LifecycleUrlRequired);
    assert!(at(3601, false).unwrap_err().to_string().starts_with(
        "lifecycleNotificationUrl is a required property for subscription creation on this resource"
    ));
    assert!(at(4_320 * 60, true).is_ok());
    assert_eq!(
        at(4_320 * 60 + 1, true).unwrap_err(),
        E::ExpirationTooFar { minutes: 4_321 }
    );
    assert_eq!(at(0, false).unwrap_err(), E::ExpirationNotInFuture);
    let past =
        base(Resource::all_chats(), &[Created]).expires_at(now(), now() - Duration::from_secs(1));
    assert_eq!(refused(past), E::ExpirationNotInFuture);
    let none = SubscriptionRequest::builder(Resource::all_chats(), URL).change_types([Created]);
    assert_eq!(refused(none), E::NoExpiration);
}

#[test]
fn body_rules() {
    let b = || base(Resource::all_chats(), &[Created]);
    assert_eq!(refused(b().change_types([])), E::NoChangeType);
    assert_eq!(
        refused(b().client_state("x".repeat(129))),
        E::BadClientState(129)
    );
    assert_eq!(refused(b().client_state("")), E::BadClientState(0));
    assert!(b().client_state("é".repeat(128)).build().is_ok());
    assert_eq!(
        refused(b().include_resource_data(cert(), "x".repeat(129))),
        E::BadCertificateId(129)
    );
    assert_eq!(
        refused(b().include_resource_data(cert(), "")),
        E::BadCertificateId(0)
    );
    assert_eq!(
        refused(b().include_resource_data(Vec::new(), "id")),
        E::EmptyCertificate
    );
}

#[test]
fn delivery_urls() {
    let with_url = |u: &str| {
        SubscriptionRequest::builder(Resource::all_chats(), u)
            .change_types([Created])
            .expires_in(now(), Duration::from_secs(600))
            .build()
    };
    for ok in [
        "https://webhook.example.com/api/notify?x=1",
        "EventHub:https://ns.servicebus.windows.net/eventhubname/hub?tenantId=contoso.onmicrosoft.com",
        "EventGrid:?azuresubscriptionid=8aa5e20a&resourcegroup=rg&partnertopic=topic&location=westus",
    ] {
        assert!(with_url(ok).is_ok(), "{ok}");
    }
    // A local Graph (graph-sim) delivers over plain http to this machine, when the request says
    // so; Microsoft Graph never does.
    let loopback = |u: &str| {
        SubscriptionRequest::builder(Resource::all_chats(), u)
            .change_types([Created])
            .allow_loopback_http()
            .expires_in(now(), Duration::from_secs(600))
            .build()
    };
    for local in [
        "http://127.0.0.1:8080/notify",
        "http://127.1.2.3/",
        "http://localhost:3000/hook",
        "http://[::1]:8080/",
    ] {
        assert!(matches!(with_url(local), Err(E::BadUrl { .. })), "{local}");
        assert!(loopback(local).is_ok(), "{local}");
    }
    for remote in [
        "http://webhook.example.com/api",
        "http://10.0.0.5/api",
        "ftp://127.0.0.1/",
    ] {
        assert!(
            matches!(loopback(remote), Err(E::BadUrl { .. })),
            "{remote}"
        );
    }
    for bad in [
        "http://webhook.example.com/api",
        "http://10.0.0.5/api",
        "webhook.example.com/api",
        "https://",
        "https://example.com/#frag",
        "ftp://example.com",
        "EventHub:http://ns.servicebus.windows.net/eventhubname/hub?tenantId=t",
        "EventHub:https://ns.servicebus.windows.net/eventhubname/hub",
        "EventGrid:?azuresubscriptionid=1&resourcegroup=rg&location=westus",
    ] {
        match with_url(bad) {
            Err(E::BadUrl {
                field: "notificationUrl",
                ..
            }) => {}
            other => panic!("{bad}: {other:?}"),
        }
    }
    let lifecycle =
        base(Resource::all_chats(), &[Created]).lifecycle_url("http://insecure.example.com");
    assert!(matches!(
        refused(lifecycle),
        E::BadUrl {
            field: "lifecycleNotificationUrl",
            ..
        }
    ));
}

#[test]
fn ids_cannot_change_the_path() {
    for bad in ["", "a/b", "a?b", "a#b", "a b", "a'b", "a&b"] {
        assert!(
            matches!(
                refused(base(Resource::chat(bad), &[Created])),
                E::BadId {
                    what: "chat id",
                    ..
                }
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        refused(base(Resource::channel_messages("t", "c/x"), &[Created])),
        E::BadId {
            what: "channel id",
            ..
        }
    ));
    assert!(
        base(Resource::chat("19:meeting_Zjk2@thread.v2"), &[Created])
            .build()
            .is_ok()
    );
    assert!(base(Resource::chat("19:a_b@unq.gbl.spaces"), &[Created])
        .build()
        .is_ok());
}

#[test]
fn renew_reauthorize_delete() {
    let id = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07";
    let hour = Duration::from_secs(3600);
    let r = outbound::renew(id, now(), hour).unwrap();
    assert_eq!(r.method.as_str(), "PATCH");
    assert_eq!(
        r.url,
        format!("https://graph.microsoft.com/v1.0/subscriptions/{id}")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(r.body.as_ref().unwrap()).unwrap(),
        json!({"expirationDateTime": "2019-09-19T11:00:00.0000000Z"})
    );
    let r = outbound::renew_with_certificate(id, now(), hour, &cert(), "cert-2").unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(r.body.as_ref().unwrap()).unwrap(),
        json!({"expirationDateTime": "2019-09-19T11:00:00.0000000Z", "encryptionCertificate": cert_b64(), "encryptionCertificateId": "cert-2"})
    );
    assert_eq!(
        outbound::renew(id, now(), Duration::from_secs(4_320 * 60 + 60)).unwrap_err(),
        E::ExpirationTooFar { minutes: 4_321 }
    );
    let r = outbound::reauthorize(id).unwrap();
    assert_eq!((r.method.as_str(), r.body.is_none()), ("POST", true));
    assert_eq!(
        r.url,
        format!("https://graph.microsoft.com/v1.0/subscriptions/{id}/reauthorize")
    );
    let r = outbound::delete(id).unwrap();
    assert_eq!(
        (r.method.as_str(), r.url.as_str()),
        (
            "DELETE",
            format!("https://graph.microsoft.com/v1.0/subscriptions/{id}").as_str()
        )
    );
    for bad in ["", "a/b", "../x", "a b", "a?b"] {
        assert_eq!(
            outbound::delete(bad).unwrap_err(),
            E::BadSubscriptionId(bad.into())
        );
        assert!(outbound::reauthorize(bad).is_err());
    }
}

#[test]
fn renewal_schedule() {
    let t0 = now();
    let hour = Duration::from_secs(3600);
    // 60 minutes: renew every 30 (the Teams guidance).
    assert_eq!(
        renew_at(t0, t0 + hour, Duration::from_secs(60)),
        t0 + hour / 2
    );
    // 3 days with a 10-minute margin: half-way comes first.
    let three_days = Duration::from_secs(4_320 * 60);
    assert_eq!(
        renew_at(t0, t0 + three_days, Duration::from_secs(600)),
        t0 + three_days / 2
    );
    // A margin longer than half the lifetime wins.
    assert_eq!(
        renew_at(t0, t0 + hour, Duration::from_secs(50 * 60)),
        t0 + Duration::from_secs(600)
    );
    // Already late: now-ish, never before issue time.
    assert_eq!(renew_at(t0, t0 + Duration::from_secs(60), hour), t0);
}

#[test]
fn subscriptions_graph_returns() {
    let body = br#"{
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
        "id": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "resource": "/chats/getAllMessages",
        "applicationId": "24d3b144-21ae-4080-943f-7067b395b913",
        "changeType": "created,updated,deleted",
        "clientState": "secretClientValue",
        "notificationUrl": "https://webhook.azurewebsites.net/api/send/myNotifyClient",
        "lifecycleNotificationUrl": "https://webhook.azurewebsites.net/api/send/lifecycle",
        "expirationDateTime": "2016-11-20T18:23:45.9356913Z",
        "creatorId": "8ee44408-0679-472c-bc2a-692812af3437",
        "includeResourceData": true,
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": "",
        "encryptionCertificateId": "{customId}",
        "notificationQueryOptions": null
    }"#;
    let s = Subscription::from_json(body).unwrap();
    assert_eq!(s.id, "7f105c7d-2dc5-4530-97cd-4e7ae6534c07");
    assert_eq!(s.include_resource_data, Some(true));
    assert_eq!(s.encryption_certificate_id.as_deref(), Some("{customId}"));
    let expected = UNIX_EPOCH + Duration::new(1_479_666_225, 935_691_300);
    assert_eq!(s.expires_at(), Some(expected));
    assert!(s.other.contains_key("notificationQueryOptions"));
    assert!(!format!("{s:?}").contains("secretClientValue"));
    assert!(Subscription::from_json(b"{}").is_err());
    let e = Subscription::from_json(br#"{"id": "x", "clientState": 5}"#).unwrap_err();
    assert!(
        !e.to_string().contains('5') || e.to_string().contains("line"),
        "{e}"
    );
}

#[test]
fn permissions_least_privileged_first() {
    assert_eq!(
        Resource::all_chats().permissions().delegated,
        [] as [&str; 0]
    );
    assert_eq!(
        Resource::my_chats().permissions().application,
        [] as [&str; 0]
    );
    assert_eq!(
        Resource::all_channel_messages().permissions().application,
        ["ChannelMessage.Read.All"]
    );
    assert_eq!(
        Resource::channel_messages("t", "c")
            .permissions()
            .application[0],
        "ChannelMessage.Read.Group"
    );
    assert_eq!(
        Resource::chat("c").permissions().delegated,
        ["Chat.ReadBasic", "Chat.Read", "Chat.ReadWrite"]
    );
    assert_eq!(
        Resource::app_installed_chats("a").permissions().application[0],
        "Chat.ReadBasic.WhereInstalled"
    );
}

#[test]
fn debug_hides_the_client_state() {
    let r = base(Resource::all_chats(), &[Created]).client_state("hush-hush-value");
    assert!(!format!("{r:?}").contains("hush-hush"));
    assert!(!format!("{:?}", r.build().unwrap()).contains("hush-hush"));
}

#[test]
fn the_requests_example_prints_every_request() {
    let out = std::process::Command::new(common::example_path("requests"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(all.len() >= 20);
    let mut names = std::collections::HashSet::new();
    for e in &all {
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{e}");
        assert!(
            names.insert(e["name"].as_str().unwrap().to_string()),
            "duplicate name {e}"
        );
        let url = e["url"].as_str().unwrap();
        if e["method"] == "GET" {
            assert!(
                url.starts_with("https://graph.microsoft.com/v1.0/"),
                "{url}"
            );
            assert!(e["body"].is_null());
            continue;
        }
        let Some(rest) = url
            .strip_prefix("https://graph.microsoft.com/v1.0/subscriptions")
            .or_else(|| url.strip_prefix("https://graph.microsoft.com/beta/subscriptions"))
        else {
            // The chat and message calls: tests/suite/requests.rs checks them.
            assert!(
                url.starts_with("https://graph.microsoft.com/v1.0/"),
                "{url}"
            );
            continue;
        };
        match e["method"].as_str().unwrap() {
            "POST" if rest.is_empty() => {
                let b = &e["body"];
                assert!(b["resource"].as_str().unwrap().starts_with('/'));
                assert!(b["includeResourceData"].is_boolean());
                assert_eq!(
                    b["includeResourceData"] == true,
                    b.get("encryptionCertificate").is_some()
                );
            }
            "POST" => assert!(rest.ends_with("/reauthorize") && e["body"].is_null()),
            "PATCH" => assert!(e["body"]["expirationDateTime"].is_string()),
            "DELETE" => assert!(e["body"].is_null()),
            m => panic!("{m}"),
        }
    }
    for wanted in [
        "?$search=Hello",
        "?model=B",
        "?notifyOnUserSpecificProperties=true",
        USER,
    ] {
        assert!(
            all.iter().any(|e| e["body"]["resource"]
                .as_str()
                .is_some_and(|r| r.contains(wanted))),
            "{wanted}"
        );
    }
}

#[test]
fn every_request_moves_to_a_national_cloud() {
    use graph_chat_notifications::outbound::{delete, reauthorize, renew};
    use graph_chat_notifications::Cloud;
    let requests = [
        base(Resource::all_chats(), &[Created]).build().unwrap(),
        renew("s1", now(), Duration::from_secs(3600)).unwrap(),
        reauthorize("s1").unwrap(),
        delete("s1").unwrap(),
    ];
    for cloud in Cloud::ALL {
        for request in requests.clone() {
            let moved = request.clone().in_cloud(cloud);
            let path = request
                .url
                .strip_prefix("https://graph.microsoft.com")
                .unwrap();
            assert_eq!(moved.url, format!("{}{path}", cloud.graph_url()));
            assert_eq!(moved.body, request.body);
            assert_eq!(moved.method, request.method);
        }
    }
    assert_eq!(
        reauthorize("s1")
            .unwrap()
            .in_cloud(Cloud::UsGovernmentDod)
            .url,
        "https://dod-graph.microsoft.us/v1.0/subscriptions/s1/reauthorize"
    );
}

/// Every documented request (subscriptions, the guide's calls, the chat and message calls),
/// compared field by field with the documents' own JSON
/// (`tests/fixtures/documented/requests.json`): the docs' id placeholders (`{team-id}`,
/// `{chat-id}`, an example app id) read as the example's `{id}`, and the certificate, a
/// placeholder in the docs, must be present and base64.
#[test]
fn the_requests_example_prints_the_documented_requests() {
    let out = std::process::Command::new(common::example_path("requests"))
        .output()
        .unwrap();
    let printed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let by_name = |name: &str| {
        printed
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("the example does not print {name:?}"))
    };
    let documented: Value =
        serde_json::from_slice(&common::read("documented/requests.json")).unwrap();
    let placeholder = |s: &str| {
        let mut out = String::new();
        let mut rest = s.replace("386bbcdb-1e1c-4f3f-b7d0-ad7b9ea6cf7c", "{id}");
        while let Some(start) = rest.find('{') {
            let end = rest[start..]
                .find('}')
                .map_or(rest.len(), |e| start + e + 1);
            let inner = &rest[start + 1..end - 1];
            out.push_str(&rest[..start]);
            if inner.ends_with("-id") || inner == "id" {
                out.push_str("{id}");
            } else {
                out.push_str(&rest[start..end]);
            }
            rest = rest[end..].to_string();
        }
        out + &rest
    };
    let requests = documented["requests"].as_array().unwrap();
    assert!(requests.len() >= 36);
    for doc in requests {
        let name = doc["name"].as_str().unwrap();
        let got = by_name(name);
        assert_eq!(got["method"], doc["method"], "{name}");
        if doc["method"] == "GET" {
            let decoded = percent_encoding::percent_decode_str(got["url"].as_str().unwrap())
                .decode_utf8()
                .unwrap();
            assert_eq!(decoded, doc["url"].as_str().unwrap(), "{name}");
            assert!(got["body"].is_null());
            continue;
        }
        assert_eq!(got["url"], doc["url"], "{name}");
        if doc["body"].is_null() {
            assert!(got["body"].is_null(), "{name}: the call takes no body");
            continue;
        }
        let (got_body, doc_body) = (
            got["body"].as_object().unwrap(),
            doc["body"].as_object().unwrap(),
        );
        let keys = |m: &serde_json::Map<String, Value>| {
            let mut k: Vec<String> = m.keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(got_body), keys(doc_body), "{name}");
        for (key, want) in doc_body {
            let have = &got_body[key];
            match key.as_str() {
                "encryptionCertificate" => assert!(have.as_str().is_some_and(|c| c.len() > 100)),
                "resource" => assert_eq!(
                    have.as_str().unwrap(),
                    placeholder(want.as_str().unwrap()),
                    "{name}"
                ),
                _ => assert_eq!(have, want, "{name}: {key}"),
            }
        }
    }
}
