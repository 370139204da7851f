//! Every delivery channel through the same verified core: a webhook POST, an Event Hubs message
//! and Event Grid CloudEvents, each with good, tampered, mis-stated and lifecycle items, Graph's
//! validation message, mixed tenants, and bodies of the wrong shape for the channel. The
//! conformance batches (encrypted by an independent implementation) decrypt on every channel.
#![cfg(feature = "rust-crypto")]

use crate::common::mint::{self, Minter, APP, TENANT};
use crate::common::*;
use graph_chat_notifications::crypto::{Certificate, DecryptBuffer, KeyStore};
use graph_chat_notifications::inbound::{
    cloud_events_handshake, Delivery, Envelope, Limits, Payload, Receiver,
};
use graph_chat_notifications::model::{ChangeType, LifecycleEvent};
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::tokens::TokenValidator;
use graph_chat_notifications::{BodyError, ItemErrorKind};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{json, Value};

const CHANNELS: [Delivery; 3] = [Delivery::Webhook, Delivery::EventHubs, Delivery::EventGrid];

fn receiver_on(delivery: Delivery, keys: KeyStore) -> Receiver {
    let builder = Receiver::builder()
        .keys(keys)
        .client_state(CLIENT_STATE)
        .delivery(delivery);
    match delivery {
        // The conformance batches carry no tokens: the webhook tests skip them explicitly.
        Delivery::Webhook => builder.dangerous_skip_token_validation(),
        _ => builder,
    }
    .build()
    .unwrap()
}

/// A webhook collection's items as the body `delivery` brings them.
fn as_channel(graph: &GraphSimulator, delivery: Delivery, items: &[Value]) -> Vec<u8> {
    match delivery {
        Delivery::Webhook => graph.collection(items, &[]),
        Delivery::EventHubs => graph.event_hubs_body(items),
        _ => graph.cloud_events(items),
    }
}

/// Opens every item: the payload rendered, or the failing field and kind.
fn open_all_on(r: &Receiver, body: &[u8]) -> Vec<Result<String, (&'static str, ItemErrorKind)>> {
    let batch = r.receive(body, mint::now()).expect("body accepted");
    let mut buf = DecryptBuffer::new();
    (0..batch.len())
        .map(|i| match batch.open(i, &mut buf) {
            Ok(opened) => Ok(match opened.payload {
                Payload::Decrypted(json) => json.to_string(),
                Payload::Lifecycle(event) => {
                    format!("lifecycle:{}:{:?}", event.as_str(), event.known())
                }
                Payload::ValidationMessage => "validation".to_string(),
                Payload::ResourceData(_) => "resourceData".to_string(),
                other => panic!("{other:?}"),
            }),
            Err(e) => Err((e.field(), e.kind().clone())),
        })
        .collect()
}

fn graph() -> GraphSimulator {
    GraphSimulator::new(APP, TENANT).client_state_value(CLIENT_STATE)
}

fn cert() -> Certificate {
    Certificate::from_bytes(&read("keys/rsa2048/cert.der")).unwrap()
}

fn message(id: u32) -> String {
    format!(
        r#"{{"id":"{id}","chatId":"19:c@thread.v2","body":{{"contentType":"text","content":"m{id}"}}}}"#
    )
}

#[test]
fn the_conformance_batches_decrypt_on_every_channel() {
    let graph = graph();
    for batch in [
        "rsa2048.json",
        "rsa3072.json",
        "rsa4096.json",
        "two-certs.json",
    ] {
        let body: Value = serde_json::from_slice(&read(&format!("batches/{batch}"))).unwrap();
        let items = body["value"].as_array().unwrap().clone();
        let expected = manifest(batch);
        for delivery in CHANNELS {
            let results = open_all_on(
                &receiver_on(delivery, all_keys()),
                &as_channel(&graph, delivery, &items),
            );
            // Event Hubs bodies begin with Graph's validation message.
            let offset = usize::from(delivery == Delivery::EventHubs);
            if offset == 1 {
                assert_eq!(results[0], Ok("validation".to_string()));
            }
            assert_eq!(
                results.len(),
                expected.len() + offset,
                "{batch} {delivery:?}"
            );
            for ((name, _), got) in expected.iter().zip(&results[offset..]) {
                assert_eq!(
                    got.as_deref()
                        .unwrap_or_else(|e| panic!("{batch} {delivery:?} {name}: {e:?}")),
                    plaintext(name),
                    "{batch} {delivery:?} {name}"
                );
            }
        }
    }
}

#[test]
fn good_tampered_mis_stated_and_lifecycle_items_on_every_channel() {
    let graph = graph();
    let cert = cert();
    let good = graph.notification(
        &message(1),
        (&cert).into(),
        "graphsim-rsa2048",
        ChangeType::Created,
    );
    let mut tampered = good.clone();
    let sig = tampered["encryptedContent"]["dataSignature"]
        .as_str()
        .unwrap()
        .to_string();
    tampered["encryptedContent"]["dataSignature"] = json!(format!(
        "{}{}",
        if sig.starts_with('A') { "B" } else { "A" },
        &sig[1..]
    ));
    let mut wrong_state = good.clone();
    wrong_state["clientState"] = json!("not the secret");
    let lifecycle = graph.lifecycle("s1", LifecycleEvent::SubscriptionRemoved);
    let unknown_event = graph.lifecycle(
        "s1",
        graph_chat_notifications::model::EnumValue::new("somethingNew"),
    );
    let mut other_tenant = good.clone();
    other_tenant["tenantId"] = json!("9c5a1f2e-0000-4000-8000-00000000000b");
    let items = [
        good,
        tampered,
        wrong_state,
        lifecycle,
        unknown_event,
        other_tenant,
    ];
    for delivery in CHANNELS {
        let results = open_all_on(
            &receiver_on(delivery, all_keys()),
            &as_channel(&graph, delivery, &items),
        );
        let at = usize::from(delivery == Delivery::EventHubs);
        let r = &results[at..];
        assert_eq!(r[0], Ok(message(1)), "{delivery:?}");
        assert_eq!(
            r[1],
            Err(("encryptedContent", ItemErrorKind::Decrypt)),
            "{delivery:?}"
        );
        assert_eq!(
            r[2],
            Err(("clientState", ItemErrorKind::ClientStateMismatch)),
            "{delivery:?}"
        );
        assert_eq!(
            r[3],
            Ok("lifecycle:subscriptionRemoved:Some(SubscriptionRemoved)".to_string())
        );
        assert_eq!(r[4], Ok("lifecycle:somethingNew:None".to_string()));
        // No tokens on these bodies, so no tenant is bound: a mixed-tenant batch decrypts.
        assert_eq!(r[5], Ok(message(1)), "{delivery:?}");
    }
}

#[test]
fn event_hubs_bodies_that_carry_tokens_still_have_them_checked() {
    let m = Minter::fixture();
    let validator = TokenValidator::with_provider(provider(), [APP], [TENANT]);
    validator
        .update_jwks(&read("tokens/jwks.json"), mint::now())
        .unwrap();
    let r = Receiver::builder()
        .keys(all_keys())
        .client_state(CLIENT_STATE)
        .delivery(Delivery::EventHubs)
        .tokens(validator)
        .build()
        .unwrap();
    let mut body: Value = serde_json::from_slice(&read("tokens/batch.json")).unwrap();
    // Without tokens: accepted (the channel carries none).
    let items = body["value"].clone();
    let plain = serde_json::to_vec(&json!({ "value": items })).unwrap();
    assert_eq!(r.receive(&plain, mint::now()).unwrap().len(), 2);
    // With a forged one: refused, as on a webhook.
    body["validationTokens"] = json!([Minter::other().token(&Minter::v1())]);
    let forged = serde_json::to_vec(&body).unwrap();
    assert!(matches!(
        r.receive(&forged, mint::now()).unwrap_err(),
        BodyError::Token { index: 0, .. }
    ));
    // With a good one: accepted, and tenants are bound to it.
    body["validationTokens"] = json!([m.token(&Minter::v1())]);
    body["value"][1]["tenantId"] = json!("9c5a1f2e-0000-4000-8000-00000000000b");
    let results = open_all_on(&r, &serde_json::to_vec(&body).unwrap());
    assert!(results[0].is_ok());
    assert_eq!(
        results[1],
        Err(("tenantId", ItemErrorKind::TenantNotVouched))
    );
}

#[test]
fn the_validation_message_is_an_item_of_its_own_only_on_event_hubs() {
    let graph = graph();
    let message = graph.event_hubs_validation_message();
    let body = graph.collection(std::slice::from_ref(&message), &[]);
    let hubs = receiver_on(Delivery::EventHubs, all_keys());
    assert_eq!(open_all_on(&hubs, &body), [Ok("validation".to_string())]);
    // On a webhook it is not Graph's: its clientState ("NA") does not match.
    let webhook = receiver_on(Delivery::Webhook, all_keys());
    assert_eq!(
        open_all_on(&webhook, &body),
        [Err(("clientState", ItemErrorKind::ClientStateMismatch))]
    );
    // A look-alike with a real subscription id is an ordinary notification.
    let mut look_alike = message.clone();
    look_alike["subscriptionId"] = json!("3e4d6a0c-1f2b-4c5d-8e9f-0a1b2c3d4e5f");
    let body = graph.collection(&[look_alike], &[]);
    assert_eq!(
        open_all_on(&hubs, &body),
        [Err(("clientState", ItemErrorKind::ClientStateMismatch))]
    );
}

#[test]
fn cloud_events_expose_their_attributes_and_fail_alone() {
    let graph = graph();
    let cert = cert();
    let item = graph.notification(
        &message(7),
        (&cert).into(),
        "graphsim-rsa2048",
        ChangeType::Updated,
    );
    let event = graph.cloud_event(&item);
    let events = json!([
        event,
        {"specversion": "1.0", "type": "t", "source": "s", "id": "no-data"},
        {"specversion": "0.3", "type": "t", "source": "s", "id": "old", "data": item},
        {"specversion": "1.0", "type": "t", "source": "s", "id": "scalar-data", "data": 5},
        {"specversion": "1.0", "source": "s", "id": "no-type", "data": item},
        "not an event",
        event,
    ]);
    let body = serde_json::to_vec(&events).unwrap();
    let envelope = Envelope::parse_cloud_events(&body, &Limits::default()).unwrap();
    let first = envelope.items()[0].as_ref().unwrap();
    let ce = first.cloud_event.as_ref().unwrap();
    assert_eq!(ce.event_type, "Microsoft.Graph.ChatMessageUpdated");
    assert_eq!(ce.source, format!("/tenants/{TENANT}/applications/{APP}"));
    assert_eq!(ce.subject.as_deref(), first.resource.as_deref());
    assert!(ce.time.is_some() && !ce.id.is_empty());
    let errors: Vec<String> = envelope.items()[1..6]
        .iter()
        .map(|r| r.as_ref().unwrap_err().to_string())
        .collect();
    assert_eq!(
        errors,
        [
            "notification 1: data: missing",
            "notification 2: specversion: expected \"1.0\"",
            "notification 3: data: expected a change notification object",
            "notification 4: type: missing",
            "notification 5: expected a CloudEvent object",
        ]
    );
    let r = receiver_on(Delivery::EventGrid, all_keys());
    let results = open_all_on(&r, &body);
    assert_eq!(results[0], Ok(message(7)));
    assert_eq!(results[6], Ok(message(7)));
    // One event, not in an array (structured mode).
    let one = serde_json::to_vec(&graph.cloud_event(&item)).unwrap();
    assert_eq!(open_all_on(&r, &one), [Ok(message(7))]);
}

#[test]
fn bodies_of_the_wrong_shape_for_the_channel_are_refused_whole() {
    let graph = graph();
    let cert = cert();
    let item = graph.notification(
        &message(1),
        (&cert).into(),
        "graphsim-rsa2048",
        ChangeType::Created,
    );
    let collection = graph.collection(std::slice::from_ref(&item), &[]);
    let events = graph.cloud_events(std::slice::from_ref(&item));
    let grid = receiver_on(Delivery::EventGrid, all_keys());
    assert!(matches!(
        grid.receive(&collection, mint::now()).unwrap_err(),
        BodyError::NotCloudEvents { .. }
    ));
    assert!(matches!(
        grid.receive(b"42", mint::now()).unwrap_err(),
        BodyError::NotCloudEvents { .. }
    ));
    assert!(matches!(
        grid.receive(b"[1,", mint::now()).unwrap_err(),
        BodyError::NotJson { .. }
    ));
    for delivery in [Delivery::Webhook, Delivery::EventHubs] {
        let e = receiver_on(delivery, all_keys())
            .receive(&events, mint::now())
            .unwrap_err();
        assert!(e.to_string().contains("Event Grid"), "{delivery:?}: {e}");
    }
    // The count limit holds for events too.
    let many = graph.cloud_events(&vec![item; 3]);
    let small = Receiver::builder()
        .client_state(CLIENT_STATE)
        .delivery(Delivery::EventGrid)
        .limits(Limits::default().with_max_items(2))
        .build()
        .unwrap();
    assert_eq!(
        small.receive(&many, mint::now()).unwrap_err(),
        BodyError::TooManyItems { limit: 2 }
    );
}

#[test]
fn channels_without_tokens_need_no_validator_but_webhooks_do() {
    for delivery in [Delivery::EventHubs, Delivery::EventGrid] {
        let r = receiver_on(delivery, all_keys());
        assert_eq!(r.delivery(), delivery);
        r.update_keys(|k| k.insert("again", key(2048, "key.pkcs8.pem")))
            .unwrap();
    }
    assert!(Receiver::builder()
        .keys(all_keys())
        .client_state(CLIENT_STATE)
        .build()
        .is_err());
}

#[test]
fn the_abuse_protection_handshake() {
    let reply = cloud_events_handshake(Some(" eventgrid.azure.net "), None).unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers(),
        [("WebHook-Allowed-Origin", "eventgrid.azure.net")]
    );
    let with_rate = cloud_events_handshake(Some("eventgrid.azure.net"), Some("100")).unwrap();
    assert_eq!(with_rate.headers()[1], ("WebHook-Allowed-Rate", "*"));
    for bad in [None, Some(""), Some("a\r\nb"), Some("\u{7f}")] {
        assert!(cloud_events_handshake(bad, None).is_none(), "{bad:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))), ..ProptestConfig::default() })]

    /// Any bytes, on any channel: a typed refusal or per-item results, never a panic.
    #[test]
    fn no_channel_panics_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        for delivery in CHANNELS {
            let r = receiver_on(delivery, KeyStore::new());
            if let Ok(batch) = r.receive(&body, mint::now()) {
                let mut buf = DecryptBuffer::new();
                for i in 0..batch.len() {
                    let _ = batch.open(i, &mut buf);
                }
            }
        }
        let _ = Envelope::parse_cloud_events(&body, &Limits::default());
    }

    /// Arbitrary JSON-ish events: the count of items always matches the events sent.
    #[test]
    fn cloud_event_arrays_keep_one_result_per_event(
        kinds in proptest::collection::vec(0u8..6, 0..20)
    ) {
        let events: Vec<Value> = kinds.iter().map(|k| match k {
            0 => json!({"specversion": "1.0", "type": "t", "source": "s", "id": "i", "data": {"changeType": "created"}}),
            1 => json!(null),
            2 => json!([1, 2]),
            3 => json!({"specversion": 1}),
            4 => json!({"specversion": "1.0", "type": "t", "source": "s", "id": "i", "data": {"clientState": 5}}),
            _ => json!("s"),
        }).collect();
        let body = serde_json::to_vec(&events).unwrap();
        let envelope = Envelope::parse_cloud_events(&body, &Limits::default()).unwrap();
        prop_assert_eq!(envelope.len(), events.len());
        for (i, (item, k)) in envelope.items().iter().zip(&kinds).enumerate() {
            prop_assert_eq!(item.is_ok(), *k == 0);
            if let Err(e) = item { prop_assert_eq!(e.index(), i); }
        }
    }
}

/// What a worker puts on a queue: every item's owned result serializes; each notification
/// deserializes back (from a reader: nothing borrowed) equal, with the same payload and model
/// the live batch gives, no `clientState` and no ciphertext on the wire, and a `Debug` without
/// content.
#[test]
fn owned_results_survive_a_queue_on_every_channel() {
    use graph_chat_notifications::inbound::OwnedNotification;
    use graph_chat_notifications::model::IntoOwned;
    let graph = graph();
    let cert = cert();
    let good = graph.notification(
        &message(7),
        (&cert).into(),
        "graphsim-rsa2048",
        ChangeType::Updated,
    );
    let mut wrong_state = good.clone();
    wrong_state["clientState"] = json!("not the secret");
    let items = [
        good.clone(),
        wrong_state,
        graph.lifecycle("s1", LifecycleEvent::Missed),
        graph.notification_without_data(&message(8), ChangeType::Deleted),
    ];
    let data_key = good["encryptedContent"]["dataKey"].as_str().unwrap();
    for delivery in CHANNELS {
        let receiver = receiver_on(delivery, all_keys());
        let body = as_channel(&graph, delivery, &items);
        let batch = receiver.receive(&body, mint::now()).unwrap();
        let mut buf = DecryptBuffer::new();
        let results = batch.open_all(&mut buf);
        assert_eq!(results.len(), batch.len(), "{delivery:?}");
        let wire = serde_json::to_string(&results).unwrap();
        assert!(!wire.contains(CLIENT_STATE), "{delivery:?}");
        assert!(!wire.contains(data_key), "{delivery:?}");

        let values: Vec<Value> = serde_json::from_str(&wire).unwrap();
        let at = usize::from(delivery == Delivery::EventHubs);
        let err = &values[at + 1]["Err"];
        assert_eq!(err["index"], json!(at + 1), "{delivery:?}");
        assert_eq!(err["field"], "clientState");
        assert_eq!(err["kind"], "clientStateMismatch");

        for (i, result) in results.iter().enumerate() {
            assert_eq!(
                values[i].get("Ok").is_some(),
                result.is_ok(),
                "{delivery:?} {i}"
            );
            let Ok(one) = result else { continue };
            // One message per notification on the queue.
            let text = serde_json::to_vec(one).unwrap();
            let back: OwnedNotification = serde_json::from_reader(text.as_slice()).unwrap();
            let live = batch.open(i, &mut buf).unwrap();
            assert_eq!(Ok(&back), results[i].as_ref(), "{delivery:?} {i}");
            assert_eq!(
                format!("{:?}", back.payload()),
                format!("{:?}", live.payload),
                "{delivery:?} {i}"
            );
            assert_eq!(back.decode().unwrap(), live.decode().unwrap());
            assert_eq!(
                back.cloud_event,
                live.notification
                    .cloud_event
                    .clone()
                    .map(IntoOwned::into_owned)
            );
            assert_eq!(back.idempotency_key, live.notification.idempotency_key());
            assert!(!format!("{back:?}").contains("m7"), "{back:?}");
        }
        let first = results[at].as_ref().unwrap();
        assert_eq!(first.decrypted.as_ref().unwrap().get(), message(7));
        assert_eq!(first.lifecycle_event(), None);
        assert!(
            results[at + 2].as_ref().unwrap().lifecycle_event().unwrap() == LifecycleEvent::Missed
        );
        assert!(results[at + 3].as_ref().unwrap().change_type().unwrap() == ChangeType::Deleted);
        if delivery == Delivery::EventHubs {
            assert!(results[0].as_ref().unwrap().validation_message);
        }
    }
}
