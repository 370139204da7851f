//! No secret leaks through `Debug` or `Display`: private keys, clientState, validation tokens,
//! decrypted plaintext. Every public type and error that touches one is formatted and searched.
#![cfg(feature = "rust-crypto")]

use std::time::SystemTime;

use crate::common::seal::{notification, Seal};
use crate::common::*;
use graph_chat_notifications::crypto::{DecryptBuffer, PrivateKey};
use graph_chat_notifications::inbound::{handshake, Envelope, Limits, Receiver};
use graph_chat_notifications::model::ChangeType;
use graph_chat_notifications::model::{
    decode, ChatOrMessage, ChatTimeline, IntoOwned as _, ResourceKind,
};
use graph_chat_notifications::outbound::{Page, Resource, Subscription, SubscriptionRequest};
use graph_chat_notifications::testing::GraphSimulator;
use graph_chat_notifications::tokens::TokenValidator;
use serde_json::json;

const PLAINTEXT_MARKER: &str = "confidential-plaintext-7c1e";
const STATE: &str = "client-state-secret-93ab";

/// Every secret the formatted text must not contain.
struct Secrets {
    needles: Vec<String>,
}

impl Secrets {
    fn check(&self, what: &str, text: &str) {
        for n in &self.needles {
            if let Some(form) = shows(text, n) {
                panic!("{what} leaks {n:?} ({form}): {text}");
            }
        }
    }
}

/// `s` with every character outside ASCII as a `\uXXXX` escape (surrogate pairs beyond the
/// BMP), as JSON encoders that escape non-ASCII write it; `upper` picks the hex digits' case.
fn ascii_escaped(s: &str, upper: bool) -> String {
    let quoted = serde_json::to_string(s).unwrap();
    let mut out = String::new();
    for c in quoted[1..quoted.len() - 1].chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&if upper {
                    format!("\\u{unit:04X}")
                } else {
                    format!("\\u{unit:04x}")
                });
            }
        }
    }
    out
}

/// The form in which `text` shows `needle`, if it does: as is, escaped as a Rust `Debug` string,
/// escaped as a JSON string (serde_json's way, or with non-ASCII as `\u` escapes), or any of
/// these quoted.
fn shows(text: &str, needle: &str) -> Option<&'static str> {
    let debug = format!("{needle:?}");
    let json = serde_json::to_string(needle).unwrap();
    let forms = [
        ("raw", needle.to_string()),
        ("Debug-escaped", debug[1..debug.len() - 1].to_string()),
        ("JSON-escaped", json[1..json.len() - 1].to_string()),
        ("JSON-escaped, \\u lower case", ascii_escaped(needle, false)),
        ("JSON-escaped, \\u upper case", ascii_escaped(needle, true)),
    ];
    forms
        .into_iter()
        .find(|(_, form)| text.contains(form.as_str()))
        .map(|(name, _)| name)
}

#[test]
fn debug_and_display_hold_no_secrets() {
    let pem = String::from_utf8(read("keys/rsa2048/key-and-cert.pem")).unwrap();
    let key = PrivateKey::from_bytes(pem.as_bytes()).unwrap();
    let graph = GraphSimulator::new("app", "tenant").client_state_value(STATE);
    let token = graph.token(SystemTime::now());
    let mut needles: Vec<String> = pem
        .lines()
        .filter(|l| l.len() > 16 && !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    needles.push(
        key.expose_secret_pkcs1_der()[..24]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    );
    needles.push(format!("{:?}", &key.expose_secret_pkcs1_der()[..12]));
    needles.extend([
        STATE.to_string(),
        PLAINTEXT_MARKER.to_string(),
        token.clone(),
        token[..40].to_string(),
    ]);
    let secrets = Secrets { needles };

    let tokens = TokenValidator::with_provider(provider(), ["app"], ["tenant"]);
    tokens
        .update_jwks(&graph.jwks(), std::time::SystemTime::now())
        .unwrap();
    let builder = Receiver::builder()
        .keys(store().with_key("k", key.clone()).unwrap())
        .client_state(STATE)
        .tokens(tokens);
    secrets.check("ReceiverBuilder", &format!("{builder:?}"));
    let receiver = builder.build().unwrap();
    let plaintext = json!({"id": "1", "subject": PLAINTEXT_MARKER,
        "body": {"contentType": "text", "content": PLAINTEXT_MARKER},
        "attachments": [{"id": "a", "content": PLAINTEXT_MARKER}]})
    .to_string();
    let good = graph.notification(&plaintext, (&key).into(), "k", ChangeType::Created);
    let forged_state = {
        let mut n = good.clone();
        n["clientState"] = format!("{STATE}x").into();
        n
    };
    let body = graph.collection(
        &[good, forged_state, json!({"clientState": 5})],
        std::slice::from_ref(&token),
    );

    let envelope = Envelope::parse(&body, &Limits::default()).unwrap();
    secrets.check("Envelope", &format!("{envelope:?}"));
    for item in envelope.items() {
        match item {
            Ok(n) => {
                secrets.check("ChangeNotification", &format!("{n:?}"));
                secrets.check("EncryptedContent", &format!("{:?}", n.encrypted_content));
            }
            Err(e) => secrets.check("ItemError", &format!("{e} {e:?}")),
        }
    }
    let batch = receiver.receive(&body, SystemTime::now()).unwrap();
    secrets.check("Receiver", &format!("{receiver:?}"));
    secrets.check("Batch", &format!("{batch:?}"));
    secrets.check("KeyStore", &format!("{:?}", receiver.keys()));
    secrets.check("TokenValidator", &format!("{:?}", receiver.tokens()));
    secrets.check("ValidatedToken", &format!("{:?}", batch.validated_tokens()));
    let mut buf = DecryptBuffer::new();
    for i in 0..batch.len() {
        match batch.open(i, &mut buf) {
            Ok(opened) => {
                secrets.check("Opened", &format!("{opened:?}"));
                secrets.check(
                    "Payload",
                    &format!("{:?}", opened.payload.clone().into_owned()),
                );
                let typed = opened.decode().unwrap().unwrap();
                // The model is the user's data: neither its text nor its subject is in Debug.
                let text = format!("{typed:?}");
                assert!(!text.contains(PLAINTEXT_MARKER), "{text}");
                // The owned form for queues: its Debug holds nothing; its JSON holds the
                // resource (the user's data, by design) but no clientState, key or token.
                let owned = opened.into_owned();
                secrets.check("OwnedNotification", &format!("{owned:?}"));
                let wire = serde_json::to_string(&owned).unwrap();
                let without_content = wire.replace(PLAINTEXT_MARKER, "");
                secrets.check("OwnedNotification JSON", &without_content);
            }
            Err(e) => secrets.check(
                "ItemError",
                &format!("{e} {e:?} {}", serde_json::to_string(&e).unwrap()),
            ),
        }
    }
    secrets.check("DecryptBuffer", &format!("{buf:?}"));
    secrets.check("PrivateKey", &format!("{key:?}"));
    secrets.check("Certificate", &format!("{:?}", key.certificate()));
    secrets.check("GraphSimulator", &format!("{graph:?}"));
    // The simulator's encryption options hold a symmetric key: Debug shows its length.
    let options = graph_chat_notifications::testing::Encryption {
        symmetric_key: Some(vec![0x5a; 32]),
        ..Default::default()
    };
    let text = format!("{options:?}");
    assert!(!text.contains("90, 90"), "{text}"); // 0x5a, as a derived Debug prints it
    assert!(text.contains("[32 bytes]"), "{text}");

    // Whole-body refusals, token errors among them.
    let forger = GraphSimulator::new("app", "tenant");
    let forged = graph.collection(&[], &[forger.token(SystemTime::now())]);
    let e = receiver.receive(&forged, SystemTime::now()).unwrap_err();
    secrets.check("BodyError", &format!("{e} {e:?}"));
    let tokens_only = forger.token(SystemTime::now());
    let e = receiver
        .tokens()
        .unwrap()
        .validate(&tokens_only, SystemTime::now())
        .unwrap_err();
    assert!(!format!("{e} {e:?}").contains(&tokens_only[..40]));

    // Decryption failures, key errors, model errors.
    let seal = Seal::new(&read("keys/rsa2048/cert.der"), "k");
    let mut broken = notification(
        seal.encrypt(format!("{{\"subject\": 5, \"x\": \"{PLAINTEXT_MARKER}\"}}").as_bytes()),
    );
    broken["clientState"] = STATE.into();
    let r2 = Receiver::builder()
        .keys(store().with_key("k", key.clone()).unwrap())
        .client_state(STATE)
        .dangerous_skip_token_validation()
        .build()
        .unwrap();
    let body2 = serde_json::to_vec(&json!({"value": [broken]})).unwrap();
    let b2 = r2.receive(&body2, SystemTime::now()).unwrap();
    let e = b2.open(0, &mut buf).unwrap().decode().unwrap_err();
    secrets.check("ItemError(Model)", &format!("{e} {e:?}"));
    let e = decode(
        &format!("{{\"importance\": [\"{PLAINTEXT_MARKER}\"]}}"),
        Some(ResourceKind::ChatMessage),
    )
    .unwrap_err();
    secrets.check("ModelError", &format!("{e} {e:?}"));
    let e = PrivateKey::from_bytes(&pem.as_bytes()[..pem.len() / 2]).unwrap_err();
    secrets.check("KeyError", &format!("{e} {e:?}"));

    // Outbound: the clientState stays out of requests' and subscriptions' Debug.
    let request = SubscriptionRequest::builder(Resource::all_chats(), "https://example.com/n")
        .change_types([ChangeType::Created])
        .client_state(STATE)
        .expires_in(SystemTime::now(), std::time::Duration::from_secs(600));
    secrets.check("SubscriptionRequest", &format!("{request:?}"));
    secrets.check("HttpRequest", &format!("{:?}", request.build().unwrap()));
    let sub =
        Subscription::from_json(format!("{{\"id\":\"s\",\"clientState\":\"{STATE}\"}}").as_bytes())
            .unwrap();
    secrets.check("Subscription", &format!("{sub:?}"));
    let e = Subscription::from_json(
        format!("{{\"id\":\"s\",\"clientState\":[\"{STATE}\"]}}").as_bytes(),
    )
    .unwrap_err();
    secrets.check("SubscriptionParseError", &format!("{e} {e:?}"));

    // The handshake token is not a secret, but is reflected: Debug shows its length only.
    let reply = handshake(&format!("validationToken={PLAINTEXT_MARKER}")).unwrap();
    secrets.check("HandshakeResponse", &format!("{reply:?}"));
}

/// Every string a model holds that is content rather than an id, a kind or a time: what its
/// `Debug` must not show.
fn content_strings(value: &serde_json::Value, key: &str, out: &mut Vec<String>) {
    const KINDS: [&str; 9] = [
        "messageType",
        "chatType",
        "importance",
        "contentType",
        "dlpAction",
        "userIdentityType",
        "conversationIdentityType",
        "@odata.type",
        "etag",
    ];
    match value {
        serde_json::Value::String(s) => {
            let id_like = key == "id" || key.ends_with("Id") || key == "locale";
            let time = graph_chat_notifications::model::parse_time(s).is_some();
            if !id_like && !time && !KINDS.contains(&key) && s.chars().count() >= 4 {
                out.push(s.clone());
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                content_strings(v, key, out);
            }
        }
        serde_json::Value::Object(members) => {
            for (k, v) in members {
                content_strings(v, k, out);
            }
        }
        _ => {}
    }
}

/// Every string of `value` that is an id, a kind or a time: what `Debug` may show.
fn shown_strings(value: &serde_json::Value, out: &mut Vec<String>) {
    let mut content = Vec::new();
    content_strings(value, "", &mut content);
    fn all(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| all(v, out)),
            serde_json::Value::Object(members) => members.values().for_each(|v| all(v, out)),
            _ => {}
        }
    }
    let mut every = Vec::new();
    all(value, &mut every);
    out.extend(every.into_iter().filter(|s| !content.contains(s)));
}

#[test]
fn debug_of_every_model_type_shows_no_content() {
    let dir = fixture("models");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.extend(
        std::fs::read_dir(fixture("plaintexts"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    files.sort();
    let mut modelled = 0;
    let mut refused = Vec::new();
    for path in &files {
        let name = path.display();
        let text = std::fs::read_to_string(path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut content = Vec::new();
        content_strings(&json, "", &mut content);
        // A content string that is also an id or a kind elsewhere in the document (`none`
        // as a `dlpAction` and as a `userAction`) may show as that.
        let mut shown = Vec::new();
        shown_strings(&json, &mut shown);
        content.retain(|c| !shown.iter().any(|s| s.contains(c.as_str())));
        let assert_hides = |what: &str, debug: &str| {
            for s in &content {
                if let Some(form) = shows(debug, s) {
                    panic!("{name}: {what} shows {s:?} ({form}): {debug}");
                }
            }
        };

        // Every model the document can be read as, the one `decode` picks and both explicit
        // kinds, and what refuses it: each `Debug` is checked, none is skipped.
        let mut debugs = Vec::new();
        for kind in [
            None,
            Some(ResourceKind::Chat),
            Some(ResourceKind::ChatMessage),
        ] {
            match decode(&text, kind) {
                Ok(model) => {
                    assert_hides("model Debug", &format!("{model:?}"));
                    let owned = model.clone().into_owned();
                    assert_hides("owned model Debug", &format!("{owned:?}"));
                    if let ChatOrMessage::ChatMessage(m) = &model {
                        // The timeline holds messages, and its entries their versions.
                        let mut timeline = ChatTimeline::new();
                        let id = m.id.as_deref().unwrap_or("m");
                        timeline.apply(&ChangeType::Updated.into(), id, Some(m));
                        assert_hides("ChatTimeline Debug", &format!("{timeline:?}"));
                        assert_hides(
                            "TimelineEntry Debug",
                            &format!("{:?} {:?}", timeline.get(id), timeline.entries()),
                        );
                        let mut deleted = timeline.clone();
                        deleted.apply(&ChangeType::Deleted.into(), id, None);
                        assert_hides("ChatTimeline Debug (deleted)", &format!("{deleted:?}"));
                    }
                    debugs.push(format!("{model:?}"));
                }
                Err(e) => assert_hides("ModelError", &format!("{e} {e:?}")),
            }
        }
        // A page of them, as a resync read returns it.
        let page_body = format!("{{\"value\": [{text}]}}");
        let page = Page::messages(page_body.as_bytes()).expect("a page");
        assert_hides("Page Debug", &format!("{page:?}"));
        if debugs.is_empty() {
            refused.push(name.to_string());
            continue;
        }
        // Ids and kinds still show, so Debug stays useful.
        if let Some(id) = json.get("id").and_then(|v| v.as_str()) {
            assert!(debugs.iter().all(|d| d.contains(id)), "{name}: {debugs:?}");
        }
        modelled += 1;
    }
    // A fixture no model reads is checked through its error only: that must stay the exception,
    // named here, not a silent skip.
    assert!(
        refused.is_empty(),
        "no model reads these fixtures, so their content was checked through errors only: {refused:?}"
    );
    assert_eq!(modelled, files.len());
    assert!(modelled >= 30, "only {modelled} fixtures");
}

/// A notification without encrypted content still carries `resourceData`, which Graph fills with
/// properties of the resource (and a caller's own channel may fill with more): its `Debug`, and
/// that of what opens it, show its size, not its values.
#[test]
fn resource_data_payload_debug_shows_no_content() {
    let secret = "Grüße \"Tür\" / confidential-7c1e";
    let receiver = Receiver::builder().client_state(STATE).build().unwrap();
    let body = serde_json::to_vec(&json!({"value": [{
        "subscriptionId": "s1",
        "changeType": "updated",
        "clientState": STATE,
        "tenantId": "tenant",
        "resource": "chats('19:a@thread.v2')/messages('1')",
        "resourceData": {
            "id": "1",
            "@odata.type": "#Microsoft.Graph.chatMessage",
            "@odata.id": "chats('19:a@thread.v2')/messages('1')",
            "subject": secret,
        },
    }]}))
    .unwrap();
    // The same body with non-ASCII escaped, as some encoders write it.
    let escaped = String::from_utf8(body.clone())
        .unwrap()
        .replace('ü', "\\u00fc")
        .replace('ß', "\\u00df");
    let secrets = Secrets {
        needles: vec![secret.to_string(), STATE.to_string()],
    };
    for body in [body, escaped.into_bytes()] {
        let batch = receiver.receive(&body, SystemTime::now()).unwrap();
        let mut buf = DecryptBuffer::new();
        let opened = batch.open(0, &mut buf).unwrap();
        assert!(matches!(
            opened.payload,
            graph_chat_notifications::inbound::Payload::ResourceData(Some(_))
        ));
        secrets.check("Payload::ResourceData", &format!("{:?}", opened.payload));
        secrets.check(
            "Payload::ResourceData (owned)",
            &format!("{:?}", opened.payload.clone().into_owned()),
        );
        secrets.check("Opened", &format!("{opened:?}"));
        secrets.check("OwnedNotification", &format!("{:?}", opened.into_owned()));
        secrets.check("Batch", &format!("{batch:?}"));
    }
}
