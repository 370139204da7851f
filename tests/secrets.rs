//! No secret leaks through `Debug` or `Display`: private keys, clientState, validation tokens,
//! decrypted plaintext. Every public type and error that touches one is formatted and searched.
#![cfg(feature = "rust-crypto")]

mod common;

use std::time::SystemTime;

use common::seal::{notification, Seal};
use common::*;
use graph_chat_notifications::crypto::{DecryptBuffer, PrivateKey};
use graph_chat_notifications::inbound::{handshake, ChangeType, Envelope, Limits, Receiver};
use graph_chat_notifications::model::{decode, IntoOwned as _, ResourceKind};
use graph_chat_notifications::outbound::{Resource, Subscription, SubscriptionRequest};
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
            assert!(!text.contains(n.as_str()), "{what} leaks {n:?}: {text}");
        }
    }
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
        .change_types([graph_chat_notifications::outbound::ChangeType::Created])
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
    let mut checked = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let Ok(model) = decode(&text, None) else {
            continue;
        };
        let debug = format!("{model:?} {:?}", model.clone().into_owned());
        let mut content = Vec::new();
        content_strings(&json, "", &mut content);
        for s in &content {
            // A string shows in `Debug` quoted and escaped.
            assert!(
                !debug.contains(&format!("{s:?}")),
                "{}: Debug shows {s:?}: {debug}",
                path.display()
            );
        }
        // Ids and kinds still show, so Debug stays useful.
        if let Some(id) = json.get("id").and_then(|v| v.as_str()) {
            assert!(debug.contains(id), "{}: {debug}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} fixtures decoded");
}
